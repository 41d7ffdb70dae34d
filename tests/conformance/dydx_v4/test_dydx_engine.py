"""dYdX v4 conformance, float engine: the rules functions and the Exchange against the vectors.

Prices and amounts are converted from the vectors' integer units to USD (quote quantums are
1e-6 USDC; one coin is 10**-atomic_resolution base quantums). Float results are compared
with a tolerance; the integer model (test_dydx_quantum.py) matches to the unit.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any

import pytest
from dydx_vectors import account, cases, markets

from deleverage import Exchange
from deleverage.engine.events import Liquidation, TransferReason
from deleverage.rules import liquidation as liq
from deleverage.rules import quantum as q
from deleverage.spec import MarketSpec

USD = 1e-6  # USDC per quote quantum


def _coins(m: q.QuantumMarket, base: int) -> float:
    return float(Fraction(base) * Fraction(10) ** m.atomic_resolution)


def _usd_price(m: q.QuantumMarket) -> float:
    return float(Fraction(m.oracle_price) * Fraction(10) ** m.price_exponent)


def _spec(m: q.QuantumMarket, symbol: str, fee_rate: float = 0.0) -> MarketSpec:
    imf = m.initial_margin_ppm / q.PPM
    mmf = imf * m.maintenance_fraction_ppm / q.PPM
    return MarketSpec.from_mapping(
        {
            "symbol": symbol,
            "tick_size": 1e-6,
            "lot_size": 10.0**m.atomic_resolution,
            "tiers": [{"notional_floor": 0.0, "max_leverage": 1.0 / imf, "maintenance_rate": mmf}],
            "maker_fee_rate": 0.0,
            "taker_fee_rate": 0.0,
            "liquidation_fee_rate": fee_rate,
            "liquidation": {
                "kind": "portion",
                "execution": "liquidator",
                "spread_to_maintenance_ratio": 0.1,
            },
            "adl": {"ranking": "random_start", "counterparty": "refuse"},
        }
    )


def _engine(inputs: dict[str, Any], fee_rate: float = 0.0) -> tuple[Exchange, dict[int, int]]:
    ex = Exchange()
    mk = markets(inputs)
    ids = {}
    for pid, m in sorted(mk.items()):
        ids[pid] = ex.list_market(_spec(m, f"P{pid}", fee_rate))
        ex.set_mark(ids[pid], _usd_price(m))
    return ex, ids


def _open(
    ex: Exchange, ids: dict[int, int], mk: dict[int, q.QuantumMarket], acct: q.QuantumAccount
) -> int:
    """An account whose net collateral and positions are the vector's (entries at the oracle)."""
    a = ex.open_account()
    nc = q.account_risk(acct, mk).nc * USD
    ex.deposit(
        a,
        10.0
        * sum(abs(m.notional_quote(b)) for b, m in ((acct.position(p), mk[p]) for p in mk))
        * USD
        + abs(nc)
        + 1.0,
    )
    for pid, base in acct.positions.items():
        m = mk[pid]
        size = _coins(m, base)
        buyer, seller = (a, ex.liquidity_account) if size > 0 else (ex.liquidity_account, a)
        ex.trade(ids[pid], buyer=buyer, seller=seller, size=abs(size), price=_usd_price(m))
    excess = float(ex.account_margins(a).cross_equity) - nc
    ex.transfer(a, ex.fee_account, excess, reason=TransferReason.TRADING_FEE)
    return a


