"""From a :class:`~deleverage.world.config.WorldScenario` to a running :class:`World`.

Seeds come from one ``SeedSequence(seed)``: the asset paths first, then one child per venue
(its builder spawns its engine's and populations' seeds from it), so a scenario gives the same
result hash in any process. Asset paths reuse the single-venue simulator's path builder
(:func:`deleverage.sim.paths.scenario_paths`: processes, correlation, common jumps, history).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from deleverage.errors import ConfigError
from deleverage.sim.paths import scenario_paths
from deleverage.sim.scenario import MarketScenario, Scenario
from deleverage.spec import MarketSpec
from deleverage.world.config import WorldScenario
from deleverage.world.core import Channels, ProgressCallback, World, WorldVenue
from deleverage.world.kinds import venue_kind
from deleverage.world.market import SharedMarket, VenueLink
from deleverage.world.registry import BuildContext
from deleverage.world.result import WorldResult
from deleverage.world.risk_config import risk_layers
from deleverage.world.traders import SharedWallets, TraderMap

__all__ = ["asset_paths", "build_world", "run_world"]


def asset_paths(scenario: WorldScenario, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """Exogenous prices ``(n_steps + 1, n_assets)`` and the start time (ns)."""
    markets = tuple(
        MarketScenario(
            symbol=asset.name,
            preset=None,
            spec=MarketSpec.simple(asset.name).model_dump(mode="json"),
            price=asset.price,
        )
        for asset in scenario.assets
    )
    sim = Scenario(
        name=scenario.name, seed=scenario.seed, dt_s=scenario.dt_s,
        duration_s=scenario.duration_s, markets=markets, correlation=scenario.correlation,
        common_jumps=scenario.common_jumps,
    )  # fmt: skip
    try:
        return scenario_paths(sim, rng)
    except ConfigError as exc:
        raise ConfigError(
            exc.field.replace("markets.", "assets.", 1), exc.value, exc.rule
        ) from None


def build_world(scenario: WorldScenario, *, channels: Channels | None = None) -> World:
    """Build the shared markets, the venues (through the registry), the trader map and the
    wallets; ``channels`` overrides the scenario's (for comparisons on the same seed)."""
    if channels is None:
        channels = Channels(scenario.channels.prices, scenario.channels.traders)
    root = np.random.SeedSequence(scenario.seed)
    path_seed, *venue_seeds = root.spawn(1 + len(scenario.venues))
    paths, start_ns = asset_paths(scenario, np.random.default_rng(path_seed))
    dt = scenario.dt_s
    markets = [
        SharedMarket(
            asset.name,
            exogenous=paths[:, i],
            liquidity=asset.liquidity,
            arbitrage=asset.arbitrage,
            start_ns=start_ns,
            dt_s=dt,
        )
        for i, asset in enumerate(scenario.assets)
    ]
    column = {asset.name: i for i, asset in enumerate(scenario.assets)}
    reference = {asset.name: float(paths[0, i]) for i, asset in enumerate(scenario.assets)}
    entries = []
    shareable = {}
    for i, (venue, seed) in enumerate(zip(scenario.venues, venue_seeds, strict=True)):
        kind = venue_kind(venue.kind)
        config = scenario.venue_config(i)
        context = BuildContext(
            name=venue.name, assets=venue.assets, start_ns=start_ns, dt_s=dt,
            reference_prices={a: reference[a] for a in venue.assets}, seed=seed,
            own_book={a: a in venue.links for a in venue.assets},
        )  # fmt: skip
        built = kind.build(config, context)
        links = {
            asset: VenueLink(
                venue.name,
                asset,
                liquidity=link.liquidity,
                arbitrage=link.arbitrage,
                reference=paths[:, column[asset]],
                start_ns=start_ns,
                dt_s=dt,
            )
            for asset, link in venue.links.items()
        }
        entries.append(WorldVenue(built.venue, links, built.collateral, venue.kind))
        shareable[venue.name] = built.shareable
    traders = _trader_map(scenario, shareable)
    wallets = None
    if len(traders):
        access = {e.venue.name: e.collateral for e in entries if e.collateral is not None}
        w = scenario.wallets
        wallets = SharedWallets(
            traders, access, interval_s=w.interval_s, trigger_ratio=w.trigger_ratio,
            target_ratio=w.target_ratio,
        )  # fmt: skip
    world = World(
        markets, entries, dt_s=dt, start_ns=start_ns, traders=traders, wallets=wallets,
        channels=channels, max_rounds=scenario.max_rounds,
    )  # fmt: skip
    for layer in risk_layers(
        world, clearinghouse=scenario.clearinghouse, backstops=scenario.backstops,
        risk_oracle=scenario.risk_oracle,
    ):  # fmt: skip
        world.add_layer(layer)
    return world


def _trader_map(scenario: WorldScenario, shareable: dict[str, np.ndarray]) -> TraderMap:
    used = dict.fromkeys(shareable, 0)
    rows: list[pd.DataFrame] = []
    next_trader = 0
    for g, group in enumerate(scenario.shared_traders):
        for venue in group.venues:
            left = len(shareable[venue]) - used[venue]
            if left < group.count:
                raise ConfigError(
                    f"shared_traders.{g}.count", group.count,
                    f"must not exceed the shareable (cross) accounts left on venue {venue!r} "
                    f"({left})",
                )  # fmt: skip
            accounts = shareable[venue][used[venue] : used[venue] + group.count]
            used[venue] += group.count
            rows.append(
                pd.DataFrame(
                    {
                        "trader": np.arange(next_trader, next_trader + group.count),
                        "venue": venue,
                        "account": accounts,
                    }
                )
            )
        next_trader += group.count
    return TraderMap(pd.concat(rows, ignore_index=True) if rows else None)


def run_world(
    scenario: WorldScenario,
    *,
    channels: Channels | None = None,
    progress: ProgressCallback | None = None,
) -> WorldResult:
    """Build and run ``scenario``; the result carries the scenario, the channels and each
    venue's liquidation levels at the end (``extra``)."""
    world = build_world(scenario, channels=channels)
    result = world.run(progress=progress)
    result.extra["scenario"] = scenario
    result.extra["channels"] = world.channels
    result.extra["levels"] = {name: v.liquidation_levels() for name, v in world.venues.items()}
    result.extra["world"] = world
    result.extra["layers"] = {
        layer.name: layer.panels() for layer in world.layers if hasattr(layer, "panels")
    }
    return result
