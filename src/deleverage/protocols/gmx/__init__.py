"""GMX v2 (gmx-io/gmx-synthetics): oracle-pool perpetuals with the LP pool as counterparty.

``math`` holds the protocol's arithmetic (pure), ``config`` the bounded :class:`GmxConfig`
and the population generator, ``venue`` the :class:`GmxVenue`.
"""

from deleverage.protocols.gmx.config import (
    GmxConfig,
    GmxPopulation,
    GmxPopulationConfig,
    gmx_population,
)
from deleverage.protocols.gmx.venue import GmxVenue, build_gmx

__all__ = [
    "GmxConfig",
    "GmxPopulation",
    "GmxPopulationConfig",
    "GmxVenue",
    "build_gmx",
    "gmx_population",
]
