"""Analytics: liquidation probabilities, greeks of liquidatable positions, cascade criticality.

- :mod:`~deleverage.analytics.first_passage`: probability of reaching the liquidation price
  (closed form, discrete-monitoring correction, Monte Carlo with confidence intervals);
- :mod:`~deleverage.analytics.greeks`: value, delta and gamma of a position that is closed at
  its liquidation price, and sensitivities of the liquidation probability;
- :mod:`~deleverage.analytics.criticality`: branching ratio, amplification and critical shock
  of liquidation cascades.
"""

from deleverage.analytics.criticality import (
    CascadeRounds,
    branching_ratio,
    critical_shock,
    linear_cascade_total_drop,
    simulate_cascade_rounds,
)
from deleverage.analytics.first_passage import (
    BGK_BETA,
    SECONDS_PER_YEAR,
    HitProbabilityEstimate,
    bgk_discrete_barrier,
    bootstrap_paths,
    discrete_hit_probability,
    gbm_hit_probability,
    gbm_paths,
    mc_hit_probability,
    merton_jump_paths,
)
from deleverage.analytics.greeks import (
    HitProbabilitySensitivities,
    MonteCarloGreeks,
    PathSimulator,
    PositionGreeks,
    hit_probability_sensitivities,
    knockout_forward_greeks,
    mc_knockout_forward_greeks,
)
from deleverage.analytics.heatmap import largest_clusters, liquidation_heatmap

__all__ = [
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
