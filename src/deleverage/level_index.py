"""Sorted zone prices of a market's isolated positions: a quiet mark costs a binary search.

The risk step must find the isolated positions whose margin ratio is at the call level or
under maintenance. A full scan costs O(n) per mark; over a day of one-second marks at 10^6
positions that is minutes. Each isolated position has a fixed *zone price* (see
:mod:`deleverage.levels`): the price beyond which its ratio ``MM / E`` is at least ``level``
(``min(call level, 1)``). Sorted once (longs descending, shorts ascending), the positions a mark
``p`` can have in the zone are a prefix of each order, found by binary search.

Positions that changed since the sort (fills, margin moves, settings: the engine reports them
through :meth:`LevelIndex.touch`) are *dirty*: they are left out of the prefixes and checked
by their own zone prices, recomputed from live state when the scan needs them. When the dirty
set grows past a share of the index, or funding or a tier change moves every position, the
index is rebuilt. The candidates are then evaluated exactly by the same compiled scan as the
full pass, so the result is the same set in the same order (differential tests and the engine's
``check_invariants`` mode compare the two).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from deleverage.levels import zone_prices
from deleverage.spec import TierArrays

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

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
        self.dirty_flag = np.zeros(0, dtype=np.bool_)
        self._dirty: list[IntArray] = []
        self._dirty_count = 0
        self._dirty_acc = np.zeros(0, dtype=np.int64)
        self._dirty_price = np.zeros(0)
        self._dirty_stale = False
        self.rebuilds = 0

    # ---------------------------------------------------------------- changes
    def invalidate(self) -> None:
        """Every position may have moved (funding, tiers, replay): rebuild on next use."""
        self.valid = False

    def touch(self, accounts: IntArray) -> None:
        """Positions of ``accounts`` changed: check them by live state until the rebuild."""
        if not self.valid:
            return
        self._dirty.append(np.asarray(accounts, dtype=np.int64))
        self._dirty_count += len(accounts)
        self._dirty_stale = True
        n_indexed = len(self.long_acc) + len(self.short_acc)
        if self._dirty_count > max(DIRTY_FLOOR, int(n_indexed * DIRTY_SHARE)):
            self.valid = False

    # ---------------------------------------------------------------- build
    def rebuild(
        self,
        size: FloatArray,
        entry: FloatArray,
        margin: FloatArray,
        mode: npt.NDArray[np.int8],
        kind: npt.NDArray[np.int8],
        tiers: TierArrays,
    ) -> None:
        """Sort the zone prices of the isolated trader positions (arrays of the live accounts)."""
        n = len(size)
        live = (size != 0.0) & (mode != 0) & (kind == 0)
        acc = np.flatnonzero(live).astype(np.int64)
        price = zone_prices(size[acc], entry[acc], margin[acc], self.level, tiers)
        long = size[acc] > 0
        neg = -price[long]
        order = np.argsort(neg, kind="stable")
        self.long_neg_price, self.long_acc = neg[order], acc[long][order]
        sp = price[~long]
        order = np.argsort(sp, kind="stable")
        self.short_price, self.short_acc = sp[order], acc[~long][order]
        self.dirty_flag = np.zeros(n, dtype=np.bool_)
        self._dirty = []
        self._dirty_count = 0
        self._dirty_acc = np.zeros(0, dtype=np.int64)
        self._dirty_price = np.zeros(0)
        self._dirty_stale = False
        self.valid = True
        self.rebuilds += 1

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
        hi = mark * (1.0 + ZONE_RTOL)
        lo = mark * (1.0 - ZONE_RTOL)
        k_long = int(np.searchsorted(self.long_neg_price, -lo, side="right"))
        k_short = int(np.searchsorted(self.short_price, hi, side="right"))
        parts = [self.long_acc[:k_long], self.short_acc[:k_short]]
        if self._dirty_count:
            self._refresh_dirty(size, entry, margin, tiers)
            d_acc, d_price = self._dirty_acc, self._dirty_price
            d_size = size[d_acc]
            hit = ((d_size > 0) & (d_price >= lo)) | ((d_size < 0) & (d_price <= hi))
            hit |= (d_size != 0.0) & ~np.isfinite(d_price)
            parts = [p[~self.dirty_flag[p]] for p in parts]
            parts.append(d_acc[hit])
        out = np.concatenate(parts) if len(parts) > 1 else parts[0]
        out.sort()
        return out

    def _refresh_dirty(
        self, size: FloatArray, entry: FloatArray, margin: FloatArray, tiers: TierArrays
    ) -> None:
        if not self._dirty_stale:
            return
        new = np.concatenate(self._dirty)
        self._dirty = [np.union1d(self._dirty_acc, new)]
        acc = self._dirty[0]
        if len(self.dirty_flag) <= (acc.max() if len(acc) else -1):
            flags = np.zeros(int(acc.max()) + 1, dtype=np.bool_)
            flags[: len(self.dirty_flag)] = self.dirty_flag
            self.dirty_flag = flags
        self.dirty_flag[acc] = True
        self._dirty_count = len(acc)
        self._dirty_acc = acc
        self._dirty_price = zone_prices(size[acc], entry[acc], margin[acc], self.level, tiers)
        self._dirty_stale = False
