"""Inverse (coin-margined) markets in the engine, against the closed forms of rules.inverse.

An inverse market is held as a linear market on the reciprocal price (engine/contracts.py);
these tests check what users see in venue units (contracts, USD prices, coin amounts) against
``rules.inverse`` (docs/formulas.md 1.13), which the conformance suites check against the
venues' own examples.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deleverage import Exchange, MarketSpec
from deleverage.engine.contracts import LINEAR, ContractUnits
from deleverage.errors import ConfigError, ValidationError
from deleverage.rules import inverse
from deleverage.spec import MarginMode


def _inverse(**fields: object) -> MarketSpec:
    base: dict[str, object] = {
        "contract_type": "inverse", "contract_value": 1.0, "settlement_asset": "XBT",
        "tick_size": 0.5, "lot_size": 1.0, "maker_fee_rate": 0.0, "taker_fee_rate": 0.0,
        "liquidation_fee_rate": 1.0,
    }  # fmt: skip
    base.update(fields)
    return MarketSpec.simple("XBTUSD", max_leverage=100.0, maintenance_rate=0.005, **base)


def _exchange(spec: MarketSpec, *, mark: float = 10_000.0) -> Exchange:
    ex = Exchange(check_invariants=True)
    ex.list_market(spec)
    ex.deposit(ex.liquidity_account, 1_000.0)
    ex.deposit(ex.insurance_account, 10.0)
    ex.set_mark(spec.symbol, mark)
    return ex


def _trader(ex: Exchange, cash: float, *, isolated: bool = False, leverage: float = 0.0) -> int:
    mode = MarginMode.ISOLATED if isolated else MarginMode.CROSS
    a = ex.open_account(margin_mode=mode)
    ex.deposit(a, cash)
    if leverage:
        ex.set_leverage(a, 0, leverage)
    return a


# ------------------------------------------------------------------------------ spec


def test_inverse_spec_requires_contract_value_and_settlement_asset() -> None:
    with pytest.raises(ConfigError, match="contract_value"):
        MarketSpec.simple("XBTUSD", contract_type="inverse", settlement_asset="XBT")
    with pytest.raises(ConfigError, match="settlement_asset"):
        MarketSpec.simple("XBTUSD", contract_type="inverse", contract_value=1.0)
    with pytest.raises(ConfigError, match="contract_value"):
        MarketSpec.simple("BTCUSDT", contract_value=1.0)


def test_linear_spec_json_has_no_inverse_fields_and_inverse_round_trips() -> None:
    linear = MarketSpec.simple("BTCUSDT")
    assert "contract_value" not in linear.to_json()
    assert "settlement_asset" not in linear.to_json()
    spec = _inverse()
    assert MarketSpec.from_json(spec.to_json()) == spec
    assert ContractUnits.of(linear) is LINEAR


def test_an_exchange_settles_in_one_currency() -> None:
    ex = Exchange()
    ex.list_market(_inverse())
    assert ex.settlement_asset == "XBT"
    with pytest.raises(ValidationError, match="settlement_asset"):
        ex.list_market(MarketSpec.simple("BTCUSDT"))
    with pytest.raises(ValidationError, match="settlement_asset"):
        ex.list_market(_inverse(settlement_asset="ETH").model_copy(update={"symbol": "ETHUSD"}))
    ex.list_market(_inverse().model_copy(update={"symbol": "XBTUSD2"}))  # same coin: fine
    linear = Exchange()
    linear.list_market(MarketSpec.simple("BTCUSDT"))
    with pytest.raises(ValidationError, match="settlement_asset"):
        linear.list_market(_inverse())


def test_update_market_spec_keeps_the_contract() -> None:
    ex = _exchange(_inverse())
    with pytest.raises(ValidationError, match="contract_value"):
        ex.update_market_spec("XBTUSD", _inverse(contract_value=100.0))


# ------------------------------------------------------------------------------ PnL, margins


def test_long_pnl_is_the_inverse_formula_in_coin() -> None:
    # BitMEX Inverse Futures Guide: 100,000 contracts long from 10,000 to 10,500.
    ex = _exchange(_inverse())
    a = _trader(ex, 20.0)
    fill = ex.trade("XBTUSD", buyer=a, seller=ex.liquidity_account, size=100_000, price=10_000.0)
    assert (fill.buyer, fill.size, fill.price) == (a, 100_000.0, 10_000.0)
    position = ex.position(a, "XBTUSD")
    assert position.size == 100_000.0
    assert position.entry_price == pytest.approx(10_000.0, rel=1e-15)
    ex.set_mark("XBTUSD", 10_500.0)
    expected = float(inverse.unrealized_pnl(100_000, 10_000.0, 10_500.0))
    assert position.unrealized_pnl == pytest.approx(expected, rel=1e-12)
    ex.trade("XBTUSD", buyer=ex.liquidity_account, seller=a, size=100_000, price=10_500.0)
    assert ex.cash(a) == pytest.approx(20.0 + expected, rel=1e-12)
    assert ex.position(a, "XBTUSD").size == 0.0


def test_fees_and_margins_are_fractions_of_the_coin_value() -> None:
    ex = _exchange(_inverse(taker_fee_rate=0.00075, maker_fee_rate=-0.00025))
    a = _trader(ex, 5.0)
    fill = ex.trade("XBTUSD", buyer=a, seller=ex.liquidity_account, size=20_000, price=10_000.0)
    value = float(inverse.position_value(20_000, 10_000.0))  # 2 XBT
    assert fill.buyer_fee == pytest.approx(0.00075 * value)
    assert fill.seller_fee == pytest.approx(-0.00025 * value)
    margins = ex.account_margins(a)
    assert margins.cross_initial == pytest.approx(value / 100.0)
    assert margins.cross_maintenance == pytest.approx(value * 0.005)
    table = ex.margin_table()
    assert table.loc[0, "size"] == 20_000.0
    assert table.loc[0, "mark_price"] == 10_000.0
    assert table.loc[0, "notional"] == pytest.approx(value)


def test_short_seller_side_and_harmonic_entry() -> None:
    # OKX / Bybit: inverse entries average harmonically.
    ex = _exchange(_inverse())
    a = _trader(ex, 5.0)
    ex.trade("XBTUSD", buyer=ex.liquidity_account, seller=a, size=3_000, price=10_000.0)
    ex.trade("XBTUSD", buyer=ex.liquidity_account, seller=a, size=1_000, price=12_000.0)
    position = ex.position(a, "XBTUSD")
    assert position.size == -4_000.0
    expected = inverse.average_entry_price([3_000, 1_000], [10_000.0, 12_000.0])
    assert position.entry_price == pytest.approx(expected, rel=1e-12)


def test_funding_longs_pay_shorts_in_coin() -> None:
    ex = _exchange(_inverse())
    a = _trader(ex, 5.0)
    ex.trade("XBTUSD", buyer=a, seller=ex.liquidity_account, size=10_000, price=10_000.0)
    paid = ex.settle_funding("XBTUSD", 0.001)
    # -contracts x cv / mark x rate = -10,000 / 10,000 x 0.001
    assert paid[a] == pytest.approx(-0.001)
    assert paid.sum() == pytest.approx(0.0, abs=1e-15)


# ------------------------------------------------------------------------------ liquidation


@pytest.mark.parametrize("side", [1, -1])
def test_isolated_liquidation_and_bankruptcy_prices_are_the_inverse_closed_forms(
    side: int,
) -> None:
    ex = _exchange(_inverse())
    a = _trader(ex, 1.0, isolated=True, leverage=10.0)
    if side > 0:
        ex.trade("XBTUSD", buyer=a, seller=ex.liquidity_account, size=10_000, price=10_000.0)
    else:
        ex.trade("XBTUSD", buyer=ex.liquidity_account, seller=a, size=10_000, price=10_000.0)
    margin = ex.position(a, "XBTUSD").isolated_margin
    assert margin == pytest.approx(0.1)  # 1 XBT of value at 10x
    liq, bankrupt = ex.liquidation_prices("XBTUSD", np.array([a]))
    want_liq = inverse.liquidation_price(side * 10_000, 10_000.0, margin, maintenance_rate=0.005)
    assert liq[0] == pytest.approx(float(want_liq), rel=1e-12)
    # BitMEX (bitmex_utils README): long BP = entry / (1 + IM), short entry / (1 - IM).
    assert bankrupt[0] == pytest.approx(10_000.0 / (1 + side * 0.1), rel=1e-12)


def test_cross_liquidation_price_is_the_coin_m_closed_form() -> None:
    ex = _exchange(_inverse())
    a = _trader(ex, 20.0)
    ex.trade("XBTUSD", buyer=a, seller=ex.liquidity_account, size=100_000, price=10_000.0)
    liq, bankrupt = ex.liquidation_prices("XBTUSD", np.array([a]))
    assert liq[0] == pytest.approx(
        float(inverse.liquidation_price(100_000, 10_000.0, 20.0, maintenance_rate=0.005))
    )
    assert bankrupt[0] == pytest.approx(float(inverse.bankruptcy_price(100_000, 10_000.0, 20.0)))


@pytest.mark.parametrize("side", [1, -1])
def test_the_risk_step_liquidates_at_the_liquidation_price_and_not_before(side: int) -> None:
    ex = _exchange(_inverse())
    a = _trader(ex, 1.0, isolated=True, leverage=20.0)
    buyer, seller = (a, ex.liquidity_account) if side > 0 else (ex.liquidity_account, a)
    ex.trade("XBTUSD", buyer=buyer, seller=seller, size=10_000, price=10_000.0)
    liq = float(ex.liquidation_prices("XBTUSD", np.array([a]))[0][0])
    margin = ex.position(a, "XBTUSD").isolated_margin
    fund_before = ex.cash(ex.insurance_account)
    ex.set_mark("XBTUSD", liq * (1 + side * 1e-6))
    assert ex.last_step.liquidations == 0
    assert ex.position(a, "XBTUSD").size == side * 10_000.0
    fill = liq * (1 - side * 1e-6)
    ex.set_mark("XBTUSD", fill)
    assert ex.last_step.liquidations == 1
    assert ex.position(a, "XBTUSD").size == 0.0
    # liquidation_fee_rate = 1: the fund keeps the equity left at the fill (BitMEX: everything
    # down to bankruptcy), about the maintenance margin at the liquidation price.
    gained = ex.cash(ex.insurance_account) - fund_before
    left = margin + float(inverse.unrealized_pnl(side * 10_000, 10_000.0, fill))
    assert gained == pytest.approx(left, rel=1e-9)
    assert gained == pytest.approx(0.005 * float(inverse.position_value(10_000, liq)), rel=1e-3)
    assert ex.conservation().holds


def test_a_gap_past_bankruptcy_is_paid_by_the_fund_in_coin() -> None:
    ex = _exchange(_inverse())
    a = _trader(ex, 1.0, isolated=True, leverage=20.0)
    ex.trade("XBTUSD", buyer=a, seller=ex.liquidity_account, size=10_000, price=10_000.0)
    bankrupt = float(ex.liquidation_prices("XBTUSD", np.array([a]))[1][0])
    ex.set_mark("XBTUSD", 9_000.0)  # far below bankruptcy (~9,523.8)
    step = ex.last_step
    loss = float(inverse.unrealized_pnl(10_000, bankrupt, 9_000.0))  # coin lost past BP
    assert step.insurance_paid == pytest.approx(-loss, rel=1e-9)
    assert step.bad_debt == 0.0
    assert ex.conservation().holds


def test_adl_queue_scores_are_bitmex_inverse_ranking() -> None:
    # BitMEX ADL: PNL% x effective leverage on XBT values (rules.inverse.adl_score).
    ex = _exchange(_inverse())
    a = _trader(ex, 1.0, isolated=True, leverage=10.0)
    ex.trade("XBTUSD", buyer=a, seller=ex.liquidity_account, size=10_000, price=10_000.0)
    ex.set_mark("XBTUSD", 11_000.0)
    queue = ex.adl_queue("XBTUSD", 1)
    assert list(queue["account"]) == [a]
    assert queue.loc[0, "size"] == 10_000.0
    bankrupt = float(ex.liquidation_prices("XBTUSD", np.array([a]))[1][0])
    want = float(inverse.adl_score(10_000, 10_000.0, 11_000.0, bankrupt))
    assert queue.loc[0, "score"] == pytest.approx(want, rel=1e-9)
    assert len(ex.adl_queue("XBTUSD", -1)) == 0


def test_adl_closes_an_inverse_winner_at_the_bankruptcy_price() -> None:
    spec = _inverse(liquidation_fee_rate=0.0)
    ex = Exchange(check_invariants=True)
    ex.list_market(spec)
    ex.set_mark("XBTUSD", 10_000.0)
    loser = _trader(ex, 0.06, isolated=True, leverage=20.0)
    winner = _trader(ex, 5.0)
    ex.trade("XBTUSD", buyer=loser, seller=winner, size=10_000, price=10_000.0)
    bankrupt = float(ex.liquidation_prices("XBTUSD", np.array([loser]))[1][0])
    ex.set_mark("XBTUSD", 9_000.0)  # the empty fund cannot pay: the short winner is ADL'd
    step = ex.last_step
    assert step.adl_rounds >= 1
    assert ex.position(loser, "XBTUSD").size == 0.0
    assert ex.position(winner, "XBTUSD").size == 0.0
    # The winner's short of 10,000 closed at the loser's bankruptcy price.
    gained = float(inverse.unrealized_pnl(-10_000, 10_000.0, bankrupt))
    assert ex.cash(winner) == pytest.approx(5.0 + gained, rel=1e-9)
    assert ex.conservation().holds


# ------------------------------------------------------------------------------ replay, bulk


def test_replay_rebuilds_an_inverse_exchange_bit_for_bit() -> None:
    ex = _exchange(_inverse(taker_fee_rate=0.00075))
    traders = [_trader(ex, 0.2, isolated=k % 2 == 0, leverage=25.0) for k in range(6)]
    for k, a in enumerate(traders):
        size = 1_000 * (k + 1)
        if k % 3:
            ex.trade("XBTUSD", buyer=a, seller=ex.liquidity_account, size=size, price=10_000.0)
        else:
            ex.trade("XBTUSD", buyer=ex.liquidity_account, seller=a, size=size, price=10_000.0)
    ex.settle_funding("XBTUSD", 0.0001, ts_ns=1)
    for k, price in enumerate((9_800.0, 9_500.0, 10_400.0, 10_900.0, 9_100.0)):
        ex.set_mark("XBTUSD", price, ts_ns=2 + k)
    again = Exchange.replay(ex.journal)
    assert again.state_hash() == ex.state_hash()


def test_open_positions_takes_contracts_and_usd_prices() -> None:
    ex = _exchange(_inverse())
    a, b = _trader(ex, 1.0), _trader(ex, 1.0)
    ex.open_positions("XBTUSD", [a, b], [5_000.0, -2_000.0], [10_000.0, 10_000.0])
    assert ex.position(a, "XBTUSD").size == 5_000.0
    assert ex.position(b, "XBTUSD").size == -2_000.0
    assert ex.position(b, "XBTUSD").entry_price == pytest.approx(10_000.0)
    assert ex.open_interest("XBTUSD") == 5_000.0
    with pytest.raises(ValidationError, match=r"prices\[0\]"):
        ex.open_positions("XBTUSD", [_trader(ex, 1.0)], [1.0], [0.0])


def test_liquidate_primitive_takes_contracts_and_a_usd_limit() -> None:
    spec = _inverse(liquidation={"execution": "liquidator"}, liquidation_fee_rate=0.0)
    ex = _exchange(spec)
    ex.deposit(ex.liquidator_account, 10.0)
    a = _trader(ex, 0.02)
    ex.trade("XBTUSD", buyer=a, seller=ex.liquidity_account, size=10_000, price=10_000.0)
    with pytest.raises(ValidationError, match="size"):
        ex.liquidate(a, "XBTUSD", 20_000)
    assert ex.liquidate(a, "XBTUSD", 4_000) == 0.0  # not below maintenance (0.005 XBT)
    ex.transfer(a, ex.fee_account, 0.016, reason=0)  # type: ignore[arg-type]
    # A long is sold below the mark: a USD limit at the mark refuses the fill.
    assert ex.liquidate(a, "XBTUSD", 4_000, limit_price=10_000.0) == 0.0
    assert ex.liquidate(a, "XBTUSD", 4_000, limit_price=9_000.0) == 4_000.0
    assert ex.position(a, "XBTUSD").size == pytest.approx(6_000.0)
    assert ex.position(ex.liquidator_account, "XBTUSD").size == pytest.approx(4_000.0)


def test_deleverage_primitive_takes_contracts() -> None:
    ex = _exchange(_inverse())
    a, b = _trader(ex, 1.0), _trader(ex, 1.0)
    ex.trade("XBTUSD", buyer=a, seller=b, size=5_000, price=10_000.0)
    with pytest.raises(ValidationError, match="size"):
        ex.deleverage("XBTUSD", a, b, 6_000)
    assert ex.deleverage("XBTUSD", a, b, 2_000, at_oracle=True) == 2_000.0
    assert ex.position(a, "XBTUSD").size == pytest.approx(3_000.0)
    assert ex.position(b, "XBTUSD").size == pytest.approx(-3_000.0)


# ------------------------------------------------------------------------------ properties


@settings(max_examples=60, deadline=None)
@given(
    contracts=st.integers(min_value=1, max_value=10**6),
    side=st.sampled_from([1, -1]),
    entry=st.integers(min_value=1_000, max_value=200_000).map(float),
    move=st.floats(min_value=-0.5, max_value=1.0),
    value=st.sampled_from([1.0, 10.0, 100.0]),
)
def test_engine_pnl_equals_the_inverse_formula(
    contracts: int, side: int, entry: float, move: float, value: float
) -> None:
    ex = Exchange()
    ex.list_market(_inverse(contract_value=value, tick_size=1e-8, settlement_asset="BTC"))
    ex.set_mark("XBTUSD", entry)
    a = ex.open_account()
    ex.deposit(a, 1e9)
    ex.deposit(ex.liquidity_account, 1e9)
    buyer, seller = (a, ex.liquidity_account) if side > 0 else (ex.liquidity_account, a)
    ex.trade("XBTUSD", buyer=buyer, seller=seller, size=contracts, price=entry)
    mark = entry * (1 + move)
    ex.set_mark("XBTUSD", mark)
    want = float(inverse.unrealized_pnl(side * contracts, entry, mark, contract_size=value))
    got = ex.position(a, "XBTUSD").unrealized_pnl
    assert got == pytest.approx(want, rel=1e-9, abs=1e-12)
    assert ex.position(a, "XBTUSD").size == side * contracts
    assert ex.conservation().holds
