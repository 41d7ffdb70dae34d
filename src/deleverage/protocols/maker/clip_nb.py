"""The Clipper's sale filter (§M9) in compiled loops (§M10).

:meth:`deleverage.protocols.maker.clipper.Clipper.run` runs the per-sale path only for the sales
that may need a redo or may have a taker. After a crash thousands of sales run at once and the
filter runs every step, and again whenever a keeper's budget grows within the step; as some
twenty NumPy expressions over all running sales it cost more than the sales it skipped. The
two functions here evaluate the same expressions sale by sale in one pass, with the same float
operations in the same order (NaN-propagating ``minimum`` and ``maximum`` as NumPy's, IEEE
division by zero as NumPy's), so the masks are NumPy's, except that the curves' ``pow`` is
libm's, the per-sale path's (Python's ``**``), where NumPy's own may differ by an ulp (which the
relative margin ``1e-12`` of §M9 covers). The curves' factors ``cut^k`` for whole ``k`` are
read from a table (:func:`pow_table`, the same ``pow`` once per ``k``) up to its end.
tests/unit/protocols/maker/test_maker_clip_kernel.py compares them with the NumPy expressions;
the twin test of the Clipper compares the whole fast path with the per-sale path.
"""

from __future__ import annotations

from typing import Final, TypeVar, cast

import numpy as np
import numpy.typing as npt
from numba import njit

__all__ = ["CURVE_CODES", "may_take_nb", "pow_table", "sale_prices_nb", "sale_todo_nb"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
_F = TypeVar("_F")
NS_PER_S: Final = 1_000_000_000
#: The Abacus curves by code (``ClipperConfig.curve``).
CURVE_CODES: Final = {"linear": 0, "stairstep": 1, "exponential": 2}


def _njit(function: _F) -> _F:
    # IEEE division (x / 0 is inf or NaN, as NumPy's), not Python's ZeroDivisionError.
    return cast(_F, njit(cache=True, error_model="numpy")(function))


@_njit
def _minimum(a: float, b: float) -> float:
    # np.minimum: NaN if either is NaN.
    if a != a or b != b:
        return np.nan
    return a if a <= b else b


@_njit
def _maximum(a: float, b: float) -> float:
    # np.maximum: NaN if either is NaN.
    if a != a or b != b:
        return np.nan
    return a if a >= b else b


@_njit
def _pow_table_nb(cut: float, n: int) -> FloatArray:
    out = np.empty(n)
    for k in range(n):
        out[k] = cut ** float(k)
    return out


def pow_table(curve: str, cut: float, step_s: float, tail_s: float) -> FloatArray:
    """``cut^k`` (libm's ``pow``) for the whole ``k`` a sale younger than ``tail`` reaches on
    a stairstep (``k = floor(age / step)``) or exponential (``k = floor(age)``) curve, at most
    2^16 of them; empty for the linear curve."""
    if curve == "linear":
        return np.empty(0)
    last = tail_s / step_s if curve == "stairstep" else tail_s
    return _pow_table_nb(cut, int(min(last, 2.0**16)) + 2)


@_njit
def sale_prices_nb(
    tops: FloatArray,
    tics: IntArray,
    ts_ns: int,
    curve: int,
    tau_s: float,
    cut: float,
    powers: FloatArray,
    step_s: float,
    tail_limit_s: float,
    cusp_limit: float,
    price_limit: float,
) -> tuple[BoolArray, BoolArray, FloatArray]:
    """Per sale: may need a redo (``dur > tail_limit_s`` or ``ratio < cusp_limit``), may be
    priced at or below the market (``not price > price_limit``), and the price ``top x ratio``
    (DAI per unit) on curve ``curve`` (:data:`CURVE_CODES`) at ``ts_ns``; ``powers`` is
    :func:`pow_table`'s."""
    size = powers.shape[0]
    n = tops.shape[0]
    redo = np.empty(n, dtype=np.bool_)
    below = np.empty(n, dtype=np.bool_)
    price = np.empty(n)
    for k in range(n):
        dur = (ts_ns - tics[k]) / NS_PER_S
        if curve == 0:
            ratio = 0.0 if dur >= tau_s else (tau_s - dur) / tau_s
        else:
            e = np.floor(dur / step_s) if curve == 1 else np.floor(dur)
            ratio = powers[int(e)] if 0.0 <= e < size else cut**e
        redo[k] = dur > tail_limit_s or ratio < cusp_limit
        p = tops[k] * ratio
        price[k] = p
        below[k] = not p > price_limit
    return redo, below, price


@_njit
def may_take_nb(
    below: BoolArray,
    price: FloatArray,
    lots: FloatArray,
    tabs: FloatArray,
    best: float,
    floor: float,
    market: float,
    depth: float,
) -> BoolArray:
    """Per sale: whether a keeper may take from it (§M9: ``Clipper._may_take``'s bound with a
    budget ``best``, the floor ``floor``, the market price and depth)."""
    n = below.shape[0]
    take = np.zeros(n, dtype=np.bool_)
    if not best > 0.0:
        return take
    limit = floor - 1e-9 * abs(floor)
    for k in range(n):
        if not below[k]:
            continue
        p = price[k]
        most = _minimum(_minimum(lots[k], best / p), tabs[k] / p) * (1.0 + 1e-9)
        dp = market - p
        quad = (
            depth * dp * dp / (2.0 * market) * (1.0 + 1e-9)
            + depth * abs(dp) * 1e-12 * (market + p) / market
        )
        gain = _maximum(0.0, _minimum(most * dp, quad)) + 1e-9 * most * (market + p)
        take[k] = not gain <= limit
    return take


@_njit
def sale_todo_nb(
    tops: FloatArray,
    tics: IntArray,
    ts_ns: int,
    curve: int,
    tau_s: float,
    cut: float,
    powers: FloatArray,
    step_s: float,
    tail_limit_s: float,
    cusp_limit: float,
    price_limit: float,
    lots: FloatArray,
    tabs: FloatArray,
    best: float,
    floor: float,
    market: float,
    depth: float,
) -> tuple[BoolArray, BoolArray, FloatArray, IntArray]:
    """:func:`sale_prices_nb` then :func:`may_take_nb` in one call: the redo and below-market
    masks, the prices, and the sales that may need a redo or may have a taker (positions,
    ascending)."""
    redo, below, price = sale_prices_nb(
        tops, tics, ts_ns, curve, tau_s, cut, powers, step_s, tail_limit_s, cusp_limit,
        price_limit,
    )  # fmt: skip
    take = may_take_nb(below, price, lots, tabs, best, floor, market, depth)
    return redo, below, price, np.flatnonzero(redo | take)
