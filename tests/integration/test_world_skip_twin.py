"""Twin test of a world taking quiet stretches in bulk (world/quiet.py, issue #20) against the
step loop: the same result hash, venue summary and every venue's journal, on world_day's
scenario (its three variants, small), the built-in world, and small worlds with the price
channel cut, the trader channel and arbitrageurs whose capital keeps arriving."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from deleverage import Exchange
from deleverage.engine.venue import PerpVenue
from deleverage.prices import shock_path
from deleverage.sim.population import PopulationSpec, generate_population
from deleverage.sim.pricing import ArbitrageSpec
from deleverage.sim.scenario import LiquiditySpec
from deleverage.venues import preset
from deleverage.world import (
    Channels,
    PerpCollateral,
    SharedMarket,
    SharedWallets,
    TraderMap,
    World,
    WorldVenue,
    quiet,
)
from deleverage.world.build import build_world
from deleverage.world.builtin import world_builtin_path
from deleverage.world.config import load_world
from deleverage.world.market import VenueLink
from deleverage.world.result import WorldResult

sys.path.insert(0, str(Path(__file__).parents[2] / "benchmarks"))
from world_day import world_scenario  # type: ignore[import-not-found]

START_NS = 1_767_225_600_000_000_000
WorldFactory = Callable[[], World]


def _perp(
    name: str, seed: int, *, n: int = 1500, leverage: float = 15.0
) -> tuple[WorldVenue, np.ndarray]:
    spec = preset("binance", "BTC")
    ex = Exchange(seed=seed)
    ex.list_market(spec, ts_ns=START_NS)
    ex.set_mark(0, 60_000.0, ts_ns=START_NS)
    ex.deposit(ex.insurance_account, 1e5, ts_ns=START_NS)
    pop = generate_population(
        PopulationSpec(n_positions=n, leverage_median=leverage, leverage_sigma=0.3,
                       isolated_fraction=0.5),
        spec, reference_price=60_000.0, rng=np.random.default_rng(seed),
    )  # fmt: skip
    ids = pop.load_into(ex, 0, ts_ns=START_NS)
    entry = WorldVenue(
        PerpVenue(ex, name=name, assets={"BTC": 0}), collateral=PerpCollateral(ex), kind="perp"
    )
    return entry, ids


def _small_world(*, prices: bool, traders: bool, inflow: float) -> World:
    """Two perp venues on one BTC market falling 8% at 40% of 3,000 s; one with its own book."""
    ramp = shock_path(60_000.0, 0.08, 1_200.0, 300.0, 1.0, 3_000)
    noise = np.random.default_rng(3).normal(0.0, 2e-4, len(ramp))
    path = ramp * np.exp(np.cumsum(noise))
    arbitrage = ArbitrageSpec(capital=5e6, inflow_per_s=inflow, latency_s=2.0, cost=0.0005)
    market = SharedMarket(
        "BTC", exogenous=path, liquidity=LiquiditySpec(depth_per_pct=30.0, half_life_s=120.0),
        arbitrage=arbitrage, start_ns=START_NS, dt_s=1.0,
    )  # fmt: skip
    (a, ids_a), (b, ids_b) = _perp("a", 1), _perp("b", 2, leverage=25.0)
    a.links["BTC"] = VenueLink(
        "a", "BTC", liquidity=LiquiditySpec(depth_per_pct=10.0, half_life_s=60.0),
        arbitrage=arbitrage, reference=path, start_ns=START_NS, dt_s=1.0,
    )  # fmt: skip
    wallets = None
    traders_map = None
    if traders:
        traders_map = TraderMap(
            pd.DataFrame({"trader": [*range(50), *range(50)], "venue": ["a"] * 50 + ["b"] * 50,
                          "account": [*ids_a[:50].tolist(), *ids_b[:50].tolist()]})
        )  # fmt: skip
        access = {"a": a.collateral, "b": b.collateral}
        wallets = SharedWallets(traders_map, access, interval_s=30.0)  # type: ignore[arg-type]
    return World(
        [market], [a, b], dt_s=1.0, start_ns=START_NS, traders=traders_map, wallets=wallets,
        channels=Channels(prices=prices, traders=traders),
    )  # fmt: skip


CASES: dict[str, WorldFactory] = {
    "world_day": lambda: build_world(world_scenario(4_000, 7_200.0)),
    "world_day_mixed": lambda: build_world(world_scenario(4_000, 3_600.0, mixed=True)),
    "world_day_standins": lambda: build_world(world_scenario(4_000, 3_600.0, standins=True)),
    "builtin": lambda: build_world(load_world(world_builtin_path("world-2025-10-10"))),
    "prices_cut": lambda: _small_world(prices=False, traders=False, inflow=0.0),
    "traders_inflow": lambda: _small_world(prices=True, traders=True, inflow=1_000.0),
}


def _run(
    factory: WorldFactory, on: bool, monkeypatch: pytest.MonkeyPatch
) -> tuple[World, WorldResult]:
    monkeypatch.setattr(quiet, "DEFAULT_ENABLED", on)
    world = factory()
    return world, world.run()


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_world_is_identical_with_quiet_stretches_taken_in_bulk(
    case: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Arrange / Act
    bulk_world, bulk = _run(CASES[case], True, monkeypatch)
    loop_world, loop = _run(CASES[case], False, monkeypatch)
    # Assert
    assert bulk.result_hash == loop.result_hash
    pd.testing.assert_frame_equal(bulk.venue_summary(), loop.venue_summary())
    for name, entry in bulk_world.entries.items():
        ja = entry.venue.journal().to_arrow()
        jb = loop_world.entries[name].venue.journal().to_arrow()
        assert ja.equals(jb), f"{name}: journals differ"
    assert bulk_world.round_index == loop_world.round_index
    assert loop_world.quiet.skipped == 0
    assert bulk.venue_summary()["liquidations"].sum() > 0  # the crash liquidates
    if case != "builtin":  # (its arbitrageurs are never at rest once its books moved)
        assert bulk_world.quiet.skipped > bulk_world.n_steps // 4  # stretches were taken
