"""The registry of venue kinds a world scenario can name: ``kind`` -> :class:`~deleverage.world.
registry.VenueKind` (config model, builder). Adding a kind is one entry here (or one
:func:`register_venue_kind` call from the code that defines it).
"""

from __future__ import annotations

from deleverage.errors import ConfigError
from deleverage.world.aave import AAVE_KIND
from deleverage.world.gmx import GMX_KIND
from deleverage.world.maker import MAKER_KIND
from deleverage.world.perp import PERP_KIND
from deleverage.world.registry import VenueKind
from deleverage.world.synthetix import SYNTHETIX_KIND

__all__ = ["VENUE_KINDS", "register_venue_kind", "venue_kind"]

#: Kind name -> :class:`~deleverage.world.registry.VenueKind`.
VENUE_KINDS: dict[str, VenueKind] = {
    kind.name: kind for kind in (PERP_KIND, AAVE_KIND, MAKER_KIND, GMX_KIND, SYNTHETIX_KIND)
}


def register_venue_kind(kind: VenueKind) -> None:
    """Add (or replace) a venue kind."""
    VENUE_KINDS[kind.name] = kind


def venue_kind(name: str) -> VenueKind:
    """The registered kind ``name``; a :class:`ConfigError` lists the known ones."""
    found = VENUE_KINDS.get(name)
    if found is None:
        raise ConfigError("kind", name, f"must be a registered venue kind ({sorted(VENUE_KINDS)})")
    return found
