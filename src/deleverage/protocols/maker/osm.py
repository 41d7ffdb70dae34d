"""Maker's Oracle Security Module: the price the system uses is the one read an hour earlier.

The OSM (``osm.sol`` in makerdao/osm) holds two values, ``cur`` (published) and ``nxt``
(queued). A ``poke`` allowed once per ``hop`` (one hour) moves ``nxt`` into ``cur`` and reads a
new ``nxt`` from the source (the median of the feeds). So during hop ``k`` the system sees the
source's price sampled at the poke that opened hop ``k - 1``: a crash reaches the Spotter, and
so the Dog and the Clipper's ``top``, one to two hours late. ``delay_s = 0`` gives an immediate
oracle (the source itself), for comparison.

Times are in nanoseconds (``ts_ns``); pokes happen at the first step on or after each hop
boundary (someone pokes the OSM as soon as it may).
"""

from __future__ import annotations

import math

__all__ = ["Osm"]

NS_PER_S = 1_000_000_000


class Osm:
    """The delayed oracle of one collateral type (see the module docstring).

    Examples
    --------
    >>> osm = Osm(delay_s=3600.0)
    >>> osm.read(0, 200.0), osm.read(1800 * NS_PER_S, 150.0), osm.read(3600 * NS_PER_S, 120.0)
    (200.0, 200.0, 200.0)
    >>> osm.read(7200 * NS_PER_S, 100.0)  # the value read at the 3600 s poke
    120.0
    """

    def __init__(self, *, delay_s: float) -> None:
        if not (math.isfinite(delay_s) and delay_s >= 0.0):
            raise ValueError(f"delay_s must be a finite number >= 0, was {delay_s}")
        self.hop_ns = round(delay_s * NS_PER_S)
        self.cur = math.nan
        self.nxt = math.nan
        self._hop_index = -1

    def read(self, ts_ns: int, source_price: float) -> float:
        """Advance to ``ts_ns`` with the source's price now and return the published price."""
        if self.hop_ns == 0:
            self.cur = self.nxt = source_price
            return source_price
        hop = ts_ns // self.hop_ns
        if self._hop_index < 0:  # first read: both values start at the source
            self.cur = self.nxt = source_price
        elif hop > self._hop_index:
            self.cur = self.nxt
            self.nxt = source_price
        self._hop_index = max(self._hop_index, hop)
        return self.cur

    @property
    def next_poke_ns(self) -> float:
        """Time of the next poke (ns; ``inf`` for an immediate oracle)."""
        if self.hop_ns == 0 or self._hop_index < 0:
            return math.inf if self.hop_ns == 0 else 0.0
        return float((self._hop_index + 1) * self.hop_ns)
