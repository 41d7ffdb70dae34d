"""Sorted zone prices of a market's isolated positions: a quiet mark costs a binary search.

The risk step must find the isolated positions whose margin ratio is at the call level or
under maintenance. A full scan costs O(n) per mark; over a day of one-second marks at 10^6
positions that is minutes. Each isolated position has a fixed *zone price* (see
:mod:`deleverage.engine.levels`): the price beyond which its ratio ``MM / E`` is at least ``level``
(``min(call level, 1)``); where maintenance jumps (risk-limit steps, a floor) the extreme price
at which it can be there (:mod:`deleverage.engine.step_levels`). Sorted once (longs descending,
shorts ascending), the positions a mark ``p`` can have in the zone are a prefix of each order,
found by binary search.

Positions that changed since the sort (fills, margin moves, settings: the engine reports them
through :meth:`LevelIndex.touch`) are *dirty*: they are left out of the prefixes and checked
by their own zone prices, recomputed from live state when the scan needs them. When the dirty
set grows past a share of the index, or funding or a tier change moves every position, the
index is rebuilt. The candidates are then evaluated exactly by the same compiled scan as the
full pass, so the result is the same set in the same order (differential tests and the engine's
``check_invariants`` mode compare the two).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from numba import njit

from deleverage.engine.level_scan import (
    index_candidates_nb,
    index_scan_nb,
    refresh_dirty_nb,
)
from deleverage.engine.levels import index_zone_prices as _zone
from deleverage.engine.radix_sort import radix_sorted
from deleverage.spec import TierArrays

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
Rows = tuple[FloatArray, FloatArray, FloatArray, npt.NDArray[np.bool_]]

#: Relative slack on zone prices: candidates within it are evaluated exactly (float safety).
ZONE_RTOL = 1e-7
#: Rebuild once the dirty set exceeds this share of the indexed positions (and the floor).
DIRTY_SHARE = 1 / 64
DIRTY_FLOOR = 1024


class LevelIndex:
    """Zone-price index of the isolated trader positions of one market at one level."""

    def __init__(self, level: float) -> None:
        self.level = min(float(level), 1.0)
        self.valid = False
        self.long_neg_price = np.zeros(0)  # -zone price of longs, ascending
        self.long_acc = np.zeros(0, dtype=np.int64)
        self.short_price = np.zeros(0)  # zone price of shorts, ascending
        self.short_acc = np.zeros(0, dtype=np.int64)
        # Entries before a head are never read: dirty ones skipped for good until the next
        # compaction, or stale slots left by the scan's moves (:func:`index_scan_nb`).
        self.long_head = 0
        self.short_head = 0
        self.dirty_flag = np.zeros(0, dtype=np.bool_)
        self._seen = np.zeros(0, dtype=np.bool_)  # scratch for refresh_dirty_nb, all False
        self._touched: list[IntArray] = []
        self._pending = 0
        self._n_flagged = 0
        self._dirty_acc = np.zeros(0, dtype=np.int64)  # live dirty positions, ascending
        self._dirty_price = np.zeros(0)
        #: Per side, the sorted entries' size, entry, isolated margin and "isolated trader"
        #: (copied on first use after a sort; a clean entry's columns have not moved since).
        self._rows: tuple[Rows, Rows] | None = None
        self.rebuilds = 0
        self.compactions = 0

    # ---------------------------------------------------------------- changes
    def invalidate(self) -> None:
        """Every position may have moved (funding, tiers, replay): rebuild on next use."""
        self.valid = False

    def touch(self, accounts: IntArray) -> None:
        """Positions of ``accounts`` changed: check them by live state until compaction."""
        if not self.valid:
            return
        self._touched.append(np.asarray(accounts, dtype=np.int64))
        self._pending += len(accounts)
        if self._pending > max(DIRTY_FLOOR, len(self.long_acc) + len(self.short_acc)) // 2:
            self.valid = False  # most of the book moved: a fresh sort is cheaper

    # ---------------------------------------------------------------- build
    def rebuild(
        self,
        size: FloatArray,
        entry: FloatArray,
        margin: FloatArray,
        mode: npt.NDArray[np.int8],
        kind: npt.NDArray[np.int8],
        tiers: TierArrays,
        like: SortMemo | None = None,
    ) -> SortMemo:
        """Sort the zone prices of the isolated trader positions (arrays of the live accounts).
        ``like``: another index's rebuild from the same columns (its sort starts from that
        order; the result is the same). Returns this rebuild's :class:`SortMemo`."""
        n = len(size)
        acc, s, e, m = live_rows_nb(size, entry, margin, mode, kind)
        price = _zone(s, e, m, self.level, tiers)
        memo = self._install(acc, price, s > 0, n, like)
        self.rebuilds += 1
        return memo

    def _install(
        self,
        acc: IntArray,
        price: FloatArray,
        long: npt.NDArray[np.bool_],
        n: int,
        like: SortMemo | None = None,
    ) -> SortMemo:
        guess: tuple[IntArray | None, IntArray | None] = (None, None)
        if like is not None and np.array_equal(like.acc, acc) and np.array_equal(like.long, long):
            guess = like.orders  # the same positions on the same sides
        long_neg, long_acc, short_price, short_acc = split_sides_nb(acc, price, long)
        order_l, self.long_neg_price = stable_sorted(long_neg, guess[0])
        self.long_acc = long_acc[order_l]
        order_s, self.short_price = stable_sorted(short_price, guess[1])
        self.short_acc = short_acc[order_s]
        self.long_head = self.short_head = 0
        self.dirty_flag = np.zeros(n, dtype=np.bool_)
        self._touched = []
        self._pending = 0
        self._n_flagged = 0
        self._dirty_acc = np.zeros(0, dtype=np.int64)
        self._dirty_price = np.zeros(0)
        self._rows = None
        self.valid = True
        return SortMemo(acc, long, (order_l, order_s))

    def _compact(self, size: FloatArray, n: int) -> None:
        """Merge the live dirty positions back into the sorted orders; drop stale entries
        (those before the heads were all dirty).

        Both parts are sorted already, so the stable sort merges two runs in linear time.
        """
        long_acc, long_neg = self.long_acc[self.long_head :], self.long_neg_price[self.long_head :]
        short_acc, short_price = (
            self.short_acc[self.short_head :],
            self.short_price[self.short_head :],
        )
        keep_l = ~self.dirty_flag[long_acc]
        keep_s = ~self.dirty_flag[short_acc]
        d_acc, d_price = self._dirty_acc, self._dirty_price
        d_long = size[d_acc] > 0
        neg = np.concatenate([long_neg[keep_l], np.sort(-d_price[d_long])])
        acc = np.concatenate([long_acc[keep_l], d_acc[d_long][np.argsort(-d_price[d_long])]])
        order = np.argsort(neg, kind="stable")
        self.long_neg_price, self.long_acc = neg[order], acc[order]
        sp = np.concatenate([short_price[keep_s], np.sort(d_price[~d_long])])
        acc = np.concatenate([short_acc[keep_s], d_acc[~d_long][np.argsort(d_price[~d_long])]])
        order = np.argsort(sp, kind="stable")
        self.short_price, self.short_acc = sp[order], acc[order]
        self.long_head = self.short_head = 0
        self.dirty_flag = np.zeros(n, dtype=np.bool_)
        self._n_flagged = 0
        self._dirty_acc = np.zeros(0, dtype=np.int64)
        self._dirty_price = np.zeros(0)
        self._rows = None
        self.compactions += 1

    # ---------------------------------------------------------------- query
    def candidates(
        self,
        mark: float,
        size: FloatArray,
        entry: FloatArray,
        margin: FloatArray,
        tiers: TierArrays,
    ) -> IntArray:
        """Accounts whose position can be in the zone at ``mark``, ascending (a superset)."""
        if self._touched:
            self._refresh_dirty(size, entry, margin, tiers)
        heads = np.array([self.long_head, self.short_head], dtype=np.int64)
        out = index_candidates_nb(
            self.long_neg_price, self.long_acc, self.short_price, self.short_acc, heads,
            self.dirty_flag, self._n_flagged != 0, self._dirty_acc, self._dirty_price, size,
            float(mark), ZONE_RTOL,
        )  # fmt: skip
        self.long_head, self.short_head = int(heads[0]), int(heads[1])
        out.sort()
        return out

    def scan(
        self,
        mark: float,
        size: FloatArray,
        entry: FloatArray,
        margin: FloatArray,
        mode: npt.NDArray[np.int8],
        kind: npt.NDArray[np.int8],
        tiers: TierArrays,
        call_level: float,
    ) -> tuple[IntArray, FloatArray, FloatArray, IntArray, FloatArray]:
        """The isolated scan of :meth:`candidates` at ``mark`` (full columns): the accounts
        under maintenance with their equity and maintenance, the accounts at ``call_level``
        or above with their ratio, each ascending (:func:`index_scan_nb`; the same figures as
        :func:`deleverage.engine.kernels.isolated_scan_nb` over the candidates)."""
        if self._touched:
            self._refresh_dirty(size, entry, margin, tiers)
        if self._rows is None:
            self._rows = (
                _rows(self.long_acc, size, entry, margin, mode, kind),
                _rows(self.short_acc, size, entry, margin, mode, kind),
            )
        assert self._rows is not None
        heads = np.array([self.long_head, self.short_head], dtype=np.int64)
        below, below_e, below_m, warn, warn_r = index_scan_nb(
            self.long_neg_price, self.long_acc, self._rows[0], self.short_price, self.short_acc,
            self._rows[1], heads, self.dirty_flag, self._n_flagged != 0, self._dirty_acc,
            self._dirty_price, size, entry, margin, mode, kind, float(mark), tiers.floor,
            tiers.mmr, tiers.cum, float(tiers.min_margin), float(call_level), ZONE_RTOL,
        )  # fmt: skip
        self.long_head, self.short_head = int(heads[0]), int(heads[1])
        if len(below) > 1:
            below, order = _by_account(below)
            below_e, below_m = below_e[order], below_m[order]
        if len(warn) > 1:
            warn, order = _by_account(warn)
            warn_r = warn_r[order]
        return below, below_e, below_m, warn, warn_r

    def band(
        self,
        size: FloatArray,
        entry: FloatArray,
        margin: FloatArray,
        tiers: TierArrays,
        mode: npt.NDArray[np.int8],
        kind: npt.NDArray[np.int8],
        exclude: IntArray | None = None,
    ) -> tuple[float, float]:
        """The highest zone price of an isolated trader's long and the lowest of a short
        (quote/base), leaving out the accounts ``exclude`` (ascending). Touched positions of
        other accounts (the book's, cross ones), which the scan's exact test drops, are left
        out too.

        A mark ``p`` with ``p (1 - ZONE_RTOL) > long`` and ``p (1 + ZONE_RTOL) < short`` has no
        candidate (:meth:`candidates` returns nothing) but the excluded ones, so no other
        position is in the zone: the quiet stretches of :mod:`deleverage.engine.quiet` rely on
        it. ``-inf`` / ``+inf`` when a side is empty; a dirty position with an unbounded zone
        gives ``+inf`` / ``-inf``.
        """
        from deleverage.engine.quiet import first_clean_nb

        if self._touched:
            self._refresh_dirty(size, entry, margin, tiers)
        flag = self.dirty_flag
        skip = np.zeros(0, dtype=np.int64) if exclude is None else exclude[exclude < len(flag)]
        saved = flag[skip].copy()
        flag[skip] = True  # skipped like dirty entries, restored below
        try:
            i = first_clean_nb(self.long_acc, flag, self.long_head)
            j = first_clean_nb(self.short_acc, flag, self.short_head)
        finally:
            flag[skip] = saved
        long = -float(self.long_neg_price[i]) if i < len(self.long_acc) else -np.inf
        short = float(self.short_price[j]) if j < len(self.short_acc) else np.inf
        d_acc, d_price = self._dirty_acc, self._dirty_price
        if len(d_acc):
            keep = (mode[d_acc] != 0) & (kind[d_acc] == 0)
            if len(skip):  # membership by binary search (np.isin sorts, or tables every id)
                if np.any(skip[1:] < skip[:-1]):
                    skip = np.sort(skip)
                at = np.searchsorted(skip, d_acc)
                at[at == len(skip)] = 0
                keep &= skip[at] != d_acc
            d_acc, d_price = d_acc[keep], d_price[keep]
        if len(d_acc):
            if not np.all(np.isfinite(d_price)):
                return np.inf, -np.inf
            d_long = size[d_acc] > 0
            if d_long.any():
                long = max(long, float(d_price[d_long].max()))
            if (~d_long).any():
                short = min(short, float(d_price[~d_long].min()))
        return long, short

    def _refresh_dirty(
        self, size: FloatArray, entry: FloatArray, margin: FloatArray, tiers: TierArrays
    ) -> None:
        """Take in the positions touched since last time: flag them, price the live ones."""
        touched = self._take_touched()
        newly, live, acc, price = refresh_dirty_nb(
            touched, self.dirty_flag, self._seen, size, self._dirty_acc, self._dirty_price
        )
        if newly < 0:  # accounts opened since the sort: grow the flags, then take them in
            flags = np.zeros(int(touched.max()) + 1, dtype=np.bool_)
            flags[: len(self.dirty_flag)] = self.dirty_flag
            self.dirty_flag = flags
            self._seen = np.zeros(len(flags), dtype=np.bool_)
            newly, live, acc, price = refresh_dirty_nb(
                touched, self.dirty_flag, self._seen, size, self._dirty_acc, self._dirty_price
            )
        if len(live):  # a closed position leaves until a fill touches it again
            new_price = _zone(size[live], entry[live], margin[live], self.level, tiers)
            acc = np.concatenate([acc, live])
            price = np.concatenate([price, new_price])
            order = np.argsort(acc, kind="stable")
            acc, price = acc[order], price[order]
        self._take_dirty(newly, acc, price, size, entry, margin, tiers)

    def _take_touched(self) -> IntArray:
        """The accounts touched since the last refresh (the log emptied), with the scratch
        flags sized for :func:`refresh_dirty_nb`."""
        touched = self._touched[0] if len(self._touched) == 1 else np.concatenate(self._touched)
        self._touched = []
        self._pending = 0
        if len(self._seen) != len(self.dirty_flag):
            self._seen = np.zeros(len(self.dirty_flag), dtype=np.bool_)
        return touched

    def _take_dirty(
        self,
        newly: int,
        acc: IntArray,
        price: FloatArray,
        size: FloatArray,
        entry: FloatArray,
        margin: FloatArray,
        tiers: TierArrays,
    ) -> None:
        """Install a refresh's dirty entries (``newly`` flagged since the last one); compact
        once they are too many."""
        self._n_flagged += newly
        self._dirty_acc, self._dirty_price = acc, price
        if self.overfull(len(acc)):
            self._compact(size, len(self.dirty_flag))

    def dirty_limits(self) -> tuple[int, int]:
        """The most dirty entries and the most flagged accounts the index keeps before it
        compacts (:data:`DIRTY_SHARE` of the indexed entries, a quarter for the flags, each
        at least :data:`DIRTY_FLOOR`)."""
        n_indexed = len(self.long_acc) + len(self.short_acc)
        return max(DIRTY_FLOOR, int(n_indexed * DIRTY_SHARE)), n_indexed // 4 + DIRTY_FLOOR

    def overfull(self, n_dirty: int) -> bool:
        """Whether ``n_dirty`` dirty entries and the flagged accounts exceed
        :meth:`dirty_limits` (the index compacts)."""
        max_dirty, max_flagged = self.dirty_limits()
        return n_dirty > max_dirty or self._n_flagged > max_flagged


