"""ADL round metrics: notional and profit taken versus the shortfall."""

from __future__ import annotations

import math

import pytest

from deleverage.errors import ValidationError
from deleverage.rules.adl import adl_round_metrics


def test_dydx_example_takes_500_of_profit_for_a_400_shortfall() -> None:
    # dYdX contract-loss example (dydx-documentation-six.vercel.app/concepts/trading/
    # contract-loss-mechanism): A long 500 from $1, B short 500 from $1 with $100; the price
    # jumps to $2, B's equity is 100 - 500 = -$400 and its bankruptcy price $1.2; A's position is
    # closed at $1.2 ("resulting in a $100 profit for A").
    # Arrange / Act
    metrics = adl_round_metrics(
        [500.0], [1.0], [500.0], mark_price=2.0, execution_price=1.2, shortfall=400.0
    )

    # Assert
    assert metrics.notional_closed == pytest.approx(600.0)  # 500 x $1.2
    assert metrics.profit_taken == pytest.approx(500.0)  # 500 x ($2 - $1) at the mark
    assert metrics.haircut_vs_mark == pytest.approx(400.0)  # 500 x ($2 - $1.2) = B's deficit
    assert metrics.excess_profit == pytest.approx(100.0)
    assert metrics.profit_ratio == pytest.approx(1.25)
    # 400 of profit at $1 a unit needs 400 units: 400 x $1.2 = $480 of notional.
    assert metrics.notional_required == pytest.approx(480.0)


def test_queue_that_overshoots_counts_only_the_prefix_as_required() -> None:
    # Shorts deleveraged in order: 2 from 120 (profit 20 each at mark 100), 4 from 105 (5 each),
    # 1 from 95 (losing, profit 0). Shortfall 50: the first 2 give 40, then 10 / 5 = 2 units of
    # the second. Required notional = (2 + 2) x 100; closed = 7 x 100.
    metrics = adl_round_metrics(
        [-2.0, -4.0, -1.0],
        [120.0, 105.0, 95.0],
        [2.0, 4.0, 1.0],
        mark_price=100.0,
        execution_price=100.0,
        shortfall=50.0,
    )

    assert metrics.profit_taken == pytest.approx(60.0)
    assert metrics.excess_profit == pytest.approx(10.0)
    assert metrics.notional_closed == pytest.approx(700.0)
    assert metrics.notional_required == pytest.approx(400.0)
    assert metrics.haircut_vs_mark == 0.0


def test_undershoot_reports_negative_excess_and_full_notional() -> None:
    metrics = adl_round_metrics(
        [1.0], [90.0], [1.0], mark_price=100.0, execution_price=95.0, shortfall=25.0
    )

    assert metrics.excess_profit == pytest.approx(-15.0)
    assert metrics.notional_required == pytest.approx(metrics.notional_closed)


def test_zero_shortfall_has_infinite_ratio_when_profit_was_taken() -> None:
    metrics = adl_round_metrics(
        [1.0], [90.0], [1.0], mark_price=100.0, execution_price=100.0, shortfall=0.0
    )

    assert math.isinf(metrics.profit_ratio)
    assert metrics.notional_required == 0.0


def test_metrics_reject_closing_more_than_the_position() -> None:
    with pytest.raises(ValidationError, match="closed"):
        adl_round_metrics(
            [1.0], [90.0], [2.0], mark_price=100.0, execution_price=100.0, shortfall=1.0
        )
