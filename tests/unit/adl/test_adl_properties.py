"""Hypothesis properties of ADL ranking, indicator and allocation."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from deleverage.rules.adl import (
    allocate_pro_rata,
    allocate_ranked,
    allocate_socialized_loss,
    queue_indicator,
    queue_indicator_by_size,
    rank,
    score_pnl_leverage,
)
from deleverage.rules.adl_ranking import PROFIT_ONLY, eligible_candidates

LOT = 0.001
MARK = 100.0

lots = st.integers(min_value=-5_000, max_value=5_000)
prices = st.floats(min_value=50.0, max_value=150.0, allow_nan=False)


@st.composite
def markets(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n = draw(st.integers(min_value=0, max_value=30))
    size = np.array(draw(st.lists(lots, min_size=n, max_size=n)), dtype=np.float64) * LOT
    entry = np.array(draw(st.lists(prices, min_size=n, max_size=n)), dtype=np.float64)
    entry[size == 0] = 0.0
    ids = np.array(draw(st.permutations(range(n))), dtype=np.int64) + 100
    return size, entry, ids


@settings(max_examples=150)
@given(
    market=markets(),
    need_lots=st.integers(min_value=1, max_value=40_000),
    bankrupt_side=st.sampled_from([1.0, -1.0]),
    ranking=st.sampled_from(sorted(PROFIT_ONLY)),
)
def test_ranked_allocation_respects_need_sizes_and_sides(
    market: tuple[np.ndarray, np.ndarray, np.ndarray],
    need_lots: int,
    bankrupt_side: float,
    ranking: str,
) -> None:
    # Arrange
    size, entry, ids = market
    need = need_lots * LOT
    mask = eligible_candidates(size, entry, MARK, bankrupt_size=bankrupt_side, ranking=ranking)  # type: ignore[arg-type]
    available = np.where(mask, np.abs(size), 0.0)
    equity = np.abs(size) * MARK * 0.1 + size * (MARK - entry)
    order = rank(score_pnl_leverage(size, entry, MARK, equity=equity), ids)

    # Act
    closed = allocate_ranked(order, available, need)

    # Assert
    assert np.all(closed >= 0)
    assert np.all(closed <= np.abs(size))
    assert np.all(closed[~mask] == 0)  # same side, flat, or (per policy) losing: untouched
    assert np.all(closed[size * bankrupt_side >= 0] == 0)
    total = math.fsum(closed.tolist())
    assert total <= need * (1 + 1e-12)
    assert math.isclose(
        total, min(need, math.fsum(available.tolist())), rel_tol=1e-12, abs_tol=1e-12
    )


@settings(max_examples=150)
@given(
    avail_lots=st.lists(st.integers(min_value=0, max_value=10_000), max_size=30),
    need_lots=st.integers(min_value=1, max_value=100_000),
    lot=st.sampled_from([1.0, 0.1, 0.001, 0.25]),
)
def test_pro_rata_allocation_is_one_fraction_within_a_lot_and_never_exceeds_need(
    avail_lots: list[int], need_lots: int, lot: float
) -> None:
    available = np.array(avail_lots, dtype=np.float64) * lot
    need = need_lots * lot
    total_lots = sum(avail_lots)

    closed = allocate_pro_rata(available, need, lot)

    assert np.all(closed >= 0)
    assert np.all(closed <= available * (1 + 1e-12))
    assert np.all(closed[available == 0] == 0)
    total = math.fsum(closed.tolist())
    assert total <= need * (1 + 1e-9)
    expected_lots = min(need_lots, total_lots)
    assert math.isclose(total, expected_lots * lot, rel_tol=1e-9, abs_tol=1e-12)
    if need_lots < total_lots:
        share = available * (need / math.fsum(available.tolist()))
        assert np.all(np.abs(closed - share) < lot * (1 + 1e-9))


@settings(max_examples=150)
@given(
    loss=st.floats(min_value=0.0, max_value=1e9, allow_nan=False, allow_subnormal=False),
    weights=st.lists(
        st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_subnormal=False),
        min_size=1,
        max_size=30,
    ),
    basis=st.sampled_from(["profit", "open_interest"]),
)
def test_socialized_loss_sums_exactly_and_spares_accounts_without_weight(
    loss: float, weights: list[float], basis: str
) -> None:
    w = np.array(weights)
    if basis == "open_interest":
        w = np.abs(w)
    positive = np.maximum(w, 0.0)
    if loss > 0 and positive.sum() == 0:
        return  # nobody to charge: rejected, tested elsewhere

    charges = allocate_socialized_loss(loss, w, basis)  # type: ignore[arg-type]

    assert math.fsum(charges.tolist()) == loss
    assert np.all(charges >= 0)
    assert np.all(charges[positive == 0] == 0)


@given(
    scores=st.lists(
        st.one_of(st.floats(allow_nan=False), st.sampled_from([0.0, 1.0, 2.0])), max_size=40
    ),
    data=st.data(),
)
def test_rank_is_deterministic_monotonic_and_independent_of_input_order(
    scores: list[float], data: st.DataObject
) -> None:
    n = len(scores)
    ids = np.array(data.draw(st.permutations(range(n))), dtype=np.int64)
    sc = np.array(scores, dtype=np.float64)

    order = rank(sc, ids)
    shuffle = np.array(data.draw(st.permutations(range(n))), dtype=np.intp)
    shuffled_order = rank(sc[shuffle], ids[shuffle])

    assert sorted(order.tolist()) == list(range(n))
    ranked = sc[order]
    assert np.all(ranked[:-1] >= ranked[1:])  # monotonic: higher score first
    ties = ranked[:-1] == ranked[1:]
    assert np.all(ids[order][:-1][ties] < ids[order][1:][ties])  # ties by ascending account id
    assert ids[shuffle][shuffled_order].tolist() == ids[order].tolist()
    assert rank(sc, ids).tolist() == order.tolist()


@given(n=st.integers(min_value=1, max_value=500))
def test_indicator_is_within_one_to_five_and_non_increasing_with_rank(n: int) -> None:
    lights = queue_indicator(np.arange(n), n)

    assert lights.min() >= 1
    assert lights.max() <= 5
    assert np.all(np.diff(lights) <= 0)
    assert lights[-1] == 1
    if n >= 5:
        assert lights[0] == 5
        # Each light covers a fifth of the queue, give or take one position.
        counts = np.bincount(lights, minlength=6)[1:]
        assert counts.max() - counts.min() <= 1


@given(sizes=st.lists(st.integers(min_value=1, max_value=10_000), min_size=1, max_size=60))
def test_size_weighted_indicator_is_within_one_to_five_and_non_increasing(
    sizes: list[int],
) -> None:
    lights = queue_indicator_by_size(np.array(sizes, dtype=np.float64) * LOT)

    assert lights.min() >= 1
    assert lights.max() <= 5
    assert np.all(np.diff(lights) <= 0)
    assert lights[-1] == 1
