"""Liquidation on a mark update, against hand-worked examples and venue documentation.

Every expected number is worked out in the comment next to it, from the venue's formula quoted
there, never read back from the engine. Most examples run for an isolated position (the compiled
batch path, ``RiskEngine._batch_isolated``) and a cross account (the per-account path), which
must agree on these simple cases.

Sources:

- dYdX v4, "Liquidations": https://docs.dydx.exchange/concepts/trading/liquidations (isolated
  liquidation price example; penalty "up to the entire remaining value of the account";
  fillable price ``P x (1 - (SMMR x MMF) ...)``, help centre
  https://help.dydx.exchange/en/articles/8580691-liquidations-on-dydx-chain).
- dYdX v4, "Contract Loss Mechanisms":
  https://dydx-documentation-six.vercel.app/concepts/trading/contract-loss-mechanism
  (insurance fund example: long 500 at $1, price $0.801, liquidated at $0.77).
- Drift protocol-v2, ``math/liquidation.rs`` tests of
  ``calculate_base_asset_amount_to_cover_margin_shortage`` ($10 shortage, 10% margin ratio,
  1% fee, $100 -> 10/9 base): https://github.com/drift-labs/protocol-v2.
- Hyperliquid, "Liquidations": https://hyperliquid.gitbook.io/hyperliquid-docs/trading/liquidations
  (20% of positions above 100k USDC, 30 s cooldown; backstop below 2/3 of maintenance).
- Bybit, "Liquidation Process (USDT Contract)":
  https://help.bybit.com/hc/en-us/articles/900000167723 (reduce to the lower risk limit tier).
"""

from __future__ import annotations

from typing import Any

import pytest

from deleverage import Exchange, MarginMode, MarketSpec
from deleverage.engine.events import (
    EventKind,
    Fill,
    FillReason,
    Liquidation,
    Transfer,
    TransferReason,
)
from deleverage.liquidity import ConstantDepthBook

S = 1_000_000_000  # nanoseconds per second
MODES = [MarginMode.ISOLATED, MarginMode.CROSS]


def _venue(
    *, max_leverage: float = 20.0, maintenance_rate: float = 0.025, mark: float = 100_000.0,
    **fields: Any,
) -> tuple[Exchange, int]:  # fmt: skip
    ex = Exchange(check_invariants=True)
    fields.setdefault("maker_fee_rate", 0.0)
    fields.setdefault("taker_fee_rate", 0.0)
    spec = MarketSpec.simple(
        "BTCUSDT", max_leverage=max_leverage, maintenance_rate=maintenance_rate, **fields
    )
    m = ex.list_market(spec)
    ex.set_mark(m, mark)
    return ex, m


def _long(
    ex: Exchange, m: int, *, size: float, price: float, cash: float, mode: MarginMode,
    leverage: float | None = None,
) -> int:  # fmt: skip
    """A trader who deposits ``cash`` and buys ``size`` at ``price`` from the book."""
    a = ex.open_account(margin_mode=mode)
    ex.deposit(a, cash)
    if leverage is not None:
        ex.set_leverage(a, m, leverage)
    ex.trade(m, buyer=a, seller=ex.liquidity_account, size=size, price=price)
    return a


def _equity(ex: Exchange, a: int) -> float:
    return ex.account_margins(a).total_equity


def _new_events(ex: Exchange, start: int, kind: type[Any]) -> list[Any]:
    return [e for e in ex.journal.events(kind) if e.seq >= start]


# ---------------------------------------------------------------------------- full liquidation