def _rows(
    acc: IntArray,
    size: FloatArray,
    entry: FloatArray,
    margin: FloatArray,
    mode: npt.NDArray[np.int8],
    kind: npt.NDArray[np.int8],
) -> Rows:
    """The columns :func:`index_scan_nb` reads for sorted entries ``acc``, in their order:
    ``size[acc]``, ``entry[acc]``, ``margin[acc]``, ``(mode[acc] != 0) & (kind[acc] == 0)``
    (:func:`rows_nb`)."""
    return rows_nb(acc, size, entry, margin, mode, kind)


# A rebuild's gathers compiled: at 10^6 positions each NumPy mask or gather is a pass of its
# own over a million entries (the first margin call of the isolated day sorts both indexes:
# ~0.12 s, ~0.07 s of it masks and gathers); each kernel below reads its inputs once.


@njit(cache=True)
def live_rows_nb(
    size: FloatArray,
    entry: FloatArray,
    margin: FloatArray,
    mode: npt.NDArray[np.int8],
    kind: npt.NDArray[np.int8],
) -> tuple[IntArray, FloatArray, FloatArray, FloatArray]:
    """The isolated trader positions (``size != 0``, ``mode != 0``, ``kind == 0``; a NaN
    size counts), ascending, with their size, entry and margin: ``acc =
    np.flatnonzero(live)`` and ``size[acc]``, ``entry[acc]``, ``margin[acc]``."""
    n = len(size)
    k = 0
    for i in range(n):
        k += size[i] != 0.0 and mode[i] != 0 and kind[i] == 0
    acc = np.empty(k, dtype=np.int64)
    s, e, m = np.empty(k), np.empty(k), np.empty(k)
    j = 0
    for i in range(n):
        if size[i] != 0.0 and mode[i] != 0 and kind[i] == 0:
            acc[j] = i
            s[j], e[j], m[j] = size[i], entry[i], margin[i]
            j += 1
    return acc, s, e, m


