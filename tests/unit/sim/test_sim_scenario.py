"""Scenario files: validation of every table, overrides by dotted path, problems listed at once."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from deleverage.errors import ConfigError, DataError
from deleverage.sim.builtin import builtin_names, builtin_path
from deleverage.sim.cdp_runner import is_cdp_scenario, load_cdp_scenario
from deleverage.sim.checks import scenario_problems
from deleverage.sim.population import Population, PopulationSpec, generate_population
from deleverage.sim.runner import run
from deleverage.sim.scenario import Scenario, load_scenario

ScenarioFactory = Callable[..., Scenario]


MINIMAL_TOML = """
name = "mini"
seed = 4
duration_s = 120

[[markets]]
symbol = "BTCUSDT"
preset = "binance"
price = { process = "gbm", s0 = 60000, sigma = 1.2 }
population = { n_positions = 100 }
"""


def _two_gbm_markets(data: dict[str, Any], correlation: list[list[float]]) -> dict[str, Any]:
    btc = data["markets"][0]
    btc["price"] = {"process": "gbm", "s0": 60_000.0, "sigma": 1.0}
    eth = copy.deepcopy(btc)
    eth["symbol"] = "ETHUSDT"
    eth["price"] = {"process": "gbm", "s0": 3_000.0, "sigma": 1.0}
    data["markets"].append(eth)
    data["correlation"] = correlation
    return data


# ---------------------------------------------------------------------------- loading
def test_minimal_toml_text_loads_with_documented_defaults() -> None:
    # Act
    scenario = Scenario.from_toml(MINIMAL_TOML)

    # Assert: the values given, and the defaults the docstrings state.
    assert scenario.seed == 4
    assert scenario.duration_s == 120.0
    assert scenario.dt_s == 1.0
    assert scenario.feedback is True
    market = scenario.markets[0]
    assert market.liquidity.depth_per_pct == 100.0
    assert market.funding.kind == "none"
    assert scenario.insurance.fund == 1_000_000.0
    assert market.market_spec().symbol == "BTCUSDT"


def test_toml_file_and_text_give_the_same_scenario(tmp_path: Path) -> None:
    # Arrange
    path = tmp_path / "mini.toml"
    path.write_text(MINIMAL_TOML)

    # Act / Assert
    assert load_scenario(str(path)) == Scenario.from_toml(MINIMAL_TOML)
    assert load_scenario(MINIMAL_TOML) == Scenario.from_toml(path)


@pytest.mark.parametrize("name", builtin_names())
def test_every_builtin_scenario_validates(name: str) -> None:
    assert scenario_problems(builtin_path(name)) == []
    if is_cdp_scenario(name):  # a CDP scenario has its own loader (sim/cdp_runner.py)
        assert load_cdp_scenario(name).name == name
        with pytest.raises(ConfigError, match="CDP scenario"):
            load_scenario(name)
    else:
        assert load_scenario(name).name == name


def test_unknown_builtin_name_is_a_config_error_listing_the_builtins() -> None:
    with pytest.raises(ConfigError, match="jump-crash"):
        load_scenario("no-such-scenario")


def test_to_toml_dict_of_a_preset_scenario_round_trips_to_an_equal_scenario() -> None:
    scenario = Scenario.from_toml(MINIMAL_TOML)
    assert Scenario.from_mapping(scenario.to_toml_dict()) == scenario


def test_to_toml_dict_keeps_fields_set_to_none_whose_default_is_not_none(
    scenario_data: dict[str, Any],
) -> None:
    # Arrange: uncapped premium funding (cap None; the default cap is 0.03) on a market given
    # by `spec` (preset None; the default preset is "binance").
    scenario = Scenario.from_mapping(scenario_data).with_overrides(
        {"markets.0.funding": {"kind": "premium", "cap": None}}
    )

    # Act: what RunResult.save writes as scenario.json, read back.
    reloaded = Scenario.from_mapping(scenario.to_toml_dict())

    # Assert: the saved scenario reproduces the run (an uncapped rate stays uncapped).
    assert reloaded.markets[0].funding.cap is None
    assert reloaded.markets[0].preset is None
    assert reloaded == scenario


# ---------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    ("where", "key"),
    [
        ((), "bogus_key"),
        (("markets", 0, "liquidity"), "depth_per_pc"),
        (("agents", "liquidators"), "speed"),
    ],
)
def test_unknown_key_is_rejected_naming_it(
    where: tuple[str | int, ...], key: str, scenario_data: dict[str, Any]
) -> None:
    # Arrange
    data = scenario_data
    data.setdefault("agents", {"liquidators": {}})
    node: Any = data
    for part in where:
        node = node[part]
    node[key] = 1

    # Act / Assert
    with pytest.raises(ConfigError, match=key):
        Scenario.from_mapping(data)


def test_stochastic_price_without_duration_is_rejected_naming_duration(
    scenario_data: dict[str, Any],
) -> None:
    data = scenario_data
    data["markets"][0]["price"] = {"process": "gbm", "s0": 100.0}
    del data["duration_s"]
    with pytest.raises(ConfigError, match="duration_s"):
        Scenario.from_mapping(data)


@pytest.mark.parametrize(
    "correlation",
    [
        [[1.0, 1.5], [1.5, 1.0]],  # entries outside [-1, 1]
        [[1.0, 0.9], [0.8, 1.0]],  # not symmetric
        [[1.0, 0.5], [0.5, 1.0], [0.1, 0.2]],  # wrong shape for two markets
    ],
)
def test_bad_correlation_matrix_is_rejected_naming_correlation(
    correlation: list[list[float]], scenario_data: dict[str, Any]
) -> None:
    with pytest.raises(ConfigError, match="correlation"):
        Scenario.from_mapping(_two_gbm_markets(scenario_data, correlation))


def test_correlation_that_is_not_positive_semidefinite_is_rejected(
    scenario_data: dict[str, Any],
) -> None:
    # Arrange: three markets, each pair within [-1, 1] and symmetric, but with eigenvalue
    # 1 - 2 x 0.9 ... < 0: rho12 = rho13 = 0.9, rho23 = -0.9 is not a correlation matrix.
    data = _two_gbm_markets(scenario_data, [[1.0]])
    sol = copy.deepcopy(data["markets"][1])
    sol["symbol"] = "SOLUSDT"
    data["markets"].append(sol)
    matrix = np.array([[1.0, 0.9, 0.9], [0.9, 1.0, -0.9], [0.9, -0.9, 1.0]])
    assert np.linalg.eigvalsh(matrix).min() < 0  # the premise, independently
    data["correlation"] = matrix.tolist()

    # Act / Assert
    with pytest.raises(ConfigError, match="correlation"):
        Scenario.from_mapping(data)


def test_valid_correlation_is_accepted(scenario_data: dict[str, Any]) -> None:
    scenario = Scenario.from_mapping(_two_gbm_markets(scenario_data, [[1.0, 0.6], [0.6, 1.0]]))
    assert scenario.correlation == ((1.0, 0.6), (0.6, 1.0))


def test_duplicate_market_symbols_are_rejected(scenario_data: dict[str, Any]) -> None:
    data = scenario_data
    data["markets"].append(copy.deepcopy(data["markets"][0]))
    with pytest.raises(ConfigError, match="distinct"):
        Scenario.from_mapping(data)


def test_bad_market_spec_override_names_the_spec_field(scenario_data: dict[str, Any]) -> None:
    data = scenario_data
    data["markets"][0]["spec_overrides"] = {"liquidation": {"kind": "sometimes"}}
    with pytest.raises(ConfigError, match="kind"):
        Scenario.from_mapping(data)


def test_funding_file_with_a_bad_rate_names_the_file_line(
    tmp_path: Path, scenario_data: dict[str, Any]
) -> None:
    # Arrange: header is line 1, the bad rate sits on line 3.
    path = tmp_path / "funding.csv"
    path.write_text("calc_time,last_funding_rate\n1767225600000,0.0001\n1767254400000,not-a-rate\n")
    scenario = Scenario.from_mapping(scenario_data).with_overrides(
        {"markets.0.funding": {"kind": "historical", "file": str(path), "interval_s": 60.0}}
    )

    # Act / Assert
    with pytest.raises(DataError, match=r"line 3.*last_funding_rate"):
        run(scenario)


def _price_file(tmp_path: Path, rows: list[tuple[int, float]]) -> Path:
    path = tmp_path / "bars.csv"
    lines = ["timestamp,open,high,low,close,volume"]
    lines += [f"{ts},{p},{p * 1.01},{p * 0.99},{p},1" for ts, p in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def _historical(data: dict[str, Any], path: Path) -> Scenario:
    data["markets"][0]["price"] = {"process": "historical", "file": str(path)}
    del data["duration_s"]
    return Scenario.from_mapping(data)


def test_price_file_with_a_non_positive_price_names_the_line(
    tmp_path: Path, scenario_data: dict[str, Any]
) -> None:
    # Arrange: third bar (file line 4) has a zero price.
    t0 = 1_767_225_600_000
    path = _price_file(tmp_path, [(t0, 100.0), (t0 + 60_000, 101.0), (t0 + 120_000, 0.0)])

    # Act / Assert
    with pytest.raises(DataError, match=r"line 4.*must be > 0"):
        run(_historical(scenario_data, path))


def test_price_file_with_time_going_backwards_names_the_line(
    tmp_path: Path, scenario_data: dict[str, Any]
) -> None:
    t0 = 1_767_225_600_000
    path = _price_file(tmp_path, [(t0, 100.0), (t0 + 60_000, 101.0), (t0 + 30_000, 102.0)])
    with pytest.raises(DataError, match=r"line 4.*timestamp"):
        run(_historical(scenario_data, path))


def test_price_file_replays_its_closes_from_its_own_start(
    tmp_path: Path, scenario_data: dict[str, Any]
) -> None:
    # Arrange: three one-minute bars; the "close" method starts at the first open, then visits
    # each bar's close at the bar's end.
    t0 = 1_767_225_600_000
    path = _price_file(tmp_path, [(t0, 100.0), (t0 + 60_000, 110.0), (t0 + 120_000, 90.0)])
    data = scenario_data
    data["markets"][0]["price"] = {"process": "historical", "file": str(path), "method": "close"}
    data["markets"][0]["population"] = None
    data["dt_s"] = 60.0
    del data["duration_s"]

    # Act
    steps = run(Scenario.from_mapping(data)).steps

    # Assert
    assert steps["exogenous"].tolist() == pytest.approx([100.0, 100.0, 110.0, 90.0])
    assert int(steps["ts_ns"].iloc[0]) == t0 * 1_000_000


def test_generated_population_never_exceeds_the_market_max_leverage(
    scenario_data: dict[str, Any],
) -> None:
    # Arrange: a median of 500x on a 50x market.
    scenario = Scenario.from_mapping(scenario_data).with_overrides(
        {"markets.0.population.leverage_median": 500.0}
    )
    spec = scenario.market_specs()[0]
    population_spec = scenario.markets[0].population
    assert population_spec is not None

    # Act
    population = generate_population(population_spec, spec, reference_price=60_000.0)

    # Assert: clipped to the tier maximum, so most rows sit exactly at 50x.
    leverage = population.frame["leverage"].to_numpy()
    assert leverage.max() <= 50.0
    assert np.mean(leverage == 50.0) > 0.9


def test_population_frame_with_leverage_above_the_market_max_is_a_data_error(
    scenario_data: dict[str, Any],
) -> None:
    # Arrange: row 1 claims 80x on a 50x market.
    spec = Scenario.from_mapping(scenario_data).market_specs()[0]
    frame = pd.DataFrame(
        {
            "account": [0, 1],
            "size": [0.1, -0.1],
            "entry_price": [60_000.0, 60_000.0],
            "leverage": [10.0, 80.0],
            "margin_mode": ["isolated", "cross"],
            "collateral": [600.0, 75.0],
        }
    )

    # Act / Assert
    with pytest.raises(DataError, match=r"leverage\[1\].*80"):
        Population.from_frame(frame, market=spec)


def test_population_spec_rejects_leverage_median_beyond_its_bound() -> None:
    with pytest.raises(ConfigError, match="leverage_median"):
        PopulationSpec(n_positions=10, leverage_median=5_000.0)


# ---------------------------------------------------------------------------- overrides
def test_with_overrides_replaces_values_by_dotted_path(make_scenario: ScenarioFactory) -> None:
    # Act
    scenario = make_scenario(
        {
            "markets.0.liquidity.depth_per_pct": 5.0,
            "insurance.fund": 1e6,
            "markets.0.price.drop_fraction": 0.2,
            "markets.0.spec_overrides.liquidation_fee_rate": 0.01,
            "seed": 3,
        }
    )

    # Assert
    assert scenario.markets[0].liquidity.depth_per_pct == 5.0
    assert scenario.insurance.fund == 1e6
    assert scenario.markets[0].price.drop_fraction == 0.2  # type: ignore[union-attr]
    assert scenario.market_specs()[0].liquidation_fee_rate == 0.01
    assert scenario.seed == 3


def test_with_overrides_leaves_the_original_unchanged(make_scenario: ScenarioFactory) -> None:
    original = make_scenario()
    original.with_overrides({"insurance.fund": 5.0})
    assert original.insurance.fund == 100_000.0


@pytest.mark.parametrize(
    "path",
    [
        "markets.0.liquidity.depth",  # no such field
        "insurance.size",  # no such field
        "markets.4.liquidity.depth_per_pct",  # no such market
        "nonsense",
    ],
)
def test_with_overrides_on_an_unknown_path_names_the_path(
    make_scenario: ScenarioFactory, path: str
) -> None:
    scenario = make_scenario()
    with pytest.raises(ConfigError, match=path.replace(".", r"\.")):
        scenario.with_overrides({path: 1.0})


def test_with_overrides_to_an_invalid_value_is_rejected(make_scenario: ScenarioFactory) -> None:
    scenario = make_scenario()
    with pytest.raises(ConfigError, match="depth_per_pct"):
        scenario.with_overrides({"markets.0.liquidity.depth_per_pct": -5.0})


# ---------------------------------------------------------------------------- problems
def test_scenario_problems_is_empty_for_a_valid_document(scenario_data: dict[str, Any]) -> None:
    assert scenario_problems(scenario_data) == []
    assert scenario_problems(MINIMAL_TOML) == []


def test_scenario_problems_reports_invalid_toml_and_missing_file(tmp_path: Path) -> None:
    assert scenario_problems("name = ")[0].startswith("toml:")
    missing = scenario_problems(str(tmp_path / "none.toml"))
    assert len(missing) == 1
    assert "none.toml" in missing[0]


def test_scenario_problems_lists_several_problems_at_once(scenario_data: dict[str, Any]) -> None:
    # Arrange: three independent problems in three tables.
    data = scenario_data
    data["bogus_key"] = 1
    data["markets"][0]["liquidity"]["depth_per_pct"] = -1.0
    data["insurance"]["fund"] = -5.0

    # Act
    problems = scenario_problems(data)

    # Assert: one line per problem, each naming its field ("field: rule (was value)").
    assert len(problems) == 3, problems
    text = "\n".join(problems)
    for field in ("bogus_key", "depth_per_pct", "fund"):
        assert field in text


def test_scenario_problems_reports_a_preset_symbol_the_venue_does_not_list(
    scenario_data: dict[str, Any],
) -> None:
    # Arrange: Binance's preset knows BTCUSDT only.
    market = scenario_data["markets"][0]
    market.pop("spec")
    market["preset"] = "binance"
    market["symbol"] = "DOGEUSDT"

    # Act
    problems = scenario_problems(scenario_data)

    # Assert: listed as a problem (not raised), naming the symbol.
    assert len(problems) == 1
    assert "DOGEUSDT" in problems[0]
