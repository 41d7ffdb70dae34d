"""The analytics package's public names are pinned (STYLE.md rule 14)."""

from __future__ import annotations

import deleverage.analytics as analytics
from deleverage.analytics import criticality, first_passage, greeks, heatmap

EXPECTED = [
    "BGK_BETA",
    "SECONDS_PER_YEAR",
    "CascadeRounds",
    "HitProbabilityEstimate",
    "HitProbabilitySensitivities",
    "MonteCarloGreeks",
    "PathSimulator",
    "PositionGreeks",
    "bgk_discrete_barrier",
    "bootstrap_paths",
    "branching_ratio",
    "critical_shock",
    "discrete_hit_probability",
    "gbm_hit_probability",
    "gbm_paths",
    "hit_probability_sensitivities",
    "knockout_forward_greeks",
    "largest_clusters",
    "linear_cascade_total_drop",
    "liquidation_heatmap",
    "mc_hit_probability",
    "mc_knockout_forward_greeks",
    "merton_jump_paths",
    "simulate_cascade_rounds",
]


def test_analytics_exports_exactly_the_pinned_names() -> None:
    assert analytics.__all__ == EXPECTED


def test_every_exported_name_resolves_to_its_module_object() -> None:
    modules = (first_passage, greeks, criticality, heatmap)
    for name in EXPECTED:
        owners = [m for m in modules if name in m.__all__]
        assert len(owners) == 1, name
        assert getattr(analytics, name) is getattr(owners[0], name)
