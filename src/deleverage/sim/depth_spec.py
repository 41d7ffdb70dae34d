"""Scenario tables of the book's shape and of depth that changes (sub-models of
``[markets.liquidity]``): the power-law and L2 books, and depth that thins with realized
volatility and liquidation flow and refills (docs/formulas.md §17.5)."""

from __future__ import annotations

from typing import Annotated, Literal, Self

from pydantic import Field, model_validator

from deleverage.spec import _Frozen

PositiveFloat = Annotated[float, Field(gt=0, allow_inf_nan=False)]
NonNegFloat = Annotated[float, Field(ge=0, allow_inf_nan=False)]


class PowerLawBookSpec(_Frozen):
    """Square-root-law book (:class:`deleverage.liquidity.PowerLawImpact`): impact
    ``y sigma_daily (Q / daily_volume)^delta``."""

    y: PositiveFloat = 1.0
    sigma_daily: PositiveFloat = 0.03
    daily_volume: PositiveFloat = 100_000.0
    delta: Annotated[float, Field(gt=0, le=1, allow_inf_nan=False)] = 0.5


class L2BookSpec(_Frozen):
    """An L2 book from Binance ``bookDepth`` snapshots: the bundled 2025-10-10 BTCUSDT sample
    (``bundled = true``) or a ``file``. ``series = true``: the book follows the snapshots over
    time (the last snapshot at or before each step; the first before it); otherwise the one at
    ``at`` (ISO time; default the first). Levels sit at band midpoints (``band_mid``, robust to
    the sample's crossed 21:30 snapshot) or at the bands' average prices (``vwap``)."""

    bundled: bool = False
    file: str | None = None
    series: bool = False
    at: str | None = None
    placement: Literal["band_mid", "vwap"] = "band_mid"
    on_exhausted: Literal["unfilled", "extrapolate"] = "extrapolate"

    @model_validator(mode="after")
    def _one_source(self) -> Self:
        if self.bundled == (self.file is not None):
            raise ValueError("give exactly one of `bundled = true` or `file`")
        return self


class DepthDynamicsSpec(_Frozen):
    """Depth that thins and refills: the book's depth is its base depth times ``phi`` in
    ``[floor, 1]``, ``phi = max(floor, s v)``:

    - ``s`` (flow): each step's liquidation flow ``q`` (base units) removes a share
      ``1 - exp(-q / flow_scale)`` of what is left (market makers pulling quotes after being
      run over); it refills toward 1 with half-life ``refill_half_life_s``;
    - ``v`` (volatility): ``min(1, (vol_reference / rv)^vol_elasticity)``, ``rv`` the annualized
      realized volatility of the exogenous price over ``vol_window_s``.

    ``flow_scale = inf`` and ``vol_elasticity = 0`` (the defaults): depth does not change.
    """

    flow_scale: Annotated[float, Field(gt=0)] = float("inf")
    refill_half_life_s: PositiveFloat = 300.0
    vol_elasticity: NonNegFloat = 0.0
    vol_reference: PositiveFloat = 0.5
    vol_window_s: PositiveFloat = 300.0
    floor: Annotated[float, Field(gt=0, le=1, allow_inf_nan=False)] = 0.05

    @property
    def active(self) -> bool:
        return self.flow_scale != float("inf") or self.vol_elasticity > 0.0
