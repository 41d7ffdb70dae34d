"""Losses that hide (issue 12): regression tests with the issue's numbers.

- Isolated margin isolates: a 100x isolated long with 60 of margin, gapped through its
  bankruptcy price, took 440 more from the wallet; venues cap the loss at the isolated margin
  (Binance, Bybit, OKX: "the maximum loss is the isolated margin"; Hyperliquid liquidations
  page: "The user's cross margin and positions are untouched"; dYdX v4 isolated positions are
  their own subaccounts) and send the rest to the insurance fund.
- One shortfall: the step report and the liquidation record of the same event agree.
- The backstop vault has capital and a loss limit past which ADL takes over (Hyperliquid after
  JELLY, 26 March 2025), and its PnL is reported.
"""

from __future__ import annotations

from typing import Any

import pytest

from deleverage import Exchange, MarginMode, MarketSpec
from deleverage.engine.events import Fill, FillReason, Liquidation
from deleverage.errors import ValidationError
from deleverage.liquidity import ConstantDepthBook

S = 1_000_000_000


def _venue(*, batch: bool = True, **fields: Any) -> tuple[Exchange, int]:
    ex = Exchange(check_invariants=True)
    spec = MarketSpec.simple(
        "BTCUSDT", max_leverage=100.0, maintenance_rate=0.005, maker_fee_rate=0.0,
        taker_fee_rate=0.0, liquidation_fee_rate=0.0, **fields,
    )  # fmt: skip
    m = ex.list_market(spec)
    if not batch:
        ex.risk._batchable = lambda m: False  # type: ignore[method-assign]
    ex.set_mark(m, 60_000.0)
    return ex, m


def _isolated_long_100x(ex: Exchange, m: int, *, wallet: float) -> int:
    # 0.1 BTC at 60,000 = 6,000 of notional at 100x: 60 of isolated margin, the rest of the
    # deposit stays in the wallet.
    a = ex.open_account(margin_mode=MarginMode.ISOLATED)
    ex.deposit(a, 60.0 + wallet)
    ex.set_leverage(a, m, 100)
    ex.trade(m, buyer=a, seller=ex.liquidity_account, size=0.1, price=60_000.0)
    return a


@pytest.mark.parametrize("batch", [True, False])
def test_100x_isolated_long_with_60_of_margin_loses_only_its_margin(batch: bool) -> None:
    # The mark gaps to 55,000: 0.1 x -5,000 = -500 of PnL against 60 of margin, equity -440.
    # The fund (1,000) pays the 440; the wallet's 1,000 is untouched.
    ex, m = _venue(batch=batch)
    ex.deposit(ex.insurance_account, 1_000.0)
    a = _isolated_long_100x(ex, m, wallet=1_000.0)

    ex.set_mark(m, 55_000.0, ts_ns=1 * S)

    step = ex.last_step
    assert ex.cash(a) == pytest.approx(1_000.0)
    assert ex.position(a, m).size == 0.0
    assert step.shortfall == pytest.approx(440.0)
    assert step.insurance_paid == pytest.approx(440.0)
    assert ex.cash(ex.insurance_account) == pytest.approx(560.0)
    (record,) = [e for e in ex.journal.events(Liquidation) if isinstance(e, Liquidation)]
    assert record.shortfall == pytest.approx(step.shortfall)  # one definition
    assert ex.conservation().holds


@pytest.mark.parametrize("batch", [True, False])
def test_isolated_deficit_beyond_an_empty_fund_is_bad_debt_not_the_wallet(batch: bool) -> None:
    # Same gap, empty fund, nobody to deleverage: 440 of bad debt on the venue's bad-debt
    # account; the wallet keeps its 1,000.
    ex, m = _venue(batch=batch)
    a = _isolated_long_100x(ex, m, wallet=1_000.0)

    ex.set_mark(m, 55_000.0, ts_ns=1 * S)

    step = ex.last_step
    assert ex.cash(a) == pytest.approx(1_000.0)
    assert step.shortfall == pytest.approx(440.0)
    assert step.bad_debt == pytest.approx(440.0)
    conservation = ex.conservation()
    assert conservation.negative_equity_bad_debt == pytest.approx(440.0)
    assert conservation.negative_equity == 0.0
    assert conservation.holds


