"""Aave v3.3 lending as a venue: the liquidation math (:mod:`.math`), the configuration and
population (:mod:`.config`) and the venue (:mod:`.venue`)."""

from deleverage.protocols.aave.config import (
    AaveConfig,
    AavePopulation,
    AaveReserve,
    aave_population,
)
from deleverage.protocols.aave.venue import AaveVenue, build_aave

__all__ = [
    "AaveConfig",
    "AavePopulation",
    "AaveReserve",
    "AaveVenue",
    "aave_population",
    "build_aave",
]
