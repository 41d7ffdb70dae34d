"""Trading: entry averaging, realized PnL, fees, margin checks, isolated margin, settings.

Every expected number below is worked out by hand in the comment next to it.
"""

from __future__ import annotations

from typing import Any

import pytest

from deleverage import Exchange, MarginMode, MarketSpec
from deleverage.errors import (
    InsufficientFundsError,
    InsufficientMarginError,
    StateError,
    ValidationError,
)

SYMBOL = "BTCUSDT"


def _venue(**fields: Any) -> tuple[Exchange, int]:
    ex = Exchange(check_invariants=True)
    fields.setdefault("maker_fee_rate", 0.0)
    fields.setdefault("taker_fee_rate", 0.0)
    m = ex.list_market(MarketSpec.simple(SYMBOL, **fields))
    return ex, m


def _trader(
    ex: Exchange, cash: float, mode: MarginMode = MarginMode.CROSS, *, ts_ns: int | None = None
) -> int:
    a = ex.open_account(margin_mode=mode, ts_ns=ts_ns)
    ex.deposit(a, cash)
    return a


def _buy(ex: Exchange, a: int, size: float, price: float, **kw: Any) -> None:
    ex.trade(SYMBOL, buyer=a, seller=ex.liquidity_account, size=size, price=price, **kw)


def _sell(ex: Exchange, a: int, size: float, price: float, **kw: Any) -> None:
    ex.trade(SYMBOL, buyer=ex.liquidity_account, seller=a, size=size, price=price, **kw)


# ---------------------------------------------------------------------------- entry and PnL


def test_adding_to_a_long_averages_entry_by_size() -> None:
    # Arrange
    ex, m = _venue(max_leverage=10)
    ex.set_mark(m, 100.0)
    a = _trader(ex, 10_000.0)

    # Act: buy 1 @ 100, then 3 @ 120
    _buy(ex, a, 1.0, 100.0)
    _buy(ex, a, 3.0, 120.0)

    # Assert: entry = (1 x 100 + 3 x 120) / 4 = 115
    pos = ex.position(a, m)
    assert pos.size == pytest.approx(4.0)
    assert pos.entry_price == pytest.approx(115.0)
    assert pos.realized_pnl == 0.0
    assert ex.cash(a) == pytest.approx(10_000.0)


def test_partial_close_realizes_pnl_on_closed_part_and_keeps_entry() -> None:
    ex, m = _venue(max_leverage=10)
    ex.set_mark(m, 100.0)
    a = _trader(ex, 10_000.0)
    _buy(ex, a, 1.0, 100.0)
    _buy(ex, a, 3.0, 120.0)  # 4 @ 115

    _sell(ex, a, 1.0, 130.0)

    # realized = 1 x (130 - 115) = 15; remaining 3 @ 115
    pos = ex.position(a, m)
    assert pos.size == pytest.approx(3.0)
    assert pos.entry_price == pytest.approx(115.0)
    assert pos.realized_pnl == pytest.approx(15.0)
    assert ex.cash(a) == pytest.approx(10_015.0)


def test_selling_through_zero_realizes_whole_long_and_opens_short_at_fill_price() -> None:
    ex, m = _venue(max_leverage=10)
    ex.set_mark(m, 100.0)
    a = _trader(ex, 10_000.0)
    _buy(ex, a, 3.0, 115.0)

    _sell(ex, a, 5.0, 110.0)

    # realized = 3 x (110 - 115) = -15; new position -2 @ 110
    pos = ex.position(a, m)
    assert pos.size == pytest.approx(-2.0)
    assert pos.entry_price == pytest.approx(110.0)
    assert pos.realized_pnl == pytest.approx(-15.0)
    assert ex.cash(a) == pytest.approx(9_985.0)


