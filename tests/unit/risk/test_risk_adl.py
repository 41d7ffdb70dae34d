"""Automated deleveraging and socialized loss, when the insurance fund cannot pay a shortfall.

Expected numbers are worked by hand in the comments. Sources:

- dYdX v4, "Contract Loss Mechanisms" (deleveraging example: A long 500 at $1, B short 500 at
  $1, price to $2, B's bankruptcy price $1.2, A closed at $1.2 with a $100 profit, B left at
  $0): https://dydx-documentation-six.vercel.app/concepts/trading/contract-loss-mechanism
- dYdX v4 deleveraging walks offsetting subaccounts from a random start:
  https://github.com/dydxprotocol/v4-chain/blob/main/protocol/x/clob/keeper/deleveraging.go
- BitMEX ADL ranking (profit percentage x effective leverage), as in
  :func:`deleverage.rules.adl.score_pnl_leverage`: https://www.bitmex.com/app/autoDeleveraging
- Drift socializes a bankrupt perp's loss over open interest through the funding rate:
  https://github.com/drift-labs/protocol-v2/blob/master/programs/drift/src/controller/liquidation.rs
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest

from deleverage import Exchange, MarginMode, MarketSpec
from deleverage.engine.events import AdlRound, BadDebt, Fill, FillReason, Transfer, TransferReason

S = 1_000_000_000
QUEUE_RANKINGS = ["pnl_leverage", "binance", "hyperliquid", "risk_score", "random_start"]
ALL_ADL = [*QUEUE_RANKINGS, "pro_rata"]


def _new(ex: Exchange, start: int, kind: type[Any]) -> list[Any]:
    return [e for e in ex.journal.events(kind) if e.seq >= start]


def _equity(ex: Exchange, a: int) -> float:
    return ex.account_margins(a).total_equity


# ---------------------------------------------------------------------------- dYdX example


def _dydx_pair(ranking: str, *, fund: float = 0.0) -> tuple[Exchange, int, int, int]:
    """dYdX's example: A long 500 ABC at $1, B short 500 at $1, each with $100."""
    ex = Exchange(check_invariants=True)
    spec = MarketSpec.simple(
        "ABCUSD", max_leverage=10.0, maintenance_rate=0.03, tick_size=0.001, lot_size=1.0,
        maker_fee_rate=0.0, taker_fee_rate=0.0, liquidation_fee_rate=0.0,
        adl={"ranking": ranking},
    )  # fmt: skip
    m = ex.list_market(spec)
    ex.set_mark(m, 1.0)
    if fund > 0:
        ex.deposit(ex.insurance_account, fund)
    a, b = ex.open_account(), ex.open_account()
    ex.deposit(a, 100.0)
    ex.deposit(b, 100.0)
    ex.trade(m, buyer=a, seller=b, size=500.0, price=1.0)
    return ex, m, a, b


@pytest.mark.parametrize("ranking", ALL_ADL)
def test_dydx_example_deleverages_the_profitable_long_at_the_bankruptcy_price(
    ranking: str,
) -> None:
    # Arrange: empty fund. At $2, B's equity is 100 - 500 x (2 - 1) = -400; its bankruptcy
    # price is 2 - (-400) / (-500) = $1.2.
    ex, m, a, b = _dydx_pair(ranking)
    start = len(ex.journal)

    # Act
    ex.set_mark(m, 2.0, ts_ns=1 * S)

    # Assert: A's 500 are closed against B at $1.2 (A buys nothing: A sells to B).
    fills = _new(ex, start, Fill)
    assert len(fills) == 1
    fill = fills[0]
    assert fill.reason == FillReason.ADL
    assert fill.note == ranking
    assert (fill.buyer, fill.seller) == (b, a)
    assert fill.size == pytest.approx(500.0)
    assert fill.price == pytest.approx(1.2)
    # "a $100 profit for A and a $100 loss for B, leaving B's account value at $0"
    assert ex.cash(a) == pytest.approx(200.0)
    assert ex.position(a, m).size == 0.0
    assert _equity(ex, b) == pytest.approx(0.0, abs=1e-9)
    assert ex.last_step.adl_rounds == 1
    assert ex.last_step.adl_notional == pytest.approx(600.0)  # 500 x $1.2
    assert ex.last_step.bad_debt == 0.0
    assert _new(ex, start, BadDebt) == []
    # The round's metrics: profit at the mark taken from A is 500 x (2 - 1) = 500; the loss
    # the book would have left is 400; A's haircut against the mark is 500 x (2 - 1.2) = 400.
    (round_,) = _new(ex, start, AdlRound)
    metrics = json.loads(round_.text)
    assert metrics["policy"] == ranking
    assert metrics["counterparties"] == 1
    assert metrics["notional_closed"] == pytest.approx(600.0)
    assert metrics["profit_taken"] == pytest.approx(500.0)
    assert metrics["shortfall"] == pytest.approx(400.0)
    assert metrics["haircut_vs_mark"] == pytest.approx(400.0)
    assert round_.price == pytest.approx(1.2)
    assert round_.size == pytest.approx(500.0)  # B's short of 500 closed


