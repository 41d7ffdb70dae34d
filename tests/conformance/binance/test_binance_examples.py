"""Binance's worked examples (USDⓈ-M and COIN-M) against the engine's rules.

Sources (each vector in ``vectors.json`` names its own): Binance FAQ "How to Calculate
Liquidation Price of USDⓈ-M Futures Contracts"
(https://www.binance.com/en/support/faq/b3c689c1f50a44cabb3a84e663b81d93) and its COIN-M twin
(.../ceccfcfb4e3a45e3b48b0b1bb1a8ae46); "Liquidation"
(https://binance.zendesk.com/hc/en-us/articles/360033525271-Liquidation); the stop-loss FAQ
(.../25edcd7fe0e544839d0847b8cbb2e400); Binance developer forum threads on COIN-M liquidation
prices and Leverage PnL; ``freqtrade/freqtrade`` @ ``c9ae5e1e9ff25bb55dd61f5e5519f7c479291edb``
``tests/exchange/test_binance.py::test_liquidation_price_binance`` (the FAQ's cross example).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from deleverage import Exchange, MarginMode, MarketSpec
from deleverage.rules import adl, inverse
from deleverage.rules import margin as mm
from deleverage.spec import TierArrays, maintenance_deductions
from deleverage.venues import preset

VECTORS = {v["id"]: v for v in json.loads((Path(__file__).parent / "vectors.json").read_text())}
S = 1_000_000_000


def _value(x: Any) -> Any:
    return x["value"] if isinstance(x, dict) and "value" in x else x


def _bracket(mmr: float, cum: float) -> TierArrays:
    """One bracket with Binance's published rate and maintenance amount."""
    return TierArrays(
        floor=np.array([0.0]), imr=np.array([2 * mmr]), mmr=np.array([mmr]), cum=np.array([cum])
    )


def test_every_vector_has_a_source() -> None:
    assert len(VECTORS) == 14
    for v in VECTORS.values():
        assert v["source"].get("url") or v["source"].get("commit"), v["id"]


@pytest.mark.parametrize(
    "vid", ["bn-cross-liq-calc-example-ethusdt", "bn-cross-liq-calc-example-btcusdt"]
)
def test_cross_liquidation_price_with_another_position(vid: str) -> None:
    # LP = (WB - TMM1 + UPNL1 + cumB - side Q EP) / (Q MMR_B - side Q); TMM1 and UPNL1 are the
    # other contract's maintenance and PnL at its mark, computed here by the engine too.
    i = VECTORS[vid]["inputs"]
    c, o = i["contract"], i["other_position"]
    other_notional = o["size"] * o["mark_price"]
    tmm1 = float(mm.maintenance_margin(other_notional, _bracket(o["mmr"], o["cum"])))
    upnl1 = float(mm.unrealized_pnl(o["size"], o["entry_price"], o["mark_price"]))
    assert tmm1 == pytest.approx(_value(i["TMM1"]), abs=1e-4)
    assert upnl1 == pytest.approx(_value(i["UPNL1"]), abs=1e-4)
    price = mm.liquidation_price_cross(
        c["size"], c["entry_price"], wallet_balance=_value(i["wallet_balance"]),
        tiers=_bracket(c["mmr"], c["cum"]), other_maintenance=tmm1, other_unrealized_pnl=upnl1,
    )  # fmt: skip
    assert round(float(price), 2) == _value(VECTORS[vid]["expected"]["liquidation_price"])


@pytest.mark.parametrize(
    "vid",
    ["bn-maintenance-margin-calc-example-btcusdt", "bn-maintenance-margin-calc-example-ethusdt"],
)
def test_maintenance_margin_of_the_faq_example(vid: str) -> None:
    i = VECTORS[vid]["inputs"]
    got = mm.maintenance_margin(_value(i["notional_at_mark"]), _bracket(i["mmr"], i["cum"]))
    assert float(got) == pytest.approx(_value(VECTORS[vid]["expected"]["maintenance_margin"]))


@pytest.mark.parametrize("vid", ["bn-upnl-calc-example-btcusdt", "bn-upnl-calc-example-ethusdt"])
def test_unrealized_pnl_of_the_faq_example(vid: str) -> None:
    i = VECTORS[vid]["inputs"]
    got = mm.unrealized_pnl(i["size"], i["entry_price"], i["mark_price"])
    assert round(float(got), 2) == _value(VECTORS[vid]["expected"]["unrealized_pnl"])


