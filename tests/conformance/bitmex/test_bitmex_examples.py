"""BitMEX's worked examples against the engine's rules.

Sources (each vector in ``vectors.json`` names its own): BitMEX "Auto Deleveraging" and "Auto
Deleveraging Examples" (https://www.bitmex.com/app/autoDeleveragingExamples), "Liquidation
Examples" (https://testnet.bitmex.com/app/liquidationExamples), "Risk Limits Examples"
(https://bitmex.com/app/riskLimitsExamples, two revisions), "Inverse Futures Guide", "Margin
Terms Definitions" (support.bitmex.com); third-party copies where noted in the vector.
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
from deleverage.spec import TierArrays
from deleverage.venues import preset

VECTORS = {v["id"]: v for v in json.loads((Path(__file__).parent / "vectors.json").read_text())}
S = 1_000_000_000


def _value(x: Any) -> Any:
    return x["value"] if isinstance(x, dict) and "value" in x else x


def test_every_vector_has_a_source() -> None:
    assert len(VECTORS) == 11
    for v in VECTORS.values():
        assert v["source"].get("url") or v["source"].get("commit"), v["id"]


def test_adl_queue_allocation_and_indicator() -> None:
    # Longs ranked by score (rank 6 first); a short of 20 closes 10 of account 2 and 10 of 5
    # at the bankruptcy price; the indicator buckets the size-weighted percentile by 20%.
    v = VECTORS["bm-adl-allocation"]
    longs = v["inputs"]["longs"]
    ids = [row["account"] for row in longs]
    order = adl.rank([float(row["rank"]) for row in longs], ids)
    queue = [ids[k] for k in order.tolist()]
    assert queue == v["expected"]["queue"]
    sizes = np.array([float(longs[k]["qty"]) for k in order.tolist()])
    taken = adl.allocate_ranked(
        np.arange(len(sizes)), sizes, float(v["inputs"]["liquidated"]["qty"])
    )
    closed = {queue[k]: float(q) for k, q in enumerate(taken) if q > 0}
    assert closed == {int(k): q for k, q in v["expected"]["closed"].items()}
    lights = adl.queue_indicator_by_size(sizes)
    percentile = {a: (6 - int(light)) / 5 for a, light in zip(queue, lights.tolist(), strict=True)}
    assert percentile == pytest.approx({int(k): p for k, p in v["expected"]["percentile"].items()})


def test_adl_ranking_of_an_inverse_long() -> None:
    v = VECTORS["bm-adl-ranking-inverse-derived"]
    i, e = v["inputs"], v["expected"]
    score = inverse.adl_score(
        i["contracts"], i["entry_price"], i["mark_price"], i["bankruptcy_price"]
    )
    assert float(score) == pytest.approx(e["ranking"])
    # The linear ranking (the engine's queues) differs for an inverse contract: PNL% is
    # 10% of the entry there, 1 - entry / mark = 9.09% here.
    assert e["pnl_percent"] == pytest.approx(1 - i["entry_price"] / i["mark_price"])


def _liquidated_long(mark: float) -> tuple[float, float, float]:
    """Fund change, insurance paid and bad debt for the example's long of 1 at 100 (bankruptcy
    99, liquidation 99.5), closed at ``mark`` with the rest down to bankruptcy kept by the
    fund (liquidation_fee_rate = 100%)."""
    spec = MarketSpec.simple(
        "XBTUSD", max_leverage=100.0, maintenance_rate=0.005, tick_size=0.25, lot_size=1.0,
        maker_fee_rate=0.0, taker_fee_rate=0.0, liquidation_fee_rate=1.0,
    )  # fmt: skip
    ex = Exchange(check_invariants=True)
    m = ex.list_market(spec)
    fund = ex.insurance_account_for(m)
    ex.deposit(fund, 0.25)  # the fund after the first trader (second example)
    ex.set_mark(m, 100.0)
    a = ex.open_account(margin_mode=MarginMode.ISOLATED)
    ex.deposit(a, 1.0)
    ex.trade(m, buyer=a, seller=ex.liquidity_account, size=1.0, price=100.0)
    ex.set_mark(m, mark, ts_ns=1 * S)
    assert ex.position(a, m).size == 0.0
    step = ex.last_step
    return ex.cash(fund) - 0.25, step.insurance_paid, step.bad_debt


def test_fill_better_than_bankruptcy_goes_to_the_insurance_fund() -> None:
    v = VECTORS["bm-insurance-fund-liquidation-example"]
    change, paid, _ = _liquidated_long(v["inputs"]["fill_price"])
    assert change == pytest.approx(_value(v["expected"]["insurance_fund_change"]))
    assert paid == 0.0


def test_fill_worse_than_bankruptcy_is_paid_by_the_fund_without_adl() -> None:
    v = VECTORS["bm-insurance-fund-second-trader"]
    change, paid, bad_debt = _liquidated_long(v["inputs"]["fill_price"])
    assert change == pytest.approx(v["expected"]["insurance_fund_change"])
    assert 0.25 + change == pytest.approx(v["expected"]["fund_after"], abs=1e-12)
    assert paid == pytest.approx(0.25)
    assert bad_debt == 0.0


@pytest.mark.parametrize(
    ("vid", "floors", "base_im"),
    [("bm-risk-limit-example", (0.0, 200.0, 350.0, 500.0), 0.01),
     ("bm-risk-limit-example-old", (0.0, 100.0, 150.0, 200.0), 0.02)],
)  # fmt: skip
def test_risk_limit_steps_add_the_base_maintenance_to_both_margins(
    vid: str, floors: tuple[float, ...], base_im: float
) -> None:
    v = VECTORS[vid]
    i, e = v["inputs"], v["expected"]
    k = np.arange(len(floors))
    tiers = TierArrays(
        floor=np.array(floors), imr=base_im + k * i["base_mm"], mmr=i["base_mm"] * (k + 1),
        cum=np.zeros(len(floors)),
    )  # fmt: skip
    before = float(mm.maintenance_margin(float(i["position_xbt"]), tiers))
    assert before == pytest.approx(_value(e["mm_before"]))
    after = i["position_xbt"] + i["new_order_xbt"]
    assert after == e["after_position_xbt"]
    t = int(mm.tier_index(float(after), tiers))
    assert (tiers.mmr[t], tiers.imr[t]) == pytest.approx((e["mm_rate_after"], e["im_rate_after"]))


def _risk_limit_spec(tier_margin: str) -> MarketSpec:
    return MarketSpec.from_mapping({
        "symbol": "XBTUSD",
        "tier_margin": tier_margin,
        "tiers": [
            {"notional_floor": f, "max_leverage": 1 / im, "maintenance_rate": r}
            for f, im, r in ((0.0, 0.01, 0.005), (200.0, 0.015, 0.01), (350.0, 0.02, 0.015))
        ],
    })  # fmt: skip


def test_risk_limit_rate_applies_to_the_whole_position() -> None:
    # 180 XBT at 0.5% needs 0.9 XBT; after the order of 50, 230 XBT at the 1% step needs
    # 2.3 XBT (the deduction form, Binance's maintenance amount, would give 1.3).
    e = VECTORS["bm-risk-limit-example"]["expected"]
    tiers = _risk_limit_spec("whole_position").tier_arrays
    assert float(mm.maintenance_margin(180.0, tiers)) == pytest.approx(_value(e["mm_before"]))
    assert float(mm.maintenance_margin(230.0, tiers)) == pytest.approx(230 * e["mm_rate_after"])
    deduction = _risk_limit_spec("deduction").tier_arrays
    assert float(mm.maintenance_margin(230.0, deduction)) == pytest.approx(1.3)
    assert preset("bitmex").tier_margin == "whole_position"


def test_risk_limit_whole_position_rate_in_the_engine() -> None:
    # 2,300,000 contracts at 10,000 are 230 XBT: the engine's maintenance is 2.3 XBT.
    spec = MarketSpec.from_mapping({
        **_risk_limit_spec("whole_position").model_dump(), "contract_type": "inverse",
        "contract_value": 1.0, "settlement_asset": "XBT", "lot_size": 1.0, "tick_size": 0.5,
    })  # fmt: skip
    ex = _xbtusd_exchange(spec, 10_000.0)
    trader = ex.open_account()
    ex.deposit(trader, 10.0)
    ex.trade("XBTUSD", buyer=trader, seller=ex.liquidity_account, size=2_300_000, price=10_000.0)
    assert ex.account_margins(trader).cross_maintenance == pytest.approx(2.3)


def test_inverse_futures_pnl() -> None:
    v = VECTORS["bm-inverse-futures-pnl"]
    i, e = v["inputs"], v["expected"]
    contracts = _value(i["exposure"]) * i["entry_price"]
    assert contracts == e["contracts"]
    assert _value(i["exposure"]) / i["leverage"] == pytest.approx(_value(e["initial_margin"]))
    pnl = inverse.unrealized_pnl(contracts, i["entry_price"], i["exit_price"])
    assert float(pnl) == pytest.approx(_value(e["pnl"]))


def test_inverse_pnl_of_the_blogs_25x_example_by_the_formula() -> None:
    # The blog prints 2.5 XBT (a linear reading); the inverse formula gives 2.2727 XBT.
    v = VECTORS["bm-inverse-25x-blog-inconsistent"]
    i, e = v["inputs"], v["expected"]
    pnl = float(inverse.unrealized_pnl(i["contracts"], i["entry_price"], i["exit_price"]))
    assert pnl == pytest.approx(e["by_inverse_formula"]["profit_xbt"])
    assert pnl != pytest.approx(e["as_printed"]["profit_xbt"])


def test_inverse_bankruptcy_prices() -> None:
    v = VECTORS["bm-inverse-bankruptcy-derived"]
    i, e = v["inputs"], v["expected"]
    margin = i["contracts"] / i["entry_price"] / i["leverage"]
    long, short = (
        float(inverse.bankruptcy_price(side * i["contracts"], i["entry_price"], margin))
        for side in (1, -1)
    )
    assert (long, short) == (pytest.approx(e["long"]), pytest.approx(e["short"]))


# ------------------------------------------------------------------ XBTUSD, inverse, in the engine


def _xbtusd(*, fees: bool = True) -> MarketSpec:
    spec = preset("bitmex", "XBTUSD")
    if fees:
        return spec
    return MarketSpec.from_mapping(
        {**spec.model_dump(), "maker_fee_rate": 0.0, "taker_fee_rate": 0.0}
    )


def _xbtusd_exchange(spec: MarketSpec, mark: float) -> Exchange:
    ex = Exchange(check_invariants=True)
    ex.list_market(spec)
    ex.deposit(ex.liquidity_account, 10_000.0)
    ex.set_mark("XBTUSD", mark)
    return ex


def test_xbtusd_preset_is_inverse_in_xbt() -> None:
    spec = preset("bitmex")
    assert (spec.contract_type, spec.contract_value, spec.settlement_asset) == (
        "inverse", 1.0, "XBT",
    )  # fmt: skip
    # Risk limits in XBT: the base limit of 200 XBT is the first step.
    assert spec.tiers[1].notional_floor == 200.0


def test_xbtusd_engine_pnl_and_initial_margin_of_the_inverse_futures_guide() -> None:
    # 10 XBT of exposure at 10,000 is 100,000 contracts; at 100x the initial margin is
    # 0.1 XBT (the guide leaves out the fees the preset adds to the margins); from 10,000 to
    # 10,500 the long gains 0.47619 XBT.
    v = VECTORS["bm-inverse-futures-pnl"]
    i, e = v["inputs"], v["expected"]
    ex = _xbtusd_exchange(_xbtusd(fees=False), float(i["entry_price"]))
    trader = ex.open_account()
    ex.deposit(trader, 1.0)
    ex.trade(
        "XBTUSD", buyer=trader, seller=ex.liquidity_account, size=e["contracts"],
        price=float(i["entry_price"]),
    )  # fmt: skip
    assert ex.account_margins(trader).cross_initial == pytest.approx(_value(e["initial_margin"]))
    ex.set_mark("XBTUSD", float(i["exit_price"]))
    assert ex.position(trader, "XBTUSD").unrealized_pnl == pytest.approx(_value(e["pnl"]))


def test_xbtusd_engine_pnl_of_the_blogs_25x_example() -> None:
    v = VECTORS["bm-inverse-25x-blog-inconsistent"]
    i, e = v["inputs"], v["expected"]
    ex = _xbtusd_exchange(_xbtusd(), float(i["entry_price"]))
    trader = ex.open_account()
    ex.deposit(trader, float(i["equity_xbt"]))
    ex.trade(
        "XBTUSD", buyer=trader, seller=ex.liquidity_account, size=i["contracts"],
        price=float(i["entry_price"]), taker=None,
    )  # fmt: skip
    ex.set_mark("XBTUSD", float(i["exit_price"]))
    pnl = ex.position(trader, "XBTUSD").unrealized_pnl
    assert pnl == pytest.approx(e["by_inverse_formula"]["profit_xbt"])


@pytest.mark.parametrize(("side", "key"), [(1, "long"), (-1, "short")])
def test_xbtusd_engine_bankruptcy_prices(side: int, key: str) -> None:
    # Isolated 10x, fees ignored: long BP = entry / (1 + IM), short entry / (1 - IM).
    v = VECTORS["bm-inverse-bankruptcy-derived"]
    i, e = v["inputs"], v["expected"]
    ex = _xbtusd_exchange(_xbtusd(fees=False), float(i["entry_price"]))
    trader = ex.open_account(margin_mode=MarginMode.ISOLATED)
    ex.deposit(trader, 1.0)
    ex.set_leverage(trader, "XBTUSD", float(i["leverage"]))
    book = ex.liquidity_account
    buyer, seller = (trader, book) if side > 0 else (book, trader)
    ex.trade("XBTUSD", buyer=buyer, seller=seller, size=i["contracts"], price=i["entry_price"])
    _, bankrupt = ex.liquidation_prices("XBTUSD", np.array([trader]))
    assert float(bankrupt[0]) == pytest.approx(e[key], rel=1e-12)


def test_xbtusd_engine_adl_score_of_an_inverse_long() -> None:
    # PNL% x EffLev on XBT values: long 10,000 from 10,000 at 10x, mark 11,000 -> 0.4329.
    v = VECTORS["bm-adl-ranking-inverse-derived"]
    i, e = v["inputs"], v["expected"]
    ex = _xbtusd_exchange(_xbtusd(fees=False), float(i["entry_price"]))
    trader = ex.open_account(margin_mode=MarginMode.ISOLATED)
    ex.deposit(trader, 1.0)
    ex.set_leverage(trader, "XBTUSD", 10.0)
    ex.trade(
        "XBTUSD", buyer=trader, seller=ex.liquidity_account, size=i["contracts"],
        price=i["entry_price"],
    )  # fmt: skip
    ex.set_mark("XBTUSD", float(i["mark_price"]))
    _, bankrupt = ex.liquidation_prices("XBTUSD", np.array([trader]))
    assert float(bankrupt[0]) == pytest.approx(i["bankruptcy_price"])
    queue = ex.adl_queue("XBTUSD", 1)
    assert float(queue.loc[0, "score"]) == pytest.approx(e["ranking"], rel=1e-9)


@pytest.mark.parametrize("leverage", [100.0, 10.0])
def test_margins_include_fees(leverage: float) -> None:
    # 1 XBT of value (10,000 contracts at 10,000): IM = value / leverage + 2 x 0.075% x value
    # (0.0115 XBT at 100x); MM = 0.5% + 0.075% of value = 0.00575 XBT (funding excluded).
    im = VECTORS["bm-initial-margin-with-fees"]["inputs"]
    mmv = VECTORS["bm-maintenance-with-fee"]
    spec = MarketSpec.from_mapping({
        **_xbtusd().model_dump(), "taker_fee_rate": im["taker_fee"], "maker_fee_rate": 0.0,
        "tiers": [{"notional_floor": 0.0, "max_leverage": 100.0,
                   "maintenance_rate": mmv["inputs"]["base_mm"]}],
    })  # fmt: skip
    assert spec.taker_fee_in_margin == "initial_and_maintenance"
    ex = _xbtusd_exchange(spec, 10_000.0)
    trader = ex.open_account()
    ex.deposit(trader, 1.0)
    ex.set_leverage(trader, "XBTUSD", leverage)
    value = _value(im["order_value"])
    ex.trade("XBTUSD", buyer=trader, seller=ex.liquidity_account, size=10_000, price=10_000.0)
    margins = ex.account_margins(trader)
    if leverage == im["leverage"]:
        want = _value(VECTORS["bm-initial-margin-with-fees"]["expected"]["initial_margin"])
        assert margins.cross_initial == pytest.approx(want)
    assert margins.cross_initial == pytest.approx(value / leverage + 2 * im["taker_fee"] * value)
    assert margins.cross_maintenance == pytest.approx(
        mmv["expected"]["maintenance_margin_excl_funding"]
    )
