"""Tiny worlds for the predict tests: a few hundred positions, a few minutes, seconds to run."""

from __future__ import annotations

from importlib import resources

from deleverage.predict.features import FeatureConfig
from deleverage.sim.scenario import Scenario, load_scenario

HORIZON_S = 60.0
CONFIG = FeatureConfig(horizon_s=HORIZON_S, window_s=60.0, sample_every_s=20.0)


def tiny_world(duration_s: float = 400.0, positions: int = 300) -> Scenario:
    path = resources.files("deleverage") / "data" / "predict" / "predict-jumps.toml"
    return load_scenario(str(path)).with_overrides(
        {
            "duration_s": duration_s,
            "markets.0.population.n_positions": positions,
            "markets.0.population.leverage_median": 40.0,
        }
    )
