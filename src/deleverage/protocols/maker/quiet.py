"""Quiet steps of a Maker collateral type (:class:`~deleverage.venues.protocol.QuietVenue`).

A step is quiet when no auction (Clipper sale, Flipper flip, Flopper auction) is running, the
Vow would kick no debt auction, and the highest liquidation trigger of the open vaults is at
most the OSM's published price (nothing to bark). The OSM publishes the price it read at the
previous hop, so the published prices along a path follow from the path itself. A quiet step
advances the chain, settles the keepers' proceeds due, reads the OSM, records the prices and,
while some vault's trigger is above the market price (under water there, not yet at the OSM),
adds the step to the time-under-water counts; :func:`advance_quiet` replays that step by step.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from deleverage.protocols.chain import NS_PER_S
from deleverage.venues.protocol import QuietPath

if TYPE_CHECKING:
    from deleverage.protocols.maker.venue import MakerVenue

__all__ = ["advance_quiet", "quiet_steps"]


def quiet_steps(venue: MakerVenue, path: QuietPath) -> int:
    """Leading quiet steps of ``path`` (module docstring); changes nothing."""
    vow = venue.vow
    if venue.closed or venue.clipper.sales or venue.flipper.flips or vow.flops:
        return 0
    if vow.joy <= 0.0 and vow.pending - vow.ash >= vow.config.sump:
        return 0  # the Vow kicks a debt auction at the next step
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
        if not top <= cur:
            return j
    return len(prices)


def advance_quiet(venue: MakerVenue, path: QuietPath) -> None:
    """Take the quiet steps of ``path`` one by one (chain, keepers, OSM, clock, prices)."""
    chain = venue.chain
    top = venue._highest_trigger()
    for t, market in zip(path.ts_ns.tolist(), path.index_prices[:, 0].tolist(), strict=True):
        if t >= chain.ts_ns:  # (a chain shared with a venue stepped first: advanced already)
            chain.advance(t, market)
        venue.keepers.settle(chain.block_at(t))
        dt_s = (t - venue._last_ts) / NS_PER_S if math.isfinite(venue.market_price) else 0.0
        venue._last_ts = t
        osm_price = venue.osm.read(t, market)
        venue.osm_price, venue.market_price = osm_price, market
        if top > market and dt_s > 0.0:
            venue._count_undercollateralized(market, dt_s)