def test_short_gains_when_bought_back_lower() -> None:
    ex, m = _venue(max_leverage=10)
    ex.set_mark(m, 100.0)
    a = _trader(ex, 10_000.0)
    _sell(ex, a, 2.0, 110.0)
    _sell(ex, a, 2.0, 100.0)  # -4 @ 105

    _buy(ex, a, 1.0, 90.0)

    # realized = 1 x (105 - 90) = 15; unrealized at mark 100 = -3 x (100 - 105) = 15
    pos = ex.position(a, m)
    assert pos.entry_price == pytest.approx(105.0)
    assert pos.size == pytest.approx(-3.0)
    assert pos.realized_pnl == pytest.approx(15.0)
    assert pos.unrealized_pnl == pytest.approx(15.0)


def test_closing_exactly_leaves_flat_position_with_zero_entry() -> None:
    ex, m = _venue(max_leverage=10, lot_size=0.1)
    ex.set_mark(m, 100.0)
    a = _trader(ex, 10_000.0)
    _buy(ex, a, 0.1, 100.0)
    _buy(ex, a, 0.2, 100.0)  # 0.1 + 0.2 is 0.30000000000000004 in floats

    _sell(ex, a, 0.3, 101.0)

    pos = ex.position(a, m)
    assert pos.size == 0.0
    assert pos.entry_price == 0.0
    assert pos.realized_pnl == pytest.approx(0.3)


def test_counterparty_mirrors_the_trader() -> None:
    ex, m = _venue(max_leverage=10)
    ex.set_mark(m, 100.0)
    a = _trader(ex, 10_000.0)
    b = _trader(ex, 10_000.0)

    ex.trade(m, buyer=a, seller=b, size=2.0, price=100.0)
    ex.set_mark(m, 120.0)

    # a: +2 @ 100, upnl +40; b: -2 @ 100, upnl -40
    assert ex.position(b, m).size == pytest.approx(-2.0)
    assert ex.position(a, m).unrealized_pnl == pytest.approx(40.0)
    assert ex.position(b, m).unrealized_pnl == pytest.approx(-40.0)


# ---------------------------------------------------------------------------- fees


@pytest.mark.parametrize(
    ("taker", "buyer_fee", "seller_fee"),
    [
        # notional 0.1 x 60,000 = 6,000; taker 0.05% = 3.0; maker 0.02% = 1.2
        ("buyer", 3.0, 1.2),
        ("seller", 1.2, 3.0),
        (None, 1.2, 1.2),
    ],
)
def test_fees_charged_by_role_and_paid_to_fee_account(
    taker: str | None, buyer_fee: float, seller_fee: float
) -> None:
    # Arrange
    ex, m = _venue(max_leverage=20, maker_fee_rate=0.0002, taker_fee_rate=0.0005)
    ex.set_mark(m, 60_000.0)
    a = _trader(ex, 1_000.0)
    b = _trader(ex, 1_000.0)

    # Act
    fill = ex.trade(m, buyer=a, seller=b, size=0.1, price=60_000.0, taker=taker)  # type: ignore[arg-type]

    # Assert
    assert fill.buyer_fee == pytest.approx(buyer_fee)
    assert fill.seller_fee == pytest.approx(seller_fee)
    assert ex.cash(a) == pytest.approx(1_000.0 - buyer_fee)
    assert ex.cash(b) == pytest.approx(1_000.0 - seller_fee)
    assert ex.cash(ex.fee_account) == pytest.approx(buyer_fee + seller_fee)


def test_negative_maker_fee_is_a_rebate_paid_by_fee_account() -> None:
    ex, m = _venue(max_leverage=20, maker_fee_rate=-0.0001, taker_fee_rate=0.0005)
    ex.set_mark(m, 60_000.0)
    a = _trader(ex, 1_000.0)
    b = _trader(ex, 1_000.0)

    ex.trade(m, buyer=a, seller=b, size=0.1, price=60_000.0, taker="buyer")

    # taker pays 3.0; maker receives 6,000 x 0.01% = 0.6; fee account nets 2.4
    assert ex.cash(b) == pytest.approx(1_000.6)
    assert ex.cash(ex.fee_account) == pytest.approx(2.4)


