"""World scenarios: validation names the field, the registry checks each venue's config,
override paths address venues by name, and a scenario runs to the same hash twice."""

from __future__ import annotations

from pathlib import Path

import pytest

from deleverage.errors import ConfigError
from deleverage.world import Channels
from deleverage.world.aave import AaveCollateral
from deleverage.world.build import build_world, run_world
from deleverage.world.config import WorldScenario, load_world, scenario_kind
from deleverage.world.kinds import VENUE_KINDS
from scenarios import SMALL_WORLD


def _with(text: str, old: str, new: str) -> str:
    assert old in text
    return text.replace(old, new)


def test_the_small_world_loads_and_maps_its_shared_traders() -> None:
    scenario = WorldScenario.from_toml(SMALL_WORLD)
    world = build_world(scenario)
    assert set(world.venues) == {"cex", "dex"}
    assert len(world.traders.shared()) == 100
    assert world.entries["cex"].links["BTC"].venue == "cex"


@pytest.mark.parametrize(
    ("old", "new", "field"),
    [
        (
            'kind = "perp"\nassets = ["BTC"]\nlinks',
            'kind = "pool"\nassets = ["BTC"]\nlinks',
            "kind",
        ),
        ('preset = "binance"', 'preset = "nowhere"', "venues.0.config"),
        ("leverage_median = 20.0", "leverage_median = 0.5", "leverage_median"),
        (
            'assets = ["BTC"]\n\n[venues.config]\npreset = "hyper',
            'assets = ["ETH"]\n\n[venues.config]\npreset = "hyper',
            "venues.1.assets",
        ),
        ('venues = ["cex", "dex"]', 'venues = ["cex", "nope"]', "shared_traders.0.venues"),
        ("interval_s = 10.0", "interval_s = 10.0\ntarget_ratio = 0.9", "target_ratio"),
        ('name = "dex"', 'name = "cex"', "venue names must be distinct"),
        ("count = 100", "count = 100\nextra = 1", "extra"),
    ],
)
def test_bad_world_files_name_the_field(old: str, new: str, field: str) -> None:
    with pytest.raises(ConfigError, match=field):
        WorldScenario.from_toml(_with(SMALL_WORLD, old, new))


def test_shared_traders_beyond_the_cross_accounts_are_refused() -> None:
    scenario = WorldScenario.from_toml(_with(SMALL_WORLD, "count = 100", "count = 100000"))
    with pytest.raises(ConfigError, match=r"shared_traders\.0\.count"):
        build_world(scenario)


def test_an_inverse_market_is_refused_naming_the_symbol() -> None:
    """Populations are drawn in quote units: a coin-margined market would load positions of
    the wrong scale (a BitMEX XBTUSD book of 1-contract positions holding thousands of XBT)."""
    scenario = WorldScenario.from_toml(
        _with(SMALL_WORLD, 'preset = "binance"', 'preset = "bitmex"')
    )
    with pytest.raises(ConfigError, match=r"venues\.cex\.config\.symbols\.BTC.*linear.*XBTUSD"):
        build_world(scenario)


def test_overrides_address_a_venue_by_name_and_are_checked() -> None:
    scenario = WorldScenario.from_toml(SMALL_WORLD)
    changed = scenario.with_overrides({"venues.dex.config.insurance_fund": 123.0})
    assert changed.venue_config(1).insurance_fund == 123.0
    scenario.check_override_path("venues.cex.config.population.leverage_median")
    scenario.check_override_path("venues.cex.config.spec_overrides.liquidation.kind")
    with pytest.raises(ConfigError, match="venues"):
        scenario.check_override_path("venues.nowhere.config.insurance_fund")
    with pytest.raises(ConfigError, match="config"):
        scenario.check_override_path("venues.cex.config.no_such_field")
    with pytest.raises(ConfigError, match="insurance_fund"):
        scenario.with_overrides({"venues.cex.config.insurance_fund": -1.0})


def test_the_kind_of_a_file_and_of_a_builtin(tmp_path: Path) -> None:
    path = tmp_path / "w.toml"
    path.write_text(SMALL_WORLD)
    assert scenario_kind(path) == "world"
    assert scenario_kind("world-2025-10-10") == "world"
    assert scenario_kind("btc-2025-10-10") is None
    assert load_world("world-2025-10-10").venues[0].kind in VENUE_KINDS


def test_same_world_scenario_same_hash_and_the_cut_twin_has_no_contagion() -> None:
    scenario = WorldScenario.from_toml(SMALL_WORLD)
    first, second = run_world(scenario), run_world(scenario)
    assert first.result_hash == second.result_hash
    cut = run_world(scenario, channels=Channels(prices=False, traders=False))
    assert cut.summary()["cross_venue_liquidations"] == 0.0
    assert first.summary()["liquidations"] > 0


AAVE_VENUE = """
[[venues]]
name = "lend"
kind = "aave"
assets = ["ETH"]

[venues.config]
accounts = 300
min_health = 1.01
health_scale = 0.05
"""

ETH_ASSET = """
[[assets]]
name = "ETH"
price = { process = "shock", s0 = 4000.0, drop_fraction = 0.08, start_s = 10, duration_s = 30 }
liquidity = { depth_per_pct = 200.0 }
"""


def test_an_aave_market_takes_part_through_the_registry_and_its_sales_move_eth() -> None:
    # Arrange: the small world plus ETH and a fragile Aave market (WETH collateral)
    text = SMALL_WORLD.replace("[[venues]]", ETH_ASSET + "\n[[venues]]", 1) + AAVE_VENUE
    scenario = WorldScenario.from_toml(text)
    # Act
    result = run_world(scenario)
    # Assert: keepers liquidated and sold WETH into the shared ETH book
    lend = result.venues[result.venues["venue"] == "lend"]
    assert lend["liquidations"].sum() > 0
    eth = result.assets[result.assets["asset"] == "ETH"]
    assert eth["forced_flow"].sum() < 0.0
    assert result.kinds["lend"] == "aave"


def test_an_aave_market_must_watch_its_reserves_assets() -> None:
    text = SMALL_WORLD + AAVE_VENUE.replace('assets = ["ETH"]', 'assets = ["BTC"]')
    with pytest.raises(ConfigError, match="assets"):
        build_world(WorldScenario.from_toml(text))


def test_a_perp_asset_without_a_preset_market_names_the_symbols_field() -> None:
    text = SMALL_WORLD.replace('name = "BTC"', 'name = "DOGE"').replace('"BTC"', '"DOGE"')
    text = text.replace("BTC = {", "DOGE = {")
    with pytest.raises(ConfigError, match=r"venues\.cex\.config\.symbols\.DOGE"):
        build_world(WorldScenario.from_toml(text))


def test_aave_borrowers_can_be_shared_traders_with_a_perp_venue() -> None:
    # Arrange: borrowers on Aave (long ETH through their collateral) who also trade the perp
    text = (
        SMALL_WORLD.replace("[[venues]]", ETH_ASSET + "\n[[venues]]", 1)
        + AAVE_VENUE
        + '\n[[shared_traders]]\nvenues = ["lend", "dex"]\ncount = 50\n'
    )
    # Act
    world = build_world(WorldScenario.from_toml(text))
    # Assert: 100 traders on cex and dex, 50 of them also borrowers on Aave (distinct traders)
    frame = world.traders.frame
    assert set(frame[frame["venue"] == "lend"]["account"]) == set(range(50))
    assert len(world.traders.shared()) == 150
    # the trader channel reaches the borrowers through Aave's collateral access
    assert isinstance(world.collateral["lend"], AaveCollateral)
