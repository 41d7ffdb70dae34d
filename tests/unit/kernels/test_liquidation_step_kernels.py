"""The liquidation step's compiled helpers against the NumPy selections they replace: the ADL
queue's top-of-queue selection (a full partition before) and the distinct accounts of a batch of
fills (``np.unique``)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from deleverage.engine.kernels import top_scores_nb, unique_accounts_nb


def _reference(scores: np.ndarray, k: int) -> np.ndarray:
    """The selection ``_Queue.ensure`` made before: every score at or above the k-th best."""
    threshold = np.partition(-scores, k - 1)[k - 1]
    return np.flatnonzero(-scores <= threshold)


@settings(max_examples=200, deadline=None)
@given(
    seed=st.integers(0, 100_000),
    n=st.integers(2, 30_000),
    fraction=st.floats(0.0, 1.0),
    levels=st.sampled_from([0, 3, 50]),
    infinities=st.booleans(),
)
def test_top_scores_match_the_partition_selection(
    seed: int, n: int, fraction: float, levels: int, infinities: bool
) -> None:
    # Arrange: continuous scores, or few distinct levels (ties across the k-th), some +-inf
    rng = np.random.default_rng(seed)
    drawn = rng.lognormal(0.0, 2.0, n) if levels == 0 else rng.integers(0, levels, n) * 0.5
    scores = np.asarray(drawn, dtype=np.float64)
    if infinities:
        scores[rng.random(n) < 0.01] = np.inf
        scores[rng.random(n) < 0.01] = -np.inf
    k = min(n - 1, max(1, int(fraction * n)))

    # Act
    got = top_scores_nb(scores, k)

    # Assert: the same positions, in ascending order
    np.testing.assert_array_equal(got, _reference(scores, k))


def test_top_scores_keep_every_tie_of_the_kth_score() -> None:
    # 10 scores, the 3rd best (2.0) is shared by four positions: all four come with the top
    scores = np.array([1.0, 2.0, 5.0, 2.0, 0.5, 2.0, 3.0, 2.0, 0.0, 1.5])
    np.testing.assert_array_equal(top_scores_nb(scores, 3), [1, 2, 3, 5, 6, 7])


def test_top_scores_of_a_skewed_sample_fall_back_to_every_score() -> None:
    # Every sampled position (stride 100,000 // 4096 = 24) scores high, every other one 0:
    # the sample's guess (its 92nd best) is reached by 92 scores, fewer than k = 1,000
    scores = np.zeros(100_000)
    scores[::24] = np.linspace(1.0, 2.0, len(scores[::24]))
    got = top_scores_nb(scores, 1_000)
    np.testing.assert_array_equal(got, _reference(scores, 1_000))
    assert len(got) == 1_000


def test_top_scores_refuse_nan_with_an_empty_selection() -> None:
    scores = np.array([1.0, np.nan, 3.0, 2.0])
    assert len(top_scores_nb(scores, 2)) == 0


@given(
    accounts=st.lists(st.integers(0, 199), max_size=600),
)
def test_unique_accounts_match_np_unique_and_leave_the_flags_clear(accounts: list[int]) -> None:
    # Arrange
    seen = np.zeros(200, dtype=np.bool_)
    batch = np.array(accounts, dtype=np.int64)

    # Act
    got = unique_accounts_nb(batch, seen)

    # Assert: np.unique's ids, ascending; every flag back to False for the next call
    np.testing.assert_array_equal(got, np.unique(batch))
    assert got.dtype == np.int64
    assert not seen.any()