def test_docstring_example_initial_margin_is_notional_over_leverage() -> None:
    ex, m = _venue(max_leverage=20)
    ex.set_mark(m, 60_000.0)
    a = _trader(ex, 1_000.0)

    _buy(ex, a, 0.1, 60_000.0)

    # 0.1 x 60,000 / 20 = 300
    assert ex.account_margins(a).cross_initial == pytest.approx(300.0)


# ---------------------------------------------------------------------------- margin checks


def test_opening_exactly_at_initial_margin_is_accepted() -> None:
    ex, m = _venue(max_leverage=10)
    ex.set_mark(m, 100.0)
    a = _trader(ex, 100.0)

    _buy(ex, a, 10.0, 100.0)  # notional 1,000 / 10 = 100 = cash

    assert ex.position(a, m).size == pytest.approx(10.0)


@pytest.mark.parametrize("mode", list(MarginMode))
def test_opening_beyond_initial_margin_is_rejected_and_state_unchanged(mode: MarginMode) -> None:
    # Arrange: 100 of cash at 10x supports 1,000 of notional
    ex, m = _venue(max_leverage=10)
    ex.set_mark(m, 100.0)
    a = _trader(ex, 100.0, mode)
    before, events = ex.state_hash(), len(ex.journal)

    # Act / Assert: 10.01 @ 100 needs 100.1
    with pytest.raises(InsufficientMarginError, match="buyer"):
        _buy(ex, a, 10.01, 100.0)
    assert (ex.state_hash(), len(ex.journal)) == (before, events)


def test_fee_counts_against_initial_margin() -> None:
    ex, m = _venue(max_leverage=10, taker_fee_rate=0.0005)
    ex.set_mark(m, 100.0)
    a = _trader(ex, 100.0)

    # Same exact-fit trade, but the 0.5 fee leaves equity 99.5 < 100
    with pytest.raises(InsufficientMarginError):
        _buy(ex, a, 10.0, 100.0)


def test_seller_failing_margin_rejects_the_whole_trade() -> None:
    ex, m = _venue(max_leverage=10)
    ex.set_mark(m, 100.0)
    a = _trader(ex, 10_000.0)
    b = _trader(ex, 10.0, MarginMode.ISOLATED)
    before, events = ex.state_hash(), len(ex.journal)

    with pytest.raises(InsufficientMarginError, match="seller"):
        ex.trade(m, buyer=a, seller=b, size=5.0, price=100.0)

    assert (ex.state_hash(), len(ex.journal)) == (before, events)


@pytest.mark.parametrize("mode", list(MarginMode))
def test_reducing_below_initial_margin_needs_no_margin_but_adding_is_rejected(
    mode: MarginMode,
) -> None:
    # Arrange: long 10 @ 100 on 100 of margin (10x, maintenance 2.5%); the mark falls to 93:
    # equity 100 - 70 = 30, far below initial 93 but above maintenance 23.25 (no liquidation)
    ex, m = _venue(max_leverage=10, maintenance_rate=0.025)
    ex.set_mark(m, 100.0)
    a = _trader(ex, 100.0, mode)
    _buy(ex, a, 10.0, 100.0)
    ex.set_mark(m, 93.0)
    assert ex.position(a, m).size == 10.0  # not liquidated
    before = ex.state_hash()

    # Act / Assert: adding and flipping open new risk: refused
    with pytest.raises(InsufficientMarginError):
        _buy(ex, a, 1.0, 93.0)
    with pytest.raises(InsufficientMarginError):
        # flip to a 4.0 short: equity after the realized -70 is 30 < initial 4 x 93 / 10 = 37.2
        _sell(ex, a, 14.0, 93.0)
    assert ex.state_hash() == before

    # Reducing is always allowed: realized 4 x (93 - 100) = -28
    _sell(ex, a, 4.0, 93.0)
    assert ex.position(a, m).size == pytest.approx(6.0)
    assert ex.position(a, m).realized_pnl == pytest.approx(-28.0)


