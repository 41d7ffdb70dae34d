"""What every venue module provides: a :class:`VenuePreset` (the venue's markets as
:class:`~deleverage.spec.MarketSpec` builders, symbol aliases, and a :class:`PresetInfo` with
sources, rules and the gaps the engine does not reproduce yet)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from deleverage.spec import MarginTier, MarketSpec

__all__ = ["PresetInfo", "VenuePreset", "spec", "tiers"]


@dataclass(frozen=True, slots=True)
class PresetInfo:
    """What a venue preset models, what it cannot, and where each number comes from.

    Parameters
    ----------
    venue
        Preset name, as accepted by :func:`preset`.
    symbols
        Venue symbols available, e.g. ``("BTCUSDT",)``; the generic ``"BTC"``/``"ETH"`` map to
        them.
    sources
        URLs of the documents and code the numbers come from.
    insurance
        Insurance model: one fund per market, or a fund shared by several markets.
    backstop
        What absorbs a position the book cannot take before the insurance fund and ADL.
    execution
        How liquidation orders are executed.
    adl
        The venue's ADL (or loss-socialization) rule and the ranking it maps to.
    notes
        Assumptions, disagreements between docs and code, and dated values.
    spec_gaps
        Venue rules that :class:`~deleverage.spec.MarketSpec` has no field for, each as
        ``field: type = value per venue (meaning)``.
    """

    venue: str
    symbols: tuple[str, ...]
    sources: tuple[str, ...]
    insurance: str
    backstop: str
    execution: str
    adl: str
    notes: tuple[str, ...]
    spec_gaps: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class VenuePreset:
    """One venue: its description, symbol aliases and market builders."""

    info: PresetInfo
    aliases: Mapping[str, str]  # upper-case input name -> venue symbol
    builders: Mapping[str, Callable[[], MarketSpec]]  # venue symbol -> spec builder


def tiers(rows: Sequence[tuple[float, float, float]]) -> tuple[MarginTier, ...]:
    return tuple(
        MarginTier(notional_floor=floor, max_leverage=leverage, maintenance_rate=mmr)
        for floor, leverage, mmr in rows
    )


def spec(**fields: Any) -> MarketSpec:
    return MarketSpec.from_mapping(fields)
