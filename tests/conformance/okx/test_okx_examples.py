"""OKX's worked examples against the engine's rules.

Sources (each vector in ``vectors.json`` names its own): OKX (OKEx) help "V. Forced Partial or
Full Liquidation" (https://supdljgzdhc.okx.com/hc/en-us/articles/360020411711); "OKEx position
tiers to be adjusted" (ETHUSDT perpetual, 2021-06-11); "Tiered maintenance margin ratio rules"
(okx.com mirror); the early-liquidation / ADL mechanism page (OKX help mirror); third-party
renditions of "Calculation of contract's profit and loss"; ``freqtrade/freqtrade`` @
``c9ae5e1e9ff25bb55dd61f5e5519f7c479291edb`` ``tests/exchange/test_exchange.py``
``test_get_liquidation_price`` (okx, long, 3x).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from deleverage import Exchange, MarginMode, MarketSpec
from deleverage.engine.insurance_fund import InsuranceFund
from deleverage.errors import ConfigError
from deleverage.rules import inverse
from deleverage.rules import liquidation as liq
from deleverage.rules import margin as mm
from deleverage.spec import TierArrays, maintenance_deductions
from deleverage.venues import preset

VECTORS = {v["id"]: v for v in json.loads((Path(__file__).parent / "vectors.json").read_text())}
S = 1_000_000_000
HOUR_NS = 3_600 * S

# ETHUSDT perpetual tiers of 2021-06-11 by contracts (mark 1 below, so notional = contracts).
# Tier 1's leverage is not in the vector: 125x assumed (it only has to exceed tier 2's 100x).
ETH_FLOORS = np.array([0.0, 3001.0, 6001.0, 12001.0])
ETH_MMR = np.array([0.004, 0.005, 0.01, 0.015])
ETH_IMR = np.array([0.008, 0.01, 0.02, 0.03])


def _value(x: Any) -> Any:
    return x["value"] if isinstance(x, dict) and "value" in x else x


def _eth_tiers() -> TierArrays:
    return TierArrays(
        floor=ETH_FLOORS, imr=ETH_IMR, mmr=ETH_MMR, cum=maintenance_deductions(ETH_FLOORS, ETH_MMR)
    )


def test_every_vector_has_a_source() -> None:
    assert len(VECTORS) == 9
    for v in VECTORS.values():
        assert v["source"].get("url") or v["source"].get("commit"), v["id"]


def test_partial_liquidation_reduces_to_the_tier_1_maximum() -> None:
    # 15,000 contracts in tier 3 (from 12,001); tier 1 holds up to 2,000: close 13,000.
    v = VECTORS["okx-partial-to-tier1"]
    i = v["inputs"]
    floors = np.array([0.0, i["tier1_max_contracts"] + 1.0, float(i["tier3_min_contracts"])])
    rates = np.array([0.01, 0.015, i["tier_mmr"]])  # tiers 1-2 rates not given (not used)
    tiers = TierArrays(
        floor=floors, imr=2 * rates, mmr=rates, cum=maintenance_deductions(floors, rates)
    )
    close = liq.round_up_to_lot(
        liq.tier_down_size(float(i["position_contracts"]), 1.0, tiers, steps=len(floors)), 1.0
    )
    assert close == v["expected"]["contracts_to_close"]
    assert i["position_contracts"] - close == v["expected"]["remaining"]


@pytest.mark.parametrize(
    ("steps", "key"), [(4, "close_to_tier1"), (2, "close_two_tiers_down_to_tier2")]
)
def test_eth_tiers_reduced_to_tier_1_or_two_tiers_down(steps: int, key: str) -> None:
    v = VECTORS["okx-partial-eth-tiers-derived"]
    contracts = float(v["inputs"]["position_contracts"])
    assert int(mm.tier_index(contracts, _eth_tiers())) + 1 == v["expected"]["tier"]
    close = liq.round_up_to_lot(liq.tier_down_size(contracts, 1.0, _eth_tiers(), steps=steps), 1.0)
    assert close == v["expected"][key]


def test_engine_tier_down_target_first_reduces_to_tier_1_in_one_round() -> None:
    # The same ETH table as a market (contracts of 1 at a mark of 1): 20,000 contracts with
    # little margin; tier_down_target "first" closes 17,000 in the first round.
    tiers = [
        {"notional_floor": f, "max_leverage": 1 / imr, "maintenance_rate": r}
        for f, imr, r in zip(ETH_FLOORS, ETH_IMR, ETH_MMR, strict=True)
    ]
    spec = MarketSpec.from_mapping({
        "symbol": "ETH-USDT-SWAP", "tiers": tiers, "lot_size": 1.0, "tick_size": 0.0001,
        "maker_fee_rate": 0.0, "taker_fee_rate": 0.0, "liquidation_fee_rate": 0.0,
        "liquidation": {"kind": "tier_down", "tier_down_target": "first"},
    })  # fmt: skip
    ex = Exchange(check_invariants=True)
    m = ex.list_market(spec)
    ex.set_mark(m, 1.0)
    a = ex.open_account(margin_mode=MarginMode.ISOLATED)
    ex.deposit(a, 600.0)  # 3% of 20,000
    ex.trade(m, buyer=a, seller=ex.liquidity_account, size=20_000.0, price=1.0)
    start = ex.journal.next_seq

    ex.set_mark(m, 0.98, ts_ns=1 * S)  # equity 200 < 20,000 x 0.98 x 1.5% - cum

    from deleverage.engine.events import Liquidation

    # At a mark of 0.98 tier 1 ends at 3,001 / 0.98 = 3,062.2 contracts: 16,938 are closed
    # (the vector's 17,000 is the same rule at a mark of 1).
    first = next(e for e in ex.journal.events(Liquidation) if e.seq >= start)
    left = 20_000.0 + first.size
    assert left * 0.98 < ETH_FLOORS[1] <= (left + 1.0) * 0.98
    assert -first.size == 16_938.0


def test_eth_tier_lookup_by_contracts() -> None:
    v = VECTORS["okx-eth-tier-lookup"]
    t = int(mm.tier_index(float(v["inputs"]["contracts"]), _eth_tiers()))
    e = v["expected"]
    assert t + 1 == e["tier"]
    assert ETH_MMR[t] == e["maintenance_margin_ratio"]
    assert ETH_IMR[t] == e["min_initial_margin_ratio"]
    assert 1 / ETH_IMR[t] == e["max_leverage"]


@pytest.mark.xfail(
    strict=True, raises=ConfigError,
    reason="spot margin borrowing tiers (the higher of the base and quote tiers) are not a perp "
    "feature of the engine",
)  # fmt: skip
def test_spot_margin_tier_lookup() -> None:
    MarketSpec.simple("BTC-USDT", contract_type="spot_margin")


def test_linear_pnl() -> None:
    v = VECTORS["okx-linear-pnl"]
    i = v["inputs"]
    size = _value(i["face_value"]) * i["contracts"] * i["multiplier"]
    assert float(mm.unrealized_pnl(size, i["entry_price"], i["mark_price"])) == pytest.approx(
        _value(v["expected"]["unrealized_pnl"])
    )


def test_entry_price_linear_by_size_inverse_harmonic() -> None:
    v = VECTORS["okx-entry-price-linear-inverse"]
    (a, b) = v["inputs"]["linear"]["fills"]
    _, entry, _ = mm.apply_fill(a["contracts"], a["price"], b["contracts"], b["price"])
    assert float(entry) == v["expected"]["linear_entry"]
    fills = v["inputs"]["inverse"]["fills"]
    got = inverse.average_entry_price([f["contracts"] for f in fills], [f["price"] for f in fills])
    assert got == pytest.approx(v["expected"]["inverse_entry_exact"])
    assert int(got) == v["expected"]["inverse_entry"]


def test_isolated_liquidation_price_with_the_fee_in_the_requirement() -> None:
    # OKX: margin ratio = (margin + uPnL) / (value x (MMR + fee rate)); liquidation at 100%:
    # the engine's isolated formula with a maintenance rate of MMR + taker fee.
    v = VECTORS["okx-isolated-liq-freqtrade"]
    i = v["inputs"]
    tiers = MarketSpec.simple(
        "X", max_leverage=i["leverage"], maintenance_rate=i["mmr"] + i["taker_fee"]
    ).tier_arrays
    price = mm.liquidation_price_isolated(i["size"], i["entry_price"], i["isolated_margin"], tiers)
    assert float(price) == pytest.approx(v["expected"]["liquidation_price"], rel=1e-12)


def test_engine_isolated_liquidation_price_with_the_fee_in_maintenance() -> None:
    # The same example through the engine with taker_fee_in_margin = "maintenance" (the OKX
    # preset's setting): long 1 at 10, 3x isolated (margin 3.3333), MMR 1%, taker 0.06%.
    v = VECTORS["okx-isolated-liq-freqtrade"]
    i = v["inputs"]
    spec = MarketSpec.simple(
        "X", max_leverage=10.0, maintenance_rate=i["mmr"], taker_fee_rate=i["taker_fee"],
        maker_fee_rate=0.0, taker_fee_in_margin="maintenance",
    )  # fmt: skip
    ex = Exchange(check_invariants=True)
    ex.list_market(spec)
    ex.deposit(ex.liquidity_account, 1_000.0)
    ex.set_mark("X", float(i["entry_price"]))
    trader = ex.open_account(margin_mode=MarginMode.ISOLATED)
    ex.deposit(trader, 10.0)
    ex.set_leverage(trader, "X", float(i["leverage"]))
    ex.trade("X", buyer=trader, seller=ex.liquidity_account, size=i["size"],
             price=float(i["entry_price"]), taker=None)  # fmt: skip
    assert ex.position(trader, "X").isolated_margin == pytest.approx(i["isolated_margin"])
    got, _ = ex.liquidation_prices("X", np.array([trader]))
    assert float(got[0]) == pytest.approx(v["expected"]["liquidation_price"], rel=1e-12)
    assert preset("okx").taker_fee_in_margin == "maintenance"


@pytest.mark.parametrize(("now", "triggered"), [(7_500_000.0, False), (7_000_000.0, True)])
def test_adl_trigger_fund_falls_30_percent_from_its_8h_peak(now: float, triggered: bool) -> None:
    v = VECTORS["okx-adl-trigger-drawdown"]
    peak = float(v["inputs"]["insurance_fund_8h_peak"])
    assert now in v["inputs"]["insurance_fund_now"]
    fund = InsuranceFund(
        "USDT:BTC", protocol_share=0.0, unstake_cooldown_s=0.0, drawdown_alert_fraction=0.3,
        drawdown_min_balance=0.0,
    )  # fmt: skip
    fund.receive(peak, 0, kind="protocol_revenue", ref="initial")
    fund.cover(peak - now, HOUR_NS, ref="loss")
    assert fund.drawdown_alert(HOUR_NS) is triggered
    expected = v["expected"]["adl_triggered"][v["inputs"]["insurance_fund_now"].index(now)]
    assert triggered is expected


def test_liquidation_fee_at_the_taker_rate() -> None:
    # 100 contracts of 0.01 BTC at 60,000 x 0.05% = 30 USDT: a full liquidation in the engine.
    v = VECTORS["okx-liquidation-fee"]
    i = v["inputs"]
    spec = MarketSpec.simple(
        "BTC-USDT-SWAP", max_leverage=20.0, maintenance_rate=0.045, maker_fee_rate=0.0,
        taker_fee_rate=0.0, liquidation_fee_rate=i["taker_fee_rate"],
    )  # fmt: skip
    ex = Exchange(check_invariants=True)
    m = ex.list_market(spec)
    size = i["face_value"] * i["contracts"]
    ex.set_mark(m, 61_000.0)
    a = ex.open_account(margin_mode=MarginMode.ISOLATED)
    ex.deposit(a, 3_500.0)
    ex.trade(m, buyer=a, seller=ex.liquidity_account, size=size, price=61_000.0)
    ex.add_isolated_margin(a, m, ex.cash(a))

    ex.set_mark(m, float(i["mark_price"]), ts_ns=1 * S)

    assert ex.position(a, m).size == 0.0
    assert ex.last_step.penalties == pytest.approx(_value(v["expected"]["liquidation_fee"]))
