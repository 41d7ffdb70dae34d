"""The called entries a stretch step must look at: those near the marks (issue #20).

After a crash a quiet stretch carries thousands of called isolated positions
(:func:`deleverage.sim.quiet.quiet_path_nb`). At each step every called entry either stays as
it is (a called one certainly in the zone and above maintenance, a dropped one certainly out
of the zone: :func:`.called_step_nb`'s tests) or needs the exact test of the step. Testing all
of them at every step that is not certain costs ``O(called)`` a step; only the entries whose
zone or liquidation price lies near the mark can change.

:func:`near_split_nb` splits the entries once for a *window* of marks around the marks now
(``[p (1 - w), p (1 + w)]`` per market): an entry that stays as it is at every mark of its
market's window is *far*, the others are *near*. While every mark stays in its window the
step tests only the near entries (and the entries called in the stretch, which join them); a
far entry would pass :func:`.called_step_nb` unchanged at any such mark, so the result is the
same as testing all of them. A mark outside its window splits again around the new marks; a
near list grown past twice its size at the split, the marks still in their windows, is split
again over itself for the same windows (an entry left out of it was far for them and has not
changed since).

Marks leave a window of half-width 1e-4 every few steps (a path of 30 % a year moves 5e-5 a
second), and a split over every called entry costs ``O(called)``: so the splits are nested.
A *wide* window (:data:`WIDE` times the half-width) is split over every entry, the near one
only over the wide one's near entries (:func:`near_among_nb`, in their order, with the entries
called since appended): an entry far for the wide window is far for every mark in it, so far
for any window inside it, and it is not tested while the windows stay inside (its state does
not change). The near entries are the same, in the same order, as a split over all of them.
The wide window is split afresh when a near window leaves it (its list, grown past twice its
size at the split, is split again over itself for the same windows). The tests on the
window's ends use the step's own arithmetic (``p (1 +- ZONE_RTOL)``, monotone in ``p``), so an
entry far for the window's ends is far for every mark between them.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from numba import njit

from deleverage.engine.quiet_calls import empty_bounds_nb, widen_bounds_nb

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

#: Relative half-width of the window of marks a split serves (the results do not depend on it).
NEAR_REL = 1e-4
#: The wide window's half-width in units of the near one's (at least 1; the results do not
#: depend on it).
WIDE = 8.0


@njit(cache=True)
def _far_nb(
    long: bool, zone: float, liq: float, dropped: bool, win_lo: float, win_hi: float, rtol: float
) -> bool:
    """Whether an entry (side, zone and liquidation prices, dropped) is far for the window
    ``[win_lo, win_hi]`` of its market (:func:`near_split_nb`; scalars: no array references
    to count per entry)."""
    lo = win_lo * (1.0 - rtol)
    hi = win_hi * (1.0 + rtol)
    if long:
        return (lo > zone) if dropped else (hi < zone and lo > liq)
    return (hi < zone) if dropped else (lo > zone and hi < liq)


@njit(cache=True)
def near_split_nb(
    nc: int,
    market: IntArray,
    long: BoolArray,
    zone: FloatArray,
    liq: FloatArray,
    dropped: BoolArray,
    win_lo: FloatArray,
    win_hi: FloatArray,
    zone_rtol: float,
    near: IntArray,
) -> int:
    """Write the near entries among the first ``nc`` (ascending) into ``near``; return their
    count. Far: an entry of market -1 (called again: it stays dropped), a called entry
    certainly in the zone and above maintenance at both ends of its market's window
    ``[win_lo, win_hi]``, a dropped one certainly out of the zone there."""
    count = 0
    for i in range(nc):
        m = market[i]
        if m < 0:
            continue
        if not _far_nb(long[i], zone[i], liq[i], dropped[i], win_lo[m], win_hi[m], zone_rtol):
            near[count] = i
            count += 1
    return count


@njit(cache=True)
def near_among_nb(
    among: IntArray,
    n_among: int,
    market: IntArray,
    long: BoolArray,
    zone: FloatArray,
    liq: FloatArray,
    dropped: BoolArray,
    win_lo: FloatArray,
    win_hi: FloatArray,
    zone_rtol: float,
    near: IntArray,
) -> int:
    """:func:`near_split_nb` over the entries ``among[:n_among]`` (in their order) only: the
    near entries of a window inside a wider one, ``among`` the wider one's near entries
    (module docstring). Returns the count written into ``near``."""
    count = 0
    for t in range(n_among):
        i = among[t]
        m = market[i]
        if m < 0:
            continue
        if not _far_nb(long[i], zone[i], liq[i], dropped[i], win_lo[m], win_hi[m], zone_rtol):
            near[count] = i
            count += 1
    return count


@njit(cache=True)
def called_bounds_nb(
    near: IntArray,
    start: int,
    stop: int,
    market: IntArray,
    long: BoolArray,
    zone: FloatArray,
    liq: FloatArray,
    dropped: BoolArray,
    out: FloatArray,
    settle: BoolArray | None = None,
) -> None:
    """Per market, the bounds :func:`called_certain_nb` tests the near entries with
    (``out[m]``): the lowest zone price and highest liquidation price of the longs still
    called, the highest zone price and lowest liquidation price of such shorts, the highest
    zone price of the dropped longs and the lowest of the dropped shorts (entries of market
    -1, called again, are left out: a step keeps them as they are). ``start`` 0: the bounds
    of the entries ``near[:stop]``; else ``out`` widened by the entries ``near[start:stop]``.

    Bounds widened by an entry that has left them since (dropped, or called again) are
    looser than those of the entries left: certain for them is certain for those (a step
    that is not certain takes the near entries one by one, then bounds them afresh).
    ``settle`` (with ``start`` 0): the near entries' new dropped states, written into
    ``dropped`` in the same pass (the step's write-back before it bounds them afresh)."""
    if start == 0:
        empty_bounds_nb(out)
    for t in range(start, stop):
        i = near[t]
        if settle is not None:
            dropped[i] = settle[i]
        m = market[i]
        if m < 0:
            continue
        widen_bounds_nb(out, m, dropped[i], long[i], zone[i], liq[i])


@njit(cache=True)
def called_certain_nb(marks: FloatArray, bounds: FloatArray, zone_rtol: float) -> bool:
    """Whether at ``marks`` every entry the bounds of :func:`called_bounds_nb` cover is
    certainly where it is: each one still called certainly in the zone and above maintenance,
    each dropped one certainly out of it (the tests of :func:`.called_step_nb` and
    :func:`.recalls_step_nb`). Then a step keeps every entry as it is and makes no call again,
    as the entry-by-entry pass would."""
    for m in range(len(marks)):
        p = marks[m]
        lo = p * (1.0 - zone_rtol)
        hi = p * (1.0 + zone_rtol)
        b = bounds[m]
        if not (hi < b[0] and lo > b[1] and lo > b[2] and hi < b[3] and lo > b[4] and hi < b[5]):
            return False
    return True
