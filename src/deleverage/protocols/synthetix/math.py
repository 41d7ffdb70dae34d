"""Synthetix perps v3's margin, reward and liquidation-window arithmetic (pure, USD, float64).

Synthetix perps v3 (Synthetixio/synthetix-v3, ``markets/perps-market``) margins accounts
across markets; the LP pool (the core system's vaults) is the counterparty. The functions
follow ``PerpsMarketConfiguration.calculateRequiredMargins`` / ``maxLiquidationAmountInWindow``
/ ``numberOfLiquidationWindows`` / ``calculateFlagReward``,
``GlobalPerpsMarketConfiguration.keeperReward`` (with ``minimumKeeperRewardCap`` and
``maximumKeeperRewardCap``), ``PerpsAccount.getPossibleLiquidationReward`` and
``PerpsMarket.currentLiquidationCapacity``, and the fill price of ``AsyncOrder``
(docs/formulas.md, Synthetix perps v3).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = [
    "fill_price",
    "funding_rate",
    "keeper_reward",
    "liquidation_capacity",
    "max_liquidation_amount_in_window",
    "number_of_windows",
    "possible_liquidation_reward",
    "required_margins",
    "unrecorded_funding",
]

F64 = npt.NDArray[np.float64]


def fill_price(*, skew: float, size_delta: float, price: float, skew_scale: float) -> float:
    """The price an order of ``size_delta`` fills at: the mean of the premium-adjusted prices
    before and after it moves the skew, ``price x (1 + skew / skew_scale)`` and
    ``price x (1 + (skew + size_delta) / skew_scale)`` (quote per base)."""
    before = price * (1.0 + skew / skew_scale)
    after = price * (1.0 + (skew + size_delta) / skew_scale)
    return 0.5 * (before + after)


def funding_rate(
    *, last_rate: float, skew: float, skew_scale: float, max_velocity: float, elapsed_days: float
) -> float:
    """The funding rate now (per day): ``last rate + velocity x elapsed days`` with
    ``velocity = clamp(skew / skewScale, -1, 1) x maxFundingVelocity``
    (``PerpsMarket.currentFundingRate``, ``currentFundingVelocity``)."""
    velocity = min(max(skew / skew_scale, -1.0), 1.0) * max_velocity
    return last_rate + velocity * elapsed_days


def unrecorded_funding(
    *, last_rate: float, rate: float, elapsed_days: float, price: float
) -> float:
    """Funding per unit of size since the last record (quote per base):
    ``-(last rate + rate) / 2 x elapsed days x price`` (``PerpsMarket.unrecordedFunding``;
    it flows against the skew). A position accrues ``size x`` the change of this value."""
    return -0.5 * (last_rate + rate) * elapsed_days * price


def required_margins(
    size_abs: F64,
    price: F64 | float,
    *,
    skew_scale: float,
    initial_margin_ratio: float,
    minimum_initial_margin_ratio: float,
    maintenance_margin_scalar: float,
    minimum_position_margin: float,
) -> tuple[F64, F64]:
    """Initial and maintenance margin of positions (USD; 0 for a flat position).

    ``IMR = |size| / skewScale x initialMarginRatio + minimumInitialMarginRatio``,
    ``MMR = IMR x maintenanceMarginScalar``; margin = ``|size| x price x ratio +
    minimumPositionMargin``.
    """
    size_abs = np.asarray(size_abs, dtype=np.float64)
    imr = size_abs / skew_scale * initial_margin_ratio + minimum_initial_margin_ratio
    mmr = imr * maintenance_margin_scalar
    notional = size_abs * price
    live = size_abs > 0.0
    im = np.where(live, notional * imr + minimum_position_margin, 0.0)
    mm = np.where(live, notional * mmr + minimum_position_margin, 0.0)
    return im, mm


def max_liquidation_amount_in_window(
    *,
    maker_fee: float,
    taker_fee: float,
    skew_scale: float,
    accumulation_multiplier: float,
    window_s: float,
) -> float:
    """Base units liquidatable per window:
    ``(makerFee + takerFee) x skewScale x multiplier x maxSecondsInLiquidationWindow``."""
    return (maker_fee + taker_fee) * skew_scale * accumulation_multiplier * window_s


def number_of_windows(size_abs: F64, max_in_window: float) -> F64:
    """Windows needed to liquidate each size: ``ceil(|size| / max per window)`` (1 for any
    open size when the window is not limited)."""
    size_abs = np.asarray(size_abs, dtype=np.float64)
    if max_in_window <= 0.0:
        return np.where(size_abs > 0.0, 1.0, 0.0)
    return np.ceil(size_abs / max_in_window)


def keeper_reward(
    rewards: F64 | float,
    cost: F64 | float,
    available: F64 | float,
    *,
    min_keeper_reward_usd: float,
    min_keeper_profit_ratio: float,
    max_keeper_reward_usd: float,
    max_keeper_scaling_ratio: float,
) -> F64:
    """``min(max(minCap, rewards + cost), maxCap)`` (USD), where
    ``minCap = max(cost + minKeeperRewardUsd, cost x (1 + minKeeperProfitRatio))`` and
    ``maxCap = min(available x maxKeeperScalingRatio, maxKeeperRewardUsd)``, or
    ``maxKeeperRewardUsd`` when ``available`` is 0."""
    cost = np.asarray(cost, dtype=np.float64)
    available = np.asarray(available, dtype=np.float64)
    min_cap = np.maximum(cost + min_keeper_reward_usd, cost * (1.0 + min_keeper_profit_ratio))
    max_cap = np.where(
        available == 0.0,
        max_keeper_reward_usd,
        np.minimum(available * max_keeper_scaling_ratio, max_keeper_reward_usd),
    )
    return np.asarray(np.minimum(np.maximum(min_cap, rewards + cost), max_cap), dtype=np.float64)


def possible_liquidation_reward(
    *,
    flag_rewards: F64,
    collateral_reward: F64,
    flag_cost: F64,
    liquidate_cost: F64 | float,
    collateral_value: F64,
    windows: F64,
    guards: dict[str, float],
) -> F64:
    """What liquidating an account would pay its keepers (USD): the flag-and-first-window
    reward ``keeperReward(max(flag rewards, collateral reward), flag cost + liquidate cost,
    collateral value)`` plus ``keeperReward(0, liquidate cost, 0)`` for each further window."""
    first = keeper_reward(
        np.maximum(flag_rewards, collateral_reward),
        flag_cost + liquidate_cost,
        collateral_value,
        **guards,
    )
    later = keeper_reward(0.0, liquidate_cost, 0.0, **guards)
    return np.asarray(first + later * np.maximum(windows - 1.0, 0.0), dtype=np.float64)


def liquidation_capacity(
    timestamps_s: list[float],
    amounts: list[float],
    *,
    now_s: float,
    window_s: float,
    max_in_window: float,
) -> float:
    """Base units still liquidatable in the window ending now: ``max in window`` minus the
    amounts liquidated at times ``> now - window`` (``currentLiquidationCapacity``)."""
    start = now_s - window_s
    used = sum(a for t, a in zip(timestamps_s, amounts, strict=True) if t > start)
    return max(max_in_window - used, 0.0)
