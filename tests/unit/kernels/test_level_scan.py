"""The compiled indexed scan (:mod:`deleverage.engine.level_scan`) against its NumPy form.

The reference is the NumPy code the kernels replaced (kept here): ``LevelIndex.candidates``
as a merge of the sorted prefixes, the dirty entries and a sort, and the scan as five gathers
of the candidates' rows and :func:`isolated_scan_nb`. Hypothesis draws books (longs, shorts,
flat rows, cross and non-trader rows, tiered Binance maintenance), touches and closes
positions between marks (dirty entries, advancing heads, compactions with small floors) and
marks on both sides, including marks pinned to zone prices; candidates, heads and every scan
field must be identical, bit for bit. The oracle of the set itself is the plain full pass
(``isolated_scan_nb`` over every row).
"""

from __future__ import annotations

import copy
from collections.abc import Iterator

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deleverage.engine import level_index as level_mod
from deleverage.engine.kernels import isolated_scan_nb
from deleverage.engine.level_index import ZONE_RTOL, LevelIndex
from deleverage.engine.levels import index_zone_prices
from deleverage.spec import TierArrays
from deleverage.venues import preset


def _leading_true(values: np.ndarray) -> int:
    if len(values) == 0 or not values[0]:
        return 0
    first_false = int(np.argmin(values))
    return len(values) if values[first_false] else first_false


def candidates_reference(
    index: LevelIndex, mark: float, size: np.ndarray, entry: np.ndarray, margin: np.ndarray,
    tiers: TierArrays,
) -> np.ndarray:  # fmt: skip
    """``LevelIndex.candidates`` as NumPy code (before the kernels)."""
    if index._touched:
        refresh_reference(index, size, entry, margin, tiers)
    hi = mark * (1.0 + ZONE_RTOL)
    lo = mark * (1.0 - ZONE_RTOL)
    k_long = int(np.searchsorted(index.long_neg_price, -lo, side="right"))
    k_short = int(np.searchsorted(index.short_price, hi, side="right"))
    longs = index.long_acc[index.long_head : k_long]
    shorts = index.short_acc[index.short_head : k_short]
    if index._n_flagged == 0:
        return np.sort(np.concatenate([longs, shorts]))
    flag = index.dirty_flag
    fl, fs = flag[longs], flag[shorts]
    index.long_head += _leading_true(fl)
    index.short_head += _leading_true(fs)
    parts = [longs[~fl], shorts[~fs]]
    d_acc, d_price = index._dirty_acc, index._dirty_price
    if len(d_acc):
        d_size = size[d_acc]
        hit = ((d_size > 0) & (d_price >= lo)) | ((d_size < 0) & (d_price <= hi))
        hit |= ~np.isfinite(d_price)
        parts.append(d_acc[hit])
    out = np.concatenate(parts)
    out.sort()
    return out


def refresh_reference(
    index: LevelIndex, size: np.ndarray, entry: np.ndarray, margin: np.ndarray,
    tiers: TierArrays,
) -> None:  # fmt: skip
    """``LevelIndex._refresh_dirty`` as NumPy code (before :func:`refresh_dirty_nb`)."""
    new = np.unique(np.concatenate(index._touched))
    index._touched = []
    index._pending = 0
    top = int(new.max()) if len(new) else -1
    if len(index.dirty_flag) <= top:
        flags = np.zeros(top + 1, dtype=np.bool_)
        flags[: len(index.dirty_flag)] = index.dirty_flag
        index.dirty_flag = flags
    index._n_flagged += int(np.count_nonzero(~index.dirty_flag[new]))
    index.dirty_flag[new] = True
    live = new[size[new] != 0.0]
    new_price = index_zone_prices(size[live], entry[live], margin[live], index.level, tiers)
    old_acc, old_price = index._dirty_acc, index._dirty_price
    keep = ~np.isin(old_acc, new, assume_unique=True)
    acc = np.concatenate([old_acc[keep], live])
    price = np.concatenate([old_price[keep], new_price])
    order = np.argsort(acc, kind="stable")
    index._dirty_acc, index._dirty_price = acc[order], price[order]
    n_indexed = len(index.long_acc) + len(index.short_acc)
    if len(acc) > max(level_mod.DIRTY_FLOOR, int(n_indexed * level_mod.DIRTY_SHARE)) or (
        index._n_flagged > n_indexed // 4 + level_mod.DIRTY_FLOOR
    ):
        compact_reference(index, size, len(index.dirty_flag))


