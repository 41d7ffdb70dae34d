"""The indexed isolated scan's hot parts compiled: the dirty refresh, candidates, the scan.

:class:`deleverage.engine.level_index.LevelIndex` finds the positions a mark can have in the
zone: a prefix of each sorted side (clean entries only) plus the dirty positions whose live
zone price the mark reaches; :func:`deleverage.engine.kernels.isolated_scan_nb` evaluates
them. On a cascade every round takes in the accounts the last round touched and scans the few
thousand called positions again; in NumPy that was a dozen small array operations, a merge,
a sort and five gathers of scattered rows per round. Here:

- :func:`refresh_dirty_nb` flags the touched accounts and keeps the old dirty entries not
  touched again (the caller prices the live touched positions and merges);
  :func:`refresh_pair_nb` does both refreshes of a tracked step (the call-level index with
  its pricing and merge, the tracker's liquidation index) in one call;
- :func:`index_candidates_nb`: the same prefixes (``searchsorted``, same bounds), the same
  head advance past dirty entries, the same dirty test (NumPy sorts the union by account);
- :func:`index_scan_nb` (the risk step's scan, :meth:`LevelIndex.scan`): the same
  candidates evaluated with the scan's own arithmetic (``tier_of_nb``, ``maintenance_nb``,
  same expression order) without scattered reads: a clean entry's columns come from copies
  kept in sorted order (the called positions a cascade re-scans every round sit in a
  contiguous stretch of them), a dirty entry's from the live columns; NumPy sorts the
  results by account.

The result is the full pass's, bit for bit: tests/unit/exchange/test_exchange_scan_index.py
compares them after every operation, tests/unit/kernels/test_level_scan.py compares these
kernels with the NumPy code they replaced.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
from numba import njit

from deleverage.engine.kernels import maintenance_nb, tier_of_nb, zone_prices_nb

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@njit(cache=True)
def index_candidates_nb(
    long_neg_price: FloatArray,
    long_acc: IntArray,
    short_price: FloatArray,
    short_acc: IntArray,
    heads: IntArray,
    flag: npt.NDArray[np.bool_],
    any_flagged: bool,
    d_acc: IntArray,
    d_price: FloatArray,
    size: FloatArray,
    mark: float,
    zone_rtol: float,
) -> IntArray:
    """:meth:`LevelIndex.candidates` after its refresh: the accounts whose position can be in
    the zone at ``mark``, unsorted (the caller sorts: NumPy's sort of a few thousand ids is
    several times faster than numba's). ``heads`` (long, short) advance past leading dirty
    entries of the prefixes as ``candidates`` advances them (only when ``any_flagged``)."""
    hi = mark * (1.0 + zone_rtol)
    lo = mark * (1.0 - zone_rtol)
    k_long = np.searchsorted(long_neg_price, -lo, side="right")
    k_short = np.searchsorted(short_price, hi, side="right")
    h_long, h_short = heads[0], heads[1]
    n_l = max(k_long - h_long, 0)
    n_s = max(k_short - h_short, 0)
    out = np.empty(n_l + n_s + len(d_acc), dtype=np.int64)
    k = 0
    if not any_flagged:
        for i in range(h_long, k_long):
            out[k] = long_acc[i]
            k += 1
        for i in range(h_short, k_short):
            out[k] = short_acc[i]
            k += 1
    else:
        lead = True
        for i in range(h_long, k_long):
            a = long_acc[i]
            if flag[a]:
                if lead:
                    heads[0] += 1
            else:
                lead = False
                out[k] = a
                k += 1
        lead = True
        for i in range(h_short, k_short):
            a = short_acc[i]
            if flag[a]:
                if lead:
                    heads[1] += 1
            else:
                lead = False
                out[k] = a
                k += 1
        for j in range(len(d_acc)):
            p = d_price[j]
            s = size[d_acc[j]]
            if (s > 0.0 and p >= lo) or (s < 0.0 and p <= hi) or not math.isfinite(p):
                out[k] = d_acc[j]
                k += 1
    return out[:k]


@njit(cache=True)
def refresh_dirty_nb(
    touched: IntArray,
    flag: npt.NDArray[np.bool_],
    seen: npt.NDArray[np.bool_],
    size: FloatArray,
    old_acc: IntArray,
    old_price: FloatArray,
) -> tuple[int, IntArray, IntArray, FloatArray]:
    """:meth:`LevelIndex._refresh_dirty` before its pricing: flag the ``touched`` accounts
    (duplicates allowed) and count those not flagged before; return that count, the touched
    accounts with an open position (ascending: they get fresh zone prices), and the old dirty
    entries not touched again (``old_acc`` ascending, with their prices). ``seen``: a scratch
    array as long as ``flag``, all False (left so). Returns count -1 and nothing else when an
    account is beyond ``flag`` (the caller grows both arrays and calls again)."""
    empty_i = np.zeros(0, dtype=np.int64)
    for a in touched:
        if a >= len(flag):
            return -1, empty_i, empty_i, np.zeros(0)
    new = np.empty(len(touched), dtype=np.int64)
    k = 0
    for a in touched:
        if not seen[a]:
            seen[a] = True
            new[k] = a
            k += 1
    newly = 0
    n_live = 0
    for i in range(k):
        a = new[i]
        if not flag[a]:
            newly += 1
            flag[a] = True
        if size[a] != 0.0:
            n_live += 1
    live = np.empty(n_live, dtype=np.int64)
    j = 0
    for i in range(k):
        if size[new[i]] != 0.0:
            live[j] = new[i]
            j += 1
    n_keep = 0
    for a in old_acc:
        n_keep += not seen[a]
    keep_acc = np.empty(n_keep, dtype=np.int64)
    keep_price = np.empty(n_keep)
    j = 0
    for i in range(len(old_acc)):
        if not seen[old_acc[i]]:
            keep_acc[j] = old_acc[i]
            keep_price[j] = old_price[i]
            j += 1
    for i in range(k):
        seen[new[i]] = False
    return newly, np.sort(live), keep_acc, keep_price


@njit(cache=True)
def refresh_pair_nb(
    c_touched: IntArray,
    c_flag: npt.NDArray[np.bool_],
    c_seen: npt.NDArray[np.bool_],
    c_acc: IntArray,
    c_price: FloatArray,
    level: float,
    mmr: FloatArray,
    cum: FloatArray,
    l_touched: IntArray,
    l_flag: npt.NDArray[np.bool_],
    l_seen: npt.NDArray[np.bool_],
    l_acc: IntArray,
    l_price: FloatArray,
    size: FloatArray,
    entry: FloatArray,
    margin: FloatArray,
) -> tuple[int, IntArray, FloatArray, int, IntArray]:
    """Both dirty refreshes of a tracked step in one call (continuous maintenance): the
    call-level index's (:meth:`LevelIndex._refresh_dirty`: :func:`refresh_dirty_nb`, the live
    touched positions priced at ``level`` by :func:`zone_prices_nb`, the kept and new entries
    in account order by a stable sort) and the liquidation index's
    (:meth:`.ZoneTracker._refresh_dirty`: :func:`refresh_dirty_nb`, kept then live, unpriced).
    Returns the call index's newly flagged count, dirty accounts and prices, then the
    liquidation index's count and accounts. Count -1 (nothing changed) when a touched
    account is beyond its flags: the caller takes the one-index refreshes, which grow them."""
    empty_i = np.zeros(0, dtype=np.int64)
    for a in c_touched:
        if a >= len(c_flag):
            return -1, empty_i, np.zeros(0), -1, empty_i
    for a in l_touched:
        if a >= len(l_flag):
            return -1, empty_i, np.zeros(0), -1, empty_i
    newly_c, live, acc, price = refresh_dirty_nb(c_touched, c_flag, c_seen, size, c_acc, c_price)
    if len(live):
        k = len(live)
        s, e, m = np.empty(k), np.empty(k), np.empty(k)
        for j in range(k):
            a = live[j]
            s[j], e[j], m[j] = size[a], entry[a], margin[a]
        new_price = np.empty(k)
        zone_prices_nb(s, e, m, level, mmr, cum, new_price)
        acc = np.concatenate((acc, live))
        price = np.concatenate((price, new_price))
        order = np.argsort(acc, kind="mergesort")
        acc, price = acc[order], price[order]
    newly_l, live, l_keep, _ = refresh_dirty_nb(l_touched, l_flag, l_seen, size, l_acc, l_price)
    if len(live):
        l_keep = np.concatenate((l_keep, live))
    return newly_c, acc, price, newly_l, l_keep


@njit(cache=True, inline="always")
def _classify_nb(
    s: float,
    entry: float,
    margin: float,
    mark: float,
    floor: FloatArray,
    mmr: FloatArray,
    cum: FloatArray,
    min_margin: float,
    call_level: float,
) -> tuple[int, float, float]:
    """Where an isolated position (size ``s``, entry, margin; quote) stands at ``mark``: 1 and
    its equity and maintenance when the equity is under maintenance (``below``), 2 when its
    ratio ``MM / E`` is at or over ``call_level`` (``warn``), 0 otherwise; the isolated scan's
    arithmetic (:func:`~deleverage.engine.kernels.isolated_scan_nb`). Inlined into its
    callers: a call per entry that passed the output arrays cost more than the arithmetic."""
    notional = abs(s) * mark
    t = tier_of_nb(notional, floor)
    m = maintenance_nb(notional, mmr[t], cum[t], min_margin)
    e = margin + s * (mark - entry)
    if e < m:
        return 1, e, m
    if e > 0.0 and m / e >= call_level:
        return 2, e, m
    return 0, e, m


@njit(cache=True)
def _side_scan_nb(
    acc: IntArray,
    price: FloatArray,
    start: int,
    stop: int,
    rows: tuple[FloatArray, FloatArray, FloatArray, npt.NDArray[np.bool_]],
    flag: npt.NDArray[np.bool_],
    any_flagged: bool,
    mark: float,
    floor: FloatArray,
    mmr: FloatArray,
    cum: FloatArray,
    min_margin: float,
    call_level: float,
    out: tuple[IntArray, FloatArray, FloatArray, IntArray, FloatArray],
    n_below: int,
    n_warn: int,
) -> tuple[int, int, int]:
    """Scan the sorted entries ``start .. stop - 1`` of one side from their ``rows`` (copies
    of the columns in sorted order, valid while an entry is clean), skipping dirty ones, and
    move the clean ones to the end of the range (order kept, with their prices and rows):
    the dirty entries of a scanned prefix are never read again. The vacated slots take the
    first kept price (the prices stay sorted for ``searchsorted``). Appends to ``out`` (below
    accounts, equity, maintenance; warn accounts, ratio) after the ``n_below`` / ``n_warn``
    entries already there. Returns the new head (the first clean entry of the range;
    ``start`` when nothing is flagged) and the new counts."""
    r_size, r_entry, r_margin, r_ok = rows
    b_acc, b_e, b_m, w_acc, w_r = out
    w = stop
    for i in range(stop - 1, start - 1, -1):
        a = acc[i]
        if any_flagged and flag[a]:
            continue
        w -= 1
        if w != i:
            acc[w] = a
            price[w] = price[i]
            r_size[w] = r_size[i]
            r_entry[w] = r_entry[i]
            r_margin[w] = r_margin[i]
            r_ok[w] = r_ok[i]
        s = r_size[w]
        if s == 0.0 or not r_ok[w]:
            continue
        code, e, m = _classify_nb(
            s, r_entry[w], r_margin[w], mark, floor, mmr, cum, min_margin, call_level
        )
        if code == 1:
            b_acc[n_below] = a
            b_e[n_below] = e
            b_m[n_below] = m
            n_below += 1
        elif code == 2:
            w_acc[n_warn] = a
            w_r[n_warn] = m / e
            n_warn += 1
    if start < w < stop:  # the vacated slots keep the order for the binary searches
        price[start:w] = price[w]
    return (w if stop > start else start), n_below, n_warn


@njit(cache=True)
def index_scan_nb(
    long_neg_price: FloatArray,
    long_acc: IntArray,
    long_rows: tuple[FloatArray, FloatArray, FloatArray, npt.NDArray[np.bool_]],
    short_price: FloatArray,
    short_acc: IntArray,
    short_rows: tuple[FloatArray, FloatArray, FloatArray, npt.NDArray[np.bool_]],
    heads: IntArray,
    flag: npt.NDArray[np.bool_],
    any_flagged: bool,
    d_acc: IntArray,
    d_price: FloatArray,
    size: FloatArray,
    entry: FloatArray,
    margin: FloatArray,
    mode: npt.NDArray[np.int8],
    kind: npt.NDArray[np.int8],
    mark: float,
    floor: FloatArray,
    mmr: FloatArray,
    cum: FloatArray,
    min_margin: float,
    call_level: float,
    zone_rtol: float,
) -> tuple[IntArray, FloatArray, FloatArray, IntArray, FloatArray]:
    """:func:`index_candidates_nb` and :func:`isolated_scan_at_nb` in one pass, without the
    scattered reads: a clean entry's columns are read from ``*_rows`` (size, entry, isolated
    margin and "isolated trader" of each sorted entry, copied when the order was made: a
    change of any of them touches the account, which makes the entry dirty), a dirty one's
    from the live columns. The scanned prefixes drop their dirty entries (clean ones moved
    up, ``heads`` set to the first: the entries before a head are never read again).
    Returns ``below`` (accounts), its equity and maintenance, ``warn`` (accounts) and its
    ratios, each in the order met: the caller sorts them by account."""
    hi = mark * (1.0 + zone_rtol)
    lo = mark * (1.0 - zone_rtol)
    k_long = int(np.searchsorted(long_neg_price, -lo, side="right"))
    k_short = int(np.searchsorted(short_price, hi, side="right"))
    h_long, h_short = int(heads[0]), int(heads[1])
    k = max(k_long - h_long, 0) + max(k_short - h_short, 0) + len(d_acc)
    out = (
        np.empty(k, dtype=np.int64), np.empty(k), np.empty(k), np.empty(k, dtype=np.int64),
        np.empty(k),
    )  # fmt: skip
    heads[0], nb, nw = _side_scan_nb(
        long_acc, long_neg_price, h_long, k_long, long_rows, flag, any_flagged, mark, floor, mmr,
        cum, min_margin, call_level, out, 0, 0,
    )  # fmt: skip
    heads[1], nb, nw = _side_scan_nb(
        short_acc, short_price, h_short, k_short, short_rows, flag, any_flagged, mark, floor,
        mmr, cum, min_margin, call_level, out, nb, nw,
    )  # fmt: skip
    if any_flagged:
        for j in range(len(d_acc)):
            p = d_price[j]
            i = d_acc[j]
            s = size[i]
            if not ((s > 0.0 and p >= lo) or (s < 0.0 and p <= hi) or not math.isfinite(p)):
                continue
            if s == 0.0 or mode[i] == 0 or kind[i] != 0:
                continue
            code, e, m = _classify_nb(
                s, entry[i], margin[i], mark, floor, mmr, cum, min_margin, call_level
            )
            if code == 1:
                out[0][nb] = i
                out[1][nb] = e
                out[2][nb] = m
                nb += 1
            elif code == 2:
                out[3][nw] = i
                out[4][nw] = m / e
                nw += 1
    return out[0][:nb], out[1][:nb], out[2][:nb], out[3][:nw], out[4][:nw]
