"""Insurance fund staking: Drift's worked example, fee split, losses, cooldown, unstake rules.

Source of the rules and numbers: Drift Protocol v2 docs, "Insurance Fund Staking",
https://docs.drift.trade/insurance-fund/insurance-fund-staking (source file
drift-labs/drift-docs-v2, pages/insurance-fund/insurance-fund-staking.mdx), and the program
drift-labs/protocol-v2, programs/drift/src/controller/insurance.rs.
"""

from __future__ import annotations

import re

import pytest

from deleverage.engine.insurance_fund import FlowKind, InsuranceFund
from deleverage.errors import (
    CooldownError,
    InsufficientFundsError,
    StateError,
    UnknownEntityError,
    ValidationError,
)
from deleverage.venues.drift import UNSTAKE_COOLDOWN_S as DRIFT_UNSTAKE_COOLDOWN_S

HOUR_NS = 3_600 * 10**9
DAY_NS = 24 * HOUR_NS
COOLDOWN_S = 100.0
S_NS = 10**9


def _fund(protocol_share: float = 0.0, cooldown_s: float = COOLDOWN_S) -> InsuranceFund:
    return InsuranceFund("BTC-PERP", protocol_share=protocol_share, unstake_cooldown_s=cooldown_s)


# --- Drift's worked example ------------------------------------------------------------------
#
# Quoted from the docs: "The Insurance Fund is at $5000 USDC. You decide to stake $10,000 USDC,
# bringing the total to $15,000 USDC. Your proportionate share of the Revenue Pool paid every
# hour for stakers would be 10000/15000 = 66.6%. Each hour, as the revenue pool settles fees
# earned to the Insurance Fund, let's say $30. Half of this is reserved for the protocol, while
# the other half is designated for stakers, making the staker payout $15. You will receive
# 66.6% of the payout ($10) and the remaining Insurance Fund stakers would receive 33.3% ($5)."


def test_drift_example_you_earn_10_and_the_other_stakers_5_of_a_30_settlement() -> None:
    # Arrange: the $5,000 already in the fund belongs to "the remaining Insurance Fund stakers".
    fund = _fund(protocol_share=0.5, cooldown_s=DRIFT_UNSTAKE_COOLDOWN_S)
    fund.stake("others", 5_000.0, 0, available_cash=5_000.0)
    fund.stake("you", 10_000.0, 0, available_cash=10_000.0)
    assert fund.balance == 15_000.0
    assert fund.staker_shares("you") / fund.total_shares == pytest.approx(10_000 / 15_000)
    # Act: one hourly settlement of $30.
    fund.receive(30.0, HOUR_NS, kind="fee_inflow", ref="revenue-pool")
    # Assert
    assert fund.staker_value("you") - 10_000.0 == pytest.approx(10.0, rel=1e-12)
    assert fund.staker_value("others") - 5_000.0 == pytest.approx(5.0, rel=1e-12)
    assert fund.protocol_value == pytest.approx(15.0, rel=1e-12)
    assert fund.balance == 15_030.0


def test_drift_example_with_a_protocol_owned_5000_gives_the_protocol_15_plus_5() -> None:
    # Same numbers, reading the initial $5,000 as the protocol-owned part of the fund.
    fund = _fund(protocol_share=0.5)
    fund.receive(5_000.0, 0, kind="protocol_revenue", ref="seed")
    fund.stake("you", 10_000.0, 0, available_cash=10_000.0)
    fund.receive(30.0, HOUR_NS)
    assert fund.staker_value("you") == pytest.approx(10_010.0, rel=1e-12)
    assert fund.protocol_value == pytest.approx(5_020.0, rel=1e-12)