@pytest.mark.parametrize("mode", list(MarginMode))
def test_reducing_at_a_price_that_leaves_the_account_under_water_is_allowed(
    mode: MarginMode,
) -> None:
    # Arrange: long 10 @ 100 on 100 of margin, mark 100
    ex, m = _venue(max_leverage=10)
    ex.set_mark(m, 100.0)
    a = _trader(ex, 100.0, mode)
    _buy(ex, a, 10.0, 100.0)

    # Act: sell in two steps at 50, far below the mark
    _sell(ex, a, 4.0, 50.0)
    _sell(ex, a, 6.0, 50.0)

    # Assert: all of the 10 x 50 = 500 loss is realized; the account owes 400
    assert ex.position(a, m).size == 0.0
    assert ex.position(a, m).realized_pnl == pytest.approx(-500.0)
    assert ex.account_margins(a).total_equity == pytest.approx(-400.0)
    assert ex.cash(a) == pytest.approx(-400.0)
    assert ex.conservation().holds
    assert ex.conservation().negative_equity == pytest.approx(400.0)


def test_system_accounts_take_any_size_without_margin() -> None:
    ex, m = _venue(max_leverage=10)
    ex.set_mark(m, 100.0)
    a = _trader(ex, 1_000_000.0)

    _buy(ex, a, 1_000.0, 100.0)

    assert ex.position(ex.liquidity_account, m).size == pytest.approx(-1_000.0)
    assert ex.cash(ex.liquidity_account) == 0.0


def test_trading_before_first_mark_is_a_state_error() -> None:
    ex, _ = _venue()
    a = _trader(ex, 1_000.0)

    with pytest.raises(StateError, match="mark"):
        _buy(ex, a, 0.001, 100.0)


# ---------------------------------------------------------------------------- isolated margin


def test_isolated_open_tops_up_initial_margin_plus_fee_from_cash() -> None:
    # Arrange
    ex, m = _venue(max_leverage=10, taker_fee_rate=0.0005)
    ex.set_mark(m, 100.0)
    a = _trader(ex, 1_000.0, MarginMode.ISOLATED)

    # Act: buy 5 @ 100: initial 500 / 10 = 50, taker fee 500 x 0.05% = 0.25
    _buy(ex, a, 5.0, 100.0)

    # Assert: 50.25 moved in, the fee paid out of it: 50 left in the position
    pos = ex.position(a, m)
    assert pos.margin_mode is MarginMode.ISOLATED
    assert pos.isolated_margin == pytest.approx(50.0)
    assert ex.cash(a) == pytest.approx(949.75)
    assert ex.cash(ex.fee_account) == pytest.approx(0.25)


def test_isolated_open_above_mark_tops_up_the_immediate_loss_too() -> None:
    ex, m = _venue(max_leverage=10)
    ex.set_mark(m, 100.0)
    a = _trader(ex, 1_000.0, MarginMode.ISOLATED)

    _buy(ex, a, 5.0, 101.0)

    # initial at the mark: 500 / 10 = 50; upnl at the mark: 5 x (100 - 101) = -5 -> 55 moved
    state = ex.isolated_state(m)
    assert ex.position(a, m).isolated_margin == pytest.approx(55.0)
    assert state["equity"][a] == pytest.approx(50.0)
    assert ex.cash(a) == pytest.approx(945.0)


