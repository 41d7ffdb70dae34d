"""The Clipper's compiled sale filter (:mod:`deleverage.protocols.maker.clip_nb`, §M10) against
the NumPy expressions of §M9 it replaces (written out here as the oracle, with the curves'
``pow`` taken as the per-sale path takes it, Python's: NumPy's own ``pow`` may differ by an ulp,
which §M9's margin covered): the same redo and below-market masks, the same prices and the same
may-take mask (and the fused call's positions to run), on random sales, curves, budgets, floors
and depths (zero prices, infinite depth and a zero tab included)."""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
from hypothesis import example, given, settings
from hypothesis import strategies as st

from deleverage.protocols.maker.clip_nb import (
    CURVE_CODES,
    may_take_nb,
    pow_table,
    sale_prices_nb,
    sale_todo_nb,
)

S = 1_000_000_000
F = npt.NDArray[np.float64]
B = npt.NDArray[np.bool_]


def _numpy_prices(
    tops: F, tics: npt.NDArray[np.int64], ts: int, curve: str, tau: float, cut: float,
    step: float, tail_limit: float, cusp_limit: float, price_limit: float,
) -> tuple[B, B, F]:  # fmt: skip
    dur = (ts - tics) / S
    if curve == "linear":
        ratio = np.where(dur >= tau, 0.0, (tau - dur) / tau)
    else:  # the per-sale path's pow (math.stairstep/exponential_decrease: Python's, libm's)
        steps = dur / step if curve == "stairstep" else dur
        ratio = np.array([cut ** math.floor(x) for x in steps.tolist()], dtype=np.float64)
    redo = (dur > tail_limit) | (ratio < cusp_limit)
    price = tops * ratio
    return redo, ~(price > price_limit), price


def _numpy_may_take(
    below: B, price: F, lots: F, tabs: F, best: float, floor: float, market: float, depth: float
) -> B:
    if not best > 0.0:
        return np.zeros_like(below)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        most = np.minimum(np.minimum(lots, best / price), tabs / price) * (1.0 + 1e-9)
        dp = market - price
        quad = (
            depth * dp * dp / (2.0 * market) * (1.0 + 1e-9)
            + depth * np.abs(dp) * 1e-12 * (market + price) / market
        )
        gain = np.maximum(0.0, np.minimum(most * dp, quad)) + 1e-9 * most * (market + price)
    return np.asarray(below & ~(gain <= floor - 1e-9 * abs(floor)))


_sale = st.tuples(
    st.one_of(st.just(0.0), st.floats(1.0, 1e4)),  # top
    st.one_of(st.integers(0, 20_000).map(lambda s: s * S), st.integers(0, 20_000 * S)),  # age
    st.one_of(st.just(0.0), st.floats(0.0, 1e3)),  # lot
    st.one_of(st.just(0.0), st.floats(0.0, 1e7)),  # tab
)


@settings(max_examples=300, deadline=None)
@given(
    sales=st.lists(_sale, max_size=30),
    curve=st.sampled_from(list(CURVE_CODES)),
    cut=st.sampled_from([0.97, 0.99, 0.9995, 1.0]),
    tau=st.sampled_from([1800.0, 3600.0]),
    step=st.sampled_from([1.0, 60.0, 90.0]),
    tail=st.sampled_from([600.0, 8400.0]),
    cusp=st.sampled_from([0.0, 0.4, 0.9]),
    market=st.floats(10.0, 1e4),
    best=st.one_of(st.sampled_from([-1.0, 0.0, 1e9]), st.floats(0.0, 1e6)),
    floor=st.one_of(st.sampled_from([-5.0, 0.0]), st.floats(0.0, 1e3)),
    depth=st.one_of(st.sampled_from([0.0, np.inf]), st.floats(1e-3, 1e7)),
)
@example(
    sales=[(0.0, 5 * S, 1.0, 0.0), (2_000.0, 0, 0.0, 1e3), (1_000.0, 100 * S, 5.0, 5e3)],
    curve="linear", cut=0.99, tau=1800.0, step=60.0, tail=600.0, cusp=0.4, market=2_000.0,
    best=1e9, floor=0.0, depth=np.inf,
)  # fmt: skip
def test_the_compiled_filter_is_the_numpy_filter(
    sales: list[tuple[float, int, float, float]], curve: str, cut: float, tau: float,
    step: float, tail: float, cusp: float, market: float, best: float, floor: float,
    depth: float,
) -> None:  # fmt: skip
    ts = 50_000 * S
    tops = np.array([s[0] for s in sales], dtype=np.float64)
    tics = np.array([ts - s[1] for s in sales], dtype=np.int64)
    lots = np.array([s[2] for s in sales], dtype=np.float64)
    tabs = np.array([s[3] for s in sales], dtype=np.float64)
    limits = (tail * (1.0 - 1e-12), cusp * (1.0 + 1e-12), market * (1.0 + 1e-9) * (1.0 + 1e-12))
    want = _numpy_prices(tops, tics, ts, curve, tau, cut, step, *limits)
    # A table up to a tail of 600 s: ages past it take pow itself.
    powers = pow_table(curve, cut, step, 600.0)
    got = sale_prices_nb(tops, tics, ts, CURVE_CODES[curve], tau, cut, powers, step, *limits)
    for g, w in zip(got, want, strict=True):
        np.testing.assert_array_equal(g, w)
    below, price = want[1], want[2]
    take = _numpy_may_take(below, price, lots, tabs, best, floor, market, depth)
    np.testing.assert_array_equal(
        may_take_nb(below, price, lots, tabs, best, floor, market, depth), take
    )
    # The fused call (Clipper._todo): the same masks and prices, and the positions to run.
    fused = sale_todo_nb(
        tops, tics, ts, CURVE_CODES[curve], tau, cut, powers, step, *limits, lots, tabs, best,
        floor, market, depth,
    )  # fmt: skip
    for g, w in zip(fused, (*want, np.flatnonzero(want[0] | take)), strict=True):
        np.testing.assert_array_equal(g, w)


def test_the_filter_reads_the_curves_of_dss_abaci() -> None:
    # abaci.t.sol::test_linear_decrease (tau 3600, top 1000: 900 at 360 s) and the clip.t.sol
    # stairstep (1% per second from 5: 5 x 0.99^60 at 60 s); a sale 1 s past tail needs a redo.
    ts = 10_000 * S
    tops, tics = np.array([1_000.0]), np.array([ts - 360 * S], dtype=np.int64)
    none = np.empty(0)
    redo, below, price = sale_prices_nb(tops, tics, ts, 0, 3600.0, 1.0, none, 1.0, 8400.0, 0.0, 1e9)
    assert price.tolist() == [900.0]
    assert (redo.tolist(), below.tolist()) == ([False], [True])
    tops, tics = np.array([5.0]), np.array([ts - 60 * S], dtype=np.int64)
    for powers in (none, pow_table("stairstep", 0.99, 1.0, 8400.0)):
        _, _, price = sale_prices_nb(tops, tics, ts, 1, 0.0, 0.99, powers, 1.0, 8400.0, 0.0, 1e9)
        assert abs(price[0] - 2.735783211953807) < 1e-12
    redo, _, _ = sale_prices_nb(tops, tics, ts, 1, 0.0, 0.99, none, 1.0, 59.0, 0.0, 1e9)
    assert redo.tolist() == [True]
