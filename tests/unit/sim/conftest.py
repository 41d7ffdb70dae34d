"""Small seeded scenarios for the simulator's unit tests.

``make_scenario(overrides)`` builds a one-market scenario (a flat-then-ramp crash of a
1,000-position book, 200 one-second steps) and applies ``overrides`` by dotted path
(``Scenario.with_overrides``), so each test states only what it varies; ``scenario_data`` is
the same scenario as a mapping to edit.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from deleverage.sim.scenario import Scenario

#: A one-tier market: 50x max leverage, 1% maintenance, 0.2% liquidation penalty.
SIMPLE_SPEC: dict[str, Any] = {
    "tiers": [{"notional_floor": 0.0, "max_leverage": 50.0, "maintenance_rate": 0.01}],
    "liquidation_fee_rate": 0.002,
    "lot_size": 0.001,
    "tick_size": 0.1,
}


def base_scenario() -> dict[str, Any]:
    """A 4% crash over 60 s from 60,000 after 30 s flat, on a thin book, 200 s in all."""
    return {
        "name": "unit",
        "seed": 1,
        "dt_s": 1.0,
        "duration_s": 200.0,
        "markets": [
            {
                "symbol": "BTCUSDT",
                "preset": None,
                "spec": dict(SIMPLE_SPEC),
                "price": {
                    "process": "shock",
                    "s0": 60_000.0,
                    "drop_fraction": 0.04,
                    "start_s": 30.0,
                    "duration_s": 60.0,
                },
                "liquidity": {"depth_per_pct": 10.0, "half_life_s": 60.0},
                "population": {
                    "n_positions": 1000,
                    "long_fraction": 0.7,
                    "leverage_median": 20.0,
                    "size_min": 0.002,
                },
            }
        ],
        "insurance": {"fund": 100_000.0},
    }


ScenarioFactory = Callable[..., Scenario]


@pytest.fixture
def scenario_data() -> dict[str, Any]:
    """A fresh copy of :func:`base_scenario`'s mapping, to edit in place."""
    return base_scenario()


@pytest.fixture
def make_scenario() -> ScenarioFactory:
    """``make_scenario(overrides=None)``: the base scenario with dotted-path overrides."""

    def build(overrides: dict[str, Any] | None = None) -> Scenario:
        scenario = Scenario.from_mapping(base_scenario())
        return scenario.with_overrides(overrides) if overrides else scenario

    return build