def test_isolated_increase_tops_up_only_the_missing_margin() -> None:
    ex, m = _venue(max_leverage=10)
    ex.set_mark(m, 100.0)
    a = _trader(ex, 1_000.0, MarginMode.ISOLATED)
    _buy(ex, a, 5.0, 100.0)  # 50 in the position
    ex.add_isolated_margin(a, m, 30.0)  # 80

    _buy(ex, a, 5.0, 100.0)  # needs 100: 20 more

    assert ex.position(a, m).isolated_margin == pytest.approx(100.0)
    assert ex.cash(a) == pytest.approx(900.0)


def test_isolated_open_without_enough_cash_is_rejected() -> None:
    ex, m = _venue(max_leverage=10)
    ex.set_mark(m, 100.0)
    a = _trader(ex, 49.0, MarginMode.ISOLATED)

    with pytest.raises(InsufficientMarginError, match="isolated"):
        _buy(ex, a, 5.0, 100.0)


def test_isolated_loss_does_not_touch_cross_cash_until_closed() -> None:
    ex, m = _venue(max_leverage=10)
    ex.set_mark(m, 100.0)
    a = _trader(ex, 1_000.0, MarginMode.ISOLATED)
    _buy(ex, a, 5.0, 100.0)  # 50 isolated, 950 cash

    ex.set_mark(m, 95.0)  # upnl -25

    margins = ex.account_margins(a)
    assert margins.cash == pytest.approx(950.0)
    assert margins.cross_equity == pytest.approx(950.0)
    assert margins.total_equity == pytest.approx(975.0)
    assert ex.isolated_state(m)["equity"][a] == pytest.approx(25.0)


def test_closing_isolated_position_returns_its_margin_to_cash() -> None:
    ex, m = _venue(max_leverage=10)
    ex.set_mark(m, 100.0)
    a = _trader(ex, 1_000.0, MarginMode.ISOLATED)
    _buy(ex, a, 5.0, 100.0)

    _sell(ex, a, 5.0, 104.0)

    # 50 margin + 5 x 4 profit back to cash: 950 + 70 = 1,020
    assert ex.position(a, m).isolated_margin == 0.0
    assert ex.cash(a) == pytest.approx(1_020.0)


def test_add_and_remove_isolated_margin_move_cash_both_ways() -> None:
    ex, m = _venue(max_leverage=10)
    ex.set_mark(m, 100.0)
    a = _trader(ex, 1_000.0, MarginMode.ISOLATED)
    _buy(ex, a, 5.0, 100.0)  # 50 isolated, 950 cash

    ex.add_isolated_margin(a, m, 30.0)
    assert (ex.position(a, m).isolated_margin, ex.cash(a)) == pytest.approx((80.0, 920.0))

    ex.remove_isolated_margin(a, m, 30.0)
    assert (ex.position(a, m).isolated_margin, ex.cash(a)) == pytest.approx((50.0, 950.0))


def test_removing_isolated_margin_below_initial_is_rejected() -> None:
    ex, m = _venue(max_leverage=10)
    ex.set_mark(m, 100.0)
    a = _trader(ex, 1_000.0, MarginMode.ISOLATED)
    _buy(ex, a, 5.0, 100.0)
    ex.add_isolated_margin(a, m, 30.0)  # 80, 30 above initial
    ex.set_mark(m, 98.0)  # upnl 5 x (98 - 100) = -10

    # equity 80 - 10 = 70, initial 5 x 98 / 10 = 49: 21 removable
    with pytest.raises(InsufficientMarginError, match="amount"):
        ex.remove_isolated_margin(a, m, 21.01)
    ex.remove_isolated_margin(a, m, 21.0)
    assert ex.position(a, m).isolated_margin == pytest.approx(59.0)


def test_adding_isolated_margin_beyond_cash_is_refused() -> None:
    ex, m = _venue(max_leverage=10)
    ex.set_mark(m, 100.0)
    a = _trader(ex, 100.0, MarginMode.ISOLATED)
    _buy(ex, a, 5.0, 100.0)  # 50 cash left

    with pytest.raises(InsufficientFundsError, match="amount"):
        ex.add_isolated_margin(a, m, 50.01)


