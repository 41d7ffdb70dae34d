"""Liquidation math: who is liquidated, how much is closed, and at what price.

Pure functions over scalars and arrays; the risk step (:mod:`deleverage.engine.risk`) applies
them to the engine's state. Each formula is in docs/formulas.md with its source.

Sizes are base units, prices quote per base, money quote. ``side`` is +1 for a long position
and -1 for a short; closing a position trades ``-side`` (a long is liquidated by selling).
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from deleverage.spec import TierArrays

FloatArray = npt.NDArray[np.float64]


def bankruptcy_price(size: float, mark: float, equity: float) -> float:
    """Price at which a position's equity pool is exhausted, other marks held fixed.

    ``equity(P) = equity + size x (P - mark) = 0``  =>  ``P = mark - equity / size``.
    For an isolated position ``equity`` is its margin plus unrealized PnL; for a cross account
    it is the account's cross equity. A long's bankruptcy price is below the mark while it has
    positive equity. Returns NaN for a flat position; never negative.
    """
    if size == 0.0:
        return math.nan
    return max(0.0, mark - equity / size)


def size_to_restore(
    *,
    size: float,
    shortage: float,
    mark: float,
    requirement_rate: float,
    fee_rate: float,
    fill_price: float | None = None,
) -> float:
    """Base units to close so that equity meets the requirement afterwards (partial liquidation).

    Closing ``q`` at the price ``x`` (the mark by default) costs the penalty ``f q x`` and the
    loss ``q |P - x|`` against the mark, and lowers the requirement by ``r q P``:

    ``equity - q (f x + |P - x|) >= requirement - r q P``
    => ``q >= shortage / (r P - f x - |P - x|)``,  ``shortage = requirement - equity``

    the margin shortage divided by what each unit closed releases net of costs: Drift's
    ``calculate_base_asset_amount_to_cover_margin_shortage``. ``requirement_rate`` is the
    target rate (maintenance plus buffer, or initial). Returns 0 when nothing is short and the
    whole ``|size|`` when closing cannot restore the requirement (nothing is released).

    Examples
    --------
    Drift's unit test: a $10 shortage, a 10% margin ratio, no fees, price $100: close 1 unit.

    >>> size_to_restore(size=5.0, shortage=10.0, mark=100.0, requirement_rate=0.1, fee_rate=0.0)
    1.0
    """
    abs_size = abs(size)
    if shortage <= 0.0:
        return 0.0
    x = mark if fill_price is None else fill_price
    release = mark * requirement_rate - fee_rate * x - abs(mark - x)
    if release <= 0.0:
        return abs_size
    return min(abs_size, shortage / release)


def tier_down_size(size: float, mark: float, tiers: TierArrays) -> float:
    """Base units to close to bring a position below its current tier's floor (Binance, OKX).

    The position is reduced to the largest notional of the next lower tier; in the first tier
    the whole position is closed.
    """
    notional = abs(size) * mark
    t = int(np.searchsorted(tiers.floor, notional, side="right") - 1)
    if t <= 0:
        return abs(size)
    target_notional = float(tiers.floor[t]) * (1.0 - 1e-9)
    return max(0.0, abs(size) - target_notional / mark)


def round_up_to_lot(size: float, lot: float) -> float:
    """``size`` rounded up to a whole number of lots (a close never falls short of its aim)."""
    return math.ceil(size / lot - 1e-9) * lot


def fixed_fraction_size(size: float, mark: float, *, fraction: float, min_notional: float) -> float:
    """Hyperliquid: close ``fraction`` of a position whose notional exceeds ``min_notional``.

    Smaller positions are closed whole.
    """
    if abs(size) * mark > min_notional:
        return abs(size) * fraction
    return abs(size)


def capped_penalty(*, fee: float, equity_after_fill: float) -> float:
    """The liquidation penalty, capped so it never makes the account bankrupt.

    dYdX v4: ``insurance_fund_delta = min(fee, quote_received - bankruptcy_quote)``; here the
    remaining equity after the fill plays the part of ``quote_received - bankruptcy_quote``.
    A fill already beyond bankruptcy pays no penalty.
    """
    return max(0.0, min(fee, equity_after_fill))


def fillable_price(
    *,
    side: int,
    oracle_price: float,
    bankruptcy: float,
    maintenance_fraction: float,
    spread_to_maintenance_ratio: float = 1.5,
) -> float:
    """dYdX v4 fillable price of a liquidation: between the oracle and the bankruptcy price.

    ``adjustment = SMMR x MMF`` (spread to maintenance margin ratio times maintenance margin
    fraction); a long (``side`` = +1) is closed at ``oracle x (1 - adjustment)`` and a short at
    ``oracle x (1 + adjustment)``, never beyond its bankruptcy price.
    """
    adjustment = spread_to_maintenance_ratio * maintenance_fraction
    price = oracle_price * (1.0 - side * adjustment)
    if side > 0:
        return max(price, bankruptcy)
    return min(price, bankruptcy)


def close_order(maintenance: FloatArray) -> npt.NDArray[np.intp]:
    """Order in which a cross account's positions are reduced: largest maintenance first.

    Ties keep the market order (stable sort), so the choice is deterministic.
    """
    return np.argsort(-np.asarray(maintenance, dtype=np.float64), kind="stable")