@pytest.mark.parametrize("mode", MODES)
def test_full_liquidation_below_liquidation_price_fills_at_mark_and_pays_penalty(
    mode: MarginMode,
) -> None:
    # Arrange: 0.2 BTC long at 100,000 with 1,000 of margin (20x), MMR 2.5%, penalty 0.5%.
    # Liquidation price: 1,000 + 0.2 (P - 100,000) = 0.025 x 0.2 P  =>  P = 19,000 / 0.195
    # = 97,435.90.
    ex, m = _venue(liquidation_fee_rate=0.005)
    a = _long(ex, m, size=0.2, price=100_000.0, cash=1_000.0, mode=mode)

    # Act 1: 97,500 is above the liquidation price (equity 500 >= maintenance 487.5).
    ex.set_mark(m, 97_500.0, ts_ns=1 * S)

    # Assert 1
    assert ex.last_step.liquidations == 0
    assert ex.position(a, m).size == pytest.approx(0.2)

    # Act 2: 97,000 is below it (equity 400 < maintenance 485).
    start = len(ex.journal)
    ex.set_mark(m, 97_000.0, ts_ns=2 * S)

    # Assert 2: the whole 0.2 sells to the book at the mark (no liquidity model set).
    fills = _new_events(ex, start, Fill)
    assert len(fills) == 1
    fill = fills[0]
    assert (fill.seller, fill.buyer) == (a, ex.liquidity_account)
    assert fill.size == pytest.approx(0.2)
    assert fill.price == pytest.approx(97_000.0)
    assert fill.reason == FillReason.LIQUIDATION
    # penalty = 0.5% x 0.2 x 97,000 = 97 < remaining equity 400: paid in full to the fund.
    penalty = list(_new_events(ex, start, Transfer))
    assert len(penalty) == 1
    assert penalty[0].reason == TransferReason.LIQUIDATION_FEE
    assert penalty[0].destination == ex.insurance_account_for(m)
    assert penalty[0].amount == pytest.approx(97.0)
    assert ex.cash(ex.insurance_account) == pytest.approx(97.0)
    # the trader keeps 400 - 97 = 303.
    assert ex.position(a, m).size == 0.0
    assert _equity(ex, a) == pytest.approx(303.0)
    (notice,) = _new_events(ex, start, Liquidation)
    assert notice.size == pytest.approx(-0.2)
    assert notice.penalty == pytest.approx(97.0)
    assert notice.shortfall == 0.0
    report = ex.last_step
    assert report.liquidations == 1
    assert report.liquidated_notional == pytest.approx(19_400.0)
    assert report.penalties == pytest.approx(97.0)
    assert report.shortfall == 0.0
    assert report.adl_rounds == 0


@pytest.mark.parametrize("mode", MODES)
def test_penalty_is_capped_by_the_equity_left_after_the_fill(mode: MarginMode) -> None:
    # dYdX v4: insurance fund delta = min(fee, quote received - bankruptcy quote); the penalty
    # takes "up to the entire remaining value of the account".
    # Same 0.2 BTC long at 20x; mark 95,400: equity = 1,000 - 0.2 x 4,600 = 80,
    # fee = 0.5% x 0.2 x 95,400 = 95.40 > 80, so the penalty is 80 and the trader keeps 0.
    ex, m = _venue(liquidation_fee_rate=0.005)
    a = _long(ex, m, size=0.2, price=100_000.0, cash=1_000.0, mode=mode)

    ex.set_mark(m, 95_400.0, ts_ns=1 * S)

    assert ex.last_step.penalties == pytest.approx(80.0)
    assert ex.cash(ex.insurance_account) == pytest.approx(80.0)
    assert _equity(ex, a) == pytest.approx(0.0, abs=1e-9)
    assert ex.last_step.shortfall == 0.0
    assert ex.last_step.bad_debt == 0.0


