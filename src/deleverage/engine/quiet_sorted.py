"""The called entries of a quiet stretch in sorted orders: a step costs what it changes.

Inside a stretch (:func:`deleverage.sim.quiet.quiet_path_nb`) the called isolated positions
are followed step by step: at each mark an entry still called stays called when it is
certainly in the zone and above maintenance, is dropped when certainly out of the zone, and is
evaluated exactly otherwise (:func:`.recalls_step_nb`: a dropped entry back in the zone is
called again). After a crash thousands of entries are called; a step that is not certain for
all of them at once (:func:`.called_certain_nb`) walks every entry, although at most a handful
change or need the exact test.

Here the entries of the call market (``m = call_m``), per side, sit in two sorted orders kept
for the rest of the stretch: by zone price and by liquidation price, with the keys of shorts
negated so that both sides read the same way (*key* below: the zone price of a long, minus
that of a short). With ``LO = p (1 - rtol)`` and ``HI = p (1 + rtol)`` (``-HI`` / ``-LO`` for
shorts), the entry-by-entry test of :func:`.recalls_step_nb` says: key ``< LO``, out of the zone
(dropped); key ``> HI`` and not dropped and liquidation key ``< LO``, stays called; else
evaluated. Kept invariant after each step: the dropped entries are those with key below the
step's ``LO`` plus a short list ``P`` (dropped entries at or above it). So the entries a step
evaluates are found by two binary searches and short walks:

- keys in ``[LO, HI]`` (the slack band);
- keys in ``(HI, LO_prev)``: dropped by an earlier step, back in the zone;
- ``P`` entries with key above ``HI``;
- entries not dropped with key above ``HI`` and liquidation key at or above ``LO`` (a prefix of
  the liquidation order, descending).

and the entries whose key passed below ``LO`` since the last step are flagged dropped
(between ``LO_prev`` and ``LO``). The outcome is the entry-by-entry pass's: same entries
evaluated with the same arithmetic, same flags, same calls (staged, then ordered by account
as the risk step writes them). Entries called during the stretch join both orders; an entry
called again leaves them (its new entry joins). A step that stops the stretch commits nothing.
The Hypothesis twins (tests/unit/kernels/test_quiet_sorted.py) run the stretch kernel with
the orders from the first step and without them.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from numba import njit

from deleverage.engine.quiet_calls import BELOW, OUTSIDE, _ratio_nb

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

#: Uncertain steps a stretch walks entry by entry before it sorts the called entries: the
#: sort (about 1 ms at 5,000 entries) pays off only in long uncertain streaks (the crash's
#: stretches of 100-2,000 steps whose every step calls, drops or calls again).
SORT_AFTER = 32


@njit(cache=True)
def _key(zone: float, long: bool) -> float:
    return zone if long else -zone


@njit(cache=True)
def _lower(keys: FloatArray, n: int, x: float) -> int:
    """Count of the first ``n`` keys (ascending) below ``x``."""
    lo, hi = 0, n
    while lo < hi:
        mid = (lo + hi) >> 1
        if keys[mid] < x:
            lo = mid + 1
        else:
            hi = mid
    return lo


@njit(cache=True)
def _upper(keys: FloatArray, n: int, x: float) -> int:
    """Count of the first ``n`` keys (ascending) at or below ``x``."""
    lo, hi = 0, n
    while lo < hi:
        mid = (lo + hi) >> 1
        if keys[mid] <= x:
            lo = mid + 1
        else:
            hi = mid
    return lo


@njit(cache=True)
def _sort_side(
    sel: IntArray, k: int, long: BoolArray, zone: FloatArray, liq: FloatArray,
    zkey: FloatArray, zent: IntArray, lkey: FloatArray, lent: IntArray,
) -> None:  # fmt: skip
    """Both orders of the ``k`` entries ``sel`` of one side (into one side's rows; the order
    of equal keys does not matter: every test reads keys, not positions)."""
    zk = np.empty(k)
    lk = np.empty(k)
    for q in range(k):
        i = sel[q]
        zk[q] = _key(zone[i], long[i])
        lk[q] = -_key(liq[i], long[i])
    order = np.argsort(zk)
    for q in range(k):
        zkey[q] = zk[order[q]]
        zent[q] = sel[order[q]]
    order = np.argsort(lk)
    for q in range(k):
        lkey[q] = lk[order[q]]
        lent[q] = sel[order[q]]


@njit(cache=True)
def sorted_build_nb(
    nc: int,
    market: IntArray,
    long: BoolArray,
    zone: FloatArray,
    liq: FloatArray,
    dropped: BoolArray,
    call_m: int,
    zkey: FloatArray,
    zent: IntArray,
    lkey: FloatArray,
    lent: IntArray,
    count: IntArray,
    lo_prev: FloatArray,
    p_ent: IntArray,
    in_buf: BoolArray,
) -> bool:
    """Sort the first ``nc`` called entries (module docstring) into ``zkey``/``zent`` (per
    side ``[2, room]``: zone keys ascending) and ``lkey``/``lent`` (negated liquidation keys
    ascending: liquidation keys descending). ``count``: entries a side, in ``P`` (every
    dropped entry: ``lo_prev`` is ``-inf``) and in the buffer of entries called since (none).
    False (the orders unusable) when an entry still listed is of another market than
    ``call_m``."""
    n_side = np.zeros(2, dtype=np.int64)
    for i in range(nc):
        if market[i] < 0:
            continue
        if market[i] != call_m:
            return False
        n_side[0 if long[i] else 1] += 1
    for side in range(2):
        sel = np.empty(n_side[side], dtype=np.int64)
        k = 0
        for i in range(nc):
            if market[i] == call_m and long[i] == (side == 0):
                sel[k] = i
                k += 1
        _sort_side(sel, k, long, zone, liq, zkey[side], zent[side], lkey[side], lent[side])
        count[side] = k
        lo_prev[side] = -np.inf
    n_p = 0
    for i in range(nc):
        in_buf[i] = False
        if market[i] == call_m and dropped[i]:
            p_ent[n_p] = i
            n_p += 1
    count[2] = n_p
    count[3] = 0
    return True


@njit(cache=True)
def _classify(
    p: float, zone_rtol: float, long: bool, zone: float, liq: float
) -> tuple[bool, bool, bool]:
    """Out of the zone, certainly in it, certainly above maintenance (:func:`.recalls_step_nb`'s
    test of one entry, the same arithmetic)."""
    lo = p * (1.0 - zone_rtol)
    hi = p * (1.0 + zone_rtol)
    if long:
        return lo > zone, hi < zone, lo > liq
    return hi < zone, lo > zone, hi < liq


@njit(cache=True)
def sorted_step_nb(
    p: float,
    zone_rtol: float,
    market: IntArray,
    long: BoolArray,
    zone: FloatArray,
    liq: FloatArray,
    c_acc: IntArray,
    dropped: BoolArray,
    zkey: FloatArray,
    zent: IntArray,
    lkey: FloatArray,
    lent: IntArray,
    count: IntArray,
    lo_prev: FloatArray,
    p_ent: IntArray,
    buf: IntArray,
    size: FloatArray,
    entry: FloatArray,
    margin: FloatArray,
    floor: FloatArray,
    mmr: FloatArray,
    cum: FloatArray,
    min_margin: float,
    call_level: float,
    ev_ent: IntArray,
    ev_drop: BoolArray,
    n_eval: IntArray,
    stage_src: IntArray,
    stage_acc: IntArray,
    stage_ratio: FloatArray,
) -> int:
    """:func:`.recalls_step_nb` at mark ``p`` of the call market over the sorted orders and
    the buffer of entries called since they were sorted (each buffered entry tested as
    there): the entries it would evaluate (module docstring) are evaluated, their new
    dropped flags go to ``ev_ent``/``ev_drop`` (``n_eval[0]``; nothing is committed), the
    entries called again are staged as there. Returns the count staged, -1 when an entry is
    under maintenance. Entries called again since the sort (market -1) are skipped."""
    lo = p * (1.0 - zone_rtol)
    hi = p * (1.0 + zone_rtol)
    n_e = 0
    for side in range(2):
        if side == 0:
            klo, khi = lo, hi
        else:
            klo, khi = -hi, -lo
        n = count[side]
        s = _lower(zkey[side], n, klo)
        t = _upper(zkey[side], n, khi)
        s_prev = _lower(zkey[side], n, lo_prev[side])
        # The slack band, then the entries dropped by earlier steps and back above HI.
        for q in range(s, max(t, s_prev)):
            e = zent[side, q]
            if market[e] >= 0:
                ev_ent[n_e] = e
                n_e += 1
        # Not dropped, above HI, not certainly above maintenance.
        for q in range(n):
            if -lkey[side, q] < klo:
                break
            e = lent[side, q]
            if market[e] >= 0 and not dropped[e] and _key(zone[e], long[e]) > khi:
                ev_ent[n_e] = e
                n_e += 1
    # Dropped entries at or above the previous LO, back above HI.
    for q in range(count[2]):
        e = p_ent[q]
        if market[e] >= 0:
            khi = hi if long[e] else -lo
            if _key(zone[e], long[e]) > khi:
                ev_ent[n_e] = e
                n_e += 1
    # The buffer, entry by entry.
    for q in range(count[3]):
        e = buf[q]
        if market[e] < 0:
            continue
        outside, inside, safe = _classify(p, zone_rtol, long[e], zone[e], liq[e])
        if not outside and not (not dropped[e] and inside and safe):
            ev_ent[n_e] = e
            n_e += 1
    staged = 0
    below = False
    for q in range(n_e):
        e = ev_ent[q]
        r = _ratio_nb(c_acc[e], p, size, entry, margin, floor, mmr, cum, min_margin, call_level)
        if r == BELOW:
            below = True
            break
        ev_drop[q] = dropped[e] or r == OUTSIDE
        if dropped[e] and r != OUTSIDE:
            stage_src[staged] = e
            stage_acc[staged] = c_acc[e]
            stage_ratio[staged] = r
            staged += 1
    n_eval[0] = n_e
    if below:
        return -1
    return staged


@njit(cache=True)
def sorted_commit_nb(
    p: float,
    zone_rtol: float,
    market: IntArray,
    long: BoolArray,
    zone: FloatArray,
    liq: FloatArray,
    dropped: BoolArray,
    zkey: FloatArray,
    zent: IntArray,
    count: IntArray,
    lo_prev: FloatArray,
    p_ent: IntArray,
    buf: IntArray,
    in_buf: BoolArray,
    ev_ent: IntArray,
    ev_drop: BoolArray,
    n_eval: int,
) -> bool:
    """Commit a quiet step of :func:`sorted_step_nb`: flag the sorted entries whose key passed
    below ``LO`` and the buffered ones out of the zone, set the evaluated entries' flags,
    keep ``P`` (sorted entries only) and ``LO``. Returns whether a flag changed."""
    changed = False
    lo = p * (1.0 - zone_rtol)
    hi = p * (1.0 + zone_rtol)
    for side in range(2):
        klo = lo if side == 0 else -hi
        n = count[side]
        s = _lower(zkey[side], n, klo)
        for q in range(_lower(zkey[side], n, lo_prev[side]), s):
            changed |= not dropped[zent[side, q]]
            dropped[zent[side, q]] = True
        lo_prev[side] = klo
    for q in range(count[3]):
        e = buf[q]
        if market[e] >= 0 and _classify(p, zone_rtol, long[e], zone[e], liq[e])[0]:
            changed |= not dropped[e]
            dropped[e] = True
    n_p = 0
    for q in range(n_eval):
        e = ev_ent[q]
        changed |= dropped[e] != ev_drop[q]
        dropped[e] = ev_drop[q]
        if ev_drop[q] and not in_buf[e]:
            p_ent[n_p] = e
            n_p += 1
    count[2] = n_p
    return changed


@njit(cache=True)
def _merge(
    keys: FloatArray, ent: IntArray, n: int, add_k: FloatArray, add_e: IntArray, k: int,
    market: IntArray,
) -> int:  # fmt: skip
    """Merge the ``k`` sorted ``add_*`` into the first ``n`` sorted ``keys``/``ent`` in
    place, leaving out entries of market -1; returns the new count."""
    old_k = keys[:n].copy()
    old_e = ent[:n].copy()
    i = j = out = 0
    while i < n or j < k:
        if i < n and market[old_e[i]] < 0:
            i += 1
            continue
        if j >= k or (i < n and old_k[i] <= add_k[j]):
            keys[out] = old_k[i]
            ent[out] = old_e[i]
            i += 1
        else:
            keys[out] = add_k[j]
            ent[out] = add_e[j]
            j += 1
        out += 1
    return out


@njit(cache=True)
def sorted_merge_nb(
    market: IntArray,
    long: BoolArray,
    zone: FloatArray,
    liq: FloatArray,
    dropped: BoolArray,
    zkey: FloatArray,
    zent: IntArray,
    lkey: FloatArray,
    lent: IntArray,
    count: IntArray,
    lo_prev: FloatArray,
    p_ent: IntArray,
    buf: IntArray,
    in_buf: BoolArray,
) -> bool:
    """Merge the buffered entries into the orders once there are more than an eighth (and
    32) of the sorted ones, dropping the entries called again (market -1); after a commit.
    False (the orders unusable from now on) when a buffered entry below ``LO`` is not
    dropped (a committed step flags them all: never)."""
    if count[3] <= max(32, (count[0] + count[1]) // 8):
        return True
    n_p = count[2]
    for q in range(count[3]):
        e = buf[q]
        if market[e] >= 0 and dropped[e]:
            if _key(zone[e], long[e]) >= lo_prev[0 if long[e] else 1]:
                p_ent[n_p] = e  # P holds the sorted entries dropped at or above LO
                n_p += 1
        elif market[e] >= 0 and _key(zone[e], long[e]) < lo_prev[0 if long[e] else 1]:
            return False
    k = 0
    for q in range(n_p):
        if market[p_ent[q]] >= 0:
            p_ent[k] = p_ent[q]
            k += 1
    count[2] = k
    for side in range(2):
        k = 0
        for q in range(count[3]):
            e = buf[q]
            if market[e] >= 0 and long[e] == (side == 0):
                k += 1
        sel = np.empty(k, dtype=np.int64)
        k = 0
        for q in range(count[3]):
            e = buf[q]
            if market[e] >= 0 and long[e] == (side == 0):
                sel[k] = e
                k += 1
        zk, ze, lk, le = np.empty(k), np.empty(k, np.int64), np.empty(k), np.empty(k, np.int64)
        _sort_side(sel, k, long, zone, liq, zk, ze, lk, le)
        n = _merge(zkey[side], zent[side], count[side], zk, ze, k, market)
        _merge(lkey[side], lent[side], count[side], lk, le, k, market)
        count[side] = n
    for q in range(count[3]):
        in_buf[buf[q]] = False
    count[3] = 0
    return True
