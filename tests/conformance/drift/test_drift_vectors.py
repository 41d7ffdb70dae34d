"""Drift protocol v2 test vectors against the exact integer rules and the float path.

Each vector in ``vectors.json`` (next to this file) cites the repository, commit, file and test
it comes from: ``drift-labs/protocol-v2`` at ``0ae3e3b1db782a6765c3525b3dec38ad4d9d3a62``,
``programs/drift/src/math/liquidation/tests.rs``, ``math/margin/tests.rs``,
``controller/liquidation/tests.rs`` and friends. ``origin = "test_assert"`` vectors are literal
``assert_eq!`` values of Drift's tests; ``"derived"`` ones are worked from the cited code.
The integer functions (:mod:`deleverage.rules.fixed_point`) must match to the unit; the float
functions the engine uses (:mod:`deleverage.rules.liquidation`) to float precision.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from deleverage import MarketSpec
from deleverage.rules import fixed_point as fp
from deleverage.rules import liquidation as liq
from deleverage.rules import margin as mm

VECTORS: list[dict[str, Any]] = json.loads((Path(__file__).parent / "vectors.json").read_text())
COMMIT = "0ae3e3b1db782a6765c3525b3dec38ad4d9d3a62"


def _of(quantity: str) -> list[Any]:
    return [pytest.param(v, id=v["id"]) for v in VECTORS if v["quantity"] == quantity]


def _raw(section: dict[str, Any], key: str) -> Any:
    value = section[key]
    return value["raw"] if isinstance(value, dict) and "raw" in value else value


def test_every_vector_is_used_by_a_test_of_this_folder() -> None:
    here = Path(__file__).parent
    text = "".join(p.read_text() for p in here.glob("test_*.py"))
    quantities = {v["quantity"] for v in VECTORS if v["quantity"] != "other"}
    assert all(f'_of("{q}")' in text for q in quantities)
    others = {v["id"] for v in VECTORS if v["quantity"] == "other"}
    assert others == {
        "ctrl_cover_shortage_end_state", "ctrl_multi_slot_end_state", "ctrl_oracle_down_20",
        "docs_sol_perp_example", "transfer_price_long", "transfer_price_short",
    }  # fmt: skip


def test_every_vector_cites_drift_at_the_pinned_commit() -> None:
    assert len(VECTORS) == 59
    for v in VECTORS:
        source = v["source"]
        assert source.get("commit") == COMMIT or "docs" in source.get("repo", ""), v["id"]
        assert source["path"], v["id"]
        assert source.get("test"), v["id"]


# --------------------------------------------------------------------------- cover size


@pytest.mark.parametrize("vector", _of("cover_shortage_size"))
def test_cover_shortage_size_exact(vector: dict[str, Any]) -> None:
    i = vector["inputs"]
    base = fp.base_to_cover_shortage(
        shortage=_raw(i, "margin_shortage"), margin_ratio=_raw(i, "margin_ratio"),
        liquidator_fee=_raw(i, "liquidation_fee"), insurance_fee=_raw(i, "if_liquidation_fee"),
        oracle_price=_raw(i, "oracle_price"), quote_price=_raw(i, "quote_oracle_price"),
    )  # fmt: skip
    assert base == _raw(vector["expected"], "base_asset_amount")


@pytest.mark.parametrize("vector", _of("cover_shortage_size"))
def test_cover_shortage_size_float_path(vector: dict[str, Any]) -> None:
    # The engine's size_to_restore with the liquidator's price oracle x (1 - L) and the
    # insurance fee charged on the oracle value (quote price 1: the engine is USD-quoted).
    i = vector["inputs"]
    if _raw(i, "quote_oracle_price") != fp.PRICE:
        pytest.skip("the engine's float path has no quote-asset price (USDC = 1)")
    oracle = _raw(i, "oracle_price") / fp.PRICE
    fee_l = _raw(i, "liquidation_fee") / fp.FEE
    expected = _raw(vector["expected"], "base_asset_amount")
    q = liq.size_to_restore(
        size=1e12, shortage=_raw(i, "margin_shortage") / fp.QUOTE, mark=oracle,
        requirement_rate=_raw(i, "margin_ratio") / fp.MARGIN,
        fee_rate=_raw(i, "if_liquidation_fee") / fp.FEE,
        fill_price=oracle * (1 - fee_l), fee_price=oracle,
    )  # fmt: skip
    if expected == fp.UNBOUNDED:
        assert q == 1e12  # nothing is released: the whole position
    else:
        assert q == pytest.approx(expected / fp.BASE, abs=1.5e-9)


# --------------------------------------------------------------------------- fees


@pytest.mark.parametrize("vector", _of("if_fee"))
def test_insurance_fee_shrinks_with_shortage_exact(vector: dict[str, Any]) -> None:
    i = vector["inputs"]
    fee = fp.insurance_fee_for_shortage(
        shortage=_raw(i, "margin_shortage"), base=_raw(i, "user_base_asset_amount"),
        margin_ratio=_raw(i, "margin_ratio"), liquidator_fee=_raw(i, "liquidator_fee"),
        oracle_price=_raw(i, "oracle_price"), quote_price=_raw(i, "quote_oracle_price"),
        max_insurance_fee=_raw(i, "max_if_liquidation_fee"),
    )  # fmt: skip
    assert fee == _raw(vector["expected"], "if_liquidation_fee")


@pytest.mark.parametrize("vector", _of("if_fee"))
def test_insurance_fee_shrinks_with_shortage_float_path(vector: dict[str, Any]) -> None:
    i = vector["inputs"]
    base = _raw(i, "user_base_asset_amount") / fp.BASE
    rate = liq.insurance_fee_rate(
        shortage=_raw(i, "margin_shortage") / fp.QUOTE,
        notional=base * _raw(i, "oracle_price") / fp.PRICE,
        requirement_rate=_raw(i, "margin_ratio") / fp.MARGIN,
        liquidator_fee_rate=_raw(i, "liquidator_fee") / fp.FEE,
        max_rate=_raw(i, "max_if_liquidation_fee") / fp.FEE,
    )  # fmt: skip
    # Drift floors twice (share, then x 19/20): within 2 units of 1e-6.
    assert rate == pytest.approx(_raw(vector["expected"], "if_liquidation_fee") / fp.FEE, abs=2e-6)


def _liquidator_fee_case(vector: dict[str, Any]) -> tuple[int, int]:
    i, e = vector["inputs"], vector["expected"]
    if "current_slot" in i:
        got = fp.ramped_liquidator_fee(
            base_fee=_raw(i, "base_liquidation_fee"), max_fee=_raw(i, "max_liquidation_fee"),
            entered_slot=_raw(i, "last_active_user_slot"), slot=_raw(i, "current_slot"),
        )  # fmt: skip
        return got, _raw(e, "liquidation_fee")
    if "margin_ratio_maintenance" in i:
        got = fp.max_liquidator_fee(
            liquidator_fee=_raw(i, "liquidator_fee"),
            maintenance_ratio=_raw(i, "margin_ratio_maintenance"),
        )
        return got, _raw(e, "max_liquidation_fee")
    if "high_leverage_margin_ratio_maintenance" in i:
        got = fp.high_leverage_liquidator_fee(
            liquidator_fee=_raw(i, "liquidator_fee"),
            hlm_maintenance_ratio=_raw(i, "high_leverage_margin_ratio_maintenance"),
        )
        return got, _raw(e, "base_liquidator_fee")
    got = fp.fee_on_value(
        _raw(i, "base_asset_amount"), _raw(i, "oracle_price"), _raw(i, "fee_rate")
    )
    return got, _raw(e, "fee_quote")


@pytest.mark.parametrize("vector", _of("liquidator_fee"))
def test_liquidator_fee_ramp_cap_and_quote(vector: dict[str, Any]) -> None:
    got, expected = _liquidator_fee_case(vector)
    assert got == expected


@pytest.mark.parametrize(
    "vector", [v for v in _of("liquidator_fee") if "current_slot" in v.values[0]["inputs"]]
)
def test_liquidator_fee_ramp_float_path(vector: Any) -> None:
    # Slots as seconds: grace 1,500, +1e-6 per unit of time.
    i, e = vector["inputs"], vector["expected"]
    rate = liq.ramped_fee_rate(
        base_rate=_raw(i, "base_liquidation_fee") / fp.FEE,
        max_rate=_raw(i, "max_liquidation_fee") / fp.FEE,
        elapsed_s=float(_raw(i, "current_slot") - _raw(i, "last_active_user_slot")),
        grace_s=float(fp.FEE_GRACE_SLOTS), ramp_per_s=1e-6,
    )  # fmt: skip
    assert rate == pytest.approx(_raw(e, "liquidation_fee") / fp.FEE, abs=1e-12)


@pytest.mark.parametrize("vector", _of("liquidation_multiplier"))
def test_liquidation_multiplier(vector: dict[str, Any]) -> None:
    i = vector["inputs"]
    got = fp.liquidation_multiplier(_raw(i, "liquidation_fee"), premium=i["type"] == "Premium")
    assert got == _raw(vector["expected"], "multiplier")


# --------------------------------------------------------------------------- time ramp


@pytest.mark.parametrize("vector", _of("max_pct_to_liquidate"))
def test_max_pct_to_liquidate_exact(vector: dict[str, Any]) -> None:
    i = vector["inputs"]
    pct = fp.max_pct_to_liquidate(
        shortage=_raw(i, "margin_shortage"), margin_freed=_raw(i, "liquidation_margin_freed"),
        slot=_raw(i, "slot"), entered_slot=_raw(i, "user_last_active_slot"),
        initial_pct=_raw(i, "initial_pct_to_liquidate"),
        duration_slots=_raw(i, "liquidation_duration_slots"),
    )  # fmt: skip
    assert pct == _raw(vector["expected"], "max_pct")


@pytest.mark.parametrize("vector", _of("max_pct_to_liquidate"))
def test_max_pct_to_liquidate_float_path(vector: dict[str, Any]) -> None:
    i = vector["inputs"]
    fraction = liq.fraction_to_liquidate(
        shortage=_raw(i, "margin_shortage") / fp.QUOTE,
        margin_freed=_raw(i, "liquidation_margin_freed") / fp.QUOTE,
        elapsed_s=float(_raw(i, "slot") - _raw(i, "user_last_active_slot")),
        duration_s=float(_raw(i, "liquidation_duration_slots")),
        initial_fraction=_raw(i, "initial_pct_to_liquidate") / fp.PCT,
        full_below=fp.FULL_LIQUIDATION_SHORTAGE / fp.QUOTE,
    )  # fmt: skip
    assert fraction == pytest.approx(_raw(vector["expected"], "max_pct") / fp.PCT, abs=1e-4)


# --------------------------------------------------------------------------- margin


@pytest.mark.parametrize("vector", _of("size_premium") + [
    p for p in _of("margin_requirement") if "margin_ratio" in p.values[0]["expected"]
])  # fmt: skip
def test_margin_ratio_with_size_premium_and_high_leverage_mode(vector: dict[str, Any]) -> None:
    i = vector["inputs"]
    ratio = fp.perp_margin_ratio(
        base=_raw(i, "size"), kind=i["margin_type"], initial_ratio=_raw(i, "margin_ratio_initial"),
        maintenance_ratio=_raw(i, "margin_ratio_maintenance"), imf_factor=_raw(i, "imf_factor"),
        high_leverage=i["user_high_leverage_mode"],
        hlm_initial_ratio=_raw(i, "high_leverage_margin_ratio_initial"),
        hlm_maintenance_ratio=_raw(i, "high_leverage_margin_ratio_maintenance"),
    )  # fmt: skip
    assert ratio == _raw(vector["expected"], "margin_ratio")


@pytest.mark.parametrize(
    "vector", [p for p in _of("margin_requirement") if "imf_factor" in p.values[0]["inputs"]
               and "margin_requirement" in p.values[0]["expected"]],
)  # fmt: skip
def test_whale_margin_requirement_on_worst_case_size(vector: dict[str, Any]) -> None:
    i = vector["inputs"]
    worst_case = _raw(i, "base_asset_amount") + _raw(i, "open_bids")
    ratio = fp.perp_margin_ratio(
        base=worst_case, kind=i["margin_type"], initial_ratio=_raw(i, "margin_ratio_initial"),
        maintenance_ratio=_raw(i, "margin_ratio_maintenance"), imf_factor=_raw(i, "imf_factor"),
    )  # fmt: skip
    requirement = fp.margin_requirement(
        base=worst_case, oracle_price=_raw(i, "oracle_price"), margin_ratio=ratio,
        open_orders=_raw(i, "open_orders"),
    )  # fmt: skip
    assert requirement == _raw(vector["expected"], "margin_requirement")


def test_liquidation_buffer_on_negative_pnl() -> None:
    (vector,) = [v for v in VECTORS if v["id"] == "liq_buffer_negative_pnl"]
    i, e = vector["inputs"], vector["expected"]
    pnl = _raw(i, "quote_asset_amount")
    total = _raw(i, "usdc_deposit") + pnl
    with_buffer = total + fp.collateral_buffer(pnl, _raw(i, "liquidation_margin_buffer_ratio"))
    assert (total, with_buffer) == (
        _raw(e, "total_collateral"),
        _raw(e, "total_collateral_plus_buffer"),
    )


# --------------------------------------------------------------------------- bankruptcy


@pytest.mark.parametrize("vector", _of("bankruptcy_resolution"))
def test_bankruptcy_waterfall_insurance_then_fee_pool_then_funding_exact(
    vector: dict[str, Any],
) -> None:
    i, e = vector["inputs"], vector["expected"]
    got = fp.resolve_bankruptcy(
        loss=_raw(i, "user_quote_asset_amount"),
        insurance_vault=_raw(i, "insurance_fund_vault_balance"),
        max_insurance=_raw(i, "quote_max_insurance"),
        settled_insurance=_raw(i, "quote_settled_insurance"), fee_pool=_raw(i, "fee_pool_tokens"),
        base_long=_raw(i, "base_asset_amount_long"), base_short=_raw(i, "base_asset_amount_short"),
    )  # fmt: skip
    assert got == (
        _raw(e, "if_payment"), _raw(e, "fee_pool_payment"), _raw(e, "loss_to_socialize"),
        _raw(e, "cumulative_funding_rate_delta"),
    )  # fmt: skip


@pytest.mark.parametrize("vector", _of("bankruptcy_resolution"))
def test_bankruptcy_waterfall_float_path(vector: dict[str, Any]) -> None:
    i, e = vector["inputs"], vector["expected"]
    room = _raw(i, "quote_max_insurance") - _raw(i, "quote_settled_insurance")
    vault = max(0, _raw(i, "insurance_fund_vault_balance") - 1)  # Drift keeps one unit
    open_base = abs(_raw(i, "base_asset_amount_long")) + abs(_raw(i, "base_asset_amount_short"))
    insurance, pool, rest, per_unit = liq.bankruptcy_waterfall(
        loss=-_raw(i, "user_quote_asset_amount") / fp.QUOTE,
        fund_available=min(vault, room) / fp.QUOTE, fee_pool=_raw(i, "fee_pool_tokens") / fp.QUOTE,
        open_interest=open_base / fp.BASE,
    )  # fmt: skip
    assert insurance == pytest.approx(_raw(e, "if_payment") / fp.QUOTE)
    assert pool == pytest.approx(_raw(e, "fee_pool_payment") / fp.QUOTE)
    assert rest == pytest.approx(_raw(e, "loss_to_socialize") / fp.QUOTE)
    # the funding delta is per base unit in FUNDING precision (rounded up by Drift)
    assert per_unit == pytest.approx(
        _raw(e, "cumulative_funding_rate_delta") / fp.FUNDING, abs=1e-6
    )


@pytest.mark.parametrize("vector", _of("socialized_loss"))
def test_socialized_loss_through_funding(vector: dict[str, Any]) -> None:
    i, e = vector["inputs"], vector["expected"]
    if "borrow" in i:
        got = fp.deposit_index_delta(
            borrow=_raw(i, "borrow"), cumulative_interest=_raw(i, "cumulative_deposit_interest"),
            total_deposits=_raw(i, "total_deposits"),
        )  # fmt: skip
        assert got == _raw(e, "cumulative_deposit_interest_delta")
    elif "loss" in i:
        got = fp.resolve_bankruptcy(
            loss=_raw(i, "loss"), insurance_vault=0, max_insurance=0, settled_insurance=0,
            fee_pool=0, base_long=_raw(i, "base_asset_amount_long"),
            base_short=_raw(i, "base_asset_amount_short"),
        )  # fmt: skip
        assert got.funding_rate_delta == _raw(e, "cumulative_funding_rate_delta")
    else:
        got = fp.funding_payment(
            _raw(i, "cumulative_funding_rate_delta"), _raw(i, "base_asset_amount")
        )
        assert got == _raw(e, "quote_delta_to_user")


def test_socializing_without_open_interest_is_refused() -> None:
    # Drift raises CantResolvePerpBankruptcy when there is no base to charge.
    with pytest.raises(Exception, match="open interest"):
        fp.resolve_bankruptcy(
            loss=-1, insurance_vault=0, max_insurance=0, settled_insurance=0, fee_pool=0,
            base_long=0, base_short=0,
        )  # fmt: skip


# --------------------------------------------------------------------------- other


@pytest.mark.parametrize(
    "vector", [v for v in _of("other") if v.values[0]["id"].startswith("transfer_price")]
)
def test_liquidator_transfer_price(vector: dict[str, Any]) -> None:
    i = vector["inputs"]
    side = 1 if i["user_position_direction"] == "long" else -1
    got = fp.transfer_price(
        side=side, oracle_price=_raw(i, "oracle_price"), liquidator_fee=_raw(i, "liquidator_fee")
    )
    assert got == _raw(vector["expected"], "transfer_price")


# --------------------------------------------------------------------------- controller chain


def _shortage(
    deposit: int, base: int, quote: int, oracle: int, ratio: int, buffer: int, *,
    open_bids: int = 0, open_orders: int = 0,
) -> int:  # fmt: skip
    """Drift's liquidation-mode margin shortage of one long perp position (quote price 1):
    requirement on the worst-case size (position plus open bids) plus $0.01 per open order,
    the buffer on the liability, and the buffer on negative pnl."""
    pnl = fp.quote_value(base, oracle) + quote  # base >= 0 here: value + quote amount
    worst = base + open_bids
    requirement = fp.margin_requirement(
        base=worst, oracle_price=oracle, margin_ratio=ratio, open_orders=open_orders
    )
    plus_buffer = requirement + fp.quote_value(worst, oracle) * buffer // fp.MARGIN
    collateral = deposit + pnl + fp.collateral_buffer(pnl, buffer)
    return max(0, plus_buffer - collateral)


@pytest.mark.parametrize("vector", [p for p in _of("other") if p.id.startswith("ctrl_")])
def test_liquidate_perp_end_states(vector: dict[str, Any]) -> None:
    # liquidate_perp's tests, the pieces chained as the controller chains them, call by call:
    # open orders are cancelled at the first call (their margin counts as freed); the cover
    # size is scaled by the time ramp and rounded up to the step; the transfer is at the
    # oracle, both fees floored on its value.
    i, e = vector["inputs"], vector["expected"]
    user, market = i["user_start"], i["market"]
    deposit, base, quote = user["deposit"], user["base"], user["quote"]
    oracle, step, mmr = market["oracle"], market["step"], market["mmr"]
    buffer = _raw(i, "liquidation_margin_buffer_ratio")
    ratio = mmr + buffer
    with_orders = _shortage(
        deposit, base, quote, oracle, mmr, buffer, open_bids=user["open_bids"],
        open_orders=user["open_orders"],
    )  # fmt: skip
    freed = with_orders - _shortage(deposit, base, quote, oracle, mmr, buffer)  # the cancel
    entered = i["calls_(slot,liquidator_max_base)"][0][0]
    liquidator_quote = insurance_fees = 0
    for slot, liquidator_max in i["calls_(slot,liquidator_max_base)"]:
        shortage = _shortage(deposit, base, quote, oracle, mmr, buffer)
        pct = fp.max_pct_to_liquidate(
            shortage=shortage, margin_freed=freed, slot=slot, entered_slot=entered,
            initial_pct=i["initial_pct_to_liquidate"], duration_slots=i["liquidation_duration"],
        )  # fmt: skip
        top = fp.max_liquidator_fee(liquidator_fee=market["liquidator_fee"], maintenance_ratio=mmr)
        fee_l = fp.ramped_liquidator_fee(
            base_fee=market["liquidator_fee"], max_fee=top, entered_slot=entered, slot=slot
        )
        fee_i = fp.insurance_fee_for_shortage(
            shortage=shortage, base=base, margin_ratio=ratio, liquidator_fee=fee_l,
            oracle_price=oracle, max_insurance_fee=market["if_fee"],
        )  # fmt: skip
        cover = fp.base_to_cover_shortage(
            shortage=shortage, margin_ratio=ratio, liquidator_fee=fee_l, insurance_fee=fee_i,
            oracle_price=oracle,
        )  # fmt: skip
        allowed = cover * pct // fp.PCT
        if allowed == 0:
            continue
        allowed = -(-allowed // step) * step  # up to the step
        amount = min(base, liquidator_max // step * step, allowed)
        value = fp.quote_value(amount, oracle)
        base -= amount
        quote += value - value * fee_l // fp.FEE - value * fee_i // fp.FEE
        liquidator_quote += -value + value * fee_l // fp.FEE
        insurance_fees += value * fee_i // fp.FEE
        freed += shortage - _shortage(deposit, base, quote, oracle, mmr, buffer)
    got = {
        "base": base, "margin_freed": freed, "quote": quote,
        "liquidator_quote_delta": liquidator_quote, "if_fee_quote": insurance_fees,
    }  # fmt: skip
    assert {key: got[key] for key in e} == e


def test_docs_sol_perp_example_collateral_below_maintenance() -> None:
    # drift-docs-v2 liquidations.mdx: 500 USDC, long 200 SOL-PERP at $25, MMR 5%, at $23.6825.
    (vector,) = [v for v in VECTORS if v["id"] == "docs_sol_perp_example"]
    i, e = vector["inputs"], vector["expected"]
    base, price = i["long_base_units"] * fp.BASE, _raw(i, "price")
    pnl = fp.quote_value(base, price) - fp.quote_value(base, _raw(i, "entry_price"))
    collateral = _raw(i, "deposit") + pnl
    requirement = fp.margin_requirement(base=base, oracle_price=price, margin_ratio=_raw(i, "mmr"))
    assert collateral == _raw(e, "total_collateral")
    assert requirement == _raw(e, "maintenance_requirement")
    assert (collateral < requirement) is e["liquidatable"]
    # The float path: the boundary 4,500 / 190 solves 500 + 200 (P - 25) = 5% x 200 P.
    boundary = mm.liquidation_price_cross(
        200.0, 25.0, wallet_balance=500.0,
        tiers=MarketSpec.simple("SOL-PERP", max_leverage=10, maintenance_rate=0.05).tier_arrays,
    )  # fmt: skip
    assert float(boundary) == pytest.approx(4_500 / 190)