@pytest.mark.parametrize("mode", MODES)
def test_fill_beyond_bankruptcy_leaves_a_shortfall_the_fund_pays(mode: MarginMode) -> None:
    # dYdX "Contract Loss Mechanisms": A deposits $100 and goes long 500 ABC at $1 (MMF 3%);
    # the price drops to $0.801, A's equity is $0.50, below the MMR; the protocol liquidates
    # at $0.77 and the insurance fund covers the loss.
    # Bankruptcy price 0.801 - 0.50 / 500 = 0.800, so the fund pays (0.800 - 0.77) x 500 = 15.
    # A thin constant-depth book makes a 500 sell at mid 0.801 fill at VWAP 0.77:
    # vwap = mid (1 - q / (2 D))  =>  D = q mid / (2 (mid - vwap)) = 500 x 0.801 / 0.062.
    ex, m = _venue(
        max_leverage=20.0, maintenance_rate=0.03, mark=1.0, tick_size=0.001, lot_size=1.0,
        liquidation_fee_rate=0.015,
    )  # fmt: skip
    ex.deposit(ex.insurance_account, 1_000.0)
    a = _long(ex, m, size=500.0, price=1.0, cash=100.0, mode=mode, leverage=5.0)
    depth = 500.0 * 0.801 / (2.0 * (0.801 - 0.77))
    ex.set_liquidity(m, ConstantDepthBook(depth_per_pct=depth / 100.0, half_life_s=60.0))
    start = len(ex.journal)

    ex.set_mark(m, 0.801, ts_ns=1 * S)

    (fill,) = _new_events(ex, start, Fill)
    assert fill.price == pytest.approx(0.77, rel=1e-12)
    assert fill.size == pytest.approx(500.0)
    covers = list(_new_events(ex, start, Transfer))
    assert [t.reason for t in covers] == [TransferReason.INSURANCE_COVER]
    assert covers[0].amount == pytest.approx(15.0, rel=1e-9)
    # The fund falls by exactly the shortfall; no penalty is charged beyond bankruptcy.
    assert ex.cash(ex.insurance_account) == pytest.approx(1_000.0 - 15.0, rel=1e-12)
    assert ex.insurance_fund().balance == pytest.approx(985.0, rel=1e-12)
    assert ex.last_step.penalties == 0.0
    assert ex.last_step.shortfall == pytest.approx(15.0, rel=1e-9)
    assert ex.last_step.insurance_paid == pytest.approx(15.0, rel=1e-9)
    assert ex.last_step.bad_debt == 0.0
    assert _equity(ex, a) == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize("mode", MODES)
def test_dydx_isolated_liquidation_price_example_triggers_between_3174_and_3175(
    mode: MarginMode,
) -> None:
    # dYdX "Liquidations": equity e = 1,000, short 3 ETH (s = -3) at p = 3,000, MMF 5%:
    # p' = (e - s p) / (|s| MMF - s) = (1,000 + 9,000) / (0.15 + 3) = 3,174.60.
    ex, m = _venue(max_leverage=10.0, maintenance_rate=0.05, mark=3_000.0)
    a = ex.open_account(margin_mode=mode)
    ex.deposit(a, 1_000.0)
    ex.set_leverage(a, m, 9.0)  # isolated margin 9,000 / 9 = 1,000: all of e backs the short
    ex.trade(m, buyer=ex.liquidity_account, seller=a, size=3.0, price=3_000.0)

    ex.set_mark(m, 3_174.0, ts_ns=1 * S)
    assert ex.last_step.liquidations == 0
    assert ex.position(a, m).size == pytest.approx(-3.0)

    ex.set_mark(m, 3_175.0, ts_ns=2 * S)
    assert ex.last_step.liquidations == 1
    assert ex.position(a, m).size == 0.0


# ---------------------------------------------------------------------------- partial


@pytest.mark.parametrize("mode", MODES)
def test_partial_liquidation_closes_just_enough_to_restore_maintenance_plus_buffer(
    mode: MarginMode,
) -> None:
    # Drift: close q = shortage / (mark x (rate - fee)), rate = MMR + buffer.
    # 0.2 BTC long at 100,000, margin 1,000; MMR 2.5%, buffer 2%, fee 0.5%; mark 97,000:
    # equity 400, notional 19,400, requirement 19,400 x 4.5% = 873, shortage 473,
    # q = 473 / (97,000 x 4%) = 0.121907 -> 0.122 in lots of 0.001.
    ex, m = _venue(liquidation_fee_rate=0.005, liquidation={"kind": "partial", "buffer": 0.02})
    a = _long(ex, m, size=0.2, price=100_000.0, cash=1_000.0, mode=mode)

    ex.set_mark(m, 97_000.0, ts_ns=1 * S)

    # Closing 0.122 at the mark pays 0.5% x 0.122 x 97,000 = 59.17 and leaves
    # 0.078 open: equity 400 - 59.17 = 340.83 >= 4.5% x 0.078 x 97,000 = 340.47.
    # One lot less (0.121) would leave 341.315 < 4.5% x 0.079 x 97,000 = 344.835.
    assert ex.position(a, m).size == pytest.approx(0.078, abs=1e-12)
    assert ex.last_step.penalties == pytest.approx(59.17)
    assert _equity(ex, a) == pytest.approx(340.83)
    assert ex.last_step.liquidations == 1


