"""Dynamic risk parameters: margin rates that scale with volatility and open interest.

Venues raise margin requirements when markets get wild or crowded (BitMEX and Deribit risk
limits, dYdX v4's open-interest-scaled initial margin, Drift's IMF factor). Here a policy maps
the recent mark history and the open interest to a *multiplier* ``k`` applied to every tier's
maintenance rate and initial rate (``max_leverage / k``); the engine emits a
``RiskParamsChanged`` event whenever ``k`` changes, so a replay sees the same parameters.

A policy is any object with ``multiplier(ts_ns, marks, open_interest_notional) -> float``
(:class:`RiskParameterPolicy`), and optionally ``spec_for(base, k) -> MarketSpec`` when ``k``
moves more than the margin rates (:class:`DynamicLevers` through the simulator's
:mod:`deleverage.sim.levers`: leverage, position limits, liquidation fee, depth and implied
volatility); :class:`VolatilityScaledMargin` is the plain one:

    k = clip( (sigma_realized / sigma_ref) ** a  x  (OI / OI_ref) ** b , k_min, k_max )

rounded to ``step`` so small wiggles do not churn parameters (docs/formulas.md, "Dynamic
margin").
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Annotated, Literal, Protocol, Self

import numpy as np
from pydantic import Field, model_validator

from deleverage import portable_math as pm
from deleverage.spec import MarginTier, MarketSpec, NonNegativeFloat, PositiveFloat, _Frozen

SECONDS_PER_YEAR = 365 * 24 * 3600


class RiskParameterPolicy(Protocol):
    """A pluggable rule for the margin multiplier of a market."""

    @property
    def window_s(self) -> float:
        """Seconds of mark history the policy looks at."""
        ...

    def multiplier(
        self, ts_ns: int, marks: Sequence[tuple[int, float]], open_interest_notional: float
    ) -> float:
        """Multiplier ``k >= 0`` of the base margin rates given recent marks ``(ts_ns, price)``."""
        ...


class VolatilityScaledMargin(_Frozen):
    """Scale margin rates with realized volatility and open interest, within bounds.

    Parameters
    ----------
    window_s
        Seconds of mark history for the realized volatility.
    reference_volatility
        Annualized volatility at which the volatility factor is 1.
    volatility_exponent
        ``a``: 1 scales margin in proportion to volatility, 0 ignores it.
    reference_open_interest
        Open-interest notional (quote, one side) at which the OI factor is 1; ``None`` ignores OI.
    open_interest_exponent
        ``b``: 0.5 grows margin with the square root of open interest.
    min_multiplier, max_multiplier
        Bounds of ``k``.
    step
        ``k`` is rounded to a multiple of ``step``.
    """

    window_s: PositiveFloat = 3600.0
    reference_volatility: PositiveFloat = 0.6
    volatility_exponent: Annotated[float, Field(ge=0, le=4, allow_inf_nan=False)] = 1.0
    reference_open_interest: PositiveFloat | None = None
    open_interest_exponent: Annotated[float, Field(ge=0, le=4, allow_inf_nan=False)] = 0.5
    min_multiplier: PositiveFloat = 1.0
    max_multiplier: PositiveFloat = 3.0
    step: NonNegativeFloat = 0.05

    @model_validator(mode="after")
    def _bounds(self) -> Self:
        if self.max_multiplier < self.min_multiplier:
            raise ValueError(
                f"max_multiplier must be >= min_multiplier ({self.min_multiplier}), "
                f"was {self.max_multiplier}"
            )
        return self

    def multiplier(
        self, ts_ns: int, marks: Sequence[tuple[int, float]], open_interest_notional: float
    ) -> float:
        """``k`` from the marks of the last ``window_s`` seconds and the open interest."""
        k = 1.0
        vol = realized_volatility(marks, ts_ns=ts_ns, window_s=self.window_s)
        if self.volatility_exponent > 0 and vol is not None:
            k *= (vol / self.reference_volatility) ** self.volatility_exponent
        if self.reference_open_interest is not None and self.open_interest_exponent > 0:
            ratio = max(open_interest_notional, 0.0) / self.reference_open_interest
            k *= ratio**self.open_interest_exponent
        k = min(max(k, self.min_multiplier), self.max_multiplier)
        if self.step > 0:
            k = round(k / self.step) * self.step
        return float(k)


def realized_volatility(
    marks: Sequence[tuple[int, float]], *, ts_ns: int, window_s: float
) -> float | None:
    """Annualized realized volatility of the marks within ``window_s`` before ``ts_ns``.

    ``sigma = std(log returns) x sqrt(seconds_per_year / mean step)`` (365-day year); ``None``
    with fewer than three marks in the window.
    """
    start = ts_ns - int(window_s * 1e9)
    pts = [(t, p) for t, p in marks if t >= start]
    if len(pts) < 3:
        return None
    times = np.array([t for t, _ in pts], dtype=np.float64) / 1e9
    prices = np.array([p for _, p in pts], dtype=np.float64)
    returns = np.diff(pm.log(prices))
    dt = float(np.mean(np.diff(times)))
    if dt <= 0:
        return None
    return float(np.std(returns, ddof=1) * math.sqrt(SECONDS_PER_YEAR / dt))


def scale_spec(base: MarketSpec, k: float) -> MarketSpec:
    """``base`` with maintenance rates times ``k`` and maximum leverage divided by ``k``.

    Leverage is floored at 1 and maintenance capped below the initial rate, so the result is
    a valid spec for any ``k > 0``.
    """
    tiers = []
    for tier in base.tiers:
        leverage = max(1.0, tier.max_leverage / k)
        maintenance = min(tier.maintenance_rate * k, 0.999 / leverage)
        tiers.append(
            MarginTier(
                notional_floor=tier.notional_floor,
                max_leverage=leverage,
                maintenance_rate=maintenance,
            )
        )
    # Keep the table monotone after the caps.
    for i in range(1, len(tiers)):
        prev, cur = tiers[i - 1], tiers[i]
        if cur.max_leverage > prev.max_leverage or cur.maintenance_rate < prev.maintenance_rate:
            tiers[i] = MarginTier(
                notional_floor=cur.notional_floor,
                max_leverage=min(cur.max_leverage, prev.max_leverage),
                maintenance_rate=max(cur.maintenance_rate, prev.maintenance_rate),
            )
    data = base.model_dump()
    data["tiers"] = [t.model_dump() for t in tiers]
    return MarketSpec.from_mapping(data)


# ---------------------------------------------------------------------------- every lever
Exponent = Annotated[float, Field(ge=0, le=4, allow_inf_nan=False)]


class DynamicLevers(_Frozen):
    """Every dynamic risk lever of one market, as a scenario names them (``[markets.dynamic]``).

    One stress multiplier ``k`` is read from the market's state each mark:

        k = clip( (sigma / sigma_ref) ** a  x  (OI / OI_ref) ** b  x  (1 / depth_ratio) ** c,
                  k_min, k_max ), rounded to ``step``

    where ``sigma`` is the realized volatility of the marks over ``window_s``
    (``volatility = "realized"``), or the implied volatility of the ``implied_volatility``
    schedule at the current time (``"implied"``: ``(t_s, sigma)`` pairs, seconds since the run's
    start, linear in between and flat beyond the ends), or ignored (``"none"``); ``OI`` is the
    open interest (quote, one side) and ``depth_ratio`` the book's depth over its base depth
    (1: a rested book; 0.5: half the depth, which raises ``k`` by ``2 ** c``).

    ``k`` then moves each lever by its own exponent (0 leaves the lever fixed):
    maintenance rates ``x k ** e_mm``, maximum leverage ``/ k ** e_lev`` (floored at 1),
    the tiers' notional floors ``/ k ** e_pos`` (position limits that tighten: a position
    reaches the next tier, and its lower leverage, at a smaller size), and the liquidation fee
    ``x k ** e_fee`` (capped at ``liquidation_fee_cap``). With the default exponents this is
    :class:`VolatilityScaledMargin` (:func:`scale_spec`). docs/formulas.md, "Dynamic levers".
    """

    window_s: PositiveFloat = 3600.0
    volatility: Literal["realized", "implied", "none"] = "realized"
    implied_volatility: tuple[tuple[NonNegativeFloat, PositiveFloat], ...] = ()
    reference_volatility: PositiveFloat = 0.6
    volatility_exponent: Exponent = 1.0
    reference_open_interest: PositiveFloat | None = None
    open_interest_exponent: Exponent = 0.5
    depth_exponent: Exponent = 0.0
    min_multiplier: PositiveFloat = 1.0
    max_multiplier: PositiveFloat = 3.0
    step: NonNegativeFloat = 0.05
    maintenance_exponent: Exponent = 1.0
    leverage_exponent: Exponent = 1.0
    position_limit_exponent: Exponent = 0.0
    liquidation_fee_exponent: Exponent = 0.0
    liquidation_fee_cap: Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)] = 0.05

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.max_multiplier < self.min_multiplier:
            raise ValueError(
                f"max_multiplier must be >= min_multiplier ({self.min_multiplier}), "
                f"was {self.max_multiplier}"
            )
        if self.volatility == "implied" and not self.implied_volatility:
            raise ValueError(
                'implied_volatility must list (t_s, sigma) pairs when volatility = "implied", '
                "was empty"
            )
        times = [t for t, _ in self.implied_volatility]
        if any(b <= a for a, b in itertools.pairwise(times)):
            raise ValueError(f"implied_volatility times must increase, were {times}")
        return self


def implied_volatility_at(schedule: Sequence[tuple[float, float]], t_s: float) -> float:
    """The schedule's annualized volatility at ``t_s`` (linear between points, flat beyond)."""
    times = np.array([t for t, _ in schedule], dtype=np.float64)
    values = np.array([v for _, v in schedule], dtype=np.float64)
    return float(np.interp(t_s, times, values))


