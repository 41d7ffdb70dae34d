"""The DeFi venue kinds in worlds (``maker`` Dutch and English, ``gmx``, ``synthetix``): a world
scenario naming each validates, runs, its forced flow moves the shared price (and stops moving
it when the price channel is cut), its heatmap levels come out, sweeps can address it, and bad
config names the field."""

from __future__ import annotations

import re

import numpy as np
import pytest

from deleverage.analytics.world_report import build_world_report, world_panels
from deleverage.errors import ConfigError
from deleverage.world import Channels
from deleverage.world.build import build_world, run_world
from deleverage.world.config import WorldScenario
from deleverage.world.kinds import VENUE_KINDS
from deleverage.world.result import WorldResult
from scenarios import DEFI_WORLD

HEAD = """
kind = "world"
name = "defi-kinds"
seed = 11
dt_s = 1.0
duration_s = 240

[[assets]]
name = "ETH"
price = { process = "shock", s0 = 4000.0, drop_fraction = 0.2, start_s = 10, duration_s = 60, sigma = 0.0 }
liquidity = { depth_per_pct = 20.0, half_life_s = 600.0 }
"""  # noqa: E501

#: One fragile venue of each kind (many positions near their trigger at the start).
VENUES = {
    "maker-dutch": """
[[venues]]
name = "cdp"
kind = "maker"
assets = ["ETH"]

[venues.config.market]
design = "dutch"
osm_delay_s = 0.0
clipper = { buf = 1.05, step_s = 10.0, cut = 0.98 }

[venues.config.population]
n_vaults = 400
ratio_median = 1.6
ratio_sigma = 0.05
""",
    "maker-english": """
[[venues]]
name = "cdp"
kind = "maker"
assets = ["ETH"]

[venues.config.market]
design = "english"
osm_delay_s = 0.0
flipper = { ttl_s = 20.0 }

[venues.config.population]
n_vaults = 400
ratio_median = 1.6
ratio_sigma = 0.05
""",
    "gmx": """
[[venues]]
name = "pool"
kind = "gmx"
assets = ["ETH"]

[venues.config.market]
long_pool_tokens = 5000.0
short_pool_usd = 2e7

[venues.config.market.population]
positions = 600
leverage_low = 20.0
leverage_high = 50.0
long_fraction = 1.0
""",
    "synthetix": """
[[venues]]
name = "snx"
kind = "synthetix"
assets = ["ETH"]

[[venues.config.market.markets]]
asset = "ETH"
skew_scale = 1e6
max_seconds_in_liquidation_window = 0.0

[venues.config.market.population]
accounts = 600
leverage_low = 15.0
leverage_high = 25.0
long_fraction = 1.0
""",
}


def _scenario(case: str) -> WorldScenario:
    return WorldScenario.from_toml(HEAD + VENUES[case])


def _eth(result: WorldResult) -> tuple[np.ndarray, np.ndarray]:
    eth = result.assets[result.assets["asset"] == "ETH"]
    return eth["shared"].to_numpy(), eth["exogenous"].to_numpy()


@pytest.mark.parametrize("case", sorted(VENUES))
def test_each_defi_kind_runs_and_its_forced_flow_moves_the_shared_price(case: str) -> None:
    # Arrange
    scenario = _scenario(case)
    name = scenario.venues[0].name
    # Act
    result = run_world(scenario)
    cut = run_world(scenario, channels=Channels(prices=False, traders=False))
    # Assert: the venue liquidated, sold ETH into the shared market and pushed its price below
    # the exogenous path; with the price channel cut the shared price is the exogenous one
    assert result.kinds[name] == scenario.venues[0].kind
    venue = result.venues[result.venues["venue"] == name]
    assert venue["liquidations"].sum() > 0
    eth = result.assets[result.assets["asset"] == "ETH"]
    assert eth["forced_flow"].sum() < 0.0
    shared, exogenous = _eth(result)
    assert (shared < exogenous * (1.0 - 1e-6)).any()
    cut_shared, cut_exogenous = _eth(cut)
    np.testing.assert_allclose(cut_shared, cut_exogenous, rtol=1e-12)
    # the heatmap's input: every open position's trigger price
    levels = build_world(scenario).venues[name].liquidation_levels()
    assert len(levels) > 0
    assert np.isfinite(levels["liquidation_price"]).all()
    assert (levels["liquidation_price"] > 0.0).all()


