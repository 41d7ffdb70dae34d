"""Zone prices of isolated positions (:mod:`deleverage.engine.levels`) against independent oracles.

(a) A bisection on ``level x E(p) - MM(|s| p)`` with
:func:`deleverage.rules.margin.maintenance_margin`
(the tier lookup, not the upper envelope the closed form relies on) over random positions and
the venues' documented tier tables; (b) at ``level = 1`` the engine's isolated liquidation price
and Binance's documented one-tier formula
``LP = (WB + cum - side |s| EP) / (|s| mmr - side |s|)``; (c) the compiled kernel equals the
NumPy form bit for bit.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deleverage import MarketSpec
from deleverage.engine.levels import zone_prices, zone_prices_compiled
from deleverage.rules import margin as mm
from deleverage.spec import TierArrays
from deleverage.venues import preset
from strategies import tier_tables

VENUES = [
    ("binance", "BTCUSDT"),
    ("bybit", "BTC"),
    ("okx", "BTC"),
    ("hyperliquid", "BTC"),
    ("dydx_v4", "BTC"),
    ("bitmex", "BTC"),
    ("drift", "BTC"),
]


def _gap(p: float, s: float, e: float, m: float, level: float, tiers: TierArrays) -> float:
    """``level x E(p) - MM(p)``: >= 0 out of the zone, <= 0 in it (quote)."""
    maint = float(mm.maintenance_margin(abs(s) * p, tiers))
    return level * (m + s * (p - e)) - maint


def _bisect_zone(s: float, e: float, m: float, level: float, tiers: TierArrays) -> float | None:
    """The price where the gap changes sign, by bisection on [0, hi]; None when no root > 0."""
    lo, hi = 0.0, e
    g_lo = _gap(lo, s, e, m, level, tiers)
    for _ in range(200):
        if (_gap(hi, s, e, m, level, tiers) > 0) != (g_lo > 0):
            break
        hi *= 2.0
    else:
        return None
    if (g_lo > 0) == (_gap(hi, s, e, m, level, tiers) > 0):
        return None
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if (_gap(mid, s, e, m, level, tiers) > 0) == (g_lo > 0):
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


@pytest.mark.parametrize(("venue", "symbol"), VENUES)
@pytest.mark.parametrize("level", [1.0, 0.8, 0.5])
def test_zone_price_matches_bisection_on_venue_tiers(venue: str, symbol: str, level: float) -> None:
    spec = preset(venue, symbol)
    tiers = spec.tier_arrays
    if not tiers.continuous:
        # Whole-position steps (BitMEX): maintenance jumps at the floors, the envelope is an
        # upper bound only, and the engine scans such markets in full (scans.py).
        assert spec.tier_margin == "whole_position"
        return
    if tiers.mmr.max() >= level:
        # A tier at or above the level: the zone is no longer one half-line and the function
        # answers +-inf for every position (a superset, see test_flat_and_always_in_zone).
        assert np.all(np.isinf(zone_prices([1.0, -1.0], [100.0] * 2, [50.0] * 2, level, tiers)))
        return
    rng = np.random.default_rng([VENUES.index((venue, symbol)), round(level * 10)])
    n = 300
    entry = rng.uniform(1_000.0, 100_000.0, n)
    # Notionals from 10 quote to beyond the last tier floor, sizes of both signs.
    notional = np.exp(rng.uniform(math.log(10.0), math.log(max(tiers.floor[-1], 1e6) * 2), n))
    size = notional / entry * rng.choice([-1.0, 1.0], n)
    leverage = rng.uniform(1.0, spec.max_leverage, n)
    margin = notional / leverage
    got = zone_prices(size, entry, margin, level, tiers)
    checked = 0
    for i in range(n):
        want = _bisect_zone(size[i], entry[i], margin[i], level, tiers)
        if want is None:
            # No positive crossing: a long never reaches the zone above 0 (price <= 0), a
            # short is always in it (not drawn: margin >= 1x notional keeps it out at p = 0).
            assert size[i] > 0, (i, got[i])
            assert got[i] <= 1e-9 * entry[i], (i, got[i])
            continue
        assert got[i] == pytest.approx(want, rel=1e-9), (venue, i, size[i], margin[i])
        # The zone side: a long is in the zone just below, a short just above.
        inside = got[i] * (1 - 1e-6) if size[i] > 0 else got[i] * (1 + 1e-6)
        outside = got[i] * (1 + 1e-6) if size[i] > 0 else got[i] * (1 - 1e-6)
        assert _gap(inside, size[i], entry[i], margin[i], level, tiers) <= 0
        assert _gap(outside, size[i], entry[i], margin[i], level, tiers) >= 0
        checked += 1
    assert checked > n // 2


@pytest.mark.parametrize(("venue", "symbol"), VENUES)
def test_level_one_is_the_isolated_liquidation_price(venue: str, symbol: str) -> None:
    spec = preset(venue, symbol)
    tiers = spec.tier_arrays
    if not tiers.continuous:
        return  # whole-position steps: no envelope form (see the test above)
    rng = np.random.default_rng(7)
    n = 200
    entry = rng.uniform(100.0, 80_000.0, n)
    notional = np.exp(rng.uniform(math.log(50.0), math.log(5e7), n))
    size = notional / entry * rng.choice([-1.0, 1.0], n)
    margin = notional / rng.uniform(1.5, spec.max_leverage, n)
    got = zone_prices(size, entry, margin, 1.0, tiers)
    want = mm.liquidation_price_isolated(size, entry, margin, tiers)
    positive = want > 0
    np.testing.assert_allclose(got[positive], want[positive], rtol=1e-9)


def test_binance_documented_one_tier_formula() -> None:
    # Binance USD-M isolated: LP = (WB + cum - side |s| EP) / (|s| mmr - side |s|).
    # Tier 1 of BTCUSDT: mmr 0.4 %, cum 0. Long 0.5 BTC at 60,000 with 3,000 of margin:
    # (3000 - 30000) / (0.002 - 0.5) = 54216.867469...
    tiers = preset("binance", "BTCUSDT").tier_arrays
    assert tiers.mmr[0] == 0.004
    assert tiers.cum[0] == 0.0
    long = zone_prices([0.5], [60_000.0], [3_000.0], 1.0, tiers)[0]
    assert long == pytest.approx(27_000.0 / 0.498, rel=1e-12)
    # Short 0.5 BTC at 60,000 with 3,000: (3000 + 30000) / (0.002 + 0.5) = 65737.051792...
    short = zone_prices([-0.5], [60_000.0], [3_000.0], 1.0, tiers)[0]
    assert short == pytest.approx(33_000.0 / 0.502, rel=1e-12)
    # Both within the first tier (notional at LP below the 50,000 floor of tier 2).
    assert 0.5 * short < tiers.floor[1]


def test_flat_and_always_in_zone_positions() -> None:
    tiers = MarketSpec.simple("X", max_leverage=20, maintenance_rate=0.01).tier_arrays
    out = zone_prices([0.0, 1.0, -1.0], [100.0] * 3, [10.0] * 3, 0.005, tiers)
    assert math.isnan(out[0])
    assert out[1] == math.inf
    assert out[2] == -math.inf


@st.composite
def _tiers(draw: st.DrawFn) -> TierArrays:
    return MarketSpec.from_mapping({"symbol": "X", "tiers": draw(tier_tables())}).tier_arrays


# Sizes of both signs from 1e-9 base units (below any lot) to 1e6; flat positions apart.
_sizes = st.one_of(
    st.just(0.0),
    st.builds(lambda x, sign: x * sign, st.floats(1e-9, 1e6), st.sampled_from([-1.0, 1.0])),
)


@given(
    tiers=_tiers(),
    level=st.sampled_from([1.0, 0.8, 0.5, 0.01, 0.003]),
    rows=st.lists(
        st.tuples(
            _sizes,
            st.floats(0.01, 1e6),
            st.floats(0.0, 1e7),
        ),
        min_size=0,
        max_size=30,
    ),
)
def test_compiled_equals_numpy_bit_for_bit(
    tiers: TierArrays, level: float, rows: list[tuple[float, float, float]]
) -> None:
    size = np.array([r[0] for r in rows], dtype=np.float64)
    entry = np.array([r[1] for r in rows], dtype=np.float64)
    margin = np.array([r[2] for r in rows], dtype=np.float64)
    ref = zone_prices(size, entry, margin, level, tiers)
    fast = zone_prices_compiled(size, entry, margin, level, tiers)
    assert ref.shape == fast.shape == size.shape
    np.testing.assert_array_equal(ref.view(np.int64), fast.view(np.int64))


@settings(max_examples=25, deadline=None)
@given(
    tiers=_tiers(),
    level=st.sampled_from([1.0, 0.8, 0.5, 0.01, 0.003]),
    n=st.integers(0, 1_300),
    seed=st.integers(0, 2**32 - 1),
)
def test_compiled_equals_numpy_bit_for_bit_over_blocks(
    tiers: TierArrays, level: float, n: int, seed: int
) -> None:
    """The compiled pass works in blocks of ``ZONE_BLOCK`` positions: books of several
    blocks and a remainder, flat positions among them, give NumPy's prices bit for bit."""
    rng = np.random.default_rng(seed)
    size = rng.choice([-1.0, 0.0, 1.0], n) * 10.0 ** rng.uniform(-9, 6, n)
    entry = 10.0 ** rng.uniform(-2, 6, n)
    margin = rng.uniform(0.0, 1e7, n) * (rng.random(n) < 0.9)
    ref = zone_prices(size, entry, margin, level, tiers)
    fast = zone_prices_compiled(size, entry, margin, level, tiers)
    np.testing.assert_array_equal(ref.view(np.int64), fast.view(np.int64))
