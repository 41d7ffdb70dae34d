"""Physics of contagion: it travels through shared prices and shared traders, and vanishes
when both channels are cut (same venues, same seeds, runs compared)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pytest

from deleverage.prices import shock_path
from deleverage.sim.pricing import ArbitrageSpec
from deleverage.sim.scenario import LiquiditySpec
from deleverage.world import Channels, SharedMarket, SharedWallets, TraderMap, World, WorldResult

if TYPE_CHECKING:
    from conftest import PerpFactory

START_NS = 1_767_225_600_000_000_000


def _market(path: np.ndarray) -> SharedMarket:
    return SharedMarket(
        "BTC", exogenous=path, liquidity=LiquiditySpec(depth_per_pct=15.0, half_life_s=300.0),
        arbitrage=ArbitrageSpec(), start_ns=START_NS, dt_s=1.0,
    )  # fmt: skip


def _price_world(
    make_perp: PerpFactory, path: np.ndarray, channels: Channels, *, with_a: bool = True
) -> WorldResult:
    venues = []
    if with_a:
        venues.append(make_perp("a", n=3000, leverage=30.0, long_fraction=0.9, seed=11)[0])
    venues.append(make_perp("b", venue="hyperliquid", n=3000, leverage=12.0, seed=12)[0])
    return World([_market(path)], venues, dt_s=1.0, start_ns=START_NS, channels=channels).run()


def _liquidations(result: WorldResult, venue: str) -> pd.Series:
    frame = result.venues[result.venues["venue"] == venue]
    return frame["liquidations"].reset_index(drop=True)


def _cross(result: WorldResult, channel: str, source: str, target: str) -> float:
    c = result.contagion
    row = c[(c["channel"] == channel) & (c["source"] == source) & (c["target"] == target)]
    return float(row["liquidations"].sum())


def test_forced_flow_of_one_venue_liquidates_on_another_through_the_shared_price(
    make_perp: PerpFactory,
) -> None:
    # Arrange: a 4% slide; venue a (30x longs) dumps into the shared book b also watches
    path = shock_path(100_000.0, 0.04, 30, 300, 1.0, 600)
    # Act
    alone = _price_world(make_perp, path, Channels(), with_a=False)
    linked = _price_world(make_perp, path, Channels())
    cut = _price_world(make_perp, path, Channels(prices=False, traders=False))
    # Assert: more liquidations on b with a's flow, credited to a; none when cut
    assert _liquidations(linked, "b").sum() > _liquidations(alone, "b").sum()
    assert _cross(linked, "prices", "a", "b") > 0.0
    assert _cross(cut, "prices", "a", "b") == 0.0
    assert cut.summary()["cross_venue_liquidations"] == 0.0
    pd.testing.assert_series_equal(_liquidations(cut, "b"), _liquidations(alone, "b"))


def _trader_world(make_perp: PerpFactory, path: np.ndarray, channels: Channels) -> WorldResult:
    # The same traders long on both venues: 25x on a, 10x on b with spare cash on b (half as
    # much again as b's initial margin), which a trader in trouble on a moves over.
    n = 1500
    a, ids_a = make_perp("a", n=n, leverage=25.0, long_fraction=1.0, isolated_fraction=0.0, seed=21)
    b, ids_b = make_perp(
        "b", venue="hyperliquid", n=n, leverage=10.0, long_fraction=1.0, isolated_fraction=0.0,
        seed=22,
    )  # fmt: skip
    assert a.collateral is not None
    assert b.collateral is not None
    spare = 0.5 * b.collateral.exposure(ids_b) / 10.0
    for account, amount in zip(ids_b.tolist(), spare.tolist(), strict=True):
        b.collateral.deposit(account, amount, ts_ns=START_NS)
    traders = TraderMap(
        pd.DataFrame(
            {
                "trader": np.concatenate([np.arange(n), np.arange(n)]),
                "venue": ["a"] * n + ["b"] * n,
                "account": np.concatenate([ids_a, ids_b]),
            }
        )
    )
    wallets = SharedWallets(
        traders, {"a": a.collateral, "b": b.collateral}, interval_s=5.0,
        trigger_ratio=0.7, target_ratio=0.3,
    )  # fmt: skip
    world = World(
        [_market(path)], [a, b], dt_s=1.0, start_ns=START_NS, traders=traders, wallets=wallets,
        channels=channels,
    )  # fmt: skip
    return world.run()


def _slide() -> np.ndarray:
    return shock_path(100_000.0, 0.12, 30, 600, 1.0, 700)


def test_traders_who_rescue_one_venue_are_liquidated_on_the_other(make_perp: PerpFactory) -> None:
    # Arrange: a 12% slide; alone, b's 10x longs with spare cash survive it; a's 25x longs
    # do not, and their owners move b's spare cash to a
    path = _slide()
    # Act: prices cut in both runs, so only traders carry contagion
    with_traders = _trader_world(make_perp, path, Channels(prices=False, traders=True))
    without = _trader_world(make_perp, path, Channels(prices=False, traders=False))
    # Assert
    assert _liquidations(with_traders, "b").sum() > _liquidations(without, "b").sum()
    assert _cross(with_traders, "traders", "a", "b") > 0.0
    assert _cross(without, "traders", "a", "b") == 0.0
    assert without.summary()["cross_venue_liquidations"] == 0.0


def test_the_attribution_accounts_for_every_liquidation_once(make_perp: PerpFactory) -> None:
    result = _trader_world(make_perp, _slide(), Channels())
    caused = result.contagion.groupby("target")["liquidations"].sum()
    happened = result.venues.groupby("venue", observed=True)["liquidations"].sum()
    for venue in ("a", "b"):
        assert caused[venue] == pytest.approx(happened[venue], rel=1e-9)


LENDING_WORLD = """
kind = "world"
name = "lending-contagion"
seed = 11
duration_s = 240

[[assets]]
name = "ETH"
price = { process = "shock", s0 = 4000.0, drop_fraction = 0.07, start_s = 10, duration_s = 120 }
liquidity = { depth_per_pct = 60.0, half_life_s = 600.0 }

[[venues]]
name = "cex"
kind = "perp"
assets = ["ETH"]

[venues.config]
preset = "binance"
symbols = { ETH = "BTC" }  # Binance's BTC table for the ETH market
population = { n_positions = 1500, leverage_median = 12.0, long_fraction = 0.9, size_min = 0.05 }
"""

AAVE = """
[[venues]]
name = "lend"
kind = "aave"
assets = ["ETH"]

[venues.config]
accounts = 400
collateral_median = 200000.0
min_health = 1.01
health_scale = 0.04
second_collateral_share = 0.0
"""


def test_collateral_sold_by_a_lending_market_liquidates_perp_traders() -> None:
    # Arrange: the same perp venue (same seed: it is listed first) with and without an Aave
    # market whose keepers sell the WETH they seize into the shared ETH book
    from deleverage.world.build import run_world
    from deleverage.world.config import WorldScenario

    # Act
    alone = run_world(WorldScenario.from_toml(LENDING_WORLD))
    linked = run_world(WorldScenario.from_toml(LENDING_WORLD + AAVE))
    # Assert
    assert _liquidations(linked, "lend").sum() > 0
    assert _liquidations(linked, "cex").sum() > _liquidations(alone, "cex").sum()
    assert _cross(linked, "prices", "lend", "cex") > 0.0
