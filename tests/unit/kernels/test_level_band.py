"""The quiet band of a zone-price index (:meth:`.LevelIndex.band`) with accounts left out.

Oracle: the zone prices of every live isolated trader position, priced from the columns as
they are now (:func:`deleverage.engine.levels.index_zone_prices`), the highest of a long and
the lowest of a short among the accounts not left out. The index holds some of them sorted
(clean) and the touched ones aside (dirty); the accounts left out are drawn from both.
"""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from deleverage import MarketSpec
from deleverage.engine.level_index import LevelIndex
from deleverage.engine.levels import index_zone_prices


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    n=st.integers(1, 300),
    touched_share=st.sampled_from([0.0, 0.05, 0.5]),
    excluded_share=st.sampled_from([0.0, 0.1, 0.6, 1.0]),
)
def test_band_leaves_out_the_excluded_accounts(
    seed: int, n: int, touched_share: float, excluded_share: float
) -> None:
    rng = np.random.default_rng(seed)
    tiers = MarketSpec.simple("M", max_leverage=50, maintenance_rate=0.01).tier_arrays
    size = np.round(rng.choice([-1.0, 1.0], n) * rng.uniform(0.1, 2.0, n), 3)
    size[rng.random(n) < 0.1] = 0.0
    entry = rng.uniform(90.0, 110.0, n)
    margin = np.abs(size) * entry / rng.uniform(2.0, 45.0, n)
    mode = np.where(rng.random(n) < 0.8, 1, 0).astype(np.int8)  # 0: cross
    kind = np.where(rng.random(n) < 0.95, 0, 1).astype(np.int8)  # 1: a system account
    index = LevelIndex(0.8)
    index.rebuild(size, entry, margin, mode, kind, tiers)
    touched = np.flatnonzero(rng.random(n) < touched_share)
    margin[touched] *= rng.uniform(0.5, 1.5, len(touched))  # moved since the sort
    size[touched[: len(touched) // 3]] = 0.0  # some closed
    index.touch(touched)
    excluded = np.flatnonzero(rng.random(n) < excluded_share)
    long, short = index.band(size, entry, margin, tiers, mode, kind, exclude=excluded)
    live = (size != 0.0) & (mode != 0) & (kind == 0)
    live[excluded] = False
    acc = np.flatnonzero(live)
    price = index_zone_prices(size[acc], entry[acc], margin[acc], index.level, tiers)
    is_long = size[acc] > 0
    want_long = float(price[is_long].max()) if is_long.any() else -math.inf
    want_short = float(price[~is_long].min()) if (~is_long).any() else math.inf
    assert (long, short) == (want_long, want_short)
