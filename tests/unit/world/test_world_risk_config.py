"""Scenario tables for the risk layers: ``[clearinghouse]``, ``[[backstops]]``, ``[risk_oracle]``
load, build the layers on the world's venues, run, and bad values name their field."""

from __future__ import annotations

import pytest

from deleverage.analytics.world_report import build_world_report
from deleverage.errors import ConfigError
from deleverage.world.backstop import BackstopLayer
from deleverage.world.build import build_world, run_world
from deleverage.world.clearing import ClearingLayer
from deleverage.world.config import WorldScenario
from deleverage.world.risk_oracle import RiskOracleLayer
from scenarios import SMALL_WORLD

RISK = """
[clearinghouse]
member_funds = { cex = 5000.0, dex = 2000.0 }
skin_in_game = 1000.0
stress = [{ name = "crash", shocks = { BTC = -0.2 } }, { name = "rally", shocks = { BTC = 0.2 } }]

[[backstops]]
chain = "arbitrum"
capacity = 2e5
latency_s = 5.0
fee_rate = 0.001
discount = 0.002

[[backstops]]
chain = "base"
capacity = 1e5
latency_s = 20.0

[risk_oracle]
level = 1.0
target = 1.2
"""


def _world_text() -> str:
    # Clearing members pledge their funds: no insurance fund inside either engine.
    text = SMALL_WORLD.replace("insurance_fund = 5000.0", "insurance_fund = 0.0")
    text = text.replace('preset = "hyperliquid"', 'preset = "hyperliquid"\ninsurance_fund = 0.0')
    return text + RISK


def test_the_risk_tables_build_their_layers_and_the_world_runs() -> None:
    scenario = WorldScenario.from_toml(_world_text())
    world = build_world(scenario)
    clearing, backstop, oracle = world.layers
    assert isinstance(clearing, ClearingLayer)
    assert isinstance(backstop, BackstopLayer)
    assert isinstance(oracle, RiskOracleLayer)
    assert clearing.house.members == ("cex", "dex")
    assert backstop.absorb_flow
    assert not backstop.cover_deficits
    assert [p.chain for p in backstop.network.pools] == ["arbitrum", "base"]
    funds = clearing.house.balances()["member_fund"].tolist()
    assert funds == [5000.0, 2000.0]
    world.run()
    # Whatever was handed to the clearinghouse is on one of its lines.
    lines = clearing.house.lines()
    assert lines.total == pytest.approx(sum(s.lines.total for s in clearing.settlements))
    absorbed = sum(world.absorbed.values())
    assert absorbed == pytest.approx(lines.total - lines.bad_debt, abs=1e-6)


def test_the_world_report_shows_each_risk_layers_panels() -> None:
    result = run_world(WorldScenario.from_toml(_world_text()))
    layers = result.extra["layers"]
    assert set(layers) == {"clearinghouse", "backstop", "risk_oracle"}
    page = build_world_report(result)
    for title in ("Clearinghouse waterfall", "standalone funds: bad debt", "Backstop lines",
                  "Risk oracle", "Traders nearest the holistic line"):  # fmt: skip
        assert title in page


@pytest.mark.parametrize(
    ("old", "new", "field"),
    [
        ("member_funds = { cex", "member_funds = { nope = 1.0, cex", "clearinghouse.members"),
        ("shocks = { BTC = -0.2 }", "shocks = { ETH = -0.2 }", r"clearinghouse\.stress\.0"),
        ("shocks = { BTC = -0.2 }", "shocks = { BTC = -1.5 }", "shocks"),
        ('chain = "base"', 'chain = "arbitrum"', "each chain once"),
        ("discount = 0.002", "discount = 1.5", "discount"),
        ("latency_s = 5.0", "latency_s = -5.0", "latency_s"),
        ("target = 1.2", "target = 0.5", r"risk_oracle\.target"),
        ("target = 1.2", "target = 1.2\nspeed = 2", "speed"),
        ("latency_s = 5.0", "latency_s = 5.0\nlatency_blocks = 3", "latency_s or latency_blocks"),
        ("latency_s = 20.0", 'latency_s = 20.0\ncovers = "both"', "same for every pool"),
        ("discount = 0.002", 'discount = 0.002\ncovers = "deficits"', "same for every pool"),
    ],
)
def test_bad_risk_tables_name_the_field(old: str, new: str, field: str) -> None:
    text = _world_text()
    assert old in text
    with pytest.raises(ConfigError, match=field):
        WorldScenario.from_toml(text.replace(old, new))


def test_backstops_that_pay_deficits_are_refused_next_to_a_clearinghouse() -> None:
    text = _world_text().replace("latency_s = 20.0", 'latency_s = 20.0\ncovers = "deficits"')
    text = text.replace("discount = 0.002", 'discount = 0.002\ncovers = "deficits"')
    with pytest.raises(ConfigError, match=r"backstops\.covers"):
        WorldScenario.from_toml(text)


def test_a_clearing_member_with_its_own_fund_is_refused_naming_the_venue_field() -> None:
    scenario = WorldScenario.from_toml(SMALL_WORLD + RISK)
    with pytest.raises(ConfigError, match=r"venues\.cex\.config\.insurance_fund"):
        build_world(scenario)


def test_a_bridge_latency_in_blocks_is_blocks_times_the_block_time() -> None:
    text = _world_text().replace("latency_s = 5.0", "latency_blocks = 3\nblock_time_s = 2.0")
    world = build_world(WorldScenario.from_toml(text))
    backstop = world.layers[1]
    assert isinstance(backstop, BackstopLayer)
    assert [p.latency_s for p in backstop.network.pools] == [6.0, 20.0]


def test_sweeps_can_address_the_risk_tables() -> None:
    scenario = WorldScenario.from_toml(_world_text())
    changed = scenario.with_overrides(
        {"clearinghouse.skin_in_game": 7.0, "risk_oracle.level": 1.1, "backstops.0.capacity": 3.0}
    )
    assert changed.clearinghouse is not None
    assert changed.clearinghouse.skin_in_game == 7.0
    assert changed.risk_oracle is not None
    assert changed.risk_oracle.level == 1.1
    assert changed.backstops[0].capacity == 3.0
