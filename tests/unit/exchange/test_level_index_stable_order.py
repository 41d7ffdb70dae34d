"""The zone-price index's sort (``level_index.stable_order``) against NumPy's stable argsort.

A rebuild sorts every position's zone price: NumPy's default sort, then each run of equal values
(the NaNs one run) put back in index order (``stable_ties_nb``). Whatever the values (ties, NaN,
infinities, signed zeros, sorted or reversed runs), the order must be the stable argsort's,
index for index; a deliberately unchecked quicksort must fail the same comparison on ties.
"""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from deleverage.engine.level_index import stable_order, stable_sorted

VALUES = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, -0.0, 1.0, 60_000.0, np.inf, -np.inf, np.nan]),
)


@settings(max_examples=300, deadline=None)
@given(values=arrays(np.float64, st.integers(0, 400), elements=VALUES))
def test_stable_order_is_the_stable_argsort(values: np.ndarray) -> None:
    assert np.array_equal(stable_order(values), np.argsort(values, kind="stable"))


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


@settings(max_examples=200, deadline=None)
@given(
    values=arrays(np.float64, st.integers(0, 400), elements=VALUES),
    seed=st.integers(0, 2**32 - 1),
    swaps=st.integers(0, 8),
)
def test_stable_sorted_from_a_guess_is_the_stable_argsort(
    values: np.ndarray, seed: int, swaps: int
) -> None:
    """Whatever permutation the sort starts from (the stable order itself, a few swaps away,
    reversed, or random), the order is the stable argsort's and the values come with it."""
    rng = np.random.default_rng(seed)
    want = np.argsort(values, kind="stable")
    near = want.copy()
    for _ in range(swaps if len(near) > 1 else 0):
        i, j = rng.integers(0, len(near), 2)
        near[i], near[j] = near[j], near[i]
    for guess in (want, near, want[::-1].copy(), rng.permutation(len(values))):
        order, ranked = stable_sorted(values, guess)
        assert np.array_equal(order, want)
        assert np.array_equal(ranked, values[want], equal_nan=True)
        assert np.array_equal(np.signbit(ranked), np.signbit(values[want]))


def test_a_guess_sorted_by_index_on_ties_is_put_back() -> None:
    """A guess that orders equal values (and the NaNs) against their index is sorted by the
    stable sort into a valid but wrong order: the tie pass makes it the stable one."""
    values = np.array([2.0, np.nan, 1.0, -0.0, 2.0, 0.0, np.nan, 1.0])
    want = np.argsort(values, kind="stable")
    guess = np.array([5, 3, 7, 2, 4, 0, 6, 1])  # sorted values, each run backwards
    order, ranked = stable_sorted(values, guess)
    assert np.array_equal(order, want)
    assert np.array_equal(np.signbit(ranked), np.signbit(values[want]))


def _odd_nans(n: int, rng: np.random.Generator) -> np.ndarray:
    """NaNs of either sign and random payloads (what arithmetic on NaN can leave)."""
    payload = rng.integers(1, 1 << 51, n, dtype=np.uint64)
    sign = rng.integers(0, 2, n, dtype=np.uint64) << np.uint64(63)
    return (sign | np.uint64(0x7FF0000000000000) | payload).view(np.float64)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 30_000), ties=st.booleans())
def test_long_sides_with_odd_nans_and_signed_zeros(seed: int, n: int, ties: bool) -> None:
    """Sides as long as a rebuild's, with NaNs of any sign and payload, signed zeros and
    infinities among the prices: the stable argsort's order, and its values bit for bit."""
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
    order, ranked = stable_sorted(values)
    assert np.array_equal(order, want)
    assert np.array_equal(ranked.view(np.uint64), values[want].view(np.uint64))
