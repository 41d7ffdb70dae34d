"""Margin math: pure functions over arrays.

Everything here is stateless and vectorized: the same function values one position in a unit
test and a million in a stress run. Conventions (DESIGN.md):

- prices in quote per base, sizes in base units, signed (long > 0);
- notional ``|size| x price`` in quote; rates are fractions (0.005, not 50 bps);
- linear (quote-margined) contracts: PnL = size x (exit - entry).

Each formula is written out, with its source and a worked example, in docs/formulas.md.
Where venues define a quantity differently the function takes the convention as a parameter.

Liquidation and bankruptcy prices
---------------------------------
A position's equity is linear in its mark price ``P``: ``equity(P) = base + size x P`` with
``base = margin - size x entry`` (isolated) or the account's balance and other positions'
PnL folded in (cross, other marks held fixed). Tiered maintenance margin
``mm(P) = |size| x P x mmr[t] - cum[t]`` is continuous, convex and piecewise linear in ``P``, so
``equity(P) - mm(P)`` is monotone (increasing for a long, decreasing for a short) and has one
root, the liquidation price. Its tier is found by evaluating the sign at the tier floors, then
the root is the closed form of that tier (Binance):

    LP = (base + cum[t]) / (|size| x mmr[t] - size)

The bankruptcy price is the root of ``equity(P) - fee(P) = 0``, where the closing fee is
counted by venues that reserve it in the position margin (Bybit). Flat positions give NaN;
prices that would be negative are clipped to 0 (a long that cannot be liquidated, a short
that is liquidatable at any price).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import numpy.typing as npt

from deleverage.errors import ValidationError
from deleverage.spec import MarginTier, TierArrays

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]
ArrayLike = npt.ArrayLike

MarginRatioConvention = Literal["maintenance_over_equity", "equity_over_maintenance"]
MaintenanceBasis = Literal["mark", "entry"]
TierBasis = Literal["at_liquidation", "at_entry"]


def notional(size: ArrayLike, price: ArrayLike) -> FloatArray:
    """Position notional in quote: ``|size| x price``."""
    return np.abs(np.asarray(size, dtype=np.float64)) * np.asarray(price, dtype=np.float64)


def unrealized_pnl(size: ArrayLike, entry_price: ArrayLike, mark_price: ArrayLike) -> FloatArray:
    """Unrealized PnL in quote of a linear position: ``size x (mark - entry)``."""
    s = np.asarray(size, dtype=np.float64)
    return s * (np.asarray(mark_price, dtype=np.float64) - np.asarray(entry_price, np.float64))


def tier_index(notional_quote: ArrayLike, tiers: TierArrays) -> IntArray:
    """Index of the margin tier that applies to each notional (floor <= notional < next)."""
    idx = np.searchsorted(tiers.floor, np.asarray(notional_quote, np.float64), side="right") - 1
    return np.maximum(idx, 0)


def maintenance_margin(notional_quote: ArrayLike, tiers: TierArrays) -> FloatArray:
    """Tiered maintenance margin in quote: ``notional x mmr[t] - cum[t]``.

    ``t`` is the tier of the notional and ``cum`` the tier's maintenance deduction (Binance
    "maintenance amount", Hyperliquid "maintenance deduction"); the result is continuous in the
    notional and equals ``notional x mmr[0]`` in the first tier. An open position (notional
    > 0) needs at least ``tiers.min_margin`` (``MarketSpec.min_maintenance_margin``).
    """
    n = np.asarray(notional_quote, dtype=np.float64)
    t = tier_index(n, tiers)
    tiered = n * tiers.mmr[t] - tiers.cum[t]
    if tiers.min_margin > 0.0:
        return np.where(n > 0.0, np.maximum(tiered, tiers.min_margin), tiered)
    return tiered


def maintenance_rate(notional_quote: ArrayLike, tiers: TierArrays) -> FloatArray:
    """Effective maintenance margin rate ``maintenance_margin / notional`` (0 for no notional)."""
    n = np.asarray(notional_quote, dtype=np.float64)
    mm = maintenance_margin(n, tiers)
    out = np.zeros_like(n)
    np.divide(mm, n, out=out, where=n > 0)
    return out


def oi_scaled_initial_rate(
    base_rate: ArrayLike,
    open_interest_notional: float,
    *,
    lower_cap: float,
    upper_cap: float,
) -> FloatArray:
    """dYdX v4 open-interest scaling of the initial margin fraction.

    ``imf = base + (1 - base) x clip((oi - lower_cap) / (upper_cap - lower_cap), 0, 1)``: the
    fraction rises linearly from the base rate at ``lower_cap`` of open-interest notional to 1
    (no leverage) at ``upper_cap``.
    """
    base = np.asarray(base_rate, dtype=np.float64)
    scale = min(max((open_interest_notional - lower_cap) / (upper_cap - lower_cap), 0.0), 1.0)
    return base + (1.0 - base) * scale


def initial_margin_rate(
    notional_quote: ArrayLike,
    tiers: TierArrays,
    *,
    leverage: ArrayLike | None = None,
) -> FloatArray:
    """Initial margin rate: ``max(1 / leverage, imr[t]) + initial_fee``.

    ``leverage`` is the leverage the trader chose (Binance "adjust leverage"); without it, or
    where it is 0, the tier's maximum leverage applies. ``tiers.initial_fee`` is the fee part
    (BitMEX: ``2 x taker``; 0 elsewhere).
    """
    n = np.asarray(notional_quote, dtype=np.float64)
    rate = tiers.imr[tier_index(n, tiers)]
    if leverage is not None:
        lev = np.asarray(leverage, dtype=np.float64)
        chosen = np.zeros(np.broadcast(lev, n).shape)
        np.divide(1.0, lev, out=chosen, where=lev > 0)
        rate = np.maximum(rate, chosen)
    if tiers.initial_fee:
        return np.asarray(rate + tiers.initial_fee, dtype=np.float64)
    return rate


def initial_margin(
    notional_quote: ArrayLike,
    tiers: TierArrays,
    *,
    leverage: ArrayLike | None = None,
) -> FloatArray:
    """Initial margin in quote: ``notional x initial_margin_rate``."""
    n = np.asarray(notional_quote, dtype=np.float64)
    return n * initial_margin_rate(n, tiers, leverage=leverage)


def margin_ratio(
    equity: ArrayLike,
    maintenance: ArrayLike,
    *,
    convention: MarginRatioConvention = "maintenance_over_equity",
) -> FloatArray:
    """Margin ratio of an account or isolated position.

    ``maintenance_over_equity`` (Binance, Bybit, OKX): liquidation when the ratio reaches 1;
    infinite when equity is not positive. ``equity_over_maintenance`` (dYdX, Drift health):
    liquidation when the ratio falls below 1; infinite with no maintenance requirement.
    """
    e = np.asarray(equity, dtype=np.float64)
    m = np.asarray(maintenance, dtype=np.float64)
    e, m = np.broadcast_arrays(e, m)
    out = np.full(e.shape, np.inf)
    if convention == "maintenance_over_equity":
        np.divide(m, e, out=out, where=e > 0)
        out[(e > 0) & (m == 0)] = 0.0
    else:
        np.divide(e, m, out=out, where=m > 0)
    return out


def free_collateral(equity: ArrayLike, initial: ArrayLike) -> FloatArray:
    """Collateral available to withdraw or open new positions: ``equity - initial margin``."""
    return np.asarray(equity, dtype=np.float64) - np.asarray(initial, dtype=np.float64)


def apply_fill(
    size: ArrayLike, entry_price: ArrayLike, fill_size: ArrayLike, fill_price: ArrayLike
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Apply a fill to positions: new size, new average entry price and realized PnL.

    Increasing a position averages the entry price by size; reducing keeps the entry and
    realizes ``closed x (fill - entry)`` on the closed part; crossing through zero realizes on
    the whole old position and opens the rest at the fill price. A flat position's entry is 0.
    """
    s = np.asarray(size, dtype=np.float64)
    e = np.asarray(entry_price, dtype=np.float64)
    q = np.asarray(fill_size, dtype=np.float64)
    p = np.asarray(fill_price, dtype=np.float64)
    s, e, q, p = np.broadcast_arrays(s, e, q, p)
    new_size = s + q
    same_side = s * q > 0
    opening = (s == 0) | same_side
    # Size closed: the part of the fill that opposes the existing position.
    closed = np.where(opening, 0.0, np.sign(q) * np.minimum(np.abs(q), np.abs(s)))
    realized = -closed * (p - e)
    total = np.abs(s) + np.abs(q)
    averaged = np.divide(
        np.abs(s) * e + np.abs(q) * p, total, out=np.zeros_like(e), where=total > 0
    )
    flipped = (~opening) & (np.abs(q) > np.abs(s))
    new_entry = np.where(opening, averaged, np.where(flipped, p, e))
    new_entry = np.where(new_size == 0, 0.0, new_entry)
    return new_size, new_entry, realized


