"""Cells of a market's isolated positions per side, bounding their ADL scores at any mark.

BitMEX's ranking (``pnl_leverage``, docs/formulas.md 6.1) scores a trader in profit on side
``sigma`` at mark ``m`` as ``sigma (m - e) / e x |s| m / (M + s (m - e))``. With ``u = M / |s|``
(isolated margin per unit) and ``d = sigma (m - e) > 0`` (profit per unit) that is
``m d / (e (u + d))``: decreasing in ``u`` (for ``u > 0``), and in ``d`` increasing for longs
(``e = m - d``) and single-peaked at ``d = sqrt(m u)`` for shorts (``e = m + d``). So a group of
positions with ``u >= u_min`` and ``e`` in ``[e_min, e_max]`` cannot score above the closed
form at the group's corner (docs/formulas.md 6.1b), whatever the mark.

:class:`AdlIndex` groups one market's trader positions of each side into *cells* (bins of
``log u`` by bins of ``e``, a counting sort: linear time) and keeps copies of their size,
entry and isolated margin in cell order. The queue's top ``k`` (every score at or above the
``k``-th best, ties kept whole) is then found by :func:`select_top_nb`: cells in order of
their bound, exact scores (the dense pass's arithmetic on the same values, so the same floats)
until the ``k``-th best found is above every bound left. Positions changed since the cells
were built (the engine reports them through :meth:`AdlIndex.touch`, as for the zone-price
index) are *dirty*: their rows are dropped from the cells and they are scored from the live
columns. Too many dirty positions, funding or a replay rebuild the side at its next use.

The index is built when positions are loaded in bulk (``Exchange.open_positions``) and rebuilt
lazily after; the queue (:class:`deleverage.engine.risk.adl_queue.IndexedQueue`) falls back to
the dense pass for anything the cells cannot answer.
"""

from __future__ import annotations

import weakref
from typing import Any

import numpy as np
import numpy.typing as npt
from numba import njit

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

#: Bins of margin per unit (log scale) and of entry price (cells = their product).
U_BINS = 256
E_BINS = 16
#: Relative slack on a cell's bound (float rounding of the bound and of the exact scores).
BOUND_RTOL = 1e-9
#: Rebuild a side once its dirty positions exceed this share of its rows (and the floor).
DIRTY_SHARE = 1 / 8
DIRTY_FLOOR = 1024
#: Accounts in the strided sample of a queue's mean candidate size (``n // SAMPLE_COUNT``
#: apart, as :func:`deleverage.engine.risk.adl_queue._sample_mean_size` takes them).
SAMPLE_COUNT = 4096


