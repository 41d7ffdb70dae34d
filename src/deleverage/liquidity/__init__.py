"""Liquidity models: what a market order pays, how far it moves the price, how the book recovers.

A forced order (a liquidation) does not fill at the mark price: it walks the order book, level
after level, and each unit fills at a worse price than the one before. This module models the
outside liquidity a venue's forced orders hit.

**One state variable.** Every model here is a *supply curve in net consumed depth*. Let ``x`` be
the depth consumed so far, in base units, signed: ``x > 0`` after net buying (asks taken),
``x < 0`` after net selling. The book's shape gives the relative displacement ``G(x)`` of the
price (``G(0) = 0``, ``G`` non-decreasing), and a market order of side ``s`` (``+1`` buy, ``-1``
sell) and size ``q`` fills its units at ``p(y) = mid (1 + touch_s + G(y))`` for ``y`` from
``x`` to ``x + s q``, where ``mid`` is the *exogenous* (unimpacted) mid price and ``touch_s``
is the half-spread on that side (zero for the analytic models). Hence

    vwap = mid (1 + touch_s + (1 / (s q)) ∫_x^{x + s q} G(y) dy),   impact = G(x).

This is the Obizhaeva-Wang (2013) limit-order-book model with the general shape of Alfonsi,
Fruth & Schied (2010), both sides joined into one curve: the book shifts with the price, so a
buy after a sell walks back up the displaced region, and a round trip at one instant costs the
spread and nothing more. ``price_impact`` is ``G(x)``: the simulator moves the mark by it,
``mark = exogenous price x (1 + impact)``.

**Resilience.** Consumed depth refills toward the base book exponentially (Obizhaeva-Wang's
resilience, Alfonsi-Fruth-Schied's "volume impact" recovery):
``x(t + dt) = x(t) exp(-ln 2 dt / half_life_s)``. After one half-life half the consumed depth
remains; for the linear book that is half the impact, for the power law ``2^-delta`` of it.

**Models.**

- :class:`ConstantDepthBook`: ``depth_per_pct`` base units per 1 % of price, so
  ``G(x) = x / D`` with ``D = 100 depth_per_pct`` and ``vwap = mid (1 + (x + s q / 2) / D)``.
- :class:`PowerLawImpact`: ``G(x) = sign(x) Y sigma (|x| / V)^delta``, the square-root law of
  market impact for ``delta = 0.5`` (Tóth et al. 2011; Donier & Bonart 2015 for Bitcoin).
- :class:`L2Book`: explicit price levels per side, walked level by level; loads from CSV,
  Parquet, a DataFrame, or a Binance ``bookDepth`` snapshot
  (:meth:`L2Book.from_binance_book_depth`).
  Levels are stored relative to the snapshot's mid, so a quote at another mid scales them.

All three implement :class:`LiquidityModel`. The analytic models also expose pure functions:
vectorized formulas (:func:`linear_vwap`, :func:`linear_size_for_price_move`,
:func:`power_law_impact`, :func:`power_law_vwap`, :func:`power_law_size_for_price_move`) and
scalar fill kernels with compiled twins for the cascade's hot loop (:func:`linear_fill`,
:data:`linear_fill_nb`, :func:`power_law_fill`, :data:`power_law_fill_nb`).

Formulas, sources and worked examples: docs/formulas.md, section "Liquidity".
"""

from __future__ import annotations

import math
import operator
import os
from bisect import bisect_right
from collections.abc import Callable, Mapping
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import (
    Any,
    Final,
    Literal,
    NamedTuple,
    Protocol,
    TypedDict,
    TypeVar,
    cast,
    runtime_checkable,
)

import numpy as np
import numpy.typing as npt
import pandas as pd
from numba import njit

from deleverage.errors import DataError, ValidationError

FloatArray = npt.NDArray[np.float64]
ArrayLike = npt.ArrayLike

#: What an :class:`L2Book` does with the part of an order beyond its last level.
Exhaustion = Literal["unfilled", "extrapolate"]
#: Where :meth:`L2Book.from_binance_book_depth` puts each percentage band's depth.
BandPlacement = Literal["vwap", "band_mid"]

LN2: Final = math.log(2.0)
#: Float dust, relative to the order size, that an L2 walk absorbs into the level it ends in.
_DUST_RTOL: Final = 1e-12
NS_PER_S: Final = 1_000_000_000
BUY: Final = 1
SELL: Final = -1

_F = TypeVar("_F", bound=Callable[..., Any])


def _njit(function: _F) -> _F:
    # numba is untyped for mypy: keep the compiled function's signature.
    return cast(_F, njit(cache=True)(function))


class Fill(NamedTuple):
    """Result of a market order against a liquidity model (quote or execution).

    Attributes
    ----------
    size
        Base units filled (>= 0).
    vwap
        Volume-weighted average fill price ``notional / size``; the touch price (where the next
        unit would fill) when nothing filled.
    last_price
        Price of the last, worst unit filled (highest for a buy, lowest for a sell).
    notional
        Quote paid (buy) or received (sell): ``size x vwap``.
    unfilled
        Base units the book could not fill: ``size + unfilled`` is the size requested.
    impact
        The model's price impact (relative displacement of the mid) right after the fill.
    """

    size: float
    vwap: float
    last_price: float
    notional: float
    unfilled: float
    impact: float

    @property
    def requested(self) -> float:
        """Size requested: filled plus unfilled."""
        return self.size + self.unfilled


class LiquidityState(TypedDict):
    """Mutable state of a liquidity model (:meth:`LiquidityModel.snapshot`)."""

    consumed_depth: float  # net base units consumed, + after buys; decays toward 0
    ts_ns: int  # time the state refers to


