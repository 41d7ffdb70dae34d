"""The ``gmx`` venue kind: one GMX v2 oracle-pool perpetual market (:mod:`deleverage.protocols.
gmx`).

The kind's config is the market (``market``: a :class:`~deleverage.protocols.gmx.GmxConfig`
with its pool, risk parameters, optional keepers and chain, and the positions drawn in its
``population``); its name is the world's venue name, its chain's genesis the world's start and
its seed comes from the world's seed. The venue watches the index asset and, when another, the
long token's asset: exactly its world entry's assets. The pool's hedgers and the keepers' sales
trade in the shared markets (the venue's forced flow). Traders' accounts can be shared (the
trader map is what a cross-venue risk layer reads), but GMX offers no
:class:`~deleverage.world.collateral.CollateralAccess` here, so the trader channel moves no
collateral in or out of it.
"""

from __future__ import annotations

import numpy as np
from pydantic import Field

from deleverage.errors import ConfigError
from deleverage.protocols.gmx import GmxConfig, build_gmx
from deleverage.spec import _Frozen
from deleverage.world.registry import BuildContext, BuiltVenue, VenueKind

__all__ = ["GMX_KIND", "GmxKindConfig", "build_gmx_venue"]


class GmxKindConfig(_Frozen):
    """Config of a ``gmx`` venue (``[venues.config]``): ``market``, a GMX v2 market with
    the positions it draws (``market.population``)."""

    market: GmxConfig = Field(default_factory=GmxConfig)


def build_gmx_venue(config: GmxKindConfig, context: BuildContext) -> BuiltVenue:
    """Draw the positions at the world's start prices and build the market."""
    market = config.market
    watched = {market.asset, market.long_token_asset or market.asset}
    if set(context.assets) != watched:
        raise ConfigError(
            f"venues.{context.name}.assets", list(context.assets),
            f"must be the market's index and long-token assets {sorted(watched)}",
        )  # fmt: skip
    seeds = context.seed.generate_state(2)
    market = market.model_copy(
        update={
            "name": context.name,
            "seed": int(seeds[0]) % (2**63 - 1),
            "chain": market.chain.model_copy(update={"genesis_ts_ns": context.start_ns}),
        }
    )
    venue = build_gmx(market, prices=context.reference_prices, seed=int(seeds[1]) % (2**63 - 1))
    return BuiltVenue(venue, None, np.arange(market.population.positions, dtype=np.int64))


#: The ``gmx`` kind (registered in :mod:`deleverage.world.kinds`).
GMX_KIND = VenueKind(
    "gmx", GmxKindConfig, build_gmx_venue,
    "a GMX v2 oracle-pool perpetual market (deleverage.protocols.gmx)",
)  # fmt: skip
