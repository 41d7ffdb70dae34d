"""Bad debt is explicit: what no fund, backstop, ADL or socialization covers is a BadDebt notice
equal to a negative balance left on the books (DESIGN.md, "Money must add up").
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from deleverage import Exchange, MarginMode, MarketSpec
from deleverage.engine.events import BadDebt, Fill, FillReason

S = 1_000_000_000


def _venue(**fields: Any) -> tuple[Exchange, int]:
    ex = Exchange(check_invariants=True)
    spec = MarketSpec.simple(
        "BTCUSDT", max_leverage=20.0, maintenance_rate=0.025, maker_fee_rate=0.0,
        taker_fee_rate=0.0, liquidation_fee_rate=0.005, **fields,
    )  # fmt: skip
    m = ex.list_market(spec)
    ex.set_mark(m, 100_000.0)
    return ex, m


def _bad_debt(ex: Exchange) -> dict[int, float]:
    out: dict[int, float] = {}
    for e in ex.journal.events(BadDebt):
        assert isinstance(e, BadDebt)
        out[e.account] = out.get(e.account, 0.0) + e.amount
    return out


@pytest.mark.parametrize("mode", [MarginMode.ISOLATED, MarginMode.CROSS])
def test_uncovered_shortfall_is_declared_and_left_as_the_accounts_negative_balance(
    mode: MarginMode,
) -> None:
    # 0.2 BTC long, margin 1,000 and nothing else; at 94,000 equity is 1,000 - 1,200 = -200.
    # Empty fund, no opposing trader (the book is the only other side): sold at the mark,
    # 200 uncovered.
    ex, m = _venue()
    a = ex.open_account(margin_mode=mode)
    ex.deposit(a, 1_000.0)
    ex.trade(m, buyer=a, seller=ex.liquidity_account, size=0.2, price=100_000.0)

    ex.set_mark(m, 94_000.0, ts_ns=1 * S)

    assert ex.last_step.bad_debt == pytest.approx(200.0)
    assert _bad_debt(ex) == {a: pytest.approx(200.0)}
    conservation = ex.conservation()
    if mode == MarginMode.CROSS:  # the account's wallet was its collateral: it keeps the hole
        assert ex.cash(a) == pytest.approx(-200.0)
        assert conservation.negative_equity == pytest.approx(200.0)
    else:  # isolated: the loss stops at the margin; the venue's bad-debt account holds it
        assert ex.cash(a) == pytest.approx(0.0, abs=1e-9)
        assert conservation.negative_equity_bad_debt == pytest.approx(200.0)
    assert conservation.holds

    # Declared once: later steps do not declare it again.
    ex.set_mark(m, 94_000.0, ts_ns=2 * S)
    ex.set_mark(m, 93_000.0, ts_ns=3 * S)
    assert _bad_debt(ex) == {a: pytest.approx(200.0)}


def test_bad_debt_of_an_isolated_position_equals_the_negative_balance_left() -> None:
    # Same position, plus 500 of cross cash outside it. The cross cash is untouched
    # (Hyperliquid: for an isolated position "the user's cross margin and positions are
    # untouched") and -200 is left on the venue's bad-debt account; the notice equals the
    # negative balance.
    ex, m = _venue()
    a = ex.open_account(margin_mode=MarginMode.ISOLATED)
    ex.deposit(a, 1_500.0)
    ex.trade(m, buyer=a, seller=ex.liquidity_account, size=0.2, price=100_000.0)

    ex.set_mark(m, 94_000.0, ts_ns=1 * S)

    declared = sum(_bad_debt(ex).values())
    conservation = ex.conservation()
    assert declared == pytest.approx(200.0)
    assert ex.cash(a) == pytest.approx(500.0)
    assert conservation.negative_equity == 0.0
    assert declared == pytest.approx(conservation.negative_equity_bad_debt, abs=1e-9)


def test_bad_debt_with_isolated_recourse_is_taken_from_the_accounts_other_cash_first() -> None:
    # The explicit policy: the 500 of cross cash pays first, 200 - 500 < 0: no bad debt.
    ex, m = _venue(liquidation={"isolated_recourse": True})
    a = ex.open_account(margin_mode=MarginMode.ISOLATED)
    ex.deposit(a, 1_500.0)
    ex.trade(m, buyer=a, seller=ex.liquidity_account, size=0.2, price=100_000.0)

    ex.set_mark(m, 94_000.0, ts_ns=1 * S)

    assert _bad_debt(ex) == {}
    assert ex.cash(a) == pytest.approx(300.0)
    assert ex.last_step.shortfall == 0.0  # within the collateral (margin plus other cash)


def _capped_crash() -> tuple[Exchange, int, int, int]:
    # 10x market (MMR 5%), at most 20,000 of notional liquidated per step, empty fund.
    # Bankrupt: isolated short 17.75 at 1,000 with 1,775 of margin. Counterparty: isolated
    # long 2 at 1,000 with 200 of margin (profitable when the price rises).
    ex = Exchange(check_invariants=True)
    m = ex.list_market(
        MarketSpec.simple(
            "BTCUSDT", max_leverage=10.0, maintenance_rate=0.05, maker_fee_rate=0.0,
            taker_fee_rate=0.0, liquidation_fee_rate=0.0,
            liquidation={"max_notional_per_market_step": 20_000.0},
        )
    )  # fmt: skip
    ex.set_mark(m, 1_000.0)
    short, long_ = ex.open_accounts(2, margin_mode=MarginMode.ISOLATED).tolist()
    ex.deposit_many([short, long_], np.array([1_775.0, 200.0]))
    ex.open_positions(
        m, [short, long_], np.array([-17.75, 2.0]), np.full(2, 1_000.0), leverage=[10.0, 10.0]
    )
    return ex, m, short, long_


def test_capped_liquidation_of_a_bankrupt_position_reports_the_loss_it_realizes() -> None:
    # At 1,200 the short's equity is 1,775 - 17.75 x 200 = -1,775. The cap closes
    # 20,000 / 1,200 = 16.667, realizing 16.667 x -200 = -3,333 against 1,775 of margin.
    ex, m, short, _ = _capped_crash()

    ex.set_mark(m, 1_200.0, ts_ns=1 * S)

    margin = ex.position(short, m).isolated_margin
    reported = ex.last_step.shortfall + ex.last_step.bad_debt
    assert margin >= 0.0 or reported > 0.0


def test_adl_never_leaves_a_solvent_counterparty_with_negative_equity() -> None:
    # After the capped close above, the remaining 1.083 short carries the whole -1,775, so its
    # bankruptcy price is below zero. (ADL used to buy the long's position at a clamped price
    # of 0, making the solvent long bankrupt: fixed, the price now stops at the long's own
    # bankruptcy price.)
    ex, m, short, long_ = _capped_crash()
    ex.set_mark(m, 1_200.0, ts_ns=1 * S)
    start = len(ex.journal)

    ex.set_mark(m, 1_200.0, ts_ns=2 * S)

    fills = [f for f in ex.journal.events(Fill) if isinstance(f, Fill) and f.seq >= start]
    adl = [f for f in fills if f.reason == FillReason.ADL]
    assert all(f.price > 0.0 for f in adl)
    assert ex.account_margins(long_).total_equity >= 0.0
    declared = _bad_debt(ex)
    negative = {
        a: -ex.account_margins(a).total_equity
        for a in (short, long_)
        if ex.account_margins(a).total_equity < 0.0
    }
    assert all(declared.get(a, 0.0) >= owed - 1e-9 for a, owed in negative.items())
