"""Funding: the premium rule and the engine's settlement."""

from __future__ import annotations

import math

import numpy as np
import pytest

from deleverage import Exchange, MarginMode, MarketSpec
from deleverage.engine.events import FundingPayment
from deleverage.errors import StateError, ValidationError
from deleverage.sim.funding import premium_funding_rate

S = 1_000_000_000


def test_premium_rule_follows_binances_formula() -> None:
    # F = P + clamp(I - P, -0.05%, 0.05%), I = 0.01%:
    assert premium_funding_rate(100.0, 100.0) == pytest.approx(0.0001)  # parity: I
    assert premium_funding_rate(100.03, 100.0) == pytest.approx(0.0001)  # |I - P| < clamp: I
    assert premium_funding_rate(101.0, 100.0) == pytest.approx(0.01 - 0.0005)
    assert premium_funding_rate(99.0, 100.0) == pytest.approx(-0.01 + 0.0005)
    assert premium_funding_rate(110.0, 100.0, cap=0.02) == pytest.approx(0.02)


def test_premium_rule_rejects_bad_prices_naming_them() -> None:
    with pytest.raises(ValidationError, match="index"):
        premium_funding_rate(100.0, 0.0)
    with pytest.raises(ValidationError, match="mark"):
        premium_funding_rate(math.nan, 100.0)


def _venue() -> tuple[Exchange, int, int, int]:
    ex = Exchange(check_invariants=True)
    m = ex.list_market(MarketSpec.simple("BTCUSDT", max_leverage=20.0, maintenance_rate=0.025))
    ex.set_mark(m, 100.0)
    long_ = ex.open_account(margin_mode=MarginMode.ISOLATED)
    short = ex.open_account()
    ex.deposit(long_, 1_000.0)
    ex.deposit(short, 1_000.0)
    ex.trade(m, buyer=long_, seller=short, size=2.0, price=100.0)
    return ex, m, long_, short


def test_longs_pay_shorts_a_positive_rate_and_money_is_conserved() -> None:
    # Arrange: long 2 (isolated) vs short 2 (cross) at mark 100; rate 0.1% -> 0.2 each way.
    ex, m, long_, short = _venue()
    margin_before = ex.position(long_, m).isolated_margin
    cash_before = ex.cash(short)

    # Act
    paid = ex.settle_funding(m, 0.001, ts_ns=S)

    # Assert
    assert paid[long_] == pytest.approx(-0.2)
    assert paid[short] == pytest.approx(0.2)
    assert ex.position(long_, m).isolated_margin == pytest.approx(margin_before - 0.2)
    assert ex.cash(short) == pytest.approx(cash_before + 0.2)
    assert float(np.sum(paid)) == pytest.approx(0.0, abs=1e-12)
    assert ex.conservation().holds
    events = ex.journal.events(FundingPayment)
    assert {e.account for e in events if isinstance(e, FundingPayment)} == {long_, short}
    assert Exchange.replay(ex.journal).state_hash() == ex.state_hash()


def test_funding_that_breaches_maintenance_liquidates_at_once() -> None:
    # A 20x isolated long holds 10 of margin on 200 of notional (maintenance 5): a funding
    # payment of 6 leaves 4 < 5, so the same call's risk step liquidates it.
    ex = Exchange(check_invariants=True)
    m = ex.list_market(MarketSpec.simple("BTCUSDT", max_leverage=20.0, maintenance_rate=0.025))
    ex.set_mark(m, 100.0)
    a = ex.open_account(margin_mode=MarginMode.ISOLATED)
    ex.deposit(a, 10.5)
    ex.trade(m, buyer=a, seller=ex.liquidity_account, size=2.0, price=100.0, taker=None)

    ex.settle_funding(m, 0.03, ts_ns=S)

    assert ex.last_step.liquidations == 1
    assert ex.position(a, m).size == 0.0
    assert ex.conservation().holds


def test_settlement_rejects_bad_rates_and_leaves_state_unchanged() -> None:
    ex, m, _, _ = _venue()
    before = (ex.state_hash(), len(ex.journal))
    for bad in (math.nan, 1.5, -1.0):
        with pytest.raises(ValidationError, match="rate"):
            ex.settle_funding(m, bad, ts_ns=S)
    assert (ex.state_hash(), len(ex.journal)) == before
    fresh = Exchange()
    fresh.list_market(MarketSpec.simple("ETHUSDT"))
    with pytest.raises(StateError, match="mark"):
        fresh.settle_funding(0, 0.001)