def test_split_inflow_is_recorded_as_holders_part_then_protocol_cut() -> None:
    fund = _fund(protocol_share=0.5)
    fund.stake("you", 10_000.0, 0, available_cash=10_000.0)
    fund.receive(30.0, HOUR_NS, kind="liquidation_penalty", ref=7)
    *_, holders, protocol = fund.history
    assert (holders.kind, holders.amount, holders.ref) == (FlowKind.LIQUIDATION_PENALTY, 15.0, 7)
    assert (protocol.kind, protocol.amount, protocol.ref) == (FlowKind.PROTOCOL_REVENUE, 15.0, 7)
    assert protocol.balance_after == 10_030.0


# --- fees and losses, pro rata -----------------------------------------------------------------


def test_stakers_earn_fee_inflows_in_proportion_to_their_shares_after_the_protocol_cut() -> None:
    # Arrange: stakes of 1,000, 3,000 and 6,000 at price 1; the protocol takes 20 %.
    fund = _fund(protocol_share=0.2)
    stakes = {"a": 1_000.0, "b": 3_000.0, "c": 6_000.0}
    for staker, amount in stakes.items():
        fund.stake(staker, amount, 0, available_cash=amount)
    # Act: 500 of fees: 100 to the protocol, 400 shared 1:3:6.
    fund.receive(500.0, S_NS)
    # Assert
    for staker, amount in stakes.items():
        assert fund.staker_value(staker) == pytest.approx(amount + 400.0 * amount / 10_000.0)
    assert fund.protocol_value == pytest.approx(100.0)
    assert fund.balance == 10_500.0


def test_a_later_staker_buys_in_at_the_current_price_and_earns_only_later_fees() -> None:
    fund = _fund()
    fund.stake("early", 1_000.0, 0, available_cash=1_000.0)
    fund.receive(1_000.0, S_NS)  # price 2
    shares = fund.stake("late", 1_000.0, 2 * S_NS, available_cash=1_000.0)
    assert shares == pytest.approx(500.0)
    fund.receive(300.0, 3 * S_NS)  # split 2:1 by value (2,000 vs 1,000)
    assert fund.staker_value("early") == pytest.approx(2_200.0)
    assert fund.staker_value("late") == pytest.approx(1_100.0)


def test_stakers_and_protocol_bear_a_covered_shortfall_pro_rata() -> None:
    # Arrange: protocol 2,000, stakers 3,000 and 5,000: 10,000 in all.
    fund = _fund()
    fund.receive(2_000.0, 0, kind="protocol_revenue")
    fund.stake("a", 3_000.0, 0, available_cash=3_000.0)
    fund.stake("b", 5_000.0, 0, available_cash=5_000.0)
    # Act: a 1,500 shortfall is 15 % of the fund.
    paid = fund.cover(1_500.0, S_NS, ref="acct-42")
    # Assert
    assert paid == 1_500.0
    assert fund.protocol_value == pytest.approx(1_700.0)
    assert fund.staker_value("a") == pytest.approx(2_550.0)
    assert fund.staker_value("b") == pytest.approx(4_250.0)
    assert fund.history[-1].amount == -1_500.0


# --- cooldown --------------------------------------------------------------------------------


def test_unstake_before_the_13_day_cooldown_is_refused_with_the_time_left() -> None:
    # Drift: "There is a cooldown period of 13 days for unstaking any collateral".
    fund = _fund(cooldown_s=DRIFT_UNSTAKE_COOLDOWN_S)
    fund.stake("alice", 1_000.0, 0, available_cash=1_000.0)
    fund.request_unstake("alice", 400.0, DAY_NS)
    message = (
        "fund 'BTC-PERP': unstake of staker 'alice' is in cooldown, 3600.000 s left "
        f"(requested at ts_ns={DAY_NS}, cooldown 1123200.000 s)"
    )
    with pytest.raises(CooldownError, match=re.escape(message)):
        fund.unstake("alice", DAY_NS + 13 * DAY_NS - HOUR_NS)


def test_unstake_exactly_when_the_cooldown_ends_pays_out() -> None:
    fund = _fund(cooldown_s=DRIFT_UNSTAKE_COOLDOWN_S)
    fund.stake("alice", 1_000.0, 0, available_cash=1_000.0)
    fund.request_unstake("alice", 400.0, DAY_NS)
    assert fund.unstake("alice", DAY_NS + 13 * DAY_NS) == 400.0
    assert fund.staker_shares("alice") == 600.0
    assert fund.balance == 600.0
    assert fund.pending_unstake("alice") is None


