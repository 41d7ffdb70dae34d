"""Insurance fund staking through the exchange, with liquidation inflows and covered losses.

Drift, "Insurance Fund Staking" (https://docs.drift.trade/insurance-fund/insurance-fund-staking):
"each revenue settlement is split between Insurance Fund Stakers and a protocol-owned portion";
worked example: stakers of $10,000 ("you") and $5,000 ("others"), a $30 settlement with half to
the protocol: the other $15 is shared 10:5, so you hold $10,010 and the others $5,005. Stakers
bear covered losses pro rata; unstaking waits a cooldown (13 days at Drift).
"""

from __future__ import annotations

import pytest

from deleverage import Exchange, MarginMode, MarketSpec
from deleverage.engine.events import Transfer, TransferReason
from deleverage.errors import CooldownError, InsufficientFundsError, StateError
from deleverage.liquidity import ConstantDepthBook

S = 1_000_000_000
COOLDOWN_S = 100.0


def _venue(*, protocol_share: float = 0.0) -> tuple[Exchange, int]:
    ex = Exchange(
        check_invariants=True,
        insurance_protocol_share=protocol_share,
        unstake_cooldown_s=COOLDOWN_S,
    )
    spec = MarketSpec.simple(
        "BTCUSDT", max_leverage=20.0, maintenance_rate=0.025, maker_fee_rate=0.0,
        taker_fee_rate=0.0, liquidation_fee_rate=0.005,
    )  # fmt: skip
    m = ex.list_market(spec)
    ex.set_mark(m, 100.0)
    return ex, m


def _staker(ex: Exchange, amount: float) -> int:
    s = ex.open_account()
    ex.deposit(s, amount)
    ex.stake(s, amount)
    return s


def _long(ex: Exchange, m: int, *, size: float, price: float, cash: float) -> int:
    a = ex.open_account(margin_mode=MarginMode.ISOLATED)
    ex.deposit(a, cash)
    ex.trade(m, buyer=a, seller=ex.liquidity_account, size=size, price=price)
    return a


def test_stake_moves_cash_into_the_insurance_account() -> None:
    ex, _ = _venue()
    you = ex.open_account()
    ex.deposit(you, 10_000.0)
    start = len(ex.journal)

    shares = ex.stake(you, 10_000.0)

    # The first stake mints at price 1.
    assert shares == pytest.approx(10_000.0)
    assert ex.cash(you) == 0.0
    assert ex.cash(ex.insurance_account) == pytest.approx(10_000.0)
    assert ex.insurance_fund().balance == pytest.approx(10_000.0)
    assert ex.insurance_fund().staker_value(you) == pytest.approx(10_000.0)
    (transfer,) = [
        e for e in ex.journal.events(Transfer) if isinstance(e, Transfer) and e.seq >= start
    ]
    assert transfer.reason == TransferReason.STAKE
    assert (transfer.source, transfer.destination) == (you, ex.insurance_account)


def test_liquidation_penalty_raises_stakers_value_as_in_drifts_example() -> None:
    # Arrange: Drift's stakers and a protocol share of one half.
    ex, m = _venue(protocol_share=0.5)
    you = _staker(ex, 10_000.0)
    others = _staker(ex, 5_000.0)
    # A long of 62.5 at 100 with 312.5 of margin (20x). At 96: equity 312.5 - 250 = 62.5 <
    # maintenance 2.5% x 6,000 = 150; penalty 0.5% x 6,000 = 30 <= 62.5: a $30 inflow.
    _long(ex, m, size=62.5, price=100.0, cash=312.5)

    # Act
    ex.set_mark(m, 96.0, ts_ns=3_600 * S)

    # Assert: 15 to the protocol, 15 shared 10:5.
    fund = ex.insurance_fund()
    assert ex.last_step.penalties == pytest.approx(30.0)
    assert fund.staker_value(you) == pytest.approx(10_010.0)
    assert fund.staker_value(others) == pytest.approx(5_005.0)
    assert fund.protocol_value == pytest.approx(15.0)
    assert fund.balance == pytest.approx(ex.cash(ex.insurance_account))


