"""Cross margin calls inside quiet stretches: marks that only call cross accounts stay in bulk.

After a crash many cross accounts sit in the warning zone, near it, or called in one market and
not yet in another; the bound of :func:`.quiet.quiet_bands` (every uncalled account out of
reach, every called one certainly staying) then fails at most marks and each mark ran its risk
steps one at a time. This module carries a stretch through such marks, doing what the risk step
does for cross accounts at each mark of each market (:meth:`.RiskEngine._margin_calls` and the
cross half of :meth:`.RiskEngine._candidates`) with the same compiled functions, so every figure
is the step's own:

- the accounts to evaluate: :func:`.cross_kernels.split_nb` with the cross index's anchored
  bounds (docs/formulas.md §14.2) at the marks as the step sees them (the markets before it in
  the step at their new marks, the others at their last); the accounts touched since the
  index's build, which the scan evaluates at every mark, are bounded the same way from their
  figures at the stretch's first marks (:func:`.cross_kernels.touched_bounds_nb`: nothing
  touches them within the stretch) and evaluated only once the move from those marks reaches
  them, or counted warned while certainly in the zone;
- the scan: :func:`.cross_kernels.bounded_scan_nb` (under maintenance, and warned, with the
  near accounts certainly in the zone);
- the called set: :func:`.risk.step_kernels.calls_update_nb`; the fresh calls' ratios by
  :func:`.cross_kernels.cross_subset_scan_nb` (as :meth:`.MarginScans.cross_warn_ratios`).

A scan that evaluates many near accounts re-takes the anchor after it, as the scan does
(:func:`.cross_kernels.anchor_nb`, the figures of :meth:`.CrossIndex.anchor`; past
:data:`STRETCH_ANCHOR_EVAL` accounts, the step's threshold on a large book: the results do
not depend on it). The stretch ends
before the first step at which a market's scan finds an account under maintenance (a
liquidation, or a wait for a liquidator) or the bound no longer answers (the step would run a
full pass and rebuild the index). The calls go to the journal in the step-by-step order
(:func:`.quiet.advance_quiet`): each step, a market's calls right after its mark, by account.

The twin tests (tests/unit/engine/test_quiet_cross_twin.py: random cross books and paths,
journals row by row against the real risk step; tests/integration/test_quiet_twin.py) compare
journals, called sets, step reports and result hashes with the step-by-step run.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import accumulate
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import numpy.typing as npt
from numba import njit

from deleverage.engine.cross_index import (
    CROSS_SLACK,
    DIRTY_FLOOR,
    DIRTY_SHARE,
    MAX_MOVE,
    PREFIX_SHARE,
)
from deleverage.engine.cross_kernels import (
    anchor_nb,
    bounded_scan_nb,
    cross_subset_scan_nb,
    merge_certain_nb,
    split_bound_nb,
    split_pick_nb,
    touched_bounds_nb,
)
from deleverage.engine.risk.step_kernels import calls_update_nb

if TYPE_CHECKING:
    from deleverage.engine.cross_index import CrossIndex
    from deleverage.engine.exchange import Exchange

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

#: A stretch's scan re-takes the anchor when it picks more near accounts than this (the step's
#: scans at :data:`.cross_index.ANCHOR_EVAL`; the results do not depend on it). Measured on
#: benchmarks/cascade_day.py's cross day (kernel CPU over 47,404 stretch steps, two runs each):
#: 32: 3.4-4.0 s, 64: 2.3 s, 128: 1.55 s, 256: 1.5-1.7 s, 512: 1.7-2.1 s.
STRETCH_ANCHOR_EVAL = 128
#: Why a cross stretch ended (:func:`cross_stretch_nb`'s ``stop``).
STOP_END, STOP_BOUND, STOP_BELOW = range(3)
CROSS_STOPS = ("end", "cross bound", "under maintenance")


@dataclass
class CrossStretch:
    """What a stretch needs to make the cross calls itself (:func:`cross_setup`).

    ``cross[m]``: market ``m`` has cross traders (its risk step scans them); ``call_level[m]``:
    its margin-call ratio; ``called``: each market's called cross accounts, in order;
    ``eval_limit``: the most accounts a bounded scan may evaluate (:meth:`.CrossIndex.split`).
    """

    index: CrossIndex
    cross: BoolArray
    call_level: FloatArray
    called: list[IntArray]
    eval_limit: int


class CrossCalls(NamedTuple):
    """The cross calls a stretch made: step ``j`` (ascending), market (ascending within a
    step), account (ascending within a market's step), ratio ``MM / E``; and each market's
    called cross accounts after the stretch (the risk step's order)."""

    step: IntArray
    market: IntArray
    acc: IntArray
    ratio: FloatArray
    called: list[IntArray]


def cross_setup(ex: Exchange, cindex: CrossIndex, marks: FloatArray) -> CrossStretch | None:
    """The stretch's cross state at the current ``marks``, or None when its scans could not
    be bounded (the index must answer :meth:`.CrossIndex.split` at these marks and have room
    for its touched accounts)."""
    risk = ex.risk
    n_m = len(ex.markets)
    cross = np.array([risk._modes_present(m)[1] for m in range(n_m)], dtype=np.bool_)
    called = [np.asarray(r.called_cross, dtype=np.int64) for r in risk.markets]
    if any(len(called[m]) and not cross[m] for m in range(n_m)):
        return None  # the step would clear that set
    if len(cindex._dirty) > max(DIRTY_FLOOR, int(len(cindex.acc) * DIRTY_SHARE)):
        return None
    if cindex.split(marks) is None:
        return None
    levels = np.array(
        [st.spec.liquidation.margin_call_ratio for st in ex.markets], dtype=np.float64
    )
    limit = max(64, int(len(cindex.acc) * PREFIX_SHARE))
    return CrossStretch(cindex, cross, levels, called, limit)


def cross_stretch(
    ex: Exchange, setup: CrossStretch, path: FloatArray, room: int = 64,
    anchor_eval: int = STRETCH_ANCHOR_EVAL,
) -> tuple[int, CrossCalls, int]:  # fmt: skip
    """Run the cross side of the risk steps along ``path`` (``[step, market]`` marks, from the
    engine's current state): the count of leading steps that only call cross accounts, the
    calls they make and why it ended (:data:`CROSS_STOPS`). ``room``: calls the kernel's
    arrays hold at first (they grow); ``anchor_eval``: the re-anchoring threshold
    (:data:`STRETCH_ANCHOR_EVAL`)."""
    index = setup.index
    sizes, entries, modes = ex._cross_columns()
    marks, floors, mmrs, cums, min_margins = ex._cross_tiers()
    if not index.can_anchor:
        anchor_eval = np.iinfo(np.int64).max
    called_len = np.array([len(c) for c in setup.called], dtype=np.int64)
    called_flat = np.concatenate(setup.called) if len(setup.called) else np.zeros(0, np.int64)
    near_cols = index.near_columns(sizes, entries, modes, ex._cash)  # merges the touched first
    flag = index._scratch()
    calls_flag = ex.risk._flags(ex.n_accounts)
    in_at = np.array([0, *accumulate(len(a) for a in index.in_acc)], dtype=np.int64)
    out = cross_stretch_nb(
        marks, np.ascontiguousarray(path, dtype=np.float64), setup.cross, setup.call_level,
        sizes, entries, modes, ex._kind, ex._cash, floors, mmrs, cums, min_margins,
        index.p0, index.p1, index.q, index.n_near, index.near_by_dist, index.near_dist,
        index._dirty, flag, MAX_MOVE, setup.eval_limit, anchor_eval,
        np.concatenate(index.in_acc).astype(np.int64), np.concatenate(index.in_q), in_at,
        index.near, near_cols, index.level, CROSS_SLACK, index.near_sorted,
        called_flat.astype(np.int64), called_len, calls_flag, max(int(room), 1),
    )  # fmt: skip
    count, stop, ev_step, ev_market, ev_acc, ev_ratio, out_called, out_len = out[:8]
    if out[8]:  # anchors re-taken (the scans would have re-taken them too)
        index.take_anchor(*out[9:])
        index.anchors += out[8] - 1
    bounds = [0, *accumulate(out_len.tolist())]
    called = [out_called[bounds[m] : bounds[m + 1]].copy() for m in range(len(out_len))]
    return int(count), CrossCalls(ev_step, ev_market, ev_acc, ev_ratio, called), int(stop)


@njit(cache=True)
def _grow_int(a: IntArray, size: int) -> IntArray:
    """``a`` copied into a new array of ``size`` entries (the rest uninitialized)."""
    out = np.empty(size, dtype=np.int64)
    out[: len(a)] = a
    return out


@njit(cache=True)
def _grow_float(a: FloatArray, size: int) -> FloatArray:
    """``a`` copied into a new array of ``size`` entries (the rest uninitialized)."""
    out = np.empty(size)
    out[: len(a)] = a
    return out


@njit(cache=True)
def _with_touched_inside(
    warn: IntArray,
    evaluated: IntArray,
    t_acc: IntArray,
    t_q: FloatArray,
    threshold: float,
    flag: BoolArray,
) -> IntArray:
    """``warn`` (ascending) with the touched accounts of ``t_acc`` (ascending) certainly in the
    zone and above maintenance (``t_q > threshold``) that were not evaluated, ascending.
    ``flag``: scratch, all False, left so."""
    n_extra = 0
    for i in range(len(t_acc)):
        n_extra += t_q[i] > threshold
    if n_extra == 0:
        return warn
    for a in evaluated:
        flag[a] = True
    out = merge_certain_nb(warn, t_acc, t_q, threshold, flag)
    for a in evaluated:
        flag[a] = False
    return out


@njit(cache=True)
def cross_stretch_nb(
    marks0: FloatArray,
    path: FloatArray,
    cross: BoolArray,
    call_level: FloatArray,
    sizes: tuple[FloatArray, ...],
    entries: tuple[FloatArray, ...],
    modes: tuple[npt.NDArray[np.int8], ...],
    kind: npt.NDArray[np.int8],
    cash: FloatArray,
    floors: tuple[FloatArray, ...],
    mmrs: tuple[FloatArray, ...],
    cums: tuple[FloatArray, ...],
    min_margins: FloatArray,
    p0: FloatArray,
    p1: FloatArray,
    q: FloatArray,
    n_near: int,
    near_by_dist: IntArray,
    near_dist: FloatArray,
    dirty: IntArray,
    flag: BoolArray,
    max_move: float,
    eval_limit: int,
    anchor_eval: int,
    in_acc: IntArray,
    in_q: FloatArray,
    in_at: IntArray,
    near: IntArray,
    near_cols: tuple[FloatArray, FloatArray, npt.NDArray[np.int8], FloatArray],
    level: float,
    cross_slack: float,
    keep: int,
    called_flat: IntArray,
    called_len: IntArray,
    calls_flag: BoolArray,
    cap: int,
) -> tuple[
    int, int, IntArray, IntArray, IntArray, FloatArray, IntArray, IntArray, int, FloatArray,
    IntArray, FloatArray, IntArray, FloatArray, IntArray,
]:  # fmt: skip
    """The cross side of the risk steps of ``path[j, m]`` (markets in order within a step,
    from the marks ``marks0``), each market's scan as :meth:`.MarginScans._cross_scan` makes
    it from the index's arrays (``p0`` ... ``in_q``), its calls as
    :meth:`.RiskEngine._margin_calls` makes them from the called sets (``called_flat``,
    ``called_len[m]`` each). A step is applied only whole; the first step at which a scan
    finds an account under maintenance or the bound fails ends the stretch. A scan that picks
    more than ``anchor_eval`` near accounts re-takes the anchor after it, as the scan does
    (:func:`.cross_kernels.anchor_nb` over ``near``, its columns ``near_cols`` gathered by
    :meth:`.CrossIndex.near_columns`, at the index's ``level``; ``in_acc`` and
    ``in_q`` flat, market ``m``'s at ``in_at[m] : in_at[m + 1]``). Returns the count of steps,
    the stop reason, the calls (step, market, account, ratio), the called sets after them
    (flat, with their lengths), the anchors re-taken and the last anchor (``p1``,
    ``near_by_dist``, ``near_dist``, ``in_acc``, ``in_q``, ``in_at``). ``flag`` and
    ``calls_flag``: scratch, all False, left so; ``cap``: the calls' arrays' first size."""
    n_steps, n_m = path.shape
    cur = marks0.copy()
    called = []
    staged = []
    start = 0
    for m in range(n_m):
        called.append(called_flat[start : start + called_len[m]].copy())
        staged.append(called[m])
        start += called_len[m]
    ev_step = np.empty(cap, dtype=np.int64)
    ev_market = np.empty(cap, dtype=np.int64)
    ev_acc = np.empty(cap, dtype=np.int64)
    ev_ratio = np.empty(cap)
    n_ev = 0
    anchors = 0
    count = n_steps
    stop = STOP_END
    # The touched accounts' own bounds at the stretch's first marks (nothing touches them
    # within it); without anchors (step schedules), every touched account is evaluated.
    if anchor_eval < np.iinfo(np.int64).max:
        t_by, t_dist, t_in_acc, t_in_q, t_in_at = touched_bounds_nb(
            dirty, sizes, entries, modes, kind, cash, marks0, floors, mmrs, cums, min_margins,
            level, cross_slack,
        )  # fmt: skip
    else:
        t_by, t_dist = dirty.copy(), np.full(len(dirty), -np.inf)
        t_in_acc, t_in_q = np.zeros(0, dtype=np.int64), np.zeros(0)
        t_in_at = np.zeros(n_m + 1, dtype=np.int64)
    # The accounts to evaluate depend on the marks only through how many near and touched
    # accounts the moves reach: while neither count changes (nor the anchor), the last
    # scan's ``evaluate`` is the one :func:`.cross_kernels.split_nb` would give again.
    last_kd, last_t = -1, -1
    evaluate, picked = np.zeros(0, dtype=np.int64), 0
    t_eval = np.zeros(0, dtype=np.int64)
    for j in range(n_steps):
        e0 = n_ev
        for m in range(n_m):
            cur[m] = path[j, m]
            staged[m] = called[m]
            if not cross[m]:
                continue
            move_t = 0.0
            for i in range(n_m):
                move_t = max(move_t, abs(cur[i] / marks0[i] - 1.0))
            thr_t = move_t * (1.0 + 1e-9) + 1e-12 if move_t < max_move else np.inf
            n_t = int(np.searchsorted(t_dist, thr_t, side="right"))
            kd, threshold = split_bound_nb(cur, p0, p1, q, n_near, near_dist, max_move)
            if kd < 0:
                stop = STOP_BOUND
                break
            if kd != last_kd or n_t != last_t:  # else the last scan's accounts
                t_eval = np.sort(t_by[:n_t])
                evaluate, picked = split_pick_nb(kd, near_by_dist, t_eval, flag)
                last_kd, last_t = kd, n_t
            if len(evaluate) > eval_limit:
                stop = STOP_BOUND
                break
            below, _, _, warn, _, _ = bounded_scan_nb(
                evaluate, m, sizes, entries, modes, kind, cash, cur, floors, mmrs, cums,
                min_margins, call_level[m], in_acc[in_at[m] : in_at[m + 1]],
                in_q[in_at[m] : in_at[m + 1]], threshold, dirty, flag,
            )  # fmt: skip
            if picked > anchor_eval:  # the next scans evaluate fewer accounts
                near_by_dist, near_dist, in_acc, in_q, in_at = anchor_nb(
                    near, near_cols[0], near_cols[1], near_cols[2], near_cols[3], cur, floors,
                    mmrs, cums, min_margins, level, cross_slack, keep,
                )  # fmt: skip
                p1 = cur.copy()
                anchors += 1
                last_kd = -1
            if len(below):
                stop = STOP_BELOW
                break
            warn = _with_touched_inside(
                warn, evaluate, t_in_acc[t_in_at[m] : t_in_at[m + 1]],
                t_in_q[t_in_at[m] : t_in_at[m + 1]], thr_t, flag,
            )  # fmt: skip
            new, fresh = calls_update_nb(called[m], warn, below, calls_flag)
            staged[m] = new
            k = 0
            for f in fresh:
                k += f
            if k == 0:
                continue
            acc = warn[fresh]
            ratio = np.empty(k)
            cross_subset_scan_nb(
                acc, m, sizes, entries, modes, kind, cash, cur, floors, mmrs, cums, min_margins,
                call_level[m], ratio, np.empty(k, dtype=np.int64), np.empty(k), np.empty(k),
                np.empty(k, dtype=np.int64),
            )  # fmt: skip
            if n_ev + k > cap:
                cap = max(2 * cap, n_ev + k)
                ev_step = _grow_int(ev_step, cap)
                ev_market = _grow_int(ev_market, cap)
                ev_acc = _grow_int(ev_acc, cap)
                ev_ratio = _grow_float(ev_ratio, cap)
            for i in range(k):
                ev_step[n_ev] = j
                ev_market[n_ev] = m
                ev_acc[n_ev] = acc[i]
                ev_ratio[n_ev] = ratio[i]
                n_ev += 1
        if stop != STOP_END:
            n_ev = e0
            count = j
            break
        for m in range(n_m):
            called[m] = staged[m]
    total = 0
    for m in range(n_m):
        total += len(called[m])
    out_called = np.empty(total, dtype=np.int64)
    out_len = np.empty(n_m, dtype=np.int64)
    start = 0
    for m in range(n_m):
        c = called[m]
        out_called[start : start + len(c)] = c
        out_len[m] = len(c)
        start += len(c)
    return (
        count, stop, ev_step[:n_ev].copy(), ev_market[:n_ev].copy(), ev_acc[:n_ev].copy(),
        ev_ratio[:n_ev].copy(), out_called, out_len, anchors, p1, near_by_dist, near_dist,
        in_acc, in_q, in_at,
    )  # fmt: skip
