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
    ex, a, _ = _crash(1_000_000.0)
    step = ex.last_step
    liq = [e for e in ex.events() if isinstance(e, Liquidation)]
    assert len(liq) == 1
    assert liq[0].price == pytest.approx(88_380.0)
    assert liq[0].bankruptcy_price == pytest.approx(98_000.0)
    assert step.shortfall == pytest.approx(9_620.0)
    assert step.insurance_paid == pytest.approx(9_620.0)
    assert step.bad_debt == 0.0
    assert float(ex._cash[ex.insurance_account]) == pytest.approx(1_000_000.0 - 9_620.0)
    assert ex.account_margins(a).total_equity == pytest.approx(0.0, abs=1e-9)
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