def test_no_deleveraging_while_the_insurance_fund_can_pay() -> None:
    # Same move with 1,000 in the fund: B is closed on the book at the mark, the fund pays
    # B's 400 shortfall, and A keeps its whole position.
    ex, m, a, b = _dydx_pair("random_start", fund=1_000.0)
    start = len(ex.journal)

    ex.set_mark(m, 2.0, ts_ns=1 * S)

    assert ex.last_step.adl_rounds == 0
    assert ex.last_step.adl_notional == 0.0
    assert all(f.reason != FillReason.ADL for f in _new(ex, start, Fill))
    assert ex.position(a, m).size == pytest.approx(500.0)
    assert ex.last_step.insurance_paid == pytest.approx(400.0)
    assert ex.cash(ex.insurance_account) == pytest.approx(600.0)
    assert _equity(ex, b) == pytest.approx(0.0, abs=1e-9)


# ---------------------------------------------------------------------------- a small book


@dataclass
class Book:
    """Who holds what in :func:`_crowd`."""

    ex: Exchange
    m: int
    bankrupt: int  # isolated long 0.2 at 100,000 with 1,000 of margin
    shorts: tuple[int, int, int]  # 0.1, 0.3 and 0.2 short at 100,000, 10,000 cash each
    same_side: int  # long 0.05 bought at 90,000: profitable, on the bankrupt's side
    idle: int  # 5,000 cash, no position


def _crowd(
    ranking: str, *, seed: int = 0, socialize_over: str = "profit", short_mode: MarginMode
) -> Book:
    ex = Exchange(check_invariants=True, seed=seed)
    spec = MarketSpec.simple(
        "BTCUSDT", max_leverage=20.0, maintenance_rate=0.025, maker_fee_rate=0.0,
        taker_fee_rate=0.0, liquidation_fee_rate=0.005,
        adl={"ranking": ranking, "socialize_over": socialize_over},
    )  # fmt: skip
    m = ex.list_market(spec)
    ex.set_mark(m, 100_000.0)
    bankrupt = ex.open_account(margin_mode=MarginMode.ISOLATED)
    ex.deposit(bankrupt, 1_000.0)
    ex.trade(m, buyer=bankrupt, seller=ex.liquidity_account, size=0.2, price=100_000.0)
    shorts = []
    for size in (0.1, 0.3, 0.2):
        s = ex.open_account(margin_mode=short_mode)
        ex.deposit(s, 10_000.0)
        ex.trade(m, buyer=ex.liquidity_account, seller=s, size=size, price=100_000.0)
        shorts.append(s)
    same_side = ex.open_account(margin_mode=short_mode)
    ex.deposit(same_side, 10_000.0)
    ex.trade(m, buyer=same_side, seller=ex.liquidity_account, size=0.05, price=90_000.0)
    idle = ex.open_account()
    ex.deposit(idle, 5_000.0)
    return Book(ex, m, bankrupt, (shorts[0], shorts[1], shorts[2]), same_side, idle)


def _crash(book: Book) -> int:
    # 94,000: the bankrupt long's equity is 1,000 - 0.2 x 6,000 = -200, its bankruptcy price
    # 94,000 - (-200) / 0.2 = 95,000. The fund is empty.
    start = len(book.ex.journal)
    book.ex.set_mark(book.m, 94_000.0, ts_ns=1 * S)
    return start


