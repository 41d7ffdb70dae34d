"""The GMX venue's trigger index: conservative trigger prices sorted per direction.

A position's remaining collateral is linear in the index price, ``A + B p``; with the worst
price impact and close fee any later open interest could give (and borrowing / funding for
a look-ahead) it is never below ``A_cons + B p``, so the position cannot be liquidatable
before the price crosses its *conservative* trigger ``(threshold - A_cons) / B``
(docs/formulas.md §G2). A :class:`TriggerLadder` holds one direction's conservative
triggers as ascending keys (``-p*`` for positions that lose on a fall, ``p*`` for those that
lose on a rise), so the positions the price has crossed are a prefix found by one binary
search.

Positions only close between rebuilds (a size change other than a liquidation rebuilds the
index), so closed entries are skipped for good: a head pointer passes those at the front, and
a crossed prefix holding many closed entries is compacted. A step then costs what it crosses
and touches, not the population.

:meth:`TriggerLadder.nearest` gives the quiet band's edge: exact triggers (with the open
interest now) of the live entries from the head, in growing chunks, until the next
conservative key cannot be below the smallest exact key found; the edge is then the exact
trigger nearest the price of all the direction's positions (or the next conservative key when
the scan reaches its cap first: a narrower band, still valid).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.typing as npt

__all__ = ["TriggerLadder"]

F64 = npt.NDArray[np.float64]
IDX = npt.NDArray[np.intp]

#: Compact a crossed prefix once it holds this many closed entries (and more closed than live).
_COMPACT_AT = 256
#: First chunk of the edge scan beyond the crossed prefix; chunks double up to the cap.
_SCAN_FIRST = 32
#: Most entries the edge scan evaluates beyond the crossed prefix.
_SCAN_CAP = 16_384


class TriggerLadder:
    """One direction's conservative triggers as ascending ``keys`` with the positions
    ``idx`` (``keys`` is ``-p*`` for a fall ladder, ``p*`` for a rise ladder).

    Examples
    --------
    >>> ladder = TriggerLadder(np.array([-105.0, -100.0, -90.0]), np.array([2, 0, 1]))
    >>> size = np.array([1.0, 1.0, 1.0])
    >>> ladder.crossed(-101.0, "left", size).tolist()  # fall triggers above 101
    [2]
    >>> size[2] = 0.0  # position 2 closes: the head passes it for good
    >>> ladder.crossed(-95.0, "left", size).tolist(), ladder.head
    ([0], 1)
    """

    def __init__(self, keys: F64, idx: IDX) -> None:
        self.keys = keys
        self.idx = idx
        self.head = 0

    @classmethod
    def empty(cls) -> TriggerLadder:
        """A ladder with no entries."""
        return cls(np.empty(0), np.empty(0, dtype=np.intp))

    def crossed(self, bound: float, side: str, size: F64) -> IDX:
        """Open positions (``size > 0``) whose key is below ``bound`` (``side="left"``) or at
        most ``bound`` (``"right"``), in ladder order; passes and drops closed entries."""
        end = int(np.searchsorted(self.keys, bound, side=side))  # type: ignore[call-overload]
        if end <= self.head:
            return np.empty(0, dtype=np.intp)
        seg = self.idx[self.head : end]
        live = size[seg] > 0.0
        n_live = int(np.count_nonzero(live))
        if n_live == 0:
            self.head = end
            return np.empty(0, dtype=np.intp)
        first = int(np.argmax(live))
        closed = seg.size - first - n_live  # closed entries behind the first live one
        self.head += first
        if closed >= _COMPACT_AT and closed > n_live:
            self._drop(self.head, end, live[first:])
        return np.asarray(seg[live], dtype=np.intp)

    def _drop(self, start: int, end: int, live: npt.NDArray[np.bool_]) -> None:
        keep = np.ones(self.keys.size, dtype=np.bool_)
        keep[start:end] = live
        self.keys = self.keys[keep]
        self.idx = self.idx[keep]

    def nearest(self, bound: float, size: F64, exact: Callable[[IDX], F64]) -> float:
        """The smallest exact key of any open position in the ladder: the live entries from
        the head are evaluated by ``exact`` (their exact keys: a position's exact key is at
        least its conservative one) in chunks, all those with keys below ``bound`` first,
        until the next conservative key is at least the smallest exact key found; past the
        scan's cap, that next conservative key bounds the rest. ``inf`` when nothing open
        remains."""
        keys, idx, n = self.keys, self.idx, self.keys.size
        start = self.head
        end = max(int(np.searchsorted(keys, bound, side="left")), start)
        stop = min(n, end + _SCAN_FIRST)
        best = np.inf
        chunk = _SCAN_FIRST
        while True:
            seg = idx[start:stop]
            seg = seg[size[seg] > 0.0]
            if seg.size:
                best = min(best, float(exact(seg).min()))
            if stop >= n:
                return best
            nxt = float(keys[stop])
            if nxt >= best:
                return best
            if stop - end >= _SCAN_CAP:
                return nxt
            chunk *= 2
            start, stop = stop, min(n, stop + chunk)
