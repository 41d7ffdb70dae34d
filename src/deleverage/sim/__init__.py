"""The cascade simulator: populations of positions (and, later, agents and the scenario runner)."""

from deleverage.sim.population import (
    Population,
    PopulationSpec,
    generate_population,
)

__all__ = ["Population", "PopulationSpec", "generate_population"]
