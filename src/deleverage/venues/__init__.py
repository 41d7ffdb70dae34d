"""Named venue presets: each real venue's documented margin tiers, fees and failure rules.

A preset is a :class:`~deleverage.spec.MarketSpec` that bundles what one venue publishes for
one perpetual market (BTC, and ETH where the venue documents it simply):

- **margin tiers** (notional floors, maximum leverage, maintenance rates), from which the spec
  computes the maintenance deduction (Binance ``cum``, Hyperliquid ``maintenance_deduction``);
- **fees** at the base (non-VIP) tier and the **liquidation penalty** paid to the insurance fund;
- the **liquidation policy** (full, partial to maintenance plus a buffer, a fixed fraction with a
  cooldown, or one tier down) and its **execution** (against the book, or a transfer to a
  liquidator at a fillable price);
- the **ADL policy**: who takes the loss that the insurance fund and the backstop cannot cover.

Everything a :class:`MarketSpec` cannot hold (which insurance pool backs the market, the
backstop vault, per-bracket fees, triggers) is described in :class:`PresetInfo`, next to the
URL of every source. Where a venue's documentation and its code disagree, the preset follows
the code and the notes say so; where a number could not be found in public material, the preset
uses a stated, conservative assumption.

Venue parameters change often (most venues revise tiers per symbol without notice): treat a
preset as a documented snapshot, not a live feed.

Examples
--------
>>> spec = preset("binance", "BTC")
>>> spec.symbol, spec.max_leverage, spec.tiers[0].maintenance_rate
('BTCUSDT', 125.0, 0.004)
>>> float(spec.tier_arrays.cum[1])  # Binance's published maintenance amount of bracket 2
50.0
>>> list_presets()
['binance', 'bitmex', 'bybit', 'drift', 'dydx_v4', 'hyperliquid', 'okx']
"""

from __future__ import annotations

from deleverage.errors import UnknownEntityError, ValidationError
from deleverage.spec import MarketSpec
from deleverage.venues import binance, bitmex, bybit, drift, dydx_v4, hyperliquid, okx
from deleverage.venues.base import PresetInfo, VenuePreset

__all__ = ["PresetInfo", "VenuePreset", "list_presets", "preset", "preset_info"]

_VENUES: dict[str, VenuePreset] = {
    module.VENUE.info.venue: module.VENUE
    for module in (binance, bitmex, bybit, drift, dydx_v4, hyperliquid, okx)
}


def list_presets() -> list[str]:
    """Return the names of the venue presets, sorted.

    Examples
    --------
    >>> "hyperliquid" in list_presets()
    True
    """
    return sorted(_VENUES)


def _venue(venue: str) -> VenuePreset:
    if not isinstance(venue, str):
        raise ValidationError("venue", venue, "must be a string naming a preset")
    found = _VENUES.get(venue.strip().lower())
    if found is None:
        raise UnknownEntityError("venue", venue, ", ".join(list_presets()))
    return found


def preset_info(venue: str) -> PresetInfo:
    """Describe a venue preset: sources, insurance, backstop, execution, ADL and notes.

    Parameters
    ----------
    venue
        A name from :func:`list_presets` (case-insensitive).

    Raises
    ------
    UnknownEntityError
        If ``venue`` is not a preset; the message lists the known ones.

    Examples
    --------
    >>> preset_info("dydx_v4").symbols
    ('BTC-USD', 'ETH-USD')
    """
    return _venue(venue).info


def preset(venue: str, symbol: str = "BTC") -> MarketSpec:
    """Build the :class:`~deleverage.spec.MarketSpec` of a venue's market.

    Parameters
    ----------
    venue
        A name from :func:`list_presets` (case-insensitive).
    symbol
        The venue's own symbol (``"BTCUSDT"`` on Binance, ``"BTC-USD"`` on dYdX v4,
        ``"XBTUSD"`` on BitMEX) or the generic ``"BTC"`` / ``"ETH"`` (case-insensitive).

    Returns
    -------
    MarketSpec
        The market, with the venue symbol as ``symbol``; details in :func:`preset_info`.

    Raises
    ------
    UnknownEntityError
        If the venue or the symbol is unknown; the message lists the known names.

    Examples
    --------
    >>> preset("hyperliquid", "eth").tiers[1].max_leverage
    15.0
    >>> preset("dydx_v4").liquidation.execution
    'liquidator'
    """
    found = _venue(venue)
    if not isinstance(symbol, str):
        raise ValidationError("symbol", symbol, "must be a string naming a market")
    venue_symbol = found.aliases.get(symbol.strip().upper())
    if venue_symbol is None:
        known = ", ".join(sorted(found.aliases))
        raise UnknownEntityError(f"{found.info.venue} symbol", symbol, known)
    return found.builders[venue_symbol]()