@pytest.mark.parametrize("mode", MODES)
def test_partial_liquidation_matches_drift_shortage_example(mode: MarginMode) -> None:
    # Drift's unit test: shortage $10, margin ratio 10%, liquidation fee 1%, oracle $100:
    # base to close = 10 / (100 x (0.10 - 0.01)) = 10/9 = 1.1111 -> 1.112 in lots of 0.001.
    # Set up: MMR 10% (5x tier), 10 long bought at 120 with 290 of margin; at a mark of 100
    # equity = 290 - 200 = 90 and maintenance = 10% x 1,000 = 100: a $10 shortage.
    ex, m = _venue(
        max_leverage=5.0, maintenance_rate=0.10, mark=120.0, liquidation_fee_rate=0.01,
        liquidation={"kind": "partial"},
    )  # fmt: skip
    a = _long(ex, m, size=10.0, price=120.0, cash=290.0, mode=mode)
    if mode is MarginMode.ISOLATED:
        ex.add_isolated_margin(a, m, 50.0)  # 240 of initial margin + 50 = 290

    ex.set_mark(m, 100.0, ts_ns=1 * S)

    assert ex.position(a, m).size == pytest.approx(10.0 - 1.112, abs=1e-12)
    # equity 90 - 1% x 111.2 = 88.888 >= 10% x 888.8 = 88.88: restored.
    assert _equity(ex, a) == pytest.approx(88.888)


# ---------------------------------------------------------------------------- fixed fraction


@pytest.mark.parametrize("mode", MODES)
def test_fixed_fraction_closes_twenty_percent_then_waits_out_the_cooldown(mode: MarginMode) -> None:
    # Hyperliquid: a liquidatable position above 100k USDC has 20% sent to the book, then a
    # 30 s cooldown. 2 BTC long at 100,000 (200k notional, margin 10,000); mark 97,000:
    # equity 4,000 < maintenance 4,850.
    ex, m = _venue(
        liquidation_fee_rate=0.005,
        liquidation={
            "kind": "fixed_fraction", "fraction": 0.2, "fraction_min_notional": 100_000.0,
            "cooldown_s": 30.0,
        },
    )  # fmt: skip
    a = _long(ex, m, size=2.0, price=100_000.0, cash=10_000.0, mode=mode)

    ex.set_mark(m, 97_000.0, ts_ns=1 * S)

    # 20% of 2 = 0.4 closed; penalty 0.5% x 0.4 x 97,000 = 194; left 1.6 with
    # equity 4,000 - 194 = 3,806 < maintenance 2.5% x 155,200 = 3,880: still liquidatable.
    assert ex.last_step.liquidations == 1
    assert ex.position(a, m).size == pytest.approx(1.6)
    assert _equity(ex, a) == pytest.approx(3_806.0)

    # Within the 30 s cooldown (until 31 s) nothing more happens.
    for ts in (2 * S, 20 * S, 31 * S - 1):
        ex.set_mark(m, 97_000.0, ts_ns=ts)
        assert ex.last_step.liquidations == 0
        assert ex.position(a, m).size == pytest.approx(1.6)

    # After it, the position is liquidated again.
    ex.set_mark(m, 97_000.0, ts_ns=31 * S)
    assert ex.last_step.liquidations == 1
    assert abs(ex.position(a, m).size) < 1.6 - 1e-9


@pytest.mark.parametrize("mode", MODES)
def test_fixed_fraction_closes_a_small_position_whole(mode: MarginMode) -> None:
    # Below the 100k threshold the whole position goes: 0.2 BTC (19,400 notional at 97,000).
    ex, m = _venue(
        liquidation={"kind": "fixed_fraction", "fraction": 0.2, "fraction_min_notional": 100_000.0}
    )
    a = _long(ex, m, size=0.2, price=100_000.0, cash=1_000.0, mode=mode)

    ex.set_mark(m, 97_000.0, ts_ns=1 * S)

    assert ex.position(a, m).size == 0.0