def compact_reference(index: LevelIndex, size: np.ndarray, n: int) -> None:
    """``LevelIndex._compact`` as it was (every entry filtered, heads or not)."""
    keep_l = ~index.dirty_flag[index.long_acc]
    keep_s = ~index.dirty_flag[index.short_acc]
    d_acc, d_price = index._dirty_acc, index._dirty_price
    d_long = size[d_acc] > 0
    neg = np.concatenate([index.long_neg_price[keep_l], np.sort(-d_price[d_long])])
    acc = np.concatenate([index.long_acc[keep_l], d_acc[d_long][np.argsort(-d_price[d_long])]])
    order = np.argsort(neg, kind="stable")
    index.long_neg_price, index.long_acc = neg[order], acc[order]
    sp = np.concatenate([index.short_price[keep_s], np.sort(d_price[~d_long])])
    acc = np.concatenate([index.short_acc[keep_s], d_acc[~d_long][np.argsort(d_price[~d_long])]])
    order = np.argsort(sp, kind="stable")
    index.short_price, index.short_acc = sp[order], acc[order]
    index.long_head = index.short_head = 0
    index.dirty_flag = np.zeros(n, dtype=np.bool_)
    index._n_flagged = 0
    index._dirty_acc = np.zeros(0, dtype=np.int64)
    index._dirty_price = np.zeros(0)
    index.compactions += 1


def scan_reference(
    cand: np.ndarray, b: dict[str, np.ndarray], mark: float, tiers: TierArrays, level: float
) -> tuple[np.ndarray, ...]:
    k = len(cand)
    below, below_e, below_m = np.empty(k, dtype=np.int64), np.empty(k), np.empty(k)
    warn, warn_r = np.empty(k, dtype=np.int64), np.empty(k)
    nb, nw = isolated_scan_nb(
        b["size"][cand], b["entry"][cand], b["margin"][cand], b["mode"][cand], b["kind"][cand],
        mark, tiers.floor, tiers.mmr, tiers.cum, tiers.min_margin, level, below, below_e,
        below_m, warn, warn_r,
    )  # fmt: skip
    return cand[below[:nb]], below_e[:nb], below_m[:nb], cand[warn[:nw]], warn_r[:nw]


def full_pass(
    b: dict[str, np.ndarray], mark: float, tiers: TierArrays, level: float
) -> tuple[np.ndarray, ...]:
    return scan_reference(np.arange(len(b["size"]), dtype=np.int64), b, mark, tiers, level)


def _book(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    entry = rng.uniform(50.0, 150.0, n)
    size = rng.uniform(0.1, 50.0, n) * rng.choice([-1.0, 1.0], n)
    size[rng.random(n) < 0.1] = 0.0
    margin = np.abs(size) * entry / rng.uniform(1.0, 60.0, n)
    mode = np.where(rng.random(n) < 0.85, 1, 0).astype(np.int8)
    kind = np.where(rng.random(n) < 0.95, 0, 2).astype(np.int8)
    return {"size": size, "entry": entry, "margin": margin, "mode": mode, "kind": kind}


def _with_pins(marks: list[float], index: LevelIndex, rng: np.random.Generator) -> Iterator[float]:
    """``marks``, then marks on a sorted and a dirty zone price and at the slack's edges (read
    after the first mark, once the touched positions are priced)."""
    yield from marks
    for zones in (np.concatenate([-index.long_neg_price, index.short_price]), index._dirty_price):
        zones = zones[np.isfinite(zones) & (zones > 0.0)]
        if len(zones):
            z = float(rng.choice(zones))
            yield from (z, z * (1.0 + ZONE_RTOL), z * (1.0 - ZONE_RTOL))
            yield from (z / (1.0 - ZONE_RTOL), z / (1.0 + ZONE_RTOL))  # lo or hi on z


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    level=st.sampled_from([0.3, 0.8, 1.0]),
    dirty_floor=st.sampled_from([0, 2, 1024]),
    n=st.integers(1, 120),
    opened=st.integers(0, 5),
)
def test_indexed_scan_kernels_equal_the_numpy_form(
    seed: int, level: float, dirty_floor: int, n: int, opened: int
) -> None:
    rng = np.random.default_rng(seed)
    tiers = preset("binance", "BTCUSDT").tier_arrays
    total = n + opened
    b = _book(rng, total)
    b["size"][n:] = 0.0  # accounts opened after the sort: flat until a touch
    fast = LevelIndex(level)  # the risk step's scan (LevelIndex.scan)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(level_mod, "DIRTY_FLOOR", dirty_floor)
        first = {name: column[:n] for name, column in b.items()}
        fast.rebuild(
            first["size"], first["entry"], first["margin"], first["mode"], first["kind"], tiers
        )
        cand = copy.deepcopy(fast)  # LevelIndex.candidates
        ref = copy.deepcopy(fast)  # the NumPy reference
        indexes = (fast, cand, ref)
        for _ in range(20):
            if rng.random() < 0.7:
                hit = rng.choice(total, int(rng.integers(1, min(total, 6) + 1)), replace=False)
                b["size"][hit] = rng.uniform(-50.0, 50.0, len(hit)) * (rng.random(len(hit)) > 0.3)
                b["entry"][hit] = rng.uniform(50.0, 150.0, len(hit))
                b["margin"][hit] = (
                    np.abs(b["size"][hit]) * b["entry"][hit] / rng.uniform(1.0, 60.0, len(hit))
                )
                for index in indexes:
                    index.touch(hit.astype(np.int64))
            marks = list(rng.uniform(30.0, 200.0, 3))
            for mark in _with_pins(marks, ref, rng):
                if not (np.isfinite(mark) and mark > 0.0):
                    continue
                got = cand.candidates(mark, b["size"], b["entry"], b["margin"], tiers)
                want = candidates_reference(ref, mark, b["size"], b["entry"], b["margin"], tiers)
                np.testing.assert_array_equal(got, want)
                assert got.dtype == np.int64
                scanned = fast.scan(
                    mark, b["size"], b["entry"], b["margin"], b["mode"], b["kind"], tiers, level
                )
                _same_state(cand, ref)
                _same_state(fast, ref, exact=False)
                for x, y in zip(scanned, scan_reference(want, b, mark, tiers, level), strict=True):
                    np.testing.assert_array_equal(x, y)
                    assert x.dtype == y.dtype
                # The candidates hold everything the full pass finds (the index is a superset).
                for x, y in zip(scanned, full_pass(b, mark, tiers, level), strict=True):
                    np.testing.assert_array_equal(x, y)
            if not ref.valid:
                for index in indexes:
                    index.rebuild(b["size"], b["entry"], b["margin"], b["mode"], b["kind"], tiers)