def lever_multiplier(
    levers: DynamicLevers,
    *,
    volatility: float | None,
    open_interest_notional: float,
    depth_ratio: float,
) -> float:
    """``k`` of :class:`DynamicLevers` from the market's state (``volatility`` None: no factor;
    ``depth_ratio`` the book's depth over its base depth, > 0)."""
    k = 1.0
    if levers.volatility != "none" and volatility is not None and levers.volatility_exponent > 0:
        k *= (volatility / levers.reference_volatility) ** levers.volatility_exponent
    if levers.reference_open_interest is not None and levers.open_interest_exponent > 0:
        ratio = max(open_interest_notional, 0.0) / levers.reference_open_interest
        k *= ratio**levers.open_interest_exponent
    if levers.depth_exponent > 0 and depth_ratio > 0:
        k *= (1.0 / depth_ratio) ** levers.depth_exponent
    k = min(max(k, levers.min_multiplier), levers.max_multiplier)
    if levers.step > 0:
        k = round(k / levers.step) * levers.step
    return float(k)


def levered_spec(base: MarketSpec, k: float, levers: DynamicLevers) -> MarketSpec:
    """``base`` with every lever of ``levers`` moved by the multiplier ``k`` (see
    :class:`DynamicLevers`); maintenance stays below the initial rate and the tier table
    monotone, as in :func:`scale_spec`."""
    k_mm = k**levers.maintenance_exponent
    k_lev = k**levers.leverage_exponent
    k_pos = k**levers.position_limit_exponent
    tiers = []
    for tier in base.tiers:
        leverage = max(1.0, tier.max_leverage / k_lev)
        maintenance = min(tier.maintenance_rate * k_mm, 0.999 / leverage)
        tiers.append(
            MarginTier(
                notional_floor=tier.notional_floor / k_pos,
                max_leverage=leverage,
                maintenance_rate=maintenance,
            )
        )
    for i in range(1, len(tiers)):
        prev, cur = tiers[i - 1], tiers[i]
        if cur.max_leverage > prev.max_leverage or cur.maintenance_rate < prev.maintenance_rate:
            tiers[i] = MarginTier(
                notional_floor=cur.notional_floor,
                max_leverage=min(cur.max_leverage, prev.max_leverage),
                maintenance_rate=max(cur.maintenance_rate, prev.maintenance_rate),
            )
    data = base.model_dump()
    data["tiers"] = [t.model_dump() for t in tiers]
    if levers.liquidation_fee_exponent > 0:
        scaled = base.liquidation_fee_rate * k**levers.liquidation_fee_exponent
        data["liquidation_fee_rate"] = min(
            scaled, max(levers.liquidation_fee_cap, base.liquidation_fee_rate)
        )
    return MarketSpec.from_mapping(data)
