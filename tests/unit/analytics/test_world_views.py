"""A world's heatmaps and criticality against closed forms (docs/formulas.md §10.8, §19.5)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from deleverage.analytics.world_views import (
    linear_depth_per_price,
    world_criticality,
    world_heatmaps,
)
from deleverage.errors import ValidationError


def _band(n: int, size: float, top: float, bottom: float, venue_sign: float = 1.0) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "asset": "BTC",
            "account": np.arange(n),
            "size": venue_sign * size,
            "notional": size * 100.0,
            "liquidation_price": np.linspace(top, bottom, n),
        }
    )


def test_the_world_heatmap_is_the_bucket_wise_sum_of_the_venues() -> None:
    # Arrange: two venues with longs below and shorts above 100
    a = pd.concat([_band(50, 1.0, 99.0, 80.0), _band(20, 2.0, 101.0, 120.0, -1.0)])
    b = _band(30, 0.5, 98.0, 85.0)
    # Act
    heat = world_heatmaps({"a": a, "b": b}, asset="BTC", price=100.0, bucket_width=2.0)
    # Assert: per bucket and side, world = a + b; totals = sum |q| L
    keys = ["bucket_low", "side"]
    world = heat[heat["venue"] == "world"].set_index(keys)["notional"]
    venues = heat[heat["venue"] != "world"].groupby(keys)["notional"].sum()
    pd.testing.assert_series_equal(
        world.sort_index(), venues.sort_index(), check_names=False, check_index_type=False
    )
    expected = float((np.abs(a["size"]) * a["liquidation_price"]).sum()) + float(
        (np.abs(b["size"]) * b["liquidation_price"]).sum()
    )
    assert world.sum() == pytest.approx(expected)


def test_a_uniform_band_has_the_closed_form_branching_ratio_and_critical_shock() -> None:
    # Arrange: 1,000 longs of 0.01 BTC spread uniformly over [90, 99.99): rho = 10 / 10 = 1 BTC
    # per dollar; depth 2 BTC per dollar -> k = 0.5, critical shock (1 - k) W = 5 dollars
    n = 1000
    levels = _band(n, 0.01, 99.99, 90.0)
    levels["liquidation_price"] = 100.0 - (np.arange(n) + 1) * (10.0 / n)
    # Act
    crit = world_criticality(
        {"a": levels}, asset="BTC", price=100.0, depth_per_price=2.0, shock=0.02
    )
    row = crit[(crit["venue"] == "world") & (crit["direction"] == "down")].iloc[0]
    # Assert (to the grid of the levels)
    assert row["branching_ratio"] == pytest.approx(0.5, abs=0.01)
    assert row["critical_shock"] * 100.0 == pytest.approx(5.0, abs=0.02)
    up = crit[(crit["venue"] == "world") & (crit["direction"] == "up")].iloc[0]
    assert up["positions"] == 0


def test_depth_per_price_and_bad_input() -> None:
    assert linear_depth_per_price(50.0, 100.0) == pytest.approx(50.0)
    with pytest.raises(ValidationError, match="depth_per_pct"):
        linear_depth_per_price(0.0, 100.0)
    with pytest.raises(ValidationError, match="shock"):
        world_criticality({}, asset="BTC", price=100.0, depth_per_price=1.0, shock=1.5)
