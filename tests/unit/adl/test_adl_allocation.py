"""ADL allocation: ranked, pro rata, socialized loss, and candidate eligibility."""

from __future__ import annotations

import math

import numpy as np
import pytest

from deleverage.errors import UnknownEntityError, ValidationError
from deleverage.rules.adl import (
    allocate_pro_rata,
    allocate_ranked,
    allocate_socialized_loss,
)
from deleverage.rules.adl_ranking import eligible_candidates

# --------------------------------------------------------------------------- ranked


def test_ranked_closes_whole_positions_then_a_partial_one() -> None:
    closed = allocate_ranked([2, 0, 1, 3], [4.0, 6.0, 3.0, 9.0], 10.0)

    # order 2 (3), 0 (4), 1 (3 of 6): 3 + 4 + 3 = 10; position 3 untouched.
    assert closed.tolist() == [4.0, 3.0, 3.0, 0.0]


def test_ranked_dydx_example_closes_the_whole_offsetting_long() -> None:
    # dYdX contract-loss example (dydx-documentation-six.vercel.app/concepts/trading/
    # contract-loss-mechanism): A long 500, B short 500 goes underwater; A's position is
    # closed at B's bankruptcy price.
    assert allocate_ranked([0], [500.0], 500.0).tolist() == [500.0]


def test_ranked_closes_everything_available_when_need_exceeds_it() -> None:
    closed = allocate_ranked([1, 0], [2.0, 3.0], 100.0)

    assert closed.tolist() == [2.0, 3.0]


def test_ranked_leaves_positions_outside_the_order_untouched() -> None:
    closed = allocate_ranked([1], [5.0, 5.0, 5.0], 8.0)

    assert closed.tolist() == [0.0, 5.0, 0.0]


def test_ranked_rejects_bad_need_order_and_sizes() -> None:
    with pytest.raises(ValidationError, match="need"):
        allocate_ranked([0], [1.0], 0.0)
    with pytest.raises(ValidationError, match="order"):
        allocate_ranked([0, 0], [1.0, 1.0], 1.0)
    with pytest.raises(ValidationError, match="order"):
        allocate_ranked([0, 2], [1.0, 1.0], 1.0)
    with pytest.raises(ValidationError, match="available_sizes"):
        allocate_ranked([0], [-1.0], 1.0)


# --------------------------------------------------------------------------- pro rata


def test_pro_rata_reduces_every_position_by_the_same_fraction() -> None:
    # need 50 of 100: each position halves.
    closed = allocate_pro_rata([10.0, 30.0, 60.0], 50.0, 1.0)

    assert closed.tolist() == [5.0, 15.0, 30.0]


def test_pro_rata_gives_the_remaining_lot_to_the_largest_remainder_then_lowest_index() -> None:
    # Exact shares 4/3 each -> 1 lot each, one lot left; equal remainders -> index 0.
    assert allocate_pro_rata([3.0, 3.0, 3.0], 4.0, 1.0).tolist() == [2.0, 1.0, 1.0]
    # Exact shares 0.6 x (1, 2, 7) = 0.6, 1.2, 4.2 -> floors 0, 1, 4 (5 lots), one left;
    # largest remainder 0.6 -> position 0.
    assert allocate_pro_rata([1.0, 2.0, 7.0], 6.0, 1.0).tolist() == [1.0, 1.0, 4.0]


def test_pro_rata_in_small_lots_is_not_fooled_by_float_division() -> None:
    # 0.003 / 0.001 is 2.9999999999999996 in floats; the 3 lots must still be allocated.
    closed = allocate_pro_rata([0.002, 0.002], 0.003, 0.001)

    assert closed.tolist() == pytest.approx([0.002, 0.001], abs=1e-15)
    assert math.fsum(closed.tolist()) == pytest.approx(0.003, abs=1e-15)


def test_pro_rata_leaves_the_part_of_need_below_one_lot_unallocated() -> None:
    closed = allocate_pro_rata([5.0, 5.0], 3.5, 1.0)

    assert closed.tolist() == [2.0, 1.0]


def test_pro_rata_closes_everything_when_need_covers_all() -> None:
    assert allocate_pro_rata([0.5, 0.25, 0.0], 2.0, 0.1).tolist() == [0.5, 0.25, 0.0]