@runtime_checkable
class LiquidityModel(Protocol):
    """What the liquidation engine and the cascade simulator need from outside liquidity.

    ``side`` is ``+1`` (buy, walks the asks, prices at or above mid) or ``-1`` (sell). ``size``
    is in base units, ``mid`` the exogenous mid price in quote per base, ``ts_ns`` the time in
    int64 nanoseconds, never before the model's last update.
    """

    half_life_s: float

    def quote(self, side: int, size: float, mid: float, ts_ns: int) -> Fill:
        """Fill of a market order of ``size`` at time ``ts_ns``; the state is not changed."""
        ...

    def execute(self, side: int, size: float, mid: float, ts_ns: int) -> Fill:
        """Fill a market order: recover to ``ts_ns``, then consume the depth it takes."""
        ...

    def recover(self, ts_ns: int) -> None:
        """Let consumed depth refill until ``ts_ns``: ``x <- x exp(-ln 2 dt / half_life_s)``."""
        ...

    def price_impact(self, ts_ns: int) -> float:
        """Relative displacement of the mid at ``ts_ns`` caused by consumed depth."""
        ...

    def max_fillable(
        self, side: int, mid: float, worst_price: float, ts_ns: int | None = None
    ) -> float:
        """Base units that fill before the price passes ``worst_price`` (may be ``inf``)."""
        ...

    def snapshot(self) -> LiquidityState:
        """Mutable state as a small dict, for replay and sweeps."""
        ...

    def restore(self, state: Mapping[str, object]) -> None:
        """Set the mutable state from a :meth:`snapshot`."""
        ...


# --------------------------------------------------------------------------------------------
# Pure formulas (vectorized)
# --------------------------------------------------------------------------------------------


def _f64(value: ArrayLike) -> FloatArray:
    return np.asarray(value, dtype=np.float64)


def decay_factor(dt_s: ArrayLike, half_life_s: ArrayLike) -> FloatArray:
    """Fraction of consumed depth left after ``dt_s`` seconds: ``exp(-ln 2 dt / half_life)``.

    ``half_life_s = inf`` means no recovery (factor 1).
    """
    return np.exp(-LN2 * _f64(dt_s) / _f64(half_life_s))


def linear_vwap(
    side: ArrayLike, size: ArrayLike, mid: ArrayLike, depth: ArrayLike, consumed: ArrayLike = 0.0
) -> FloatArray:
    """VWAP of a market order on a constant-depth book (no depth limit).

    ``vwap = mid (1 + (x + s q / 2) / D)``: the average of the linear price schedule
    ``p(y) = mid (1 + y / D)`` over ``y`` from ``x`` to ``x + s q``.

    Parameters
    ----------
    side
        ``+1`` buy, ``-1`` sell.
    size
        Order size ``q`` in base units (>= 0).
    mid
        Exogenous mid price.
    depth
        ``D``: base units per unit of relative price move (``100 x depth_per_pct``).
    consumed
        Net consumed depth ``x`` before the order (base units, + after buys).

    Examples
    --------
    >>> float(linear_vwap(1, 5.0, 100_000.0, 1_000.0))
    100250.0
    """
    s, q, x = _f64(side), _f64(size), _f64(consumed)
    return _f64(mid) * (1.0 + (x + 0.5 * s * q) / _f64(depth))


def linear_last_price(
    side: ArrayLike, size: ArrayLike, mid: ArrayLike, depth: ArrayLike, consumed: ArrayLike = 0.0
) -> FloatArray:
    """Price of the last unit of an order on a constant-depth book: ``mid (1 + (x + s q) / D)``."""
    s, q, x = _f64(side), _f64(size), _f64(consumed)
    return _f64(mid) * (1.0 + (x + s * q) / _f64(depth))


def linear_size_for_price_move(move: ArrayLike, depth: ArrayLike) -> FloatArray:
    """Base units that move a constant-depth book's price by ``move`` (relative): ``D |move|``.

    The inverse of ``G(x) = x / D``; it does not depend on the consumed depth.
    """
    return np.abs(_f64(move)) * _f64(depth)


def power_law_impact(
    size: ArrayLike,
    *,
    y: ArrayLike,
    sigma: ArrayLike,
    daily_volume: ArrayLike,
    delta: ArrayLike = 0.5,
) -> FloatArray:
    """Square-root (power-law) market impact: ``I(Q) = Y sigma (Q / V)^delta``.

    ``sigma`` is the daily volatility (fraction), ``V`` the daily volume (base units), ``Y`` a
    constant of order one; ``delta = 0.5`` is the square-root law (Tóth et al. 2011, Phys. Rev.
    X 1, 021006). Quadrupling ``Q`` doubles the impact.

    Examples
    --------
    >>> round(float(power_law_impact(100.0, y=1.0, sigma=0.02, daily_volume=10_000.0)), 12)
    0.002
    """
    q = np.abs(_f64(size))
    return _f64(y) * _f64(sigma) * (q / _f64(daily_volume)) ** _f64(delta)


def _power_law_coefficient(y: ArrayLike, sigma: ArrayLike, v: ArrayLike, d: ArrayLike) -> Any:
    return _f64(y) * _f64(sigma) / _f64(v) ** _f64(d)


def power_law_vwap(
    side: ArrayLike,
    size: ArrayLike,
    mid: ArrayLike,
    *,
    y: ArrayLike,
    sigma: ArrayLike,
    daily_volume: ArrayLike,
    delta: ArrayLike = 0.5,
    consumed: ArrayLike = 0.0,
) -> FloatArray:
    """VWAP of a market order on the power-law book (no depth limit).

    With ``G(x) = sign(x) k |x|^delta``, ``k = Y sigma / V^delta`` and its antiderivative
    ``F(x) = k |x|^(1 + delta) / (1 + delta)``:
    ``vwap = mid (1 + (F(x + s q) - F(x)) / (s q))``; for ``q = 0`` it is ``mid (1 + G(x))``.
    From rest (``x = 0``) this is ``mid (1 + s I(q) / (1 + delta))``: the average fill lies at
    ``1 / (1 + delta)`` (two thirds for the square root) of the final impact.
    """
    d = _f64(delta)
    k = _power_law_coefficient(y, sigma, daily_volume, d)
    s, q, x0 = _f64(side), _f64(size), _f64(consumed)
    x1 = x0 + s * q

    def g(x: FloatArray) -> FloatArray:
        return np.asarray(np.sign(x) * k * np.abs(x) ** d, dtype=np.float64)

    def f(x: FloatArray) -> FloatArray:
        return np.asarray(k * np.abs(x) ** (1.0 + d) / (1.0 + d), dtype=np.float64)

    zero = q == 0.0
    step = np.where(zero, 1.0, s * q)
    average = np.where(zero, g(x0), (f(x1) - f(x0)) / step)
    return _f64(mid) * (1.0 + average)


