"""Synthetix perps v3 (Synthetixio/synthetix-v3, ``markets/perps-market``): cross-margined
oracle-pool perpetuals whose LP pool is the counterparty.

``math`` holds the protocol's arithmetic (pure), ``config`` the bounded
:class:`SynthetixConfig` and the population generator, ``venue`` the :class:`SynthetixVenue`.
"""

from deleverage.protocols.synthetix.config import (
    SynthetixConfig,
    SynthetixMarketConfig,
    SynthetixPopulation,
    SynthetixPopulationConfig,
    synthetix_population,
)
from deleverage.protocols.synthetix.venue import SynthetixVenue, build_synthetix

__all__ = [
    "SynthetixConfig",
    "SynthetixMarketConfig",
    "SynthetixPopulation",
    "SynthetixPopulationConfig",
    "SynthetixVenue",
    "build_synthetix",
    "synthetix_population",
]
