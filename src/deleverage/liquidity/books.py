"""Books with resilience: :class:`ConstantDepthBook` (linear) and :class:`PowerLawImpact`
(square-root law), on a shared base that refills consumed depth exponentially.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import (
    cast,
)

import numpy as np

from deleverage.errors import ValidationError
from deleverage.liquidity.model import (
    LN2,
    NS_PER_S,
    Fill,
    LiquidityState,
    _as_float,
    _check_max_move,
    _check_positive,
    _check_side,
    _check_size,
    _check_ts,
    linear_fill,
    power_law_fill,
)

# --------------------------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------------------------


class _ResilientBook:
    """Shared state and resilience: net consumed depth ``x`` and the time it refers to."""

    def __init__(self, *, half_life_s: float, ts_ns: int) -> None:
        self.half_life_s = _check_positive("half_life_s", half_life_s, allow_inf=True)
        self._consumed = 0.0
        self._ts_ns = _check_ts(ts_ns)

    # -- model-specific pieces ----------------------------------------------------------------

    def _fill(
        self, side: int, size: float, mid: float, consumed: float
    ) -> tuple[float, float, float, float]:
        raise NotImplementedError

    def _impact(self, consumed: float) -> float:
        raise NotImplementedError

    def _fillable(self, side: int, consumed: float, limit_offset: float) -> float:
        raise NotImplementedError

    def _consumed_bounds(self) -> tuple[float, float]:
        raise NotImplementedError

    # -- state --------------------------------------------------------------------------------

    @property
    def consumed_depth(self) -> float:
        """Net consumed depth ``x`` at the last update, base units (+ after buys)."""
        return self._consumed

    @property
    def ts_ns(self) -> int:
        """Time of the last update, int64 nanoseconds."""
        return self._ts_ns

    def _consumed_at(self, ts_ns: int) -> tuple[float, int]:
        ts = _check_ts(ts_ns)
        if ts < self._ts_ns:
            raise ValidationError(
                "ts_ns", ts, f"must not be before the model's last update ({self._ts_ns})"
            )
        if ts == self._ts_ns or self._consumed == 0.0:
            return self._consumed, ts
        dt_s = (ts - self._ts_ns) / NS_PER_S
        return self._consumed * math.exp(-LN2 * dt_s / self.half_life_s), ts

    def _fill_at(self, side: int, size: float, mid: float, ts_ns: int) -> tuple[Fill, float, int]:
        s = _check_side(side)
        q = _check_size(size)
        m = _check_positive("mid", mid)
        x0, ts = self._consumed_at(ts_ns)
        filled, vwap, last, x1 = self._fill(s, q, m, x0)
        fill = Fill(filled, vwap, last, filled * vwap, q - filled, self._impact(x1))
        return fill, x1, ts

    # -- LiquidityModel -----------------------------------------------------------------------

    def quote(self, side: int, size: float, mid: float, ts_ns: int) -> Fill:
        """Fill a market order would get at ``ts_ns``, without changing the state.

        Parameters
        ----------
        side
            ``+1`` buy, ``-1`` sell.
        size
            Base units (finite, >= 0).
        mid
            Exogenous mid price (quote per base, > 0).
        ts_ns
            Time (ns), not before the last update; consumed depth decays until then.

        Raises
        ------
        ValidationError
            On a bad side, size, mid or time.
        """
        return self._fill_at(side, size, mid, ts_ns)[0]

    def execute(self, side: int, size: float, mid: float, ts_ns: int) -> Fill:
        """Fill a market order and consume the depth it takes (arguments as :meth:`quote`)."""
        fill, x1, ts = self._fill_at(side, size, mid, ts_ns)
        self._consumed, self._ts_ns = x1, ts
        return fill

    def recover(self, ts_ns: int) -> None:
        """Let consumed depth decay until ``ts_ns``: ``x <- x exp(-ln 2 dt / half_life_s)``."""
        if type(ts_ns) is int and ts_ns == self._ts_ns:
            return  # at the last update already: nothing decays (the risk step's second call)
        self._consumed, self._ts_ns = self._consumed_at(ts_ns)

    def price_impact(self, ts_ns: int) -> float:
        """Relative displacement ``G(x)`` of the mid at ``ts_ns`` (state not changed)."""
        return self._impact(self._consumed_at(ts_ns)[0])

    def take_impact(self, ts_ns: int) -> float:
        """``float(price_impact(ts_ns))``, then, where it is not 0, the book back at rest
        there (:meth:`restore` of ``{"consumed_depth": 0.0, "ts_ns": ts_ns}``): the runner's
        cascade round moves the book's impact into its dislocation, twice a round. (A book
        that overrides either of those two overrides this too.)"""
        consumed, ts = self._consumed_at(ts_ns)
        impact = self._impact(consumed)
        if type(impact) is not float:
            impact = float(impact)
        if impact != 0.0:
            self.restore_consumed(0.0, ts)
        return impact

    def max_fillable(
        self, side: int, mid: float, worst_price: float, ts_ns: int | None = None
    ) -> float:
        """Base units a market order fills before its price passes ``worst_price``.

        A buy fills units priced at most ``worst_price``, a sell units priced at least
        ``worst_price`` (the bankruptcy price of a liquidation, say). Depth limits apply, so
        ``quote(side, max_fillable(...), ...)`` fills completely. ``ts_ns=None`` uses the state
        at the last update. The result is ``inf`` for a book that extrapolates without bound.
        """
        s = _check_side(side)
        m = _check_positive("mid", mid)
        limit = _as_float("worst_price", worst_price)
        if not limit >= 0.0:
            raise ValidationError("worst_price", worst_price, "must be a number >= 0")
        x0 = self._consumed if ts_ns is None else self._consumed_at(ts_ns)[0]
        return max(self._fillable(s, x0, limit / m - 1.0), 0.0)

    def snapshot(self) -> LiquidityState:
        """Mutable state: ``{"consumed_depth": x, "ts_ns": t}``."""
        return {"consumed_depth": self._consumed, "ts_ns": self._ts_ns}

    def restore(self, state: Mapping[str, object]) -> None:
        """Set the state from :meth:`snapshot` output (checked first, applied whole)."""
        # ``set(state) == {"consumed_depth", "ts_ns"}`` without building the set (the cascade
        # rounds restore a book twice a round)
        if len(state) != 2 or "consumed_depth" not in state or "ts_ns" not in state:
            raise ValidationError("state", sorted(state), "must have keys consumed_depth, ts_ns")
        raw = state["consumed_depth"]
        if type(raw) is float:
            consumed = raw
        else:
            consumed = float(raw) if isinstance(raw, int | float | np.floating) else math.nan
        low, high = self._consumed_bounds()
        if not low <= consumed <= high:
            raise ValidationError(
                "consumed_depth", raw, f"must be a number in [{low}, {high}] for this book"
            )
        ts = _check_ts(cast(int, state["ts_ns"]))
        self._consumed, self._ts_ns = consumed, ts

    def restore_consumed(self, consumed: float, ts_ns: int) -> None:
        """:meth:`restore` of ``{"consumed_depth": consumed, "ts_ns": ts_ns}`` with a float
        ``consumed`` (base units; ``ts_ns`` int64 nanoseconds), the same checks without the
        mapping: the batch round sets the depth its plan consumed once a round."""
        low, high = self._consumed_bounds()
        if not low <= consumed <= high:
            raise ValidationError(
                "consumed_depth", consumed, f"must be a number in [{low}, {high}] for this book"
            )
        self._consumed, self._ts_ns = consumed, _check_ts(ts_ns)


class ConstantDepthBook(_ResilientBook):
    """Constant depth per unit of relative price move: linear impact, closed-form VWAP.

    ``depth_per_pct`` base units rest in every 1 % of price on each side, so the price after
    consuming ``x`` is ``mid (1 + x / D)`` with ``D = 100 depth_per_pct``, and a market order of
    side ``s``, size ``q`` pays ``vwap = mid (1 + (x + s q / 2) / D)`` (see :func:`linear_fill`).
    The book holds depth up to a move of ``max_move`` (fraction, at most 1: a sell cannot push
    the price below zero); beyond it the order is left unfilled.

    Parameters
    ----------
    depth_per_pct
        Base units per 1 % price move (> 0).
    half_life_s
        Resilience half-life in seconds (> 0; ``math.inf`` for no recovery).
    max_move
        Largest relative price move the book can absorb, in ``(0, 1]``.
    ts_ns
        Time of the initial (untouched) state.

    Examples
    --------
    >>> book = ConstantDepthBook(depth_per_pct=10.0, half_life_s=30.0)
    >>> fill = book.execute(-1, 5.0, 100_000.0, 0)
    >>> round(fill.vwap, 6), round(fill.last_price, 6), round(book.price_impact(30 * 10**9), 6)
    (99750.0, 99500.0, -0.0025)
    """

    def __init__(
        self,
        *,
        depth_per_pct: float,
        half_life_s: float,
        max_move: float = 1.0,
        ts_ns: int = 0,
    ) -> None:
        self.depth_per_pct = _check_positive("depth_per_pct", depth_per_pct)
        self.max_move = _check_max_move(max_move)
        super().__init__(half_life_s=half_life_s, ts_ns=ts_ns)

    @property
    def depth(self) -> float:
        """``D``: base units per unit of relative price move (``100 x depth_per_pct``)."""
        return 100.0 * self.depth_per_pct

    def _fill(
        self, side: int, size: float, mid: float, consumed: float
    ) -> tuple[float, float, float, float]:
        return linear_fill(side, size, mid, self.depth, consumed, self.max_move)

    def _impact(self, consumed: float) -> float:
        return consumed / self.depth

    def _fillable(self, side: int, consumed: float, limit_offset: float) -> float:
        # units with s G(y) <= s limit: y <= s limit D, within the book's cap
        y_star = min(side * limit_offset * self.depth, self.max_move * self.depth)
        return y_star - side * consumed

    def _consumed_bounds(self) -> tuple[float, float]:
        cap = self.max_move * self.depth
        return -cap, cap


class PowerLawImpact(_ResilientBook):
    """Power-law (square-root) impact: ``impact = Y sigma (Q / V)^delta``.

    The book is the latent order book whose cumulative depth within a move ``u`` is
    ``V (u / (Y sigma))^(1 / delta)`` (quadratic for ``delta = 0.5``: Tóth et al. 2011's
    V-shaped latent liquidity). Consuming ``Q`` from rest moves the mid by ``Y sigma (Q /
    V)^delta`` and fills at ``mid (1 + s Y sigma (Q / V)^delta / (1 + delta))``
    (see :func:`power_law_fill`). As a metaorder's impact law it is calibrated on daily
    volatility and volume; here it prices a single sweep, a conservative reading.

    Parameters
    ----------
    y
        ``Y``, the impact prefactor (order one; > 0).
    sigma
        Daily volatility as a fraction (> 0).
    daily_volume
        ``V``, daily traded volume in base units (> 0).
    half_life_s
        Resilience half-life in seconds (> 0; ``math.inf`` for no recovery).
    delta
        Exponent in ``(0, 1]``; 0.5 is the square-root law, 1 a linear book.
    max_move
        Largest relative price move the book can absorb, in ``(0, 1]``.
    ts_ns
        Time of the initial (untouched) state.
    """

    def __init__(
        self,
        *,
        y: float,
        sigma: float,
        daily_volume: float,
        half_life_s: float,
        delta: float = 0.5,
        max_move: float = 1.0,
        ts_ns: int = 0,
    ) -> None:
        self.y = _check_positive("y", y)
        self.sigma = _check_positive("sigma", sigma)
        self.daily_volume = _check_positive("daily_volume", daily_volume)
        exponent = _as_float("delta", delta)
        if not 0.0 < exponent <= 1.0:
            raise ValidationError("delta", delta, "must be in (0, 1]")
        self.delta = exponent
        self.max_move = _check_max_move(max_move)
        super().__init__(half_life_s=half_life_s, ts_ns=ts_ns)

    @property
    def coefficient(self) -> float:
        """``k = Y sigma / V^delta``, so that ``G(x) = sign(x) k |x|^delta``."""
        return self.y * self.sigma / math.pow(self.daily_volume, self.delta)

    def _fill(
        self, side: int, size: float, mid: float, consumed: float
    ) -> tuple[float, float, float, float]:
        return power_law_fill(
            side, size, mid, self.coefficient, self.delta, consumed, self.max_move
        )

    def _impact(self, consumed: float) -> float:
        return math.copysign(self.coefficient * abs(consumed) ** self.delta, consumed)

    def _inverse(self, impact: float) -> float:
        return math.copysign((abs(impact) / self.coefficient) ** (1.0 / self.delta), impact)

    def _fillable(self, side: int, consumed: float, limit_offset: float) -> float:
        target = min(side * limit_offset, self.max_move)
        return self._inverse(target) - side * consumed

    def _consumed_bounds(self) -> tuple[float, float]:
        cap = self._inverse(self.max_move)
        return -cap, cap