def power_law_size_for_price_move(
    move: ArrayLike,
    *,
    y: ArrayLike,
    sigma: ArrayLike,
    daily_volume: ArrayLike,
    delta: ArrayLike = 0.5,
    consumed: ArrayLike = 0.0,
) -> FloatArray:
    """Base units that move the power-law book's impact from ``G(x)`` to ``G(x) + move``.

    ``size = |G^-1(G(x) + move) - x|`` with ``G^-1(g) = sign(g) (|g| / k)^(1 / delta)``. From
    rest, ``size = V (|move| / (Y sigma))^(1 / delta)``: the inverse of the square-root law.
    """
    d = _f64(delta)
    k = _power_law_coefficient(y, sigma, daily_volume, d)
    x0 = _f64(consumed)
    target = np.sign(x0) * k * np.abs(x0) ** d + _f64(move)
    x1 = np.sign(target) * (np.abs(target) / k) ** (1.0 / d)
    return np.asarray(np.abs(x1 - x0), dtype=np.float64)


# --------------------------------------------------------------------------------------------
# Scalar fill kernels (plain Python, and compiled with numba for the cascade's hot loop)
# --------------------------------------------------------------------------------------------


def linear_fill(
    side: int, size: float, mid: float, depth: float, consumed: float, max_move: float
) -> tuple[float, float, float, float]:
    """Fill a market order on a constant-depth book limited to ``|G| <= max_move``.

    In the order's direction, ``y = s x``; the book holds ``max_move D - y`` more units, so
    ``filled = min(q, max_move D - y)``, ``y' = y + filled`` and

        vwap = mid (1 + s (y + y') / (2 D)),   last = mid (1 + s y' / D).

    Returns
    -------
    tuple of float
        ``(filled, vwap, last_price, consumed_after)``; with nothing filled both prices are the
        touch ``mid (1 + x / D)``.
    """
    y0 = side * consumed
    cap = max_move * depth
    room = cap - y0
    if room <= 0.0:
        filled = 0.0
        y1 = y0
    elif size < room:
        filled = size
        y1 = y0 + size
    else:
        filled = room
        y1 = cap
    vwap = mid * (1.0 + side * (y0 + y1) / (2.0 * depth))
    last = mid * (1.0 + side * y1 / depth)
    return filled, vwap, last, side * y1


def power_law_fill(
    side: int,
    size: float,
    mid: float,
    coefficient: float,
    delta: float,
    consumed: float,
    max_move: float,
) -> tuple[float, float, float, float]:
    """Fill a market order on the power-law book limited to ``|G| <= max_move``.

    ``G(y) = sign(y) k |y|^delta`` with ``k = coefficient = Y sigma / V^delta``; in the order's
    direction ``y = s x``, the book ends at ``y_max = (max_move / k)^(1 / delta)``,
    ``filled = min(q, y_max - y)``, ``y' = y + filled``, and with ``F(y) = k |y|^(1+delta) /
    (1 + delta)``

        vwap = mid (1 + s (F(y') - F(y)) / (y' - y)),   last = mid (1 + s G(y')).

    Returns
    -------
    tuple of float
        ``(filled, vwap, last_price, consumed_after)``.
    """
    y0 = side * consumed
    cap = (max_move / coefficient) ** (1.0 / delta)
    room = cap - y0
    if room <= 0.0:
        filled = 0.0
        y1 = y0
    elif size < room:
        filled = size
        y1 = y0 + size
    else:
        filled = room
        y1 = cap
    g0 = math.copysign(coefficient * abs(y0) ** delta, y0)
    g1 = math.copysign(coefficient * abs(y1) ** delta, y1)
    if y1 > y0:
        f0 = coefficient * abs(y0) ** (1.0 + delta) / (1.0 + delta)
        f1 = coefficient * abs(y1) ** (1.0 + delta) / (1.0 + delta)
        # the average of a non-decreasing G lies in [G(y), G(y')]; clamp float cancellation
        average = min(max((f1 - f0) / (y1 - y0), g0), g1)
    else:
        average = g0
    return filled, mid * (1.0 + side * average), mid * (1.0 + side * g1), side * y1


#: :func:`linear_fill` compiled with ``numba.njit(cache=True)``.
linear_fill_nb = _njit(linear_fill)
#: :func:`power_law_fill` compiled with ``numba.njit(cache=True)``.
power_law_fill_nb = _njit(power_law_fill)


# --------------------------------------------------------------------------------------------
# Argument checks
# --------------------------------------------------------------------------------------------


def _check_side(side: int) -> int:
    if side == 1 or side == -1:
        return int(side)
    raise ValidationError("side", side, "must be +1 (buy) or -1 (sell)")


def _as_float(field: str, value: object) -> float:
    try:
        return float(cast(float, value))
    except (TypeError, ValueError):
        raise ValidationError(field, value, "must be a number") from None


def _check_size(size: float) -> float:
    value = _as_float("size", size)
    if not 0.0 <= value < math.inf:
        raise ValidationError("size", size, "must be a finite number >= 0")
    return value


def _check_positive(field: str, value: float, *, allow_inf: bool = False) -> float:
    number = _as_float(field, value)
    if not number > 0.0 or (number == math.inf and not allow_inf):
        rule = "must be > 0" if allow_inf else "must be a finite number > 0"
        raise ValidationError(field, value, rule)
    return number


def _check_ts(ts_ns: int) -> int:
    try:
        return operator.index(ts_ns)
    except TypeError:
        raise ValidationError("ts_ns", ts_ns, "must be an integer (nanoseconds)") from None


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
        self._consumed, self._ts_ns = self._consumed_at(ts_ns)

    def price_impact(self, ts_ns: int) -> float:
        """Relative displacement ``G(x)`` of the mid at ``ts_ns`` (state not changed)."""
        return self._impact(self._consumed_at(ts_ns)[0])

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
        if set(state) != {"consumed_depth", "ts_ns"}:
            raise ValidationError("state", sorted(state), "must have keys consumed_depth, ts_ns")
        raw = state["consumed_depth"]
        consumed = float(raw) if isinstance(raw, int | float | np.floating) else math.nan
        low, high = self._consumed_bounds()
        if not low <= consumed <= high:
            raise ValidationError(
                "consumed_depth", raw, f"must be a number in [{low}, {high}] for this book"
            )
        ts = _check_ts(cast(int, state["ts_ns"]))
        self._consumed, self._ts_ns = consumed, ts


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


