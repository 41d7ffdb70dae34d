"""Multi-asset collateral on the engine (engine/collateral.py): coins valued at the index with a
haircut, revalued by events, sold in the venue's order when the account is short, replayable."""

from __future__ import annotations

import math

import pytest

from deleverage import Exchange, MarginMode
from deleverage.engine.collateral import (
    deposit_collateral,
    ledger_of,
    list_collateral,
    quote_balance,
    set_collateral_liquidity,
    set_collateral_policy,
    set_collateral_price,
    settle_collateral,
)
from deleverage.engine.events import CollateralMoved, CollateralPriced, TransferReason
from deleverage.errors import DeleverageError
from deleverage.liquidity import ConstantDepthBook
from deleverage.rules.collateral import CollateralAsset, CollateralPolicy, CollateralTier
from deleverage.spec import MarketSpec

S = 1_000_000_000
#: Binance Multi-Assets Mode: BTC and ETH at a 5 % haircut, SOL at 10 %.
BTC = CollateralAsset(symbol="BTC", tiers=(CollateralTier(floor=0.0, rate=0.95),))
SOL = CollateralAsset(symbol="SOL", tiers=(CollateralTier(floor=0.0, rate=0.90),))
SPEC = MarketSpec.from_mapping(
    {
        "symbol": "BTCUSDT",
        "tiers": [{"notional_floor": 0.0, "max_leverage": 20.0, "maintenance_rate": 0.01}],
        "liquidation_fee_rate": 0.0,
        "taker_fee_rate": 0.0,
        "maker_fee_rate": 0.0,
    }
)


def _venue(*, fund: float = 0.0) -> Exchange:
    ex = Exchange()
    m = ex.list_market(SPEC, ts_ns=0)
    ex.set_mark(m, 60_000.0, ts_ns=0)
    if fund:
        ex.deposit(ex.insurance_account, fund, ts_ns=0)
    list_collateral(ex, BTC, ts_ns=0)
    set_collateral_price(ex, "BTC", 60_000.0, ts_ns=0)
    return ex


def _long_on_btc(ex: Exchange, *, coins: float, size: float) -> int:
    """A cross account whose only margin is ``coins`` BTC, long ``size`` BTC perps."""
    a = ex.open_account(margin_mode=MarginMode.CROSS, ts_ns=0)
    deposit_collateral(ex, a, "BTC", coins, ts_ns=0)
    ex.set_leverage(a, 0, 20.0)
    ex.trade(0, buyer=a, seller=ex.liquidity_account, size=size, price=60_000.0, ts_ns=0)
    return a


def test_posted_coins_count_at_the_index_less_the_haircut() -> None:
    # Arrange
    ex = _venue()
    a = ex.open_account(margin_mode=MarginMode.CROSS, ts_ns=0)

    # Act: 1 BTC at 60,000 with a 5 % haircut (Binance Multi-Assets Mode) ...
    deposit_collateral(ex, a, "BTC", 1.0, ts_ns=0)

    # Assert: ... is 57,000 of margin and of net deposits, and money adds up.
    assert ex.cash(a) == pytest.approx(57_000.0)
    assert ex.account_margins(a).cross_equity == pytest.approx(57_000.0)
    assert quote_balance(ex, a) == pytest.approx(0.0)
    assert ex.conservation().holds


def test_a_fall_of_the_coin_reduces_margin_while_it_moves_the_position() -> None:
    # Arrange: 1 BTC of collateral (57,000) backing a 10 BTC long at 60,000.
    ex = _venue()
    a = _long_on_btc(ex, coins=1.0, size=10.0)

    # Act: BTC falls 2 % on both the perp and the collateral.
    ex.set_mark(0, 58_800.0, ts_ns=S)
    set_collateral_price(ex, "BTC", 58_800.0, ts_ns=S)

    # Assert: equity = 1 x 58,800 x 0.95 + 10 x (58,800 - 60,000) = 43,860.
    assert ex.account_margins(a).cross_equity == pytest.approx(58_800.0 * 0.95 - 12_000.0)
    assert any(isinstance(e, CollateralPriced) for e in ex.journal)
    assert ex.conservation().holds