def test_stop_loss_faq_single_position_liquidation_price() -> None:
    i = VECTORS["bn-stoploss-faq-liq-1"]["inputs"]
    price = mm.liquidation_price_cross(
        i["size_derived"], i["entry_price"], wallet_balance=_value(i["wallet_balance"]),
        tiers=_bracket(i["mmr"], i["cum"]),
    )  # fmt: skip
    assert round(float(price), 1) == _value(
        VECTORS["bn-stoploss-faq-liq-1"]["expected"]["liquidation_price"]
    )


def test_stop_loss_faq_added_position_to_the_faqs_rounding() -> None:
    # The FAQ's 35,857.67 comes from rounded, unstated sizes: 0.042 BTC for 2,000 USDT gives
    # 35,857.72 (the research note: reproducible only to ~0.05 USDT).
    i = VECTORS["bn-stoploss-faq-liq-2"]["inputs"]
    size, cost = 0.042, sum(p["notional"] for p in i["positions"])
    price = mm.liquidation_price_cross(
        size, cost / size, wallet_balance=i["wallet_balance"], tiers=_bracket(i["mmr"], i["cum"])
    )
    expected = _value(VECTORS["bn-stoploss-faq-liq-2"]["expected"]["liquidation_price"])
    assert float(price) == pytest.approx(expected, abs=0.06)


def test_maintenance_amount_usdm_bracket_three_is_1300() -> None:
    # "Maintenance Amount on Level 3 = 250,000 x (1% - 0.5%) + 50 = 1,300": from the table.
    e = VECTORS["bn-maintenance-amount-usdm"]["expected"]
    tiers = preset("binance").tier_arrays
    assert tiers.cum[2] == pytest.approx(_value(e["cum"]))
    assert tiers.mmr[mm.tier_index(264_000.0, tiers)] == e["lookups"]["position_264000_mmr"]
    assert tiers.cum[mm.tier_index(500_000.0, tiers)] == e["lookups"]["position_500000_cum"]


def test_maintenance_amount_coinm_step() -> None:
    # cum_n = floor_n x (mmr_n - mmr_n-1) + cum_n-1 = 50 x (5% - 2.5%) + 0.56 = 1.81 BTC.
    i = VECTORS["bn-maintenance-amount-coinm"]["inputs"]
    step = maintenance_deductions(
        np.array([0.0, _value(i["bracket_floor"])]), np.array([i["mmr_prev"], i["mmr_n"]])
    )[1]
    got = step + _value(i["cum_prev"])
    assert got == pytest.approx(_value(VECTORS["bn-maintenance-amount-coinm"]["expected"]["cum"]))


def test_coinm_maintenance_margin_in_coin() -> None:
    # 100 contracts of 100 USD at 25,000: 0.4 BTC, maintenance 0.4% -> 0.0016 BTC.
    i, e = (
        VECTORS["bn-coinm-maintenance-margin"]["inputs"],
        VECTORS["bn-coinm-maintenance-margin"]["expected"],
    )
    value = inverse.position_value(
        i["contracts"], i["mark_price"], contract_size=_value(i["contract_size"])
    )
    assert float(value) == pytest.approx(_value(e["notional"]))
    got = mm.maintenance_margin(value, _bracket(i["mmr"], i["cum"]))
    assert float(got) == pytest.approx(_value(e["maintenance_margin"]))


def test_coinm_cross_liquidation_price_of_the_web_calculator() -> None:
    # LP = N (MMR + side) / (WB + cum + side N / EP), N = 100,000 x 100 USD.
    v = VECTORS["bn-coinm-cross-liq-calculator"]
    i = v["inputs"]
    price = inverse.liquidation_price(
        i["contracts"], i["entry_price"], _value(i["wallet_balance"]), maintenance_rate=i["mmr"],
        maintenance_deduction=_value(i["cum"]), contract_size=_value(i["contract_size"]),
    )  # fmt: skip
    assert round(float(price), 1) == _value(v["expected"]["liquidation_price"])


