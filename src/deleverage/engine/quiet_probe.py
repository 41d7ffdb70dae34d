"""Whether a mark liquidates, asked before the quiet bands are built for it.

A stretch try (:meth:`deleverage.sim.quiet.QuietStretches.advance`) gathers the engine's
bands, call window and called positions (about a millisecond after a crash) and then walks
the path; during a cascade half of the tries stop at their first step, most because a
position is under maintenance at that step's mark: the risk step liquidates it, and no
stretch runs. :func:`liquidates_first` asks that first, from the step's marks (the stretch
kernel's own rule, :func:`deleverage.sim.quiet.venue_mark_nb`) and each market's
liquidation-price index (the :class:`.ZoneTracker` at level 1: its sorted clean entries give
the highest liquidation price of a long and the lowest of a short among the isolated
positions; dirty entries, unpriced there, are left out, and an index with touches not
taken in yet gives no answer). A mark at or beyond one of them
(with the index's slack) puts that position under maintenance, and the try would stop at
its first step: it is not made.

The single-mark fast path asks the same before it builds bands
(:class:`deleverage.engine.quiet_mark.QuietMarks`): during a cascade most marks it looked at
liquidated, after a millisecond of bands that could not serve them.

Cross accounts likewise (issue #20, cross10: on the cross day 1,009 of 1,919 tries that made
cross calls stopped at their first step, each after ~0.5 ms of setup): :func:`cross_below_nb`
runs the first step's cross scans as the stretch does (market by market in order, the
markets before at their new marks; the accounts :func:`.cross_kernels.split_nb` picks
evaluated by :func:`.cross_kernels.cross_subset_scan_nb`), and an account under maintenance
in one of them stops the try at its first step. A scan the cross index cannot bound gives no
answer.

The answer only decides whether a try is made (whether bands are built); every step a try
does not cover runs step by step, so the results do not depend on it (the stretch and
quiet-mark twins compare the runs).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
from numba import njit

from deleverage.engine.cross_index import DIRTY_FLOOR, DIRTY_SHARE, MAX_MOVE
from deleverage.engine.cross_kernels import cross_subset_scan_nb, split_bound_nb, split_pick_nb
from deleverage.engine.level_index import ZONE_RTOL
from deleverage.engine.quiet import first_clean_nb

if TYPE_CHECKING:
    from deleverage.engine.exchange import Exchange

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@njit(cache=True)
def liq_edges_nb(
    long_neg: FloatArray,
    long_acc: IntArray,
    long_head: int,
    short_price: FloatArray,
    short_acc: IntArray,
    short_head: int,
    flag: npt.NDArray[np.bool_],
) -> tuple[float, float]:
    """The key of the first clean entry of each side of a sorted index: the highest
    liquidation price of a long (``-inf`` when none) and the lowest of a short (``inf``)."""
    i = first_clean_nb(long_acc, flag, long_head)
    j = first_clean_nb(short_acc, flag, short_head)
    long = -long_neg[i] if i < len(long_acc) else -np.inf
    short = short_price[j] if j < len(short_acc) else np.inf
    return long, short


def liquidates_first(ex: Exchange, marks: FloatArray) -> bool:
    """Whether an isolated position of some market is under maintenance at ``marks`` (one
    per market) by its market's liquidation-price index, or a cross account at the first
    step's scans (:func:`cross_liquidates_first`; module docstring); False where a market has
    no such index."""
    from deleverage.engine.zone_calls import ZoneTracker

    for m in range(len(marks)):
        tracker = ex._level_index.get((m, 1.0))
        if not isinstance(tracker, ZoneTracker) or not tracker.valid or tracker._touched:
            continue  # touched positions not taken in yet: no answer from this index
        p = float(marks[m])
        long, short = liq_edges_nb(
            tracker.long_neg_price, tracker.long_acc, tracker.long_head, tracker.short_price,
            tracker.short_acc, tracker.short_head, tracker.dirty_flag,
        )  # fmt: skip
        if p * (1.0 - ZONE_RTOL) <= long or p * (1.0 + ZONE_RTOL) >= short:
            return True
    return cross_liquidates_first(ex, marks)


def cross_liquidates_first(ex: Exchange, marks: FloatArray) -> bool:
    """Whether a step to ``marks`` (one per market, set in market order) finds a cross account
    under maintenance in one of its markets' scans (:func:`cross_below_nb` with the cross
    index's bounds); False where no market has cross traders or the index cannot bound the
    scans (markets at different call levels, an index not built, too many touched
    accounts)."""
    risk = ex.risk
    n_m = len(ex.markets)
    cross = np.array([risk._modes_present(m)[1] for m in range(n_m)], dtype=np.bool_)
    if not cross.any():
        return False
    call_level = np.array(
        [st.spec.liquidation.margin_call_ratio for st in ex.markets], dtype=np.float64
    )
    levels = {min(float(call_level[m]), 1.0) for m in range(n_m) if cross[m]}
    if len(levels) > 1:
        return False
    index = ex._cross_index.get(levels.pop())
    if index is None or not index.valid or len(index.p0) != n_m:
        return False
    index.merge_touched()  # what CrossIndex.split does first
    if len(index._dirty) > max(DIRTY_FLOOR, int(len(index.acc) * DIRTY_SHARE)):
        return False  # the step would run the full pass
    sizes, entries, modes = ex._cross_columns()
    marks0, floors, mmrs, cums, min_margins = ex._cross_tiers()
    below = cross_below_nb(
        marks0, np.ascontiguousarray(marks, dtype=np.float64), cross, call_level, sizes, entries,
        modes, ex._kind, ex._cash, floors, mmrs, cums, min_margins, index.p0, index.p1, index.q,
        index.n_near, index.near_by_dist, index.near_dist, index._dirty, index._scratch(),
        MAX_MOVE,
    )  # fmt: skip
    return bool(below)


@njit(cache=True)
def cross_below_nb(
    marks0: FloatArray,
    marks: FloatArray,
    cross: npt.NDArray[np.bool_],
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
    flag: npt.NDArray[np.bool_],
    max_move: float,
) -> bool:
    """Whether the cross scans of a step from ``marks0`` to ``marks`` (market ``m`` scanned
    with the markets up to it at their new marks, the others at ``marks0``; markets without
    cross traders, ``cross[m]`` False, not scanned) find a trader under maintenance: the
    accounts :func:`.cross_kernels.split_nb` picks with the cross index's arrays (``p0`` ...
    ``dirty``) evaluated as the bounded scan does (the others are out of the zone or certainly
    above maintenance). False as soon as a scan has no bound. ``flag``: scratch, all False,
    left so."""
    cur = marks0.copy()
    for m in range(len(marks)):
        cur[m] = marks[m]
        if not cross[m]:
            continue
        kd, _ = split_bound_nb(cur, p0, p1, q, n_near, near_dist, max_move)
        if kd < 0:
            return False
        evaluate, _ = split_pick_nb(kd, near_by_dist, dirty, flag)
        k = len(evaluate)
        n_below, _ = cross_subset_scan_nb(
            evaluate, m, sizes, entries, modes, kind, cash, cur, floors, mmrs, cums, min_margins,
            call_level[m], np.empty(k), np.empty(k, dtype=np.int64), np.empty(k), np.empty(k),
            np.empty(k, dtype=np.int64),
        )  # fmt: skip
        if n_below:
            return True
    return False
