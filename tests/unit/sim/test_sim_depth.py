"""Books in scenarios (constant depth, power law, L2 snapshots over time) and depth that thins
with realized volatility and liquidation flow and refills: closed forms and runs."""

from __future__ import annotations

import copy
import math
from typing import Any

import numpy as np
import pandas as pd
import pytest

from deleverage.errors import ConfigError
from deleverage.liquidity import L2Book, PowerLawImpact
from deleverage.sim import depth
from deleverage.sim.runner import run
from deleverage.sim.scenario import LiquiditySpec, Scenario

SPEC: dict[str, Any] = {
    "tiers": [{"notional_floor": 0.0, "max_leverage": 50.0, "maintenance_rate": 0.01}],
    "liquidation_fee_rate": 0.002,
    "lot_size": 0.001,
    "tick_size": 0.1,
}


def test_refill_returns_half_the_thinned_depth_per_half_life() -> None:
    assert depth.refill(0.2, 300.0, 300.0) == pytest.approx(0.6)
    assert depth.refill(0.2, 600.0, 300.0) == pytest.approx(0.8)


def test_flow_thins_by_exp_minus_q_over_scale() -> None:
    assert depth.flow_thinning(0.8, 50.0, 100.0) == pytest.approx(0.8 * math.exp(-0.5))


def test_volatility_factor_is_the_reference_over_realized_to_the_elasticity() -> None:
    assert depth.volatility_factor(2.0, 0.5, 0.5) == pytest.approx(0.5)
    assert depth.volatility_factor(0.3, 0.5, 2.0) == 1.0  # calm: full depth


def test_realized_volatility_of_constant_returns() -> None:
    # |r| = 0.001 each second: sigma = 0.001 sqrt(year in seconds)
    r = np.full(100, 0.001)
    assert depth.realized_volatility(r, 1.0) == pytest.approx(0.001 * math.sqrt(365 * 86_400))


def test_l2_series_follows_the_bundled_snapshots() -> None:
    # Arrange: the replay window 2025-10-10 19:13-23:34 and the sample's snapshots
    start = int(pd.Timestamp("2025-10-10 19:13:00").value)
    spec = LiquiditySpec(model="l2", half_life_s=60.0, l2={"bundled": True, "series": True})
    path = np.full(4 * 3600 + 1300, 110_000.0)
    md = depth.MarketDepth(spec, exogenous=path, start_ns=start, dt_s=1.0)

    # Act: the book at the start, after 20:50:06 and after 21:30:06
    def book_at(hms: str) -> L2Book:
        ts = int(pd.Timestamp(f"2025-10-10 {hms}").value)
        book = md.start_step((ts - start) // 10**9, ts)
        assert isinstance(book, L2Book)
        return book

    noon, before, crash = book_at("19:13:00"), book_at("20:50:06"), book_at("21:30:06")

    # Assert: snapshots in force (12:00:07, then 20:50:06, then 21:30:06), and the book within
    # 1% on the bid side is thinner during the crash than at noon (the file's depths)
    assert "12:00:07" in noon.source
    assert "20:50:06" in before.source
    assert "21:30:06" in crash.source
    assert crash.depth_within(-1, 0.01) < noon.depth_within(-1, 0.01)


def _scenario(seed: int, liquidity: dict[str, Any], **extra: Any) -> Scenario:
    return Scenario.from_mapping(
        {
            "seed": seed,
            "duration_s": 600.0,
            "markets": [{
                "symbol": "BTCUSDT", "preset": None, "spec": copy.deepcopy(SPEC),
                "price": {"process": "shock", "s0": 60_000.0, "drop_fraction": 0.06,
                          "start_s": 30.0, "duration_s": 60.0},
                "liquidity": liquidity,
                "population": {"n_positions": 1_000, "long_fraction": 0.7,
                               "leverage_median": 20.0, "size_min": 0.002},
                **extra,
            }],
            "insurance": {"fund": 1e6},
        }
    )  # fmt: skip


def test_a_power_law_book_runs_and_moves_the_book() -> None:
    result = run(_scenario(1, {"model": "power_law", "half_life_s": 60.0,
                               "power_law": {"daily_volume": 5_000.0}}))  # fmt: skip
    assert result.summary["liquidations"] > 0
    assert result.steps["dislocation"].min() < 0.0
    assert result.exchange is None


def test_l2_needs_its_table() -> None:
    with pytest.raises(ConfigError, match="l2"):
        LiquiditySpec(model="l2")


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_liquidation_flow_thins_the_book_which_refills(seed: int) -> None:
    # Arrange: the same crash with and without depth that thins with flow (half-life 30 s)
    base = {"depth_per_pct": 5.0, "half_life_s": 60.0}
    dynamic = {**base, "dynamics": {"flow_scale": 3.0, "refill_half_life_s": 30.0}}

    # Act
    fixed = run(_scenario(seed, base)).steps
    thinning = run(_scenario(seed, dynamic)).steps

    # Assert: depth fell during the cascade and came back; the thinner book fell further
    assert (fixed["depth_multiplier"] == 1.0).all()
    assert thinning["depth_multiplier"].min() < 0.8
    assert thinning["depth_multiplier"].iloc[-1] > 0.99
    assert thinning["dislocation"].min() < fixed["dislocation"].min()


def test_the_twin_keeps_full_depth_under_flow() -> None:
    dynamic = {"depth_per_pct": 5.0, "dynamics": {"flow_scale": 20.0}}
    twin = run(_scenario(1, dynamic), feedback=False).steps
    assert (twin["depth_multiplier"] == 1.0).all()


def test_power_law_depth_scales_with_daily_volume() -> None:
    # phi scales the power-law book's daily volume: the same order moves it phi^-delta as far
    thin = PowerLawImpact(y=1.0, sigma=0.03, daily_volume=500.0, half_life_s=60.0)
    full = PowerLawImpact(y=1.0, sigma=0.03, daily_volume=1000.0, half_life_s=60.0)
    ratio = thin.quote(-1, 10.0, 100.0, 0).impact / full.quote(-1, 10.0, 100.0, 0).impact
    assert ratio == pytest.approx(2**0.5)
