"""Zone prices of isolated positions when maintenance jumps: risk-limit steps, floors.

:mod:`deleverage.engine.levels` finds where the ratio ``MM / E`` of an isolated position reaches
a level when maintenance is the continuous upper envelope of the tiers' lines. With
whole-position steps (BitMEX risk limits: the step's rate on the whole notional, ``cum = 0``) or
a maintenance floor (``min_margin``) maintenance is not continuous, the zone
``{p : MM(p) >= level E(p)}`` need not be one half-line, and the envelope formula does not hold.
What the sorted index needs is weaker: a price beyond which the position cannot be in the zone.
This module computes it exactly, piece by piece (docs/formulas.md §14):

On the piece ``t`` of the schedule (notional in ``[floor_t, floor_{t+1})``, so prices in
``[floor_t / |s|, floor_{t+1} / |s|)``) maintenance is ``max(min_margin, |s| p mmr_t - cum_t)``,
continuous, and the zone is the union of two half-lines, where the tier's line reaches the
level and where the floor does:

- long: ``p <= c_t = max(-(level (M - s e) + cum_t) / (s (level - mmr_t)), q)``,
- short: ``p >= d_t = min((level (M - s e) + cum_t) / (|s| (level + mmr_t)), q)``,
- ``q = e + (min_margin / level - M) / s`` (the floor's half-line; with ``min_margin = 0`` the
  bankruptcy price: ``E <= 0`` is in the zone as ``MM >= 0``).

A long's zone price is the supremum over the pieces of the zone within each piece,
``max_t min(c_t, floor_{t+1} / s)`` over the pieces with ``c_t >= floor_t / s``; a short's the
infimum, ``min_t max(d_t, floor_t / |s|)`` over the pieces with ``d_t <= floor_{t+1} / |s|``. A
tier with ``mmr_t >= level`` (its line is flat or falls for a long) takes the piece's top as
its bound (a majorant; ``+inf`` on the last piece). Piece ends are widened by a relative
``1e-9`` so that the kernel's float tier lookup (``|s| p >= floor``) cannot place a mark in a
piece the bound left out, and each piece's bound by a few ulps of the margin's scale
(:data:`ABS_ULPS`: the equity's cancellation near a 1x position). The fee-inclusive maintenance
of BitMEX (the taker rate added to every step's rate,
:meth:`~deleverage.spec.TierArrays.from_tiers`) is in ``mmr_t`` already.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from numba import njit

from deleverage.spec import TierArrays

FloatArray = npt.NDArray[np.float64]

#: Relative widening of the piece ends (the tier lookup's float error is ~1e-16).
PIECE_RTOL = 1e-9
#: Absolute widening of each piece's bound, in units of ``eps x scale / slope`` with
#: ``scale = (|M| + |s| e + |cum_t| + min_margin / level) / |s|``: the kernel's
#: ``E = M + s (p - e)`` cancels when ``M`` is close to ``s e`` (a 1x long), and the closed form
#: and the kernel then round differently by a few ulps of ``M``, not of ``p``.
ABS_ULPS = 16.0
_EPS = float(np.finfo(np.float64).eps)


@njit(cache=True)
def step_zone_prices_nb(
    size: FloatArray,
    entry: FloatArray,
    margin: FloatArray,
    level: float,
    floor: FloatArray,
    mmr: FloatArray,
    cum: FloatArray,
    min_margin: float,
    out: FloatArray,
) -> None:
    """Zone price of each isolated position for any tier schedule, piece by piece (module
    docstring): longs can be in the zone only at or below it, shorts at or above it; NaN for a
    flat position; 0 for a long with no positive price in the zone."""
    n_t = len(floor)
    for i in range(len(size)):
        s = size[i]
        if s == 0.0:
            out[i] = np.nan
            continue
        if not level > 0.0:
            out[i] = np.inf if s > 0.0 else -np.inf
            continue
        a = abs(s)
        base = level * (margin[i] - s * entry[i])
        q = entry[i] + (min_margin / level - margin[i]) / s
        scale = (abs(margin[i]) + a * abs(entry[i]) + min_margin / level) / a
        if s > 0.0:
            best = -np.inf
            for t in range(n_t):
                lo = floor[t] / a * (1.0 - PIECE_RTOL)
                hi = floor[t + 1] / a * (1.0 + PIECE_RTOL) if t + 1 < n_t else np.inf
                slope = level - mmr[t]
                c = -(base + cum[t]) / (a * slope) if slope > 0.0 else np.inf
                c = max(c, q) + ABS_ULPS * _EPS * (scale + abs(cum[t]) / a) / max(slope, 1e-300)
                if c != c:  # NaN: no bound from this piece
                    c = np.inf
                if c >= lo:
                    best = max(best, min(c, hi))
            out[i] = max(best, 0.0)  # no positive price in the zone: 0 (never a candidate)
        else:
            best = np.inf
            for t in range(n_t):
                lo = floor[t] / a * (1.0 - PIECE_RTOL)
                hi = floor[t + 1] / a * (1.0 + PIECE_RTOL) if t + 1 < n_t else np.inf
                d = min((base + cum[t]) / (a * (level + mmr[t])), q)
                d -= ABS_ULPS * _EPS * (scale + abs(cum[t]) / a) / level
                if d != d:
                    d = -np.inf
                if d <= hi:
                    best = min(best, max(d, lo))
            out[i] = best


def step_zone_prices(
    size: npt.ArrayLike, entry: npt.ArrayLike, margin: npt.ArrayLike, level: float,
    tiers: TierArrays,
) -> FloatArray:  # fmt: skip
    """Zone prices (quote/base) of isolated positions for any tier schedule (float64 arrays).

    Examples
    --------
    BitMEX-like steps, 0.5 % below 200 and 1 % from 200 on the whole notional, no deduction;
    a 2-unit long at 100 with margin 3: on the first piece (prices below 100) the line
    ``0.005 x 2 p >= 3 + 2 (p - 100)`` holds for ``p <= 197 / 1.99 = 98.99``, on the second
    (from 100) ``0.01 x 2 p >= 3 + 2 (p - 100)`` only below ``197 / 1.98 = 99.49``: not in the
    piece. The zone price is the first piece's:

    >>> import numpy as np
    >>> from deleverage.spec import TierArrays
    >>> t = TierArrays(floor=np.array([0.0, 200.0]), imr=np.array([0.01, 0.015]),
    ...                mmr=np.array([0.005, 0.01]), cum=np.zeros(2), whole_position=True)
    >>> round(float(step_zone_prices([2.0], [100.0], [3.0], 1.0, t)[0]), 6)
    98.994975

    With margin 1.5 the second piece's line, ``p <= 198.5 / 1.98 = 100.25``, reaches into it:
    the zone's top is there, above the first piece's ``198.5 / 1.99 = 99.75``.

    >>> round(float(step_zone_prices([2.0], [100.0], [1.5], 1.0, t)[0]), 6)
    100.252525
    """
    s = np.ascontiguousarray(size, dtype=np.float64)
    out = np.empty(s.shape)
    step_zone_prices_nb(
        s, np.ascontiguousarray(entry, dtype=np.float64),
        np.ascontiguousarray(margin, dtype=np.float64), float(level), tiers.floor, tiers.mmr,
        tiers.cum, float(tiers.min_margin), out,
    )  # fmt: skip
    return out