@pytest.mark.parametrize("batch", [True, False])
def test_isolated_recourse_is_an_explicit_policy_taking_the_wallet_first(batch: bool) -> None:
    # The policy the engine used to apply silently: the 440 come out of the wallet, the fund
    # is untouched and nothing is beyond the collateral (margin plus the other cash).
    ex, m = _venue(batch=batch, liquidation={"isolated_recourse": True})
    ex.deposit(ex.insurance_account, 1_000.0)
    a = _isolated_long_100x(ex, m, wallet=1_000.0)

    ex.set_mark(m, 55_000.0, ts_ns=1 * S)

    step = ex.last_step
    assert ex.cash(a) == pytest.approx(560.0)
    assert step.shortfall == 0.0
    assert step.insurance_paid == 0.0
    (record,) = [e for e in ex.journal.events(Liquidation) if isinstance(e, Liquidation)]
    assert record.shortfall == 0.0  # the record agrees with the report


def test_isolated_recourse_must_be_a_boolean() -> None:
    with pytest.raises(ValidationError, match="isolated_recourse"):
        MarketSpec.simple("X", liquidation={"isolated_recourse": "sometimes"})


def test_presets_default_to_isolated_margin_that_isolates() -> None:
    from deleverage.venues import list_presets, preset

    for venue in list_presets():
        assert preset(venue).liquidation.isolated_recourse is False, venue


@pytest.mark.parametrize("batch", [True, False])
def test_step_report_and_liquidation_record_agree_on_a_book_fill_beyond_bankruptcy(
    batch: bool,
) -> None:
    # README example numbers: Binance BTC preset, 50x isolated long 0.8 at 60,000 (960 of
    # margin, 16 left in the wallet after the 24 fee); the mark moves to 58,900 and the thin
    # book sells at 58,782.2, 14.24 beyond the bankruptcy price 58,800 x 0.8 - the fund pays.
    from deleverage.venues import preset

    ex = Exchange(check_invariants=True)
    btc = ex.list_market(preset("binance", "BTC"))
    if not batch:
        ex.risk._batchable = lambda m: False  # type: ignore[method-assign]
    ex.set_liquidity(btc, ConstantDepthBook(depth_per_pct=2.0, half_life_s=60))
    ex.set_mark(btc, 60_000.0)
    # Binance's fund takes over a bankrupt position only up to its own size (47,120 here).
    ex.deposit(ex.insurance_account, 50_000.0)
    alice = ex.open_account(margin_mode=MarginMode.ISOLATED)
    bob = ex.open_account()
    ex.deposit(alice, 1_000.0)
    ex.deposit(bob, 10_000.0)
    ex.set_leverage(alice, btc, 50)
    ex.trade(btc, buyer=alice, seller=bob, size=0.8, price=60_000.0)

    ex.set_mark(btc, 58_900.0, ts_ns=60 * S)

    step = ex.last_step
    (record,) = [e for e in ex.journal.events(Liquidation) if isinstance(e, Liquidation)]
    assert record.price == pytest.approx(58_782.2)
    assert step.shortfall == pytest.approx(14.24)
    assert record.shortfall == pytest.approx(step.shortfall)
    assert step.insurance_paid == pytest.approx(14.24)
    assert ex.cash(alice) == pytest.approx(16.0)


# ---------------------------------------------------------------------------- backstop
def _hyperliquid_like(*, capital: float, max_loss: float | None = None) -> tuple[Exchange, int]:
    ex = Exchange(check_invariants=True)
    spec = MarketSpec.simple(
        "BTC", max_leverage=20.0, maintenance_rate=0.025, maker_fee_rate=0.0,
        taker_fee_rate=0.0, liquidation_fee_rate=0.0,
        liquidation={"backstop_equity_fraction": 2 / 3}, adl={"price": "mark"},
    )  # fmt: skip
    m = ex.list_market(spec)
    ex.set_mark(m, 100_000.0)
    ex.set_liquidity(m, ConstantDepthBook(depth_per_pct=0.05, half_life_s=60.0))
    if capital > 0:
        ex.deposit(ex.backstop_account, capital)
    ex.risk.set_backstop(max_loss=max_loss)
    return ex, m


