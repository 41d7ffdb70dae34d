"""Hyperliquid's worked examples and pinned venue outputs against the engine's rules.

Sources (each vector in ``vectors.json`` names its own): Hyperliquid docs "Liquidations",
"Margin tiers", "Auto-deleveraging" (https://hyperliquid.gitbook.io/hyperliquid-docs/trading/);
``freqtrade/freqtrade`` @ ``3b1fb5af847863302393b0413321642d454e35a5``
``tests/exchange/test_hyperliquid.py::test_hyperliquid_dry_run_liquidation_price`` (the
exchange's own ``liquidationPx`` for nine isolated positions).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from deleverage import Exchange, MarginMode
from deleverage.rules import adl
from deleverage.rules import liquidation as liq
from deleverage.rules import margin as mm
from deleverage.venues import preset

VECTORS = {v["id"]: v for v in json.loads((Path(__file__).parent / "vectors.json").read_text())}
S = 1_000_000_000


def _value(x: Any) -> Any:
    return x["value"] if isinstance(x, dict) and "value" in x else x


def test_every_vector_has_a_source() -> None:
    assert len(VECTORS) == 17
    for v in VECTORS.values():
        assert v["source"].get("url") or v["source"].get("commit"), v["id"]


@pytest.mark.parametrize("vid", [k for k in VECTORS if k.startswith("hl-isolated-liq-api-")])
def test_isolated_liquidation_price_matches_the_exchange(vid: str) -> None:
    # liq = price - side x margin_available / size / (1 - l x side), at mark = entry.
    i = VECTORS[vid]["inputs"]
    size = _value(i["size"]) * (1 if i["side"] == "long" else -1)
    tiers = mm.hyperliquid_tiers([0.0], [float(i["max_leverage_at_capture"])])
    price = mm.liquidation_price_hyperliquid(
        size, _value(i["entry_price"]), margin=_value(i["isolated_margin"]), tiers=tiers
    )
    expected = VECTORS[vid]["expected"]
    assert float(price) == pytest.approx(
        _value(expected["liquidation_price"]), rel=expected["tolerance"]["relative"]
    )


@pytest.mark.parametrize(
    "vid", ["hl-margin-tier-deduction-btc-mainnet", "hl-margin-tier-deduction-btc-testnet"]
)
def test_margin_tier_rates_and_deductions(vid: str) -> None:
    v = VECTORS[vid]
    rows = v["inputs"]["tiers"]
    tiers = mm.hyperliquid_tiers(
        [r["lower_bound_usdc"] for r in rows], [r["max_leverage"] for r in rows]
    )
    e = v["expected"]
    if "maintenance_rate" in e:
        assert tiers.mmr.tolist() == pytest.approx(e["maintenance_rate"], rel=1e-9)
        assert tiers.cum.tolist() == pytest.approx(e["maintenance_deduction_usdc"])
    else:
        assert tiers.mmr.tolist() == pytest.approx(
            [e["maintenance_rate_tier0"], e["maintenance_rate_tier1"]]
        )
        assert tiers.cum[1] == pytest.approx(_value(e["maintenance_deduction_tier1"]))
        notional = _value(v["inputs"]["notional"])
        assert float(mm.maintenance_margin(notional, tiers)) == pytest.approx(
            _value(e["maintenance_margin"])
        )


def test_maintenance_rate_is_half_the_initial_rate_at_max_leverage() -> None:
    v = VECTORS["hl-mmr-from-max-leverage"]
    leverages = v["inputs"]["max_leverage"]
    rates = [float(mm.hyperliquid_tiers([0.0], [lev]).mmr[0]) for lev in leverages]
    assert rates == pytest.approx(v["expected"]["maintenance_rate"], abs=1e-5)


def test_maintenance_depends_on_the_asset_not_the_users_leverage() -> None:
    v = VECTORS["hl-community-im-mm"]
    i, e = v["inputs"], v["expected"]
    tiers = mm.hyperliquid_tiers([0.0], [float(i["asset_max_leverage"])])
    notional = _value(i["notional"])
    initial = [
        float(mm.initial_margin(notional, tiers, leverage=lev)) for lev in i["user_leverage"]
    ]
    assert initial == pytest.approx(e["initial_margin"])
    assert [float(mm.maintenance_margin(notional, tiers))] * 2 == pytest.approx(
        e["maintenance_margin"]
    )


@pytest.mark.parametrize(
    ("vid", "expected_notional"),
    [("hl-partial-liquidation-large", 50_000.0), ("hl-partial-liquidation-small", 80_000.0)],
)
def test_partial_liquidation_sends_20_percent_above_100k(
    vid: str, expected_notional: float
) -> None:
    i = VECTORS[vid]["inputs"]
    policy = preset("hyperliquid").liquidation
    notional = _value(i["position_notional"])
    q = liq.fixed_fraction_size(
        notional / 100.0, 100.0, fraction=policy.fraction, min_notional=policy.fraction_min_notional
    )
    assert q * 100.0 == pytest.approx(expected_notional)
    assert _value(VECTORS[vid]["expected"]["first_order_notional"]) == expected_notional


def test_during_the_cooldown_the_whole_position_is_liquidated() -> None:
    # hl-partial-liquidation-large, "during_cooldown": whole position. The preset without fees;
    # 7,500 of cash, long 3 BTC at 100,000 (300,000 > 100,000: 20% first).
    spec = preset("hyperliquid").model_copy(update={"maker_fee_rate": 0.0, "taker_fee_rate": 0.0})
    ex = Exchange()
    m = ex.list_market(spec)
    ex.set_mark(m, 100_000.0)
    a = ex.open_account(margin_mode=MarginMode.CROSS)
    ex.deposit(a, 7_500.0)
    ex.trade(m, buyer=a, seller=ex.liquidity_account, size=3.0, price=100_000.0)
    ex.set_mark(m, 98_500.0, ts_ns=1 * S)  # 20%: 0.6 BTC, cooldown starts
    assert ex.position(a, m).size == pytest.approx(2.4)

    ex.set_mark(m, 98_400.0, ts_ns=11 * S)  # below maintenance again, in the cooldown

    assert ex.position(a, m).size == 0.0


def test_after_the_cooldown_orders_are_partial_again() -> None:
    # The same account above maintenance through the cooldown: the next breach, 31 s after the
    # first liquidation, is again a 20% order (0.48 of the 2.4 BTC left).
    spec = preset("hyperliquid").model_copy(update={"maker_fee_rate": 0.0, "taker_fee_rate": 0.0})
    ex = Exchange()
    m = ex.list_market(spec)
    ex.set_mark(m, 100_000.0)
    a = ex.open_account(margin_mode=MarginMode.CROSS)
    ex.deposit(a, 7_500.0)
    ex.trade(m, buyer=a, seller=ex.liquidity_account, size=3.0, price=100_000.0)
    ex.set_mark(m, 98_500.0, ts_ns=1 * S)
    assert ex.position(a, m).size == pytest.approx(2.4)
    ex.set_mark(m, 99_500.0, ts_ns=20 * S)  # back above maintenance in the cooldown

    ex.set_mark(m, 98_400.0, ts_ns=32 * S)  # the cooldown (30 s from 1 s) is over

    assert ex.position(a, m).size == pytest.approx(2.4 - 0.48)


def test_backstop_below_two_thirds_of_maintenance() -> None:
    # hl-backstop-threshold: maintenance 3,693.75 (3 BTC at 98,500, 1.25%), equity 2,400.
    v = VECTORS["hl-backstop-threshold"]
    fraction = preset("hyperliquid").liquidation.backstop_equity_fraction
    maintenance = float(mm.maintenance_margin(3 * 98_500.0, preset("hyperliquid").tier_arrays))
    assert maintenance == pytest.approx(_value(v["inputs"]["maintenance_margin"]))
    threshold = fraction * maintenance
    assert threshold == pytest.approx(_value(v["expected"]["backstop_threshold"]))
    assert (_value(v["inputs"]["account_equity"]) < threshold) is v["expected"]["backstop"]


def test_backstop_vault_takes_the_positions_and_all_the_margin_left() -> None:
    # Same account in the engine with a book too thin to take 3 BTC: equity 2,400 at 98,300
    # (7,500 - 3 x 1,700) is below 2/3 of 3 x 98,300 x 1.25% = 3,686.25 -> 2,457.5.
    from deleverage.liquidity import ConstantDepthBook

    spec = preset("hyperliquid").model_copy(update={"maker_fee_rate": 0.0, "taker_fee_rate": 0.0})
    ex = Exchange(check_invariants=True)
    m = ex.list_market(spec)
    ex.set_mark(m, 100_000.0)
    ex.deposit(ex.backstop_account, 1_000_000.0)  # the vault's capital (HLP's liquidator)
    a = ex.open_account(margin_mode=MarginMode.CROSS)
    ex.deposit(a, 7_500.0)
    ex.trade(m, buyer=a, seller=ex.liquidity_account, size=3.0, price=100_000.0)
    ex.set_liquidity(m, ConstantDepthBook(depth_per_pct=0.01, half_life_s=60.0))

    ex.set_mark(m, 98_300.0, ts_ns=1 * S)

    assert ex.last_step.backstop_takeovers == 1
    assert ex.position(a, m).size == 0.0
    assert ex.position(ex.backstop_account, m).size == pytest.approx(3.0)
    # "the maintenance margin is not returned": everything left goes to the vault.
    assert ex.account_margins(a).total_equity == pytest.approx(0.0, abs=1e-9)


def test_adl_sorting_index() -> None:
    v = VECTORS["hl-adl-sorting-index"]
    i = v["inputs"]
    score = adl.score_hyperliquid(
        [i["size"]], [i["entry_price"]], i["mark_price"], account_value=[_value(i["account_value"])]
    )
    assert float(score[0]) == pytest.approx(v["expected"]["index"])
