"""The ADL cells' selection helpers (branch liq-step6) against the NumPy they stand in for.

- :func:`kth_largest_nb` (the threshold of :func:`select_top_nb`) is ``np.partition``'s
  order statistic, on data with heavy ties and infinities;
- :func:`rank_distinct` (the ranking of the selected accounts) is
  :func:`deleverage.rules.adl.rank`'s permutation for distinct accounts, ties included;
- :func:`capacity_live_nb` (branch-free) is the dense array's partial sum
  (:func:`capacity_reaches_nb`), stopped at the same account;
- cells whose margins funding moved, refreshed in place (:meth:`_Side.refresh_margins`, no
  rebuild), rank like the dense pass of the live columns, and a queue held across the
  refresh keeps what it stood for;
- the strided sample of a queue's mean candidate size, read from the copies kept at the build
  (:meth:`_Side.sample`), is the dense array's, after changes and with accounts opened after
  the build (the stride kept or changed).

Each comparison is shown to fail for a deliberately wrong fast path (off by one rank, ties
broken the other way), so the twins can catch what they guard.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from hypothesis import given, settings
from hypothesis import strategies as st

from deleverage.engine.adl_index import AdlIndex, kth_largest_nb
from deleverage.engine.risk.adl_queue import (
    DenseQueue,
    IndexedQueue,
    _sample_mean_size,
    capacity_live_nb,
    capacity_reaches_nb,
    pnl_leverage_scores_nb,
    rank_distinct,
)
from deleverage.rules import adl as adl_math

_GRID = [-np.inf, -2.0, -0.0, 0.0, 0.5, 1.0, 3.0, np.inf]


@st.composite
def _values(draw: st.DrawFn) -> npt.NDArray[np.float64]:
    n = draw(st.integers(1, 3_000))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    kind = draw(st.sampled_from(["grid", "uniform", "sorted", "reversed", "mixed"]))
    if kind == "grid":  # heavy ties
        return np.asarray(rng.choice(_GRID, n), dtype=np.float64)
    values = rng.uniform(-1.0, 1.0, n)
    if kind == "sorted":
        values.sort()
    elif kind == "reversed":
        values = -np.sort(values)
    elif kind == "mixed":
        values[rng.random(n) < 0.3] = rng.choice(_GRID)
    return values


@settings(max_examples=300, deadline=None)
@given(values=_values(), k_share=st.floats(0.0, 1.0))
def test_kth_largest_is_the_partitions_order_statistic(
    values: npt.NDArray[np.float64], k_share: float
) -> None:
    # Arrange
    n = len(values)
    k = 1 + min(n - 1, int(k_share * n))
    before = values.copy()

    # Act
    got = kth_largest_nb(values, k)

    # Assert: the value np.partition puts at n - k, the input untouched
    want = np.partition(values, n - k)[n - k]
    assert got == want
    np.testing.assert_array_equal(values, before)


def test_the_kth_largest_twin_catches_an_off_by_one() -> None:
    # A fast path answering the (k+1)-th largest fails the comparison on distinct values.
    values = np.random.default_rng(3).uniform(0.0, 1.0, 1_000)
    n, k = len(values), 10
    assert kth_largest_nb(values, k) == np.partition(values, n - k)[n - k]
    assert kth_largest_nb(values, k + 1) != np.partition(values, n - k)[n - k]


@settings(max_examples=300, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(0, 3_000), ties=st.booleans())
def test_rank_distinct_is_the_rules_rank(seed: int, n: int, ties: bool) -> None:
    # Arrange: distinct account ids in random order; scores tied on a grid or spread
    rng = np.random.default_rng(seed)
    accounts = rng.choice(10 * n + 1, n, replace=False).astype(np.int64)
    if ties:
        scores = np.asarray(rng.choice([-np.inf, -0.0, 0.0, 0.25, 1.0, np.inf], n), dtype=float)
    else:
        scores = rng.normal(0.0, 1.0, n)

    # Act
    got = rank_distinct(scores, accounts)

    # Assert: the same permutation as the rules' rank
    np.testing.assert_array_equal(got, adl_math.rank(scores, accounts))


def test_the_rank_twin_catches_ties_broken_the_other_way() -> None:
    scores = np.array([1.0, 2.0, 1.0, 2.0])
    accounts = np.array([7, 3, 5, 9], dtype=np.int64)
    wrong = np.lexsort((-accounts, -scores))  # ties by descending account id
    assert rank_distinct(scores, accounts).tolist() == adl_math.rank(scores, accounts).tolist()
    assert wrong.tolist() != adl_math.rank(scores, accounts).tolist()


def _book(rng: np.random.Generator, n: int) -> dict[str, npt.NDArray[np.float64]]:
    size = np.where(rng.random(n) < 0.1, 0.0, rng.normal(0.0, 5.0, n))
    entry = rng.uniform(50.0, 150.0, n)
    margin = np.where(rng.random(n) < 0.03, -rng.uniform(0, 50, n), rng.uniform(0, 80, n))
    kind = np.where(rng.random(n) < 0.03, 1.0, 0.0)
    return {"size": size, "entry": entry, "margin": margin, "kind": kind}


def _columns(
    book: dict[str, npt.NDArray[np.float64]],
) -> tuple[
    npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.int8]
]:
    return book["size"], book["entry"], book["margin"], book["kind"].astype(np.int8)


@settings(max_examples=80, deadline=None)
@given(
    seed=st.integers(0, 100_000),
    n=st.integers(1, 30_000),
    opened=st.sampled_from([0, 1, 7, 4_096, 20_000]),
    side=st.sampled_from([1, -1]),
    share=st.sampled_from([0.0, 0.01, 0.2]),
    mark=st.sampled_from([80.0, 100.0, 120.0]),
)
def test_the_sample_from_the_builds_copies_is_the_dense_arrays(
    seed: int, n: int, opened: int, side: int, share: float, mark: float
) -> None:
    # Arrange: cells of n accounts; then accounts opened (touched, as the engine reports
    # them) and a share of all accounts changed and touched
    rng = np.random.default_rng(seed)
    book = _book(rng, n)
    index = AdlIndex(0)
    index.build(*_columns(book))
    if opened:
        extra = _book(rng, opened)
        book = {k: np.concatenate([book[k], extra[k]]) for k in book}
        index.touch(np.arange(n, n + opened, dtype=np.int64))
    total = n + opened
    changed = np.flatnonzero(rng.random(total) < share).astype(np.int64)
    book["size"][changed] = rng.normal(0.0, 5.0, len(changed))
    book["entry"][changed] = rng.uniform(50.0, 150.0, len(changed))
    index.touch(changed)
    queue = IndexedQueue(index.side(side, *_columns(book)), _columns(book), mark, total, 0)
    dense = np.empty(total)
    pnl_leverage_scores_nb(*_columns(book), mark, float(side), dense)

    # Act
    got = queue._sample_mean(book["size"])

    # Assert: the same float as the dense pass's strided sample
    assert got == _sample_mean_size(book["size"], dense)


@settings(max_examples=150, deadline=None)
@given(
    seed=st.integers(0, 100_000),
    n=st.integers(1, 20_000),
    side=st.sampled_from([1.0, -1.0]),
    mark=st.sampled_from([80.0, 100.0, 120.0]),
    bound_share=st.floats(0.0, 1.5),
)
def test_the_live_capacity_is_the_dense_arrays_partial_sum(
    seed: int, n: int, side: float, mark: float, bound_share: float
) -> None:
    # Arrange: a book (flat rows, venue accounts, losers); the dense pass's scores
    rng = np.random.default_rng(seed)
    book = _book(rng, n)
    size, entry, margin, kind = _columns(book)
    dense = np.empty(n)
    pnl_leverage_scores_nb(size, entry, margin, kind, mark, side, dense)
    bound = bound_share * float(np.abs(size).sum()) / 2.0

    # Act
    got = capacity_live_nb(size, entry, kind, mark, side, bound)

    # Assert: the same float, bit for bit
    assert got == capacity_reaches_nb(size, dense, bound)


def _full_ranking(queue: IndexedQueue | DenseQueue) -> npt.NDArray[np.int64]:
    queue.ensure(len(queue.candidates) + 1)
    return queue.accounts.copy()


def _funded(
    rng: np.random.Generator, book: dict[str, npt.NDArray[np.float64]], index: AdlIndex
) -> None:
    """Funding as the ledger applies it: ``np.add.at`` on the isolated margins of the open
    positions (an account twice too), some margins pushed to zero or below."""
    open_ = np.flatnonzero(book["size"] != 0.0)
    accounts = np.concatenate([open_, open_[: len(open_) // 10]]).astype(np.int64)
    amounts = -book["size"][accounts] * 100.0 * rng.choice([1e-4, -3e-4, 0.05, -0.4])
    np.add.at(book["margin"], accounts, amounts)
    index.margins_moved()


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 100_000),
    n=st.integers(1, 8_000),
    side=st.sampled_from([1, -1]),
    share=st.sampled_from([0.0, 0.01, 0.05]),
    rounds=st.integers(1, 3),
    mark=st.sampled_from([80.0, 100.0, 120.0]),
)
def test_funded_cells_refreshed_in_place_rank_like_the_dense_pass(
    seed: int, n: int, side: int, share: float, rounds: int, mark: float
) -> None:
    # Arrange: cells built; then rounds of position changes (touched) and funding, a queue
    # taken between some of them (it must keep what it stood for)
    rng = np.random.default_rng(seed)
    book = _book(rng, n)
    index = AdlIndex(0)
    index.build(*_columns(book))
    held = []
    for r in range(rounds):
        changed = np.flatnonzero(rng.random(n) < share).astype(np.int64)
        book["size"][changed] = rng.normal(0.0, 5.0, len(changed))
        index.touch(changed)
        _funded(rng, book, index)
        if r % 2 == 0:
            held.append(
                (
                    IndexedQueue(index.side(side, *_columns(book)), _columns(book), mark, n, 0),
                    {k: v.copy() for k, v in book.items()},
                )
            )

    # Act: the queue after the last funding, from the cells refreshed in place
    rebuilds, valid = index.rebuilds, index.sides[side].valid
    queue = IndexedQueue(index.side(side, *_columns(book)), _columns(book), mark, n, 0)

    # Assert: no rebuild (unless too many positions changed); the same ranking as the dense
    # pass of the live columns, and every queue held across a refresh still the dense pass
    # of its own time
    assert index.rebuilds == rebuilds or not valid
    dense = np.empty(n)
    count, _ = pnl_leverage_scores_nb(*_columns(book), mark, float(side), dense)
    np.testing.assert_array_equal(_full_ranking(queue), _full_ranking(DenseQueue(dense, count, 0)))
    for old, then in held:
        dense = np.empty(n)
        count, _ = pnl_leverage_scores_nb(*_columns(then), mark, float(side), dense)
        np.testing.assert_array_equal(
            _full_ranking(old), _full_ranking(DenseQueue(dense, count, 0))
        )


def test_the_funding_twin_catches_cells_left_stale() -> None:
    # Margins moved without telling the cells: the queue is no longer the dense pass's.
    rng = np.random.default_rng(4)
    book = _book(rng, 3_000)
    book["margin"] = np.abs(book["margin"]) + 1.0
    index = AdlIndex(0)
    index.build(*_columns(book))
    book["margin"] *= rng.uniform(0.01, 3.0, 3_000)  # no margins_moved()
    queue = IndexedQueue(index.side(-1, *_columns(book)), _columns(book), 90.0, 3_000, 0)
    dense = np.empty(3_000)
    count, _ = pnl_leverage_scores_nb(*_columns(book), 90.0, -1.0, dense)
    stale = _full_ranking(queue)
    assert not np.array_equal(stale, _full_ranking(DenseQueue(dense, count, 0)))
    index.margins_moved()
    rebuilds = index.rebuilds
    fresh = IndexedQueue(index.side(-1, *_columns(book)), _columns(book), 90.0, 3_000, 0)
    assert index.rebuilds == rebuilds  # refreshed in place
    np.testing.assert_array_equal(_full_ranking(fresh), _full_ranking(DenseQueue(dense, count, 0)))