def test_pro_rata_rejects_bad_lot_size() -> None:
    with pytest.raises(ValidationError, match="lot_size"):
        allocate_pro_rata([1.0], 0.5, 0.0)


# --------------------------------------------------------------------------- socialized loss


def test_socialized_loss_over_profit_charges_only_winners_pro_rata() -> None:
    charges = allocate_socialized_loss(30.0, [10.0, -5.0, 20.0, 0.0], "profit")

    assert charges.tolist() == [10.0, 0.0, 20.0, 0.0]


def test_socialized_loss_over_open_interest_charges_by_notional() -> None:
    # Drift's bankruptcy raises the cumulative funding rate by loss / open interest, so each
    # position pays per unit of size: notionals 100, 300, 0 share a loss of 8 as 2, 6, 0.
    charges = allocate_socialized_loss(8.0, [100.0, 300.0, 0.0], "open_interest")

    assert charges.tolist() == [2.0, 6.0, 0.0]


def test_socialized_loss_sums_exactly_with_awkward_thirds() -> None:
    charges = allocate_socialized_loss(0.1, [1.0, 1.0, 1.0], "open_interest")

    assert math.fsum(charges.tolist()) == 0.1
    np.testing.assert_allclose(charges, 0.1 / 3, rtol=1e-15)


def test_socialized_loss_of_zero_charges_nobody() -> None:
    assert allocate_socialized_loss(0.0, [0.0, 0.0], "profit").tolist() == [0.0, 0.0]


def test_socialized_loss_without_anyone_to_charge_is_rejected() -> None:
    with pytest.raises(ValidationError, match="profits_or_open_interest"):
        allocate_socialized_loss(5.0, [-1.0, 0.0], "profit")


def test_socialized_loss_rejects_negative_open_interest_and_unknown_basis() -> None:
    with pytest.raises(ValidationError, match="profits_or_open_interest"):
        allocate_socialized_loss(5.0, [-1.0, 3.0], "open_interest")
    with pytest.raises(UnknownEntityError, match="basis"):
        allocate_socialized_loss(5.0, [1.0], "volume")  # type: ignore[arg-type]


# --------------------------------------------------------------------------- eligibility

SIZE = np.array([2.0, -1.0, -3.0, 0.0, -2.0])
ENTRY = np.array([90.0, 90.0, 110.0, 0.0, 100.0])  # short at 90 loses, short at 110 wins
MARK = 100.0


def test_eligible_queue_policies_take_every_opposing_open_position() -> None:
    for ranking in ("pnl_leverage", "binance", "random_start"):
        mask = eligible_candidates(SIZE, ENTRY, MARK, bankrupt_size=5.0, ranking=ranking)
        assert mask.tolist() == [False, True, True, False, True], ranking


def test_eligible_profit_policies_take_opposing_winners_only() -> None:
    for ranking in ("hyperliquid", "risk_score", "pro_rata", "socialized_loss"):
        mask = eligible_candidates(SIZE, ENTRY, MARK, bankrupt_size=5.0, ranking=ranking)
        assert mask.tolist() == [False, False, True, False, False], ranking


def test_eligible_against_a_bankrupt_short_takes_longs() -> None:
    mask = eligible_candidates(SIZE, ENTRY, MARK, bankrupt_size=-1.0, ranking="pro_rata")

    assert mask.tolist() == [True, False, False, False, False]


def test_eligible_socialized_over_open_interest_takes_both_sides() -> None:
    mask = eligible_candidates(
        SIZE,
        ENTRY,
        MARK,
        bankrupt_size=5.0,
        ranking="socialized_loss",
        socialize_over="open_interest",
    )

    assert mask.tolist() == [True, True, True, False, True]


def test_eligible_rejects_zero_bankrupt_size_and_unknown_ranking() -> None:
    with pytest.raises(ValidationError, match="bankrupt_size"):
        eligible_candidates(SIZE, ENTRY, MARK, bankrupt_size=0.0, ranking="binance")
    with pytest.raises(UnknownEntityError, match="ranking"):
        eligible_candidates(SIZE, ENTRY, MARK, bankrupt_size=1.0, ranking="fifo")  # type: ignore[arg-type]
