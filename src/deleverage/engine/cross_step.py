"""The risk step's cross margin calls in one compiled call, and the bounded scan's result.

On a marked step of a market with cross traders, :meth:`.RiskEngine._margin_calls` asked the
cross scan (:meth:`.MarginScans.cross_scan`: the index's split, the bounded scan, perhaps a
new anchor), updated the called set from it (:func:`.step_kernels.calls_update_nb`) and took
the fresh calls' ratios (:meth:`.MarginScans.cross_warn_ratios`): a dozen Python calls and
four compiled ones a step, ~18,400 steps on benchmarks/cascade_day.py's cross day.
:func:`cross_calls` does the same work in one compiled call (:func:`cross_calls_nb`, built
of the step's own functions: :func:`.cross_kernels.split_bound_nb`,
:func:`.cross_kernels.split_pick_nb`, :func:`.cross_kernels.bounded_scan_nb`,
:func:`.step_kernels.calls_update_nb`, the fresh calls' ratios by
:func:`.cross_kernels.cross_subset_scan_nb`), so every figure is the scan's, and leaves the
scan (a :class:`BoundedScan`) in the engine's cache for the step's candidates, as the scan
would; it re-takes the anchor where the scan would (:meth:`.MarginScans._reanchor`). Where
the index cannot bound the scan (the full pass and a rebuild follow), in the check mode
(``check_invariants``) or with the scan of the state already cached, it answers None and
the step takes the scan's path. tests/unit/risk/test_cross_step_twin.py compares the two
paths call by call (called sets, fresh accounts and ratios, the cached scan) and journals.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
from numba import njit

from deleverage.engine.cross_index import (
    DIRTY_FLOOR,
    DIRTY_SHARE,
    MAX_MOVE,
    PREFIX_SHARE,
    anchor_threshold,
)
from deleverage.engine.cross_kernels import (
    bounded_scan_nb,
    cross_subset_scan_nb,
    split_bound_nb,
    split_pick_nb,
)
from deleverage.engine.risk.step_kernels import calls_update_nb
from deleverage.errors import InvariantError

if TYPE_CHECKING:
    from deleverage.engine.scans import MarginScans

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


class BoundedScan(dict[str, Any]):
    """A bounded cross scan's result: ``warn_ratio`` is computed on first access, at the state
    the scan saw (reading it after the state changed is an error: the cached scan of that
    version is no longer current either)."""

    def __init__(self, scans: MarginScans, m: int, call_level: float) -> None:
        super().__init__()
        self._scans = scans
        self._m = m
        self._level = call_level
        self._version = scans._version
        #: The warned accounts the scan evaluated (ascending) and their ``warn_ratio``.
        self.evaluated: tuple[IntArray, FloatArray] | None = None

    def __missing__(self, key: str) -> Any:
        if key != "warn_ratio":
            raise KeyError(key)
        if self._scans._version != self._version:
            raise InvariantError("warn_ratio of a cross scan read after the state changed")
        ratio = self._scans._warn_ratios(self._m, self._level, self["warn"])
        ratio.flags.writeable = False
        self["warn_ratio"] = ratio
        return ratio


def cross_calls(
    ex: MarginScans, m: int, call_level: float, called: IntArray, calls_flag: BoolArray
) -> tuple[IntArray, IntArray, FloatArray] | None:
    """Market ``m``'s cross called set after its mark (from ``called``, in order), the
    accounts called now (ascending) and their ratios ``MM / E``: what
    :meth:`.RiskEngine._margin_calls` makes of :meth:`.MarginScans.cross_scan` at
    ``call_level``, in one compiled call (module docstring); the scan is cached as the scan
    caches it. None where the step's path must run (no bound, check mode, scan cached).
    ``calls_flag``: scratch over the accounts, all False (left so)."""
    if ex.check_invariants or not ex.use_level_index:
        return None
    key = ("scan", m, call_level)
    hit = ex._cache.get(key)
    if hit is not None and hit[0] == ex._version:
        return None
    index = ex._cross_index.get(min(float(call_level), 1.0))
    marks = ex.mark_prices()
    if index is None or not index.valid or len(marks) != len(index.p0):
        return None
    index.merge_touched()  # what CrossIndex.split does first
    if len(index._dirty) > max(DIRTY_FLOOR, int(len(index.acc) * DIRTY_SHARE)):
        return None
    (sizes, entries, modes), (floors, mmrs, cums, min_margins) = ex._cross_static()
    limit = max(64, int(len(index.acc) * PREFIX_SHARE))
    picked, below, below_e, below_m, warn, ev_warn, ev_ratio, new, fresh, ratio = cross_calls_nb(
        marks, m, sizes, entries, modes, ex._kind, ex._cash, floors, mmrs, cums, min_margins,
        call_level, index.p0, index.p1, index.q, index.n_near, index.near_by_dist,
        index.near_dist, index._dirty, index._scratch(), MAX_MOVE, limit, index.in_acc[m],
        index.in_q[m], np.asarray(called, dtype=np.int64), calls_flag,
    )  # fmt: skip
    if picked < 0:
        return None
    scan = BoundedScan(ex, m, call_level)
    scan.update(below=below, below_equity=below_e, below_maintenance=below_m, warn=warn)
    scan.evaluated = (ev_warn, ev_ratio)
    ex._cache[key] = (ex._version, scan)
    if index.can_anchor and picked > anchor_threshold(limit):  # as the scan re-takes it
        ex._reanchor(index, marks)
    return new, fresh, ratio


@njit(cache=True)
def cross_calls_nb(
    marks: FloatArray,
    m: int,
    sizes: tuple[FloatArray, ...],
    entries: tuple[FloatArray, ...],
    modes: tuple[npt.NDArray[np.int8], ...],
    kind: npt.NDArray[np.int8],
    cash: FloatArray,
    floors: tuple[FloatArray, ...],
    mmrs: tuple[FloatArray, ...],
    cums: tuple[FloatArray, ...],
    min_margins: FloatArray,
    call_level: float,
    p0: FloatArray,
    p1: FloatArray,
    q: FloatArray,
    n_near: int,
    near_by_dist: IntArray,
    near_dist: FloatArray,
    dirty: IntArray,
    flag: BoolArray,
    max_move: float,
    limit: int,
    in_acc: IntArray,
    in_q: FloatArray,
    called: IntArray,
    calls_flag: BoolArray,
) -> tuple[
    int, IntArray, FloatArray, FloatArray, IntArray, IntArray, FloatArray, IntArray, IntArray,
    FloatArray,
]:  # fmt: skip
    """:func:`cross_calls`' arithmetic: the split of :meth:`.CrossIndex.split` at ``marks``
    (the index's arrays ``p0`` ... ``dirty``; more than ``limit`` accounts to evaluate, or no
    bound, answer -1 and nothing else is done), the bounded scan of
    :meth:`.MarginScans._cross_scan_split` (``in_acc``, ``in_q``: market ``m``'s accounts
    certainly in the zone at the anchor), the called set's update of
    :meth:`.RiskEngine._calls` and the fresh calls' ratios. Returns the near accounts picked
    not touched (-1: no bound), the scan's ``below`` with their ``E`` and ``MM``, ``warn``,
    the evaluated warned accounts with their ratios, the new called set, the fresh calls
    (ascending) and their ratios. ``flag``, ``calls_flag``: scratch, all False, left so."""
    kd, threshold = split_bound_nb(marks, p0, p1, q, n_near, near_dist, max_move)
    if kd < 0:
        return -1, dirty[:0], q[:0], q[:0], dirty[:0], dirty[:0], q[:0], dirty[:0], dirty[:0], q[:0]
    evaluate, picked = split_pick_nb(kd, near_by_dist, dirty, flag)
    if len(evaluate) > limit:
        return -1, dirty[:0], q[:0], q[:0], dirty[:0], dirty[:0], q[:0], dirty[:0], dirty[:0], q[:0]
    below, below_e, below_m, warn, ev_warn, ev_ratio = bounded_scan_nb(
        evaluate, m, sizes, entries, modes, kind, cash, marks, floors, mmrs, cums, min_margins,
        call_level, in_acc, in_q, threshold, dirty, flag,
    )  # fmt: skip
    new, is_fresh = calls_update_nb(called, warn, below, calls_flag)
    k = 0
    for f in is_fresh:
        k += f
    fresh = np.empty(k, dtype=np.int64)
    i = 0
    for j in range(len(warn)):
        if is_fresh[j]:
            fresh[i] = warn[j]
            i += 1
    ratio = np.empty(k)
    cross_subset_scan_nb(
        fresh, m, sizes, entries, modes, kind, cash, marks, floors, mmrs, cums, min_margins,
        call_level, ratio, np.empty(k, dtype=np.int64), np.empty(k), np.empty(k),
        np.empty(k, dtype=np.int64),
    )  # fmt: skip
    return picked, below, below_e, below_m, warn, ev_warn, ev_ratio, new, fresh, ratio