# ------------------------------------------------------------------------------- rules, float
@pytest.mark.parametrize(
    "v",
    cases(
        lambda v: v["quantity"] == "fillable_price" and "bankruptcy_adjustment_ppm" in v["inputs"]
    ),
)
def test_fillable_price_float(v: dict[str, Any]) -> None:
    i = v["inputs"]
    mk, acct = markets(i), account(i["subaccount"])
    m = mk[i["perpetual_id"]]
    base = acct.position(i["perpetual_id"])
    mid = i["intermediate"]
    got = liq.fillable_price(
        side=1 if base > 0 else -1,
        oracle_price=_usd_price(m),
        size=_coins(m, base),
        position_maintenance=mid["PMMR_quote_quantums"] * USD,
        account_equity=mid["TNC_quote_quantums"] * USD,
        account_maintenance=mid["TMMR_quote_quantums"] * USD,
        bankruptcy_adjustment=i["bankruptcy_adjustment_ppm"] / q.PPM,
        spread_to_maintenance_ratio=i["spread_to_maintenance_margin_ratio_ppm"] / q.PPM,
    )
    assert got == pytest.approx(
        float(Fraction(v["expected"]["fillable_price_usd_per_coin"])), rel=1e-12
    )


@pytest.mark.parametrize(
    "v",
    cases(lambda v: v["quantity"] == "insurance_fund_delta" and "maker_price_usd" in v["inputs"]),
)
def test_insurance_fund_delta_float(v: dict[str, Any]) -> None:
    i = v["inputs"]
    m = markets(i)[i["perpetual_id"]]
    qty = _coins(m, i["fill_base_quantums"])
    side = 1 if i["liquidation_order_is_buy"] is False else -1  # a sell closes a long
    bankrupt = abs(i["intermediate"]["bankruptcy_quote_quantums"]) * USD / qty
    got = liq.insurance_fund_delta(
        side=side,
        qty=qty,
        price=float(i["maker_price_usd"]),
        bankruptcy=bankrupt,
        fee_rate=i["max_liquidation_fee_ppm"] / q.PPM,
    )
    assert got == pytest.approx(
        v["expected"]["insurance_fund_delta_quote_quantums"] * USD, abs=2e-6
    )


@pytest.mark.parametrize(
    "v",
    cases(
        lambda v: (
            v["quantity"] == "partial_size"
            and "delta_base_quantums" in v["expected"]
            and abs(int(v["inputs"]["position_base_quantums"])) < 2**53
        )
    ),
)
def test_portion_size_float(v: dict[str, Any]) -> None:
    i = v["inputs"]
    m = markets(i)[0]
    headroom = (
        int(i["subaccount_max_notional_liquidated"])
        - i["subaccount_notional_already_liquidated_this_block"]
    )
    got = liq.portion_size(
        _coins(m, int(i["position_base_quantums"])),
        _usd_price(m),
        max_portion=i["max_position_portion_liquidated_ppm"] / q.PPM,
        min_notional=i["min_position_notional_liquidated"] * USD,
        headroom=headroom * USD,
        lot=_coins(m, m.step_base_quantums),
    )
    assert got == pytest.approx(abs(_coins(m, int(v["expected"]["delta_base_quantums"]))), rel=1e-9)


# ------------------------------------------------------------------------------- the engine
@pytest.mark.parametrize(
    "v", cases(lambda v: v["quantity"] == "liquidatable" and "subaccount" in v["inputs"])
)
def test_engine_liquidatable(v: dict[str, Any]) -> None:
    i = v["inputs"]
    ex, ids = _engine(i)
    a = _open(ex, ids, markets(i), account(i["subaccount"]))
    am = ex.account_margins(a)
    assert am.cross_equity == pytest.approx(i["intermediate"]["NC_quote_quantums"] * USD, abs=1e-6)
    got = am.cross_maintenance > 0 and am.cross_equity < am.cross_maintenance - 1e-9
    assert got is v["expected"]["is_liquidatable"]


