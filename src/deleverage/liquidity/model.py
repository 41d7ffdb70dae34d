"""The liquidity models' contract and pure math: :class:`LiquidityModel`, the fill record, the
analytic supply curves (linear and power law) as vectorized formulas and compiled fill kernels.
The concepts are in :mod:`deleverage.liquidity`.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Mapping
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
from numba import njit

from deleverage import portable_math as pm
from deleverage.errors import ValidationError

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
    factor: FloatArray = pm.exp(-LN2 * _f64(dt_s) / _f64(half_life_s))
    return factor


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
    impact: FloatArray = _f64(y) * _f64(sigma) * pm.array_power(q / _f64(daily_volume), _f64(delta))
    return impact


def _power_law_coefficient(y: ArrayLike, sigma: ArrayLike, v: ArrayLike, d: ArrayLike) -> Any:
    return _f64(y) * _f64(sigma) / pm.array_power(_f64(v), _f64(d))


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
        return np.asarray(np.sign(x) * k * pm.array_power(np.abs(x), d), dtype=np.float64)

    def f(x: FloatArray) -> FloatArray:
        return np.asarray(k * pm.array_power(np.abs(x), 1.0 + d) / (1.0 + d), dtype=np.float64)

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
    target = np.sign(x0) * k * pm.array_power(np.abs(x0), d) + _f64(move)
    x1 = np.sign(target) * pm.array_power(np.abs(target) / k, 1.0 / d)
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


def _check_max_move(max_move: float) -> float:
    value = _as_float("max_move", max_move)
    if not 0.0 < value <= 1.0:
        raise ValidationError("max_move", max_move, "must be in (0, 1]")
    return value
