"""MakerDAO as a venue: vaults, Dog and Clipper (Liquidations 2.0), Cat and Flipper (1.2), the
Vow and its debt auctions, driven by keepers on a chain with a gas price that spikes.

Pure math in :mod:`.math`; the delayed oracle in :mod:`.osm`; auctions in :mod:`.clipper` and
:mod:`.flipper`; the Vow in :mod:`.vow`; the venue in :mod:`.venue`; configuration, the vault
population and the builder in :mod:`.config`.
"""

from deleverage.protocols.maker.config import (
    ClipperConfig,
    DogConfig,
    FlipperConfig,
    MakerConfig,
    MakerPopulation,
    MakerPopulationSpec,
    VowConfig,
    maker_population,
)
from deleverage.protocols.maker.venue import MakerVenue, build_maker

__all__ = [
    "ClipperConfig",
    "DogConfig",
    "FlipperConfig",
    "MakerConfig",
    "MakerPopulation",
    "MakerPopulationSpec",
    "MakerVenue",
    "VowConfig",
    "build_maker",
    "maker_population",
]
