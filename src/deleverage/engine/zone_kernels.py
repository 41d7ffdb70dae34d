"""The tracked isolated scan's compiled parts (:mod:`deleverage.engine.zone_calls`).

- :func:`zone_step_nb`: the positions whose zone status can differ between two marks (the
  crossed band of the call-level index, the liquidation prefix, the dirty and touched
  positions) evaluated with the scan's own arithmetic, or the word that the zone's walk is
  cheaper;
- :func:`calls_apply_nb`: the called set after the status changes;
- :func:`zone_calls_nb`: both in one call, where the called set is updated right after the
  step (the risk step's margin calls); :func:`refresh_calls_nb`: the two indexes' dirty
  refreshes (:func:`.refresh_pair_nb`) first, in the same call.

The rules and the exactness argument are :mod:`deleverage.engine.zone_calls`'s.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
from numba import njit

from deleverage.engine.level_scan import _classify_nb, refresh_pair_nb

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
Side = tuple[
    FloatArray, IntArray, int
]  # sorted key (-price of longs, price of shorts), accounts, head
Dirty = tuple[BoolArray, bool, IntArray, FloatArray]  # flags, any flagged, dirty accounts, prices


@njit(cache=True)
def zone_step_nb(
    c_long: Side,
    c_short: Side,
    c_dirty: Dirty,
    l_long: Side,
    l_short: Side,
    l_dirty: Dirty,
    touched: IntArray,
    size: FloatArray,
    entry: FloatArray,
    margin: FloatArray,
    mode: npt.NDArray[np.int8],
    kind: npt.NDArray[np.int8],
    p_old: float,
    p_new: float,
    floor: FloatArray,
    mmr: FloatArray,
    cum: FloatArray,
    min_margin: float,
    call_level: float,
    rtol: float,
    status: npt.NDArray[np.int8],
    seen: BoolArray,
    pending: BoolArray,
    walk_rtol: float,
    walk_weight: float,
    walk_min: int,
    walk_rows: int,
) -> tuple[IntArray, FloatArray, FloatArray, IntArray, IntArray, bool]:
    """Evaluate at ``p_new`` the positions whose status can differ from the one they had at
    ``p_old`` (module docstring): ``c_*`` the call-level index (sides and dirty entries),
    ``l_*`` the liquidation-price index, ``touched`` the accounts changed since. Updates
    ``status``; returns the positions under maintenance (accounts ascending, equity,
    maintenance), the accounts whose status changed that were not ``pending`` yet (now
    flagged), the liquidation index's new heads (long, short) and False.

    Before anything is read or moved, the entries this step would evaluate (the band, the
    liquidation prefixes, the dirty and touched accounts; scattered reads) are counted against
    those the index's own walk of the zone at ``p_new`` reads (the call-level prefixes at
    ``walk_rtol``, in sorted order, and its dirty entries): when there are at least
    ``walk_min`` of them and ``walk_weight`` times their count exceeds the walk's (plus
    ``walk_rows``, the entries whose row copies the walk must make first), nothing is
    evaluated or changed and the last value is True (the caller takes the walk:
    :data:`WALK_WEIGHT`). ``seen``: scratch over the accounts, all False (left so)."""
    heads = np.array([l_long[2], l_short[2]], dtype=np.int64)
    lo = min(p_old, p_new) * (1.0 - rtol)
    hi = max(p_old, p_new) * (1.0 + rtol)
    bounds = np.empty((4, 2), dtype=np.int64)
    bounds[0, 0] = max(c_long[2], int(np.searchsorted(c_long[0], -hi, side="left")))
    bounds[0, 1] = int(np.searchsorted(c_long[0], -lo, side="right"))
    bounds[1, 0] = max(c_short[2], int(np.searchsorted(c_short[0], lo, side="left")))
    bounds[1, 1] = int(np.searchsorted(c_short[0], hi, side="right"))
    bounds[2, 0] = l_long[2]
    bounds[2, 1] = int(np.searchsorted(l_long[0], -lo, side="right"))
    bounds[3, 0] = l_short[2]
    bounds[3, 1] = int(np.searchsorted(l_short[0], hi, side="right"))
    n_track = len(c_dirty[2]) + len(l_dirty[2]) + len(touched)
    for side in range(4):
        n_track += max(bounds[side, 1] - bounds[side, 0], 0)
    if walk_weight > 0.0 and n_track >= walk_min:
        w_lo = p_new * (1.0 - walk_rtol)
        w_hi = p_new * (1.0 + walk_rtol)
        n_walk = len(c_dirty[2]) + walk_rows
        n_walk += max(int(np.searchsorted(c_long[0], -w_lo, side="right")) - c_long[2], 0)
        n_walk += max(int(np.searchsorted(c_short[0], w_hi, side="right")) - c_short[2], 0)
        if walk_weight * n_track > n_walk:
            e_i = np.zeros(0, dtype=np.int64)
            return e_i, np.zeros(0), np.zeros(0), e_i, heads, True
    todo = np.empty(64, dtype=np.int64)
    k = 0
    for side in range(4):
        start, stop = bounds[side, 0], bounds[side, 1]
        if side == 0:
            key, acc = c_long[0], c_long[1]
            flag, any_f = c_dirty[0], c_dirty[1]
        elif side == 1:
            key, acc = c_short[0], c_short[1]
            flag, any_f = c_dirty[0], c_dirty[1]
        elif side == 2:
            key, acc = l_long[0], l_long[1]
            flag, any_f = l_dirty[0], l_dirty[1]
        else:
            key, acc = l_short[0], l_short[1]
            flag, any_f = l_dirty[0], l_dirty[1]
        if side >= 2 and any_f and stop > start:
            # The liquidation prefix keeps the positions closed since the sort (flagged):
            # clean entries move up to its end, and the head past the vacated slots, as the
            # index's own scan does (``_side_scan_nb``), so they are read once.
            w = stop
            for i in range(stop - 1, start - 1, -1):
                a = acc[i]
                if flag[a]:
                    continue
                w -= 1
                if w != i:
                    acc[w] = a
                    key[w] = key[i]
            if start < w < stop:
                key[start:w] = key[w]
            heads[side - 2] = w
            start = w
        for i in range(start, stop):
            a = acc[i]
            if (any_f and flag[a]) or seen[a]:
                continue
            seen[a] = True
            if k == len(todo):
                todo = np.concatenate((todo, np.empty(k, dtype=np.int64)))
            todo[k] = a
            k += 1
    for level_index in range(2):
        dirty = c_dirty if level_index == 0 else l_dirty
        d_acc, d_price = dirty[2], dirty[3]
        for j in range(len(d_acc)):
            a = d_acc[j]
            p = d_price[j]
            s = size[a]
            if level_index == 0:
                take = not (p < lo or p > hi)
            else:
                take = not ((s > 0.0 and p < lo) or (s < 0.0 and p > hi))
            take = take or not math.isfinite(p)
            if take and not seen[a]:
                seen[a] = True
                if k == len(todo):
                    todo = np.concatenate((todo, np.empty(k, dtype=np.int64)))
                todo[k] = a
                k += 1
    for a in touched:
        if not seen[a]:
            seen[a] = True
            if k == len(todo):
                todo = np.concatenate((todo, np.empty(k, dtype=np.int64)))
            todo[k] = a
            k += 1
    b_acc = np.empty(k, dtype=np.int64)
    b_e = np.empty(k)
    b_m = np.empty(k)
    changed = np.empty(k, dtype=np.int64)
    nb = 0
    nc = 0
    for j in range(k):
        a = todo[j]
        seen[a] = False
        s = size[a]
        code = 0
        if s != 0.0 and mode[a] != 0 and kind[a] == 0:
            code, e, m = _classify_nb(
                s, entry[a], margin[a], p_new, floor, mmr, cum, min_margin, call_level
            )
            if code == 1:
                b_acc[nb] = a
                b_e[nb] = e
                b_m[nb] = m
                nb += 1
        if code != status[a]:
            status[a] = code
            if not pending[a]:
                pending[a] = True
                changed[nc] = a
                nc += 1
    if nb > 1:  # by account (distinct: one order)
        order = np.argsort(b_acc[:nb])
        return b_acc[order], b_e[order], b_m[order], changed[:nc], heads, False
    return b_acc[:nb], b_e[:nb], b_m[:nb], changed[:nc], heads, False


@njit(cache=True)
def calls_apply_nb(
    called: IntArray,
    pending: IntArray,
    status: npt.NDArray[np.int8],
    is_called: BoolArray,
    pending_flag: BoolArray,
    size: FloatArray,
    entry: FloatArray,
    margin: FloatArray,
    mark: float,
    floor: FloatArray,
    mmr: FloatArray,
    cum: FloatArray,
    min_margin: float,
    call_level: float,
) -> tuple[IntArray, IntArray, FloatArray, bool]:
    """The called set after the status changes of ``pending`` (accounts, each once): those
    now at status 0 leave it (order kept), those at 2 and not called join it at the end in
    account order, with their ratio ``MM / E`` at ``mark`` (the scan's arithmetic). Returns
    the set (``called`` itself when unchanged), the new accounts, their ratios and whether the
    set changed; ``is_called`` follows, ``pending_flag`` is cleared for ``pending``
    (:func:`_apply_nb` with one pending list)."""
    return _apply_nb(
        called, pending, pending[:0], pending[:0], status, is_called, pending_flag, size, entry,
        margin, mark, floor, mmr, cum, min_margin, call_level,
    )  # fmt: skip


@njit(cache=True)
def zone_calls_nb(
    c_long: Side,
    c_short: Side,
    c_dirty: Dirty,
    l_long: Side,
    l_short: Side,
    l_dirty: Dirty,
    touched: IntArray,
    size: FloatArray,
    entry: FloatArray,
    margin: FloatArray,
    mode: npt.NDArray[np.int8],
    kind: npt.NDArray[np.int8],
    p_old: float,
    p_new: float,
    floor: FloatArray,
    mmr: FloatArray,
    cum: FloatArray,
    min_margin: float,
    call_level: float,
    rtol: float,
    status: npt.NDArray[np.int8],
    seen: BoolArray,
    pending_flag: BoolArray,
    walk_rtol: float,
    walk_weight: float,
    walk_min: int,
    walk_rows: int,
    called: IntArray,
    pending: IntArray,
    is_called: BoolArray,
    old: IntArray,
    replaced: bool,
) -> tuple[IntArray, FloatArray, FloatArray, IntArray, IntArray, FloatArray, IntArray, bool]:
    """:func:`zone_step_nb` then :func:`calls_apply_nb` in one call (one dispatch), where the
    called set is updated right after the step (the risk step's margin calls): the step at
    ``p_new``, then the called set ``called`` after the status changes of ``pending`` (those
    still pending from before) and of the accounts the step changed, with the new accounts'
    ratios at ``p_new``; where ``replaced`` (another path replaced the called set ``old`` the
    flags follow by ``called``), the set is adopted between the step and the update, as
    :meth:`.ZoneTracker.adopt` does (:func:`_adopt_nb`). Returns the step's positions under
    maintenance (accounts, equity,
    maintenance), the new called set, the new accounts, their ratios, the liquidation index's
    new heads and False; or, where the step takes the walk instead (:func:`zone_step_nb`),
    nothing evaluated or changed (``called`` returned, ``pending`` still pending) and True."""
    below, below_e, below_m, changed, heads, walk = zone_step_nb(
        c_long, c_short, c_dirty, l_long, l_short, l_dirty, touched, size, entry, margin, mode,
        kind, p_old, p_new, floor, mmr, cum, min_margin, call_level, rtol, status, seen,
        pending_flag, walk_rtol, walk_weight, walk_min, walk_rows,
    )  # fmt: skip
    if walk:
        return below, below_e, below_m, called, changed, below_e, heads, True
    extra = changed[:0]
    if replaced:
        extra = _adopt_nb(old, called, is_called, pending_flag, seen)
    out, fresh, ratio, _ = _apply_nb(
        called, pending, changed, extra, status, is_called, pending_flag, size, entry, margin,
        p_new, floor, mmr, cum, min_margin, call_level,
    )  # fmt: skip
    return below, below_e, below_m, out, fresh, ratio, heads, False


Refresh = tuple[int, IntArray, FloatArray, int, IntArray]


@njit(cache=True)
def refresh_calls_nb(
    c_touched: IntArray,
    c_seen: BoolArray,
    c_level: float,
    c_flagged: int,
    c_limits: tuple[int, int],
    l_touched: IntArray,
    l_seen: BoolArray,
    l_flagged: int,
    l_limits: tuple[int, int],
    nan: FloatArray,
    refresh: bool,
    c_long: Side,
    c_short: Side,
    c_dirty: Dirty,
    l_long: Side,
    l_short: Side,
    l_dirty: Dirty,
    touched: IntArray,
    size: FloatArray,
    entry: FloatArray,
    margin: FloatArray,
    mode: npt.NDArray[np.int8],
    kind: npt.NDArray[np.int8],
    p_old: float,
    p_new: float,
    floor: FloatArray,
    mmr: FloatArray,
    cum: FloatArray,
    min_margin: float,
    call_level: float,
    rtol: float,
    status: npt.NDArray[np.int8],
    seen: BoolArray,
    pending_flag: BoolArray,
    walk_rtol: float,
    walk_weight: float,
    walk_min: int,
    walk_rows: int,
    called: IntArray,
    pending: IntArray,
    is_called: BoolArray,
    old: IntArray,
    replaced: bool,
) -> tuple[
    int, Refresh, IntArray, FloatArray, FloatArray, IntArray, IntArray, FloatArray, int, int
]:
    """:func:`.refresh_pair_nb` (the call-level index's touched accounts ``c_touched``, its
    scratch ``c_seen``, level ``c_level``; the liquidation index's ``l_touched``,
    ``l_seen``), then :func:`zone_calls_nb` on the refreshed dirty entries (the liquidation
    index's priced NaN: a prefix of ``nan``, at least as long as its old dirty entries and
    ``l_touched`` together), in one call. ``c_flagged`` / ``l_flagged``: the accounts each
    index flagged before; ``*_limits``: its :meth:`.LevelIndex.dirty_limits`. Returns a code,
    the refresh (as :func:`.refresh_pair_nb` returns it) and :func:`zone_calls_nb`'s results
    but its flag, the heads as two numbers (each result array is one more object numba
    makes and Python receives): 0 the step and the call update made, 1 the step takes the
    walk (nothing evaluated), 2 an index must compact first (nothing evaluated), 3 a touched
    account is beyond the flags (nothing changed, the refresh not made: the caller's
    one-index refreshes grow them). The caller installs the refresh for codes 0 to 2.

    ``refresh`` False: no refresh (the touched arrays are not read), :func:`zone_calls_nb`
    on the dirty entries as they are (code 0 or 1, the refresh returned empty). Python calls
    only this kernel for the fused steps: each kernel loads its machine code from numba's
    cache on its first call in a process (tens of milliseconds for one holding the step),
    so one entry point, not two."""
    e_i = np.zeros(0, dtype=np.int64)
    e_f = np.zeros(0)
    if refresh:
        made = refresh_pair_nb(
            c_touched, c_dirty[0], c_seen, c_dirty[2], c_dirty[3], c_level, mmr, cum,
            l_touched, l_dirty[0], l_seen, l_dirty[2], l_dirty[3], size, entry, margin,
        )  # fmt: skip
    else:
        made = (0, c_dirty[2], c_dirty[3], 0, l_dirty[2])
    newly_c, c_acc, c_price, newly_l, l_acc = made
    if newly_c < 0:
        return 3, made, e_i, e_f, e_f, called, e_i, e_f, l_long[2], l_short[2]
    c_flagged += newly_c
    l_flagged += newly_l
    if refresh and (
        len(c_acc) > c_limits[0] or c_flagged > c_limits[1]
        or len(l_acc) > l_limits[0] or l_flagged > l_limits[1]
    ):  # fmt: skip
        return 2, made, e_i, e_f, e_f, called, e_i, e_f, l_long[2], l_short[2]
    c_new = (c_dirty[0], c_flagged != 0, c_acc, c_price)
    l_new = (l_dirty[0], l_flagged != 0, l_acc, nan[: len(l_acc)]) if refresh else l_dirty
    below, below_e, below_m, out, fresh, ratio, heads, walk = zone_calls_nb(
        c_long, c_short, c_new, l_long, l_short, l_new, touched, size, entry, margin, mode,
        kind, p_old, p_new, floor, mmr, cum, min_margin, call_level, rtol, status, seen,
        pending_flag, walk_rtol, walk_weight, walk_min, walk_rows, called, pending, is_called,
        old, replaced,
    )  # fmt: skip
    code = 1 if walk else 0
    return code, made, below, below_e, below_m, out, fresh, ratio, heads[0], heads[1]


#: The smallest filter of :func:`_apply_nb` (entries, one byte each: 4 KiB stays in L1).
FILTER_MIN = 4096


@njit(cache=True)
def _apply_nb(
    called: IntArray,
    pending: IntArray,
    pending_more: IntArray,
    pending_extra: IntArray,
    status: npt.NDArray[np.int8],
    is_called: BoolArray,
    pending_flag: BoolArray,
    size: FloatArray,
    entry: FloatArray,
    margin: FloatArray,
    mark: float,
    floor: FloatArray,
    mmr: FloatArray,
    cum: FloatArray,
    min_margin: float,
    call_level: float,
) -> tuple[IntArray, IntArray, FloatArray, bool]:
    """:func:`calls_apply_nb` over the pending accounts ``pending``, ``pending_more`` and
    ``pending_extra`` (distinct together). The members that leave are dropped by
    :func:`_drop_nb` (every member is called, ``is_called`` set, but those that left now).
    Nothing else differs."""
    n_p = len(pending) + len(pending_more) + len(pending_extra)
    fresh = np.empty(n_p, dtype=np.int64)
    left = np.empty(n_p, dtype=np.int64)
    n_fresh = 0
    n_left = 0
    for part in range(3):
        accounts = pending if part == 0 else pending_more if part == 1 else pending_extra
        for a in accounts:
            pending_flag[a] = False
            st = status[a]
            if st == 0 and is_called[a]:
                is_called[a] = False
                left[n_left] = a
                n_left += 1
            elif st == 2 and not is_called[a]:
                fresh[n_fresh] = a
                n_fresh += 1
    fresh = np.sort(fresh[:n_fresh])
    ratio = np.empty(n_fresh)
    for j in range(n_fresh):
        a = fresh[j]
        _, e, m = _classify_nb(
            size[a], entry[a], margin[a], mark, floor, mmr, cum, min_margin, call_level
        )
        ratio[j] = m / e
    if n_left == 0 and n_fresh == 0:
        return called, fresh, ratio, False
    n_kept = len(called) - n_left
    out = np.empty(n_kept + n_fresh, dtype=np.int64)
    if n_left == 0:
        out[:n_kept] = called
    else:
        _drop_nb(called, left[:n_left], is_called, out)
    for j in range(n_fresh):
        a = fresh[j]
        is_called[a] = True
        out[n_kept + j] = a
    return out, fresh, ratio, True


@njit(cache=True)
def _drop_nb(called: IntArray, left: IntArray, is_called: BoolArray, out: IntArray) -> None:
    """``called`` without its members ``left`` (distinct, each a member, ``is_called`` now
    False; every other member's set) into ``out``, in order. The leaving members are found
    without reading ``is_called`` for every member (scattered reads over the accounts,
    thousands of members after a crash): a small table of flags hashed by account (``account
    & (width - 1)``, ``width`` a power of two, at least 8 per leaving account) holds the
    leaving ones; a member whose slot is clear is not leaving, the others are tested on
    ``is_called`` itself. The members are read up to the last leaving one to find their
    positions (no write, no count carried from one member to the next), then the slices
    between those positions are copied (unsigned positions: plain loads and stores)."""
    width = FILTER_MIN
    while width < 8 * len(left):
        width *= 2
    mask = width - 1
    leaving = np.zeros(width, dtype=np.bool_)
    for a in left:
        leaving[a & mask] = True
    n = len(called)
    pos = np.empty(len(left) + 1, dtype=np.int64)
    m = 0
    for i in range(n):
        a = called[i]
        if leaving[a & mask] and not is_called[a]:
            pos[m] = i
            m += 1
            if m == len(left):  # no member past the last leaving one leaves
                break
    pos[m] = n  # the end: the last slice's stop
    k = np.uint64(0)
    lo = np.uint64(0)
    for j in range(m + 1):
        hi = np.uint64(pos[j])
        shift = lo - k  # the members left before this slice
        for d in range(k, k + (hi - lo)):
            out[d] = called[d + shift]
        k += hi - lo
        lo = hi + np.uint64(1)


#: The accounts of the old called set that :func:`_adopt_nb`'s merge may find missing from
#: the new one (beyond this share of the old set, and :data:`ADOPT_SLACK`, the full pass).
ADOPT_SHARE = 4
ADOPT_SLACK = 64


@njit(cache=True)
def _adopt_nb(
    old: IntArray,
    called: IntArray,
    is_called: BoolArray,
    pending_flag: BoolArray,
    scratch: BoolArray,
) -> IntArray:
    """:meth:`.ZoneTracker.adopt` compiled: ``is_called`` (marking ``old``) follows
    ``called`` from now on; the accounts of one set only and not pending yet are flagged
    pending and returned (those of ``old`` first, then those of ``called``, each in its
    set's order). ``scratch``: all False (left so).

    A quiet stretch replaces the set as the update does (members that leave dropped in
    order, new ones appended), so the two sets are first merged in order: ``called`` is
    matched against ``old`` as a subsequence (a member of ``old`` that is not the next one
    of ``called`` set aside), and what is left of ``called`` once ``old`` ends is its tail.
    Every account of ``old`` is then matched or set aside, every one of ``called`` matched
    or in the tail (each set's accounts distinct), so ``old`` less ``called`` is the set-aside
    accounts less the tail and ``called`` less ``old`` the tail less the set-aside ones:
    only those are read and written at scattered places, not every member (thousands after
    a crash, 119-180 us a replaced set in the day against sequential reads). ``is_called``
    marks exactly ``old`` (:meth:`.ZoneTracker.adopt`'s premise), so these are the accounts
    :func:`_adopt_all_nb` finds, in the same order. More set aside than
    ``ADOPT_SLACK + len(old) // ADOPT_SHARE``: :func:`_adopt_all_nb`."""
    n_old, n_new = len(old), len(called)
    limit = ADOPT_SLACK + n_old // ADOPT_SHARE
    aside = np.empty(min(limit, n_old), dtype=np.int64)
    n_aside = 0
    i = 0
    j = 0
    while i < n_old and j < n_new:
        a = old[i]
        if a == called[j]:
            j += 1
        else:
            if n_aside == limit:
                return _adopt_all_nb(old, called, is_called, pending_flag, scratch)
            aside[n_aside] = a
            n_aside += 1
        i += 1
    if n_aside + (n_old - i) > limit:
        return _adopt_all_nb(old, called, is_called, pending_flag, scratch)
    for r in range(i, n_old):
        aside[n_aside] = old[r]
        n_aside += 1
    tail = called[j:]
    extra = np.empty(n_aside + len(tail), dtype=np.int64)
    k = 0
    for a in tail:
        scratch[a] = True
    for r in range(n_aside):  # left the set
        a = aside[r]
        if not scratch[a]:
            is_called[a] = False
            if not pending_flag[a]:
                pending_flag[a] = True
                extra[k] = a
                k += 1
    for a in tail:
        scratch[a] = False
    for r in range(n_aside):
        scratch[aside[r]] = True
    for a in tail:  # new to the set
        if not scratch[a]:
            is_called[a] = True
            if not pending_flag[a]:
                pending_flag[a] = True
                extra[k] = a
                k += 1
    for r in range(n_aside):
        scratch[aside[r]] = False
    return extra[:k]


@njit(cache=True)
def _adopt_all_nb(
    old: IntArray,
    called: IntArray,
    is_called: BoolArray,
    pending_flag: BoolArray,
    scratch: BoolArray,
) -> IntArray:
    """:func:`_adopt_nb` by one pass over every member of both sets (the sets in any
    order)."""
    extra = np.empty(len(old) + len(called), dtype=np.int64)
    k = 0
    for a in called:
        scratch[a] = True
    n_new = 0
    for a in called:  # the members new to the set (the flags still mark the old one)
        n_new += not is_called[a]
    new_only = np.empty(n_new, dtype=np.int64)
    j = 0
    for a in called:
        if not is_called[a]:
            new_only[j] = a
            j += 1
    for a in old:
        if not scratch[a]:  # left the set
            is_called[a] = False
            if not pending_flag[a]:
                pending_flag[a] = True
                extra[k] = a
                k += 1
    for a in called:
        scratch[a] = False
    for a in new_only:
        is_called[a] = True
    for a in new_only:
        if not pending_flag[a]:
            pending_flag[a] = True
            extra[k] = a
            k += 1
    return extra[:k]
