"""The book a market's forced orders walk, and depth that changes over time.

:class:`MarketDepth` builds the market's book from its :class:`~deleverage.sim.scenario.
LiquiditySpec` (constant depth, power law, or L2 from ``bookDepth`` snapshots) and, each step,

- swaps in the snapshot in force when the L2 book follows a snapshot series;
- scales the depth by ``phi`` (docs/formulas.md §17.5): the flow state ``s`` refills toward 1
  with half-life ``h`` and loses ``1 - exp(-q / flow_scale)`` of itself to a step's liquidation
  flow ``q``; the volatility factor is ``min(1, (vol_reference / rv)^elasticity)``;
  ``phi = max(floor, s v)``.

Pure pieces (:func:`refill`, :func:`volatility_factor`, :func:`realized_volatility`) carry the
formulas; the class only keeps state.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd

from deleverage import portable_math as pm
from deleverage.liquidity import (
    ConstantDepthBook,
    L2Book,
    LiquidityModel,
    PowerLawImpact,
    bundled_book_depth_sample,
    read_binance_book_depth,
)
from deleverage.prices import SECONDS_PER_YEAR
from deleverage.sim.depth_spec import DepthDynamicsSpec
from deleverage.sim.scenario import LiquiditySpec

FloatArray = npt.NDArray[np.float64]


def refill(state: float, dt_s: float, half_life_s: float) -> float:
    """``1 - (1 - s) 2^(-dt / h)``: the thinned share comes back with half-life ``h``.

    >>> refill(0.5, 60.0, 60.0)
    0.75
    """
    return 1.0 - (1.0 - state) * float(0.5 ** (dt_s / half_life_s))


def flow_thinning(state: float, flow_base: float, flow_scale: float) -> float:
    """``s exp(-q / flow_scale)``: liquidation flow ``q`` (base units) pulls quotes.

    >>> round(flow_thinning(1.0, 10.0, 10.0), 6)
    0.367879
    """
    return state * math.exp(-abs(flow_base) / flow_scale)


def realized_volatility(log_returns: FloatArray, dt_s: float) -> float:
    """Annualized realized volatility ``sqrt(sum r^2 / (n dt) x year)`` (0 with no returns)."""
    if len(log_returns) == 0:
        return 0.0
    return math.sqrt(float(np.mean(log_returns**2)) / dt_s * SECONDS_PER_YEAR)


def volatility_factor(realized: float, reference: float, elasticity: float) -> float:
    """``min(1, (reference / realized)^elasticity)``: market makers quote less as volatility
    rises past the reference.

    >>> volatility_factor(1.0, 0.5, 1.0)
    0.5
    """
    if elasticity == 0.0 or realized <= reference:
        return 1.0
    return float((reference / realized) ** elasticity)


class MarketDepth:
    """One market's book over time (see the module docstring)."""

    def __init__(
        self, spec: LiquiditySpec, *, exogenous: FloatArray, start_ns: int, dt_s: float
    ) -> None:
        self.spec = spec
        self.dynamics: DepthDynamicsSpec = spec.dynamics
        self._active = spec.dynamics.active  # the spec is frozen: read once, not every step
        self.dt_s = dt_s
        self._log_returns = np.diff(pm.log(exogenous))
        self._window = max(1, round(spec.dynamics.vol_window_s / dt_s))
        self.flow_state = 1.0
        self.multiplier = 1.0
        self._applied = 1.0
        self._series: list[tuple[int, L2Book]] = []
        self._current = -1
        self.book: LiquidityModel | None = self._build(exogenous, start_ns)
        self._base = self.book

    def _build(self, exogenous: FloatArray, start_ns: int) -> LiquidityModel | None:
        spec = self.spec
        if spec.model == "none":
            return None
        if spec.model == "constant_depth":
            return ConstantDepthBook(
                depth_per_pct=spec.depth_per_pct, half_life_s=spec.half_life_s,
                max_move=spec.max_move, ts_ns=start_ns,
            )  # fmt: skip
        if spec.model == "power_law":
            p = spec.power_law
            return PowerLawImpact(
                y=p.y, sigma=p.sigma_daily, daily_volume=p.daily_volume, delta=p.delta,
                half_life_s=spec.half_life_s, max_move=spec.max_move, ts_ns=start_ns,
            )  # fmt: skip
        l2 = spec.l2
        assert l2 is not None  # the spec requires it
        source = bundled_book_depth_sample() if l2.bundled else Path(str(l2.file))
        frame = read_binance_book_depth(source)
        times = sorted(frame["ts"].unique())
        chosen = times if l2.series else [self._snapshot_time(times, l2.at)]
        for when in chosen:
            ts = int(pd.Timestamp(when).value)
            k = min(max((ts - start_ns) // round(self.dt_s * 1e9), 0), len(exogenous) - 1)
            book = L2Book.from_binance_book_depth(
                frame, half_life_s=spec.half_life_s, at=pd.Timestamp(when),
                mid=float(exogenous[k]) if l2.placement == "band_mid" else None,
                placement=l2.placement, on_exhausted=l2.on_exhausted, ts_ns=start_ns,
            )  # fmt: skip
            self._series.append((ts, book))
        self._current = self._index_at(start_ns)
        return self._series[self._current][1]

    @staticmethod
    def _snapshot_time(times: list[object], at: str | None) -> object:
        if at is None:
            return times[0]
        target = pd.Timestamp(at).tz_localize(None) if pd.Timestamp(at).tzinfo else pd.Timestamp(at)
        earlier = [t for t in times if pd.Timestamp(t) <= target]
        return earlier[-1] if earlier else times[0]

    def _index_at(self, ts_ns: int) -> int:
        starts = [ts for ts, _ in self._series]
        return max(int(np.searchsorted(starts, ts_ns, side="right")) - 1, 0)

    @property
    def changes(self) -> bool:
        """Whether the book can change during the run (a snapshot series or dynamics)."""
        return len(self._series) > 1 or self._active

    def start_step(self, k: int, ts_ns: int) -> LiquidityModel | None:
        """The book for step ``k``: the snapshot in force, scaled by the depth multiplier."""
        if self.book is None or not (self._active or len(self._series) > 1):  # ``changes``
            return self.book
        swapped = False
        if len(self._series) > 1:
            current = self._index_at(ts_ns)
            if current != self._current:
                self._current, self._base, swapped = current, self._series[current][1], True
        d = self.dynamics
        if self._active and k > 0:
            self.flow_state = refill(self.flow_state, self.dt_s, d.refill_half_life_s)
            window = self._log_returns[max(0, k - self._window) : k]
            vol = volatility_factor(
                realized_volatility(window, self.dt_s), d.vol_reference, d.vol_elasticity
            )
            self.multiplier = max(d.floor, self.flow_state * vol)
        if swapped or abs(self.multiplier / self._applied - 1.0) > 1e-3:
            self.book = self._scaled(self.multiplier, ts_ns)
            self._applied = self.multiplier
        return self.book

    def end_step(self, flow_base: float) -> None:
        """The step's liquidation flow (base units) thins the book."""
        if self._active and flow_base:
            self.flow_state = flow_thinning(self.flow_state, flow_base, self.dynamics.flow_scale)

    def _scaled(self, phi: float, ts_ns: int) -> LiquidityModel:
        base = self._base
        spec = self.spec
        if isinstance(base, ConstantDepthBook):
            return ConstantDepthBook(
                depth_per_pct=spec.depth_per_pct * phi, half_life_s=spec.half_life_s,
                max_move=spec.max_move, ts_ns=ts_ns,
            )  # fmt: skip
        if isinstance(base, PowerLawImpact):
            p = spec.power_law
            return PowerLawImpact(
                y=p.y, sigma=p.sigma_daily, daily_volume=p.daily_volume * phi, delta=p.delta,
                half_life_s=spec.half_life_s, max_move=spec.max_move, ts_ns=ts_ns,
            )  # fmt: skip
        assert isinstance(base, L2Book)
        return L2Book(
            base.bid_prices, base.bid_sizes * phi, base.ask_prices, base.ask_sizes * phi,
            half_life_s=spec.half_life_s, mid=base.mid, on_exhausted=base.on_exhausted,
            ts_ns=ts_ns, source=base.source,
        )  # fmt: skip
