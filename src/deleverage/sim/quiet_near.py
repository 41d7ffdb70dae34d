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
same as testing all of them. A mark outside its window (or a near list grown past twice its
size at the split) splits again around the new marks. The tests on the window's ends use the
step's own arithmetic (``p (1 +- ZONE_RTOL)``, monotone in ``p``), so an entry far for the
window's ends is far for every mark between them.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from numba import njit

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

#: Relative half-width of the window of marks a split serves (the results do not depend on it).
NEAR_REL = 1e-4


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
        lo = win_lo[m] * (1.0 - zone_rtol)
        hi = win_hi[m] * (1.0 + zone_rtol)
        if long[i]:
            far = (lo > zone[i]) if dropped[i] else (hi < zone[i] and lo > liq[i])
        else:
            far = (hi < zone[i]) if dropped[i] else (lo > zone[i] and hi < liq[i])
        if not far:
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
) -> None:
    """Per market, the bounds :func:`called_certain_nb` tests the near entries with
    (``out[m]``): the lowest zone price and highest liquidation price of the longs still
    called, the highest zone price and lowest liquidation price of such shorts, the highest
    zone price of the dropped longs and the lowest of the dropped shorts (entries of market
    -1, called again, are left out: a step keeps them as they are). ``start`` 0: the bounds
    of the entries ``near[:stop]``; else ``out`` widened by the entries ``near[start:stop]``.

    Bounds widened by an entry that has left them since (dropped, or called again) are
    looser than those of the entries left: certain for them is certain for those (a step
    that is not certain takes the near entries one by one, then bounds them afresh)."""
    if start == 0:
        for m in range(out.shape[0]):
            out[m, 0] = np.inf
            out[m, 1] = -np.inf
            out[m, 2] = -np.inf
            out[m, 3] = np.inf
            out[m, 4] = -np.inf
            out[m, 5] = np.inf
    for t in range(start, stop):
        i = near[t]
        m = market[i]
        if m < 0:
            continue
        if dropped[i]:
            if long[i]:
                out[m, 4] = max(out[m, 4], zone[i])
            else:
                out[m, 5] = min(out[m, 5], zone[i])
        elif long[i]:
            out[m, 0] = min(out[m, 0], zone[i])
            out[m, 1] = max(out[m, 1], liq[i])
        else:
            out[m, 2] = max(out[m, 2], zone[i])
            out[m, 3] = min(out[m, 3], liq[i])


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
