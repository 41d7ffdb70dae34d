"""Edge cases, conventions and closed-form checks of the margin functions."""

from __future__ import annotations

import numpy as np
import pytest

from deleverage.errors import ValidationError
from deleverage.rules.margin import (
    apply_fill,
    bankruptcy_price,
    hyperliquid_tiers,
    initial_margin,
    liquidation_price_cross,
    liquidation_price_dydx,
    liquidation_price_hyperliquid,
    liquidation_price_isolated,
    maintenance_margin,
    margin_ratio,
    oi_scaled_initial_rate,
    tier_index,
    uniform_liquidation_factors,
)
from deleverage.spec import MarginTier, TierArrays, maintenance_deductions

TWO_TIERS = TierArrays.from_tiers(
    [
        MarginTier(notional_floor=0.0, max_leverage=50, maintenance_rate=0.01),
        MarginTier(notional_floor=10_000.0, max_leverage=20, maintenance_rate=0.025),
    ]
)


def _table(floors: list[float], rates: list[float]) -> TierArrays:
    floor = np.array(floors)
    mmr = np.array(rates)
    return TierArrays(
        floor=floor, imr=np.ones_like(mmr), mmr=mmr, cum=maintenance_deductions(floor, mmr)
    )


def test_flat_positions_have_no_liquidation_or_bankruptcy_price() -> None:
    # Act
    results = [
        liquidation_price_isolated(0.0, 100.0, 10.0, TWO_TIERS),
        liquidation_price_isolated(0.0, 100.0, 10.0, TWO_TIERS, mm_basis="entry"),
        liquidation_price_cross(0.0, 100.0, wallet_balance=10.0, tiers=TWO_TIERS),
        liquidation_price_dydx(0.0, 100.0, equity=10.0, maintenance_fraction=0.05),
        liquidation_price_hyperliquid(0.0, 100.0, margin=10.0, tiers=TWO_TIERS),
        bankruptcy_price(0.0, 100.0, 10.0),
    ]
    # Assert
    assert all(np.isnan(r) for r in results)


def test_fully_collateralized_long_cannot_be_liquidated_and_gets_zero() -> None:
    # A 1x long (margin = notional) keeps equity >= 0 >= maintenance down to a zero price.
    # Act
    lp = liquidation_price_isolated(2.0, 100.0, 200.0, TWO_TIERS)
    bp = bankruptcy_price(2.0, 100.0, 250.0)
    # Assert
    assert float(lp) == 0.0
    assert float(bp) == 0.0