@njit(cache=True)
def split_sides_nb(
    acc: IntArray, price: FloatArray, long: npt.NDArray[np.bool_]
) -> tuple[FloatArray, IntArray, FloatArray, IntArray]:
    """``-price[long]``, ``acc[long]``, ``price[~long]``, ``acc[~long]`` in one pass (each
    side in ``acc``'s order). Without a branch: each entry is written to both sides' next
    slot and only its own side's count moves (the sides are mixed at random: a branch would
    be mispredicted every other entry), so each buffer has one slot more than its side."""
    n_long = 0
    for x in long:
        n_long += x
    n_short = len(long) - n_long
    long_neg, long_acc = np.empty(n_long + 1), np.empty(n_long + 1, dtype=np.int64)
    short_price, short_acc = np.empty(n_short + 1), np.empty(n_short + 1, dtype=np.int64)
    i_l = 0
    i_s = 0
    for j in range(len(long)):
        p, a = price[j], acc[j]
        long_neg[i_l] = -p
        long_acc[i_l] = a
        short_price[i_s] = p
        short_acc[i_s] = a
        side = int(long[j])
        i_l += side
        i_s += 1 - side
    return long_neg[:n_long], long_acc[:n_long], short_price[:n_short], short_acc[:n_short]


@njit(cache=True)
def rows_nb(
    acc: IntArray,
    size: FloatArray,
    entry: FloatArray,
    margin: FloatArray,
    mode: npt.NDArray[np.int8],
    kind: npt.NDArray[np.int8],
) -> Rows:
    """:func:`_rows`: the four columns of the entries ``acc`` gathered in one pass."""
    k = len(acc)
    s, e, m = np.empty(k), np.empty(k), np.empty(k)
    trader = np.empty(k, dtype=np.bool_)
    for j in range(k):
        a = acc[j]
        s[j], e[j], m[j] = size[a], entry[a], margin[a]
        trader[j] = mode[a] != 0 and kind[a] == 0
    return s, e, m, trader


