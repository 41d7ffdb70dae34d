"""Zone prices of isolated positions: where a position's margin ratio reaches a level.

An isolated position (size ``s``, entry ``e``, margin ``M``) has equity ``E(p) = M + s (p - e)``
and tiered maintenance ``MM(p) = max_t (|s| p mmr_t - cum_t)`` (the tier table's maintenance
amounts make the pieces meet, so the piecewise function is the upper envelope of its lines,
see docs/formulas.md §14). Its ratio ``MM / E`` reaches ``level`` where

    g(p) = level E(p) - MM(p) = min_t [level (M - s e) + cum_t + s p (level - sign(s) mmr_t)]

crosses zero. For ``level > mmr_t`` every line is increasing in ``p`` for a long (decreasing for
a short), so the zone ``{p : MM(p) >= level E(p)}`` is ``p <= max_t p_t`` for a long and
``p >= min_t p_t`` for a short, with

    p_t = -(level (M - s e) + cum_t) / (s (level - sign(s) mmr_t)).

``level = 1`` gives the liquidation price (Binance's isolated formula for one tier). The risk
engine's sorted index uses these prices to find, with a binary search, the positions a mark can
have moved into the zone.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from deleverage.spec import TierArrays

FloatArray = npt.NDArray[np.float64]


def zone_prices(
    size: npt.ArrayLike,
    entry: npt.ArrayLike,
    margin: npt.ArrayLike,
    level: float,
    tiers: TierArrays,
) -> FloatArray:
    """Price at which each isolated position's ratio ``MM / E`` reaches ``level`` (quote/base).

    Longs are in the zone at and below the returned price, shorts at and above it. When a tier
    has ``mmr >= level`` the zone is no longer one half-line (a long is also in it at prices
    high enough to reach that tier), so the position gets ``+inf`` (long) or ``-inf`` (short):
    "always check"; a flat position gets NaN.

    Examples
    --------
    One tier of 0.5% maintenance, a 10x long of 1 BTC at 100 (margin 10): liquidation at
    ``(100 - 10) / (1 - 0.005)``:

    >>> from deleverage.spec import MarketSpec
    >>> t = MarketSpec.simple("X", max_leverage=20, maintenance_rate=0.005).tier_arrays
    >>> round(float(zone_prices([1.0], [100.0], [10.0], 1.0, t)[0]), 6)
    90.452261
    >>> round(float(zone_prices([-1.0], [100.0], [10.0], 1.0, t)[0]), 6)
    109.452736
    """
    s = np.asarray(size, dtype=np.float64)
    e = np.asarray(entry, dtype=np.float64)
    m = np.asarray(margin, dtype=np.float64)
    sign = np.sign(s)
    base = level * (m - s * e)
    out = np.full(s.shape, np.nan)
    long = s > 0
    short = s < 0
    best_long = np.full(s.shape, -np.inf)
    best_short = np.full(s.shape, np.inf)
    for t in range(len(tiers.mmr)):
        slope = s * (level - sign * tiers.mmr[t])
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            p = -(base + tiers.cum[t]) / slope
        # A flat or inverted line (mmr >= level): the zone is not one half-line any more (it
        # also holds prices far on the other side), so no single bound: always a candidate.
        always = (level - tiers.mmr[t]) <= 0.0
        if always:
            best_long = np.where(long, np.inf, best_long)
            best_short = np.where(short, -np.inf, best_short)
            continue
        best_long = np.where(long, np.maximum(best_long, p), best_long)
        best_short = np.where(short, np.minimum(best_short, p), best_short)
    out[long] = best_long[long]
    out[short] = best_short[short]
    return out


def zone_prices_compiled(
    size: FloatArray, entry: FloatArray, margin: FloatArray, level: float, tiers: TierArrays
) -> FloatArray:
    """:func:`zone_prices` by the compiled kernel (same formula, one pass; float64 arrays)."""
    from deleverage.engine.kernels import zone_prices_nb

    s = np.ascontiguousarray(size, dtype=np.float64)
    out = np.empty(s.shape)
    zone_prices_nb(
        s, np.ascontiguousarray(entry, dtype=np.float64),
        np.ascontiguousarray(margin, dtype=np.float64), float(level), tiers.mmr, tiers.cum, out,
    )  # fmt: skip
    return out


def index_zone_prices(
    size: FloatArray, entry: FloatArray, margin: FloatArray, level: float, tiers: TierArrays
) -> FloatArray:
    """The zone prices the sorted index keys on: :func:`zone_prices_compiled` for continuous
    maintenance, the piecewise bound of :mod:`deleverage.engine.step_levels` for risk-limit
    steps or a maintenance floor (``TierArrays.continuous`` false)."""
    if tiers.continuous:
        return zone_prices_compiled(size, entry, margin, level, tiers)
    from deleverage.engine.step_levels import step_zone_prices

    return step_zone_prices(size, entry, margin, level, tiers)