# ---------------------------------------------------------------------------- tier down


@pytest.mark.parametrize("mode", MODES)
def test_tier_down_reduces_the_position_below_its_tier_floor(mode: MarginMode) -> None:
    # Two tiers: [0, 10,000) at 20x / MMR 2.5%, [10,000, ...) at 10x / MMR 5%, deduction
    # cum = 10,000 x (5% - 2.5%) = 250. 0.2 BTC long at 100,000, margin 2,000 (10x).
    # Mark 93,000: equity 2,000 - 1,400 = 600 < maintenance 5% x 18,600 - 250 = 680.
    ex = Exchange(check_invariants=True)
    spec = MarketSpec.from_mapping(
        {
            "symbol": "BTCUSDT", "maker_fee_rate": 0.0, "taker_fee_rate": 0.0,
            "liquidation_fee_rate": 0.005, "liquidation": {"kind": "tier_down"},
            "tiers": [
                {"notional_floor": 0.0, "max_leverage": 20.0, "maintenance_rate": 0.025},
                {"notional_floor": 10_000.0, "max_leverage": 10.0, "maintenance_rate": 0.05},
            ],
        }
    )  # fmt: skip
    m = ex.list_market(spec)
    ex.set_mark(m, 100_000.0)
    a = _long(ex, m, size=0.2, price=100_000.0, cash=2_000.0, mode=mode)

    ex.set_mark(m, 93_000.0, ts_ns=1 * S)

    # Reduced below the 10,000 floor in whole lots: 10,000 / 93,000 = 0.107527, so 0.107 is
    # kept (9,951 notional) and 0.093 closed (8,649 notional, penalty 0.5% = 43.245).
    # Left: equity 600 - 43.245 = 556.755 against tier-0 maintenance 2.5% x 9,951 = 248.775.
    assert ex.position(a, m).size == pytest.approx(0.107, abs=1e-12)
    assert abs(ex.position(a, m).size) * 93_000.0 < 10_000.0
    assert ex.last_step.penalties == pytest.approx(43.245)
    assert _equity(ex, a) == pytest.approx(556.755)
    assert ex.last_step.liquidations == 1


# ---------------------------------------------------------------------------- cross ordering


def test_cross_account_reduces_the_position_with_the_largest_maintenance_first() -> None:
    # Arrange: one cross account, 1,500 cash, long 0.2 BTC at 100,000 (maintenance 2.5% x
    # 20,000 = 500) and long 2 ETH at 4,000 (maintenance 2.5% x 8,000 = 200).
    ex = Exchange(check_invariants=True)
    for symbol in ("BTCUSDT", "ETHUSDT"):
        ex.list_market(
            MarketSpec.simple(
                symbol, max_leverage=20.0, maintenance_rate=0.025, maker_fee_rate=0.0,
                taker_fee_rate=0.0, liquidation_fee_rate=0.005,
            )
        )  # fmt: skip
    btc, eth = 0, 1
    ex.set_mark(btc, 100_000.0)
    ex.set_mark(eth, 4_000.0)
    a = ex.open_account()
    ex.deposit(a, 1_500.0)
    ex.trade(btc, buyer=a, seller=ex.liquidity_account, size=0.2, price=100_000.0)
    ex.trade(eth, buyer=a, seller=ex.liquidity_account, size=2.0, price=4_000.0)
    start = len(ex.journal)

    # Act: ETH falls to 3,500: equity 1,500 - 1,000 = 500 < maintenance 500 + 175 = 675.
    ex.set_mark(eth, 3_500.0, ts_ns=1 * S)

    # Assert: the loss came from ETH, but BTC (largest maintenance) is closed first; after it
    # equity 500 - 0.5% x 20,000 = 400 >= ETH's maintenance 175, so ETH stays open.
    fills = _new_events(ex, start, Fill)
    assert [(f.market, f.size) for f in fills] == [(btc, pytest.approx(0.2))]
    assert ex.position(a, btc).size == 0.0
    assert ex.position(a, eth).size == pytest.approx(2.0)
    assert ex.account_margins(a).cross_equity == pytest.approx(400.0)


