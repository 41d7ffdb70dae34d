"""The multi-venue world (issue #18): assets with shared markets, venues of any kind stepping
through the :class:`~deleverage.venues.protocol.Venue` protocol, traders across venues and
pluggable risk layers.

- :mod:`~deleverage.world.market`: the shared market of an asset and a venue's link to it;
- :mod:`~deleverage.world.core`: :class:`World`, the loop, channels and attribution by round;
- :mod:`~deleverage.world.hooks`: :class:`RiskLayer`, the hook surface (rounds, flow, deficits);
- :mod:`~deleverage.world.traders`: :class:`TraderMap` and :class:`SharedWallets` (the trader
  channel);
- :mod:`~deleverage.world.collateral`: :class:`CollateralAccess` (accounts seen by a world);
- :mod:`~deleverage.world.result`: :class:`WorldResult` (frames, contagion, summaries);
- :mod:`~deleverage.world.clearing`: a clearinghouse of venues with a default waterfall
  (cover-2 default fund, skin in the game, variation-margin gains haircut);
- :mod:`~deleverage.world.backstop`: cross-chain backstop pools for forced flow and deficits;
- :mod:`~deleverage.world.exposure` and :mod:`~deleverage.world.risk_oracle`: each trader's
  risk across venues and a cross-venue risk oracle.
"""

from __future__ import annotations

from deleverage.world.collateral import CollateralAccess, PerpCollateral
from deleverage.world.core import MARKET_SOURCE, Channels, World, WorldVenue
from deleverage.world.hooks import Deficit, RiskLayer, RoundView
from deleverage.world.market import SharedMarket, VenueLink
from deleverage.world.result import WorldResult
from deleverage.world.traders import SharedWallets, TraderMap, Transfer

__all__ = [
    "MARKET_SOURCE",
    "Channels",
    "CollateralAccess",
    "Deficit",
    "PerpCollateral",
    "RiskLayer",
    "RoundView",
    "SharedMarket",
    "SharedWallets",
    "TraderMap",
    "Transfer",
    "VenueLink",
    "World",
    "WorldResult",
    "WorldVenue",
]
