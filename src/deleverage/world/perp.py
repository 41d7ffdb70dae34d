"""The ``perp`` venue kind: an order-book perpetuals venue built from a preset.

One :class:`~deleverage.engine.exchange.Exchange` per venue with one market per asset (the
preset's table for that asset, ``spec_overrides`` merged), an insurance fund, liquidators with
latency and capital, a drawn population per market (the sim's
:func:`~deleverage.sim.population.generate_population`, loaded in bulk), wrapped as a
:class:`~deleverage.engine.venue.PerpVenue`. Where the venue has its own book for an asset
(a ``links`` entry in the world scenario), the engine's fills walk a book of the same depth and
the mark follows the venue's book price unless ``mark_from`` says otherwise.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal, Self

import numpy as np
from pydantic import Field, model_validator

from deleverage.engine.exchange import Exchange
from deleverage.engine.venue import PerpVenue
from deleverage.errors import ConfigError, DeleverageError
from deleverage.liquidity import ConstantDepthBook
from deleverage.sim.population import PopulationSpec, generate_population
from deleverage.spec import MarketSpec, _Frozen
from deleverage.venues import preset
from deleverage.world.collateral import PerpCollateral
from deleverage.world.registry import BuildContext, BuiltVenue, VenueKind

__all__ = ["PERP_KIND", "PerpConfig", "build_perp"]

NonNegFloat = Annotated[float, Field(ge=0, allow_inf_nan=False)]


class PerpConfig(_Frozen):
    """Config of a ``perp`` venue (``[venues.config]``).

    ``preset``: a venue preset (``deleverage presets``); ``symbols``: asset -> the preset's
    symbol for it (default: the asset's name, e.g. ``BTC``); ``spec_overrides``: fields of the
    market spec replaced for every market; ``insurance_fund``: quote; ``population``: the book
    drawn on each market (none: no traders); ``mark_from``: which price marks the venue
    (``oracle``: the shared price; ``book``: its own book where it has one); ``liquidator_
    latency_s`` and ``liquidator_capital`` (quote per second, ``inf``: unlimited);
    ``fill_depth_per_pct``: the depth of the book the engine's liquidation fills walk (base per
    1%; none: fills at the mark).
    """

    preset: str
    symbols: dict[str, str] = Field(default_factory=dict)
    spec_overrides: dict[str, Any] = Field(default_factory=dict)
    insurance_fund: NonNegFloat = 1_000_000.0
    population: PopulationSpec | None = None
    mark_from: Literal["oracle", "index", "book"] = "oracle"
    liquidator_latency_s: NonNegFloat = 0.0
    liquidator_capital: Annotated[float, Field(gt=0)] = math.inf
    fill_depth_per_pct: Annotated[float, Field(gt=0, allow_inf_nan=False)] | None = None
    fill_half_life_s: Annotated[float, Field(gt=0, allow_inf_nan=False)] = 60.0

    @model_validator(mode="after")
    def _preset_known(self) -> Self:
        try:
            preset(self.preset, "BTC")
        except DeleverageError as exc:
            raise ValueError(str(exc)) from None
        return self

    def market_spec(self, asset: str) -> MarketSpec:
        """The venue's market for ``asset`` (preset table, overrides merged)."""
        base = preset(self.preset, self.symbols.get(asset, asset)).model_dump(mode="json")
        return MarketSpec.from_mapping(_merge(base, self.spec_overrides))


def _merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def build_perp(config: PerpConfig, context: BuildContext) -> BuiltVenue:
    """Build the engine, its markets, fund and populations; wrap it as a venue."""
    engine_seed, population_seed = context.seed.spawn(2)
    ex = Exchange(seed=int(engine_seed.generate_state(1)[0]))
    start = context.start_ns
    markets: dict[str, int] = {}
    for asset in context.assets:
        try:
            spec = config.market_spec(asset)
        except DeleverageError as exc:
            raise ConfigError(
                f"venues.{context.name}.config.symbols.{asset}",
                config.symbols.get(asset, asset),
                f"must name a market of preset {config.preset!r} (map the asset to one) ({exc})",
            ) from None
        if spec.contract_type == "inverse":
            raise ConfigError(
                f"venues.{context.name}.config.symbols.{asset}",
                spec.symbol,
                "must name a linear market: populations are drawn in quote units, so an inverse "
                f"(coin-margined) market is refused (preset {config.preset!r}); run inverse "
                "markets on an Exchange directly",
            )
        m = ex.list_market(spec, ts_ns=start)
        ex.set_mark(m, context.reference_prices[asset], ts_ns=start)
        if config.fill_depth_per_pct is not None:
            ex.set_liquidity(
                m, ConstantDepthBook(
                    depth_per_pct=config.fill_depth_per_pct, half_life_s=config.fill_half_life_s,
                    ts_ns=start,
                ),
            )  # fmt: skip
        capital = config.liquidator_capital
        ex.risk.set_liquidators(
            m, latency_s=config.liquidator_latency_s,
            capital_per_step=capital * context.dt_s if math.isfinite(capital) else math.inf,
            mark_interval_s=context.dt_s,
        )  # fmt: skip
        markets[asset] = m
    if config.insurance_fund > 0:
        ex.deposit(ex.insurance_account, config.insurance_fund, ts_ns=start)
    shareable = np.zeros(0, dtype=np.int64)
    if config.population is not None:
        seeds = population_seed.spawn(len(context.assets))
        for (asset, m), seed in zip(markets.items(), seeds, strict=True):
            spec = ex.markets[m].spec
            pop = generate_population(
                config.population, spec, reference_price=context.reference_prices[asset],
                rng=np.random.default_rng(seed),
            )  # fmt: skip
            ids = pop.load_into(ex, m, ts_ns=start)
            if not len(shareable):
                shareable = ids[~pop.isolated]
    mark_from = config.mark_from
    venue = PerpVenue(ex, name=context.name, assets=markets, mark_from=mark_from)
    return BuiltVenue(venue, PerpCollateral(ex), shareable)


#: The ``perp`` kind (registered in :mod:`deleverage.world.kinds`).
PERP_KIND = VenueKind(
    "perp", PerpConfig, build_perp,
    "an order-book perpetuals venue from a preset (binance, hyperliquid, ...)",
)  # fmt: skip