def _long(ex: Exchange, m: int, *, cash: float, size: float = 0.2) -> int:
    a = ex.open_account(margin_mode=MarginMode.ISOLATED)
    ex.deposit(a, cash)
    ex.trade(m, buyer=a, seller=ex.liquidity_account, size=size, price=100_000.0)
    return a


def test_a_vault_without_capital_takes_nothing_over() -> None:
    # 0.2 long at 100,000 with 1,000 of margin; at 96,000 equity 200 < 2/3 x 480: a vault
    # with capital would take it; without, the book sells it and the fund / ADL lines follow.
    ex, m = _hyperliquid_like(capital=0.0)
    a = _long(ex, m, cash=1_000.0)

    ex.set_mark(m, 96_000.0, ts_ns=1 * S)

    assert ex.last_step.backstop_takeovers == 0
    assert ex.position(ex.backstop_account, m).size == 0.0
    assert ex.position(a, m).size == 0.0


def test_vault_pnl_is_reported_and_past_its_loss_limit_adl_takes_over() -> None:
    # The vault (capital 1,000, loss limit 300) takes the 0.2 long over at 96,000 with 200 of
    # margin. At 94,000 it has lost 0.2 x 2,000 - 200 = 200: PnL -200, under the limit. At
    # 92,000 it has lost 600 > 300: its 0.2 is deleveraged at the mark against the short in
    # profit; it realized 0.2 x -4,000 = -800 on 200 of margin: 600 of backstop loss.
    ex, m = _hyperliquid_like(capital=1_000.0, max_loss=300.0)
    _long(ex, m, cash=1_000.0)
    short = ex.open_account(margin_mode=MarginMode.ISOLATED)
    ex.deposit(short, 10_000.0)
    ex.trade(m, buyer=ex.liquidity_account, seller=short, size=0.5, price=100_000.0)
    vault = ex.backstop_account

    ex.set_mark(m, 96_000.0, ts_ns=1 * S)
    assert ex.last_step.backstop_takeovers == 1
    assert ex.last_step.backstop_pnl == pytest.approx(200.0)  # took 200 of margin over
    ex.set_mark(m, 94_000.0, ts_ns=2 * S)
    assert ex.last_step.backstop_pnl == pytest.approx(-200.0)
    assert ex.position(vault, m).size == pytest.approx(0.2)
    ex.set_mark(m, 92_000.0, ts_ns=3 * S)

    step = ex.last_step
    assert ex.position(vault, m).size == 0.0
    assert step.adl_rounds == 1
    adl = [e for e in ex.journal.events(Fill) if isinstance(e, Fill) and e.reason == FillReason.ADL]
    assert [(f.seller, f.buyer, f.price) for f in adl] == [(vault, short, 92_000.0)]
    assert step.backstop_loss == pytest.approx(600.0)
    assert step.shortfall == pytest.approx(600.0)
    assert step.backstop_pnl == pytest.approx(-600.0)
    assert ex.cash(vault) == pytest.approx(400.0)
    assert ex.conservation().holds


def test_vault_past_its_loss_limit_takes_no_more_positions() -> None:
    # The vault's capital is all lost (no explicit limit: the whole capital): the next
    # account below 2/3 of maintenance goes to the book instead.
    ex, m = _hyperliquid_like(capital=100.0)
    _long(ex, m, cash=1_000.0)
    ex.set_mark(m, 96_000.0, ts_ns=1 * S)
    assert ex.last_step.backstop_takeovers == 1
    ex.set_mark(m, 95_000.0, ts_ns=2 * S)  # vault: 200 - 0.2 x 1,000 = 0 -> lost 100 = all
    later = _long(ex, m, cash=2_000.0)  # entry 100,000 at mark 95,000

    ex.set_mark(m, 91_400.0, ts_ns=3 * S)

    assert ex.last_step.backstop_takeovers == 0
    assert ex.position(later, m).size == 0.0


def test_set_backstop_rejects_a_bad_limit() -> None:
    ex = Exchange()
    with pytest.raises(ValidationError, match="max_loss"):
        ex.risk.set_backstop(max_loss=-1.0)