# ---------------------------------------------------------------------------- backstop


@pytest.mark.parametrize("mode", MODES)
def test_backstop_takes_over_an_account_below_two_thirds_of_maintenance(mode: MarginMode) -> None:
    # Hyperliquid: "If the account equity drops below 2/3 of the maintenance margin without
    # successful liquidation through the book, a backstop liquidation happens through the
    # liquidator vault"; "the trader ends up with zero account equity".
    # 0.2 BTC long at 100,000, margin 1,000; mark 96,000: equity 200 < 2/3 x 480 = 320;
    # bankruptcy price 96,000 - 200 / 0.2 = 95,000. A thin book (D = 100 x 0.05 = 5 BTC per
    # 100%) would sell the 0.2 at 96,000 x (1 - 0.2 / 10) = 94,080, below bankruptcy: the book
    # cannot take it, the vault does, at the mark, with the 200 of margin.
    ex, m = _venue(liquidation_fee_rate=0.005, liquidation={"backstop_equity_fraction": 2 / 3})
    a = _long(ex, m, size=0.2, price=100_000.0, cash=1_000.0, mode=mode)
    ex.set_liquidity(m, ConstantDepthBook(depth_per_pct=0.05, half_life_s=60.0))
    vault = ex.backstop_account
    ex.deposit(vault, 10_000.0)  # the vault's capital
    start = len(ex.journal)

    ex.set_mark(m, 96_000.0, ts_ns=1 * S)

    (fill,) = _new_events(ex, start, Fill)
    assert fill.reason == FillReason.BACKSTOP
    assert (fill.seller, fill.buyer) == (a, vault)
    assert fill.price == pytest.approx(96_000.0)
    (margin,) = _new_events(ex, start, Transfer)
    assert margin.reason == TransferReason.BACKSTOP_MARGIN
    assert margin.amount == pytest.approx(200.0)
    assert ex.position(vault, m).size == pytest.approx(0.2)
    assert ex.cash(vault) == pytest.approx(10_200.0)
    assert _equity(ex, a) == pytest.approx(0.0, abs=1e-9)
    assert ex.last_step.backstop_takeovers == 1
    assert ex.cash(ex.insurance_account) == 0.0  # no penalty on a takeover


def test_backstop_leaves_the_traders_cross_cash_alone_for_an_isolated_takeover() -> None:
    # Hyperliquid: "When an isolated position is backstop liquidated, that isolated position
    # and isolated margin are transferred to the liquidator. The user's cross margin and
    # positions are untouched." Same position, plus 500 of cash outside it.
    ex, m = _venue(liquidation_fee_rate=0.005, liquidation={"backstop_equity_fraction": 2 / 3})
    a = _long(ex, m, size=0.2, price=100_000.0, cash=1_500.0, mode=MarginMode.ISOLATED)
    ex.set_liquidity(m, ConstantDepthBook(depth_per_pct=0.05, half_life_s=60.0))
    ex.deposit(ex.backstop_account, 10_000.0)

    ex.set_mark(m, 96_000.0, ts_ns=1 * S)

    assert ex.last_step.backstop_takeovers == 1
    assert ex.cash(a) == pytest.approx(500.0)
    assert _equity(ex, a) == pytest.approx(500.0)


@pytest.mark.parametrize("mode", MODES)
def test_below_two_thirds_of_maintenance_the_book_is_tried_first(mode: MarginMode) -> None:
    # Same 96,000 mark, no liquidity model: the book fills at the mark, above the bankruptcy
    # price 95,000, so the market liquidation succeeds and the vault is not needed.
    # penalty min(0.5% x 19,200 = 96, 200) = 96; the trader keeps 104.
    ex, m = _venue(liquidation_fee_rate=0.005, liquidation={"backstop_equity_fraction": 2 / 3})
    a = _long(ex, m, size=0.2, price=100_000.0, cash=1_000.0, mode=mode)

    ex.set_mark(m, 96_000.0, ts_ns=1 * S)

    assert ex.last_step.backstop_takeovers == 0
    assert ex.position(ex.backstop_account, m).size == 0.0
    assert ex.position(a, m).size == 0.0
    assert _equity(ex, a) == pytest.approx(104.0)


