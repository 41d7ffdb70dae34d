"""GMX v2's position arithmetic as pure functions over arrays (USD, float64).

GMX v2 (gmx-io/gmx-synthetics) is an oracle-pool perpetual: a market's liquidity pool holds a
long token and a short token and is the counterparty of every position. A position has a
collateral amount (in the long or the short token), a size in USD (its cost) and a size in
index tokens. The oracle publishes a min and a max price; each formula picks the side that is
worse for the trader (``Price.pickPriceForPnl``). The functions below follow
``PositionUtils.isPositionLiquidatable``, ``PositionUtils.getPositionPnlUsd``,
``MarketUtils.getPnl`` / ``getPnlToPoolFactor`` / ``getCappedPnl`` and
``PricingUtils.getPriceImpactUsdFor{SameSide,Crossover}Rebalance`` (docs/formulas.md §GMX).
They take arrays (one entry per position) and return arrays; nothing here holds state.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from deleverage import portable_math as pm

__all__ = [
    "adl_profit_to_target",
    "apply_impact_factor",
    "capped_pnl_scale",
    "close_improves_balance",
    "close_price_impact_usd",
    "liquidation_threshold_usd",
    "may_become_liquidatable",
    "pnl_to_pool_factor",
    "position_pnl_usd",
    "price_impact_usd",
    "remaining_collateral_usd",
    "side_pnl_usd",
]

F64 = npt.NDArray[np.float64]
B = npt.NDArray[np.bool_]
#: Relative (and absolute, USD) slack for float rounding in :func:`may_become_liquidatable`.
_FLOAT_RTOL = 1e-9


def position_pnl_usd(
    is_long: B, size_usd: F64, size_tokens: F64, price_min: float, price_max: float
) -> F64:
    """Uncapped PnL of positions at the price that is worse for the trader (USD).

    Long: ``size_tokens x price_min - size_usd``; short: ``size_usd - size_tokens x price_max``
    (``getPositionPnlUsd`` with ``pickPriceForPnl(isLong, maximize=false)``).
    """
    return np.where(is_long, size_tokens * price_min - size_usd, size_usd - size_tokens * price_max)


def side_pnl_usd(
    *, is_long: bool, open_interest_usd: float, open_interest_tokens: float, price: float
) -> float:
    """Aggregate PnL of one side's open interest at ``price`` (``MarketUtils.getPnl``, USD)."""
    if open_interest_usd == 0.0 or open_interest_tokens == 0.0:
        return 0.0
    value = open_interest_tokens * price
    return value - open_interest_usd if is_long else open_interest_usd - value


def pnl_to_pool_factor(pnl_usd: float, pool_usd: float) -> float:
    """The side's PnL over the pool's USD value backing that side (``getPnlToPoolFactor``);
    0 for an empty pool."""
    return 0.0 if pool_usd <= 0.0 else pnl_usd / pool_usd


def capped_pnl_scale(side_pnl: float, pool_usd: float, max_pnl_factor: float) -> float:
    """The factor by which a side's profitable positions' PnL is scaled when the side's PnL
    exceeds ``max_pnl_factor x pool_usd`` (``getCappedPnl`` with MAX_PNL_FACTOR_FOR_TRADERS):
    ``capped / pnl``, 1 when the cap does not bind."""
    if side_pnl <= 0.0:
        return 1.0
    cap = max(pool_usd, 0.0) * max_pnl_factor
    return 1.0 if side_pnl <= cap else cap / side_pnl


def apply_impact_factor(diff_usd: F64 | float, factor: float, exponent: float) -> F64:
    """``factor x diff_usd ** exponent`` (``PricingUtils.applyImpactFactor``)."""
    impact: F64 = factor * pm.power(np.asarray(diff_usd, dtype=np.float64), exponent)
    return impact


def price_impact_usd(
    *,
    long_open_interest_usd: float,
    short_open_interest_usd: float,
    next_long_usd: F64,
    next_short_usd: F64,
    positive_factor: float,
    negative_factor: float,
    exponent: float,
) -> F64:
    """Price impact of moving open interest to ``(next_long_usd, next_short_usd)`` (USD per
    entry; > 0 helps the trader), ``PositionPricingUtils._getPriceImpactUsd``.

    The imbalance is ``d = |long OI - short OI|`` before (``d0``) and after (``d1``). On the
    same side of balance: ``±|f(d0) - f(d1)|`` with ``f(d) = factor x d ** exponent``, the
    positive factor and ``+`` when the imbalance falls, the negative factor and ``-`` when it
    grows (``getPriceImpactUsdForSameSideRebalance``); when it crosses balance:
    ``f+(d0) - f-(d1)`` (``getPriceImpactUsdForCrossoverRebalance``).
    """
    next_long = np.asarray(next_long_usd, dtype=np.float64)
    if positive_factor == 0.0 and negative_factor == 0.0:
        return np.zeros(next_long.shape)
    diff = long_open_interest_usd - short_open_interest_usd
    next_diff = next_long - np.asarray(next_short_usd, dtype=np.float64)
    d0 = abs(diff)
    d1 = np.abs(next_diff)
    same_side = (diff <= 0.0) == (next_diff <= 0.0)
    improved = d1 < d0
    p0 = d0**exponent
    p1 = d1 * d1 if exponent == 2.0 else pm.power(d1, exponent)
    factor = np.where(improved, positive_factor, negative_factor)
    same = factor * np.abs(p0 - p1)
    same = np.where(improved, same, -same)
    cross = positive_factor * p0 - negative_factor * p1
    return np.asarray(np.where(same_side, same, cross), dtype=np.float64)


