"""The risk step's cross margin calls in one compiled call (engine/cross_step.py) against the
scan's path and the full pass.

- Call by call: every answer of :func:`.cross_step.cross_calls` (the new called set, the fresh
  calls and their ratios, and the bounded scan it caches for the step's candidates) equals what
  the full pass (``_cross_scan_full``) and :func:`.step_kernels.calls_update_nb` give at the
  same state, bit for bit, on random cross books (``test_cross_round_twin``'s: shortfalls, fund
  exhaustion, ADL, isolated positions among them) on walks of small moves.
- The run: the same books with the fused call and with the scan's path alone (the fused call
  answering None) give the same journal, state arrays, step reports and fund records.
- A crash book on a slow walk takes the fused call many times, anchors included.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import test_cross_anchor_twin as anchored
import test_cross_round_twin as rounds
from hypothesis import given, settings

from deleverage.engine import cross_index as cross_mod
from deleverage.engine import cross_step
from deleverage.engine.risk import step as step_mod
from deleverage.engine.risk.step_kernels import calls_update_nb


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal arrays to the bit (values, dtype, length)."""
    a, b = np.asarray(a), np.asarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def _audited(seen: dict[str, int]) -> Any:
    """``cross_calls`` checked against the full pass at every answer."""
    fused = cross_step.cross_calls

    def audit(ex: Any, m: int, level: float, called: np.ndarray, flag: np.ndarray) -> Any:
        before = np.array(called, dtype=np.int64)
        index = ex._cross_index.get(min(float(level), 1.0))
        anchors = index.anchors if index is not None else 0
        out = fused(ex, m, level, called, flag)
        if out is None:
            return None
        seen["fused"] += 1
        seen["anchors"] += index.anchors - anchors
        full = ex._cross_scan_full(m, level)
        scan = ex._cache[("scan", m, level)][1]
        for name in ("below", "below_equity", "below_maintenance", "warn", "warn_ratio"):
            assert _same(scan[name], full[name]), name
        new, fresh = calls_update_nb(
            before, full["warn"].astype(np.int64), full["below"].astype(np.int64),
            np.zeros(ex.n_accounts + 1, dtype=np.bool_),
        )  # fmt: skip
        seen["calls"] += int(fresh.sum())
        assert _same(out[0], new)
        assert _same(out[1], full["warn"][fresh].astype(np.int64))
        assert _same(out[2], full["warn_ratio"][fresh].astype(np.float64))
        return out

    return audit


def _twins(book: dict[str, Any]) -> dict[str, int]:
    seen = {"fused": 0, "anchors": 0, "calls": 0}
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(cross_mod, "ANCHOR_EVAL", 0)  # re-take the anchor at every scan it can
        mp.setattr(step_mod, "cross_calls", _audited(seen))
        fast = rounds._run(book, columns=True)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(step_mod, "cross_calls", lambda *args: None)  # the scan's path alone
        slow = rounds._run(book, columns=True)
    rounds._assert_twins(fast, slow)
    return seen


@settings(max_examples=60, deadline=None)
@given(anchored.drifting_books())
def test_fused_calls_match_the_scan_path(book: dict[str, Any]) -> None:
    _twins(book)


def test_the_fused_path_runs() -> None:
    """A crash book on a slow walk: the fused call answers on most steps, calls accounts and
    re-takes anchors, and the run equals the scan's path."""
    book = rounds._crash(2_000.0, "pnl_leverage")
    book["path"] = [[-0.072, -0.072, -0.072]] + [[0.0005 * (-1) ** k] * 3 for k in range(30)]
    book["path"] += [[-0.06, -0.05, -0.07], [0.001, 0.0, -0.001]]
    seen = _twins(book)
    assert seen["fused"] > 30, seen
    assert seen["calls"] > 0, seen
    assert seen["anchors"] > 0, seen
