"""The step reports' log with quiet runs (:mod:`deleverage.engine.report_log`) against a list.

The oracle is the plain list the engine kept before: every report built with the
constructor, a quiet stretch's margin calls set on its reports one by one.
"""

from __future__ import annotations

import copy
import pickle
from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from deleverage.engine.report_log import QuietRun, ReportLog
from deleverage.engine.risk.support import StepReport

# One operation: ("step", market, ts, liquidations) or ("run", first ts, steps, markets,
# pnl, call offsets).
_step = st.tuples(st.just("step"), st.integers(0, 3), st.integers(0, 10**6), st.integers(0, 5))
_run = st.tuples(
    st.just("run"),
    st.integers(0, 10**6),
    st.integers(0, 6),
    st.integers(1, 3),
    st.floats(-1e3, 1e3, allow_nan=False),
    st.lists(st.integers(0, 17), max_size=5),
)


def _build(ops: list[tuple[Any, ...]]) -> tuple[ReportLog, list[StepReport]]:
    log, want = ReportLog(), []
    for op in ops:
        if op[0] == "step":
            _, m, ts, liq = op
            r = StepReport(market=int(m), ts_ns=int(ts), liquidations=int(liq))
            log.append(r)
            want.append(r)
            continue
        _, t0, steps, n_m, pnl, offs = op
        ts = np.arange(steps, dtype=np.int64) * 1000 + int(t0)
        count = steps * int(n_m)
        at = np.array(sorted({o for o in offs if o < count}), dtype=np.int64)
        made = at % 4 + 1
        log.add_run(QuietRun(ts, int(n_m), float(pnl), at, made))
        reports = [
            StepReport(market=m, ts_ns=int(t), backstop_pnl=float(pnl))
            for t in ts
            for m in range(int(n_m))
        ]
        for i, c in zip(at.tolist(), made.tolist(), strict=True):
            reports[i].margin_calls = c
        want.extend(reports)
    return log, want


_ops = st.lists(st.one_of(_step, _run), max_size=12)


@settings(max_examples=150, deadline=None)
@given(ops=_ops)
def test_log_reads_as_the_list_of_reports(ops: list[tuple[Any, ...]]) -> None:
    """Length, every index (from both ends), slices, iteration, reversal and equality."""
    log, want = _build(ops)
    assert len(log) == len(want)
    assert bool(log) == bool(want)
    assert list(log) == want
    assert log == want
    assert [log[i] for i in range(len(want))] == want
    assert [log[-1 - i] for i in range(len(want))] == want[::-1]
    assert list(reversed(log)) == want[::-1]
    assert log[1:-1] == want[1:-1]
    assert log[::3] == want[::3]
    if want:
        assert log.last() == want[-1]
    other, _ = _build(ops)
    assert log == other


@settings(max_examples=60, deadline=None)
@given(ops=_ops, more=st.integers(0, 3))
def test_log_copies_and_pickles_with_its_own_append(ops: list[tuple[Any, ...]], more: int) -> None:
    """A deep copy and a pickled log read the same; appending to either leaves the original
    as it was (the bound ``append`` is bound again to the copy's tail)."""
    log, want = _build(ops)
    for twin in (copy.deepcopy(log), pickle.loads(pickle.dumps(log))):
        assert twin == want
        for k in range(more):
            twin.append(StepReport(market=0, ts_ns=k))
        assert len(twin) == len(want) + more
        assert log == want
        assert len(log) == len(want)


def test_log_indexes_past_the_end_raise() -> None:
    log, want = _build([("run", 0, 2, 2, 0.5, [1]), ("step", 1, 9, 0)])
    assert len(want) == 5
    for bad in (5, -6):
        try:
            log[bad]
        except IndexError:
            continue
        raise AssertionError(f"index {bad} did not raise")


def test_run_margin_calls_land_on_their_reports() -> None:
    """The calls of a run land on their offsets only (a run that dropped them, or put them one
    report off, would read differently)."""
    ts = np.array([10, 20, 30], dtype=np.int64)
    run = QuietRun(ts, 2, 1.0, np.array([1, 4]), np.array([7, 2]))
    got = [r.margin_calls for r in run.reports()]
    assert got == [0, 7, 0, 0, 2, 0]
    assert [run.report(i).margin_calls for i in range(6)] == got
    assert [(r.market, r.ts_ns) for r in run.reports()] == [
        (0, 10), (1, 10), (0, 20), (1, 20), (0, 30), (1, 30)
    ]  # fmt: skip
    shifted = QuietRun(ts, 2, 1.0, np.array([2, 5]), np.array([7, 2]))
    plain = QuietRun(ts, 2, 1.0, np.zeros(0, np.int64), np.zeros(0, np.int64))
    assert shifted.reports() != run.reports()
    assert plain.reports() != run.reports()