@njit(cache=True, error_model="numpy")  # x / 0 gives inf or NaN, as in the dense pass
def build_side_nb(
    size: FloatArray,
    entry: FloatArray,
    margin: FloatArray,
    kind: npt.NDArray[np.int8],
    side: float,
    u_bins: int,
    e_bins: int,
) -> tuple[IntArray, FloatArray, FloatArray, FloatArray, IntArray, FloatArray, FloatArray,
           FloatArray, npt.NDArray[np.bool_], npt.NDArray[np.int32]]:  # fmt: skip
    """Cells of the traders (``kind == 0``) on ``side``: rows (account, size, entry, margin)
    in cell order, each cell's first row, its ``u_min``, ``e_min``, ``e_max``, whether a row
    of it has no finite positive ``u`` or entry (then it is always scanned), and each
    account's row (-1: none)."""
    n = len(size)
    rows = 0
    for i in range(n):
        rows += (kind[i] == 0) & (size[i] * side > 0.0)
    acc = np.empty(rows, dtype=np.int64)
    j = 0
    for i in range(n):
        if (kind[i] == 0) & (size[i] * side > 0.0):
            acc[j] = i
            j += 1
    u = np.empty(rows)
    e = np.empty(rows)
    for j in range(rows):
        a = acc[j]
        u[j] = margin[a] / abs(size[a])
        e[j] = entry[a]
    # Bins: uniform in log(u) and in e between a strided sample's 0.5% and 99.5% quantiles
    # (anything goes for exactness: bounds come from each cell's own rows; a row without a
    # finite positive u, NaN included, falls in an end bin). NaN entries count as distinct.
    stride = max(1, rows // 8192)
    us = np.sort(u[::stride])
    es = np.sort(e[::stride])
    n_cells = u_bins * e_bins
    cut = len(us) // 200
    if len(us):
        log_lo = np.log(max(us[cut], 1e-300))
        log_hi = np.log(max(us[len(us) - 1 - cut], 1e-300))
        e_lo, e_hi = es[cut], es[len(es) - 1 - cut]
    else:
        log_lo = log_hi = e_lo = e_hi = 0.0
    # Fewer distinct entries in the sample than entry bins (a book opened at a few prices):
    # one entry bin per distinct entry, the cells left to bins of u.
    distinct = 1 if len(es) else 0
    for j in range(1, len(es)):
        distinct += es[j] != es[j - 1]
    if distinct < e_bins:
        e_bins = max(1, distinct)
        u_bins = n_cells // e_bins
    u_scale = u_bins / (log_hi - log_lo) if log_hi > log_lo else 0.0
    e_scale = e_bins / (e_hi - e_lo) if e_hi > e_lo else 0.0
    cell = np.empty(rows, dtype=np.int64)
    start = np.zeros(n_cells + 1, dtype=np.int64)
    for j in range(rows):
        x = (np.log(u[j]) - log_lo) * u_scale if u[j] > 0.0 else -1.0
        bu = int(x) if 0.0 <= x < u_bins else (u_bins - 1 if x >= u_bins else 0)
        y = (e[j] - e_lo) * e_scale
        be = int(y) if 0.0 <= y < e_bins else (e_bins - 1 if y >= e_bins else 0)
        c = bu * e_bins + be
        cell[j] = c
        start[c + 1] += 1
    for c in range(n_cells):
        start[c + 1] += start[c]
    fill = start[:-1].copy()
    out_acc = np.empty(rows, dtype=np.int64)
    out_s = np.empty(rows)
    out_e = np.empty(rows)
    out_m = np.empty(rows)
    u_min = np.full(n_cells, np.inf)
    e_min = np.full(n_cells, np.inf)
    e_max = np.full(n_cells, -np.inf)
    bad = np.zeros(n_cells, dtype=np.bool_)
    row_of = np.full(n, -1, dtype=np.int32)
    for j in range(rows):
        c = cell[j]
        r = fill[c]
        fill[c] += 1
        a = acc[j]
        out_acc[r] = a
        out_s[r] = size[a]
        out_e[r] = e[j]
        out_m[r] = margin[a]
        row_of[a] = r
        if not (u[j] > 0.0 and u[j] < np.inf and e[j] > 0.0 and e[j] < np.inf):
            bad[c] = True  # NaN, zero, negative or infinite: no bound
        u_min[c] = min(u_min[c], u[j])
        e_min[c] = min(e_min[c], e[j])
        e_max[c] = max(e_max[c], e[j])
    return out_acc, out_s, out_e, out_m, start, u_min, e_min, e_max, bad, row_of


@njit(cache=True, error_model="numpy")  # x / 0 gives inf or NaN, as in the dense pass
def cell_bounds_nb(
    start: IntArray,
    u_min: FloatArray,
    e_min: FloatArray,
    e_max: FloatArray,
    bad: npt.NDArray[np.bool_],
    mark: float,
    side: float,
    out: FloatArray,
) -> None:
    """Each cell's upper bound on the scores of its rows at ``mark`` (``-inf``: none of them
    in profit; ``inf``: no bound), with a relative slack of :data:`BOUND_RTOL`."""
    for c in range(len(u_min)):
        if start[c + 1] == start[c]:
            out[c] = -np.inf
        elif bad[c]:
            out[c] = np.inf
        elif side > 0.0:
            if e_min[c] >= mark:
                out[c] = -np.inf
            else:
                d = mark - e_min[c]  # the most profit per unit: e = e_min
                out[c] = mark * d / (e_min[c] * (u_min[c] + d)) * (1.0 + BOUND_RTOL)
        else:
            if e_max[c] <= mark:
                out[c] = -np.inf
            else:
                lo = max(e_min[c] - mark, 0.0)
                hi = e_max[c] - mark
                d = min(max(np.sqrt(mark * u_min[c]), lo), hi)  # the peak, clamped
                out[c] = mark * d / ((mark + d) * (u_min[c] + d)) * (1.0 + BOUND_RTOL)


@njit(cache=True, error_model="numpy")  # x / 0 gives inf or NaN, as in the dense pass
def _score(s: float, e: float, m: float, mark: float, side: float) -> float:
    """:func:`deleverage.engine.risk.adl_queue.pnl_leverage_scores_nb`'s score of one row
    (same operations, same order), ``-inf`` when it is no candidate (kind checked by the
    caller)."""
    move = mark - e
    upnl = s * move
    if not ((s * side > 0.0) & (upnl > 0.0)):
        return -np.inf
    equity = m + upnl
    leverage = abs(s) * mark / equity if equity > 0.0 else np.inf
    return side * move / e * leverage


@njit(cache=True)
def kth_largest_nb(values: FloatArray, k: int) -> float:
    """The ``k``-th largest of ``values`` (``1 <= k <= len(values)``, no NaN): the value
    ``np.partition(values, n - k)[n - k]`` finds, by a quickselect on a copy (median of
    three pivots; a sort of what is left after 64 rounds)."""
    a = values.copy()
    target = len(a) - k
    lo = 0
    hi = len(a) - 1
    for _round in range(64):
        if hi <= lo:
            return float(a[target])
        mid = (lo + hi) >> 1
        x, y, z = a[lo], a[mid], a[hi]
        pivot = max(min(x, y), min(max(x, y), z))  # the median of the three
        i = lo
        j = hi
        while i <= j:
            while a[i] < pivot:
                i += 1
            while a[j] > pivot:
                j -= 1
            if i <= j:
                a[i], a[j] = a[j], a[i]
                i += 1
                j -= 1
        # a[lo..j] <= pivot, a[i..hi] >= pivot, a[j+1..i-1] == pivot
        if target <= j:
            hi = j
        elif target >= i:
            lo = i
        else:
            return float(a[target])
    rest = np.sort(a[lo : hi + 1])
    return float(rest[target - lo])


@njit(cache=True, error_model="numpy")  # x / 0 gives inf or NaN, as in the dense pass
def select_top_nb(
    bounds: FloatArray,
    start: IntArray,
    acc: IntArray,
    row_s: FloatArray,
    row_e: FloatArray,
    row_m: FloatArray,
    dirty_acc: IntArray,
    dirty_score: FloatArray,
    mark: float,
    side: float,
    k: int,
) -> tuple[IntArray, FloatArray, bool]:
    """The candidates scoring at or above the ``k``-th best (all of them when there are at
    most ``k``), with their scores, in no particular order; and whether that is every
    candidate (all cells read, none left below the ``k``-th best).

    ``dirty_score``: the dirty accounts' scores (``-inf``: no candidate; NaN makes the caller
    fall back). Cells are read in decreasing bound; reading stops at a cell whose bound is
    below the ``k``-th best score found so far (refreshed as the found set grows by a
    quarter: a stale, lower threshold only reads more). The found scores hold no NaN (a NaN
    row score is no candidate here, as ``score > -inf`` is false).
    """
    cap = max(4096, 2 * k)
    out_a = np.empty(cap, dtype=np.int64)
    out_s = np.empty(cap)
    n = 0
    for j in range(len(dirty_acc)):
        if dirty_score[j] > -np.inf:
            out_a[n] = dirty_acc[j]
            out_s[n] = dirty_score[j]
            n += 1
    live = np.flatnonzero(bounds > -np.inf)  # cells with a row in profit (or no bound)
    order = live[np.argsort(-bounds[live], kind="mergesort")]
    threshold = -np.inf
    counted = 0
    complete = True
    for c in order:
        bound = bounds[c]
        if n >= k:
            if threshold == -np.inf or 4 * n >= 5 * counted:
                threshold = kth_largest_nb(out_s[:n], k)
                counted = n
            if bound < threshold:
                complete = False
                break
        rows = start[c + 1] - start[c]
        if n + rows > cap:  # room for the whole cell first: the row loop stays lean
            cap = max(2 * cap, n + rows)
            grown_a = np.empty(cap, dtype=np.int64)
            grown_s = np.empty(cap)
            grown_a[:n] = out_a[:n]
            grown_s[:n] = out_s[:n]
            out_a, out_s = grown_a, grown_s
        for r in range(start[c], start[c + 1]):
            score = _score(row_s[r], row_e[r], row_m[r], mark, side)
            if score > -np.inf:
                out_a[n] = acc[r]
                out_s[n] = score
                n += 1
    if n > k:
        # The k-th best of the found set; the threshold already is when nothing was found
        # since it was taken.
        kth = threshold if counted == n else kth_largest_nb(out_s[:n], k)
        kept = 0
        for j in range(n):  # keep the scores at or above it, in place, in order
            if out_s[j] >= kth:
                out_a[kept] = out_a[j]
                out_s[kept] = out_s[j]
                kept += 1
        if kept < n:
            complete = False  # some candidates left below the k-th best
        n = kept
    return out_a[:n].copy(), out_s[:n].copy(), complete


@njit(cache=True, error_model="numpy")  # x / 0 gives inf or NaN, as in the dense pass
def dense_from_cells_nb(
    acc: IntArray,
    row_s: FloatArray,
    row_e: FloatArray,
    row_m: FloatArray,
    dirty_acc: IntArray,
    dirty_score: FloatArray,
    mark: float,
    side: float,
    out: FloatArray,
) -> int:
    """The dense score array the cells and the dirty scores stand for (``-inf``: no
    candidate); returns the number of candidates."""
    out[:] = -np.inf
    count = 0
    for r in range(len(acc)):
        score = _score(row_s[r], row_e[r], row_m[r], mark, side)
        if score > -np.inf:
            out[acc[r]] = score
            count += 1
    for j in range(len(dirty_acc)):
        out[dirty_acc[j]] = dirty_score[j]
        count += dirty_score[j] > -np.inf
    return count


@njit(cache=True, error_model="numpy")  # x / 0 gives inf or NaN, as in the dense pass
def sampled_candidates_nb(
    stride: int,
    n: int,
    has_row: npt.NDArray[np.bool_],
    sample_s: FloatArray,
    sample_e: FloatArray,
    sample_m: FloatArray,
    dirty_acc: IntArray,
    dirty_score: FloatArray,
    mark: float,
    side: float,
) -> IntArray:
    """The candidates among accounts ``0, stride, 2 stride, ... < n``, ascending, as the
    dense array the cells and the dirty scores stand for would list them.

    ``has_row[j]``, ``sample_*[j]``: account ``j x stride``'s row in the cells (whether it
    has one, its size, entry and margin), for the accounts of the build (:meth:`_Side.sample`,
    contiguous: the sample reads no row of the cells). A dirty account is scored from
    ``dirty_score`` (the dirty list is exactly the flagged accounts), any other from its row.
    """
    picked = 0
    for a in dirty_acc:
        picked += a % stride == 0
    sample_acc = np.empty(picked, dtype=np.int64)
    sample_score = np.empty(picked)
    picked = 0
    for j in range(len(dirty_acc)):
        if dirty_acc[j] % stride == 0:
            sample_acc[picked] = dirty_acc[j]
            sample_score[picked] = dirty_score[j]
            picked += 1
    order = np.argsort(sample_acc)
    sample_acc, sample_score = sample_acc[order], sample_score[order]
    out = np.empty((n + stride - 1) // stride, dtype=np.int64)
    k = 0
    at = 0  # the next dirty sampled account (both lists ascending)
    for i in range(0, n, stride):
        while at < picked and sample_acc[at] < i:
            at += 1
        if at < picked and sample_acc[at] == i:
            candidate = sample_score[at] > -np.inf
        elif i // stride < len(has_row) and has_row[i // stride]:
            j = i // stride
            candidate = _score(sample_s[j], sample_e[j], sample_m[j], mark, side) > -np.inf
        else:
            candidate = False
        if candidate:
            out[k] = i
            k += 1
    return out[:k]


@njit(cache=True, error_model="numpy")  # x / 0 gives inf or NaN, as in the dense pass
def dirty_scores_nb(
    accounts: IntArray,
    size: FloatArray,
    entry: FloatArray,
    margin: FloatArray,
    kind: npt.NDArray[np.int8],
    mark: float,
    side: float,
) -> FloatArray:
    """Scores of ``accounts`` from the live columns (``-inf``: no candidate), as the dense
    pass writes them."""
    out = np.empty(len(accounts))
    for j in range(len(accounts)):
        a = accounts[j]
        s = size[a]
        move = mark - entry[a]
        upnl = s * move
        eligible = (kind[a] == 0) & (s * side > 0.0) & (upnl > 0.0)
        equity = margin[a] + upnl
        leverage = abs(s) * mark / equity if equity > 0.0 else np.inf
        score = side * move / entry[a] * leverage
        out[j] = score if eligible else -np.inf
    return out


@njit(cache=True, error_model="numpy")  # x / 0 gives inf or NaN, as in the dense pass
def merge_dirty_nb(
    touched: IntArray,
    flag: npt.NDArray[np.bool_],
    row_of: npt.NDArray[np.int32],
    row_s: FloatArray,
    dirty: IntArray,
    n_dirty: int,
) -> tuple[IntArray, int]:
    """Take ``touched`` accounts into the dirty set (``flag`` per account, ``dirty`` its
    list): a new one's row leaves the cells (its size copy set to 0: never in profit).
    Returns the list (grown if needed) and its length."""
    for a in touched:
        if a < len(flag) and flag[a]:
            continue
        if a < len(flag):
            flag[a] = True
        if a < len(row_of) and row_of[a] >= 0:
            row_s[row_of[a]] = 0.0
        if n_dirty == len(dirty):
            grown = np.empty(max(64, 2 * len(dirty)), dtype=np.int64)
            grown[:n_dirty] = dirty[:n_dirty]
            dirty = grown
        dirty[n_dirty] = a
        n_dirty += 1
    return dirty, n_dirty


@njit(cache=True, error_model="numpy")  # x / 0 gives inf or NaN, as build_side_nb
def refresh_margins_nb(
    row_of: npt.NDArray[np.int32],
    row_s: FloatArray,
    row_e: FloatArray,
    row_m: FloatArray,
    start: IntArray,
    margin: FloatArray,
    u_min: FloatArray,
    e_min: FloatArray,
    e_max: FloatArray,
    bad: npt.NDArray[np.bool_],
) -> None:
    """Copy every row's margin from the live column again and re-derive each cell's
    ``u_min``, ``e_min``, ``e_max`` and no-bound flag from its rows, as :func:`build_side_nb`
    derives them (funding moved the margins; sizes and entries did not move). Dirty rows
    (size copy 0: never a candidate) take no part in the figures. The copies are written in
    account order (``row_of``: each account's row, -1 for none), the figures read in row
    order: no pass reads at random."""
    for a in range(min(len(row_of), len(margin))):
        r = row_of[a]
        if r >= 0:
            row_m[r] = margin[a]
    for c in range(len(start) - 1):
        um = np.inf
        em = np.inf
        ex = -np.inf
        no_bound = False
        for r in range(start[c], start[c + 1]):
            s = row_s[r]
            if s == 0.0:
                continue
            u = row_m[r] / abs(s)
            e = row_e[r]
            if not (u > 0.0 and u < np.inf and e > 0.0 and e < np.inf):
                no_bound = True
            um = min(um, u)
            em = min(em, e)
            ex = max(ex, e)
        u_min[c] = um
        e_min[c] = em
        e_max[c] = ex
        bad[c] = no_bound


class _Side:
    """The cells of one side (+1 long, -1 short) of one market."""

    def __init__(self, side: float) -> None:
        self.side = side
        self.valid = False
        self.generation = 0  # bumped whenever the rows change (merge, rebuild)
        self.rows = 0
        self._touched: list[IntArray] = []
        self._pending = 0
        self._flag = np.zeros(0, dtype=np.bool_)
        self._dirty = np.zeros(0, dtype=np.int64)
        self._n_dirty = 0
        self.cells: tuple[IntArray, FloatArray, FloatArray, FloatArray, IntArray] | None = None
        self._stats: tuple[FloatArray, FloatArray, FloatArray, npt.NDArray[np.bool_]] | None = None
        self._row_of = np.zeros(0, dtype=np.int32)
        self._bounds = np.zeros(0)
        self._margins_stale = False
        self._sample: (
            tuple[int, npt.NDArray[np.bool_], FloatArray, FloatArray, FloatArray] | None
        ) = None
        #: The queue reading these rows (a weak reference): detached (given a dense copy of
        #: what it read) before the rows change, if it is still alive.
        self.user: weakref.ref[Any] | None = None

    def __getstate__(self) -> dict[str, Any]:
        # pickle takes no weak reference (a service snapshot pickles the engine): the queue
        # itself goes in its place, and a weak reference to it comes back on load
        state = self.__dict__.copy()
        state["user"] = self.user() if self.user is not None else None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        user = state.pop("user")
        self.__dict__.update(state)
        self.user = weakref.ref(user) if user is not None else None

    def touch(self, accounts: IntArray) -> None:
        if not self.valid:
            return
        self._touched.append(accounts)
        self._pending += len(accounts)
        limit = max(DIRTY_FLOOR, int(self.rows * DIRTY_SHARE))
        if self._pending + self._n_dirty <= limit:
            return
        # The touched lists repeat accounts (the book's account is in every fill): take them
        # in now (each account once) unless a queue still reads the rows as they are.
        user = self.user() if self.user is not None else None
        if user is None or user.detached:
            self.merge()
        if self._n_dirty > limit or self._pending > 4 * limit:
            self.invalidate()

    def invalidate(self) -> None:
        self.valid = False
        self._touched = []
        self._pending = 0

    def margins_moved(self) -> None:
        """Isolated margins moved (funding): refresh the rows' margins at the next use."""
        if self.valid:
            self._margins_stale = True

    def refresh_margins(self, margin: FloatArray) -> None:
        """The rows' margin copies from the live column, the cells' figures from their rows
        (:func:`refresh_margins_nb`): a pass over the rows instead of a rebuild."""
        if not self._margins_stale:
            return
        assert self.cells is not None
        assert self._stats is not None
        self._release()
        _, row_s, row_e, row_m, start = self.cells
        refresh_margins_nb(self._row_of, row_s, row_e, row_m, start, margin, *self._stats)
        self._sample = self._sample_rows(self._sample[0] if self._sample else 1)
        self._margins_stale = False
        self.generation += 1

    def _release(self) -> None:
        user = self.user() if self.user is not None else None
        if user is not None:
            user.detach()
        self.user = None

    def build(
        self, size: FloatArray, entry: FloatArray, margin: FloatArray, kind: npt.NDArray[np.int8]
    ) -> None:
        self._release()
        acc, s, e, m, start, u_min, e_min, e_max, bad, row_of = build_side_nb(
            size, entry, margin, kind, self.side, U_BINS, E_BINS
        )
        self.cells = (acc, s, e, m, start)
        self._stats = (u_min, e_min, e_max, bad)
        self._row_of = row_of
        self._bounds = np.empty(len(u_min))
        self._flag = np.zeros(len(size), dtype=np.bool_)
        self._dirty = np.zeros(64, dtype=np.int64)
        self._n_dirty = 0
        self._touched = []
        self._pending = 0
        self._margins_stale = False
        self.rows = len(acc)
        self.valid = True
        self.generation += 1
        self._sample = self._sample_rows(max(1, len(size) // SAMPLE_COUNT))

    def merge(self) -> None:
        """Take the accounts touched since the last use into the dirty set."""
        if not self._touched:
            return
        assert self.cells is not None
        self._release()
        touched = self._touched[0] if len(self._touched) == 1 else np.concatenate(self._touched)
        top = int(touched.max()) + 1 if len(touched) else 0
        if top > len(self._flag):  # accounts opened since the build: flagged like the rest
            grown = np.zeros(max(top, 2 * len(self._flag)), dtype=np.bool_)
            grown[: len(self._flag)] = self._flag
            self._flag = grown
        self._dirty, self._n_dirty = merge_dirty_nb(
            touched, self._flag, self._row_of, self.cells[1], self._dirty, self._n_dirty
        )
        self._touched = []
        self._pending = 0
        self.generation += 1

    def _sample_rows(
        self, stride: int
    ) -> tuple[int, npt.NDArray[np.bool_], FloatArray, FloatArray, FloatArray]:
        """Every ``stride``-th account of the build: whether it has a row, and the row's size,
        entry and margin as built (a dirty account's row is never read: see
        :func:`sampled_candidates_nb`)."""
        assert self.cells is not None
        _, row_s, row_e, row_m, _ = self.cells
        rows = self._row_of[::stride]
        has = rows >= 0
        at = np.where(has, rows, 0)
        if not len(row_s):
            empty = np.zeros(len(rows))
            return stride, has, empty, empty, empty
        return stride, has, row_s[at], row_e[at], row_m[at]

    def sample(
        self, stride: int
    ) -> tuple[npt.NDArray[np.bool_], FloatArray, FloatArray, FloatArray]:
        """:meth:`_sample_rows` of ``stride`` (kept from the build when the stride is the
        build's: only dirty rows change after it, and they are not read)."""
        kept = self._sample
        if kept is None or kept[0] != stride:
            kept = self._sample_rows(stride)
        return kept[1], kept[2], kept[3], kept[4]

    @property
    def flag(self) -> npt.NDArray[np.bool_]:
        """Per account (of those at the build): dirty."""
        return self._flag

    @property
    def row_of(self) -> npt.NDArray[np.int32]:
        """Per account (of those at the build): its row in the cells, -1 for none."""
        return self._row_of

    @property
    def dirty(self) -> IntArray:
        """The dirty accounts (each once, in the order they were first touched)."""
        return self._dirty[: self._n_dirty]

    def bounds(self, mark: float) -> FloatArray:
        assert self.cells is not None
        assert self._stats is not None
        cell_bounds_nb(self.cells[4], *self._stats, mark, self.side, self._bounds)
        return self._bounds


class AdlIndex:
    """The cells of one market's trader positions, per side (see the module docstring)."""

    def __init__(self, market: int) -> None:
        self.market = market
        self.sides = {1: _Side(1.0), -1: _Side(-1.0)}
        self.rebuilds = 0

    def touch(self, accounts: IntArray) -> None:
        """Positions of ``accounts`` changed: score them from live state until a rebuild."""
        for side in self.sides.values():
            side.touch(accounts)

    def invalidate(self) -> None:
        """Every position may have moved (tiers, replay): rebuild on next use."""
        for side in self.sides.values():
            side.invalidate()

    def margins_moved(self) -> None:
        """Isolated margins moved, sizes and entries did not (funding): the rows' margins
        and the cells' figures are refreshed on next use (:meth:`_Side.refresh_margins`),
        the cells kept."""
        for side in self.sides.values():
            side.margins_moved()

    def side(
        self,
        side: int,
        size: FloatArray,
        entry: FloatArray,
        margin: FloatArray,
        kind: npt.NDArray[np.int8],
    ) -> _Side:
        """One side, rebuilt from the live columns if it is not valid, its touched accounts
        taken in, its margins refreshed if they moved."""
        cells = self.sides[side]
        if not cells.valid:
            cells.build(size, entry, margin, kind)
            self.rebuilds += 1
        else:
            cells.merge()
            cells.refresh_margins(margin)
        return cells

    def build(
        self, size: FloatArray, entry: FloatArray, margin: FloatArray, kind: npt.NDArray[np.int8]
    ) -> None:
        """Both sides from the live columns (arrays of the live accounts)."""
        for cells in self.sides.values():
            cells.build(size, entry, margin, kind)
        self.rebuilds += 1
