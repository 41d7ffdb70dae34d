"""Whole-position tiers and fees in the margins (MarketSpec.tier_margin, taker_fee_in_margin).

Outside numbers: BitMEX Risk Limits Examples (a step's rate on the whole position: 230 XBT at
1% needs 2.3 XBT, tests/conformance/bitmex), BitMEX Margin Terms Definitions (IM = value /
leverage + 2 x taker x value) and OKX's requirement ``value x (MMR + fee rate)``; here the
same rules are checked on hand-computed linear positions through the risk step.
"""

from __future__ import annotations

import numpy as np
import pytest

from deleverage import Exchange, MarketSpec
from deleverage.errors import ConfigError
from deleverage.spec import MarginMode


def _spec(tier_margin: str, **fields: object) -> MarketSpec:
    # Two tiers: 0.5% below 1,000 of notional, 1% from 1,000 (deduction form: cum 5).
    return MarketSpec.from_mapping({
        "symbol": "X", "tick_size": 0.5, "lot_size": 1.0, "maker_fee_rate": 0.0,
        "taker_fee_rate": 0.0, "liquidation_fee_rate": 0.0, "tier_margin": tier_margin,
        "tiers": [
            {"notional_floor": 0.0, "max_leverage": 100.0, "maintenance_rate": 0.005},
            {"notional_floor": 1_000.0, "max_leverage": 50.0, "maintenance_rate": 0.01},
        ],
        **fields,
    })  # fmt: skip


@pytest.mark.parametrize("isolated", [True, False])
@pytest.mark.parametrize(("tier_margin", "liquidated"), [("whole_position", True),
                                                         ("deduction", False)])  # fmt: skip
def test_a_short_crossing_a_floor_needs_the_whole_step_rate(
    tier_margin: str, liquidated: bool, isolated: bool
) -> None:
    # Short 1 at 990 with 17 of margin. At 1,000.5 the equity is 17 - 10.5 = 6.5; the
    # maintenance is 1,000.5 x 1% = 10.005 on the whole position (liquidated), or
    # 10.005 - 5 = 5.005 with the deduction (not liquidated).
    ex = Exchange(check_invariants=True)
    ex.list_market(_spec(tier_margin))
    ex.deposit(ex.liquidity_account, 1e6)
    ex.set_mark("X", 990.0)
    mode = MarginMode.ISOLATED if isolated else MarginMode.CROSS
    trader = ex.open_account(margin_mode=mode)
    ex.deposit(trader, 17.0)
    if isolated:
        ex.set_leverage(trader, "X", 100.0)
    ex.trade("X", buyer=ex.liquidity_account, seller=trader, size=1.0, price=990.0)
    if isolated:
        ex.add_isolated_margin(trader, "X", 17.0 - ex.position(trader, "X").isolated_margin)
    ex.set_mark("X", 995.0)
    assert ex.last_step.liquidations == 0
    ex.set_mark("X", 1_000.5)
    assert (ex.last_step.liquidations == 1) is liquidated
    assert (ex.position(trader, "X").size == 0.0) is liquidated


def test_whole_position_tier_arrays_have_no_deduction() -> None:
    whole, deduction = _spec("whole_position").tier_arrays, _spec("deduction").tier_arrays
    np.testing.assert_array_equal(whole.cum, [0.0, 0.0])
    np.testing.assert_array_equal(deduction.cum, [0.0, 5.0])
    assert not whole.continuous
    assert deduction.continuous


def test_fees_in_margin_shift_the_rates() -> None:
    spec = _spec("deduction", taker_fee_rate=0.001, taker_fee_in_margin="initial_and_maintenance")
    tiers = spec.tier_arrays
    np.testing.assert_allclose(tiers.mmr, [0.006, 0.011])
    np.testing.assert_array_equal(tiers.cum, [0.0, 5.0])  # unchanged by a constant shift
    assert tiers.initial_fee == pytest.approx(0.002)
    only_mm = _spec("deduction", taker_fee_rate=0.001, taker_fee_in_margin="maintenance")
    assert only_mm.tier_arrays.initial_fee == 0.0


def test_fees_in_margin_at_a_chosen_leverage() -> None:
    # IM = value / leverage + 2 x taker x value: 1 at 500 with 10x and taker 0.1% needs
    # 50 + 1 = 51; MM = 500 x (0.5% + 0.1%) = 3.
    spec = _spec("deduction", taker_fee_rate=0.001, taker_fee_in_margin="initial_and_maintenance")
    ex = Exchange(check_invariants=True)
    ex.list_market(spec)
    ex.deposit(ex.liquidity_account, 1e6)
    ex.set_mark("X", 500.0)
    trader = ex.open_account()
    ex.deposit(trader, 100.0)
    ex.set_leverage(trader, "X", 10.0)
    ex.trade("X", buyer=trader, seller=ex.liquidity_account, size=1.0, price=500.0)
    margins = ex.account_margins(trader)
    assert margins.cross_initial == pytest.approx(51.0)
    assert margins.cross_maintenance == pytest.approx(3.0)


def test_new_fields_stay_out_of_the_json_at_their_defaults() -> None:
    plain = _spec("deduction")
    assert "tier_margin" not in plain.to_json()
    assert "taker_fee_in_margin" not in plain.to_json()
    whole = _spec("whole_position")
    assert '"tier_margin":"whole_position"' in whole.to_json()
    assert MarketSpec.from_json(whole.to_json()) == whole
    with pytest.raises(ConfigError, match="tier_margin"):
        _spec("stepwise")