# --- liquidation and bankruptcy prices -----------------------------------------------------------


def _check_option(field: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValidationError(field, value, "must be one of " + ", ".join(map(repr, allowed)))


def _check_fee_rate(close_fee_rate: ArrayLike | None) -> FloatArray:
    if close_fee_rate is None:
        return np.zeros(())
    rate = np.asarray(close_fee_rate, dtype=np.float64)
    if not np.all(np.isfinite(rate) & (rate >= 0) & (rate < 1)):
        raise ValidationError("close_fee_rate", close_fee_rate, "must be in [0, 1)")
    return rate


def _liquidation_tier(size: FloatArray, base: FloatArray, tiers: TierArrays) -> IntArray:
    # equity(P) - mm(P) = base + size*P - mm(|size|*P) is monotone in P; side*(...) increases.
    # The root's tier is the number of floors above the first that lie strictly below the root.
    floors = tiers.floor[1:]
    if floors.size == 0:
        return np.zeros(size.shape, dtype=np.intp)
    absolute = np.abs(size)
    safe = np.where(absolute > 0, absolute, 1.0)
    price_at_floor = floors / safe[..., None]
    mm_at_floor = floors * tiers.mmr[1:] - tiers.cum[1:]
    gap = base[..., None] + size[..., None] * price_at_floor - mm_at_floor
    below_root = np.sign(size)[..., None] * gap < 0
    return np.asarray(np.count_nonzero(below_root, axis=-1), dtype=np.intp)


def _liquidation_price(
    size: FloatArray,
    entry_price: FloatArray,
    base: FloatArray,
    tiers: TierArrays,
    *,
    mm_basis: MaintenanceBasis,
    tier_basis: TierBasis,
) -> FloatArray:
    _check_option("mm_basis", mm_basis, ("mark", "entry"))
    _check_option("tier_basis", tier_basis, ("at_liquidation", "at_entry"))
    size, entry_price, base = np.broadcast_arrays(size, entry_price, base)
    absolute = np.abs(size)
    flat = absolute == 0
    if mm_basis == "entry":
        # Bybit: maintenance margin on the entry position value, a constant in P.
        mm_entry = maintenance_margin(absolute * entry_price, tiers)
        price = (mm_entry - base) / np.where(flat, 1.0, size)
    else:
        if tier_basis == "at_liquidation":
            tier = _liquidation_tier(size, base, tiers)
        else:
            tier = tier_index(absolute * entry_price, tiers)
        denominator = absolute * tiers.mmr[tier] - size
        price = (base + tiers.cum[tier]) / np.where(flat, 1.0, denominator)
    return np.where(flat, np.nan, np.maximum(price, 0.0))


def liquidation_price_isolated(
    size: ArrayLike,
    entry_price: ArrayLike,
    isolated_margin: ArrayLike,
    tiers: TierArrays,
    *,
    mm_basis: MaintenanceBasis = "mark",
    tier_basis: TierBasis = "at_liquidation",
) -> FloatArray:
    """Mark price at which an isolated position's equity equals its maintenance margin.

    Equity is ``isolated_margin + size x (P - entry)``; the isolated margin is the wallet
    balance of the position, unrealized PnL excluded (Binance ``isolatedWalletBalance``, Bybit
    position margin = initial margin + extra margin added). Binance USD-M form, with
    ``side = sign(size)``:

        LP = (WB + cum[t] - side x |size| x EP) / (|size| x mmr[t] - side x |size|)

    Parameters
    ----------
    size
        Signed position size in base units (long > 0).
    entry_price
        Average entry price, quote per base.
    isolated_margin
        Margin held by the position, quote, unrealized PnL excluded.
    tiers
        Margin tiers of the market.
    mm_basis
        ``"mark"`` (Binance, OKX, Hyperliquid, dYdX): maintenance margin on the notional at the
        liquidation price. ``"entry"`` (Bybit): on the entry position value, so
        ``LP = entry - side x (margin - mm(|size| x entry)) / |size|``.
    tier_basis
        ``"at_liquidation"``: the tier whose notional range contains ``|size| x LP`` (Binance's
        note: recompute with the tier at the liquidation price). ``"at_entry"``: the tier of the
        entry notional. Ignored with ``mm_basis="entry"``.

    Returns
    -------
    numpy.ndarray
        Liquidation price; NaN for a flat position; 0 where a long cannot be liquidated
        (negative roots are clipped to 0).

    Raises
    ------
    ValidationError
        If ``mm_basis`` or ``tier_basis`` is not one of the values above.

    Examples
    --------
    Bybit USDT example: 1 BTC long at 20,000 with 50x (margin 400), MMR 0.5%:

    >>> from deleverage.spec import MarginTier, TierArrays
    >>> tiers = TierArrays.from_tiers(
    ...     [MarginTier(notional_floor=0, max_leverage=100, maintenance_rate=0.005)]
    ... )
    >>> float(liquidation_price_isolated(1.0, 20_000.0, 400.0, tiers, mm_basis="entry"))
    19700.0
    """
    s = np.asarray(size, dtype=np.float64)
    e = np.asarray(entry_price, dtype=np.float64)
    base = np.asarray(isolated_margin, dtype=np.float64) - s * e
    return _liquidation_price(s, e, base, tiers, mm_basis=mm_basis, tier_basis=tier_basis)


def liquidation_price_cross(
    size: ArrayLike,
    entry_price: ArrayLike,
    *,
    wallet_balance: ArrayLike,
    tiers: TierArrays,
    other_maintenance: ArrayLike = 0.0,
    other_unrealized_pnl: ArrayLike = 0.0,
    mm_basis: MaintenanceBasis = "mark",
    tier_basis: TierBasis = "at_liquidation",
) -> FloatArray:
    """Cross-margin liquidation price of one position, the other positions' marks held fixed.

    Binance USD-M, one-way mode (``side = sign(size)``):

        LP = (WB - TMM1 + UPNL1 + cumB - side x |size| x EP) / (|size| x MMR_B - side x |size|)

    It is the isolated formula with margin ``WB - TMM1 + UPNL1``: the account's equity
    ``WB + UPNL1 + size x (P - EP)`` meets the maintenance margin ``TMM1 + mm(|size| x P)``.

    Parameters
    ----------
    size, entry_price
        Signed size (base units) and average entry price of the position ("contract 1").
    wallet_balance
        Cross wallet balance ``WB`` in quote: deposits plus realized PnL, fees and funding.
    tiers
        Margin tiers of the position's market.
    other_maintenance
        ``TMM1``: maintenance margin of all other cross positions at their current marks.
    other_unrealized_pnl
        ``UPNL1``: unrealized PnL of all other cross positions at their current marks.
    mm_basis, tier_basis
        As in :func:`liquidation_price_isolated`.

    Returns
    -------
    numpy.ndarray
        Liquidation price; NaN for a flat position; clipped to 0 below.
    """
    s = np.asarray(size, dtype=np.float64)
    e = np.asarray(entry_price, dtype=np.float64)
    margin = (
        np.asarray(wallet_balance, dtype=np.float64)
        + np.asarray(other_unrealized_pnl, dtype=np.float64)
        - np.asarray(other_maintenance, dtype=np.float64)
    )
    return _liquidation_price(s, e, margin - s * e, tiers, mm_basis=mm_basis, tier_basis=tier_basis)


def liquidation_price_dydx(
    size: ArrayLike,
    oracle_price: ArrayLike,
    *,
    equity: ArrayLike,
    maintenance_fraction: ArrayLike,
    other_maintenance: ArrayLike = 0.0,
) -> FloatArray:
    """dYdX v4 liquidation price of a position (isolated, or cross with other prices fixed).

        p' = (e - s x p - MMR_o) / (|s| x MMF - s)

    ``e`` is the (sub)account's equity at the current oracle price ``p``, ``MMR_o`` the
    maintenance requirement of the other positions (0 for an isolated position, which dYdX
    holds alone in a child subaccount) and ``MMF`` the market's maintenance fraction.

    Parameters
    ----------
    size
        Signed position size ``s`` in base units.
    oracle_price
        Current oracle price ``p``, quote per base.
    equity
        Total account value ``e`` in quote at the current prices (USDC balance plus
        ``sum(s_i x p_i)``).
    maintenance_fraction
        Maintenance margin fraction ``MMF`` of the position's market.
    other_maintenance
        ``MMR_o``, quote.

    Returns
    -------
    numpy.ndarray
        Liquidation price; NaN for a flat position; clipped to 0 below.

    Examples
    --------
    dYdX docs, isolated: $1,000 deposited, short 3 ETH at $3,000, MMF 5%:

    >>> p = liquidation_price_dydx(-3.0, 3000.0, equity=1000.0, maintenance_fraction=0.05)
    >>> round(float(p), 2)
    3174.6
    """
    s = np.asarray(size, dtype=np.float64)
    p = np.asarray(oracle_price, dtype=np.float64)
    e = np.asarray(equity, dtype=np.float64)
    mmf = np.asarray(maintenance_fraction, dtype=np.float64)
    other = np.asarray(other_maintenance, dtype=np.float64)
    s, p, e, mmf, other = np.broadcast_arrays(s, p, e, mmf, other)
    flat = s == 0
    denominator = np.where(flat, 1.0, np.abs(s) * mmf - s)
    price = (e - s * p - other) / denominator
    return np.where(flat, np.nan, np.maximum(price, 0.0))


def account_liquidation_prices(
    sizes: ArrayLike,
    marks: ArrayLike,
    *,
    quote_balance: ArrayLike,
    maintenance_fractions: ArrayLike,
) -> FloatArray:
    """Liquidation price of each position of cross accounts, the other marks held fixed.

    For an account with USDC balance ``Q`` and positions ``(s_i, p_i, MMF_i)`` (dYdX v4):
    ``e = Q + sum_j s_j x p_j``, ``MMR_t = sum_j |s_j| x p_j x MMF_j``,
    ``MMR_o,i = MMR_t - |s_i| x p_i x MMF_i`` and

        p'_i = (e - s_i x p_i - MMR_o,i) / (|s_i| x MMF_i - s_i)

    Parameters
    ----------
    sizes, marks
        Arrays of shape ``(..., n_positions)``: signed sizes and current marks of each account's
        positions; a flat slot (size 0) gives NaN.
    quote_balance
        ``Q``, shape ``(...)``: the quote (cash) balance of each account.
    maintenance_fractions
        Maintenance fraction of each position's market, broadcast to ``(..., n_positions)``.

    Returns
    -------
    numpy.ndarray
        Shape ``(..., n_positions)``.
    """
    s = np.asarray(sizes, dtype=np.float64)
    p = np.asarray(marks, dtype=np.float64)
    mmf = np.asarray(maintenance_fractions, dtype=np.float64)
    s, p, mmf = np.broadcast_arrays(s, p, mmf)
    q = np.asarray(quote_balance, dtype=np.float64)
    equity = q + np.sum(s * p, axis=-1)
    own = np.abs(s) * p * mmf
    other = np.sum(own, axis=-1)[..., None] - own
    return liquidation_price_dydx(
        s, p, equity=equity[..., None], maintenance_fraction=mmf, other_maintenance=other
    )


def uniform_liquidation_factors(
    sizes: ArrayLike,
    marks: ArrayLike,
    *,
    quote_balance: ArrayLike,
    maintenance_fractions: ArrayLike | None = None,
    tiers: TierArrays | Sequence[TierArrays] | None = None,
) -> tuple[FloatArray, FloatArray]:
    """Range of a common relative move of all marks over which a cross account stays safe.

    Every mark is multiplied by the same factor ``k``. With ``A = sum s_i x p_i`` the equity is
    ``Q + k x A`` and the maintenance margin ``sum_i mm_i(k x |s_i| x p_i)``; tiered maintenance
    is convex and piecewise linear in ``k``, so ``g(k) = equity - maintenance`` is concave and
    ``{k >= 0 : g(k) >= 0}`` is an interval ``[lower, upper]``. With flat fractions ``g`` is
    linear, ``g(k) = Q + k x (A - B)`` with ``B = sum |s_i| x p_i x MMF_i``, and the boundary is
    ``k = Q / (B - A)``. With tiers the roots are found exactly on the linear pieces between the
    breakpoints ``k = floor / (|s_i| x p_i)``.

    Parameters
    ----------
    sizes, marks
        Shape ``(..., n_positions)``: signed sizes and current marks of each account.
    quote_balance
        ``Q``, shape ``(...)``: cash balance, so equity at the current marks is ``Q + A``.
    maintenance_fractions
        Flat maintenance fraction per position (dYdX), broadcast to ``(..., n_positions)``.
    tiers
        Instead of flat fractions: one tier table for every position, or one per position
        (length ``n_positions``).

    Returns
    -------
    (lower, upper) : tuple of numpy.ndarray
        Shape ``(...)``. Marks times ``lower`` (or ``upper``) are the account's downside
        (upside) liquidation prices. ``lower = 0`` where no fall can liquidate the account,
        ``upper = inf`` where no rise can; both NaN where no ``k >= 0`` is safe.

    Raises
    ------
    ValidationError
        Unless exactly one of ``maintenance_fractions`` and ``tiers`` is given, or if the
        number of tier tables does not match the number of positions.
    """
    s = np.asarray(sizes, dtype=np.float64)
    p = np.asarray(marks, dtype=np.float64)
    s, p = np.broadcast_arrays(s, p)
    q = np.asarray(quote_balance, dtype=np.float64)
    if (maintenance_fractions is None) == (tiers is None):
        raise ValidationError(
            "maintenance_fractions", maintenance_fractions, "must be given alone, or tiers alone"
        )
    notionals = np.abs(s) * p
    exposure = np.sum(s * p, axis=-1)
    q = np.broadcast_to(q, exposure.shape)
    if maintenance_fractions is not None:
        mmf = np.asarray(maintenance_fractions, dtype=np.float64)
        slope = exposure - np.sum(notionals * mmf, axis=-1)
        return _linear_safe_interval(q, slope)
    tables = _tier_tables(tiers, s.shape[-1])
    return _tiered_safe_interval(q, exposure, notionals, tables)


def _tier_tables(tiers: TierArrays | Sequence[TierArrays] | None, count: int) -> list[TierArrays]:
    if isinstance(tiers, TierArrays):
        return [tiers] * count
    tables = list(tiers or [])
    if len(tables) != count:
        raise ValidationError(
            "tiers", f"{len(tables)} tables", f"must hold one table per position ({count})"
        )
    return tables


def _linear_safe_interval(q: FloatArray, slope: FloatArray) -> tuple[FloatArray, FloatArray]:
    # g(k) = q + slope * k on k >= 0.
    healthy_at_zero = q >= 0
    root = -q / np.where(slope == 0, 1.0, slope)
    lower = np.where(healthy_at_zero, 0.0, np.where(slope > 0, root, np.nan))
    upper = np.where(slope >= 0, np.inf, root)
    upper = np.where(healthy_at_zero | (slope > 0), upper, np.nan)
    return lower, upper


def _tiered_safe_interval(
    q: FloatArray, exposure: FloatArray, notionals: FloatArray, tables: list[TierArrays]
) -> tuple[FloatArray, FloatArray]:
    # g is linear between consecutive breakpoints (0 and every k where a position changes tier),
    # so each root is an exact interpolation on one piece, or past the last breakpoint.
    positive = notionals > 0
    safe = np.where(positive, notionals, 1.0)
    points = [np.zeros((*notionals.shape[:-1], 1))]
    for i, table in enumerate(tables):
        k = table.floor[1:] / safe[..., i, None]
        points.append(np.where(positive[..., i, None], k, 0.0))
    breaks = np.sort(np.concatenate(points, axis=-1), axis=-1)  # (..., K)
    count = breaks.shape[-1]

    mm = np.zeros(breaks.shape)
    for i, table in enumerate(tables):
        mm += maintenance_margin(breaks * notionals[..., i, None], table)
    values = q[..., None] + breaks * exposure[..., None] - mm

    last_k = breaks[..., -1]
    # Past the last breakpoint no position changes tier; probe well inside that last piece, since
    # last_k x notional may round to just below the floor it came from.
    probe = 2.0 * last_k + 1.0
    last_slope = exposure.copy()
    for i, table in enumerate(tables):
        last_slope -= notionals[..., i] * table.mmr[tier_index(probe * notionals[..., i], table)]
    beyond = last_k - values[..., -1] / np.where(last_slope == 0, 1.0, last_slope)

    def root_before(j: IntArray) -> FloatArray:
        # Root on the piece [breaks[j-1], breaks[j]], where g changes sign.
        j = np.clip(j, 1, count - 1)[..., None]
        k0 = np.take_along_axis(breaks, j - 1, -1)[..., 0]
        k1 = np.take_along_axis(breaks, j, -1)[..., 0]
        g0 = np.take_along_axis(values, j - 1, -1)[..., 0]
        g1 = np.take_along_axis(values, j, -1)[..., 0]
        root: FloatArray = k0 + (k1 - k0) * g0 / np.where(g0 == g1, 1.0, g0 - g1)
        return root

    healthy = values >= 0
    any_healthy = np.any(healthy, axis=-1)
    first = np.argmax(healthy, axis=-1)
    last = count - 1 - np.argmax(healthy[..., ::-1], axis=-1)
    lower = np.where(any_healthy, np.where(first == 0, 0.0, root_before(first)), beyond)
    upper = np.where(last == count - 1, beyond, root_before(last + 1))
    upper = np.where(last_slope >= 0, np.inf, upper)
    nonempty = any_healthy | (last_slope > 0)
    return np.where(nonempty, lower, np.nan), np.where(nonempty, upper, np.nan)


def bankruptcy_price(
    size: ArrayLike,
    entry_price: ArrayLike,
    margin: ArrayLike,
    *,
    close_fee_rate: ArrayLike | None = None,
) -> FloatArray:
    """Price at which a position's margin is exhausted (isolated).

    Solves ``margin + size x (P - entry) - fee x |size| x P = 0``:

        BP = (entry - side x margin / |size|) / (1 - side x fee)

    Parameters
    ----------
    size, entry_price
        Signed size (base units) and average entry price.
    margin
        Isolated margin in quote, unrealized PnL excluded.
    close_fee_rate
        The convention for the closing fee. ``None`` (Binance, dYdX, Hyperliquid): no fee, so
        ``BP = entry - side x margin / |size|``. A taker rate (Bybit, which reserves the fee to
        close in the position margin): the fee on the closing notional ``|size| x BP`` is paid
        from the margin too.

    Returns
    -------
    numpy.ndarray
        Bankruptcy price; NaN for flat positions; clipped to 0 below.

    Raises
    ------
    ValidationError
        If ``close_fee_rate`` is not in [0, 1).

    Examples
    --------
    Bybit: long 1 BTC at 8,000 with 50x (initial margin 160) and the fee to close 5.88 reserved
    at the 0.075% taker rate: bankruptcy at 7,840, where the 160 is lost.

    >>> round(float(bankruptcy_price(1.0, 8000.0, 165.88, close_fee_rate=0.00075)), 6)
    7840.0
    """
    rate = _check_fee_rate(close_fee_rate)
    s = np.asarray(size, dtype=np.float64)
    e = np.asarray(entry_price, dtype=np.float64)
    m = np.asarray(margin, dtype=np.float64)
    s, e, m, rate = np.broadcast_arrays(s, e, m, rate)
    absolute = np.abs(s)
    flat = absolute == 0
    denominator = np.where(flat, 1.0, s - rate * absolute)
    price = (s * e - m) / denominator
    return np.where(flat, np.nan, np.maximum(price, 0.0))


def bankruptcy_price_cross(
    size: ArrayLike,
    entry_price: ArrayLike,
    *,
    wallet_balance: ArrayLike,
    other_unrealized_pnl: ArrayLike = 0.0,
    close_fee_rate: ArrayLike | None = None,
) -> FloatArray:
    """Price at which a cross account's equity is exhausted, the other marks held fixed.

    Solves ``WB + UPNL1 + size x (P - entry) - fee x |size| x P = 0``: the isolated
    :func:`bankruptcy_price` with margin ``WB + UPNL1``.

    Parameters
    ----------
    size, entry_price
        Signed size and average entry price of the position.
    wallet_balance
        Cross wallet balance ``WB``, quote.
    other_unrealized_pnl
        ``UPNL1``: unrealized PnL of the account's other cross positions.
    close_fee_rate
        As in :func:`bankruptcy_price`.
    """
    margin = np.asarray(wallet_balance, dtype=np.float64) + np.asarray(
        other_unrealized_pnl, dtype=np.float64
    )
    return bankruptcy_price(size, entry_price, margin, close_fee_rate=close_fee_rate)


# --- Hyperliquid ---------------------------------------------------------------------------------


def hyperliquid_tiers(lower_bounds: Sequence[float], max_leverages: Sequence[float]) -> TierArrays:
    """Build a Hyperliquid margin table: maintenance rate = half the initial rate at max leverage.

    ``maintenance_margin_rate(n) = 1 / (2 x max_leverage(n))``; the deductions follow
    ``deduction(n) = deduction(n-1) + lower_bound(n) x (mmr(n) - mmr(n-1))``
    (:func:`deleverage.spec.maintenance_deductions`).

    Raises
    ------
    ValidationError
        If the two sequences differ in length or a tier is invalid.
    """
    if len(lower_bounds) != len(max_leverages) or not lower_bounds:
        raise ValidationError(
            "max_leverages", list(max_leverages), "must give one leverage per lower bound"
        )
    return TierArrays.from_tiers(
        [
            MarginTier(notional_floor=bound, max_leverage=leverage, maintenance_rate=0.5 / leverage)
            for bound, leverage in zip(lower_bounds, max_leverages, strict=True)
        ]
    )


def liquidation_price_hyperliquid(
    size: ArrayLike,
    price: ArrayLike,
    *,
    margin: ArrayLike,
    tiers: TierArrays,
    other_maintenance: ArrayLike = 0.0,
) -> FloatArray:
    """Hyperliquid liquidation price (docs "Liquidations").

        liq_price = price - side x margin_available / position_size / (1 - l x side)

    with ``l = 1 / maintenance_leverage`` the maintenance rate of the tier at the liquidation
    price and ``margin_available = margin - maintenance_margin_required``: the isolated margin
    (allocated margin plus unrealized PnL) minus the position's maintenance margin, or for a
    cross position the account value minus the cross maintenance margin of all positions, all
    at the current ``price``. Equivalent to :func:`liquidation_price_isolated` with
    ``mm_basis="mark"``.

    Parameters
    ----------
    size
        Signed position size (base units).
    price
        Current mark price.
    margin
        Isolated margin value (unrealized PnL included) or cross account value, quote, at
        ``price``.
    tiers
        The market's margin table (see :func:`hyperliquid_tiers`).
    other_maintenance
        Maintenance margin of the account's other cross positions (0 for isolated).

    Returns
    -------
    numpy.ndarray
        Liquidation price; NaN for flat positions; clipped to 0 below.
    """
    s = np.asarray(size, dtype=np.float64)
    p = np.asarray(price, dtype=np.float64)
    m = np.asarray(margin, dtype=np.float64)
    other = np.asarray(other_maintenance, dtype=np.float64)
    s, p, m, other = np.broadcast_arrays(s, p, m, other)
    tier = _liquidation_tier(s, m - other - s * p, tiers)
    rate = tiers.mmr[tier]
    absolute = np.abs(s)
    side = np.sign(s)
    required = other + absolute * p * rate - tiers.cum[tier]
    available = m - required
    flat = absolute == 0
    # A long at a 100% maintenance rate (dYdX's IMF = MMF = 1 tier) has equity minus
    # maintenance independent of the price: liquidated now if short of it, else never (0).
    denom = 1.0 - rate * side
    fixed = denom == 0.0
    liq = p - side * available / np.where(flat, 1.0, absolute) / np.where(fixed, 1.0, denom)
    liq = np.where(fixed, np.where(available < 0.0, p, 0.0), liq)
    return np.where(flat, np.nan, np.maximum(liq, 0.0))
