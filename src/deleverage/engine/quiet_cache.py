"""The called positions' zone and liquidation prices, kept between stretch tries.

Every stretch try (:func:`deleverage.engine.quiet.quiet_bands`) needs the zone price (at the
call level) and the liquidation price of each called isolated position: after a crash
thousands of them, gathered from the full columns and priced afresh at every try, though few
positions changed in between. The called set changes in order (the risk step keeps the
called accounts still in the zone in their order and appends the fresh ones; a stretch drops
some and appends its calls), so the previous try's called accounts are matched to the new
ones by one forward walk, and a matched position keeps its two prices when it has not
changed since: it was *clean* in the market's zone-price index (:class:`.LevelIndex`: not
touched since the index's last sort or compaction) when priced and is clean still, in the
same index generation (same sort and compaction count) and tier table. The others are priced
as before (:func:`deleverage.engine.kernels.zone_prices_nb`, element by element, so a
price is the same bits whether priced alone or in a batch), gathered, priced and merged with
the reused ones in one compiled call (:func:`fill_prices_nb`). A twin test prices every try
both ways (tests/unit/kernels/test_quiet_cache.py).

The try's first test, that every called account still holds an open isolated position, takes
the same walk first (:func:`open_match_nb`, before the index takes in the positions touched
since its last refresh: those are passed as flags): a reusable position has not changed since
it was priced, and it was open then, so only the others are read from the full columns (two
scattered reads an account were most of a try's cost for thousands of called positions). The
walk's slots serve the pricing after the index's refresh while its state is the same.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
from numba import njit

from deleverage.engine.kernels import zone_prices_nb

if TYPE_CHECKING:
    from deleverage.engine.level_index import LevelIndex
    from deleverage.spec import TierArrays

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

#: Whether :func:`cached_prices` reuses prices (tests switch it off to compare).
ENABLED = True


@dataclass
class _Prices:
    """One index's called prices at the last try (module docstring)."""

    generation: tuple[int, int]
    tiers: TierArrays
    acc: IntArray
    long: BoolArray
    zone: FloatArray
    liq: FloatArray
    clean: BoolArray


_CACHE: weakref.WeakKeyDictionary[LevelIndex, _Prices] = weakref.WeakKeyDictionary()
_NONE = (np.zeros(0, dtype=np.bool_), np.zeros(0), np.zeros(0))  # no old prices


@njit(cache=True)
def match_called_nb(
    new: IntArray, old: IntArray, old_clean: BoolArray, dirty: BoolArray, slot: IntArray
) -> int:
    """For each account of ``new``, the position in ``old`` of the same account (found by a
    forward walk: both in the called set's order) when its prices there can be reused (clean
    then and now, ``dirty`` by account; beyond it: dirty), else -1 (``slot``). Returns the
    count of -1. The walk gives up (the rest -1) after ``4 (len(new) + len(old))`` steps."""
    j = 0
    misses = 0
    budget = 4 * (len(new) + len(old))
    n_old = len(old)
    n_dirty = len(dirty)
    for i in range(len(new)):
        a = new[i]
        k = j
        while k < n_old and old[k] != a and budget > 0:
            k += 1
            budget -= 1
        if k < n_old and old[k] == a:
            j = k + 1
            if old_clean[k] and a < n_dirty and not dirty[a]:
                slot[i] = k
                continue
        slot[i] = -1
        misses += 1
    return misses


@njit(cache=True)
def open_match_nb(
    new: IntArray,
    old: IntArray,
    old_clean: BoolArray,
    dirty: BoolArray,
    pending: BoolArray,
    size: FloatArray,
    mode: npt.NDArray[np.int8],
    slot: IntArray,
) -> bool:
    """:func:`match_called_nb` before the index takes in its touched positions (``pending``,
    by account: touched since, dirty once taken in; beyond it: not), fused with
    :func:`.called_open_nb`: whether every ``new`` account holds an open isolated position
    (size not 0, mode not cross) in the market of ``size`` and ``mode``. A reusable entry's
    position has not changed since it was priced (it was open then, :func:`.quiet_bands`
    checks before it prices), so only the others are read from the columns (scattered reads
    of the full columns: most of the called set's cost a try). ``slot``: as
    :func:`match_called_nb`'s (a subset of its slots once the touched ones are flagged);
    unusable when False."""
    j = 0
    budget = 4 * (len(new) + len(old))
    n_old = len(old)
    n_dirty = len(dirty)
    n_pending = len(pending)
    for i in range(len(new)):
        a = new[i]
        k = j
        while k < n_old and old[k] != a and budget > 0:
            k += 1
            budget -= 1
        if k < n_old and old[k] == a:
            j = k + 1
            if old_clean[k] and a < n_dirty and not dirty[a] and not (a < n_pending and pending[a]):
                slot[i] = k
                continue
        slot[i] = -1
        if not (size[a] != 0.0 and mode[a] != 0):
            return False
    return True


