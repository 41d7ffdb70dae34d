"""Quiet steps of a Maker collateral type (:class:`~deleverage.venues.protocol.QuietVenue`).

A step is quiet when nothing barks (the highest liquidation trigger of the open vaults is at
most the OSM's published price), no Flipper flip runs, the Vow kicks no debt auction and
settles none (a running debt auction is quiet until its end time: no ``deal`` or ``tick``
before it), and no running Clipper sale is redone or taken (:mod:`.quiet_nb`: each sale's
redo and take tests at that step's sale price, OSM price, market price, block, gas price
and keeper capital, the per-sale path's own arithmetic). The OSM publishes the price it read
at the previous hop, so the published prices along a path follow from the path itself; the
gas price and block of each step come from the venue's chain advanced along the path on a
copy (:meth:`~deleverage.protocols.chain.Chain.preview`: quiet steps submit nothing), the
keepers' capital from their proceeds falling due (:meth:`~deleverage.protocols.keepers.
Keepers.capital_path`). Gas only matters while a sale runs; then the chain must be the
venue's own (a chain another venue advances could have moved between its steps, so a
shared one stops the count).

A quiet step advances the chain, settles the keepers' proceeds due, reads the OSM, records
the prices and, while some vault's trigger is above the market price (under water there,
not yet at the OSM), adds the step to the time-under-water counts; :func:`advance_quiet`
replays that step by step (a sale's price is a function of time: nothing of it is stored).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Final

import numpy as np
import numpy.typing as npt

from deleverage.protocols.chain import GWEI, NS_PER_S
from deleverage.protocols.maker.clip_nb import CURVE_CODES
from deleverage.protocols.maker.clipper import ABOVE_MARKET
from deleverage.protocols.maker.quiet_nb import first_action_nb
from deleverage.venues.protocol import QuietPath

if TYPE_CHECKING:
    from deleverage.protocols.maker.venue import MakerVenue

__all__ = ["advance_quiet", "quiet_steps"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
#: Steps of the first look through running sales, and the growth of each next look.
_FIRST_LOOK: Final = 32
_GROWTH: Final = 8


def quiet_steps(venue: MakerVenue, path: QuietPath) -> int:
    """Leading quiet steps of ``path`` (module docstring); changes nothing."""
    vow = venue.vow
    if venue.closed or venue.flipper.flips:
        return 0
    if vow.joy <= 0.0 and vow.pending - vow.ash >= vow.config.sump:
        return 0  # the Vow kicks a debt auction at the next step
    ts = path.ts_ns
    n = len(ts)
    if vow.flops:  # quiet until the first debt auction's end (its deal or tick)
        n = min(n, int(np.searchsorted(ts, min(a.end_ns for a in vow.flops), "left")))
    top = venue._highest_trigger()
    osm = venue.osm
    hop_ns, hop_index, cur, nxt = osm.hop_ns, osm._hop_index, osm.cur, osm.nxt
    markets = path.index_prices[:n, 0]
    feeds = np.empty(n)
    for j, (t, price) in enumerate(zip(ts[:n].tolist(), markets.tolist(), strict=True)):
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
            n = j
            break
        feeds[j] = cur
    if not venue.clipper.sales or n == 0:
        return n
    if not venue._own_chain:
        return 0
    return _sales_quiet(venue, ts[:n], feeds[:n], np.ascontiguousarray(markets[:n]))


def _sales_quiet(venue: MakerVenue, ts: IntArray, feeds: FloatArray, markets: FloatArray) -> int:
    """Leading steps in which no running sale is redone or taken (:mod:`.quiet_nb`), looked
    at on growing prefixes (the chain's preview costs a Python call a step: a busy stretch
    ends early)."""
    n = len(ts)
    m = min(n, _FIRST_LOOK)
    while True:
        count = _sales_quiet_head(venue, ts[:m], feeds[:m], markets[:m])
        if count < m or m == n:
            return count
        m = min(n, m * _GROWTH)


def _sales_quiet_head(
    venue: MakerVenue, ts: IntArray, feeds: FloatArray, markets: FloatArray
) -> int:
    clipper, keepers = venue.clipper, venue.keepers
    cfg = clipper.config
    blocks, gas, native = venue.chain.preview(ts.tolist(), markets.tolist())
    starts, capitals = keepers.capital_path(blocks)
    tops, tics, tabs, lots, seen = clipper.sale_arrays()
    count = first_action_nb(
        ts, blocks, feeds, markets, gas, native, starts, capitals, keepers.order,
        keepers.latency_blocks, keepers.gas_units, keepers.min_profit, tops, tics, tabs, lots,
        seen, CURVE_CODES[cfg.curve], cfg.tau_s, clipper.powers, cfg.step_s, cfg.tail_s,
        cfg.cusp, cfg.buf, cfg.tip, cfg.chip, clipper.chost, float(venue.config.market_depth),
        ABOVE_MARKET, GWEI,
    )  # fmt: skip
    return int(count)


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
