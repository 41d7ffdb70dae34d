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


class ManipulationSpec(_Frozen):
    """An attacker pushes one source: its price times ``1 + move`` from ``start_s`` for
    ``duration_s`` seconds (a thin venue's book walked by the attacker)."""

    start_s: NonNegFloat = 0.0
    duration_s: PositiveFloat = 60.0
    move: Annotated[float, Field(gt=-1, allow_inf_nan=False)] = 0.5


class SourceSpec(_Frozen):
    """One source of the index: the exogenous price times ``1 + bias``, seen ``lag_s`` late,
    out (no price) during each ``(start_s, duration_s)`` of ``outages``, pushed by
    ``manipulation`` when given; ``weight`` in the weighted median."""

    weight: PositiveFloat = 1.0
    bias: Annotated[float, Field(gt=-1, lt=1, allow_inf_nan=False)] = 0.0
    lag_s: NonNegFloat = 0.0
    outages: tuple[tuple[NonNegFloat, PositiveFloat], ...] = ()
    manipulation: ManipulationSpec | None = None


class OracleSpec(_Frozen):
    """The market's index and oracle feed (docs/formulas.md §17.4).

    ``sources``: the index is their weighted median (none: the index is the exogenous price).
    The oracle publishes the index like a push feed: a new value when it moves by ``deviation``
    (fraction) or every ``heartbeat_s`` (``None``: every step), ``latency_s`` after observing it;
    ``osm_hop_s`` delays it the way Maker's OSM does (3600: the price read an hour before the
    current hop began). The value in force is flagged stale when it is older than
    ``stale_after_s`` (``None``: never).
    """

    sources: tuple[SourceSpec, ...] = ()
    heartbeat_s: PositiveFloat | None = None
    deviation: Annotated[float, Field(ge=0, lt=1, allow_inf_nan=False)] = 0.0
    latency_s: NonNegFloat = 0.0
    osm_hop_s: PositiveFloat | None = None
    stale_after_s: PositiveFloat | None = None


class PricingSpec(_Frozen):
    """How the venue prices one market.

    ``mark``: the venue's mark rule (:mod:`deleverage.prices.marks`): ``"book"`` (its own book
    price), ``"binance"``, ``"hyperliquid"``, ``"oracle"``, or ``"venue"`` (the rule of the
    market's preset: Binance, Bybit, OKX, BitMEX -> ``binance``; Hyperliquid -> ``hyperliquid``;
    dYdX v4, Drift -> ``oracle``). ``basis_window_s`` and ``basis_sample_s``: Binance's moving
    average of the basis (30 samples, one a minute); ``ema_s``: Hyperliquid's EMA of mid minus
    oracle (150 s). ``oracle``: where the index and the oracle come from
    (:class:`OracleSpec`; by default both are the exogenous price).
    """

    mark: Literal["venue", "book", "binance", "hyperliquid", "oracle"] = "book"
    basis_window_s: PositiveFloat = 1800.0
    basis_sample_s: PositiveFloat = 60.0
    ema_s: PositiveFloat = 150.0
    arbitrage: ArbitrageSpec = ArbitrageSpec()
    oracle: OracleSpec = OracleSpec()

    def rule(self, preset: str | None) -> MarkRule:
        """The mark rule, ``venue`` resolved from the market's ``preset``."""
        return venue_mark_rule(preset) if self.mark == "venue" else self.mark