@pytest.mark.parametrize("mode", MODES)
def test_account_between_two_thirds_and_full_maintenance_is_liquidated_on_the_book(
    mode: MarginMode,
) -> None:
    # Mark 97,000: equity 400 is below maintenance 485 but above 2/3 x 485 = 323.3, so even a
    # thin book is used (no takeover).
    ex, m = _venue(liquidation_fee_rate=0.005, liquidation={"backstop_equity_fraction": 2 / 3})
    a = _long(ex, m, size=0.2, price=100_000.0, cash=1_000.0, mode=mode)
    ex.set_liquidity(m, ConstantDepthBook(depth_per_pct=0.05, half_life_s=60.0))

    ex.set_mark(m, 97_000.0, ts_ns=1 * S)

    assert ex.last_step.backstop_takeovers == 0
    assert ex.last_step.liquidations >= 1
    assert ex.position(ex.backstop_account, m).size == 0.0
    assert ex.position(a, m).size == 0.0 or _equity(ex, a) >= 0.0


# ---------------------------------------------------------------------------- liquidator


@pytest.mark.parametrize("mode", MODES)
def test_liquidator_fills_at_the_dydx_fillable_price_between_oracle_and_bankruptcy(
    mode: MarginMode,
) -> None:
    # dYdX fillable price P - ABR x SMMR x PMMR / size for a long, ABR = 1 - TNC / TMMR
    # (GetFillablePrice, dydxprotocol/v4-chain@84d4664 protocol/x/clob/keeper/liquidations.go).
    # 0.2 BTC long, margin 1,000, mark 97,000: equity 400, maintenance 485, bankruptcy
    # 95,000; ABR = 85/485, SMMR 0.5: spread 85/485 x 0.5 x 485 / 0.2 = 212.5 -> 96,787.5.
    ex, m = _venue(
        liquidation_fee_rate=0.005,
        liquidation={"execution": "liquidator", "spread_to_maintenance_ratio": 0.5},
    )
    a = _long(ex, m, size=0.2, price=100_000.0, cash=1_000.0, mode=mode)
    start = len(ex.journal)

    ex.set_mark(m, 97_000.0, ts_ns=1 * S)

    (fill,) = _new_events(ex, start, Fill)
    assert fill.reason == FillReason.LIQUIDATOR_TAKEOVER
    assert (fill.seller, fill.buyer) == (a, ex.liquidator_account)
    assert 95_000.0 < fill.price < 97_000.0
    assert fill.price == pytest.approx(96_787.5)
    # equity after = 400 - 0.2 x 212.5 = 357.5; penalty 0.5% x 0.2 x 96,787.5 = 96.7875.
    assert ex.last_step.penalties == pytest.approx(96.7875)
    assert _equity(ex, a) == pytest.approx(357.5 - 96.7875)
    assert ex.position(ex.liquidator_account, m).size == pytest.approx(0.2)


def test_liquidator_fill_beyond_bankruptcy_is_paid_by_the_fund() -> None:
    # No clamp to the bankruptcy price (dYdX): mark 94,000, equity -200 so ABR = 1; PMMR
    # 470, SMMR 1.5: fillable 94,000 - 1.5 x 470 / 0.2 = 90,475, beyond the bankruptcy
    # price 95,000: the fund pays 0.2 x (95,000 - 90,475) = 905, the trader ends at 0.
    ex, m = _venue(liquidation_fee_rate=0.005, liquidation={"execution": "liquidator"})
    ex.deposit(ex.insurance_account, 10_000.0)
    a = _long(ex, m, size=0.2, price=100_000.0, cash=1_000.0, mode=MarginMode.ISOLATED)
    start = len(ex.journal)

    ex.set_mark(m, 94_000.0, ts_ns=1 * S)

    (fill,) = _new_events(ex, start, Fill)
    assert fill.price == pytest.approx(90_475.0)
    (notice,) = _new_events(ex, start, Liquidation)
    assert notice.bankruptcy_price == pytest.approx(95_000.0)
    assert notice.shortfall == pytest.approx(905.0)
    assert ex.last_step.insurance_paid == pytest.approx(905.0)
    assert ex.last_step.penalties == pytest.approx(0.0, abs=1e-9)
    assert _equity(ex, a) == pytest.approx(0.0, abs=1e-9)