def _check_max_move(max_move: float) -> float:
    value = _as_float("max_move", max_move)
    if not 0.0 < value <= 1.0:
        raise ValidationError("max_move", max_move, "must be in (0, 1]")
    return value


# --------------------------------------------------------------------------------------------
# L2 book
# --------------------------------------------------------------------------------------------


class _Ladder(NamedTuple):
    """One direction of an L2 book as a supply curve walked upward.

    A buy walks the curve ``G`` up from ``y = x``; a sell walks the mirrored curve
    ``G'(y) = -G(-y)`` up from ``y = -x``. ``values[k]`` is ``G`` on ``(edges[k], edges[k+1]]``;
    below ``edges[0]`` and above ``edges[-1]`` ``G`` continues linearly with the given
    densities (base units per unit relative move; 0 = no depth there) up to ``y_max``.
    """

    edges: tuple[float, ...]
    values: tuple[float, ...]
    density_below: float
    density_above: float
    y_max: float
    touch: float  # half-spread offset of this side's best level from the mid


def _marginal_up(ladder: _Ladder, y: float) -> float:
    """``G`` just above ``y``: where the next unit of an upward walk fills."""
    edges, values = ladder.edges, ladder.values
    if y < edges[0]:
        return values[0] - (edges[0] - y) / ladder.density_below
    if y < edges[-1]:
        return values[bisect_right(edges, y) - 1]
    if ladder.density_above > 0.0:
        return values[-1] + (y - edges[-1]) / ladder.density_above
    return values[-1]


def _walk_up(ladder: _Ladder, y0: float, size: float) -> tuple[float, float, float, float]:
    """Walk ``size`` units up from ``y0``: ``(filled, integral of G, last G, y after)``."""
    edges, values = ladder.edges, ladder.values
    low, high = edges[0], edges[-1]
    y, remaining, cost, last = y0, size, 0.0, math.nan
    # an order that overshoots a level's edge by float dust ends at that edge, so that
    # quote(max_fillable(...)) never reports a last price one level too far
    dust = _DUST_RTOL * size
    if remaining > 0.0 and y < low:  # the opposite side's extrapolated region, walked back
        room = low - y
        take = remaining if remaining <= room + dust else room
        g0 = values[0] - room / ladder.density_below
        g1 = values[0] - max(room - take, 0.0) / ladder.density_below
        cost += take * 0.5 * (g0 + g1)
        last, remaining = g1, remaining - take
        y = low if take >= room else y + take
    if remaining > 0.0 and low <= y < high:
        k = bisect_right(edges, y) - 1
        n = len(values)
        while remaining > 0.0 and k < n:
            room = edges[k + 1] - y
            if room > 0.0:
                take = remaining if remaining <= room + dust else room
                cost += take * values[k]
                last, remaining = values[k], remaining - take
                y = edges[k + 1] if take >= room else y + take
            k += 1
    if remaining > 0.0 and ladder.density_above > 0.0 and y < ladder.y_max:
        take = min(remaining, ladder.y_max - y)
        g0 = values[-1] + (y - high) / ladder.density_above
        g1 = g0 + take / ladder.density_above
        cost += take * 0.5 * (g0 + g1)
        last, remaining = g1, remaining - take
        y += take
    return size - remaining, cost, last, y


def _fillable_up(ladder: _Ladder, y0: float, target: float) -> float:
    """Units an upward walk from ``y0`` fills while ``G <= target``."""
    edges, values = ladder.edges, ladder.values
    low, high = edges[0], edges[-1]
    y = y0
    if y < low:
        if _marginal_up(ladder, y) > target:
            return 0.0
        if target < values[0]:
            return low - ladder.density_below * (values[0] - target) - y0
        y = low
    if y < high:
        k = bisect_right(edges, y) - 1
        while k < len(values):
            if values[k] > target:
                return y - y0
            y = edges[k + 1]
            k += 1
    if ladder.density_above > 0.0:
        y_star = min(high + ladder.density_above * (target - values[-1]), ladder.y_max)
        return max(y_star, y) - y0
    return y - y0


def _level_checks(
    prices: FloatArray,
    sizes: FloatArray,
    *,
    descending: bool,
    name: Callable[[int, str], str],
    error: type[ValidationError],
) -> None:
    """Prices finite > 0 and strictly sorted best first; sizes finite >= 0."""
    for i in range(prices.shape[0]):
        if not 0.0 < prices[i] < math.inf:
            raise error(name(i, "price"), float(prices[i]), "must be a finite number > 0")
        if not 0.0 <= sizes[i] < math.inf:
            raise error(name(i, "size"), float(sizes[i]), "must be a finite number >= 0")
        if i > 0 and (prices[i] >= prices[i - 1] if descending else prices[i] <= prices[i - 1]):
            order = "below" if descending else "above"
            raise error(
                name(i, "price"),
                float(prices[i]),
                f"must be strictly {order} the previous level's {float(prices[i - 1])} "
                f"(levels sorted best first)",
            )


def _as_levels(label: str, prices: ArrayLike, sizes: ArrayLike) -> tuple[FloatArray, FloatArray]:
    p = np.asarray(prices, dtype=np.float64).reshape(-1)
    s = np.asarray(sizes, dtype=np.float64).reshape(-1)
    if p.shape != s.shape:
        raise ValidationError(
            f"{label}_sizes", s.shape[0], f"must have the length of {label}_prices ({p.shape[0]})"
        )
    return p, s


