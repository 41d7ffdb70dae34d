"""Whether a mark liquidates, asked before the quiet bands are built for it.

A stretch try (:meth:`deleverage.sim.quiet.QuietStretches.advance`) gathers the engine's
bands, call window and called positions (about a millisecond after a crash) and then walks
the path; during a cascade half of the tries stop at their first step, most because a
position is under maintenance at that step's mark: the risk step liquidates it, and no
stretch runs. :func:`liquidates_first` asks that first, from the step's marks (the stretch
kernel's own rule, :func:`deleverage.sim.quiet.venue_mark_nb`) and each market's
liquidation-price index (the :class:`.ZoneTracker` at level 1: its sorted clean entries give
the highest liquidation price of a long and the lowest of a short among the isolated
positions; dirty entries, unpriced there, are left out, and an index with touches not
taken in yet gives no answer). A mark at or beyond one of them
(with the index's slack) puts that position under maintenance, and the try would stop at
its first step: it is not made.

The single-mark fast path asks the same before it builds bands
(:class:`deleverage.engine.quiet_mark.QuietMarks`): during a cascade most marks it looked at
liquidated, after a millisecond of bands that could not serve them.

The answer only decides whether a try is made (whether bands are built); every step a try
does not cover runs step by step, so the results do not depend on it (the stretch and
quiet-mark twins compare the runs).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
from numba import njit

from deleverage.engine.level_index import ZONE_RTOL
from deleverage.engine.quiet import first_clean_nb

if TYPE_CHECKING:
    from deleverage.engine.exchange import Exchange

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@njit(cache=True)
def liq_edges_nb(
    long_neg: FloatArray,
    long_acc: IntArray,
    long_head: int,
    short_price: FloatArray,
    short_acc: IntArray,
    short_head: int,
    flag: npt.NDArray[np.bool_],
) -> tuple[float, float]:
    """The key of the first clean entry of each side of a sorted index: the highest
    liquidation price of a long (``-inf`` when none) and the lowest of a short (``inf``)."""
    i = first_clean_nb(long_acc, flag, long_head)
    j = first_clean_nb(short_acc, flag, short_head)
    long = -long_neg[i] if i < len(long_acc) else -np.inf
    short = short_price[j] if j < len(short_acc) else np.inf
    return long, short


def liquidates_first(ex: Exchange, marks: FloatArray) -> bool:
    """Whether an isolated position of some market is under maintenance at ``marks`` (one
    per market) by its market's liquidation-price index (module docstring); False where a
    market has no such index."""
    from deleverage.engine.zone_calls import ZoneTracker

    for m in range(len(marks)):
        tracker = ex._level_index.get((m, 1.0))
        if not isinstance(tracker, ZoneTracker) or not tracker.valid or tracker._touched:
            continue  # touched positions not taken in yet: no answer from this index
        p = float(marks[m])
        long, short = liq_edges_nb(
            tracker.long_neg_price, tracker.long_acc, tracker.long_head, tracker.short_price,
            tracker.short_acc, tracker.short_head, tracker.dirty_flag,
        )  # fmt: skip
        if p * (1.0 - ZONE_RTOL) <= long or p * (1.0 + ZONE_RTOL) >= short:
            return True
    return False