def test_the_same_margin_in_coins_liquidates_before_margin_in_quote() -> None:
    # Arrange: two longs of 10 BTC; one posts 57,000 USDT, the other 1 BTC (57,000 after the
    # haircut). MM = 1 % of notional; equity_quote(P) = 57,000 + 10 (P - 60,000) and
    # equity_coin(P) = 0.95 P + 10 (P - 60,000): maintenance 0.1 P is reached at
    # P = 543,000 / 9.9 = 54,848.48 for quote, P = 600,000 / 10.85 = 55,299.54 for coins.
    ex = _venue(fund=1e6)
    coin = _long_on_btc(ex, coins=1.0, size=10.0)
    cash = ex.open_account(margin_mode=MarginMode.CROSS, ts_ns=0)
    ex.deposit(cash, 57_000.0, ts_ns=0)
    ex.set_leverage(cash, 0, 20.0)
    ex.trade(0, buyer=cash, seller=ex.liquidity_account, size=10.0, price=60_000.0, ts_ns=0)

    # Act: a mark between the two liquidation prices.
    set_collateral_price(ex, "BTC", 55_100.0, ts_ns=S)
    ex.set_mark(0, 55_100.0, ts_ns=S)

    # Assert
    assert ex.columns(0).size[coin] == 0.0
    assert ex.columns(0).size[cash] == 10.0


def test_a_bankruptcy_sells_the_collateral_before_the_fund_pays() -> None:
    # Arrange: 1 BTC backing a 10 BTC long; no quote cash at all.
    ex = _venue(fund=100_000.0)
    a = _long_on_btc(ex, coins=1.0, size=10.0)
    fund_before = ex.cash(ex.insurance_account)

    # Act: a 12 % gap down, coin and mark together.
    set_collateral_price(ex, "BTC", 52_800.0, ts_ns=S)
    ex.set_mark(0, 52_800.0, ts_ns=S)

    # Assert: the position closed at the mark (no book) losing 72,000 of quote; the whole coin
    # was sold at the index (52,800), so the fund paid 72,000 - 52,800 = 19,200, the shortfall.
    assert ex.columns(0).size[a] == 0.0
    sales = [e for e in ex.journal if isinstance(e, CollateralMoved) and e.reason == "sale"]
    assert len(sales) == 1
    assert sales[0].quantity == pytest.approx(-1.0)
    assert sales[0].proceeds == pytest.approx(52_800.0)
    shortfall = math.fsum(r.shortfall for r in ex.risk.reports)
    assert shortfall == pytest.approx(19_200.0)
    assert fund_before - ex.cash(ex.insurance_account) == pytest.approx(19_200.0)
    assert ledger_of(ex).quantity[0][a] == 0.0
    assert ex.cash(a) == pytest.approx(0.0, abs=1e-6)
    assert ex.conservation().holds


def test_a_negative_quote_balance_converts_coins_worth_the_deficit_over_the_rate() -> None:
    # Arrange: a short deficit covered by collateral credit: the account lost 20,000 of quote.
    ex = _venue()
    a = ex.open_account(margin_mode=MarginMode.CROSS, ts_ns=0)
    deposit_collateral(ex, a, "BTC", 1.0, ts_ns=0)
    # the loss, in quote
    ex.transfer(a, ex.fee_account, 20_000.0, reason=TransferReason.TRADING_FEE, ts_ns=0)
    assert quote_balance(ex, a) == pytest.approx(-20_000.0)

    # Act
    sold = settle_collateral(ex, ts_ns=S)

    # Assert: Binance's rule, 20,000 / 95 % = 21,052.63 of BTC converted: 0.350877 BTC.
    assert sold == 1
    assert ledger_of(ex).quantity[0][a] == pytest.approx(1.0 - 20_000.0 / 0.95 / 60_000.0)
    assert quote_balance(ex, a) == pytest.approx(20_000.0 / 0.95 - 20_000.0)
    assert ex.conservation().holds