class L2Book(_ResilientBook):
    """Explicit price levels per side, walked level by level.

    Levels are stored relative to the book's reference ``mid`` (``offset = price / mid - 1``);
    a quote at mid ``m`` prices level ``i`` at ``m (1 + offset_i)``, so a snapshot serves as the
    book's shape while the exogenous price moves. At the reference mid the prices are the
    levels' own. Consumed depth ``x`` shifts the whole book (see the module docstring): a buy
    walks the asks from ``x``, and after sells it first walks back up the consumed bids, one
    spread above them.

    Parameters
    ----------
    bid_prices, bid_sizes
        Bid levels, best (highest) first: prices strictly descending, sizes >= 0 base units.
    ask_prices, ask_sizes
        Ask levels, best (lowest) first: prices strictly ascending.
    half_life_s
        Resilience half-life in seconds (> 0; ``math.inf`` for no recovery).
    mid
        Reference mid; default the midpoint of the best bid and ask. Must lie between them.
        Required when a side is empty.
    on_exhausted
        ``"unfilled"``: an order beyond the last level fills what the book holds and reports
        the rest as unfilled. ``"extrapolate"``: past the last level the price keeps moving
        linearly with that level's density (its size over its distance from the previous level,
        or from the mid for a single level); buys without bound, sells until the price reaches
        zero. An empty side fills nothing either way. Once a side is used up (``"unfilled"``),
        :meth:`price_impact` reports the last level's displacement.
    ts_ns
        Time of the initial (untouched) state.
    source
        Free text saying where the levels came from (file and snapshot time).

    Raises
    ------
    ValidationError
        On a non-finite or non-positive price, a negative size, unsorted or crossed levels,
        mismatched lengths, an empty book, or a mid outside the spread.

    Examples
    --------
    >>> book = L2Book([99.5, 99.0], [1.0, 2.0], [100.5, 101.0], [1.0, 2.0], half_life_s=10.0)
    >>> fill = book.quote(1, 2.5, 100.0, 0)
    >>> round(fill.vwap, 9), fill.last_price, fill.unfilled
    (100.8, 101.0, 0.0)
    """

    def __init__(
        self,
        bid_prices: ArrayLike,
        bid_sizes: ArrayLike,
        ask_prices: ArrayLike,
        ask_sizes: ArrayLike,
        *,
        half_life_s: float,
        mid: float | None = None,
        on_exhausted: Exhaustion = "unfilled",
        ts_ns: int = 0,
        source: str = "",
    ) -> None:
        bp, bs = _as_levels("bid", bid_prices, bid_sizes)
        ap, as_ = _as_levels("ask", ask_prices, ask_sizes)
        _level_checks(
            bp, bs, descending=True, name=lambda i, c: f"bid_{c}s[{i}]", error=ValidationError
        )
        _level_checks(
            ap, as_, descending=False, name=lambda i, c: f"ask_{c}s[{i}]", error=ValidationError
        )
        if on_exhausted not in ("unfilled", "extrapolate"):
            raise ValidationError("on_exhausted", on_exhausted, "must be unfilled or extrapolate")
        bp, bs = bp[bs > 0.0], bs[bs > 0.0]
        ap, as_ = ap[as_ > 0.0], as_[as_ > 0.0]
        if bp.size == 0 and ap.size == 0:
            raise ValidationError("ask_sizes", 0.0, "book must hold depth on at least one side")
        if bp.size and ap.size and bp[0] >= ap[0]:
            raise ValidationError(
                "bid_prices[0]", float(bp[0]), f"must be below the best ask {float(ap[0])}"
            )
        if mid is None:
            if bp.size == 0 or ap.size == 0:
                raise ValidationError("mid", None, "must be given when a side of the book is empty")
            reference = 0.5 * (float(bp[0]) + float(ap[0]))
        else:
            reference = _check_positive("mid", mid)
            if (bp.size and reference < bp[0]) or (ap.size and reference > ap[0]):
                raise ValidationError("mid", mid, "must lie between the best bid and best ask")
        super().__init__(half_life_s=half_life_s, ts_ns=ts_ns)
        self.mid = reference
        self.on_exhausted: Exhaustion = on_exhausted
        self.source = source
        self._bids = (bp, bs)
        self._asks = (ap, as_)
        self._ladders = self._build_ladders(bp / reference - 1.0, bs, ap / reference - 1.0, as_)

    def _build_ladders(
        self, bid_off: FloatArray, bid_size: FloatArray, ask_off: FloatArray, ask_size: FloatArray
    ) -> dict[int, _Ladder]:
        b0 = float(bid_off[0]) if bid_off.size else 0.0
        a0 = float(ask_off[0]) if ask_off.size else 0.0
        cum_bid = np.cumsum(bid_size)
        cum_ask = np.cumsum(ask_size)
        edges = np.concatenate([-cum_bid[::-1], [0.0], cum_ask])
        values = np.concatenate([(bid_off - b0)[::-1], ask_off - a0])
        extrapolate = self.on_exhausted == "extrapolate"
        dens_ask = _last_level_density("ask", ask_off, ask_size) if extrapolate else 0.0
        dens_bid = _last_level_density("bid", -bid_off, bid_size) if extrapolate else 0.0
        top_ask = float(cum_ask[-1]) if cum_ask.size else 0.0
        top_bid = float(cum_bid[-1]) if cum_bid.size else 0.0
        # sells stop where the price reaches zero: offset -1
        y_max_sell = top_bid + dens_bid * (1.0 + float(bid_off[-1])) if dens_bid else top_bid
        up = _Ladder(
            tuple(float(v) for v in edges),
            tuple(float(v) for v in values),
            dens_bid,
            dens_ask,
            math.inf if dens_ask else top_ask,
            a0,
        )
        down = _Ladder(
            tuple(float(-v) for v in edges[::-1]),
            tuple(float(-v) for v in values[::-1]),
            dens_ask,
            dens_bid,
            y_max_sell,
            -b0,
        )
        return {BUY: up, SELL: down}

    # -- views ----------------------------------------------------------------------------------

    @property
    def bid_prices(self) -> FloatArray:
        """Bid prices at the reference mid, best first (levels with size > 0)."""
        return self._bids[0].copy()

    @property
    def bid_sizes(self) -> FloatArray:
        """Bid sizes in base units, best first."""
        return self._bids[1].copy()

    @property
    def ask_prices(self) -> FloatArray:
        """Ask prices at the reference mid, best first."""
        return self._asks[0].copy()

    @property
    def ask_sizes(self) -> FloatArray:
        """Ask sizes in base units, best first."""
        return self._asks[1].copy()

    def depth_within(self, side: int, move: float) -> float:
        """Resting base units within a relative ``move`` of the mid on one side (state ignored).

        ``side=+1`` counts asks priced at most ``mid (1 + move)``, ``-1`` bids at least
        ``mid (1 - move)``: the quantity Binance's ``bookDepth`` reports for ``move = k %``.
        Use it to calibrate :class:`ConstantDepthBook` (``depth_per_pct = depth_within(s, 0.01)``).
        """
        s = _check_side(side)
        prices, sizes = self._asks if s == BUY else self._bids
        offsets = s * (prices / self.mid - 1.0)
        # a level exactly on the band's edge counts, whatever the rounding of price / mid
        return float(sizes[offsets <= float(move) + 1e-12].sum())

    def to_frame(self) -> pd.DataFrame:
        """Levels as a table ``side, price, size`` (the :meth:`from_frame` layout)."""
        bp, bs = self._bids
        ap, as_ = self._asks
        return pd.DataFrame(
            {
                "side": ["bid"] * bp.size + ["ask"] * ap.size,
                "price": np.concatenate([bp, ap]),
                "size": np.concatenate([bs, as_]),
            }
        )

    # -- model-specific pieces ------------------------------------------------------------------

    def _fill(
        self, side: int, size: float, mid: float, consumed: float
    ) -> tuple[float, float, float, float]:
        ladder = self._ladders[side]
        y0 = side * consumed
        start = _marginal_up(ladder, y0)
        filled, cost, last, y1 = _walk_up(ladder, y0, size)
        if filled > 0.0:
            average = min(max(cost / filled, start), last)
        else:
            average = last = start
        vwap = mid * (1.0 + side * (ladder.touch + average))
        return filled, vwap, mid * (1.0 + side * (ladder.touch + last)), side * y1

    def _impact(self, consumed: float) -> float:
        if consumed > 0.0:
            return _marginal_up(self._ladders[BUY], consumed)
        if consumed < 0.0:
            return -_marginal_up(self._ladders[SELL], -consumed)
        return 0.0

    def _fillable(self, side: int, consumed: float, limit_offset: float) -> float:
        ladder = self._ladders[side]
        return _fillable_up(ladder, side * consumed, side * limit_offset - ladder.touch)

    def _consumed_bounds(self) -> tuple[float, float]:
        return -self._ladders[SELL].y_max, self._ladders[BUY].y_max

    # -- loaders --------------------------------------------------------------------------------

    @classmethod
    def from_frame(
        cls,
        frame: pd.DataFrame,
        *,
        half_life_s: float,
        mid: float | None = None,
        on_exhausted: Exhaustion = "unfilled",
        ts_ns: int = 0,
        source: str = "frame",
        first_line: int = 0,
        line_word: str = "row",
    ) -> L2Book:
        """Build a book from a table with columns ``side`` (``bid``/``ask``), ``price``, ``size``.

        Rows of each side must be sorted best first (bids descending, asks ascending). Other
        columns are ignored. ``first_line`` and ``line_word`` say how errors name a row (a CSV
        file's first data row is ``line 2``).

        Raises
        ------
        DataError
            On a missing column or a bad row; the message names the row, the column, the value
            and the rule.
        """

        def where(i: int) -> str:
            return f"{source} {line_word} {i + first_line}"

        missing = [c for c in ("side", "price", "size") if c not in frame.columns]
        if missing:
            raise DataError(
                f"{source} columns",
                [str(c) for c in frame.columns],
                "must include side, price and size",
            )
        sides = frame["side"].astype(str).str.strip().str.lower().to_numpy()
        bad_side = np.flatnonzero(~np.isin(sides, ["bid", "ask"]))
        if bad_side.size:
            i = int(bad_side[0])
            raise DataError(f"{where(i)} side", frame["side"].iloc[i], "must be bid or ask")
        numbers = {}
        for column in ("price", "size"):
            raw = frame[column]
            text = raw if pd.api.types.is_numeric_dtype(raw) else raw.astype(str).str.strip()
            values = pd.to_numeric(text, errors="coerce").to_numpy(dtype=np.float64)
            bad = np.flatnonzero(~np.isfinite(values))
            if bad.size:
                i = int(bad[0])
                raise DataError(f"{where(i)} {column}", raw.iloc[i], "must be a finite number")
            numbers[column] = values
        rows = {label: np.flatnonzero(sides == label) for label in ("bid", "ask")}
        for label, descending in (("bid", True), ("ask", False)):
            r = rows[label]
            _level_checks(
                numbers["price"][r],
                numbers["size"][r],
                descending=descending,
                name=_row_namer(where, r),
                error=DataError,
            )
        bids = rows["bid"][numbers["size"][rows["bid"]] > 0.0]
        asks = rows["ask"][numbers["size"][rows["ask"]] > 0.0]
        if bids.size and asks.size:
            best_bid, best_ask = numbers["price"][bids[0]], numbers["price"][asks[0]]
            if best_bid >= best_ask:
                raise DataError(
                    f"{where(int(bids[0]))} price",
                    float(best_bid),
                    f"must be below the best ask {float(best_ask)} at "
                    f"{line_word} {int(asks[0]) + first_line} (crossed book)",
                )
        return cls(
            numbers["price"][rows["bid"]],
            numbers["size"][rows["bid"]],
            numbers["price"][rows["ask"]],
            numbers["size"][rows["ask"]],
            half_life_s=half_life_s,
            mid=mid,
            on_exhausted=on_exhausted,
            ts_ns=ts_ns,
            source=source,
        )

    @classmethod
    def from_csv(
        cls,
        path: str | os.PathLike[str],
        *,
        half_life_s: float,
        mid: float | None = None,
        on_exhausted: Exhaustion = "unfilled",
        ts_ns: int = 0,
    ) -> L2Book:
        """Load a book from a CSV file with the header ``side,price,size`` (see :meth:`from_frame`).

        Errors name the file line (the header is line 1).
        """
        file = _existing_file(path)
        frame = _read_csv(file, str(file), dtype=str)
        return cls.from_frame(
            frame,
            half_life_s=half_life_s,
            mid=mid,
            on_exhausted=on_exhausted,
            ts_ns=ts_ns,
            source=str(file),
            first_line=2,
            line_word="line",
        )

    @classmethod
    def from_parquet(
        cls,
        path: str | os.PathLike[str],
        *,
        half_life_s: float,
        mid: float | None = None,
        on_exhausted: Exhaustion = "unfilled",
        ts_ns: int = 0,
    ) -> L2Book:
        """Load a book from a Parquet file with columns ``side, price, size``."""
        file = _existing_file(path)
        try:
            frame = pd.read_parquet(file)
        except Exception as exc:  # pyarrow raises several unrelated types on a corrupt file
            raise DataError(str(file), str(exc), "must be a Parquet file") from None
        return cls.from_frame(
            frame,
            half_life_s=half_life_s,
            mid=mid,
            on_exhausted=on_exhausted,
            ts_ns=ts_ns,
            source=str(file),
        )

    @classmethod
    def from_binance_book_depth(
        cls,
        source: str | os.PathLike[str] | pd.DataFrame,
        *,
        half_life_s: float,
        at: str | datetime | pd.Timestamp | None = None,
        mid: float | None = None,
        placement: BandPlacement = "vwap",
        on_exhausted: Exhaustion = "unfilled",
        ts_ns: int = 0,
    ) -> L2Book:
        """Build a book from one snapshot of a Binance ``bookDepth`` file.

        Binance's archive (https://data.binance.vision, ``futures/um/daily/bookDepth``) gives,
        about every 30 s, the *cumulative* depth (base) and notional (quote) from the mid out to
        each percentage band (``-5 .. -1`` bids, ``1 .. 5`` asks; newer files add ``±0.2``). The
        band between consecutive percentages ``p_{k-1} < |p| <= p_k`` becomes one level of size
        ``depth_k - depth_{k-1}``, priced at

        - ``"vwap"``: the band's own average price
          ``(notional_k - notional_{k-1}) / (depth_k - depth_{k-1})``; the reference mid is
          ``mid`` or else the midpoint of the innermost bid and ask bands' average prices;
        - ``"band_mid"``: the middle of the band, ``mid (1 ± (p_{k-1} + p_k) / 200)``, which
          uses depths only (robust to glitched notionals; needs ``mid`` if the innermost
          averages are crossed).

        Bands with no added depth give no level. Buying a whole side at the reference mid with
        ``"vwap"`` placement costs exactly the file's cumulative notional.

        Parameters
        ----------
        source
            Path of the CSV (``.csv`` or ``.csv.gz``), or a table: either as
            :func:`read_binance_book_depth` returns it, or with the file's columns (checked,
            errors name the row).
        at
            Snapshot time (UTC): the last snapshot at or before it; default the first.
        mid, half_life_s, on_exhausted, ts_ns
            As in :class:`L2Book`.
        placement
            ``"vwap"`` or ``"band_mid"``, see above.

        Raises
        ------
        DataError
            On a malformed file, cumulative depth that decreases, a band with depth but no
            notional, or a snapshot whose levels are crossed (on 2025-10-10 after 19:15 UTC a
            stale bid above the market does this: use ``"band_mid"`` and pass ``mid``).
        """
        # check the caller's arguments first: a ValidationError from the constructor below is
        # then about the snapshot's data
        _check_positive("half_life_s", half_life_s, allow_inf=True)
        _check_ts(ts_ns)
        if on_exhausted not in ("unfilled", "extrapolate"):
            raise ValidationError("on_exhausted", on_exhausted, "must be unfilled or extrapolate")
        if placement not in ("vwap", "band_mid"):
            raise ValidationError("placement", placement, "must be vwap or band_mid")
        if isinstance(source, pd.DataFrame):
            label = "frame"
            table = source
            if "ts" not in table.columns:
                table = _check_book_depth(table, label, first_line=0, line_word="row")
        else:
            label = str(source)
            table = read_binance_book_depth(source)
        times = table["ts"]
        if times.empty:
            raise DataError(label, "no rows", "must hold at least one snapshot")
        if at is None:
            chosen = times.min()
        else:
            when = pd.Timestamp(at)
            if when.tzinfo is not None:
                when = when.tz_convert("UTC").tz_localize(None)
            earlier = times[times <= when]
            if earlier.empty:
                raise ValidationError("at", str(at), f"must not be before {times.min()}")
            chosen = earlier.max()
        snap = table[times == chosen]
        levels = {s: _bands(snap[np.sign(snap["percentage"]) == s], label) for s in (SELL, BUY)}
        reference = _book_depth_mid(levels, mid, label, chosen)
        prices: dict[int, FloatArray] = {}
        for s, bands in levels.items():
            if placement == "vwap":
                prices[s] = bands.notionals / bands.sizes
            else:
                prices[s] = reference * (1.0 + s * (bands.start_pct + bands.end_pct) / 200.0)
        try:
            return cls(
                prices[SELL],
                levels[SELL].sizes,
                prices[BUY],
                levels[BUY].sizes,
                half_life_s=half_life_s,
                mid=reference,
                on_exhausted=on_exhausted,
                ts_ns=ts_ns,
                source=f"{label} @ {chosen}",
            )
        except DataError:
            raise
        except ValidationError as exc:
            lines = sorted(int(v) for v in snap.index)
            raise DataError(
                f"{label} snapshot {chosen} ({snap.index.name}s {lines[0]}-{lines[-1]})",
                exc.value,
                f"{exc.field} {exc.rule}; try placement='band_mid' with mid=...",
            ) from None


