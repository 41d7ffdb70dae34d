"""The shared liquidity layer of one asset, and the link from a venue's own book to it.

Every asset of a world has a **shared market** (the spot and perpetual books of the rest of the
market, one book): its price is ``P = X (1 + D)``, ``X`` the exogenous price (a process or
replayed history) and ``D`` the dislocation that forced flow leaves in the shared book. ``D``
decays with the book's resilience and is traded back toward zero by the rest of the market's
arbitrageurs (capital, latency, cost: :class:`deleverage.sim.arbitrage.Arbitrageurs`), exactly
as one venue's book is in the single-venue runner (:class:`deleverage.sim.venue_price.
VenuePrice`, docs/formulas.md §17 and §19).

A venue that trades an asset on its **own book** (an order-book perpetual) is linked to the
shared market by a :class:`VenueLink`: the venue's book price is ``B = P (1 + d)``; the venue's
forced flow walks its own book (``d`` moves by the book's impact); at the next step the link's
arbitrageurs trade ``d`` back toward zero with their capital, latency and cost, and what they
traded on the venue's book they trade the other way on the shared book: that quantity is the
flow the venue passes on to everybody else. A venue without its own book (an oracle-priced
pool, a lending protocol or a CDP whose keepers sell collateral on the market) sends its forced
flow straight to the shared book.

Moves are returned as log-price changes so the world can attribute them (``ln`` of the price
after over the price before).
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from deleverage.liquidity import LiquidityModel
from deleverage.sim.depth import MarketDepth
from deleverage.sim.pricing import ArbitrageSpec, PricingSpec
from deleverage.sim.scenario import LiquiditySpec
from deleverage.sim.venue_price import VenuePrice

__all__ = ["SharedMarket", "VenueLink"]

FloatArray = npt.NDArray[np.float64]


class _Displaced:
    """A book displaced from a reference price by forced flow (``price = ref (1 + d)``)."""

    def __init__(
        self,
        liquidity: LiquiditySpec,
        arbitrage: ArbitrageSpec,
        *,
        reference: FloatArray,
        start_ns: int,
        dt_s: float,
    ) -> None:
        self.depth = MarketDepth(liquidity, exogenous=reference, start_ns=start_ns, dt_s=dt_s)
        self.book: LiquidityModel | None = self.depth.book
        self._changes = self.depth.changes  # a snapshot series or dynamics: fixed for the run
        self.price_model = VenuePrice(PricingSpec(arbitrage=arbitrage), "book", dt_s=dt_s)
        self.dt_s = dt_s
        half_life = liquidity.half_life_s
        self.decay = 0.5 ** (dt_s / half_life) if self.book is not None else 1.0

    @property
    def dislocation(self) -> float:
        """``d``: the book's price over the reference, minus one."""
        return self.price_model.dislocation

    def begin(self, k: int, ts_ns: int, reference: float) -> float:
        """Decay and arbitrage for step ``k``; return the notional the arbitrageurs traded on
        this book (signed: > 0 when they bought it)."""
        book = self.depth.start_step(k, ts_ns) if self._changes else self.depth.book
        self.book = book
        if book is not None:
            book.recover(ts_ns)
        model = self.price_model
        arbs = model.arbitrageurs
        before_notional = arbs.traded_notional
        before = model.dislocation
        model.start_step(
            exogenous=reference, index=reference, oracle=reference, t_s=k * self.dt_s,
            decay=self.decay, book=book, ts_ns=ts_ns, first=k == 0,
        )  # fmt: skip
        traded = arbs.traded_notional - before_notional
        if traded == 0.0:
            return 0.0
        if k > 0:
            before *= self.decay
        return math.copysign(traded, model.dislocation - before)

    def absorb(self, flow_base: float, reference: float, ts_ns: int) -> float:
        """Walk the book with ``flow_base`` (buys > 0) from its mid; move ``d`` by the impact;
        return the relative impact."""
        book = self.book
        if book is None or flow_base == 0.0:
            return 0.0
        mid = self.price_model.book_mid(reference)
        book.execute(1 if flow_base > 0.0 else -1, abs(flow_base), mid, ts_ns)
        moved = float(book.price_impact(ts_ns))
        if moved != 0.0:
            self.price_model.absorb(moved)
            book.restore({"consumed_depth": 0.0, "ts_ns": ts_ns})
        return moved

    def end(self, flow_base: float) -> None:
        """Close the step: the arbitrageurs remember ``d``; the flow thins the book."""
        self.price_model.end_step()
        if self._changes:  # only a changing book is thinned by flow
            self.depth.end_step(flow_base)


