"""What a venue kind is: a config model and a builder (the registry is
:mod:`deleverage.world.kinds`).

A world scenario's ``[[venues]]`` entry names a ``kind`` and gives its ``config`` table; the
registry validates the table against the kind's pydantic model (errors name
``venues.<i>.config.<field>``) and calls the kind's builder with a :class:`BuildContext` (the
venue's name and assets, the grid's start, reference prices, a seeded generator). Adding a
kind is one entry in :data:`deleverage.world.kinds.VENUE_KINDS` (or one
:func:`~deleverage.world.kinds.register_venue_kind` call) with:

- ``config``: a frozen pydantic model (``extra = "forbid"``, bounds in the types);
- ``build(config, context) -> BuiltVenue``: the venue (a
  :class:`~deleverage.venues.protocol.Venue`), its collateral access (None: traders cannot move
  collateral there) and the accounts traders may share, in order.

``perp`` (an order-book perpetuals venue from a preset: :mod:`deleverage.world.perp`) is
built in; lending, CDP and oracle-pool kinds come from the DeFi protocol builders
(``protocols/``) the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel

from deleverage.errors import ConfigError
from deleverage.venues.protocol import Venue
from deleverage.world.collateral import CollateralAccess

__all__ = ["BuildContext", "BuiltVenue", "VenueKind"]

IntArray = npt.NDArray[np.int64]


class BuildContext(NamedTuple):
    """What a builder gets besides its config."""

    name: str  # the venue's name in the world
    assets: tuple[str, ...]  # the assets it watches, in order
    start_ns: int  # the grid's first time
    dt_s: float
    reference_prices: Mapping[str, float]  # each asset's price at the start (quote/base)
    seed: np.random.SeedSequence  # the venue's own seeds (populations, engine)
    own_book: Mapping[str, bool]  # asset -> whether the venue trades it on its own book


class BuiltVenue(NamedTuple):
    """What a builder returns."""

    venue: Venue
    collateral: CollateralAccess | None
    shareable: IntArray  # accounts traders may hold together with other venues, in order


@dataclass(frozen=True)
class VenueKind:
    """One kind of venue: its config model, its builder and a line for listings."""

    name: str
    config: type[BaseModel]
    build: Callable[[Any, BuildContext], BuiltVenue]
    description: str = ""

    def parse(self, data: Mapping[str, Any], *, where: str) -> BaseModel:
        """Validate a config table; a :class:`ConfigError` names ``where`` and the field."""
        try:
            return self.config.model_validate(dict(data))
        except ConfigError as exc:
            raise ConfigError(f"{where}.{exc.field}", exc.value, exc.rule) from None
        except Exception as exc:  # pydantic's own error
            errors = getattr(exc, "errors", None)
            if errors is None:
                raise
            first = errors()[0]
            loc = ".".join(str(p) for p in first["loc"])
            raise ConfigError(
                f"{where}.{loc}" if loc else where, first.get("input"), first["msg"]
            ) from None
