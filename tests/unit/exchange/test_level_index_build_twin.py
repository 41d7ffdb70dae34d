"""The zone-price index's build in compiled passes against the NumPy code it replaced.

:meth:`.LevelIndex.rebuild` finds the live isolated trader positions and gathers their
columns (:func:`.live_rows_nb`), :meth:`.LevelIndex._install` splits them by side
(:func:`.split_sides_nb`) and :func:`.level_index._rows` copies the sorted entries' columns
for the walk (:func:`.rows_nb`). Each must give the NumPy expressions' arrays bit for bit
(NaN, ``-0.0`` and infinite values included), and a whole rebuild the index the NumPy build
gives, array for array (the NumPy build is kept here as the reference).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deleverage import MarketSpec
from deleverage.engine.level_index import (
    LevelIndex,
    SortMemo,
    _rows,
    live_rows_nb,
    rows_nb,
    split_sides_nb,
    stable_sorted,
)
from deleverage.engine.levels import index_zone_prices
from deleverage.engine.zone_calls import ZoneTracker
from deleverage.venues import preset

FIELDS = ("long_neg_price", "long_acc", "short_price", "short_acc")
ODD = (np.nan, -np.nan, 0.0, -0.0, np.inf, -np.inf)


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal dtype, shape and bits (NaN payloads and signed zeros told apart)."""
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    if a.dtype == np.float64:
        return bool(np.array_equal(a.view(np.uint64), b.view(np.uint64)))
    return bool(np.array_equal(a, b))


def _columns(seed: int, n: int, odd: float) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    size = np.round(rng.choice([-1.0, 1.0], n) * rng.lognormal(-3.0, 1.2, n), 3)
    size[rng.random(n) < 0.1] = 0.0
    size[rng.random(n) < 0.02] = -0.0
    entry = rng.uniform(55_000.0, 65_000.0, n)
    margin = np.abs(size) * entry / rng.lognormal(np.log(12.0), 0.5, n)
    for column in (size, entry, margin):  # odd values anywhere
        hit = rng.random(n) < odd
        column[hit] = rng.choice(ODD, int(hit.sum()))
    mode = rng.choice(np.array([0, 1, 2], dtype=np.int8), n, p=[0.1, 0.8, 0.1])
    kind = np.where(rng.random(n) < 0.97, 0, rng.integers(1, 3, n)).astype(np.int8)
    return size, entry, margin, mode, kind


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(0, 3_000), odd=st.sampled_from([0.0, 0.05]))
def test_the_compiled_gathers_equal_numpy(seed: int, n: int, odd: float) -> None:
    size, entry, margin, mode, kind = _columns(seed, n, odd)
    live = (size != 0.0) & (mode != 0) & (kind == 0)
    acc = np.flatnonzero(live).astype(np.int64)
    got = live_rows_nb(size, entry, margin, mode, kind)
    for a, b in zip(got, (acc, size[acc], entry[acc], margin[acc]), strict=True):
        assert _same(a, b)
    rng = np.random.default_rng(seed + 1)
    price = rng.normal(60_000.0, 5_000.0, len(acc))
    hit = rng.random(len(acc)) < max(odd, 0.01)
    price[hit] = rng.choice(ODD, int(hit.sum()))
    long = size[acc] > 0
    want = (-price[long], acc[long], price[~long], acc[~long])
    for a, b in zip(split_sides_nb(acc, price, long), want, strict=True):
        assert _same(a, b)
        assert a.flags.c_contiguous
    order = rng.permutation(acc)  # sorted entries: any order of the accounts
    want_rows = (size[order], entry[order], margin[order], (mode[order] != 0) & (kind[order] == 0))
    for a, b in zip(rows_nb(order, size, entry, margin, mode, kind), want_rows, strict=True):
        assert _same(a, b)
    for a, b in zip(_rows(order, size, entry, margin, mode, kind), want_rows, strict=True):
        assert _same(a, b)


def test_a_wrong_split_is_caught() -> None:
    """The comparison above tells a side's order and a dropped sign apart."""
    acc = np.arange(6, dtype=np.int64)
    price = np.array([1.0, 2.0, -0.0, np.nan, 5.0, 0.0])
    long = np.array([True, False, True, True, False, False])
    got = split_sides_nb(acc, price, long)
    assert not _same(got[0], price[long])  # the longs' prices negated, -0.0 to 0.0
    assert not _same(got[1], acc[long][::-1])
    assert not _same(got[3], acc[long])


def _numpy_rebuild(index: LevelIndex, cols: tuple[np.ndarray, ...], tiers: object,
                   like: SortMemo | None = None) -> SortMemo:  # fmt: skip
    """:meth:`.LevelIndex.rebuild` and ``_install`` as they were in NumPy (the sorted arrays
    only: the rest of the install is unchanged)."""
    size, entry, margin, mode, kind = cols
    live = (size != 0.0) & (mode != 0) & (kind == 0)
    acc = np.flatnonzero(live).astype(np.int64)
    price = index_zone_prices(size[acc], entry[acc], margin[acc], index.level, tiers)  # type: ignore[arg-type]
    long = size[acc] > 0
    guess: tuple[np.ndarray | None, np.ndarray | None] = (None, None)
    if like is not None and np.array_equal(like.acc, acc) and np.array_equal(like.long, long):
        guess = like.orders
    order_l, index.long_neg_price = stable_sorted(-price[long], guess[0])
    index.long_acc = acc[long][order_l]
    order_s, index.short_price = stable_sorted(price[~long], guess[1])
    index.short_acc = acc[~long][order_s]
    return SortMemo(acc, long, (order_l, order_s))


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("spec", ["binance", "simple"])
@pytest.mark.parametrize("odd", [0.0, 0.02])
def test_a_rebuild_is_the_numpy_rebuild(seed: int, spec: str, odd: float) -> None:
    """Both indexes of the cascade day's start (the call level's, then the tracker's from its
    memo) against the NumPy build: the same sorted arrays, memos and row copies."""
    tiers = (
        preset("binance", "BTC").tier_arrays
        if spec == "binance"
        else MarketSpec.simple("M", max_leverage=50, maintenance_rate=0.01).tier_arrays
    )
    cols = _columns(seed, 20_000, odd)
    fast_c, ref_c = LevelIndex(0.8), LevelIndex(0.8)
    memo = fast_c.rebuild(*cols, tiers)
    ref_memo = _numpy_rebuild(ref_c, cols, tiers)
    fast_t, ref_t = ZoneTracker(), ZoneTracker()
    fast_t.rebuild(*cols, tiers, like=memo)
    _numpy_rebuild(ref_t, cols, tiers, like=ref_memo)
    for fast, ref in ((fast_c, ref_c), (fast_t, ref_t)):
        for name in FIELDS:
            assert _same(getattr(fast, name), getattr(ref, name)), name
    assert _same(memo.acc, ref_memo.acc)
    assert _same(memo.long, ref_memo.long)
    for a, b in zip(memo.orders, ref_memo.orders, strict=True):
        assert np.array_equal(a, b)
