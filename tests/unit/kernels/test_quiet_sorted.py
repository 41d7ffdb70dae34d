"""The called entries of a stretch in sorted orders (:mod:`deleverage.engine.quiet_sorted`).

Twins: random books of isolated positions, some called after a shock, marked along random
walks that cross their zone and liquidation prices (some marks pinned to those prices, inside
the index's slack). The stretch kernel runs with the sorted orders from its first step
(``sort_after=0``), after a few uncertain steps, and never (the entry-by-entry pass): the
quiet prefix, why it stopped, the called entries and their flags and the calls made must be
identical. With the orders from the first step the prefix is also applied in bulk and compared
with the real risk step run mark by mark (journals, state hashes, called sets, reports).
A deliberately wrong variant (the entries dropped by earlier steps forgotten) must differ.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_quiet_calls import _book, _pin

from deleverage import Exchange
from deleverage.engine import quiet_sorted
from deleverage.engine.quiet import advance_quiet, quiet_bands
from deleverage.sim import quiet as sim_quiet
from deleverage.sim.quiet import RULE_ORACLE, call_args, quiet_path_nb

_NS = 1_000_000_000


def _run(ex: Exchange, marks: np.ndarray, sort_after: int, python: bool = False) -> Any:
    """The kernel over ``marks`` from ``ex`` (oracle marks, no arbitrage or funding): count,
    stop, called entries (market, side, zone, liquidation, account, dropped) and calls."""
    bands = quiet_bands(ex, window=1024)
    if bands is None:
        return None
    steps, n_m = marks.shape
    path = np.vstack([marks[:1], marks])  # the kernel starts at step 1
    w = call_args(ex, bands)
    inf = np.full(n_m, math.inf)
    stop = np.zeros(1, np.int64)
    kernel = quiet_path_nb.py_func if python else quiet_path_nb
    count = kernel(
        1, steps + 1, 1.0, path, path, path, np.full(n_m, RULE_ORACLE, np.int64),
        np.zeros(n_m), np.ones(n_m), np.zeros(n_m), np.zeros(n_m), np.zeros(n_m), np.zeros(n_m),
        np.zeros(n_m, np.int64), np.zeros((n_m, steps)), inf, inf, np.zeros(n_m),
        np.zeros(n_m), inf, bands.long_max, bands.short_min, bands.p0_index, bands.q_index,
        bands.p0_dirty, bands.q_dirty, w.market, w.long, w.zone, w.liq, w.dropped,
        np.empty((steps, n_m)), np.empty((steps, n_m)), np.empty((steps, n_m)), w.call_m,
        w.ptr, w.n_long, w.acc, w.w_zone, w.w_liq, w.w_long, w.size, w.entry, w.margin,
        w.floor, w.mmr, w.cum, w.min_margin, w.level, w.n_called, w.c_acc, w.ev_step, w.ev_acc,
        w.ev_ratio, w.n_ev, stop, sort_after,
    )  # fmt: skip
    nc, made = int(w.n_called[0]), int(w.n_ev[0])
    called = tuple(a[:nc].copy() for a in (w.market, w.long, w.zone, w.liq, w.c_acc, w.dropped))
    calls = (w.call_m, w.ev_step[:made], w.ev_acc[:made], w.ev_ratio[:made]) if made else None
    return int(count), int(stop[0]), called, calls


def _same(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is b
    (ca, sa, called_a, calls_a), (cb, sb, called_b, calls_b) = a, b
    if (ca, sa) != (cb, sb) or (calls_a is None) != (calls_b is None):
        return False
    if not all(np.array_equal(x, y) for x, y in zip(called_a, called_b, strict=True)):
        return False
    return calls_a is None or all(
        np.array_equal(x, y) for x, y in zip(calls_a[1:], calls_b[1:], strict=True)
    )


def _setup(seed: int, shock: float, vol: float, drift: float, pin: float) -> Any:
    rng = np.random.default_rng(seed)
    books = _book(seed, 1), _book(seed, 1)
    start = [round(st.mark * (1.0 + shock), 2) for st in books[0].markets]
    for ex in books:  # a first risk step at the shocked mark: calls, liquidations
        ex.set_mark(0, start[0], ts_ns=10 * _NS)
    # Down, up and down again: entries are called, dropped, called again.
    t = np.arange(300)
    wave = np.sin(t / 25.0)[:, None] * 3e-3
    moves = np.exp(np.cumsum(rng.normal(drift, vol, (300, 1)), axis=0) + wave)
    marks = np.round(np.asarray(start) * moves, 2)
    if pin:
        _pin(books[0], marks, rng, pin, liq=pin > 0.2)
    return books, marks


def _twin(seed: int, shock: float, vol: float, drift: float, pin: float) -> int:
    """Orders from the first step, after 3 uncertain steps and never: identical outcomes;
    the first applied and compared with the real risk step. Returns the calls made."""
    (fast, slow), marks = _setup(seed, shock, vol, drift, pin)
    first = _run(fast, marks, 0)
    assert _same(first, _run(fast, marks, -1))
    assert _same(first, _run(fast, marks, 3))
    if first is None:
        return 0
    count, _, called, calls = first
    ts = (11 + np.arange(count, dtype=np.int64)) * _NS
    advance_quiet(fast, marks[:count], ts, None, called[5], calls)
    for j in range(count):
        slow.set_mark(0, float(marks[j, 0]), ts_ns=int(ts[j]))
        assert slow.last_step.liquidations == 0
    assert fast.journal.to_arrow().equals(slow.journal.to_arrow())
    assert fast.state_hash() == slow.state_hash()
    called_fast, called_slow = (
        fast.risk.markets[0].called_isolated,
        slow.risk.markets[0].called_isolated,
    )
    assert np.array_equal(called_fast, called_slow)
    assert fast.risk.reports == slow.risk.reports
    return 0 if calls is None else len(calls[1])


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    shock=st.floats(-0.05, 0.05),
    vol=st.sampled_from([1e-4, 5e-4, 1e-3]),
    drift=st.sampled_from([0.0, 2e-4, -2e-4]),
    pin=st.sampled_from([0.0, 0.1, 0.3]),
)
def test_sorted_orders_equal_the_entry_by_entry_pass(
    seed: int, shock: float, vol: float, drift: float, pin: float
) -> None:
    _twin(seed, shock, vol, drift, pin)


def test_waves_through_the_called_zone_call_drop_and_call_again() -> None:
    """Called, dropped and called again inside stretches that use the orders."""
    made = sum(_twin(seed, -0.03, 2e-4, 0.0, 0.1) for seed in range(8))
    assert made > 0


def test_forgetting_the_dropped_entries_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """A wrong sorted step (entries dropped by earlier steps never evaluated again when the
    mark comes back) gives a different stretch on some of these books."""
    right = quiet_sorted.sorted_step_nb

    def wrong(*args: Any) -> Any:
        given = list(args)
        given[13] = np.full(2, -np.inf)  # ``lo_prev``: as if nothing was ever dropped
        return right(*given)

    differs = 0
    for seed in range(8):
        (fast, _), marks = _setup(seed, -0.03, 2e-4, 0.0, 0.1)
        good = _run(fast, marks, 0, python=True)
        monkeypatch.setattr(sim_quiet, "sorted_step_nb", wrong)
        bad = _run(fast, marks, 0, python=True)
        monkeypatch.setattr(sim_quiet, "sorted_step_nb", right)
        assert _same(good, _run(fast, marks, 0))  # the Python reference equals the kernel
        differs += not _same(good, bad)
    assert differs > 0
