"""The ``aave`` venue kind: an Aave v3.3 lending market (:mod:`deleverage.protocols.aave`).

The kind's config holds the market (reserves, liquidation constants, chain, keepers: an
:class:`~deleverage.protocols.aave.AaveConfig`; its name is the world's venue name and its
chain's genesis the world's start) and how to draw its borrowers
(:func:`~deleverage.protocols.aave.aave_population`). The venue watches the assets of its
priced reserves, which must be the ``assets`` of its world entry. Its borrowers can be shared
traders (``[[shared_traders]]``: a long borrowed against ETH on Aave and a short perp on a CEX;
the trader map is what a cross-venue risk layer reads), but Aave offers no
:class:`~deleverage.world.collateral.CollateralAccess` here, so the trader channel moves no
collateral in or out of it.
"""

from __future__ import annotations

from typing import Annotated

import numpy as np
from pydantic import Field

from deleverage.errors import ConfigError
from deleverage.protocols.aave import AaveConfig, aave_population, build_aave
from deleverage.spec import _Frozen
from deleverage.world.registry import BuildContext, BuiltVenue, VenueKind

__all__ = ["AAVE_KIND", "AaveKindConfig", "build_aave_venue"]

Positive = Annotated[float, Field(gt=0, allow_inf_nan=False)]


class AaveKindConfig(_Frozen):
    """Config of an ``aave`` venue (``[venues.config]``): ``market`` (reserves, chain,
    keepers) and the borrowers drawn: ``accounts``, log-normal collateral value
    (``collateral_median`` quote, ``collateral_sigma``), health factor ``min_health +
    Exp(health_scale)``, a second collateral with probability ``second_collateral_share``."""

    market: AaveConfig = Field(default_factory=AaveConfig)
    accounts: Annotated[int, Field(ge=0, le=10_000_000)] = 10_000
    collateral_median: Positive = 20_000.0
    collateral_sigma: Annotated[float, Field(ge=0, le=5, allow_inf_nan=False)] = 1.2
    min_health: Annotated[float, Field(gt=1, le=10, allow_inf_nan=False)] = 1.03
    health_scale: Annotated[float, Field(ge=0, le=10, allow_inf_nan=False)] = 0.6
    second_collateral_share: Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)] = 0.3


def build_aave_venue(config: AaveKindConfig, context: BuildContext) -> BuiltVenue:
    """Draw the borrowers and build the market at the world's start prices."""
    market = config.market
    if set(market.assets) != set(context.assets):
        raise ConfigError(
            f"venues.{context.name}.assets", list(context.assets),
            f"must be the assets of the market's priced reserves {list(market.assets)}",
        )  # fmt: skip
    market = market.model_copy(
        update={
            "name": context.name,
            "seed": int(context.seed.generate_state(1)[0]) % (2**63 - 1),
            "chain": market.chain.model_copy(update={"genesis_ts_ns": context.start_ns}),
        }
    )
    population = aave_population(
        market, config.accounts, seed=int(context.seed.generate_state(2)[1]) % (2**63 - 1),
        prices=context.reference_prices, collateral_median=config.collateral_median,
        collateral_sigma=config.collateral_sigma, min_health=config.min_health,
        health_scale=config.health_scale,
        second_collateral_share=config.second_collateral_share,
    )  # fmt: skip
    venue = build_aave(market, population, prices=context.reference_prices)
    # Every borrower may be one of the world's shared traders (the map is what risk layers
    # read); without collateral access the trader channel moves nothing in or out of Aave.
    return BuiltVenue(venue, None, np.arange(config.accounts, dtype=np.int64))


#: The ``aave`` kind (registered in :mod:`deleverage.world.kinds`).
AAVE_KIND = VenueKind(
    "aave", AaveKindConfig, build_aave_venue,
    "an Aave v3.3 lending market (deleverage.protocols.aave)",
)  # fmt: skip
