"""The indexed isolated scan's hot parts compiled: the dirty refresh, candidates, the scan.

:class:`deleverage.engine.level_index.LevelIndex` finds the positions a mark can have in the
zone: a prefix of each sorted side (clean entries only) plus the dirty positions whose live
zone price the mark reaches; :func:`deleverage.engine.kernels.isolated_scan_nb` evaluates
them. On a cascade every round takes in the accounts the last round touched and scans the few
thousand called positions again; in NumPy that was a dozen small array operations, a merge,
a sort and five gathers of scattered rows per round. Here:

- :func:`refresh_dirty_nb` flags the touched accounts and keeps the old dirty entries not
  touched again (the caller prices the live touched positions and merges);
- :func:`index_candidates_nb`: the same prefixes (``searchsorted``, same bounds), the same
  head advance past dirty entries, the same dirty test (NumPy sorts the union by account);
- :func:`isolated_scan_at_nb` evaluates the candidates' rows of the full columns with the
  scan's own arithmetic (``tier_of_nb``, ``maintenance_nb``, same expression order).

The result is the full pass's, bit for bit: tests/unit/exchange/test_exchange_scan_index.py
compares them after every operation, tests/unit/kernels/test_level_scan.py compares these
kernels with the NumPy code they replaced.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
from numba import njit

from deleverage.engine.kernels import maintenance_nb, tier_of_nb

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@njit(cache=True)
def isolated_scan_at_nb(
    rows: IntArray,
    size: FloatArray,
    entry: FloatArray,
    isolated_margin: FloatArray,
    mode: npt.NDArray[np.int8],
    kind: npt.NDArray[np.int8],
    mark: float,
    floor: FloatArray,
    mmr: FloatArray,
    cum: FloatArray,
    min_margin: float,
    call_level: float,
    below_out: IntArray,
    below_equity: FloatArray,
    below_maintenance: FloatArray,
    warn_out: IntArray,
    warn_ratio: FloatArray,
) -> tuple[int, int]:
    """:func:`deleverage.engine.kernels.isolated_scan_nb` over the accounts ``rows`` of the
    full columns (no gather first); writes account ids, not positions in ``rows``."""
    n_below = 0
    n_warn = 0
    for r in range(len(rows)):
        i = rows[r]
        s = size[i]
        if s == 0.0 or mode[i] == 0 or kind[i] != 0:
            continue
        notional = abs(s) * mark
        t = tier_of_nb(notional, floor)
        m = maintenance_nb(notional, mmr[t], cum[t], min_margin)
        e = isolated_margin[i] + s * (mark - entry[i])
        if e < m:
            below_out[n_below] = i
            below_equity[n_below] = e
            below_maintenance[n_below] = m
            n_below += 1
        elif e > 0.0 and m / e >= call_level:
            warn_out[n_warn] = i
            warn_ratio[n_warn] = m / e
            n_warn += 1
    return n_below, n_warn


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