def test_a_refused_unstake_leaves_the_fund_unchanged() -> None:
    fund = _fund()
    fund.stake("alice", 1_000.0, 0, available_cash=1_000.0)
    fund.request_unstake("alice", 400.0, 0)
    before = fund.snapshot()
    with pytest.raises(CooldownError):
        fund.unstake("alice", 99 * S_NS)
    assert fund.snapshot() == before


# --- min(value at request, value now) --------------------------------------------------------


def _two_stakers_with_a_request() -> InsuranceFund:
    fund = _fund()
    fund.stake("a", 1_000.0, 0, available_cash=1_000.0)
    fund.stake("b", 1_000.0, 0, available_cash=1_000.0)
    value = fund.request_unstake("a", 500.0, 0)
    assert value == 500.0
    return fund


def test_unstake_after_a_gain_pays_the_value_at_request_and_leaves_the_gain_behind() -> None:
    # Arrange: +200 of fees during the cooldown: price 1.1, the 500 requested shares are
    # worth 550 but were worth 500 at the request.
    fund = _two_stakers_with_a_request()
    fund.receive(200.0, 10 * S_NS)
    assert fund.withdrawable_value("a") == pytest.approx(550.0 + 500.0)
    # Act
    paid = fund.unstake("a", 100 * S_NS)
    # Assert: the forgone 50 goes to the remaining 1,500 shares (a's free 500 and b's 1,000).
    assert paid == 500.0
    assert fund.balance == pytest.approx(1_700.0)
    assert fund.staker_value("a") == pytest.approx(550.0 + 50.0 / 3.0)
    assert fund.staker_value("b") == pytest.approx(1_100.0 + 100.0 / 3.0)


def test_unstake_after_a_loss_pays_the_lower_value_now() -> None:
    # Arrange: a 400 shortfall during the cooldown: price 0.8.
    fund = _two_stakers_with_a_request()
    fund.cover(400.0, 10 * S_NS)
    # Act
    paid = fund.unstake("a", 100 * S_NS)
    # Assert
    assert paid == pytest.approx(400.0)
    assert fund.staker_value("a") == pytest.approx(400.0)
    assert fund.staker_value("b") == pytest.approx(800.0)


def test_unstake_record_carries_the_payment_and_the_burned_shares() -> None:
    fund = _two_stakers_with_a_request()
    fund.unstake("a", 100 * S_NS)
    record = fund.history[-1]
    assert (record.kind, record.amount, record.ref, record.shares) == (
        FlowKind.UNSTAKE,
        -500.0,
        "a",
        -500.0,
    )


def test_cancel_after_a_gain_forfeits_it_to_the_other_holders() -> None:
    # Drift: "if a user wishes to cancel the unstake request, they forgo any gains made during
    # the unstake request period ... split amongst the current stakers upon cancellation."
    fund = _two_stakers_with_a_request()
    fund.receive(200.0, 10 * S_NS)  # price 1.1: the requested part is worth 550 for 500
    lost = fund.cancel_unstake("a", 20 * S_NS)
    assert lost > 0.0
    # The requested part is worth 500 again; the 50 went to a's free part and to b, 1:2.
    assert fund.staker_value("a") == pytest.approx(500.0 + 550.0 + 50.0 / 3.0)
    assert fund.staker_value("b") == pytest.approx(1_100.0 + 100.0 / 3.0)
    assert fund.pending_unstake("a") is None
    assert fund.balance == 2_200.0


def test_cancel_after_a_loss_keeps_every_share() -> None:
    fund = _two_stakers_with_a_request()
    fund.cover(400.0, 10 * S_NS)
    assert fund.cancel_unstake("a", 20 * S_NS) == 0.0
    assert fund.staker_shares("a") == 1_000.0