def test_liquidation_prices_broadcast_over_position_arrays() -> None:
    # Arrange
    size = np.array([[1.0, -1.0], [2.0, -2.0], [0.5, 0.0]])
    entry = np.array([100.0, 200.0])
    # Act
    lp = liquidation_price_isolated(size, entry, 10.0, TWO_TIERS)
    # Assert: each element equals the scalar call.
    assert lp.shape == (3, 2)
    for i, j in np.ndindex(lp.shape):
        scalar = liquidation_price_isolated(size[i, j], entry[j], 10.0, TWO_TIERS)
        np.testing.assert_equal(lp[i, j], scalar)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [({"mm_basis": "notional"}, "mm_basis"), ({"tier_basis": "at_mark"}, "tier_basis")],
)
def test_unknown_convention_is_rejected_naming_the_field(
    kwargs: dict[str, str], field: str
) -> None:
    # Act / Assert
    with pytest.raises(ValidationError, match=f"`{field}` must be one of"):
        liquidation_price_isolated(1.0, 100.0, 10.0, TWO_TIERS, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("rate", [-0.001, 1.0, float("nan")])
def test_close_fee_rate_outside_zero_one_is_rejected(rate: float) -> None:
    with pytest.raises(ValidationError, match="`close_fee_rate` must be in"):
        bankruptcy_price(1.0, 100.0, 10.0, close_fee_rate=rate)


def test_uniform_factors_need_exactly_one_source_of_maintenance_rates() -> None:
    with pytest.raises(ValidationError, match="maintenance_fractions"):
        uniform_liquidation_factors([1.0], [100.0], quote_balance=0.0)
    with pytest.raises(ValidationError, match="maintenance_fractions"):
        uniform_liquidation_factors(
            [1.0], [100.0], quote_balance=0.0, maintenance_fractions=[0.05], tiers=TWO_TIERS
        )
    with pytest.raises(ValidationError, match="one table per position"):
        uniform_liquidation_factors([1.0, 2.0], [100.0, 5.0], quote_balance=0.0, tiers=[TWO_TIERS])


def test_hyperliquid_tiers_need_one_leverage_per_bound() -> None:
    with pytest.raises(ValidationError, match="max_leverages"):
        hyperliquid_tiers([0.0, 1e6], [40])


def test_notional_at_a_floor_belongs_to_the_upper_tier() -> None:
    # Act
    tiers = tier_index([0.0, 9_999.99, 10_000.0, 1e9], TWO_TIERS)
    # Assert
    np.testing.assert_array_equal(tiers, [0, 0, 1, 1])
    assert float(maintenance_margin(10_000.0, TWO_TIERS)) == pytest.approx(100.0)


def test_apply_fill_opens_averages_reduces_and_flips() -> None:
    # Arrange: flat -> buy 2 @100 -> buy 2 @110 -> sell 1 @120 -> sell 5 @90.
    steps = [(2.0, 100.0), (2.0, 110.0), (-1.0, 120.0), (-5.0, 90.0)]
    expected = [(2.0, 100.0, 0.0), (4.0, 105.0, 0.0), (3.0, 105.0, 15.0), (-2.0, 90.0, -45.0)]
    size, entry = 0.0, 0.0
    for (fill_size, fill_price), (want_size, want_entry, want_realized) in zip(
        steps, expected, strict=True
    ):
        # Act
        new_size, new_entry, realized = apply_fill(size, entry, fill_size, fill_price)
        # Assert
        assert float(new_size) == pytest.approx(want_size)
        assert float(new_entry) == pytest.approx(want_entry)
        assert float(realized) == pytest.approx(want_realized)
        size, entry = float(new_size), float(new_entry)


def test_closing_a_position_leaves_it_flat_with_zero_entry() -> None:
    # Act
    size, entry, realized = apply_fill(-3.0, 50.0, 3.0, 40.0)
    # Assert
    assert (float(size), float(entry), float(realized)) == (0.0, 0.0, 30.0)


def test_margin_ratio_conventions_are_reciprocal_and_flag_insolvency() -> None:
    # Act
    binance = margin_ratio([100.0, 0.0, 50.0], [50.0, 10.0, 0.0])
    dydx = margin_ratio([100.0, 0.0, 50.0], [50.0, 10.0, 0.0], convention="equity_over_maintenance")
    # Assert
    np.testing.assert_allclose(binance, [0.5, np.inf, 0.0])
    np.testing.assert_allclose(dydx, [2.0, 0.0, np.inf])


def test_chosen_leverage_raises_the_initial_margin_above_the_tier_minimum() -> None:
    # 5,000 notional at 10x needs 500; the tier alone (50x) needs 100.
    # Act / Assert
    assert float(initial_margin(5_000.0, TWO_TIERS, leverage=10.0)) == pytest.approx(500.0)
    assert float(initial_margin(5_000.0, TWO_TIERS)) == pytest.approx(100.0)


def test_open_interest_scaling_matches_the_dydx_formula() -> None:
    # dYdX v4 docs "Margining" > "Open-Interest-Based IMF"
    # (dydxprotocol/v4-documentation, docs/pages/concepts/trading/margin.mdx):
    # scaling_factor = (open_notional - lower_cap) / (upper_cap - lower_cap);
    # IMF_increase = scaling_factor * (1 - base_IMF); effective_IMF = min(base + max(inc, 0), 1).
    # Base 5%, caps 20M and 50M, open notional 35M: scaling 0.5, IMF = 0.05 + 0.5 x 0.95 = 0.525.
    # Act
    rates = [
        oi_scaled_initial_rate(0.05, oi, lower_cap=20e6, upper_cap=50e6)
        for oi in (10e6, 35e6, 80e6)
    ]
    # Assert
    np.testing.assert_allclose(rates, [0.05, 0.525, 1.0])


def test_hedged_account_with_steep_tiers_has_a_two_sided_safe_range() -> None:
    # Long 1 X at 100 (flat 1%) and short 0.9 Y at 100 whose rate jumps from 1% to 90% at a
    # 100 notional, cash -5 (equity at k = 1: -5 + 100 - 90 = 5). For all marks times k:
    #   k < 100/90: g(k) = -5 + 10 k - (1 + 0.9) k = -5 + 8.1 k          -> root 5 / 8.1
    #   k > 100/90: slope 10 - 1 - 0.9 x 100 x 0.9 = -72 from g(100/90)  -> second root
    # Arrange
    flat = _table([0.0], [0.01])
    steep = _table([0.0, 100.0], [0.01, 0.9])
    kink = 100.0 / 90.0
    expected_upper = kink + (-5.0 + 8.1 * kink) / 72.0
    # Act
    lower, upper = uniform_liquidation_factors(
        [1.0, -0.9], [100.0, 100.0], quote_balance=-5.0, tiers=[flat, steep]
    )
    # Assert
    assert float(lower) == pytest.approx(5.0 / 8.1, rel=1e-12)
    assert float(upper) == pytest.approx(expected_upper, rel=1e-12)


def test_account_that_no_move_can_save_gets_nan_factors() -> None:
    # Short 1 at 100 with cash -50: g(k) = -50 - 100 k - 5 k < 0 for every k >= 0.
    # Act
    lower, upper = uniform_liquidation_factors(
        [-1.0], [100.0], quote_balance=-50.0, maintenance_fractions=[0.05]
    )
    # Assert
    assert np.isnan(lower)
    assert np.isnan(upper)
