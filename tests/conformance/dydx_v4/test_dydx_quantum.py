"""dYdX v4 conformance, integer model: every vector reproduced to the quote quantum.

The vectors (vectors.json, with their source test) come from the Go tests of
dydxprotocol/v4-chain at commit 84d4664bae71e3a077adaac67fb77ad19cd28d30; README.md lists them.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import pytest
from dydx_vectors import BY_ID, account, cases, market, markets

from deleverage.errors import ValidationError
from deleverage.rules import quantum as q
from deleverage.rules import quantum_deleverage as qd


def _has(*keys: str) -> Any:
    return lambda v: all(k in v["inputs"] or k in v["expected"] for k in keys)


# ------------------------------------------------------------------------------- margin
@pytest.mark.parametrize("v", cases(lambda v: v["id"].startswith("margin_requirement_")))
def test_margin_requirements(v: dict[str, Any]) -> None:
    i = v["inputs"]
    m = q.QuantumMarket(
        atomic_resolution=i["atomic_resolution"],
        oracle_price=i["oracle_price"],
        price_exponent=i["price_exponent"],
        initial_margin_ppm=i["initial_margin_ppm"],
        maintenance_fraction_ppm=i["maintenance_fraction_ppm"],
        open_interest_base=i["open_interest_base_quantums"],
        open_interest_lower_cap_quote=i["open_interest_lower_cap_quote_quantums"],
        open_interest_upper_cap_quote=i["open_interest_upper_cap_quote_quantums"],
    )
    imr, mmr = q.margin_requirements_quote(m, i["position_base_quantums"])
    assert (imr, mmr) == (
        int(v["expected"]["imr_quote_quantums"]),
        int(v["expected"]["mmr_quote_quantums"]),
    )
    assert (
        abs(m.notional_quote(i["position_base_quantums"]))
        == i["intermediate"]["abs_notional_quote_quantums"]
    )


@pytest.mark.parametrize("v", cases(lambda v: v["id"].startswith("margin_oimf_")))
def test_open_interest_scaled_imf(v: dict[str, Any]) -> None:
    i = v["inputs"]
    got = q.adjusted_initial_margin_ppm(
        i["initial_margin_ppm"],
        i["open_interest_notional_quote_quantums"],
        i["open_interest_lower_cap_quote_quantums"],
        i["open_interest_upper_cap_quote_quantums"],
    )
    assert got == v["expected"]["adjusted_initial_margin_ppm"]


@pytest.mark.parametrize("v", cases(lambda v: v["id"].startswith("margin_mmr_ppm_")))
def test_maintenance_ppm(v: dict[str, Any]) -> None:
    i = v["inputs"]
    got = q.maintenance_margin_ppm(i["initial_margin_ppm"], i["maintenance_fraction_ppm"])
    assert got == v["expected"]["maintenance_margin_ppm"]


@pytest.mark.parametrize("v", cases(lambda v: v["quantity"] == "liquidatable"))
def test_liquidatable(v: dict[str, Any]) -> None:
    i = v["inputs"]
    if "subaccount" in i:
        risk = q.account_risk(account(i["subaccount"]), markets(i))
        mid = i["intermediate"]
        assert (risk.nc, risk.imr, risk.mmr) == (
            mid["NC_quote_quantums"],
            mid["IMR_quote_quantums"],
            mid["MMR_quote_quantums"],
        )
        got = risk.liquidatable
    else:
        got = q.is_liquidatable(i["NC_quote_quantums"], i["MMR_quote_quantums"])
    assert got is v["expected"]["is_liquidatable"]


# ------------------------------------------------------------------------------- prices
@pytest.mark.parametrize(
    "v",
    cases(lambda v: v["quantity"] == "bankruptcy_price" or v["id"].startswith("fillable_price_1")),
)
def test_bankruptcy_quote(v: dict[str, Any]) -> None:
    i = v["inputs"]
    acct, mk = account(i["subaccount"]), markets(i)
    if "error" in v["expected"]:
        with pytest.raises(ValidationError, match="ErrInvalidPerpetualPositionSizeDelta"):
            q.bankruptcy_quote(acct, mk, i["perpetual_id"], i["delta_base_quantums"])
        return
    got = q.bankruptcy_quote(acct, mk, i["perpetual_id"], i["delta_base_quantums"])
    if v["quantity"] == "bankruptcy_price":
        assert got == v["expected"]["bankruptcy_quote_quantums"]
    risk = q.account_risk(acct, mk)
    assert (risk.nc, risk.mmr) == (
        i["intermediate"]["TNC_quote_quantums"],
        i["intermediate"]["TMMR_quote_quantums"],
    )


@pytest.mark.parametrize(
    "v", cases(lambda v: v["quantity"] == "fillable_price" and "subaccount" in v["inputs"])
)
def test_fillable_price(v: dict[str, Any]) -> None:
    i = v["inputs"]
    acct, mk = account(i["subaccount"]), markets(i)
    if "error" in v["expected"]:
        with pytest.raises(ValidationError, match="ErrInvalidPerpetualPositionSizeDelta"):
            q.bankruptcy_quote(acct, mk, i["perpetual_id"], i["delta_base_quantums"])
        return
    got = q.fillable_price(
        acct,
        mk,
        i["perpetual_id"],
        bankruptcy_adjustment_ppm=i["bankruptcy_adjustment_ppm"],
        spread_to_maintenance_ppm=i["spread_to_maintenance_margin_ratio_ppm"],
    )
    assert got == Fraction(v["expected"]["fillable_price_quote_quantums_per_base_quantum"])


@pytest.mark.parametrize("v", cases(lambda v: v["id"].startswith("fillable_price_to_subticks_")))
def test_fillable_price_subticks(v: dict[str, Any]) -> None:
    i = v["inputs"]
    got = q.fillable_price_subticks(
        Fraction(i["fillable_price_quote_quantums_per_base_quantum"]),
        liquidating_long=i["is_liquidating_long"],
        subticks_per_tick=i["subticks_per_tick"],
        quantum_conversion_exponent=i["quantum_conversion_exponent"],
    )
    assert got == int(v["expected"]["subticks"])


# ------------------------------------------------------------------------------- insurance
@pytest.mark.parametrize(
    "v",
    cases(lambda v: v["quantity"] == "insurance_fund_delta" and "maker_subticks" in v["inputs"]),
)
def test_insurance_fund_delta(v: dict[str, Any]) -> None:
    i = v["inputs"]
    args = {
        "is_buy": i["liquidation_order_is_buy"],
        "fill_base": i["fill_base_quantums"],
        "maker_subticks": i["maker_subticks"],
        "max_liquidation_fee_ppm": i.get("max_liquidation_fee_ppm", 5000),
    }
    acct, mk = account(i["subaccount"]), markets(i)
    if "error" in v["expected"]:
        with pytest.raises(ValidationError, match=v["expected"]["error"]):
            q.insurance_fund_delta(acct, mk, i["perpetual_id"], **args)  # type: ignore[arg-type]
        return
    got = q.insurance_fund_delta(acct, mk, i["perpetual_id"], **args)  # type: ignore[arg-type]
    assert got == v["expected"]["insurance_fund_delta_quote_quantums"]
    pid = i["perpetual_id"]
    fill = q.fill_quote(
        i["maker_subticks"], i["fill_base_quantums"], mk[pid].quantum_conversion_exponent
    )
    assert fill == i["intermediate"]["fill_quote_quantums"]


def _fills(i: dict[str, Any]) -> list[q.LiquidationFill]:
    return [
        q.LiquidationFill(f["fill_base_quantums"], f["maker_subticks"]) for f in i["fills_in_order"]
    ]


def _limit(i: dict[str, Any], key: str) -> int:
    return int(i.get("subaccount_block_limits", {}).get(key, q.MAX_UINT64))


@pytest.mark.parametrize("v", cases(lambda v: "fills_in_order" in v["inputs"]))
def test_liquidation_fill_sequence(v: dict[str, Any]) -> None:
    """Fill by fill: insurance deltas, the account after, block usage, and where it stops."""
    i, e = v["inputs"], v["expected"]
    acct, mk = account(i["subaccount"]), markets(i)
    is_buy = i.get("liquidation_order", {}).get("is_buy", acct.position(0) < 0)
    out = q.apply_liquidation_fills(
        acct,
        mk,
        0,
        is_buy=is_buy,
        fills=_fills(i),
        max_liquidation_fee_ppm=i.get("max_liquidation_fee_ppm", 5000),
        fund_balance_quote=int(i.get("insurance_fund_balance", q.MAX_UINT64)),
        max_notional_liquidated_quote=_limit(i, "max_notional_liquidated"),
        max_insurance_lost_quote=_limit(i, "max_quantums_insurance_lost"),
    )
    if "error" in e:
        want = e.get("insurance_fund_delta_per_fill") or [e["insurance_fund_delta_of_fill"]]
        assert list(out.insurance_deltas) == want
        assert out.stopped is not None
        assert e["error"] == "Err" + out.stopped
        return
    assert list(out.insurance_deltas) == e["insurance_fund_delta_per_fill_quote_quantums"]
    assert out.stopped is None
    assert out.account.usdc_quote == e["liquidated_usdc_after_quote_quantums"]
    info = e["subaccount_liquidation_info"]
    assert out.usage.notional_liquidated_quote == info["notional_liquidated_quote_quantums"]
    assert out.usage.insurance_lost_quote == info["quantums_insurance_lost"]


def test_partial_fill_then_requires_deleveraging() -> None:
    """A fill the fund cannot pay stops the order; the filled part stays (no deleveraging
    in that block: the order was not wholly unfilled)."""
    v = BY_ID["deleverage_not_triggered_partial_fill"]
    i, e = v["inputs"], v["expected"]
    fills = [q.LiquidationFill(a["base_quantums"], a["subticks"]) for a in i["book_asks"]]
    fills[1] = q.LiquidationFill(
        i["liquidation_order"]["base_quantums"] - fills[0].base, fills[1].subticks
    )
    out = q.apply_liquidation_fills(
        account(i["subaccount"]),
        markets(i),
        0,
        is_buy=True,
        fills=fills,
        max_liquidation_fee_ppm=5000,
        fund_balance_quote=i["insurance_fund_balance"],
    )
    assert out.filled_base == e["filled_base_quantums"]
    assert out.stopped == e["order_status"]
    assert list(out.insurance_deltas) == [
        e["insurance_fund_delta_first_fill"],
        e["insurance_fund_delta_second_fill_would_be"],
    ]
    assert out.account.usdc_quote == e["liquidated_usdc_after_quote_quantums"]
    assert out.usage.notional_liquidated_quote == e["notional_liquidated_quote_quantums"]


@pytest.mark.parametrize("v", cases(lambda v: v["id"].startswith("insurance_fund_sufficiency_")))
def test_insurance_fund_sufficiency(v: dict[str, Any]) -> None:
    i = v["inputs"]
    got = q.is_valid_insurance_fund_delta(
        i["insurance_fund_balance_quote_quantums"], i["insurance_fund_delta_quote_quantums"]
    )
    assert got is v["expected"]["is_valid_insurance_fund_delta"]


# ------------------------------------------------------------------------------- sizes and limits
@pytest.mark.parametrize(
    "v",
    cases(
        lambda v: (
            (v["id"].startswith("block_limit_0") and "previous_notional_liquidated" in v["inputs"])
            or v["id"] == "block_limit_04_same_perpetual"
        )
    ),
)
def test_block_headroom(v: dict[str, Any]) -> None:
    i, e = v["inputs"], v["expected"]
    lim = i.get(
        "subaccount_block_limits",
        {"max_notional_liquidated": q.MAX_UINT64, "max_quantums_insurance_lost": q.MAX_UINT64},
    )
    usage = q.BlockUsage(
        notional_liquidated_quote=i.get("previous_notional_liquidated", 0),
        insurance_lost_quote=max(0, -i.get("previous_insurance_fund_delta", 0)),
        perpetuals_liquidated=frozenset({i["previously_liquidated_perpetual_id"]}),
    )
    kwargs = {
        "max_notional_liquidated_quote": int(lim["max_notional_liquidated"]),
        "max_insurance_lost_quote": int(lim["max_quantums_insurance_lost"]),
    }
    panics = [str(x).removeprefix("panic: ") for x in e.values() if str(x).startswith("panic")]
    if "error" in e or panics:
        with pytest.raises(ValidationError, match=e.get("error") or panics[0]):
            q.block_headroom(usage, i["queried_perpetual_id"], **kwargs)
        return
    assert q.block_headroom(usage, i["queried_perpetual_id"], **kwargs) == (
        e["max_notional_liquidatable"],
        e["max_insurance_lost"],
    )


@pytest.mark.parametrize(
    "v", cases(lambda v: v["quantity"] == "partial_size" and "delta_base_quantums" in v["expected"])
)
def test_partial_size(v: dict[str, Any]) -> None:
    i = v["inputs"]
    headroom = (
        int(i["subaccount_max_notional_liquidated"])
        - i["subaccount_notional_already_liquidated_this_block"]
    )
    got = q.liquidation_size_delta(
        market(i["market"]),
        int(i["position_base_quantums"]),
        min_position_notional_quote=i["min_position_notional_liquidated"],
        max_position_portion_ppm=i["max_position_portion_liquidated_ppm"],
        subaccount_headroom_quote=headroom,
    )
    assert got == int(v["expected"]["delta_base_quantums"])


@pytest.mark.parametrize("v", cases(lambda v: v["id"].startswith("partial_size_minmax_")))
def test_position_notional_bounds(v: dict[str, Any]) -> None:
    i, e = v["inputs"], v["expected"]
    got = q.position_notional_bounds(
        market(i["market"]),
        i["position_base_quantums"],
        min_position_notional_quote=i["min_position_notional_liquidated"],
        max_position_portion_ppm=i["max_position_portion_liquidated_ppm"],
    )
    assert got == (
        e["min_position_notional_liquidatable_quote_quantums"],
        e["max_position_notional_liquidatable_quote_quantums"],
    )


def test_block_limit_regenerated_order_size() -> None:
    v = BY_ID["block_limit_08_notional_limit_total_size"]
    i = v["inputs"]
    mk = markets(i)
    got = q.liquidation_size_delta(
        mk[0],
        account(i["subaccount"]).position(0),
        min_position_notional_quote=1000,
        max_position_portion_ppm=q.PPM,
        subaccount_headroom_quote=i["subaccount_block_limits"]["max_notional_liquidated"],
    )
    assert abs(got) == v["expected"]["recomputed_order_size_base_quantums"]
    assert abs(got) != i["proposed_liquidation_total_size_base_quantums"]


# ------------------------------------------------------------------------------- deleveraging
@pytest.mark.parametrize(
    "v",
    cases(
        lambda v: (
            "offsetting" in v["inputs"] and "delta_base_quantums_for_liquidated" in v["inputs"]
        )
    ),
)
def test_deleverage_pair(v: dict[str, Any]) -> None:
    """ProcessDeleveraging (bankruptcy price) and final settlement (oracle price)."""
    i, e = v["inputs"], v["expected"]
    at_oracle = v["quantity"] == "final_settlement"
    liq, off, mk = account(i["liquidated"]), account(i["offsetting"]), markets(i)
    delta = i["delta_base_quantums_for_liquidated"]
    if e.get("error") == "ErrInvalidPerpetualPositionSizeDelta":
        with pytest.raises(ValidationError, match="ErrInvalidPerpetualPositionSizeDelta"):
            qd.deleverage(liq, off, mk, i["perpetual_id"], delta, at_oracle=at_oracle)
        return
    got = qd.deleverage(liq, off, mk, i["perpetual_id"], delta, at_oracle=at_oracle)
    if "error" in e:
        assert got is None  # refused: the price is never moved to make it fit
        attempted = e.get(
            "bankruptcy_quote_quantums_attempted", e.get("fill_quote_quantums_attempted")
        )
        quote = (
            -mk[i["perpetual_id"]].notional_quote(delta)
            if at_oracle
            else q.bankruptcy_quote(liq, mk, i["perpetual_id"], delta)
        )
        assert quote == attempted
        return
    assert got is not None
    assert got.quote_to_liquidated == e["fill_quote_quantums_to_liquidated"]
    assert got.liquidated.usdc_quote == e["liquidated_usdc_after_quote_quantums"]
    assert got.offsetting.usdc_quote == e["offsetting_usdc_after_quote_quantums"]


@pytest.mark.parametrize("v", cases(lambda v: "candidates" in v["inputs"]))
def test_offset_position(v: dict[str, Any]) -> None:
    """OffsetSubaccountPerpetualPosition: walk candidates, skip refusals, partial allowed."""
    i, e = v["inputs"], v["expected"]
    liq, mk = account(i["liquidated"]), markets(i)
    cands = [(c["id"], account(c)) for c in i["candidates"]]
    delta = i.get("delta_quantums_total", -liq.position(0))
    _, _, fills, remaining = qd.offset_position(liq, cands, mk, i.get("perpetual_id", 0), delta)
    want = [
        (f["offsetting_subaccount"], f["fill_base_quantums"], f["quote_quantums_to_liquidated"])
        for f in e["fills"]
    ]
    assert [(f.offsetting, f.base, f.quote_to_liquidated) for f in fills] == want
    assert abs(remaining) == e["delta_quantums_remaining"]


@pytest.mark.parametrize("v", cases(lambda v: "clob_pair_status" in v["inputs"]))
def test_can_deleverage(v: dict[str, Any]) -> None:
    i, e = v["inputs"], v["expected"]
    risk = q.account_risk(account(i["subaccount"]), markets(i))
    assert risk.nc == i["intermediate"]["TNC_quote_quantums"]
    got = qd.can_deleverage(risk.nc, final_settlement=i["clob_pair_status"] == "FINAL_SETTLEMENT")
    assert got == (
        e["should_deleverage_at_bankruptcy_price"],
        e["should_deleverage_at_oracle_price"],
    )


@pytest.mark.parametrize("v", cases(lambda v: v["id"].startswith("collateral_transition_")))
def test_collateral_transition(v: dict[str, Any]) -> None:
    i = v["inputs"]
    before = q.Risk(nc=i["cur_NC"], imr=i["cur_IMR"], mmr=i["cur_MMR"])
    got = qd.undercollateralized_transition(before, i["new_NC"], i["new_MMR"])
    assert got.value == v["expected"]["result"]


#: Owners of the test subaccounts: ``constants.{Alice,Bob,Carl,Dave}AccAddress`` (v4-chain
#: @ 84d4664 ``protocol/testutil/constants/addresses.go``, derived from private keys), whose
#: bech32 strings are listed with their names in ``protocol/testing/containertest/
#: containertest.sh`` (TEST_ACCOUNTS) and as subaccount owners in
#: ``protocol/testutil/constants/genesis.go``.
TEST_OWNERS = {
    "Alice": "dydx199tqg4wdlnu4qjlxchpd7seg454937hjrknju4",
    "Bob": "dydx10fx7sy6ywd5senxae9dwytf8jxek3t2gcen2vs",
    "Carl": "dydx1fjg6zp6vv8t9wvy4lps03r5l4g7tkjw9wvmh70",
    "Dave": "dydx1wau5mja7j7zdavtfq9lu7ejef05hm6ffenlcsn",
}


def _order_hash(subaccount: str) -> bytes:
    # "Dave_Num1" -> Dave's owner, number 1; ClobPair_Btc is perpetual 0.
    name, number = subaccount.split("_Num")
    return qd.liquidation_order_hash(TEST_OWNERS[name], int(number), 0)


@pytest.mark.parametrize("v", cases(lambda v: v["quantity"] == "ordering"))
def test_liquidation_ordering(v: dict[str, Any]) -> None:
    i = v["inputs"]
    rows = i["orders_in_input_order"]
    orders = [
        qd.LiquidationOrder(
            o["is_buy"], o["base_quantums"], o["subticks"], o["oracle_notional_quote_quantums"]
        )
        for o in rows
    ]
    hashes = [_order_hash(o["subaccount"]) for o in rows]
    got = qd.sort_liquidation_orders(orders, i["oracle_price_subticks"], hashes.__getitem__)
    assert got == v["expected"]["sorted_input_indices"]


def test_order_hash_decides_the_tie_of_ordering_07() -> None:
    # Same gap and notional: only the hash tie-break gives the test's order (Carl_Num0 first);
    # keeping the input order would not.
    v = BY_ID["ordering_07"]
    i = v["inputs"]
    rows = i["orders_in_input_order"]
    orders = [
        qd.LiquidationOrder(
            o["is_buy"], o["base_quantums"], o["subticks"], o["oracle_notional_quote_quantums"]
        )
        for o in rows
    ]
    assert qd.sort_liquidation_orders(orders, i["oracle_price_subticks"]) == [0, 1]
    assert _order_hash("Carl_Num0") < _order_hash("Dave_Num0")
    assert v["expected"]["sorted_input_indices"] == [1, 0]
