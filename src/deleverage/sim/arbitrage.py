"""Arbitrageurs with finite capital, latency and cost pull a venue's book back to the index.

The venue's book mid is ``B = X (1 + d)``: the index ``X`` times one plus the *dislocation*
``d`` left by forced flow. Arbitrageurs buy the venue's book when it is cheap (``d < 0``) and
sell the rest of the market (or the reverse), which moves ``d`` back toward zero:

- **cost** ``c``: a round trip costs ``c`` of the price, so they close the gap only down to
  ``|d| = c``;
- **latency** ``L``: they act on what they saw ``L`` seconds ago, so they close at most
  ``|d_(t-L)| - c`` of it, and nothing when the sign has changed since;
- **capital** ``K`` (quote): closing the gap means walking the venue's book; a trade of
  notional ``N`` uses ``N`` of ``K``, and capital spent stays tied up in the hedged positions.
  With ``K`` short they move the book only as far as ``K`` buys, so a large cascade dislocates
  the venue for as long as capital is short, and no longer. New capital arrives at
  ``inflow_per_s``.

:func:`arbitrage_gap` is the pure rule; :class:`Arbitrageurs` keeps a market's capital and
recent dislocations and trades on its book. Formulas: docs/formulas.md, "Index, book and mark".
"""

from __future__ import annotations

import math
from collections import deque

from scipy.optimize import brentq

from deleverage.liquidity import LiquidityModel
from deleverage.sim.pricing import ArbitrageSpec


def arbitrage_gap(dislocation: float, seen: float, cost: float) -> float:
    """Change of dislocation the arbitrageurs want: ``-sign(d) max(0, min(|d|, |d_seen|) - c)``.

    Parameters
    ----------
    dislocation
        ``d = B / X - 1`` now (fraction).
    seen
        The dislocation the arbitrageurs saw ``latency_s`` ago (fraction).
    cost
        Their round-trip cost, fraction of price.

    Examples
    --------
    >>> round(arbitrage_gap(-0.05, -0.03, 0.01), 12)
    0.02
    >>> arbitrage_gap(-0.05, 0.01, 0.0)  # the sign changed since: nothing to do
    0.0
    """
    if dislocation == 0.0 or dislocation * seen <= 0.0:
        return 0.0
    gap = min(abs(dislocation), abs(seen)) - cost
    return -math.copysign(max(gap, 0.0), dislocation)


class Arbitrageurs:
    """One market's arbitrageurs: capital left, and the dislocations of the last ``latency_s``."""

    def __init__(self, spec: ArbitrageSpec, dt_s: float) -> None:
        self.spec = spec
        self.capital = float(spec.capital)
        self.dt_s = dt_s
        lag = math.ceil(spec.latency_s / dt_s - 1e-9) if spec.latency_s > 0 else 0
        self._seen: deque[float] = deque([0.0] * lag, maxlen=lag) if lag else deque(maxlen=0)
        self.traded_notional = 0.0

    @property
    def active(self) -> bool:
        """Whether they can ever trade (capital now or arriving later)."""
        return self.capital > 0.0 or self.spec.inflow_per_s > 0.0

    def step(
        self, dislocation: float, *, index: float, book: LiquidityModel | None, ts_ns: int
    ) -> float:
        """Trade for one step; return the dislocation afterwards.

        Capital arrives first (``inflow_per_s dt``); the trade walks ``book`` from its mid
        ``index (1 + d)`` toward ``index (1 + d + gap)``, as far as the capital buys.
        """
        self.capital += self.spec.inflow_per_s * self.dt_s
        seen = self._seen[0] if self._seen.maxlen else dislocation
        gap = arbitrage_gap(dislocation, seen, self.spec.cost)
        if gap == 0.0 or self.capital <= 0.0:
            return dislocation
        mid = index * (1.0 + dislocation)
        target = index * (1.0 + dislocation + gap)
        if book is None:  # no book: the venue's price follows their first unit
            return dislocation + gap
        side = 1 if gap > 0.0 else -1
        size = book.max_fillable(side, mid, target, ts_ns)
        if not math.isfinite(size) or size <= 0.0:
            return dislocation
        fill = book.quote(side, size, mid, ts_ns)
        if fill.notional > self.capital:
            # capital-bound: the largest order whose notional the capital pays
            def over(q: float) -> float:
                return book.quote(side, q, mid, ts_ns).notional - self.capital

            fill = book.quote(side, brentq(over, 0.0, size, xtol=1e-12 * size), mid, ts_ns)
        if fill.size <= 0.0:
            return dislocation
        self.capital = max(self.capital - fill.notional, 0.0)
        self.traded_notional += fill.notional
        return fill.last_price / index - 1.0

    def record(self, dislocation: float) -> None:
        """Remember the step's final dislocation (what they will see ``latency_s`` later)."""
        if self._seen.maxlen:
            self._seen.append(dislocation)
