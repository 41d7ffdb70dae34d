"""The dynamic levers' pure math (rules/dynamic.py): the stress multiplier from volatility, open
interest and depth, the implied-volatility schedule, and the spec with every lever moved."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError as PydanticValidationError

from deleverage.rules.dynamic import (
    DynamicLevers,
    implied_volatility_at,
    lever_multiplier,
    levered_spec,
    scale_spec,
)
from deleverage.spec import MarketSpec
from deleverage.venues import preset
from strategies import market_specs

NO_ROUNDING = {"step": 0.0, "min_multiplier": 0.01, "max_multiplier": 100.0}


@pytest.mark.parametrize(
    ("levers", "state", "expected"),
    [
        # sigma twice the reference, a = 1: k = 2
        ({}, {"volatility": 1.2, "open_interest_notional": 0.0, "depth_ratio": 1.0}, 2.0),
        # a = 2: k = 2^2
        (
            {"volatility_exponent": 2.0},
            {"volatility": 1.2, "open_interest_notional": 0.0, "depth_ratio": 1.0},
            4.0,
        ),
        # OI four times the reference with b = 0.5: k = 2 (volatility ignored)
        (
            {"volatility": "none", "reference_open_interest": 1e6},
            {"volatility": 5.0, "open_interest_notional": 4e6, "depth_ratio": 1.0},
            2.0,
        ),
        # half the book's depth with c = 1: k = 2
        (
            {"volatility": "none", "depth_exponent": 1.0},
            {"volatility": None, "open_interest_notional": 0.0, "depth_ratio": 0.5},
            2.0,
        ),
        # the three together multiply: 1.5 x 2 x 4
        (
            {"reference_open_interest": 1e6, "depth_exponent": 2.0},
            {"volatility": 0.9, "open_interest_notional": 4e6, "depth_ratio": 0.5},
            12.0,
        ),
    ],
)
def test_the_multiplier_is_the_product_of_its_factors(
    levers: dict[str, object], state: dict[str, float], expected: float
) -> None:
    k = lever_multiplier(DynamicLevers(**{**NO_ROUNDING, **levers}), **state)
    assert k == pytest.approx(expected, rel=1e-12)


def test_the_multiplier_is_clipped_and_rounded_to_its_step() -> None:
    levers = DynamicLevers(min_multiplier=1.0, max_multiplier=3.0, step=0.25)
    state = {"open_interest_notional": 0.0, "depth_ratio": 1.0}
    assert lever_multiplier(levers, volatility=0.3, **state) == 1.0  # 0.5 clipped up
    assert lever_multiplier(levers, volatility=6.0, **state) == 3.0  # 10 clipped down
    assert lever_multiplier(levers, volatility=0.6 * 1.6, **state) == 1.5  # 1.6 -> 1.5
    assert lever_multiplier(levers, volatility=0.6 * 1.9, **state) == 2.0  # 1.9 -> 2.0
    assert lever_multiplier(levers, volatility=None, **state) == 1.0  # too few marks


def test_the_implied_volatility_schedule_is_linear_between_points_and_flat_beyond() -> None:
    schedule = ((60.0, 0.5), (160.0, 1.5))
    assert implied_volatility_at(schedule, 0.0) == 0.5
    assert implied_volatility_at(schedule, 110.0) == pytest.approx(1.0, rel=1e-12)
    assert implied_volatility_at(schedule, 85.0) == pytest.approx(0.75, rel=1e-12)
    assert implied_volatility_at(schedule, 1e6) == 1.5


@settings(max_examples=60, deadline=None)
@given(spec=market_specs(), k=st.floats(0.2, 8.0))
def test_default_levers_move_margin_like_scale_spec(spec: MarketSpec, k: float) -> None:
    # The engine's plain VolatilityScaledMargin (scale_spec) is the oracle for the defaults.
    assert levered_spec(spec, k, DynamicLevers()) == scale_spec(spec, k)


@settings(max_examples=60, deadline=None)
@given(
    spec=market_specs(),
    k=st.floats(1.0, 8.0),
    position=st.floats(0.0, 2.0),
    fee=st.floats(0.0, 2.0),
)
def test_levers_tighten_every_parameter_as_k_grows(
    spec: MarketSpec, k: float, position: float, fee: float
) -> None:
    levers = DynamicLevers(position_limit_exponent=position, liquidation_fee_exponent=fee)
    out = levered_spec(spec, k, levers)
    assert len(out.tiers) == len(spec.tiers)
    for old, new in zip(spec.tiers, out.tiers, strict=True):
        assert new.maintenance_rate >= old.maintenance_rate * (1 - 1e-12) or (
            new.maintenance_rate == pytest.approx(0.999 / new.max_leverage)
        )
        assert new.max_leverage <= old.max_leverage
        assert new.notional_floor == pytest.approx(old.notional_floor / k**position, rel=1e-12)
        assert new.maintenance_rate < 1.0 / new.max_leverage
    expected_fee = min(
        spec.liquidation_fee_rate * k**fee,
        max(levers.liquidation_fee_cap, spec.liquidation_fee_rate),
    )
    if fee == 0.0:
        expected_fee = spec.liquidation_fee_rate
    assert out.liquidation_fee_rate == pytest.approx(expected_fee, rel=1e-12)


def test_binance_btc_at_k_2_has_half_the_leverage_and_twice_the_maintenance() -> None:
    # Arrange: Binance's BTCUSDT table (first tier 125x, 0.4%).
    base = preset("binance", "BTCUSDT")
    levers = DynamicLevers(position_limit_exponent=1.0, liquidation_fee_exponent=1.0)

    # Act
    out = levered_spec(base, 2.0, levers)

    # Assert
    first, second = base.tiers[0], base.tiers[1]
    assert out.tiers[0].max_leverage == first.max_leverage / 2
    assert out.tiers[0].maintenance_rate == pytest.approx(2 * first.maintenance_rate)
    assert out.tiers[1].notional_floor == second.notional_floor / 2
    assert out.liquidation_fee_rate == pytest.approx(
        min(2 * base.liquidation_fee_rate, max(0.05, base.liquidation_fee_rate))
    )
    assert not math.isclose(out.liquidation_fee_rate, base.liquidation_fee_rate)


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"volatility": "implied"}, "implied_volatility"),
        ({"implied_volatility": ((10.0, 0.5), (5.0, 0.6))}, "implied_volatility"),
        ({"min_multiplier": 2.0, "max_multiplier": 1.0}, "max_multiplier"),
        ({"depth_exponent": -1.0}, "depth_exponent"),
        ({"liquidation_fee_cap": 1.5}, "liquidation_fee_cap"),
    ],
)
def test_bad_levers_are_refused_naming_the_field(fields: dict[str, object], named: str) -> None:
    with pytest.raises((PydanticValidationError, ValueError), match=named):
        DynamicLevers(**fields)