@pytest.mark.parametrize(
    "v",
    cases(
        lambda v: (
            "offsetting" in v["inputs"]
            and "delta_base_quantums_for_liquidated" in v["inputs"]
            and v["expected"].get("error") != "ErrInvalidPerpetualPositionSizeDelta"
        )
    ),
)
def test_engine_deleverage_pair(v: dict[str, Any]) -> None:
    """Exchange.deleverage reproduces ProcessDeleveraging / final settlement: the price, the
    collateral moved, and the refusals."""
    i, e = v["inputs"], v["expected"]
    mk = markets(i)
    ex, ids = _engine(i)
    liq_acct, off_acct = account(i["liquidated"]), account(i["offsetting"])
    a, b = _open(ex, ids, mk, liq_acct), _open(ex, ids, mk, off_acct)
    pid = i["perpetual_id"]
    m = mk[pid]
    qty = abs(_coins(m, i["delta_base_quantums_for_liquidated"]))
    at_oracle = v["quantity"] == "final_settlement"
    done = ex.deleverage(ids[pid], a, b, qty, at_oracle=at_oracle)
    if "error" in e:
        assert done == 0.0
        return
    assert done == pytest.approx(qty)
    delta = i["delta_base_quantums_for_liquidated"]
    for acct, who, key in ((liq_acct, a, "liquidated"), (off_acct, b, "offsetting")):
        sign = 1 if key == "liquidated" else -1
        after = acct.apply(pid, sign * delta, sign * e["fill_quote_quantums_to_liquidated"])
        assert after.usdc_quote == e[f"{key}_usdc_after_quote_quantums"]
        want_nc = q.account_risk(after, mk).nc * USD
        assert ex.account_margins(who).cross_equity == pytest.approx(want_nc, abs=1e-5)


@pytest.mark.parametrize(
    "v",
    cases(
        lambda v: (
            v["quantity"] == "fillable_price"
            and "bankruptcy_adjustment_ppm" in v["inputs"]
            and v["inputs"]["spread_to_maintenance_margin_ratio_ppm"] == 100_000
            and v["inputs"]["bankruptcy_adjustment_ppm"] == q.PPM
        )
    ),
)
def test_engine_liquidation_fill(v: dict[str, Any]) -> None:
    """Exchange.liquidate fills at dYdX's fillable price and moves the insurance fund delta
    the integer model gives for a fill at that price; no loss stays with the liquidator."""
    i = v["inputs"]
    mk = markets(i)
    ex, ids = _engine(i, fee_rate=0.005)
    ex.deposit(ex.insurance_account, 1e9)
    acct = account(i["subaccount"])
    a = _open(ex, ids, mk, acct)
    pid = i["perpetual_id"]
    m = mk[pid]
    base = acct.position(pid)
    fund0 = float(ex._cash[ex.insurance_account])
    done = ex.liquidate(a, ids[pid], abs(_coins(m, base)))
    risk = q.account_risk(acct, mk)
    if not risk.liquidatable:
        assert done == 0.0
        return
    assert done == pytest.approx(abs(_coins(m, base)))
    event = [x for x in ex.events() if isinstance(x, Liquidation)][-1]
    assert event.price == pytest.approx(
        float(Fraction(v["expected"]["fillable_price_usd_per_coin"])), rel=1e-12
    )
    subticks = float(Fraction(v["expected"]["fillable_price_usd_per_coin"])) / (
        10.0 ** (m.quantum_conversion_exponent - 6 - m.atomic_resolution)
    )
    delta = q.insurance_fund_delta(
        acct,
        mk,
        pid,
        is_buy=base < 0,
        fill_base=abs(base),
        maker_subticks=round(subticks),
        max_liquidation_fee_ppm=5000,
    )
    fund_delta = float(ex._cash[ex.insurance_account]) - fund0
    assert fund_delta == pytest.approx(delta * USD, abs=1e-5 + abs(_coins(m, base)) * 1e-6)
    liquidator = ex.account_margins(ex.liquidator_account)
    assert liquidator.total_equity >= -1e-9
    side = 1 if base > 0 else -1
    moved = side * abs(_coins(m, base)) * (event.price - _usd_price(m))
    want = risk.nc * USD + moved - fund_delta
    assert math.isclose(ex.account_margins(a).cross_equity, want, abs_tol=1e-6)