@pytest.mark.parametrize("short_mode", [MarginMode.CROSS, MarginMode.ISOLATED])
@pytest.mark.parametrize("ranking", ALL_ADL)
def test_adl_closes_only_opposing_profitable_positions_for_exactly_the_bankrupt_size(
    ranking: str, short_mode: MarginMode
) -> None:
    book = _crowd(ranking, short_mode=short_mode)
    ex, m = book.ex, book.m
    before = {s: ex.position(s, m).size for s in book.shorts}

    start = _crash(book)

    fills = _new(ex, start, Fill)
    assert fills, "the bankrupt position must be closed"
    assert all(f.reason == FillReason.ADL and f.note == ranking for f in fills)
    assert all(f.seller == book.bankrupt and f.buyer in book.shorts for f in fills)
    assert all(f.price == pytest.approx(95_000.0) for f in fills)
    assert sum(f.size for f in fills) == pytest.approx(0.2, abs=1e-12)
    for s in book.shorts:
        after = ex.position(s, m).size
        assert before[s] <= after <= 0.0  # reduced toward zero, never flipped or grown
    # The bankrupt's equity ends at 0; nobody else on its side is touched.
    assert ex.position(book.bankrupt, m).size == 0.0
    assert _equity(ex, book.bankrupt) == pytest.approx(0.0, abs=1e-9)
    assert ex.position(book.same_side, m).size == pytest.approx(0.05)
    assert ex.cash(book.idle) == pytest.approx(5_000.0)
    assert ex.last_step.bad_debt == 0.0
    (round_,) = _new(ex, start, AdlRound)
    metrics = json.loads(round_.text)
    # profit at the mark of the 0.2 closed: 0.2 x (100,000 - 94,000) = 1,200;
    # haircut against the mark: 0.2 x (95,000 - 94,000) = 200.
    assert metrics["profit_taken"] == pytest.approx(1_200.0)
    assert metrics["notional_closed"] == pytest.approx(19_000.0)
    assert metrics["haircut_vs_mark"] == pytest.approx(200.0)
    assert metrics["shortfall"] == pytest.approx(200.0)


def test_pnl_leverage_deleverages_the_highest_profit_times_leverage_first() -> None:
    # BitMEX: rank = PnL% x effective leverage. Every short entered at 100,000, so PnL% is 6%
    # for all; leverage = notional / equity at 94,000 (cross equity = cash + unrealized PnL):
    #   0.1: 9,400 / 10,600 = 0.89;  0.3: 28,200 / 11,800 = 2.39;  0.2: 18,800 / 11,200 = 1.68.
    # The 0.3 short ranks first and alone covers the 0.2 needed.
    book = _crowd("pnl_leverage", short_mode=MarginMode.CROSS)

    start = _crash(book)

    fills = _new(book.ex, start, Fill)
    assert [(f.buyer, f.size) for f in fills] == [(book.shorts[1], pytest.approx(0.2))]
    assert book.ex.position(book.shorts[1], book.m).size == pytest.approx(-0.1)
    # Its realized PnL on the 0.2 closed at 95,000: 0.2 x 5,000 = 1,000.
    assert book.ex.cash(book.shorts[1]) == pytest.approx(11_000.0)


@pytest.mark.parametrize("short_mode", [MarginMode.CROSS, MarginMode.ISOLATED])
def test_pro_rata_reduces_every_profitable_opposing_position_by_the_same_fraction(
    short_mode: MarginMode,
) -> None:
    # 0.2 of 0.6 opposing: a third of each, in lots of 0.001 (largest remainder):
    # 0.0333 -> 0.033, 0.1, 0.0667 -> 0.067.
    book = _crowd("pro_rata", short_mode=short_mode)
    ex, m = book.ex, book.m
    before = [ex.position(s, m).size for s in book.shorts]

    _crash(book)

    cut = [before[k] - ex.position(s, m).size for k, s in enumerate(book.shorts)]
    for k, c in enumerate(cut):
        assert abs(-c - abs(before[k]) / 3.0) <= 0.001 + 1e-12  # within one lot of a third
    assert -sum(cut) == pytest.approx(0.2, abs=1e-12)
    assert [-c for c in cut] == pytest.approx([0.033, 0.1, 0.067], abs=1e-12)


