"""The cascade simulator's parts: populations of positions and funding rates (agents and the
scenario runner are to come)."""

from deleverage.sim.funding import premium_funding_rate
from deleverage.sim.population import (
    Population,
    PopulationSpec,
    generate_population,
)

__all__ = ["Population", "PopulationSpec", "generate_population", "premium_funding_rate"]
