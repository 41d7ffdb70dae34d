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
as before (:func:`deleverage.engine.levels.zone_prices_compiled`, element by element, so a
price is the same bits whether priced alone or in a batch). A twin test prices every try
both ways (tests/unit/kernels/test_quiet_cache.py).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
from numba import njit

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


def cached_prices(
    index: LevelIndex,
    tiers: TierArrays,
    called: IntArray,
    price: Callable[[IntArray], tuple[BoolArray, FloatArray, FloatArray] | None],
) -> tuple[BoolArray, FloatArray, FloatArray] | None:
    """Side (long), zone and liquidation prices of the ``called`` accounts' positions (the
    called set's order): reused where unchanged (module docstring), ``price(accounts)`` for
    the others (None: none can be given, and nothing is kept). ``index``: the market's
    zone-price index, its touched positions taken in."""
    generation = (index.rebuilds, index.compactions)
    dirty = index.dirty_flag
    kept = _CACHE.get(index) if ENABLED else None
    slot = np.full(len(called), -1, dtype=np.int64)
    if kept is not None and kept.generation == generation and kept.tiers is tiers:
        match_called_nb(called, kept.acc, kept.clean, dirty, slot)
    miss = slot < 0
    empty = (np.zeros(0, dtype=np.bool_), np.zeros(0), np.zeros(0))
    fresh = price(called[miss]) if miss.any() else empty
    if fresh is None:
        _CACHE.pop(index, None)
        return None
    long = np.empty(len(called), dtype=np.bool_)
    zone = np.empty(len(called))
    liq = np.empty(len(called))
    if kept is not None and not miss.all():
        hit = ~miss
        at = slot[hit]
        long[hit], zone[hit], liq[hit] = kept.long[at], kept.zone[at], kept.liq[at]
    long[miss], zone[miss], liq[miss] = fresh
    clean = ~miss  # a reused price's position is clean (checked above)
    acc_miss = called[miss]
    inside = acc_miss < len(dirty)
    clean_miss = np.zeros(len(acc_miss), dtype=np.bool_)
    clean_miss[inside] = ~dirty[acc_miss[inside]]
    clean[miss] = clean_miss
    _CACHE[index] = _Prices(generation, tiers, called.copy(), long, zone, liq, clean)
    return long, zone, liq
