"""A maintenance margin floor: the least maintenance an open position needs.

``MarketSpec.min_maintenance_margin``: maintenance = max(floor, tiered) for an open position
(issue 12, "a maintenance margin floor (minimum margin per position)"); a flat position needs
nothing. Closed-form example: 0.01 BTC at 99,400 is 994 of notional, 1% tiered maintenance
9.94, floor 25.
"""

from __future__ import annotations

import pytest

from deleverage import Exchange, MarginMode, MarketSpec
from deleverage.errors import ConfigError
from deleverage.rules import margin as mm

S = 1_000_000_000


def _spec(floor: float) -> MarketSpec:
    return MarketSpec.simple(
        "BTCUSDT", max_leverage=50.0, maintenance_rate=0.01, maker_fee_rate=0.0,
        taker_fee_rate=0.0, liquidation_fee_rate=0.0, min_maintenance_margin=floor,
        liquidation={"kind": "partial", "buffer": 0.0},
    )  # fmt: skip


def test_pure_maintenance_takes_the_floor_for_open_positions_only() -> None:
    tiers = _spec(25.0).tier_arrays
    got = mm.maintenance_margin([0.0, 994.0, 5_000.0], tiers)
    assert got.tolist() == pytest.approx([0.0, 25.0, 50.0])


def test_a_negative_floor_is_rejected_naming_the_field() -> None:
    with pytest.raises(ConfigError, match="min_maintenance_margin"):
        _spec(-1.0)


@pytest.mark.parametrize("mode", [MarginMode.ISOLATED, MarginMode.CROSS])
@pytest.mark.parametrize(("floor", "liquidated"), [(25.0, True), (0.0, False)])
def test_a_small_position_under_its_floor_is_closed_whole(
    mode: MarginMode, floor: float, liquidated: bool
) -> None:
    # 0.01 BTC bought at 100,000 with 30 of margin; at 99,400 the equity is 24: below the
    # floor of 25, above the tiered 9.94. On the floor a part closed frees nothing: all of it.
    ex = Exchange(check_invariants=True)
    m = ex.list_market(_spec(floor))
    ex.set_mark(m, 100_000.0)
    a = ex.open_account(margin_mode=mode)
    ex.deposit(a, 30.0)
    ex.trade(m, buyer=a, seller=ex.liquidity_account, size=0.01, price=100_000.0)
    if mode is MarginMode.ISOLATED:
        ex.add_isolated_margin(a, m, ex.cash(a))
    assert ex.account_margins(a).total_equity == pytest.approx(30.0)

    ex.set_mark(m, 99_400.0, ts_ns=1 * S)

    assert (ex.position(a, m).size == 0.0) is liquidated
    assert ex.last_step.liquidations == int(liquidated)
