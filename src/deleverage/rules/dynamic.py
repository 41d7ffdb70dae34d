"""Dynamic risk parameters: margin rates that scale with volatility and open interest.

Venues raise margin requirements when markets get wild or crowded (BitMEX and Deribit risk
limits, dYdX v4's open-interest-scaled initial margin, Drift's IMF factor). Here a policy maps
the recent mark history and the open interest to a *multiplier* ``k`` applied to every tier's
maintenance rate and initial rate (``max_leverage / k``); the engine emits a
``RiskParamsChanged`` event whenever ``k`` changes, so a replay sees the same parameters.

A policy is any object with ``multiplier(ts_ns, marks, open_interest_notional) -> float``
(:class:`RiskParameterPolicy`); :class:`VolatilityScaledMargin` is the built-in one:

    k = clip( (sigma_realized / sigma_ref) ** a  x  (OI / OI_ref) ** b , k_min, k_max )

rounded to ``step`` so small wiggles do not churn parameters (docs/formulas.md, "Dynamic
margin").
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Annotated, Protocol, Self

import numpy as np
from pydantic import Field, model_validator

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
    returns = np.diff(np.log(prices))
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