@pytest.mark.parametrize("kind", ["maker", "gmx", "synthetix"])
def test_the_defi_kinds_are_registered(kind: str) -> None:
    assert VENUE_KINDS[kind].name == kind


@pytest.mark.parametrize(
    ("case", "old", "new", "field"),
    [
        ("maker-dutch", 'design = "dutch"', 'design = "sealed"', "market.design"),
        ("maker-dutch", "n_vaults = 400", "n_vaults = 0", "population.n_vaults"),
        ("gmx", "leverage_low = 20.0", "leverage_low = 0.5", "market.population.leverage_low"),
        ("gmx", "short_pool_usd = 2e7", "short_pool_usd = -1.0", "market.short_pool_usd"),
        ("synthetix", "skew_scale = 1e6", "skew_scale = 0.0", "market.markets.0.skew_scale"),
        ("synthetix", "accounts = 600", "accounts = 600\nbogus = 1", "market.population.bogus"),
    ],
)
def test_bad_defi_config_names_the_field(case: str, old: str, new: str, field: str) -> None:
    text = HEAD + VENUES[case]
    assert old in text
    with pytest.raises(ConfigError, match=r"venues\.0\.config.*" + re.escape(field)):
        WorldScenario.from_toml(text.replace(old, new))


@pytest.mark.parametrize("case", ["maker-dutch", "gmx", "synthetix"])
def test_a_defi_venue_must_watch_its_own_assets(case: str) -> None:
    text = HEAD.replace('name = "ETH"', 'name = "BTC"') + VENUES[case].replace('"ETH"', '"BTC"', 1)
    with pytest.raises(ConfigError, match=r"venues.\w+.assets"):
        build_world(WorldScenario.from_toml(text))


@pytest.mark.parametrize(
    ("case", "path", "value"),
    [
        ("maker-dutch", "venues.cdp.config.market.chop", 1.2),
        ("gmx", "venues.pool.config.market.population.leverage_high", 60.0),
        ("synthetix", "venues.snx.config.market.population.accounts", 50),
    ],
)
def test_sweeps_address_defi_venues_by_name(case: str, path: str, value: float) -> None:
    scenario = _scenario(case)
    scenario.check_override_path(path)
    changed = scenario.with_overrides({path: value})
    config = changed.venue_config(0)
    node = config
    for part in path.split(".")[3:]:
        node = getattr(node, part)
    assert node == value
    with pytest.raises(ConfigError, match="no_such_field"):
        scenario.check_override_path(path.rsplit(".", 1)[0] + ".no_such_field")


def test_the_world_report_and_heatmap_show_every_defi_venue() -> None:
    # Arrange: a perp venue, GMX, Synthetix, Aave and Maker on one ETH shock
    result = run_world(WorldScenario.from_toml(DEFI_WORLD))
    names = {"cex", "gmx", "snx", "aave", "maker"}
    # Act
    heat, crit = world_panels(result)
    page = build_world_report(result)
    # Assert: each venue liquidated, has its own heatmap and criticality rows, and its row in
    # the report's venue table
    summary = result.venue_summary()
    assert set(summary.index) == names
    assert (summary["liquidations"] > 0).all()
    assert set(heat["venue"]) == names | {"world"}
    assert set(crit["venue"]) == names | {"world"}
    world_notional = heat.loc[heat["venue"] == "world", "notional"].sum()
    venues_notional = heat.loc[heat["venue"] != "world", "notional"].sum()
    assert world_notional == pytest.approx(venues_notional)
    for name in names:
        assert f"<th>{name}</th>" in page
