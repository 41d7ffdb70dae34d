"""Regression: the liquidator execution path hid an underwater position's loss (issue 12).

dydx_v4 preset, a 50x long of 1 BTC at 100,000 whose mark gaps to 90,000: its bankruptcy
price is 98,000. Before the fix it was sold to the liquidator at the bankruptcy price (the
fillable price was clamped to it): shortfall 0, insurance paid 0, and the liquidator holding
-8,000. dYdX v4 (dydxprotocol/v4-chain@84d4664, protocol/x/clob/keeper/liquidations.go,
GetFillablePrice and GetLiquidationInsuranceFundDelta) sells at the fillable price
90,000 - 1 x 1.5 x 1,080 = 88,380 (ABR = 1 at negative net collateral, SMMR 1.5, PMMR 1.2% of
90,000) and the fund pays 98,000 - 88,380 = 9,620; when it cannot, the account is deleveraged
at 98,000 against the short (deleveraging.go).
"""

from __future__ import annotations

import math

import pytest

from deleverage import Exchange
from deleverage.engine.events import AdlRound, Fill, FillReason, Liquidation
from deleverage.venues import preset


def _crash(fund: float) -> tuple[Exchange, int, int]:
    ex = Exchange()
    m = ex.list_market(preset("dydx_v4", "BTC"))
    ex.set_mark(m, 100_000.0)
    if fund:
        ex.deposit(ex.insurance_account, fund)
    a, b = ex.open_account(), ex.open_account()
    ex.deposit(a, 2_050.0)  # 2,000 initial margin at 50x and the 50 taker fee
    ex.deposit(b, 1_000_000.0)
    ex.trade(m, buyer=a, seller=b, size=1.0, price=100_000.0)
    ex.set_mark(m, 90_000.0, ts_ns=10**9)
    return ex, a, b


def test_fund_pays_the_fill_beyond_bankruptcy() -> None:
    # The preset liquidates at most 10% of a position per block (max_position_portion) and at
    # least 1,000 USDC of notional (min_position_notional): 0.1 BTC at the first step, 10% of
    # what is left at each next one, each slice at 88,380 with the fund paying its share of
    # the 9,620, until the rest is under the minimum and closes whole.
    ex, a, _ = _crash(1_000_000.0)
    step = ex.last_step
    assert step.shortfall == pytest.approx(962.0)
    assert step.insurance_paid == pytest.approx(962.0)
    paid = step.insurance_paid
    steps = 1
    while ex.position(a, 0).size != 0.0 and steps < 100:
        steps += 1
        ex.set_mark(0, 90_000.0, ts_ns=steps * 10**9)
        paid += ex.last_step.insurance_paid
    liq = [e for e in ex.events() if isinstance(e, Liquidation)]
    assert len(liq) == steps
    # dYdX's position block limit (GetLiquidatablePositionSizeDelta): the notional cap is
    # max(min(1,000, N), 10% of N), the whole position once N is within it, else the cap in
    # base units rounded down to the 0.0001 step.
    left = 1.0
    for event in liq:
        notional = left * 90_000.0
        cap = max(min(1_000.0, notional), 0.10 * notional)
        expected = left if notional <= cap else math.floor(cap / 90_000.0 / 1e-4 + 1e-9) * 1e-4
        assert abs(event.size) == pytest.approx(expected, rel=1e-9)
        left -= abs(event.size)
    assert all(e.price == pytest.approx(88_380.0) for e in liq)
    assert liq[0].bankruptcy_price == pytest.approx(98_000.0)
    assert paid == pytest.approx(9_620.0)
    assert float(ex._cash[ex.insurance_account]) == pytest.approx(1_000_000.0 - 9_620.0)
    assert ex.account_margins(a).total_equity == pytest.approx(0.0, abs=1e-6)
    # The liquidator bought at 88,380 with the mark at 90,000: it gains, never holds a loss.
    assert ex.account_margins(ex.liquidator_account).total_equity == pytest.approx(1_620.0)
    assert ex.conservation().holds


def test_empty_fund_deleverages_at_bankruptcy_price() -> None:
    ex, a, b = _crash(0.0)
    step = ex.last_step
    fills = [e for e in ex.events() if isinstance(e, Fill) and e.reason == FillReason.ADL]
    assert [(f.buyer, f.seller, f.size, f.price) for f in fills] == [(b, a, 1.0, 98_000.0)]
    rounds = [e for e in ex.events() if isinstance(e, AdlRound)]
    assert rounds[0].amount == pytest.approx(8_000.0)  # the loss the short took at the mark
    assert step.adl_rounds == 1
    assert step.insurance_paid == 0.0
    assert step.bad_debt == 0.0
    assert not any(
        e for e in ex.events() if isinstance(e, Fill) and e.reason == FillReason.LIQUIDATOR_TAKEOVER
    )
    assert ex.account_margins(ex.liquidator_account).total_equity == 0.0
    assert ex.account_margins(a).total_equity == pytest.approx(0.0, abs=1e-9)
    assert ex.conservation().holds


def test_replay_reproduces_the_liquidation() -> None:
    ex, _, _ = _crash(1_000_000.0)
    again = Exchange.replay(ex.journal)
    n = ex.n_accounts
    assert (again._cash[:n] == ex._cash[:n]).all()
