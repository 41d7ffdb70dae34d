"""The first clean uncalled entries of a zone-price index, found in what changed since last try.

Every stretch try takes a window of uncalled positions from each side of the market's
zone-price index (:func:`deleverage.engine.quiet_calls.call_window`): the first ``width``
sorted entries from the side's head whose account is neither *flagged* (dirty: touched since
the index's last sort or compaction) nor called. After a crash the front of each side holds
the positions liquidated since the sort (a closed position stays flagged in its slot until
the next compaction: up to a quarter of the index) and the called ones, and a plain walk
(:func:`.take_clean_nb`) reads them all again at every try: 0.2 ms a side on the cascade day.

Within one index state the flags only grow (:func:`.refresh_dirty_nb` sets them, only a sort
or a compaction clears them, and those replace the arrays) and the sorted entries from the
head on stay where they are (the scans that move entries up move the head past the vacated
slots). So :class:`TakeCache` keeps, per side, the positions ``[head, limit)`` walked so far
that were not flagged then (ascending): every position of that range missing from the list
is flagged still. The next try walks the list (dropping the uncalled entries flagged since,
for good; a called entry is passed over and kept without reading its dirty flag, the cold
read of the walk) and then the side from ``limit`` on: the same positions in the same order as
the plain walk, at the cost of the called and window entries (and the newly flagged ones,
once). A new
index state (a head moved, a sort, a compaction, grown flags) starts the list afresh.
A twin test compares every try with the plain walk (tests/unit/kernels/test_quiet_take.py).
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
from numba import njit

if TYPE_CHECKING:
    from deleverage.engine.level_index import LevelIndex

IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

#: Whether :func:`take_clean` keeps the walked positions (tests switch it off to compare).
ENABLED = True


@njit(cache=True)
def take_clean_nb(
    acc: IntArray, flag: BoolArray, called: BoolArray, start: int, width: int, out: IntArray
) -> tuple[int, int]:
    """Positions of the first ``width`` entries of ``acc`` from ``start`` whose account is
    neither flagged nor ``called`` (both indexed by account; beyond their length: not), into
    ``out``; returns their count and the position of the next such entry (``len(acc)`` when
    none)."""
    count = 0
    i = start
    n_flag = len(flag)
    n_called = len(called)
    while i < len(acc):
        a = acc[i]
        skip = (a < n_flag and flag[a]) or (a < n_called and called[a])
        if not skip:
            if count == width:
                return count, i
            out[count] = i
            count += 1
        i += 1
    return count, len(acc)


@njit(cache=True)
def take_clean_kept_nb(
    acc: IntArray,
    flag: BoolArray,
    called: BoolArray,
    width: int,
    out: IntArray,
    kept: IntArray,
    kept_acc: IntArray,
    n_kept: int,
    limit: int,
) -> tuple[int, int, int, int]:
    """:func:`.take_clean_nb` from the kept positions ``kept[:n_kept]`` (ascending; every
    position of ``[head, limit)`` not among them is flagged) and then the entries from
    ``limit`` on. Returns the count taken into ``out``, the position of the next clean
    uncalled entry (``len(acc)`` when none), and the new ``n_kept`` and ``limit`` (``kept``
    and its accounts ``kept_acc``, read in order instead of ``acc`` at scattered positions,
    rewritten in place: the flagged uncalled entries met are dropped, the walked ones
    appended; a kept entry may be flagged while it is called, so every position of
    ``[head, limit)`` not kept is flagged still)."""
    count = 0
    n_flag = len(flag)
    n_called = len(called)
    w = 0
    r = 0
    while r < n_kept:
        i = kept[r]
        a = kept_acc[r]
        r += 1
        if a < n_called and called[a]:
            # Called: skipped, and kept without reading its flag (the called flags were just
            # set, so hot; the dirty flags of thousands of called accounts are cold reads). A
            # flagged one kept is dropped at the first walk that finds it uncalled.
            kept[w] = i
            kept_acc[w] = a
            w += 1
            continue
        if a < n_flag and flag[a]:
            continue  # flagged since: flagged until the next index state
        kept[w] = i
        kept_acc[w] = a
        w += 1
        if count == width:
            for q in range(r, n_kept):  # the rest as it is (w < r: a forward copy is safe)
                kept[w + q - r] = kept[q]
                kept_acc[w + q - r] = kept_acc[q]
            return count, i, w + n_kept - r, limit
        out[count] = i
        count += 1
    n_kept = w
    i = limit
    n = len(acc)
    while i < n:
        a = acc[i]
        if a < n_called and called[a]:
            kept[n_kept] = i  # kept unread, as above
            kept_acc[n_kept] = a
            n_kept += 1
        elif not (a < n_flag and flag[a]):
            kept[n_kept] = i
            kept_acc[n_kept] = a
            n_kept += 1
            if count == width:
                return count, i, n_kept, i + 1
            out[count] = i
            count += 1
        i += 1
    return count, n, n_kept, n


@dataclass
class _Side:
    """One side's walked positions for one index state (module docstring)."""

    acc: IntArray
    flag: BoolArray
    head: int
    generation: tuple[int, int]
    kept: IntArray
    kept_acc: IntArray
    n_kept: int
    limit: int


_CACHE: weakref.WeakKeyDictionary[LevelIndex, list[_Side | None]] = weakref.WeakKeyDictionary()


def take_clean(
    index: LevelIndex,
    side: int,
    acc: IntArray,
    head: int,
    called: BoolArray,
    width: int,
    out: IntArray,
) -> tuple[int, int]:
    """:func:`.take_clean_nb` of side ``side`` (0 long, 1 short: its sorted accounts ``acc``
    from ``head``) of ``index`` with its dirty flags, walking only what changed since the
    last call on the same index state (module docstring)."""
    flag = index.dirty_flag
    if not ENABLED:
        return take_clean_nb(acc, flag, called, head, width, out)
    generation = (index.rebuilds, index.compactions)
    sides = _CACHE.get(index)
    if sides is None:
        sides = _CACHE[index] = [None, None]
    kept = sides[side]
    if (
        kept is None
        or kept.acc is not acc
        or kept.flag is not flag
        or kept.head != head
        or kept.generation != generation
    ):
        room = len(acc) - head
        kept = _Side(
            acc, flag, head, generation, np.empty(room, np.int64), np.empty(room, np.int64), 0,
            head,
        )  # fmt: skip
        sides[side] = kept
    count, nxt, kept.n_kept, kept.limit = take_clean_kept_nb(
        acc, flag, called, width, out, kept.kept, kept.kept_acc, kept.n_kept, kept.limit
    )
    return int(count), int(nxt)
