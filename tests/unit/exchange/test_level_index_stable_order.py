"""The zone-price index's sort (``level_index.stable_order``) against NumPy's stable argsort.

A rebuild sorts every position's zone price: NumPy's default sort, then each run of equal values
(the NaNs one run) put back in index order (``stable_ties_nb``), or from ``RADIX_MIN`` values
on a stable radix sort of the values' bits (``radix_order_nb``). Whatever the values (ties, NaN
of either sign and any payload, infinities, signed zeros, sorted or reversed runs), the order
must be the stable argsort's, index for index, by either sort; a deliberately unchecked
quicksort must fail the same comparison on ties.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from deleverage.engine import level_index
from deleverage.engine.level_index import radix_order_nb, stable_order, stable_sorted

VALUES = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, -0.0, 1.0, 60_000.0, np.inf, -np.inf, np.nan]),
)


@settings(max_examples=300, deadline=None)
@given(values=arrays(np.float64, st.integers(0, 400), elements=VALUES))
def test_stable_order_is_the_stable_argsort(values: np.ndarray) -> None:
    assert np.array_equal(stable_order(values), np.argsort(values, kind="stable"))


@settings(max_examples=300, deadline=None)
@given(values=arrays(np.float64, st.integers(0, 400), elements=VALUES))
def test_the_radix_order_is_the_stable_argsort(values: np.ndarray) -> None:
    order = radix_order_nb(values.view(np.uint64))
    assert np.array_equal(order, np.argsort(values, kind="stable"))


def _odd_nans(n: int, rng: np.random.Generator) -> np.ndarray:
    """NaNs of either sign and random payloads (what arithmetic on NaN can leave)."""
    payload = rng.integers(1, 1 << 51, n, dtype=np.uint64)
    sign = rng.integers(0, 2, n, dtype=np.uint64) << np.uint64(63)
    return (sign | np.uint64(0x7FF0000000000000) | payload).view(np.float64)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 30_000), ties=st.booleans())
def test_stable_sorted_takes_the_radix_sort_on_long_sides(seed: int, n: int, ties: bool) -> None:
    rng = np.random.default_rng(seed)
    values = rng.uniform(-80_000.0, 80_000.0, n)
    if ties:
        values = np.round(values, -3)
    special = rng.random(n)
    values[special < 0.02] = _odd_nans(int((special < 0.02).sum()), rng)
    values[(special >= 0.02) & (special < 0.03)] = -0.0
    values[(special >= 0.03) & (special < 0.04)] = 0.0
    values[(special >= 0.04) & (special < 0.045)] = -np.inf
    values[(special >= 0.045) & (special < 0.05)] = np.inf
    want = np.argsort(values, kind="stable")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(level_index, "RADIX_MIN", 1)
        order, ranked = stable_sorted(values)
    assert np.array_equal(order, want)
    assert np.array_equal(ranked.view(np.uint64), values[want].view(np.uint64))  # bit for bit
    if n >= level_index.RADIX_MIN:  # the shipped threshold takes it too
        assert np.array_equal(stable_sorted(values)[0], want)


@settings(max_examples=50, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 5_000), ties=st.booleans())
def test_stable_order_on_zone_price_like_values(seed: int, n: int, ties: bool) -> None:
    rng = np.random.default_rng(seed)
    values = rng.uniform(40_000.0, 80_000.0, n)
    if ties:  # identical positions have identical zone prices
        values = np.round(values, -3)
    assert np.array_equal(stable_order(values), np.argsort(values, kind="stable"))
    order, ranked = stable_sorted(values)
    want = np.argsort(values, kind="stable")
    assert np.array_equal(order, want)
    assert np.array_equal(ranked, values[want])


def test_stable_sorted_values_with_nan_and_ties() -> None:
    """The sorted values come with the order, also where the stable sort takes over."""
    values = np.array([3.0, np.nan, 1.0, 3.0, -np.inf, 1.0, np.nan])
    order, ranked = stable_sorted(values)
    want = np.argsort(values, kind="stable")
    assert np.array_equal(order, want)
    assert np.array_equal(ranked, values[want], equal_nan=True)


def test_an_unchecked_quicksort_differs_on_ties() -> None:
    # Many equal values: NumPy's default sort does not keep their input order, so the runs
    # stable_order puts back in index order are what make it exact.
    values = np.repeat(np.arange(50.0), 40)[::-1].copy()
    assert not np.array_equal(np.argsort(values), np.argsort(values, kind="stable"))
    assert np.array_equal(stable_order(values), np.argsort(values, kind="stable"))