def open_slots(
    index: LevelIndex,
    tiers: TierArrays,
    called: IntArray,
    size: FloatArray,
    mode: npt.NDArray[np.int8],
    pending: BoolArray,
) -> IntArray | None:
    """The reusable slots of the ``called`` accounts (:func:`open_match_nb`, -1 where none),
    or None when one of them holds no open isolated position; None as well (no answer: the
    caller reads every account) when this index keeps no prices usable now. ``pending``:
    flags of the accounts touched since the index's last refresh (by account)."""
    kept = _CACHE.get(index) if ENABLED else None
    if kept is None or kept.generation != (index.rebuilds, index.compactions):
        return None
    if kept.tiers is not tiers:
        return None
    slot = np.empty(len(called), dtype=np.int64)
    if not open_match_nb(called, kept.acc, kept.clean, index.dirty_flag, pending, size, mode, slot):
        return _CLOSED
    return slot


#: What :func:`open_slots` returns when a called position is not open.
_CLOSED = np.full(0, -2, dtype=np.int64)


def closed(slot: IntArray | None) -> bool:
    """Whether :func:`open_slots` found a called position not open."""
    return slot is _CLOSED


@njit(cache=True)
def fill_prices_nb(
    called: IntArray,
    slot: IntArray,
    old_long: BoolArray,
    old_zone: FloatArray,
    old_liq: FloatArray,
    dirty: BoolArray,
    size: FloatArray,
    entry: FloatArray,
    margin: FloatArray,
    level: float,
    mmr: FloatArray,
    cum: FloatArray,
    long: BoolArray,
    zone: FloatArray,
    liq: FloatArray,
    clean: BoolArray,
) -> bool:
    """Side, zone price at ``level`` and liquidation price of each ``called`` account's
    position into ``long``, ``zone``, ``liq``: the old entry's where ``slot`` gives one
    (:func:`match_called_nb`), else priced from the columns ``size``, ``entry``, ``margin``
    by :func:`.zone_prices_nb` (the misses gathered in order: the same bits as a batch of
    them); ``clean``: reused, or clean by ``dirty`` now (beyond it: dirty). False (outputs
    unusable) when a fresh price is not finite."""
    miss = np.flatnonzero(slot < 0)
    n_miss = len(miss)
    s = np.empty(n_miss)
    e = np.empty(n_miss)
    mg = np.empty(n_miss)
    for t in range(n_miss):
        a = called[miss[t]]
        s[t] = size[a]
        e[t] = entry[a]
        mg[t] = margin[a]
    z = np.empty(n_miss)
    q = np.empty(n_miss)
    zone_prices_nb(s, e, mg, level, mmr, cum, z)
    zone_prices_nb(s, e, mg, 1.0, mmr, cum, q)
    for t in range(n_miss):
        if not (np.isfinite(z[t]) and np.isfinite(q[t])):
            return False
    n_dirty = len(dirty)
    for i in range(len(called)):
        k = slot[i]
        if k >= 0:
            long[i] = old_long[k]
            zone[i] = old_zone[k]
            liq[i] = old_liq[k]
            clean[i] = True
    for t in range(n_miss):
        i = miss[t]
        a = called[i]
        long[i] = s[t] > 0
        zone[i] = z[t]
        liq[i] = q[t]
        clean[i] = a < n_dirty and not dirty[a]
    return True