# ------------------------------------------------------------ BTCUSD_PERP (COIN-M) in the engine


def _coinm(mark: float, **fields: Any) -> Exchange:
    spec = MarketSpec.from_mapping({**preset("binance", "BTCUSD_PERP").model_dump(), **fields})
    ex = Exchange(check_invariants=True)
    ex.list_market(spec)
    ex.deposit(ex.liquidity_account, 10_000.0)
    ex.set_mark("BTCUSD_PERP", mark)
    return ex


def test_coinm_preset_is_inverse_with_100_usd_contracts() -> None:
    spec = preset("binance", "BTCUSD_PERP")
    assert (spec.contract_type, spec.contract_value, spec.settlement_asset) == (
        "inverse", 100.0, "BTC",
    )  # fmt: skip
    # The 4x bracket's maintenance amount, computed from the table (BTC).
    assert spec.tier_arrays.cum[6] == pytest.approx(11.605)


def test_coinm_engine_maintenance_margin_in_coin() -> None:
    # 100 contracts of 100 USD at 25,000: 0.4 BTC, maintenance 0.4% -> 0.0016 BTC.
    i, e = (
        VECTORS["bn-coinm-maintenance-margin"]["inputs"],
        VECTORS["bn-coinm-maintenance-margin"]["expected"],
    )
    ex = _coinm(float(i["mark_price"]))
    trader = ex.open_account()
    ex.deposit(trader, 1.0)
    ex.trade(
        "BTCUSD_PERP", buyer=trader, seller=ex.liquidity_account, size=i["contracts"],
        price=float(i["mark_price"]),
    )  # fmt: skip
    row = ex.margin_table().iloc[0]
    assert row["size"] == i["contracts"]
    assert row["notional"] == pytest.approx(_value(e["notional"]))
    assert row["maintenance_margin"] == pytest.approx(_value(e["maintenance_margin"]))


def test_coinm_engine_cross_liquidation_price_of_the_web_calculator() -> None:
    # Wallet 101 BTC, long 100,000 contracts at 45,000 (the calculator ignores fees): the
    # engine's cross price, with the bracket of the notional at that price (12.5%, cum
    # 11.605 BTC from the preset's table), is the calculator's 33,599.4.
    v = VECTORS["bn-coinm-cross-liq-calculator"]
    i = v["inputs"]
    ex = _coinm(float(i["entry_price"]), taker_fee_rate=0.0)
    trader = ex.open_account()
    ex.deposit(trader, _value(i["wallet_balance"]))
    ex.trade(
        "BTCUSD_PERP", buyer=trader, seller=ex.liquidity_account, size=i["contracts"],
        price=float(i["entry_price"]),
    )  # fmt: skip
    liq, _ = ex.liquidation_prices("BTCUSD_PERP", np.array([trader]))
    assert round(float(liq[0]), 1) == _value(v["expected"]["liquidation_price"])
    # And the risk step liquidates there, not above.
    ex.set_mark("BTCUSD_PERP", 33_600.0)
    assert ex.last_step.liquidations == 0
    ex.set_mark("BTCUSD_PERP", 33_599.0)
    assert ex.last_step.liquidations == 1


def test_adl_leverage_pnl() -> None:
    # PnL% = 40.2 / 4.27 = 9.41; Leverage PnL = 9.41 x 13.42% = 1.26.
    v = VECTORS["bn-adl-leverage-pnl"]
    i = v["inputs"]
    equity = i["wallet_balance"] + i["unrealized_profit"]
    score = adl.score_binance(
        [1.0], [100.0], 100.0 + i["unrealized_profit"], wallet_balance=[i["wallet_balance"]],
        maintenance=[i["margin_ratio"] * equity],
    )  # fmt: skip
    assert round(i["unrealized_profit"] / i["wallet_balance"], 2) == v["expected"]["pnl_percent"]
    assert round(float(score[0]), 2) == v["expected"]["leverage_pnl"]