class SharedMarket:
    """One asset's shared market: ``P = X (1 + D)`` (see the module docstring).

    Parameters
    ----------
    asset
        The asset's name.
    exogenous
        ``X`` on the world's grid (``n_steps + 1`` points, quote/base).
    liquidity
        The shared book (``model = "none"``: forced flow does not move the price).
    arbitrage
        The rest of the market's arbitrageurs pulling ``P`` back to ``X``.
    """

    def __init__(
        self,
        asset: str,
        *,
        exogenous: FloatArray,
        liquidity: LiquiditySpec,
        arbitrage: ArbitrageSpec,
        start_ns: int,
        dt_s: float,
    ) -> None:
        self.asset = asset
        self.exogenous = exogenous
        self._book = _Displaced(
            liquidity, arbitrage, reference=exogenous, start_ns=start_ns, dt_s=dt_s
        )
        self.price = float(exogenous[0])
        self._x = self.price

    @property
    def dislocation(self) -> float:
        """``D``: the shared price over the exogenous price, minus one."""
        return self._book.dislocation

    @property
    def book(self) -> LiquidityModel | None:
        """The shared book now."""
        return self._book.book

    def begin(self, k: int, ts_ns: int) -> float:
        """Start step ``k`` (decay, arbitrage); return the log move of ``P`` it made."""
        x = float(self.exogenous[k])
        self._book.begin(k, ts_ns, x)
        return self._set(x)

    def absorb(self, flow_base: float, ts_ns: int) -> float:
        """Forced flow (base, buys > 0) walks the shared book; return the log move of ``P``."""
        self._book.absorb(flow_base, self._x, ts_ns)
        return self._set(self._x)

    def end(self, flow_base: float) -> None:
        """Close the step (``flow_base``: the step's gross flow into the book, base)."""
        self._book.end(flow_base)

    def _set(self, x: float) -> float:
        self._x = x
        new = self._book.price_model.book_mid(x)
        move = math.log(new / self.price)
        self.price = new
        return move


class VenueLink:
    """A venue's own book for one asset, tied to the shared market (see the module docstring).

    ``transfer`` (returned by :meth:`begin`) is the base quantity the link's arbitrageurs push
    into the shared book (signed, buys > 0): the other side of what they traded on the venue's
    book.
    """

    def __init__(
        self,
        venue: str,
        asset: str,
        *,
        liquidity: LiquiditySpec,
        arbitrage: ArbitrageSpec,
        reference: FloatArray,
        start_ns: int,
        dt_s: float,
    ) -> None:
        self.venue = venue
        self.asset = asset
        self._book = _Displaced(
            liquidity, arbitrage, reference=reference, start_ns=start_ns, dt_s=dt_s
        )
        self.reference = float(reference[0])
        self.price = self.reference

    @property
    def dislocation(self) -> float:
        """``d``: the venue's book over the shared price, minus one."""
        return self._book.dislocation

    def begin(self, k: int, ts_ns: int, shared_price: float) -> tuple[float, float]:
        """Start step ``k`` on the shared price ``P``; return the log move of the venue's book
        price due to its own decay and arbitrage, and the base quantity the arbitrageurs push
        into the shared book."""
        traded = self._book.begin(k, ts_ns, shared_price)
        before = self.price * shared_price / self.reference
        self.reference = shared_price
        self.price = self._book.price_model.book_mid(shared_price)
        transfer = -traded / shared_price if traded else 0.0
        return math.log(self.price / before), transfer

    def follow(self, shared_price: float) -> None:
        """The shared price moved within the step: the venue's book moves with it."""
        self.reference = shared_price
        self.price = self._book.price_model.book_mid(shared_price)

    def absorb(self, flow_base: float, ts_ns: int) -> float:
        """The venue's forced flow walks its own book; return the log move of its price."""
        self._book.absorb(flow_base, self.reference, ts_ns)
        new = self._book.price_model.book_mid(self.reference)
        move = math.log(new / self.price)
        self.price = new
        return move

    def end(self, flow_base: float) -> None:
        """Close the step."""
        self._book.end(flow_base)
