"""The ``synthetix`` venue kind: a Synthetix perps v3 deployment (:mod:`deleverage.protocols.
synthetix`), cross-margined oracle-pool perpetuals whose LP pool is the counterparty.

The kind's config is the deployment (``market``: a :class:`~deleverage.protocols.synthetix.
SynthetixConfig` with its markets, keeper reward guards, optional keepers and chain, and the
accounts drawn in its ``population``); its name is the world's venue name, its chain's genesis
the world's start and its seed comes from the world's seed. The venue watches its markets'
assets: exactly its world entry's assets. The pool's hedgers trade what liquidations hand the
pool in the shared markets (the venue's forced flow). Accounts can be shared traders (the
trader map is what a cross-venue risk layer reads), but Synthetix offers no
:class:`~deleverage.world.collateral.CollateralAccess` here, so the trader channel moves no
collateral in or out of it.
"""

from __future__ import annotations

import numpy as np

from deleverage.errors import ConfigError
from deleverage.protocols.synthetix import SynthetixConfig, build_synthetix
from deleverage.spec import _Frozen
from deleverage.world.registry import BuildContext, BuiltVenue, VenueKind

__all__ = ["SYNTHETIX_KIND", "SynthetixKindConfig", "build_synthetix_venue"]


class SynthetixKindConfig(_Frozen):
    """Config of a ``synthetix`` venue (``[venues.config]``): ``market``, a Synthetix perps v3
    deployment (``markets`` required) with the accounts it draws (``market.population``)."""

    market: SynthetixConfig


def build_synthetix_venue(config: SynthetixKindConfig, context: BuildContext) -> BuiltVenue:
    """Draw the accounts at the world's start prices and build the deployment."""
    market = config.market
    if set(context.assets) != set(market.assets):
        raise ConfigError(
            f"venues.{context.name}.assets", list(context.assets),
            f"must be the assets of the deployment's markets {list(market.assets)}",
        )  # fmt: skip
    seeds = context.seed.generate_state(2)
    market = market.model_copy(
        update={
            "name": context.name,
            "seed": int(seeds[0]) % (2**63 - 1),
            "chain": market.chain.model_copy(update={"genesis_ts_ns": context.start_ns}),
        }
    )
    venue = build_synthetix(
        market, prices=context.reference_prices, seed=int(seeds[1]) % (2**63 - 1)
    )
    return BuiltVenue(venue, None, np.arange(market.population.accounts, dtype=np.int64))


#: The ``synthetix`` kind (registered in :mod:`deleverage.world.kinds`).
SYNTHETIX_KIND = VenueKind(
    "synthetix", SynthetixKindConfig, build_synthetix_venue,
    "a Synthetix perps v3 deployment (deleverage.protocols.synthetix)",
)  # fmt: skip