def _row_namer(
    where: Callable[[int], str], rows: npt.NDArray[np.intp]
) -> Callable[[int, str], str]:
    return lambda i, column: f"{where(int(rows[i]))} {column}"


def _last_level_density(label: str, offsets: FloatArray, sizes: FloatArray) -> float:
    """Base units per unit relative move of a side's last level (offsets taken positive)."""
    if sizes.size == 0:
        return 0.0
    previous = float(offsets[-2]) if sizes.size > 1 else 0.0
    gap = float(offsets[-1]) - previous
    if not gap > 0.0:
        raise ValidationError(
            "on_exhausted",
            "extrapolate",
            f"needs the last {label} level apart from the previous level or the mid",
        )
    return float(sizes[-1]) / gap


def _existing_file(path: str | os.PathLike[str]) -> Path:
    file = Path(path)
    if not file.is_file():
        raise DataError("path", str(file), "must be an existing file")
    return file


def _read_csv(file: Path, source: str, **kwargs: Any) -> pd.DataFrame:
    try:
        return pd.read_csv(file, skip_blank_lines=False, keep_default_na=False, **kwargs)
    except pd.errors.EmptyDataError:
        raise DataError(source, "empty file", "must have a header row") from None
    except pd.errors.ParserError as exc:
        raise DataError(source, str(exc), "must be a well-formed CSV file") from None
    except (UnicodeDecodeError, ValueError, OSError) as exc:
        raise DataError(source, str(exc), "must be a CSV file") from None


