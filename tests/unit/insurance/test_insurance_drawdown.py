"""Bybit's 8-hour insurance drawdown rule, against Bybit's worked examples.

Source: Bybit V5 API docs, "Get ADL Alert", https://bybit-exchange.github.io/docs/v5/market/adl-alert:
"Trigger condition: balance (insurance fund balance) > adlTriggerThreshold ... and pnlRatio <
insurancePnlRatio", with "pnlRatio = (Symbol's current PnL - Symbol's 8h max PnL) / Insurance
pool's 8h max balance (maxBalance)" and the examples quoted below.
"""

from __future__ import annotations

import pytest

from deleverage.engine.insurance_fund import InsuranceFund

HOUR_NS = 3_600 * 10**9


def _bybit_pool() -> InsuranceFund:
    # insurancePnlRatio -0.3 and adlTriggerThreshold 1, "a constant set by Bybit" in the examples.
    return InsuranceFund(
        "A,B,C",
        protocol_share=0.0,
        unstake_cooldown_s=0.0,
        drawdown_alert_fraction=0.3,
        drawdown_min_balance=1.0,
    )


def test_bybit_example_1_a_350k_loss_on_a_1m_pool_is_a_35_percent_drawdown_and_alerts() -> None:
    # "Assume symbols A, B, C share the same pool, initial balance = 1M USDT. A's position
    # incurs a loss = 350K. pnlRatio = -35% ... pnlRatio (-0.35) < insurancePnlRatio (-0.3)
    # -> Contract PnL drawdown ADL is triggered".
    pool = _bybit_pool()
    pool.receive(1_000_000.0, 0, kind="protocol_revenue", ref="initial")
    pool.cover(350_000.0, 1 * HOUR_NS, ref="A")
    loss, fraction = pool.drawdown_over_window(1 * HOUR_NS)
    assert loss == 350_000.0
    assert fraction == pytest.approx(0.35, rel=1e-15)
    assert pool.drawdown_alert(1 * HOUR_NS)


def test_bybit_example_2_a_600k_loss_after_a_1m_profit_is_30_percent_of_the_2m_max() -> None:
    # "initial balance = 1M USDT. A gains profit through liquidation, pool 8h Max Balance = 2M
    # USDT (A's PnL = +1M). Later A incurs a loss of 600K. pnlRatio = -30% ... pnlRatio (-0.30)
    # <= insurancePnlRatio (-0.3) -> Contract PnL drawdown ADL is triggered".
    pool = _bybit_pool()
    pool.receive(1_000_000.0, 0, kind="protocol_revenue", ref="initial")
    pool.receive(1_000_000.0, 1 * HOUR_NS, kind="liquidation_penalty", ref="A")
    pool.cover(600_000.0, 2 * HOUR_NS, ref="A")
    loss, fraction = pool.drawdown_over_window(2 * HOUR_NS)
    assert loss == 600_000.0
    assert fraction == 0.3
    assert pool.drawdown_alert(2 * HOUR_NS)  # at exactly -30 %, as in the example


def test_a_drawdown_below_the_threshold_does_not_alert() -> None:
    pool = _bybit_pool()
    pool.receive(1_000_000.0, 0, kind="protocol_revenue")
    pool.cover(299_999.0, HOUR_NS)
    assert not pool.drawdown_alert(HOUR_NS)


def test_a_loss_leaves_the_window_eight_hours_after_it_happened() -> None:
    pool = _bybit_pool()
    pool.receive(1_000_000.0, 0, kind="protocol_revenue")
    pool.cover(350_000.0, 1 * HOUR_NS)
    assert pool.drawdown_over_window(9 * HOUR_NS - 1)[0] == 350_000.0
    assert pool.drawdown_over_window(9 * HOUR_NS) == (0.0, 0.0)
    assert not pool.drawdown_alert(9 * HOUR_NS)


def test_losses_within_the_window_add_up_from_the_window_peak() -> None:
    pool = _bybit_pool()
    pool.receive(1_000_000.0, 0, kind="protocol_revenue")
    pool.cover(150_000.0, 1 * HOUR_NS)
    pool.receive(50_000.0, 2 * HOUR_NS)
    pool.cover(250_000.0, 3 * HOUR_NS)
    # Peak PnL 1M at the start, now 650K: 350K on a max balance of 1M.
    assert pool.drawdown_over_window(3 * HOUR_NS) == (350_000.0, 0.35)


def test_unstaking_is_not_a_loss() -> None:
    pool = _bybit_pool()
    pool.stake("lp", 1_000_000.0, 0, available_cash=1_000_000.0)
    pool.request_unstake("lp", 600_000.0, 0)
    pool.unstake("lp", HOUR_NS)
    assert pool.drawdown_over_window(HOUR_NS) == (0.0, 0.0)
    assert not pool.drawdown_alert(HOUR_NS)


def test_a_stake_raises_the_max_balance_that_scales_the_drawdown() -> None:
    pool = _bybit_pool()
    pool.receive(1_000_000.0, 0, kind="protocol_revenue")
    pool.stake("lp", 1_000_000.0, HOUR_NS, available_cash=1_000_000.0)
    pool.cover(350_000.0, 2 * HOUR_NS)
    assert pool.drawdown_over_window(2 * HOUR_NS) == (350_000.0, 0.175)
    assert not pool.drawdown_alert(2 * HOUR_NS)


def test_no_alert_while_the_balance_is_at_or_below_the_trigger_balance() -> None:
    # "This condition is only effective when the insurance pool balance is greater than this
    # value": a fully drained pool is Bybit's other trigger (balance <= 0), `depleted`.
    pool = _bybit_pool()
    pool.receive(1_000_000.0, 0, kind="protocol_revenue")
    pool.cover(5_000_000.0, HOUR_NS)
    assert pool.drawdown_over_window(HOUR_NS) == (1_000_000.0, 1.0)
    assert not pool.drawdown_alert(HOUR_NS)
    assert pool.depleted


def test_past_times_can_be_queried_from_the_history() -> None:
    pool = _bybit_pool()
    pool.receive(1_000_000.0, 0, kind="protocol_revenue")
    pool.cover(400_000.0, 1 * HOUR_NS)
    pool.receive(400_000.0, 2 * HOUR_NS)
    assert pool.drawdown_alert(1 * HOUR_NS)
    assert not pool.drawdown_alert(2 * HOUR_NS)
    assert pool.drawdown_over_window(-1) == (0.0, 0.0)


def test_the_window_length_is_configurable() -> None:
    pool = InsuranceFund("X", protocol_share=0.0, unstake_cooldown_s=0.0, drawdown_window_s=3_600.0)
    pool.receive(100.0, 0, kind="protocol_revenue")
    pool.cover(40.0, 1)
    assert pool.drawdown_alert(HOUR_NS)
    assert not pool.drawdown_alert(HOUR_NS + 1)
