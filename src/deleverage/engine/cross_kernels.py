"""Compiled kernels of the cross scans over a subset of accounts (numba), named ``*_nb``.

The bounded cross scan (:meth:`.MarginScans._cross_scan_split`) evaluates only the accounts the
distance bounds of :mod:`.cross_index` admit. Gathering their columns market by market with
NumPy fancy indexing cost more than the arithmetic; these kernels read every market's columns
at the candidates' rows directly (the markets' columns passed as tuples of arrays, one entry
per market) and repeat, operation for operation, the arithmetic of the full pass
(:func:`.kernels.cross_partial_nb` over the other markets in market order, then
:func:`.kernels.cross_scan_nb` over the market that moved), so every figure is bit-identical
to the full pass's (``check_invariants`` compares them on every scan).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from numba import njit

from deleverage.engine.kernels import maintenance_nb

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
Int8Array = npt.NDArray[np.int8]
BoolArray = npt.NDArray[np.bool_]


@njit(cache=True)
def tier_nb(notional: float, floor: FloatArray) -> int:
    """Index of the last tier whose floor is at or below ``notional`` (floors increasing from
    0): :func:`.kernels.tier_of_nb`'s index, found by walking up from the first tier and
    stopping at the first floor above (most notionals sit in the first tiers)."""
    t = 0
    while t + 1 < len(floor) and notional >= floor[t + 1]:
        t += 1
    return t


@njit(cache=True)
def tier_from_nb(notional: float, floor: FloatArray, t: int) -> int:
    """:func:`tier_nb` of ``notional`` walking up from tier ``t``, whose floor is at or below
    it (the tier of a smaller notional: twice a notional's tier from its own)."""
    while t + 1 < len(floor) and notional >= floor[t + 1]:
        t += 1
    return t


@njit(cache=True)
def cross_subset_scan_nb(
    acc: IntArray,
    m: int,
    sizes: tuple[FloatArray, ...],
    entries: tuple[FloatArray, ...],
    modes: tuple[Int8Array, ...],
    kind: Int8Array,
    cash: FloatArray,
    marks: FloatArray,
    floors: tuple[FloatArray, ...],
    mmrs: tuple[FloatArray, ...],
    cums: tuple[FloatArray, ...],
    min_margins: FloatArray,
    call_level: float,
    ratio_out: FloatArray,
    below_out: IntArray,
    below_equity: FloatArray,
    below_maintenance: FloatArray,
    warn_out: IntArray,
) -> tuple[int, int]:
    """The cross scan of market ``m`` over the accounts ``acc`` (ascending), in one pass.

    For each account ``a = acc[i]``: cross equity ``E`` (cash plus the unrealized PnL of its
    cross positions) and maintenance ``MM`` summed over every market but ``m`` in market
    order, then market ``m`` added last (as :func:`.kernels.cross_scan_nb` adds it), the ratio
    ``MM / E`` (inf when ``E <= 0``) into ``ratio_out[i]``. Traders with a cross position in
    ``m`` go to ``below_out`` (positions ``i`` in ``acc``, with their ``E`` and ``MM``) when
    ``E < MM`` and to ``warn_out`` when ``call_level <= ratio < 1``. Returns the two counts.
    """
    n_markets = len(marks)
    n_below = 0
    n_warn = 0
    for i in range(len(acc)):
        a = acc[i]
        first = True
        e = 0.0
        mt = 0.0
        for j in range(n_markets):
            if j == m:
                continue
            if first:
                e = cash[a]
                mt = 0.0
                first = False
            s = sizes[j][a]
            if s != 0.0 and modes[j][a] == 0:
                mark = marks[j]
                notional = abs(s) * mark
                t = tier_nb(notional, floors[j])
                e += s * (mark - entries[j][a])
                mt += maintenance_nb(notional, mmrs[j][t], cums[j][t], min_margins[j])
        base_e = cash[a] if first else e
        base_m = 0.0 if first else mt
        s = sizes[m][a]
        mark = marks[m]
        cross = (s != 0.0) & (modes[m][a] == 0)
        notional = abs(s) * mark
        t = tier_nb(notional, floors[m])
        maint_m = maintenance_nb(notional, mmrs[m][t], cums[m][t], min_margins[m])
        e = base_e + cross * (s * (mark - entries[m][a]))
        mt = base_m + cross * maint_m
        r = mt / e if e > 0.0 else np.inf
        ratio_out[i] = r
        if r < call_level or not cross or kind[a] != 0:
            continue
        if e < mt:
            below_out[n_below] = i
            below_equity[n_below] = e
            below_maintenance[n_below] = mt
            n_below += 1
        elif r < 1.0:
            warn_out[n_warn] = i
            n_warn += 1
    return n_below, n_warn


@njit(cache=True)
def _position_terms_nb(
    s: float, entry: float, mark: float, floor: FloatArray, mmr: FloatArray, cum: FloatArray,
    min_margin: float, level: float,
) -> tuple[float, float, float, float]:  # fmt: skip
    """One cross position's terms of :func:`cross_terms_nb`: unrealized PnL, maintenance and
    its parts of ``K`` at ``level`` and at 1 (size ``s`` at ``mark``, entered at ``entry``)."""
    notional = abs(s) * mark
    t = tier_nb(notional, floor)
    reach = mmr[tier_from_nb(2.0 * notional, floor, t)]
    return (
        s * (mark - entry),
        maintenance_nb(notional, mmr[t], cum[t], min_margin),
        notional * (level + reach),
        notional * (1.0 + reach),
    )


@njit(cache=True)
def cross_terms_nb(
    acc: IntArray,
    sizes: tuple[FloatArray, ...],
    entries: tuple[FloatArray, ...],
    modes: tuple[Int8Array, ...],
    cash: FloatArray,
    marks: FloatArray,
    floors: tuple[FloatArray, ...],
    mmrs: tuple[FloatArray, ...],
    cums: tuple[FloatArray, ...],
    min_margins: FloatArray,
    level: float,
    equity: FloatArray,
    maintenance: FloatArray,
    k_level: FloatArray,
    k_one: FloatArray,
) -> None:
    """Cross equity ``E``, maintenance ``MM`` and the bound's slopes ``K`` at ``level`` and at 1
    (docs/formulas.md §14: ``K = sum_j |s_j| p_j (level + mmr_j)``, ``mmr_j`` the rate of the
    tier of twice the notional) of the accounts ``acc`` at ``marks``, into the outputs (one
    entry per account of ``acc``), markets summed in order."""
    for i in range(len(acc)):
        a = acc[i]
        e = cash[a]
        mt = 0.0
        kl = 0.0
        k1 = 0.0
        for j in range(len(marks)):
            s = sizes[j][a]
            if s == 0.0 or modes[j][a] != 0:
                continue
            de, dm, dkl, dk1 = _position_terms_nb(
                s, entries[j][a], marks[j], floors[j], mmrs[j], cums[j], min_margins[j], level
            )
            e += de
            mt += dm
            kl += dkl
            k1 += dk1
        equity[i] = e
        maintenance[i] = mt
        k_level[i] = kl
        k_one[i] = k1


@njit(cache=True)
def split_nb(
    marks: FloatArray,
    p0: FloatArray,
    p1: FloatArray,
    q: FloatArray,
    n_near: int,
    near_by_dist: IntArray,
    near_dist: FloatArray,
    dirty: IntArray,
    flag: npt.NDArray[np.bool_],
    max_move: float,
) -> tuple[IntArray, int, float]:
    """:meth:`.CrossIndex.split`'s arithmetic in one pass: the bound (:func:`split_bound_nb`)
    and the accounts to evaluate (:func:`split_pick_nb`). Returns them, how many near ones
    were not in ``dirty`` (-1: no bound, the full pass) and the threshold
    ``max_j |d1_j| (1 + 1e-9) + 1e-12``. ``flag``: scratch, all False, left so."""
    kd, threshold = split_bound_nb(marks, p0, p1, q, n_near, near_dist, max_move)
    if kd < 0:
        return np.zeros(0, dtype=np.int64), -1, 0.0
    evaluate, picked = split_pick_nb(kd, near_by_dist, dirty, flag)
    return evaluate, picked, threshold


@njit(cache=True)
def split_bound_nb(
    marks: FloatArray,
    p0: FloatArray,
    p1: FloatArray,
    q: FloatArray,
    n_near: int,
    near_dist: FloatArray,
    max_move: float,
) -> tuple[int, float]:
    """The bound of :func:`split_nb` at ``marks``: the largest relative moves from the build's
    marks ``p0`` and the anchor's ``p1`` (a market unpriced at the build, ``p0 <= 0``, must
    still have that mark, and moves by 0), the reachable prefix of ``q`` (it must stay within
    the first ``n_near``), and how many near accounts the move from ``p1`` reaches (the prefix
    of ``near_dist``, ascending, at or below the threshold ``max_j |d1_j| (1 + 1e-9) +
    1e-12``). Returns that count (-1: no bound) and the threshold."""
    move0 = 0.0
    move1 = 0.0
    for j in range(len(marks)):
        if p0[j] <= 0.0:
            if marks[j] != p0[j]:
                return -1, 0.0
            continue
        move0 = max(move0, abs(marks[j] / p0[j] - 1.0))
        move1 = max(move1, abs(marks[j] / p1[j] - 1.0))
    if move0 >= max_move or move1 >= max_move:
        return -1, 0.0
    if np.searchsorted(q, move0 * (1.0 + 1e-9) + 1e-12, side="right") > n_near:
        return -1, 0.0
    threshold = move1 * (1.0 + 1e-9) + 1e-12
    return int(np.searchsorted(near_dist, threshold, side="right")), threshold


@njit(cache=True)
def split_pick_nb(
    kd: int, near_by_dist: IntArray, dirty: IntArray, flag: npt.NDArray[np.bool_]
) -> tuple[IntArray, int]:
    """The accounts :func:`split_nb` evaluates: the first ``kd`` of ``near_by_dist`` and
    ``dirty`` (ascending), merged without repeats, ascending; and how many near ones were not
    in ``dirty``. ``flag``: scratch, all False, left so."""
    out = np.empty(kd + len(dirty), dtype=np.int64)
    k = 0
    for a in dirty:
        flag[a] = True
        out[k] = a
        k += 1
    picked = 0
    for i in range(kd):
        a = near_by_dist[i]
        if not flag[a]:
            out[k] = a
            k += 1
            picked += 1
    for a in dirty:
        flag[a] = False
    res = out[:k].copy()
    res.sort()
    return res, picked


@njit(cache=True)
def merge_sorted_nb(dirty: IntArray, new: IntArray) -> IntArray:
    """``np.unique(np.concatenate((dirty, new)))`` where ``dirty`` is already ascending
    without repeats (the cross index's touched set; ``new`` the accounts touched since): the
    new ones sorted, then merged in, each account once."""
    add = np.sort(new)
    out = np.empty(len(dirty) + len(add), dtype=np.int64)
    k = 0
    i = 0
    for a in add:
        while i < len(dirty) and dirty[i] < a:
            out[k] = dirty[i]
            k += 1
            i += 1
        if i < len(dirty) and dirty[i] == a:
            continue  # already in the set
        if k > 0 and out[k - 1] == a:
            continue  # a repeat among the new ones
        out[k] = a
        k += 1
    while i < len(dirty):
        out[k] = dirty[i]
        k += 1
        i += 1
    return out[:k].copy()


@njit(cache=True)
def warned_union_nb(
    evaluated: IntArray,
    warn_pos: IntArray,
    in_acc: IntArray,
    in_q: FloatArray,
    threshold: float,
    dirty: IntArray,
    flag: npt.NDArray[np.bool_],
) -> IntArray:
    """Every account warned in a market, ascending: the evaluated ones the scan found warned
    (``evaluated[warn_pos]``, ascending) and the accounts of ``in_acc`` (ascending: near
    accounts holding a cross position in the market at the anchor) that were neither evaluated
    nor touched and whose bound ``in_q`` exceeds ``threshold`` (certainly in the zone and above
    maintenance: :mod:`.cross_index`). ``flag``: scratch, all False, left so."""
    for a in evaluated:
        flag[a] = True
    for a in dirty:
        flag[a] = True
    out = merge_certain_nb(evaluated[warn_pos], in_acc, in_q, threshold, flag)
    for a in evaluated:
        flag[a] = False
    for a in dirty:
        flag[a] = False
    return out


@njit(cache=True)
def merge_certain_nb(
    warn: IntArray, in_acc: IntArray, in_q: FloatArray, threshold: float, flag: BoolArray
) -> IntArray:
    """``warn`` (ascending) merged with the accounts of ``in_acc`` (ascending) not flagged
    whose bound ``in_q`` exceeds ``threshold`` (certainly in the zone and above maintenance),
    ascending, without repeats (a flagged account is one the caller evaluated or touched)."""
    out = np.empty(len(warn) + len(in_acc), dtype=np.int64)
    k = 0
    w = 0
    for j in range(len(in_acc)):
        a = in_acc[j]
        if flag[a] or not in_q[j] > threshold:
            continue
        while w < len(warn) and warn[w] < a:
            out[k] = warn[w]
            k += 1
            w += 1
        out[k] = a
        k += 1
    while w < len(warn):
        out[k] = warn[w]
        k += 1
        w += 1
    return out[:k].copy()


@njit(cache=True)
def bounded_scan_nb(
    acc: IntArray,
    m: int,
    sizes: tuple[FloatArray, ...],
    entries: tuple[FloatArray, ...],
    modes: tuple[Int8Array, ...],
    kind: Int8Array,
    cash: FloatArray,
    marks: FloatArray,
    floors: tuple[FloatArray, ...],
    mmrs: tuple[FloatArray, ...],
    cums: tuple[FloatArray, ...],
    min_margins: FloatArray,
    call_level: float,
    in_acc: IntArray,
    in_q: FloatArray,
    threshold: float,
    dirty: IntArray,
    flag: npt.NDArray[np.bool_],
) -> tuple[IntArray, FloatArray, FloatArray, IntArray, IntArray, FloatArray]:
    """The bounded cross scan of market ``m`` in one call: :func:`cross_subset_scan_nb` over
    the accounts ``acc`` (ascending), then :func:`warned_union_nb` with the accounts certainly
    in the zone. Returns the accounts under maintenance with their ``E`` and ``MM``, every
    warned account, ascending, and the evaluated ones among those with their ratios
    ``MM / E`` (the figures :meth:`.MarginScans.cross_warn_ratios` would compute)."""
    k = len(acc)
    ratio = np.empty(k)
    below_pos = np.empty(k, dtype=np.int64)
    below_e = np.empty(k)
    below_m = np.empty(k)
    warn_pos = np.empty(k, dtype=np.int64)
    n_below, n_warn = cross_subset_scan_nb(
        acc, m, sizes, entries, modes, kind, cash, marks, floors, mmrs, cums, min_margins,
        call_level, ratio, below_pos, below_e, below_m, warn_pos,
    )  # fmt: skip
    below = np.empty(n_below, dtype=np.int64)
    for i in range(n_below):
        below[i] = acc[below_pos[i]]
    warn = warned_union_nb(acc, warn_pos[:n_warn], in_acc, in_q, threshold, dirty, flag)
    ev_warn = np.empty(n_warn, dtype=np.int64)
    ev_ratio = np.empty(n_warn)
    for i in range(n_warn):
        ev_warn[i] = acc[warn_pos[i]]
        ev_ratio[i] = ratio[warn_pos[i]]
    return below, below_e[:n_below].copy(), below_m[:n_below].copy(), warn, ev_warn, ev_ratio


@njit(cache=True)
def _nan_min(a: float, b: float) -> float:
    """``np.minimum`` of two floats (NaN when either is)."""
    if a != a or b != b:
        return np.nan
    return a if a < b else b


@njit(cache=True)
def gather_nb(
    acc: IntArray,
    pick: IntArray,
    sizes: tuple[FloatArray, ...],
    entries: tuple[FloatArray, ...],
    modes: tuple[Int8Array, ...],
    cash: FloatArray,
    g_size: FloatArray,
    g_entry: FloatArray,
    g_mode: Int8Array,
    g_cash: FloatArray,
) -> None:
    """Copy the columns of the accounts of ``pick`` that are in ``acc`` (ascending) into row
    ``i`` of the gathered arrays (``g_size[j, i]`` the size of ``acc[i]`` in market ``j``,
    likewise entries and modes; ``g_cash[i]``), the others left as they are. An anchor reads
    the near set's columns from these rows: read in place, the accounts spread over every
    column and the reads, not the arithmetic, cost most of it."""
    k = len(acc)
    for a in pick:
        i = np.searchsorted(acc, a)
        if i == k or acc[i] != a:
            continue
        g_cash[i] = cash[a]
        for j in range(len(sizes)):
            g_size[j, i] = sizes[j][a]
            g_entry[j, i] = entries[j][a]
            g_mode[j, i] = modes[j][a]


@njit(cache=True)
def cross_bounds_nb(
    e: float, mt: float, k_level: float, k_one: float, level: float, cross_slack: float
) -> tuple[float, float]:
    """An account's anchored bounds ``q_out`` and ``q_in`` (docs/formulas.md §14.2) from its
    ``E``, ``MM`` and slopes: NaN read as ``-inf``, divisions as NumPy's (the caller compiles
    with ``error_model="numpy"``)."""
    slack = cross_slack * (level * abs(e) + mt)
    q_out = _nan_min((level * e - mt - slack) / k_level, np.inf)
    q_in = _nan_min(_nan_min((mt - level * e - slack) / k_level, (e - mt - slack) / k_one), np.inf)
    if q_out != q_out:
        q_out = -np.inf
    if q_in != q_in:
        q_in = -np.inf
    return q_out, q_in


@njit(cache=True)
def _by_distance_nb(acc: IntArray, dist: FloatArray, keep: int) -> tuple[IntArray, FloatArray]:
    """:func:`.cross_index.by_distance`: the ``keep`` nearest by ``dist`` (stable), the others
    after them in ``acc``'s order at the next bound up (all sorted when no more than ``keep``)."""
    k = len(acc)
    by_dist = np.empty(k, dtype=np.int64)
    sorted_dist = np.empty(k)
    if k <= keep:
        order = np.argsort(dist, kind="mergesort")
        for i in range(k):
            by_dist[i] = acc[order[i]]
            sorted_dist[i] = dist[order[i]]
        return by_dist, sorted_dist
    cut = np.partition(dist, keep)[keep]
    head = np.flatnonzero(dist < cut)
    order = np.argsort(dist[head], kind="mergesort")
    n_head = len(head)
    for i in range(n_head):
        by_dist[i] = acc[head[order[i]]]
        sorted_dist[i] = dist[head[order[i]]]
    at = n_head
    for i in range(k):
        if dist[i] >= cut:
            by_dist[at] = acc[i]
            sorted_dist[at] = cut
            at += 1
    return by_dist, sorted_dist


@njit(cache=True, error_model="numpy")
def _anchored_nb(
    acc: IntArray,
    g_size: FloatArray,
    g_entry: FloatArray,
    g_mode: Int8Array,
    g_cash: FloatArray,
    marks: FloatArray,
    floors: tuple[FloatArray, ...],
    mmrs: tuple[FloatArray, ...],
    cums: tuple[FloatArray, ...],
    min_margins: FloatArray,
    level: float,
    cross_slack: float,
    keep: int,
    kind: Int8Array,
    traders_only: bool,
) -> tuple[IntArray, FloatArray, IntArray, FloatArray, IntArray]:
    """The anchored bounds of the accounts ``acc`` (ascending) from their gathered columns
    (:func:`gather_nb`) at ``marks``: :func:`anchor_nb`'s arrays; ``traders_only``: only the
    traders (``kind``) with a cross position (``K > 0``) take part."""
    k = len(acc)
    n_m = len(marks)
    rows = np.empty(k, dtype=np.int64)
    q_in = np.empty(k)
    dist = np.empty(k)
    n = 0
    for i in range(k):
        e = g_cash[i]
        mt = 0.0
        kl = 0.0
        k1 = 0.0
        for j in range(n_m):
            s = g_size[j, i]
            if s == 0.0 or g_mode[j, i] != 0:
                continue
            de, dm, dkl, dk1 = _position_terms_nb(
                s, g_entry[j, i], marks[j], floors[j], mmrs[j], cums[j], min_margins[j], level
            )
            e += de
            mt += dm
            kl += dkl
            k1 += dk1
        if traders_only and (kind[acc[i]] != 0 or not kl > 0.0):
            continue
        q_out, qi = cross_bounds_nb(e, mt, kl, k1, level, cross_slack)
        rows[n] = i
        q_in[n] = qi
        dist[n] = q_out if q_out >= qi else qi
        n += 1
    by_dist, sorted_dist = _by_distance_nb(acc[rows[:n]], dist[:n], keep)
    offsets = np.zeros(n_m + 1, dtype=np.int64)
    in_acc = np.empty(n * n_m, dtype=np.int64)
    in_q = np.empty(n * n_m)
    count = 0
    for j in range(n_m):
        for r in range(n):
            i = rows[r]
            if q_in[r] > 0.0 and g_size[j, i] != 0.0 and g_mode[j, i] == 0:
                in_acc[count] = acc[i]
                in_q[count] = q_in[r]
                count += 1
        offsets[j + 1] = count
    return by_dist, sorted_dist, in_acc[:count].copy(), in_q[:count].copy(), offsets


@njit(cache=True)
def anchor_nb(
    near: IntArray,
    g_size: FloatArray,
    g_entry: FloatArray,
    g_mode: Int8Array,
    g_cash: FloatArray,
    marks: FloatArray,
    floors: tuple[FloatArray, ...],
    mmrs: tuple[FloatArray, ...],
    cums: tuple[FloatArray, ...],
    min_margins: FloatArray,
    level: float,
    cross_slack: float,
    keep: int,
) -> tuple[IntArray, FloatArray, IntArray, FloatArray, IntArray]:
    """:meth:`.CrossIndex.anchor` at ``marks`` in one compiled call, figure for figure, from
    the near accounts' gathered columns (:meth:`.CrossIndex.near_columns`): their ``E``,
    ``MM`` and slopes (:func:`cross_terms_nb`'s), their bounds ``q_out`` and ``q_in``
    (:func:`cross_bounds_nb`), the accounts by the larger bound with it (the ``keep`` nearest
    sorted: :func:`.cross_index.by_distance`), and per market the accounts holding a cross
    position there with ``q_in > 0`` (ascending, flat, with ``len(marks) + 1`` offsets) and
    their ``q_in``. Returns ``near_by_dist``, ``near_dist``, ``in_acc``, ``in_q``, offsets."""
    return _anchored_nb(
        near, g_size, g_entry, g_mode, g_cash, marks, floors, mmrs, cums, min_margins, level,
        cross_slack, keep, np.zeros(0, dtype=np.int8), False,
    )  # fmt: skip


@njit(cache=True)
def touched_bounds_nb(
    acc: IntArray,
    sizes: tuple[FloatArray, ...],
    entries: tuple[FloatArray, ...],
    modes: tuple[Int8Array, ...],
    kind: Int8Array,
    cash: FloatArray,
    marks: FloatArray,
    floors: tuple[FloatArray, ...],
    mmrs: tuple[FloatArray, ...],
    cums: tuple[FloatArray, ...],
    min_margins: FloatArray,
    level: float,
    cross_slack: float,
) -> tuple[IntArray, FloatArray, IntArray, FloatArray, IntArray]:
    """The anchored bounds of :func:`anchor_nb` for the accounts ``acc`` (ascending: the touched
    ones) at ``marks``, valid while their positions and cash stay as they are (a quiet stretch):
    the traders with a cross position sorted by ``max(q_out, q_in)`` (stable) with it, and per
    market those holding a cross position there with ``q_in > 0`` (ascending, flat, with
    ``len(marks) + 1`` offsets) and their ``q_in``. Accounts without a cross position, and
    other kinds than traders, are left out: no scan warns them or finds them under
    maintenance."""
    k = len(acc)
    n_m = len(marks)
    g_size = np.empty((n_m, k))
    g_entry = np.empty((n_m, k))
    g_mode = np.empty((n_m, k), dtype=np.int8)
    g_cash = np.empty(k)
    gather_nb(acc, acc, sizes, entries, modes, cash, g_size, g_entry, g_mode, g_cash)
    return _anchored_nb(
        acc, g_size, g_entry, g_mode, g_cash, marks, floors, mmrs, cums, min_margins, level,
        cross_slack, k, kind, True,
    )  # fmt: skip


@njit(cache=True)
def slopes_nb(
    size: FloatArray,
    mode: Int8Array,
    mark: float,
    floor: FloatArray,
    mmr: FloatArray,
    level: float,
    whole_position: bool,
    k_level: FloatArray,
    k_one: FloatArray,
) -> None:
    """Add one market's part of the cross index's slopes (:meth:`.CrossIndex.build`,
    docs/formulas.md §14) to ``k_level`` and ``k_one``, account by account: a cross position's
    ``|s| mark (level + r)`` and ``|s| mark (1 + r)``, ``r`` the rate of the tier of twice the
    notional (with risk-limit steps at least the position's own tier's)."""
    for i in range(len(size)):
        s = size[i]
        if s == 0.0 or mode[i] != 0:
            continue
        notional = abs(s) * mark
        rate = mmr[tier_nb(2.0 * notional, floor)]
        if whole_position:
            rate = max(rate, mmr[tier_nb(notional, floor)])
        k_level[i] += notional * (level + rate)
        k_one[i] += notional * (1.0 + rate)