@pytest.mark.parametrize(
    ("order", "btc_sold", "sol_sold"),
    [
        # pro rata by collateral value: BTC 57,000 and SOL 45,000 of 102,000
        ("pro_rata", 30_600.0 * 57 / 102 / 0.95 / 60_000.0, 30_600.0 * 45 / 102 / 0.90 / 100.0),
        # the highest collateral rate first: BTC (95 %) before SOL (90 %)
        ("highest_rate_first", 30_600.0 / 0.95 / 60_000.0, 0.0),
    ],
)
def test_coins_are_sold_in_the_venues_order(order: str, btc_sold: float, sol_sold: float) -> None:
    # Arrange: 1 BTC and 500 SOL, a deficit of 30,600.
    ex = _venue()
    list_collateral(ex, SOL, ts_ns=0)
    set_collateral_price(ex, "SOL", 100.0, ts_ns=0)
    set_collateral_policy(ex, CollateralPolicy(order=order))
    a = ex.open_account(margin_mode=MarginMode.CROSS, ts_ns=0)
    deposit_collateral(ex, a, "BTC", 1.0, ts_ns=0)
    deposit_collateral(ex, a, "SOL", 500.0, ts_ns=0)
    ex.transfer(a, ex.fee_account, 30_600.0, reason=TransferReason.TRADING_FEE, ts_ns=0)

    # Act
    settle_collateral(ex, ts_ns=S)

    # Assert
    ledger = ledger_of(ex)
    assert 1.0 - ledger.quantity[0][a] == pytest.approx(btc_sold, rel=1e-9)
    assert 500.0 - ledger.quantity[1][a] == pytest.approx(sol_sold, rel=1e-9, abs=1e-12)


def test_a_sale_walks_the_coins_own_book() -> None:
    # Arrange: a BTC book of 2 BTC per 1 % (D = 200), a deficit of 19,000 (1/3 BTC of credit).
    ex = _venue()
    set_collateral_liquidity(ex, "BTC", ConstantDepthBook(depth_per_pct=2.0, half_life_s=60.0))
    a = ex.open_account(margin_mode=MarginMode.CROSS, ts_ns=0)
    deposit_collateral(ex, a, "BTC", 1.0, ts_ns=0)
    ex.transfer(a, ex.fee_account, 19_000.0, reason=TransferReason.TRADING_FEE, ts_ns=0)

    # Act
    settle_collateral(ex, ts_ns=0)

    # Assert: q = 19,000 / (0.95 x 60,000) = 1/3 BTC at vwap = 60,000 (1 - q / (2 D)).
    q = 19_000.0 / (0.95 * 60_000.0)
    sale = next(e for e in ex.journal if isinstance(e, CollateralMoved) and e.reason == "sale")
    assert -sale.quantity == pytest.approx(q)
    assert sale.price == pytest.approx(60_000.0 * (1 - q / 400.0))
    assert ledger_of(ex).sales[0][4] == pytest.approx(-q / 200.0)


def test_collateral_events_replay_to_the_same_state() -> None:
    # Arrange / Act: a collateral-backed long through a revaluation, a liquidation and a sale.
    ex = _venue(fund=100_000.0)
    _long_on_btc(ex, coins=1.0, size=10.0)
    _long_on_btc(ex, coins=2.0, size=5.0)
    set_collateral_price(ex, "BTC", 55_000.0, ts_ns=S)
    ex.set_mark(0, 55_000.0, ts_ns=S)
    settle_collateral(ex, ts_ns=S)

    # Assert
    replayed = Exchange.replay(ex.journal)
    assert replayed.state_hash() == ex.state_hash()
    assert "collateral.0.quantity" in ex.state_arrays()


def test_collateral_credit_cannot_be_withdrawn_as_cash() -> None:
    ex = _venue()
    a = ex.open_account(margin_mode=MarginMode.CROSS, ts_ns=0)
    deposit_collateral(ex, a, "BTC", 1.0, ts_ns=0)
    with pytest.raises(DeleverageError, match="withdrawable"):
        ex.withdraw(a, 1_000.0, ts_ns=0)


def test_bad_collateral_input_is_refused_naming_the_field() -> None:
    ex = _venue()
    a = ex.open_account(margin_mode=MarginMode.CROSS, ts_ns=0)
    with pytest.raises(DeleverageError, match="quantity"):
        deposit_collateral(ex, a, "BTC", -1.0)
    with pytest.raises(DeleverageError, match="asset"):
        deposit_collateral(ex, a, "DOGE", 1.0)
    with pytest.raises(DeleverageError, match="price"):
        set_collateral_price(ex, "BTC", math.nan)
    with pytest.raises(DeleverageError, match="symbol"):
        list_collateral(ex, BTC)