@njit(cache=True)
def stretch_kept_nb(
    n: int,
    n_old: int,
    acc: IntArray,
    long: BoolArray,
    zone: FloatArray,
    liq: FloatArray,
    dropped: BoolArray,
    old_clean: BoolArray,
    dirty: BoolArray,
) -> tuple[IntArray, BoolArray, FloatArray, FloatArray, BoolArray]:
    """The called entries a stretch leaves (:func:`deleverage.sim.quiet.quiet_path_nb`'s
    first ``n``, those not ``dropped``: the called set's order after it): account, side,
    zone and liquidation prices, and clean (the first ``n_old`` entries' from ``old_clean``,
    the calls' by ``dirty`` now, beyond it: dirty)."""
    count = 0
    for i in range(n):
        count += not dropped[i]
    out_acc = np.empty(count, dtype=np.int64)
    out_long = np.empty(count, dtype=np.bool_)
    out_zone = np.empty(count)
    out_liq = np.empty(count)
    out_clean = np.empty(count, dtype=np.bool_)
    n_dirty = len(dirty)
    j = 0
    for i in range(n):
        if dropped[i]:
            continue
        a = acc[i]
        out_acc[j] = a
        out_long[j] = long[i]
        out_zone[j] = zone[i]
        out_liq[j] = liq[i]
        out_clean[j] = old_clean[i] if i < n_old else (a < n_dirty and not dirty[a])
        j += 1
    return out_acc, out_long, out_zone, out_liq, out_clean


def keep_stretch_prices(
    index: LevelIndex,
    tiers: TierArrays,
    n: int,
    acc: IntArray,
    long: BoolArray,
    zone: FloatArray,
    liq: FloatArray,
    dropped: BoolArray,
    called: IntArray,
) -> None:
    """Keep the prices of the called entries a stretch of this index's market leaves (the
    entries it was given, this index's last prices, then the calls it made: their window
    prices, :func:`.call_window`'s, are the same bits a fresh pricing gives, by the same
    kernel from the same columns), so that the next try reprices none of them. ``called``:
    the market's called set after the stretch (nothing is kept unless the entries are it).
    No position changes inside a stretch: the index's state and flags are the try's."""
    kept = _CACHE.get(index) if ENABLED else None
    generation = (index.rebuilds, index.compactions)
    if kept is None or kept.generation != generation or kept.tiers is not tiers:
        return
    n_old = len(kept.acc)
    if n < n_old or not np.array_equal(acc[:n_old], kept.acc):
        return  # not this index's entries alone
    out = stretch_kept_nb(n, n_old, acc, long, zone, liq, dropped, kept.clean, index.dirty_flag)
    if not np.array_equal(out[0], called):
        return
    _CACHE[index] = _Prices(generation, tiers, *out)


def cached_prices(
    index: LevelIndex,
    tiers: TierArrays,
    called: IntArray,
    size: FloatArray,
    entry: FloatArray,
    margin: FloatArray,
    slot: IntArray | None = None,
) -> tuple[BoolArray, FloatArray, FloatArray] | None:
    """Side (long), zone and liquidation prices of the ``called`` accounts' open isolated
    positions (the called set's order): reused where unchanged (module docstring), priced
    from the market's columns ``size``, ``entry``, ``margin`` for the others (None: one has
    an unbounded zone, and nothing is kept). ``index``: the market's zone-price index, its
    touched positions taken in; ``tiers``: continuous. ``slot``: :func:`open_slots`'s answer
    for these accounts before the index took in its touched positions (used while the index
    state is the same; else matched here)."""
    generation = (index.rebuilds, index.compactions)
    dirty = index.dirty_flag
    kept = _CACHE.get(index) if ENABLED else None
    usable = kept is not None and kept.generation == generation and kept.tiers is tiers
    if slot is None or not usable or len(slot) != len(called):
        slot = np.full(len(called), -1, dtype=np.int64)
        if kept is not None and usable:
            match_called_nb(called, kept.acc, kept.clean, dirty, slot)
    n = len(called)
    long = np.empty(n, dtype=np.bool_)
    zone = np.empty(n)
    liq = np.empty(n)
    clean = np.empty(n, dtype=np.bool_)
    old_long, old_zone, old_liq = (kept.long, kept.zone, kept.liq) if kept is not None else _NONE
    if not fill_prices_nb(
        called, slot, old_long, old_zone, old_liq, dirty, size, entry, margin, index.level,
        tiers.mmr, tiers.cum, long, zone, liq, clean,
    ):  # fmt: skip
        _CACHE.pop(index, None)
        return None
    _CACHE[index] = _Prices(generation, tiers, called.copy(), long, zone, liq, clean)
    return long, zone, liq