def _same_state(index: LevelIndex, ref: LevelIndex, *, exact: bool = True) -> None:
    """The same index; ``exact``: the same arrays and heads, else the same clean entries from
    the heads on (what every reader of the sorted orders sees: the scan drops dirty entries
    from the prefixes it reads)."""
    assert (index.valid, index.compactions) == (ref.valid, ref.compactions)
    if exact:
        assert (index.long_head, index.short_head) == (ref.long_head, ref.short_head)
        for name in ("long_acc", "short_acc", "long_neg_price", "short_price"):
            np.testing.assert_array_equal(getattr(index, name), getattr(ref, name))
    else:
        for got, want in zip(_clean(index), _clean(ref), strict=True):
            np.testing.assert_array_equal(got, want)
        # Still sorted as a whole (the binary searches read the slots before the heads too).
        for price in (index.long_neg_price, index.short_price):
            assert np.all(price[1:] >= price[:-1])
    np.testing.assert_array_equal(index.dirty_flag, ref.dirty_flag)
    np.testing.assert_array_equal(index._dirty_acc, ref._dirty_acc)
    np.testing.assert_array_equal(index._dirty_price, ref._dirty_price)
    assert index._n_flagged == ref._n_flagged


def _clean(index: LevelIndex) -> tuple[np.ndarray, ...]:
    out = []
    for acc, price, head in (
        (index.long_acc, index.long_neg_price, index.long_head),
        (index.short_acc, index.short_price, index.short_head),
    ):
        acc, price = acc[head:], price[head:]
        clean = ~index.dirty_flag[acc] if len(index.dirty_flag) else np.ones(len(acc), bool)
        out += [acc[clean], price[clean]]
    return tuple(out)


@settings(max_examples=200, deadline=None)
@given(
    st.one_of(
        st.lists(st.integers(0, 10**7), min_size=2, max_size=600, unique=True),
        st.lists(st.integers(0, 2**62), min_size=2, max_size=600, unique=True),
    )
)
def test_scan_sort_by_packed_keys_is_the_argsort_of_distinct_accounts(ids: list[int]) -> None:
    # Arrange: distinct account ids (a scan's): many small ones packed, few or huge ones
    # through the argsort
    acc = np.array(ids, dtype=np.int64)

    # Act
    ordered, order = level_mod._by_account(acc)

    # Assert: np.argsort's order (unique for distinct keys) and the sorted ids
    assert np.array_equal(order, np.argsort(acc))
    assert np.array_equal(ordered, np.sort(acc))
    assert ordered.dtype == np.int64
    assert order.dtype == np.int64


@pytest.mark.parametrize("count", [256, 5_000])
def test_scan_sort_of_a_cascade_round_sized_warn_set_is_the_argsort(count: int) -> None:
    # Arrange: as many distinct accounts as a cascade round's scan warns (packed keys)
    acc = np.random.default_rng(count).permutation(1_000_000)[:count].astype(np.int64)

    # Act
    ordered, order = level_mod._by_account(acc)

    # Assert
    assert np.array_equal(order, np.argsort(acc))
    assert np.array_equal(ordered, np.sort(acc))
