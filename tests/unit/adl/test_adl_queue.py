"""ADL queue: deterministic ranking, indicator lights and the queue table."""

from __future__ import annotations

import numpy as np
import pytest

from deleverage.errors import ValidationError
from deleverage.rules.adl import (
    queue_frame,
    queue_indicator,
    queue_indicator_by_size,
    queue_positions,
    rank,
)


def test_rank_orders_by_score_descending_and_breaks_ties_by_account_id() -> None:
    scores = [1.0, 5.0, 5.0, -np.inf, 2.0]
    ids = [4, 9, 3, 1, 7]

    order = rank(scores, ids)

    assert order.tolist() == [2, 1, 4, 0, 3]  # 5.0 (id 3), 5.0 (id 9), 2.0, 1.0, -inf


def test_rank_rejects_nan_scores_and_non_integer_ids() -> None:
    with pytest.raises(ValidationError, match="scores"):
        rank([1.0, float("nan")], [1, 2])
    with pytest.raises(ValidationError, match="account_ids"):
        rank([1.0, 2.0], [1.5, 2.5])
    with pytest.raises(ValidationError, match="account_ids"):
        rank([1.0, 2.0], [1])


def test_rank_of_empty_queue_is_empty() -> None:
    assert rank(np.zeros(0), np.zeros(0, dtype=np.int64)).tolist() == []


def test_queue_positions_inverts_the_order() -> None:
    order = np.array([2, 0, 3, 1])

    positions = queue_positions(order)

    assert positions.tolist() == [1, 3, 0, 2]
    assert order[positions].tolist() == [0, 1, 2, 3]


def test_queue_indicator_gives_two_positions_per_light_in_a_queue_of_ten() -> None:
    assert queue_indicator(np.arange(10), 10).tolist() == [5, 5, 4, 4, 3, 3, 2, 2, 1, 1]


def test_queue_indicator_uses_the_inclusive_percentile_like_bitmex() -> None:
    # Six equal positions: percentiles 1/6, 2/6, ... -> quintiles 1, 2, 3, 4, 5, 5.
    assert queue_indicator(np.arange(6), 6).tolist() == [5, 4, 3, 2, 1, 1]
    # A queue of one: that position is the whole (100th percentile) queue.
    assert queue_indicator(0, 1).tolist() == 1


def test_queue_indicator_rejects_positions_outside_the_queue() -> None:
    with pytest.raises(ValidationError, match="rank_position"):
        queue_indicator([0, 3], 3)
    with pytest.raises(ValidationError, match="n"):
        queue_indicator([0], 0)


def test_queue_indicator_by_size_rejects_an_empty_total() -> None:
    with pytest.raises(ValidationError, match="sizes_in_order"):
        queue_indicator_by_size([0.0, 0.0])


def test_queue_frame_lists_accounts_by_rank_with_lights() -> None:
    # Arrange
    ids = np.array([11, 12, 13, 14, 15, 16])
    scores = np.array([0.4, 3.0, -1.0 / 70.0, 1.5, 2.5, 0.0])

    # Act
    frame = queue_frame(ids, scores)

    # Assert
    assert list(frame.columns) == ["account", "rank", "score", "indicator"]
    assert frame["account"].tolist() == [12, 15, 14, 11, 16, 13]
    assert frame["rank"].tolist() == [1, 2, 3, 4, 5, 6]
    assert frame["indicator"].tolist() == [5, 4, 3, 2, 1, 1]
    assert frame["score"].is_monotonic_decreasing


def test_queue_frame_with_sizes_weights_the_lights_by_size() -> None:
    # BitMEX six-account example (testnet.bitmex.com/app/autoDeleveragingExamples): quantities
    # 10, 10, 20, 30, 20, 10 for accounts 1..6, PNL ranking 3, 6, 1, 4, 5, 2.
    frame = queue_frame([1, 2, 3, 4, 5, 6], [3, 6, 1, 4, 5, 2], sizes=[10, 10, 20, 30, 20, 10])

    assert frame["account"].tolist() == [2, 5, 4, 1, 6, 3]
    assert frame["size"].tolist() == [10, 20, 30, 10, 10, 20]
    assert frame["indicator"].tolist() == [5, 4, 3, 2, 2, 1]


def test_queue_frame_of_empty_side_is_empty() -> None:
    frame = queue_frame(np.zeros(0, dtype=np.int64), np.zeros(0))

    assert frame.empty
    assert list(frame.columns) == ["account", "rank", "score", "indicator"]
