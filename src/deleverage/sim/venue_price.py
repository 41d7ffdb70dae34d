"""One market's prices as its venue sees them: index, the venue's book and its mark.

The runner keeps one :class:`VenuePrice` per market. Each step (docs/formulas.md, "Index, book
and mark"):

1. the dislocation ``d`` (book over the exogenous price ``X`` of the rest of the market, minus
   one) decays with the book's resilience;
2. arbitrageurs (:class:`~deleverage.sim.arbitrage.Arbitrageurs`) trade it back toward zero as
   far as their capital, latency and cost allow;
3. the book mid is ``B = X (1 + d)`` and the mark follows the venue's rule
   (:mod:`deleverage.prices.marks`) from ``B``, the venue's index and oracle
   (:mod:`deleverage.sim.oracle_feed`; both ``X`` by default) and the rule's averages;
4. forced flow that walks the book moves ``d``: ``B <- B (1 + G)``, ``G`` the book's impact.

The averages a rule needs (Binance's basis moving average, Hyperliquid's EMA of mid minus
oracle) are updated once per step from the book mid the step started with.
"""

from __future__ import annotations

import functools
import math
from collections import deque
from collections.abc import Callable

from deleverage.liquidity import LiquidityModel
from deleverage.prices import marks
from deleverage.sim.arbitrage import Arbitrageurs
from deleverage.sim.pricing import PricingSpec

#: Floor of the dislocation: the book never falls below 1% of the index.
MIN_DISLOCATION = -0.99


class VenuePrice:
    """Dislocation, arbitrageurs and mark-rule state of one market (see the module docstring)."""

    def __init__(self, pricing: PricingSpec, rule: marks.MarkRule, *, dt_s: float) -> None:
        self.pricing = pricing
        self.rule = rule
        self.dt_s = dt_s
        self.dislocation = 0.0
        self.arbitrageurs = Arbitrageurs(pricing.arbitrage, dt_s)
        n = max(1, round(pricing.basis_window_s / pricing.basis_sample_s))
        self._basis: deque[float] = deque(maxlen=n)
        self._average: float | None = None  # the basis average, until the next sample
        self._next_sample_s = 0.0
        self.basis_ema = 0.0
        # |d| at most this: the arbitrageurs' step would leave d and their capital as they
        # are (within their cost, no inflow: arbitrage_gap is 0), so it is not called.
        spec = pricing.arbitrage
        self._idle_within = spec.cost if spec.inflow_per_s == 0.0 else -1.0

    def book_mid(self, exogenous: float) -> float:
        """``B = X (1 + d)``, quote/base (``X`` the exogenous price of the rest of the market)."""
        return max(exogenous * (1.0 + self.dislocation), 1e-12)

    def start_step(
        self,
        *,
        exogenous: float,
        index: float,
        oracle: float,
        t_s: float,
        decay: float,
        book: LiquidityModel | None,
        ts_ns: int,
        first: bool,
    ) -> None:
        """Decay, arbitrage, then sample the rule's averages (once per step)."""
        if not first:
            d = self.dislocation * decay
            arbs = self.arbitrageurs
            if d != 0.0 and arbs.active:
                if abs(d) > self._idle_within:
                    d = arbs.step(d, index=exogenous, book=book, ts_ns=ts_ns)
                d = max(d, MIN_DISLOCATION)
            self.dislocation = d
        rule = self.rule
        if rule == "binance" and t_s + 1e-9 >= self._next_sample_s:
            self._basis.append(self.book_mid(exogenous) - index)
            self._average = None
            self._next_sample_s += self.pricing.basis_sample_s
        if rule == "hyperliquid" and not first:
            self.basis_ema = marks.ema_step(
                self.basis_ema, self.book_mid(exogenous) - oracle, self.dt_s, self.pricing.ema_s
            )

    def end_step(self) -> None:
        """Let the arbitrageurs remember the step's final dislocation."""
        self.arbitrageurs.record(self.dislocation)

    def absorb(self, impact: float) -> None:
        """Forced flow moved the book by ``impact`` (relative): ``B <- B (1 + impact)``."""
        moved = (1.0 + self.dislocation) * (1.0 + impact) - 1.0
        self.dislocation = max(moved, MIN_DISLOCATION)

    def marker(
        self,
        exogenous: float,
        *,
        index: float,
        oracle: float,
        funding_rate: float,
        time_left_fraction: float,
    ) -> Callable[[], float]:
        """:meth:`mark` with these inputs, as a function of the book alone: what a step's
        cascade rounds call, since only the dislocation moves between them (the inputs and
        the rule's averages hold until the next :meth:`start_step`).

        Binance's ``P1 = index (1 + f tau)`` and ``P2 = index + MA(basis)`` are taken once,
        after the step's first mark went through :meth:`mark` and its checks; later marks
        are ``median(P1, P2, book)`` from a float book mid in ``(0, inf)`` (any other mid
        goes through :meth:`mark` again, and its refusal). The ``book`` rule's mark is
        :meth:`book_mid`; the other rules call :meth:`mark`.
        """
        if self.rule == "book":  # the mark is the book mid
            return lambda: max(exogenous * (1.0 + self.dislocation), 1e-12)  # :meth:`book_mid`
        if self.rule != "binance":
            return functools.partial(
                self.mark, exogenous, index=index, oracle=oracle, funding_rate=funding_rate,
                time_left_fraction=time_left_fraction,
            )  # fmt: skip
        bounds: list[float] = []  # min(P1, P2), max(P1, P2) once the first mark passed

        def mark_now() -> float:
            book = max(exogenous * (1.0 + self.dislocation), 1e-12)  # :meth:`book_mid`
            if bounds and type(book) is float and book < math.inf:  # > 0 by the floor
                return max(bounds[0], min(bounds[1], book))  # ``marks.median3``
            mark = self.mark(
                exogenous, index=index, oracle=oracle, funding_rate=funding_rate,
                time_left_fraction=time_left_fraction,
            )  # fmt: skip
            if not bounds:  # the inputs passed ``binance_mark``'s checks: its P1 and P2
                x = float(index)
                tau = min(max(time_left_fraction, 0.0), 1.0)
                p1 = marks.funding_basis_price(x, funding_rate, tau)
                p2 = max(x + float(self._basis_average()), 1e-12)
                bounds.extend((min(p1, p2), max(p1, p2)))
            return mark

        return mark_now

    def _basis_average(self) -> float:
        """Binance's basis average, kept until the next sample (every cascade round re-marks:
        one sum per sample)."""
        average = self._average
        if average is None:
            basis = self._basis
            average = self._average = math.fsum(basis) / len(basis) if basis else 0.0
        return average

    def mark(
        self,
        exogenous: float,
        *,
        index: float,
        oracle: float,
        funding_rate: float,
        time_left_fraction: float,
    ) -> float:
        """The venue's mark now (quote/base): from its book, index, oracle and the rest of the
        market (``exogenous``, the other venues' perps for Hyperliquid)."""
        book = self.book_mid(exogenous)
        if self.rule == "book":
            return book
        if self.rule == "oracle":
            return marks.oracle_mark(oracle_price=oracle)
        if self.rule == "hyperliquid":
            return marks.hyperliquid_mark(
                oracle_price=oracle,
                basis_ema=self.basis_ema,
                book_mid=book,
                external_perp=exogenous,
            )
        return marks.binance_mark(
            last_price=book,
            index_price=index,
            basis_average=self._basis_average(),
            funding_rate=funding_rate,
            time_left_fraction=min(max(time_left_fraction, 0.0), 1.0),
        )