def close_improves_balance(
    *, is_long: B, size_usd: F64, long_open_interest_usd: float, short_open_interest_usd: float
) -> B:
    """Whether closing each position whole lowers ``|long OI - short OI|``
    (``balanceWasImproved``, which picks the position fee factor)."""
    diff = long_open_interest_usd - short_open_interest_usd
    next_diff = np.where(is_long, diff - size_usd, diff + size_usd)
    return np.asarray(np.abs(next_diff) < abs(diff), dtype=np.bool_)


def close_price_impact_usd(
    *,
    is_long: B,
    size_usd: F64,
    long_open_interest_usd: float,
    short_open_interest_usd: float,
    positive_factor: float,
    negative_factor: float,
    exponent: float,
) -> F64:
    """Price impact of closing each position whole against the current open interest (USD;
    > 0 helps the trader): :func:`price_impact_usd` with the position's side reduced by its
    size, as ``isPositionLiquidatable`` evaluates it."""
    if positive_factor == 0.0 and negative_factor == 0.0:
        return np.zeros(np.shape(size_usd))
    return price_impact_usd(
        long_open_interest_usd=long_open_interest_usd,
        short_open_interest_usd=short_open_interest_usd,
        next_long_usd=np.where(is_long, long_open_interest_usd - size_usd, long_open_interest_usd),
        next_short_usd=np.where(
            is_long, short_open_interest_usd, short_open_interest_usd - size_usd
        ),
        positive_factor=positive_factor,
        negative_factor=negative_factor,
        exponent=exponent,
    )


def liquidation_threshold_usd(
    size_usd: F64, *, min_collateral_usd: float, min_collateral_factor: float
) -> F64:
    """The remaining collateral below which a position is liquidatable:
    ``max(MIN_COLLATERAL_USD, size_usd x minCollateralFactorForLiquidation)`` (USD)."""
    return np.maximum(min_collateral_usd, size_usd * min_collateral_factor)


def remaining_collateral_usd(
    *,
    collateral_usd: F64,
    pnl_usd: F64,
    price_impact_usd: F64,
    fees_usd: F64,
    size_usd: F64,
    max_impact_factor_for_liquidations: float,
) -> F64:
    """``collateral + PnL + capped price impact - fees`` (USD), as in
    ``isPositionLiquidatable``: positive impact counts as 0, negative impact is capped at
    ``-size_usd x maxPositionImpactFactorForLiquidations``."""
    impact = np.where(
        price_impact_usd >= 0.0,
        0.0,
        np.maximum(price_impact_usd, -size_usd * max_impact_factor_for_liquidations),
    )
    return collateral_usd + pnl_usd + impact - fees_usd


def adl_profit_to_target(
    *, side_pnl: float, pool_usd: float, target_factor: float, paid_per_unit: float
) -> float:
    """The PnL (USD) that ADL must realize so that the side's PnL-to-pool factor falls to
    ``target_factor`` (MIN_PNL_FACTOR_AFTER_ADL) and not below.

    Realizing ``y`` of PnL lowers the side's PnL by ``y`` and the pool backing it by
    ``paid_per_unit x y`` (what leaves the pool per unit of PnL, after the profit cap and net
    of fees paid into that pool): ``(P - y) / (Pool - c y) = t`` gives
    ``y = (P - t Pool) / (1 - t c)`` (0 when the factor is already at or below ``t``).
    """
    excess = side_pnl - target_factor * pool_usd
    if excess <= 0.0:
        return 0.0
    slope = 1.0 - target_factor * paid_per_unit
    return excess / slope if slope > 0.0 else float("inf")


def may_become_liquidatable(
    *,
    is_long: B,
    size_usd: F64,
    margin_usd: F64,
    open_interest_before: tuple[float, float],
    open_interest_after: tuple[float, float],
    fee_factors: tuple[float, float],
    max_impact_factor: float | None,
) -> B:
    """Which positions, with remaining collateral ``margin_usd`` above their threshold
    (negative: liquidatable) at the open interest before others' closes, can be liquidatable
    at the open interest after them, prices and accruals unchanged.

    Only the close fee factor (``fee_factors``: positive, negative; picked by
    :func:`close_improves_balance`) and the capped impact change. Without a negative impact
    factor (``max_impact_factor`` None) the impact stays 0, so only positions whose
    ``balanceWasImproved`` flips can lose ``size x |fee difference|``; with one, any position
    can lose up to ``size x (|fee difference| + max_impact_factor)`` (docs/formulas.md §G2).
    """
    dfee = abs(fee_factors[1] - fee_factors[0])
    if max_impact_factor is not None:
        slack = size_usd * (dfee + max_impact_factor + _FLOAT_RTOL) + _FLOAT_RTOL
    else:
        (l0, s0), (l1, s1) = open_interest_before, open_interest_after
        flips = close_improves_balance(
            is_long=is_long, size_usd=size_usd, long_open_interest_usd=l0,
            short_open_interest_usd=s0,
        ) != close_improves_balance(
            is_long=is_long, size_usd=size_usd, long_open_interest_usd=l1,
            short_open_interest_usd=s1,
        )  # fmt: skip
        slack = np.where(flips, size_usd * (dfee + _FLOAT_RTOL) + _FLOAT_RTOL, 0.0)
    return np.asarray(margin_usd - slack < 0.0, dtype=np.bool_)