# --------------------------------------------------------------------------------------------
# Binance bookDepth
# --------------------------------------------------------------------------------------------

_BOOK_DEPTH_COLUMNS: Final = ("timestamp", "percentage", "depth", "notional")
_SAMPLE_NAME: Final = "BTCUSDT-bookDepth-2025-10-10-sample.csv"


def bundled_book_depth_sample() -> Path:
    """Path of the bundled Binance BTCUSDT ``bookDepth`` sample (five snapshots, 2025-10-10).

    Snapshots at 00:00:07, 12:00:07, 20:50:06, 21:30:06 and 23:59:30 UTC, copied unchanged from
    Binance's public archive; see ``deleverage/data/books/SOURCE.md``.
    """
    return Path(str(resources.files("deleverage").joinpath("data", "books", _SAMPLE_NAME)))


def read_binance_book_depth(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read and check a Binance ``bookDepth`` CSV (plain or ``.gz``).

    Returns
    -------
    pandas.DataFrame
        Indexed by file line (the header is line 1), columns ``ts`` (UTC, naive), ``percentage``,
        ``depth`` (cumulative base units), ``notional`` (cumulative quote).

    Raises
    ------
    DataError
        On a missing column, an unparsable timestamp, a non-finite or negative depth or
        notional, a zero or out-of-range percentage, or a repeated ``(timestamp, percentage)``;
        the message names the line.
    """
    file = _existing_file(path)
    frame = _read_csv(file, str(file), dtype={"timestamp": str})
    return _check_book_depth(frame, str(file), first_line=2, line_word="line")


def _check_book_depth(
    frame: pd.DataFrame, source: str, *, first_line: int, line_word: str
) -> pd.DataFrame:
    def where(i: int) -> str:
        return f"{source} {line_word} {i + first_line}"

    missing = [c for c in _BOOK_DEPTH_COLUMNS if c not in frame.columns]
    if missing:
        raise DataError(
            f"{source} columns",
            [str(c) for c in frame.columns],
            "must include timestamp, percentage, depth and notional",
        )
    raw_ts = frame["timestamp"]
    if pd.api.types.is_integer_dtype(raw_ts):
        ts = pd.to_datetime(raw_ts, unit="ms", errors="coerce")
    else:
        text = raw_ts.astype(str).str.strip()
        ts = pd.to_datetime(text, format="ISO8601", errors="coerce")
    bad = np.flatnonzero(ts.isna().to_numpy())
    if bad.size:
        i = int(bad[0])
        raise DataError(f"{where(i)} timestamp", raw_ts.iloc[i], "must be a date and time")
    if ts.dt.tz is not None:
        ts = ts.dt.tz_convert("UTC").dt.tz_localize(None)
    out = pd.DataFrame({"ts": ts.to_numpy()})
    for column in ("percentage", "depth", "notional"):
        raw = frame[column]
        text = raw.astype(str).str.strip() if not pd.api.types.is_numeric_dtype(raw) else raw
        values = pd.to_numeric(text, errors="coerce").to_numpy(dtype=np.float64)
        if column == "percentage":
            ok = np.isfinite(values) & (values != 0.0) & (np.abs(values) <= 100.0)
            rule = "must be a non-zero number in [-100, 100]"
        else:
            ok = np.isfinite(values) & (values >= 0.0)
            rule = "must be a finite number >= 0"
        bad = np.flatnonzero(~ok)
        if bad.size:
            i = int(bad[0])
            raise DataError(f"{where(i)} {column}", raw.iloc[i], rule)
        out[column] = values
    duplicated = np.flatnonzero(out.duplicated(["ts", "percentage"]).to_numpy())
    if duplicated.size:
        i = int(duplicated[0])
        raise DataError(
            f"{where(i)} percentage",
            float(out["percentage"].iloc[i]),
            f"must appear once per snapshot ({out['ts'].iloc[i]})",
        )
    out.index = pd.RangeIndex(first_line, first_line + len(out), name=line_word)
    return out


class _Bands(NamedTuple):
    """The non-empty percentage bands of one side of a ``bookDepth`` snapshot."""

    start_pct: FloatArray  # inner edge of each band, percent from the mid (> 0 or 0)
    end_pct: FloatArray  # outer edge
    sizes: FloatArray  # base units added by the band
    notionals: FloatArray  # quote added by the band


def _bands(rows: pd.DataFrame, source: str) -> _Bands:
    rows = rows.sort_values("percentage", key=np.abs)
    pct = np.abs(rows["percentage"].to_numpy(dtype=np.float64))
    depth = rows["depth"].to_numpy(dtype=np.float64)
    notional = rows["notional"].to_numpy(dtype=np.float64)
    lines = rows.index.to_numpy()
    word = rows.index.name or "row"
    d_depth = np.diff(depth, prepend=0.0)
    d_notional = np.diff(notional, prepend=0.0)
    shrinking = np.flatnonzero(d_depth < 0.0)
    if shrinking.size:
        i = int(shrinking[0])
        raise DataError(
            f"{source} {word} {int(lines[i])} depth",
            float(depth[i]),
            f"must not be below the cumulative depth of the inner band ({float(depth[i - 1])})",
        )
    empty_notional = np.flatnonzero((d_depth > 0.0) & (d_notional <= 0.0))
    if empty_notional.size:
        i = int(empty_notional[0])
        raise DataError(
            f"{source} {word} {int(lines[i])} notional",
            float(notional[i]),
            "must grow where the cumulative depth grows",
        )
    keep = d_depth > 0.0
    starts = np.concatenate([[0.0], pct[:-1]])
    return _Bands(starts[keep], pct[keep], d_depth[keep], d_notional[keep])


def _book_depth_mid(
    levels: Mapping[int, _Bands],
    mid: float | None,
    source: str,
    when: object,
) -> float:
    if mid is not None:
        return _check_positive("mid", mid)
    inner = {}
    for s, bands in levels.items():
        sizes, notionals = bands.sizes, bands.notionals
        if sizes.size == 0:
            raise DataError(
                f"{source} snapshot {when}", "empty side", "has no depth on one side; pass mid"
            )
        inner[s] = float(notionals[0] / sizes[0])
    if inner[SELL] >= inner[BUY]:
        raise DataError(
            f"{source} snapshot {when}",
            f"innermost bid band average {inner[SELL]} >= ask {inner[BUY]}",
            "is crossed, so the mid cannot be estimated; pass mid (and placement='band_mid')",
        )
    return 0.5 * (inner[SELL] + inner[BUY])