def test_covered_shortfall_lowers_stakers_value_pro_rata() -> None:
    # Arrange: 10,000 and 5,000 staked (2:1). A long of 500 at 1.0 with 100 of margin (5x);
    # at 0.801 a thin book fills the 500 at 0.77 (dYdX's contract-loss example), leaving a
    # shortfall of (0.800 - 0.77) x 500 = 15 for the fund (see the liquidation examples).
    ex = Exchange(check_invariants=True, unstake_cooldown_s=COOLDOWN_S)
    m = ex.list_market(
        MarketSpec.simple(
            "ABCUSD", max_leverage=20.0, maintenance_rate=0.03, tick_size=0.001, lot_size=1.0,
            maker_fee_rate=0.0, taker_fee_rate=0.0, liquidation_fee_rate=0.015,
        )
    )  # fmt: skip
    ex.set_mark(m, 1.0)
    you = _staker(ex, 10_000.0)
    others = _staker(ex, 5_000.0)
    a = ex.open_account(margin_mode=MarginMode.ISOLATED)
    ex.deposit(a, 100.0)
    ex.set_leverage(a, m, 5.0)
    ex.trade(m, buyer=a, seller=ex.liquidity_account, size=500.0, price=1.0)
    depth = 500.0 * 0.801 / (2.0 * (0.801 - 0.77))
    ex.set_liquidity(m, ConstantDepthBook(depth_per_pct=depth / 100.0, half_life_s=60.0))

    # Act
    ex.set_mark(m, 0.801, ts_ns=1 * S)

    # Assert: 15 lost, 10 by you and 5 by the others.
    fund = ex.insurance_fund()
    assert ex.last_step.insurance_paid == pytest.approx(15.0, rel=1e-9)
    assert fund.staker_value(you) == pytest.approx(10_000.0 - 10.0, rel=1e-12)
    assert fund.staker_value(others) == pytest.approx(5_000.0 - 5.0, rel=1e-12)
    assert fund.balance == pytest.approx(ex.cash(ex.insurance_account), rel=1e-12)


def test_unstake_pays_after_the_cooldown() -> None:
    ex, _ = _venue()
    you = _staker(ex, 10_000.0)
    ex.request_unstake(you, 4_000.0, ts_ns=1 * S)

    paid = ex.unstake(you, ts_ns=1 * S + int(COOLDOWN_S * S))

    assert paid == pytest.approx(4_000.0)
    assert ex.cash(you) == pytest.approx(4_000.0)
    assert ex.cash(ex.insurance_account) == pytest.approx(6_000.0)


def test_unstake_before_the_cooldown_raises_and_changes_nothing() -> None:
    ex, _ = _venue()
    you = _staker(ex, 10_000.0)
    ex.request_unstake(you, 4_000.0, ts_ns=1 * S)
    before, events = ex.state_hash(), len(ex.journal)
    fund_before = ex.insurance_fund().snapshot()

    with pytest.raises(CooldownError, match="cooldown"):
        ex.unstake(you, ts_ns=50 * S)

    assert ex.state_hash() == before
    assert len(ex.journal) == events
    assert ex.insurance_fund().snapshot() == fund_before
    assert ex.insurance_fund().pending_unstake(you) is not None


def test_unstake_without_a_request_raises_and_changes_nothing() -> None:
    ex, _ = _venue()
    you = _staker(ex, 10_000.0)
    before, events = ex.state_hash(), len(ex.journal)

    with pytest.raises(StateError):
        ex.unstake(you, ts_ns=1_000 * S)

    assert ex.state_hash() == before
    assert len(ex.journal) == events


def test_stake_beyond_withdrawable_cash_raises_and_changes_nothing() -> None:
    # 1,000 of cash, of which 500 backs a cross position's initial margin (0.1 at 100,000,
    # 20x = 500): withdrawable 500, so a stake of 600 is refused, and so is 1,001.
    ex, m = _venue()
    ex.set_mark(m, 100_000.0)
    a = ex.open_account()
    ex.deposit(a, 1_000.0)
    ex.trade(m, buyer=a, seller=ex.liquidity_account, size=0.1, price=100_000.0)
    before, events = ex.state_hash(), len(ex.journal)
    fund_before = ex.insurance_fund().snapshot()

    for amount in (600.0, 1_001.0):
        with pytest.raises(InsufficientFundsError):
            ex.stake(a, amount)

    assert ex.state_hash() == before
    assert len(ex.journal) == events
    assert ex.insurance_fund().snapshot() == fund_before

    # 500 fits exactly.
    ex.stake(a, 500.0)
    assert ex.insurance_fund().staker_value(a) == pytest.approx(500.0)