def _by_account(acc: IntArray) -> tuple[IntArray, IntArray]:
    """``acc`` ascending and the order that sorts it (``np.argsort(acc)``: the accounts of a
    scan are distinct, so the order is unique), from one sort of the packed keys
    ``acc * k + position`` (several times faster than an argsort of a few thousand ids; a
    few dozen take the argsort)."""
    k = len(acc)
    if k < 256 or int(acc.max()) >= (1 << 62) // k or int(acc.min()) < 0:
        order = np.argsort(acc)
        return acc[order], order
    keys = np.sort(acc * k + np.arange(k, dtype=np.int64))
    ordered = keys // k
    return ordered, keys - ordered * k


def stable_order(values: FloatArray) -> npt.NDArray[np.intp]:
    """``np.argsort(values, kind="stable")`` (:func:`stable_sorted`'s order)."""
    return stable_sorted(values)[0]


def stable_sorted(
    values: FloatArray, guess: IntArray | None = None
) -> tuple[npt.NDArray[np.intp], FloatArray]:
    """``np.argsort(values, kind="stable")`` and ``values`` in that order. A rebuild sorts
    every position's zone price (10^5-10^6 values a side), where NumPy's argsorts cost ~75 ns
    a value on the AMD EPYC type; the radix sort of :mod:`deleverage.engine.radix_sort` gives
    the same order (its keys rank equal values, and the NaNs last, by their index) in about a
    third of that.

    ``guess``: a permutation of the positions that nearly sorts ``values`` (another level's
    order of the same positions: the zone prices at the call level and at level 1 of a
    market's positions are in almost the same order, a few dozen descents in 10^5). NumPy's
    stable sort of the values in that order finds its runs (~1 ms), and each run of equal
    values put back in index order (:func:`stable_ties_nb`) makes it the stable order
    whatever the guess; one far from sorted takes the radix sort."""
    if guess is not None and len(guess) == len(values) > 1:
        seen = values[guess]
        if np.count_nonzero(seen[1:] < seen[:-1]) <= len(seen) // 64:
            within = np.argsort(seen, kind="stable")
            order, ranked = guess[within], seen[within]
            if stable_ties_nb(order, ranked):
                ranked = values[order]  # equal values, but 0.0 and -0.0 compare equal
            return order, ranked
    return radix_sorted(values)


@dataclass(frozen=True)
class SortMemo:
    """What a :meth:`LevelIndex.rebuild` sorted: the live accounts (ascending), their side
    (long) and each side's order (positions among that side's accounts). Another index of
    the same positions rebuilt from the same columns starts its sort from it."""

    acc: IntArray
    long: npt.NDArray[np.bool_]
    orders: tuple[IntArray, IntArray]


@njit(cache=True)
def stable_ties_nb(order: npt.NDArray[np.intp], ranked: FloatArray) -> bool:
    """Sort the indices of ``order`` within each run of equal ``ranked`` values (the values
    in that order, ascending; the NaNs last, one run) ascending, in place; whether any run
    had more than one entry (the order then may have changed)."""
    n = len(ranked)
    ties = False
    i = 0
    while i < n:
        v = ranked[i]
        j = i + 1
        if v != v:  # NaN: every value from here on
            j = n
        else:
            while j < n and ranked[j] == v:
                j += 1
        if j - i > 1:
            order[i:j] = np.sort(order[i:j])
            ties = True
        i = j
    return ties
