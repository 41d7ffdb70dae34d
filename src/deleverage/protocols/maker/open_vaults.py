"""The open vaults of a collateral type in liquidation-price order, for prefix queries.

The Maker venue keeps its vaults sorted once by liquidation price, highest first (a partial
liquidation scales ``ink`` and ``art`` alike, so the order never changes; a closed vault,
``art = 0``, simply stops counting). Each risk step asks two questions of the prefix of vaults
whose liquidation price is above a price (the OSM's, the market's): which open vaults are in it
(to bark them) and how many and how much normalized debt they hold (the under-collateralized
vault-seconds and DAI-seconds). :class:`OpenVaults` answers both without filtering the prefix:
it holds the sorted ranks of the open vaults and their ``art`` in that order, compacted, so a
prefix of the sorted order is a slice of it (one binary search). The ``art`` sum is NumPy's
sum of the same values in the same order as the filtered prefix, so it is the same float.
Barks update it in place; closing vaults are removed in one pass per step.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["OpenVaults"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


class OpenVaults:
    """Open vaults (``art > 0``) in a fixed order (module docstring).

    Parameters
    ----------
    order
        Vault indices in the fixed order (rank ``r`` holds vault ``order[r]``).
    art
        Every vault's normalized debt now (read, not kept).

    Examples
    --------
    >>> v = OpenVaults(np.array([2, 0, 1]), np.array([5.0, 0.0, 7.0]))
    >>> v.first_rank(), v.vaults_before(3).tolist(), v.art_before(1)
    (0, [2, 0], (1, 7.0))
    """

    def __init__(self, order: IntArray, art: FloatArray) -> None:
        self._order = np.asarray(order, dtype=np.int64)
        self._rank_of = np.empty_like(self._order)
        self._rank_of[self._order] = np.arange(self._order.size, dtype=np.int64)
        sorted_art = np.asarray(art, dtype=np.float64)[self._order]
        self._ranks = np.flatnonzero(sorted_art > 0.0).astype(np.int64)
        self._art = sorted_art[self._ranks]
        self._last_sum = (-1, 0.0)  # the last art_before's count and sum (until an update)

    def __len__(self) -> int:
        return int(self._ranks.size)

    def first_rank(self) -> int:
        """Rank of the first open vault in the order; -1 when none is open."""
        return int(self._ranks[0]) if self._ranks.size else -1

    def _cut(self, end_rank: int) -> int:
        return int(np.searchsorted(self._ranks, end_rank, side="left"))

    def vaults_before(self, end_rank: int) -> IntArray:
        """Open vaults of rank ``< end_rank``, in the order."""
        return self._order[self._ranks[: self._cut(end_rank)]]

    def ranks_before(self, end_rank: int) -> tuple[IntArray, IntArray, FloatArray]:
        """The order, the sorted ranks and the ``art`` of the open vaults of rank
        ``< end_rank`` (views): :meth:`vaults_before` is ``order[ranks]``."""
        k = self._cut(end_rank)
        return self._order, self._ranks[:k], self._art[:k]

    def art_before(self, end_rank: int) -> tuple[int, float]:
        """Count and summed ``art`` of the open vaults of rank ``< end_rank``."""
        k = self._cut(end_rank)
        if k != self._last_sum[0]:
            self._last_sum = (k, float(self._art[:k].sum()))
        return self._last_sum

    def update(self, vaults: IntArray, art: FloatArray) -> None:
        """Take the new ``art`` of ``vaults`` (open ones before, changed since); a vault whose
        ``art`` is no longer ``> 0`` leaves."""
        if vaults.size == 0:
            return
        pos = np.searchsorted(self._ranks, self._rank_of[vaults])
        new = art[vaults]
        self._art[pos] = new
        self._last_sum = (-1, 0.0)
        closed = np.sort(pos[~(new > 0.0)])
        if closed.size:
            # Barks close the most distressed vaults, near the front: shift the entries before
            # the last closed one over the closed ones and start the arrays later (the same
            # arrays as deleting them, in the order's head only).
            c, end = int(closed.size), int(closed[-1]) + 1
            keep = np.ones(end, dtype=np.bool_)
            keep[closed] = False
            self._ranks[c:end] = self._ranks[:end][keep]
            self._art[c:end] = self._art[:end][keep]
            self._ranks, self._art = self._ranks[c:], self._art[c:]