@pytest.mark.parametrize("short_mode", [MarginMode.CROSS, MarginMode.ISOLATED])
def test_socialized_loss_closes_no_opposing_position_and_charges_profits(
    short_mode: MarginMode,
) -> None:
    # The bankrupt long is sold on the book at the mark, leaving a shortfall of 200 that is
    # charged to the profitable accounts in proportion to their profit at 94,000:
    # shorts 600, 1,800, 1,200 and the same-side long 0.05 x 4,000 = 200 (total 3,800).
    book = _crowd("socialized_loss", short_mode=short_mode)
    ex, m = book.ex, book.m

    start = _crash(book)

    fills = _new(ex, start, Fill)
    assert [f.reason for f in fills] == [FillReason.LIQUIDATION]
    assert [ex.position(s, m).size for s in book.shorts] == pytest.approx([-0.1, -0.3, -0.2])
    charges = {
        t.source: t.amount
        for t in _new(ex, start, Transfer)
        if t.reason == TransferReason.SOCIALIZED_LOSS
    }
    expected = {
        book.shorts[0]: 200.0 * 600 / 3_800,
        book.shorts[1]: 200.0 * 1_800 / 3_800,
        book.shorts[2]: 200.0 * 1_200 / 3_800,
        book.same_side: 200.0 * 200 / 3_800,
    }
    assert charges == pytest.approx(expected)
    assert book.idle not in charges
    assert ex.cash(book.idle) == pytest.approx(5_000.0)
    assert ex.last_step.socialized_loss == pytest.approx(200.0)
    assert ex.last_step.adl_rounds == 0
    assert ex.last_step.bad_debt == 0.0
    assert _equity(ex, book.bankrupt) == pytest.approx(0.0, abs=1e-9)


def test_socialized_loss_over_open_interest_charges_every_position_never_a_flat_account() -> None:
    # Drift's funding-rate socialization: per unit of size, long or short. Open interest at
    # 94,000 (sizes 0.1, 0.3, 0.2 short and 0.05 long): weights 0.1 : 0.3 : 0.2 : 0.05.
    book = _crowd("socialized_loss", socialize_over="open_interest", short_mode=MarginMode.CROSS)
    ex = book.ex

    start = _crash(book)

    charges = {
        t.source: t.amount
        for t in _new(ex, start, Transfer)
        if t.reason == TransferReason.SOCIALIZED_LOSS
    }
    sizes = {book.shorts[0]: 0.1, book.shorts[1]: 0.3, book.shorts[2]: 0.2, book.same_side: 0.05}
    assert charges == pytest.approx({a: 200.0 * q / 0.65 for a, q in sizes.items()})
    assert book.idle not in charges
    assert book.bankrupt not in charges


def test_socialized_loss_leaves_a_flat_isolated_bankrupt_with_no_negative_cash() -> None:
    book = _crowd("socialized_loss", short_mode=MarginMode.CROSS)
    ex, m = book.ex, book.m

    _crash(book)

    # The 200 collected pays the account's debt: cash back to 0, nothing left in the closed
    # isolated position. (It used to land in the closed position's isolated margin, leaving
    # cash at -200 beside a stale +200: fixed in apply_transfers_nb.)
    assert ex.position(book.bankrupt, m).size == 0.0
    assert ex.position(book.bankrupt, m).isolated_margin == pytest.approx(0.0, abs=1e-9)
    assert ex.cash(book.bankrupt) == pytest.approx(0.0, abs=1e-9)


# ---------------------------------------------------------------------------- random start


def _random_start_run(seed: int) -> tuple[Book, int]:
    book = _crowd("random_start", seed=seed, short_mode=MarginMode.CROSS)
    return book, _crash(book)


def test_random_start_is_reproducible_for_the_same_seed() -> None:
    first, _ = _random_start_run(7)
    second, _ = _random_start_run(7)

    assert first.ex.journal.to_arrow().equals(second.ex.journal.to_arrow())
    assert first.ex.state_hash() == second.ex.state_hash()


def test_random_start_depends_on_the_seed() -> None:
    # dYdX walks the offsetting accounts from a random start: with three shorts the first
    # counterparty is one of three, so some seed among 1..20 starts elsewhere than seed 0.
    def counterparties(seed: int) -> list[int]:
        book, start = _random_start_run(seed)
        return [f.buyer for f in _new(book.ex, start, Fill)]

    reference = counterparties(0)
    assert any(counterparties(seed) != reference for seed in range(1, 21))