def test_isolated_margin_moves_need_an_open_isolated_position() -> None:
    ex, m = _venue(max_leverage=10)
    ex.set_mark(m, 100.0)
    cross = _trader(ex, 1_000.0)
    _buy(ex, cross, 1.0, 100.0)
    flat = _trader(ex, 1_000.0, MarginMode.ISOLATED)

    with pytest.raises(StateError):
        ex.add_isolated_margin(cross, m, 10.0)
    with pytest.raises(StateError):
        ex.add_isolated_margin(flat, m, 10.0)
    with pytest.raises(StateError):
        ex.remove_isolated_margin(flat, m, 10.0)


# ---------------------------------------------------------------------------- withdrawals


def test_withdraw_up_to_free_collateral_and_no_more() -> None:
    # Arrange: long 1 @ 100 at 10x: initial 10, so 990 of the 1,000 can leave
    ex, m = _venue(max_leverage=10)
    ex.set_mark(m, 100.0)
    a = _trader(ex, 1_000.0)
    _buy(ex, a, 1.0, 100.0)
    assert ex.account_margins(a).withdrawable == pytest.approx(990.0)
    before, events = ex.state_hash(), len(ex.journal)

    # Act / Assert
    with pytest.raises(InsufficientFundsError, match=r"`amount`.*990\.01"):
        ex.withdraw(a, 990.01)
    assert (ex.state_hash(), len(ex.journal)) == (before, events)
    ex.withdraw(a, 990.0)
    assert ex.cash(a) == pytest.approx(10.0)
    assert ex.conservation().net_deposits == pytest.approx(10.0)


def test_unrealized_profit_is_not_withdrawable() -> None:
    ex, m = _venue(max_leverage=10)
    ex.set_mark(m, 100.0)
    a = _trader(ex, 1_000.0)
    _buy(ex, a, 1.0, 100.0)

    ex.set_mark(m, 200.0)

    # free collateral 1,000 + 100 - 20 = 1,080, but only the 1,000 of cash can leave
    margins = ex.account_margins(a)
    assert margins.free_collateral == pytest.approx(1_080.0)
    assert margins.withdrawable == pytest.approx(1_000.0)


def test_withdrawal_from_empty_account_is_refused() -> None:
    ex, _ = _venue()
    a = ex.open_account()

    with pytest.raises(InsufficientFundsError):
        ex.withdraw(a, 1.0)


# ---------------------------------------------------------------------------- grid


@pytest.mark.parametrize(
    ("size", "price", "field"),
    [(0.0015, 100.0, "size"), (0.001, 100.005, "price"), (1.0, 99.999, "price")],
)
def test_off_grid_size_or_price_is_rejected(size: float, price: float, field: str) -> None:
    ex, m = _venue(tick_size=0.01, lot_size=0.001)
    ex.set_mark(m, 100.0)
    a = _trader(ex, 1_000.0)

    with pytest.raises(ValidationError) as info:
        _buy(ex, a, size, price)

    assert info.value.field == field
    assert repr(price if field == "price" else size) in str(info.value)


@pytest.mark.parametrize(("size", "price"), [(0.003, 100.07), (0.1, 60_000.1), (12.345, 0.01)])
def test_on_grid_size_and_price_are_accepted_despite_float_noise(size: float, price: float) -> None:
    ex, m = _venue(tick_size=0.01, lot_size=0.001)
    ex.set_mark(m, price)
    a = _trader(ex, 1_000_000.0)

    _buy(ex, a, size, price)

    assert ex.position(a, m).size == pytest.approx(size)


def test_half_tick_price_is_rejected_at_large_tick_counts() -> None:
    ex, m = _venue(tick_size=0.01, lot_size=0.001)
    ex.set_mark(m, 60_000.0)
    a = _trader(ex, 1_000_000.0)

    with pytest.raises(ValidationError, match="price"):
        _buy(ex, a, 0.1, 60_000.005)