def test_partial_liquidation_by_a_liquidator_restores_maintenance_or_closes() -> None:
    # 0.1 long at 1,000 (10x, margin 10, MMR 5%); mark 939.4: equity 3.94 < maintenance 4.697.
    # Bankruptcy 939.4 - 3.94 / 0.1 = 900; the fillable price (dYdX, ABR = 1 - 3.94 / 4.697)
    # lies between them. Either the partial close restores maintenance or the position is
    # closed.
    ex, m = _venue(
        max_leverage=10.0, maintenance_rate=0.05, mark=1_000.0, liquidation_fee_rate=0.0,
        liquidation={"kind": "partial", "execution": "liquidator"},
    )  # fmt: skip
    a = _long(ex, m, size=0.1, price=1_000.0, cash=10.0, mode=MarginMode.ISOLATED)

    ex.set_mark(m, 939.4, ts_ns=1 * S)

    state = ex.isolated_state(m)
    closed = ex.position(a, m).size == 0.0
    assert closed or state["equity"][a] >= state["maintenance"][a]


def test_no_liquidation_event_without_an_account_below_maintenance() -> None:
    ex, m = _venue()
    _long(ex, m, size=0.2, price=100_000.0, cash=1_000.0, mode=MarginMode.ISOLATED)
    start = len(ex.journal)

    ex.set_mark(m, 99_000.0, ts_ns=1 * S)

    table = ex.journal.to_arrow().slice(start)
    kinds = set(table["kind"].to_pylist())
    assert kinds == {int(EventKind.MARK_PRICE)}


# ---------------------------------------------------------------------------- per-step caps


def test_market_step_cap_bounds_the_notional_liquidated_per_step() -> None:
    # dYdX v4 block limits: at most so much notional is liquidated per block. Three 0.2 BTC
    # longs at 20x, all below maintenance at 97,000 (equity 400 < 485 each, 19,400 notional
    # each, 58,200 in all) and a cap of 20,000 per step: three steps, never above the cap.
    ex, m = _venue(liquidation={"max_notional_per_market_step": 20_000.0})
    longs = [
        _long(ex, m, size=0.2, price=100_000.0, cash=1_000.0, mode=MarginMode.ISOLATED)
        for _ in range(3)
    ]

    per_step = []
    for k in range(1, 5):
        ex.set_mark(m, 97_000.0, ts_ns=k * S)
        per_step.append(ex.last_step.liquidated_notional)

    assert all(notional <= 20_000.0 * (1 + 1e-12) for notional in per_step)
    assert sum(per_step) == pytest.approx(58_200.0)
    assert per_step[0] == pytest.approx(20_000.0)
    assert all(ex.position(a, m).size == 0.0 for a in longs)


def test_capped_liquidation_sends_no_dust_fill() -> None:
    # An isolated short of 17.75 at 1,000 (10x) rallied to 1,133.15; the 20,000 cap closes
    # 20,000 / 1,133.15 = 17.6499 and nothing else should be sent this step. (The float
    # remainder of the cap, 3.2e-15 base, used to go out as a second fill: fixed.)
    ex, m = _venue(
        max_leverage=10.0, maintenance_rate=0.05, mark=1_000.0,
        liquidation={"max_notional_per_market_step": 20_000.0},
    )  # fmt: skip
    a = ex.open_account(margin_mode=MarginMode.ISOLATED)
    ex.deposit(a, 1_775.0)
    ex.trade(m, buyer=ex.liquidity_account, seller=a, size=17.75, price=1_000.0)
    start = len(ex.journal)

    ex.set_mark(m, 1_133.15, ts_ns=1 * S)

    fills = _new_events(ex, start, Fill)
    assert all(f.size >= ex.market(m).spec.lot_size for f in fills)
    assert len(_new_events(ex, start, Liquidation)) == 1