def test_a_lone_staker_who_cancels_hands_the_gain_to_the_protocol() -> None:
    fund = _fund()
    fund.stake("solo", 1_000.0, 0, available_cash=1_000.0)
    fund.request_unstake("solo", 1_000.0, 0)
    fund.receive(100.0, S_NS)
    fund.cancel_unstake("solo", 2 * S_NS)
    assert fund.staker_value("solo") == pytest.approx(1_000.0)
    assert fund.protocol_value == pytest.approx(100.0)


def test_the_last_staker_out_leaves_a_forgone_gain_to_the_protocol() -> None:
    fund = _fund()
    fund.stake("solo", 1_000.0, 0, available_cash=1_000.0)
    fund.request_unstake("solo", 1_000.0, 0)
    fund.receive(100.0, S_NS)
    assert fund.unstake("solo", 200 * S_NS) == 1_000.0
    assert fund.stakers == ()
    assert fund.balance == pytest.approx(100.0)
    assert fund.protocol_value == pytest.approx(100.0)
    fund.check_invariants()


# --- refusals ---------------------------------------------------------------------------------


def test_stake_beyond_the_available_cash_is_refused_and_changes_nothing() -> None:
    fund = _fund()
    fund.stake("alice", 100.0, 0, available_cash=100.0)
    before = fund.snapshot()
    with pytest.raises(InsufficientFundsError, match=r"stake of 150.0 .* available cash 100.0"):
        fund.stake("alice", 150.0, S_NS, available_cash=100.0)
    assert fund.snapshot() == before


def test_stake_while_an_unstake_request_is_pending_is_refused() -> None:
    fund = _fund()
    fund.stake("alice", 100.0, 0, available_cash=100.0)
    fund.request_unstake("alice", 50.0, 0)
    with pytest.raises(StateError, match="pending unstake request"):
        fund.stake("alice", 10.0, S_NS, available_cash=10.0)


def test_a_second_request_while_one_is_pending_is_refused() -> None:
    fund = _fund()
    fund.stake("alice", 100.0, 0, available_cash=100.0)
    fund.request_unstake("alice", 50.0, 0)
    with pytest.raises(StateError, match="already has a pending unstake request"):
        fund.request_unstake("alice", 10.0, S_NS)


def test_requesting_more_shares_than_held_is_refused() -> None:
    fund = _fund()
    fund.stake("alice", 100.0, 0, available_cash=100.0)
    with pytest.raises(ValidationError, match=r"`shares` must be <= the staker's 100.0 shares"):
        fund.request_unstake("alice", 100.5, 0)


def test_unstake_or_cancel_without_a_request_is_refused() -> None:
    fund = _fund()
    fund.stake("alice", 100.0, 0, available_cash=100.0)
    with pytest.raises(StateError, match="no pending unstake request"):
        fund.unstake("alice", S_NS)
    with pytest.raises(StateError, match="no pending unstake request"):
        fund.cancel_unstake("alice", S_NS)


def test_an_unknown_staker_is_named_with_the_known_ones() -> None:
    fund = _fund()
    fund.stake("alice", 100.0, 0, available_cash=100.0)
    with pytest.raises(UnknownEntityError, match=r"unknown staker 'bob'; known: 'alice'"):
        fund.request_unstake("bob", 1.0, 0)


@pytest.mark.parametrize("amount", [0.0, -5.0, float("nan"), float("inf")])
def test_stake_of_a_non_positive_or_non_finite_amount_is_refused(amount: float) -> None:
    fund = _fund()
    with pytest.raises(ValidationError) as info:
        fund.stake("alice", amount, 0, available_cash=1e9)
    assert info.value.field == "amount"


def test_integer_staker_ids_work_like_account_indexes() -> None:
    fund = _fund()
    fund.stake(17, 100.0, 0, available_cash=100.0)
    fund.request_unstake(17, 100.0, 0)
    assert fund.unstake(17, 100 * S_NS) == 100.0