def test_liquidation_fee_on_the_amount_liquidated() -> None:
    # 0.3% of 2 BTC at 40,000 = 240 USDT to the insurance fund. Engine: a full liquidation of
    # an isolated long of 2 BTC (5% margin) at a mark of 40,000, no trading fees.
    v = VECTORS["bn-liquidation-fee-btcusdt"]
    i = v["inputs"]
    spec = MarketSpec.simple(
        "BTCUSDT", max_leverage=20.0, maintenance_rate=0.04, maker_fee_rate=0.0,
        taker_fee_rate=0.0, liquidation_fee_rate=_value(i["fee_rate"]),
    )  # fmt: skip
    ex = Exchange(check_invariants=True)
    m = ex.list_market(spec)
    ex.set_mark(m, 41_000.0)
    a = ex.open_account(margin_mode=MarginMode.ISOLATED)
    ex.deposit(a, 5_000.0)
    ex.trade(m, buyer=a, seller=ex.liquidity_account, size=i["liquidated_size"], price=41_000.0)
    ex.add_isolated_margin(a, m, ex.cash(a))

    ex.set_mark(m, float(i["fill_price"]), ts_ns=1 * S)

    assert ex.position(a, m).size == 0.0
    assert ex.last_step.penalties == pytest.approx(_value(v["expected"]["liquidation_fee"]))


# ------------------------------------------------------------ the fund's takeover limit


def _takeover(cap: float | None, fund: float, *, isolated: bool) -> tuple[Exchange, int, int]:
    """A long of 10 at 100 (10x, margin 100) against a cross short; the mark gaps to 85: the
    long ends 50 below bankruptcy, notional 850 at the mark."""
    spec = MarketSpec.simple(
        "BTCUSDT", max_leverage=10.0, maintenance_rate=0.05, maker_fee_rate=0.0,
        taker_fee_rate=0.0, liquidation_fee_rate=0.0, lot_size=1.0, tick_size=1.0,
        adl={"ranking": "binance", "price": "bankruptcy", "fund_takeover_max_notional": cap},
    )  # fmt: skip
    ex = Exchange(check_invariants=True)
    ex.list_market(spec)
    ex.set_mark("BTCUSDT", 100.0)
    ex.deposit(ex.insurance_account, fund)
    loser = ex.open_account(margin_mode=MarginMode.ISOLATED if isolated else MarginMode.CROSS)
    winner = ex.open_account()
    ex.deposit(loser, 100.0)
    ex.deposit(winner, 10_000.0)
    if isolated:
        ex.set_leverage(loser, "BTCUSDT", 10.0)
    ex.trade("BTCUSDT", buyer=loser, seller=winner, size=10.0, price=100.0)
    ex.set_mark("BTCUSDT", 85.0, ts_ns=1)
    return ex, loser, winner


@pytest.mark.parametrize("isolated", [True, False])  # the batch path and the per-account path
def test_fund_takes_over_only_up_to_its_size_then_adl(isolated: bool) -> None:
    # Binance Insurance Fund (https://www.binance.com/en/support/articles/360033525371): "The
    # fund will not be allowed to exceed a predefined position notional on the market; by
    # default, this is 100% the size of the insurance fund. Any positions that would increase
    # beyond the max notional will be subject to counterparty-liquidation."
    ex, loser, winner = _takeover(1.0, 500.0, isolated=isolated)  # 850 > 100% of 500
    step = ex.last_step
    assert step.insurance_paid == 0.0
    assert step.adl_rounds >= 1
    assert ex.position(loser, "BTCUSDT").size == 0.0
    assert ex.position(winner, "BTCUSDT").size == 0.0  # closed against the bankrupt long
    assert ex.cash(ex.insurance_account) == pytest.approx(500.0)
    assert preset("binance").adl.fund_takeover_max_notional == 1.0


@pytest.mark.parametrize("isolated", [True, False])
@pytest.mark.parametrize(("cap", "fund"), [(1.0, 1_000.0), (None, 500.0)])
def test_fund_within_its_takeover_limit_pays_the_deficit(
    cap: float | None, fund: float, isolated: bool
) -> None:
    ex, loser, winner = _takeover(cap, fund, isolated=isolated)  # 850 <= 1,000, or no limit
    assert ex.position(loser, "BTCUSDT").size == 0.0
    step = ex.last_step
    assert step.insurance_paid == pytest.approx(50.0)
    assert step.adl_rounds == 0
    assert ex.position(winner, "BTCUSDT").size == -10.0
