"""A zone-price index rebuilt from another level's sort (``LevelIndex.rebuild(like=...)``).

The cascade day builds two indexes of the same positions at the start: the call level's and
the liquidation tracker's (level 1). The second sort starts from the first's order
(:class:`.SortMemo`); the result must be the index a plain rebuild gives, array for array, with
ties, tier steps (where the two levels' orders differ) and a memo of other positions (ignored).
"""

from __future__ import annotations

import numpy as np
import pytest

from deleverage import MarketSpec
from deleverage.engine.level_index import LevelIndex
from deleverage.engine.zone_calls import ZoneTracker
from deleverage.venues import preset

FIELDS = ("long_neg_price", "long_acc", "short_price", "short_acc")


def _columns(seed: int, n: int, ties: bool) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    # Most notionals in the first risk-limit step (one order at every level), some beyond.
    size = np.round(rng.choice([-1.0, 1.0], n) * rng.lognormal(-3.0, 1.2, n), 3)
    size[rng.random(n) < 0.05] = 0.0
    entry = rng.uniform(55_000.0, 65_000.0, n)
    margin = np.abs(size) * entry / rng.lognormal(np.log(12.0), 0.5, n)
    if ties:  # identical positions: identical zone prices at every level
        size[1::7], entry[1::7], margin[1::7] = size[::7][: len(size[1::7])], 60_000.0, 1_000.0
        size[2::7], entry[2::7], margin[2::7] = size[1::7][: len(size[2::7])], 60_000.0, 1_000.0
    mode = np.where(rng.random(n) < 0.9, 1, 0).astype(np.int8)
    kind = np.where(rng.random(n) < 0.98, 0, 1).astype(np.int8)
    return size, entry, margin, mode, kind


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("ties", [False, True])
def test_a_tracker_rebuilt_like_the_call_index_is_the_plain_rebuild(seed: int, ties: bool) -> None:
    tiers = preset("binance", "BTC").tier_arrays  # risk-limit steps
    cols = _columns(seed, 20_000, ties)
    memo = LevelIndex(0.8).rebuild(*cols, tiers)
    plain, like = ZoneTracker(), ZoneTracker()
    plain.rebuild(*cols, tiers)
    like.rebuild(*cols, tiers, like=memo)
    for name in FIELDS:
        assert np.array_equal(getattr(like, name), getattr(plain, name)), name
    # The levels' orders differ, but little: the sort from the memo's order is the one taken.
    for side, ranked in enumerate((plain.long_neg_price, plain.short_price)):
        own = ZoneTracker().rebuild(*cols, tiers).orders[side]
        assert not np.array_equal(own, memo.orders[side])
        seen = ranked[np.argsort(own)][memo.orders[side]]  # level 1's values in the memo's order
        assert 0 < np.count_nonzero(seen[1:] < seen[:-1]) <= len(seen) // 64


def test_a_memo_of_other_positions_is_ignored() -> None:
    tiers = MarketSpec.simple("M", max_leverage=50, maintenance_rate=0.01).tier_arrays
    cols = _columns(1, 5_000, False)
    other = list(_columns(1, 5_000, False))
    other[0] = other[0].copy()
    other[0][::3] = 0.0  # other live positions
    memo = LevelIndex(0.8).rebuild(*other, tiers)
    plain, like = LevelIndex(1.0), LevelIndex(1.0)
    plain.rebuild(*cols, tiers)
    like.rebuild(*cols, tiers, like=memo)
    for name in FIELDS:
        assert np.array_equal(getattr(like, name), getattr(plain, name)), name
