"""Quiet steps of a Maker collateral type (:class:`~deleverage.venues.protocol.QuietVenue`).

A step is quiet when no auction (Clipper sale, Flipper flip, Flopper auction) is running and
the highest liquidation trigger of the open vaults is at most both the OSM's published price
and the market price (the step's early return). The OSM publishes the price it read at the
previous hop, so the published prices along a path follow from the path itself; a quiet step
only advances the chain, settles the keepers' proceeds due, reads the OSM and records the
prices, which :func:`advance_quiet` replays step by step.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from deleverage.venues.protocol import QuietPath

if TYPE_CHECKING:
    from deleverage.protocols.maker.venue import MakerVenue

__all__ = ["advance_quiet", "quiet_steps"]


def quiet_steps(venue: MakerVenue, path: QuietPath) -> int:
    """Leading quiet steps of ``path`` (module docstring); changes nothing."""
    if venue.closed or venue.clipper.sales or venue.flipper.flips or venue.vow.flops:
        return 0
    top = venue._highest_trigger()
    osm = venue.osm
    hop_ns, hop_index, cur, nxt = osm.hop_ns, osm._hop_index, osm.cur, osm.nxt
    prices = path.index_prices[:, 0].tolist()
    for j, (t, price) in enumerate(zip(path.ts_ns.tolist(), prices, strict=True)):
        if hop_ns == 0:  # the OSM's read, on local copies
            cur = nxt = price
        else:
            hop = t // hop_ns
            if hop_index < 0:
                cur = nxt = price
            elif hop > hop_index:
                cur, nxt = nxt, price
            hop_index = max(hop_index, hop)
        if not top <= min(cur, price):
            return j
    return len(prices)


def advance_quiet(venue: MakerVenue, path: QuietPath) -> None:
    """Take the quiet steps of ``path`` one by one (chain, keepers, OSM, clock, prices)."""
    chain = venue.chain
    osm_price = market = 0.0
    ts = path.ts_ns.tolist()
    for t, market in zip(ts, path.index_prices[:, 0].tolist(), strict=True):
        if t >= chain.ts_ns:  # (a chain shared with a venue stepped first: advanced already)
            chain.advance(t, market)
        venue.keepers.settle(chain.block_at(t))
        osm_price = venue.osm.read(t, market)
    venue._last_ts = ts[-1]
    venue.osm_price, venue.market_price = osm_price, market
