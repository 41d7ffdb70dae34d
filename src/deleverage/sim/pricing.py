"""Scenario tables of the venue price model: the mark rule and the arbitrageurs of a market.

They live in their own sub-models (``[markets.pricing]``, ``[markets.pricing.arbitrage]``) so
that the rest of the scenario schema does not depend on them::

    [[markets]]
    symbol = "BTCUSDT"
    preset = "binance"
    price = { process = "historical", bundled = "btcusdt-1m-2025-10-10" }
    pricing = { mark = "venue", arbitrage = { capital = 5e7, latency_s = 2.0, cost = 0.0005 } }

Defaults keep the earlier model: ``mark = "book"`` (the mark is the venue's own book price) and
no arbitrage capital (only the book's resilience pulls the price back).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from deleverage.prices.marks import MarkRule, venue_mark_rule
from deleverage.spec import _Frozen

PositiveFloat = Annotated[float, Field(gt=0, allow_inf_nan=False)]
NonNegFloat = Annotated[float, Field(ge=0, allow_inf_nan=False)]


class ArbitrageSpec(_Frozen):
    """Arbitrageurs who trade the venue's book back toward the index (docs/formulas.md, "Index,
    book and mark").

    ``capital``: quote notional they can commit at the start (``inf``: unlimited);
    ``inflow_per_s``: capital arriving per second afterwards (quote/s); capital spent stays tied
    up in their hedged positions for the rest of the run. ``latency_s``: they act on a
    dislocation only once it is that old (and by no more than it was then). ``cost``: their
    round-trip cost as a fraction of price; dislocations within it are left alone.
    """

    capital: Annotated[float, Field(ge=0)] = 0.0
    inflow_per_s: NonNegFloat = 0.0
    latency_s: NonNegFloat = 0.0
    cost: Annotated[float, Field(ge=0, lt=1, allow_inf_nan=False)] = 0.0


class PricingSpec(_Frozen):
    """How the venue prices one market.

    ``mark``: the venue's mark rule (:mod:`deleverage.prices.marks`): ``"book"`` (its own book
    price), ``"binance"``, ``"hyperliquid"``, ``"oracle"``, or ``"venue"`` (the rule of the
    market's preset: Binance, Bybit, OKX, BitMEX -> ``binance``; Hyperliquid -> ``hyperliquid``;
    dYdX v4, Drift -> ``oracle``). ``basis_window_s`` and ``basis_sample_s``: Binance's moving
    average of the basis (30 samples, one a minute); ``ema_s``: Hyperliquid's EMA of mid minus
    oracle (150 s).
    """

    mark: Literal["venue", "book", "binance", "hyperliquid", "oracle"] = "book"
    basis_window_s: PositiveFloat = 1800.0
    basis_sample_s: PositiveFloat = 60.0
    ema_s: PositiveFloat = 150.0
    arbitrage: ArbitrageSpec = ArbitrageSpec()

    def rule(self, preset: str | None) -> MarkRule:
        """The mark rule, ``venue`` resolved from the market's ``preset``."""
        return venue_mark_rule(preset) if self.mark == "venue" else self.mark
