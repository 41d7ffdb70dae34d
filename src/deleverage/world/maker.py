"""The ``maker`` venue kind: one MakerDAO collateral type (:mod:`deleverage.protocols.maker`).

The kind's config holds the collateral type (``market``: a
:class:`~deleverage.protocols.maker.MakerConfig` with ``design = "dutch"`` (Dog and Clipper,
Liquidations 2.0) or ``"english"`` (Cat and Flipper, 1.2), its Vow, keepers and chain; its name
is the world's venue name and its chain's genesis the world's start) and the vault book drawn
(``population``: a :class:`~deleverage.protocols.maker.MakerPopulationSpec`). The venue watches
one asset, the collateral's, which must be its world entry's only asset; keepers sell the
collateral they buy into the shared market of that asset (the venue's forced flow). Vault owners
can be shared traders (the trader map is what a cross-venue risk layer reads), but Maker offers
no :class:`~deleverage.world.collateral.CollateralAccess` here, so the trader channel moves no
collateral in or out of a vault.
"""

from __future__ import annotations

import numpy as np
from pydantic import Field

from deleverage.errors import ConfigError
from deleverage.protocols.maker import MakerConfig, MakerPopulationSpec, build_maker
from deleverage.spec import _Frozen
from deleverage.world.registry import BuildContext, BuiltVenue, VenueKind

__all__ = ["MAKER_KIND", "MakerKindConfig", "build_maker_venue"]


class MakerKindConfig(_Frozen):
    """Config of a ``maker`` venue (``[venues.config]``): ``market`` (the collateral type,
    its liquidation ``design``, Vow, keepers, chain) and ``population`` (the vaults drawn)."""

    market: MakerConfig = Field(default_factory=MakerConfig)
    population: MakerPopulationSpec = Field(default_factory=MakerPopulationSpec)


def build_maker_venue(config: MakerKindConfig, context: BuildContext) -> BuiltVenue:
    """Draw the vaults at the world's start price of the collateral and build the venue."""
    market = config.market
    if tuple(context.assets) != (market.asset,):
        raise ConfigError(
            f"venues.{context.name}.assets", list(context.assets),
            f"must be [{market.asset!r}], the collateral type's asset (market.asset)",
        )  # fmt: skip
    market = market.model_copy(
        update={
            "name": context.name,
            "chain": market.chain.model_copy(update={"genesis_ts_ns": context.start_ns}),
        }
    )
    seed = int(context.seed.generate_state(1)[0]) % (2**63 - 1)
    vaults = config.population.draw(
        market, seed=seed, price=float(context.reference_prices[market.asset])
    )
    venue = build_maker(market, vaults)
    return BuiltVenue(venue, None, np.arange(config.population.n_vaults, dtype=np.int64))


#: The ``maker`` kind (registered in :mod:`deleverage.world.kinds`).
MAKER_KIND = VenueKind(
    "maker", MakerKindConfig, build_maker_venue,
    "a MakerDAO collateral type, Dutch or English auctions (deleverage.protocols.maker)",
)  # fmt: skip
