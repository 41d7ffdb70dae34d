"""dYdX v4 primitives and policy fields: validation, limits and final settlement."""

from __future__ import annotations

import pytest

from deleverage import Exchange
from deleverage.errors import ValidationError
from deleverage.spec import LiquidationPolicy, MarginTier, MarketSpec


def _spec(**liquidation: object) -> MarketSpec:
    return MarketSpec.from_mapping(
        {
            "symbol": "BTC-USD", "tick_size": 1.0, "lot_size": 0.01,
            "tiers": [{"notional_floor": 0.0, "max_leverage": 50.0, "maintenance_rate": 0.012}],
            "maker_fee_rate": 0.0, "taker_fee_rate": 0.0, "liquidation_fee_rate": 0.015,
            "liquidation": {"kind": "portion", "execution": "liquidator", **liquidation},
            "adl": {"ranking": "random_start", "counterparty": "refuse"},
        }
    )  # fmt: skip


def _pair(spec: MarketSpec, fund: float) -> tuple[Exchange, int, int, int]:
    ex = Exchange()
    m = ex.list_market(spec)
    ex.set_mark(m, 100_000.0)
    if fund:
        ex.deposit(ex.insurance_account, fund)
    a, b = ex.open_account(), ex.open_account()
    ex.deposit(a, 2_000.0)
    ex.deposit(b, 1_000_000.0)
    ex.trade(m, buyer=a, seller=b, size=1.0, price=100_000.0)
    return ex, m, a, b


def test_hundred_percent_tier_is_accepted() -> None:
    tier = MarginTier(notional_floor=0.0, max_leverage=1.0, maintenance_rate=1.0)
    assert tier.initial_rate == tier.maintenance_rate == 1.0
    with pytest.raises(ValidationError, match="maintenance_rate"):
        MarketSpec.simple("X", max_leverage=2.0, maintenance_rate=0.6)


@pytest.mark.parametrize(
    ("field", "value"),
    [("bankruptcy_adjustment", 0.5), ("max_position_portion", 0.0), ("min_position_notional", -1.0),
     ("max_insurance_loss_per_account_step", 0.0)],
)  # fmt: skip
def test_policy_fields_are_validated(field: str, value: float) -> None:
    with pytest.raises(ValidationError, match=field):
        LiquidationPolicy.from_mapping({field: value})


def test_portion_closes_a_tenth_per_step_with_a_floor() -> None:
    spec = _spec(max_position_portion=0.1, min_position_notional=1_000.0)
    ex, m, a, _ = _pair(spec, 1e6)
    ex.set_mark(m, 98_900.0, ts_ns=10**9)  # equity 900 < maintenance 1,186.8
    assert float(ex._positions[m].size[a]) == pytest.approx(0.9)


def test_solvent_account_waits_when_the_fund_cannot_pay() -> None:
    # TNC >= 0 but the fillable price is beyond bankruptcy: no fill without the fund, and no
    # deleveraging (dYdX deleverages only negative net collateral).
    ex, m, a, _ = _pair(_spec(), 0.0)
    ex.set_mark(m, 98_100.0, ts_ns=10**9)
    assert float(ex._positions[m].size[a]) == 1.0
    assert ex.last_step.liquidations == 0
    assert ex.last_step.adl_rounds == 0


def test_insurance_loss_cap_blocks_the_fill() -> None:
    ex, m, a, _ = _pair(_spec(max_insurance_loss_per_account_step=100.0), 1e6)
    ex.set_mark(m, 97_000.0, ts_ns=10**9)  # TNC -1,000: the fill would cost the fund > 100
    assert ex.last_step.insurance_paid == 0.0
    assert ex.last_step.adl_rounds == 1  # deleveraged against b instead
    assert float(ex._positions[m].size[a]) == 0.0


def test_liquidate_with_limit_price_and_validation() -> None:
    ex, m, a, _ = _pair(_spec(), 1e6)
    with pytest.raises(ValidationError, match="size"):
        ex.liquidate(a, m, 2.0)
    assert ex.liquidate(a, m, 0.5) == 0.0  # not below maintenance
    ex.transfer(a, ex.fee_account, 1_000.0, reason=0)  # type: ignore[arg-type]
    assert ex.liquidate(a, m, 0.5, limit_price=99_999.0) == 0.0  # fillable price is lower
    assert ex.liquidate(a, m, 0.5) == 0.5


def test_deleverage_pair_validation_and_refusal() -> None:
    ex, m, a, b = _pair(_spec(), 0.0)
    with pytest.raises(ValidationError, match="offsetting"):
        ex.deleverage(m, a, a, 0.5)
    c = ex.open_account()
    ex.deposit(c, 10_000.0)
    ex.trade(m, buyer=c, seller=b, size=0.1, price=100_000.0)
    with pytest.raises(ValidationError, match="opposite"):
        ex.deleverage(m, a, c, 0.1)
    assert ex.deleverage(m, a, b, 0.25) == 0.25
    assert float(ex._positions[m].size[a]) == pytest.approx(0.75)


def test_final_settlement_closes_at_the_oracle() -> None:
    ex, m, a, b = _pair(_spec(), 0.0)
    ex.final_settlement(m)
    assert float(ex._positions[m].size[a]) == 0.0 == float(ex._positions[m].size[b])
    assert ex.account_margins(a).cash == pytest.approx(2_000.0)  # closed at the entry mark
    assert ex.conservation().holds