# ---------------------------------------------------------------------------- settings


def test_margin_mode_changes_only_while_flat() -> None:
    ex, m = _venue(max_leverage=10)
    ex.set_mark(m, 100.0)
    a = _trader(ex, 1_000.0)
    _buy(ex, a, 1.0, 100.0)
    before = ex.state_hash()

    with pytest.raises(StateError, match="flat"):
        ex.set_margin_mode(a, m, MarginMode.ISOLATED)
    assert ex.state_hash() == before

    _sell(ex, a, 1.0, 100.0)
    ex.set_margin_mode(a, m, MarginMode.ISOLATED)
    _buy(ex, a, 1.0, 100.0)
    assert ex.position(a, m).margin_mode is MarginMode.ISOLATED
    assert ex.position(a, m).isolated_margin == pytest.approx(10.0)


def test_account_default_mode_applies_to_markets_listed_later() -> None:
    ex = Exchange()
    a = ex.open_account(margin_mode=MarginMode.ISOLATED)

    m = ex.list_market(MarketSpec.simple(SYMBOL))

    assert ex.position(a, m).margin_mode is MarginMode.ISOLATED


def _two_tier_venue() -> tuple[Exchange, int]:
    ex = Exchange(check_invariants=True)
    spec = MarketSpec.from_mapping(
        {
            "symbol": SYMBOL,
            "maker_fee_rate": 0.0,
            "taker_fee_rate": 0.0,
            "tiers": [
                {"notional_floor": 0, "max_leverage": 50, "maintenance_rate": 0.01},
                {"notional_floor": 10_000, "max_leverage": 10, "maintenance_rate": 0.05},
            ],
        }
    )
    m = ex.list_market(spec)
    ex.set_mark(m, 100.0)
    return ex, m


@pytest.mark.parametrize("leverage", [0.99, 50.5, 0.0, -3.0])
def test_leverage_outside_one_to_tier_max_is_rejected(leverage: float) -> None:
    ex, m = _two_tier_venue()
    a = _trader(ex, 10_000.0)

    with pytest.raises(ValidationError) as info:
        ex.set_leverage(a, m, leverage)

    assert info.value.field == "leverage"
    assert repr(leverage) in str(info.value)


def test_leverage_bounds_follow_the_tier_of_the_open_position() -> None:
    ex, m = _two_tier_venue()
    a = _trader(ex, 10_000.0)
    ex.set_leverage(a, m, 50.0)  # flat: tier 0 allows 50x
    _buy(ex, a, 200.0, 100.0)  # 20,000 of notional: tier 1, at most 10x

    with pytest.raises(ValidationError, match="leverage"):
        ex.set_leverage(a, m, 20.0)
    ex.set_leverage(a, m, 10.0)
    assert ex.position(a, m).leverage == 10.0


def test_chosen_leverage_sets_the_initial_margin_rate() -> None:
    ex, m = _two_tier_venue()
    a = _trader(ex, 10_000.0)

    ex.set_leverage(a, m, 4.0)
    _buy(ex, a, 10.0, 100.0)

    # 1,000 of notional at 4x (above the tier's 1/50): 250
    assert ex.account_margins(a).cross_initial == pytest.approx(250.0)


def test_lowering_leverage_without_margin_is_rejected_and_leverage_kept() -> None:
    ex, m = _two_tier_venue()
    a = _trader(ex, 100.0)
    _buy(ex, a, 40.0, 100.0)  # 4,000 at 50x: initial 80 of the 100

    with pytest.raises(InsufficientMarginError, match="leverage"):
        ex.set_leverage(a, m, 20.0)  # would need 200

    assert ex.position(a, m).leverage == 0.0
    ex.set_leverage(a, m, 40.0)  # needs 100: fits exactly
    assert ex.position(a, m).leverage == 40.0
