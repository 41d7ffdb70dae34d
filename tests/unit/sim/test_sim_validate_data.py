"""What ``scenario_problems`` finds beyond the schema, and override paths into market specs."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from deleverage.errors import ConfigError
from deleverage.sim.checks import scenario_problems
from deleverage.sim.scenario import Scenario


def test_a_missing_price_file_is_a_problem(scenario_data: dict[str, Any], tmp_path: Path) -> None:
    data = scenario_data
    data["markets"][0]["price"] = {"process": "historical", "file": str(tmp_path / "no.csv")}

    problems = scenario_problems(data)

    assert len(problems) == 1
    assert problems[0].startswith("markets.0.price:")
    assert "no.csv" in problems[0]


def test_a_non_stationary_garch_is_a_problem(scenario_data: dict[str, Any]) -> None:
    data = scenario_data
    data["markets"][0]["price"] = {"process": "garch", "s0": 100.0, "alpha": 0.5, "beta": 0.6}

    problems = scenario_problems(data)

    assert problems == [
        "markets.0.price: `alpha + beta` must be < 1 (covariance-stationary GARCH(1,1)), was 1.1"
    ]


def test_every_market_with_a_data_problem_is_listed(scenario_data: dict[str, Any]) -> None:
    data = scenario_data
    second = copy.deepcopy(data["markets"][0])
    second["symbol"] = "ETHUSDT"
    second["funding"] = {"kind": "historical", "bundled": "DOGEUSDT"}
    data["markets"][0]["price"] = {"process": "garch", "s0": 100.0, "alpha": 0.5, "beta": 0.6}
    data["markets"].append(second)

    problems = scenario_problems(data)

    assert [p.split(":")[0] for p in problems] == ["markets.0.price", "markets.1.funding"]
    assert "DOGEUSDT" in problems[1]


def test_correlation_with_a_market_that_has_its_own_path_is_refused(
    scenario_data: dict[str, Any],
) -> None:
    data = scenario_data
    second = copy.deepcopy(data["markets"][0])
    second["symbol"] = "ETHUSDT"
    second["price"] = {"process": "gbm", "s0": 3000.0}
    data["markets"].append(second)  # market 0 is a shock ramp: not drawn jointly
    data["correlation"] = [[1.0, 0.5], [0.5, 1.0]]

    with pytest.raises(ConfigError, match=r"correlation\[0\]\[1\]"):
        Scenario.from_mapping(data)


def test_correlation_zero_with_such_a_market_is_fine(scenario_data: dict[str, Any]) -> None:
    data = scenario_data
    second = copy.deepcopy(data["markets"][0])
    second["symbol"] = "ETHUSDT"
    data["markets"].append(second)
    data["correlation"] = [[1.0, 0.0], [0.0, 1.0]]

    assert len(Scenario.from_mapping(data).markets) == 2


@pytest.mark.parametrize(
    ("path", "ok"),
    [
        ("markets.0.spec_overrides.liquidation.kind", True),
        ("markets.0.spec_overrides.liquidation_fee_rate", True),
        ("markets.0.spec_overrides.liquidation.kindd", False),
        ("markets.0.spec_overrides.tiers.5.maintenance_rate", False),
        ("markets.0.spec_overrides.tiers.0.maintenance_rate", True),
    ],
)
def test_override_paths_into_the_spec_must_name_spec_fields(
    scenario_data: dict[str, Any], path: str, ok: bool
) -> None:
    scenario = Scenario.from_mapping(scenario_data)
    if ok:
        scenario.check_override_path(path)
    else:
        with pytest.raises(ConfigError, match="must name a field of the market spec"):
            scenario.check_override_path(path)


def test_a_population_file_is_loaded_instead_of_drawn(
    scenario_data: dict[str, Any], tmp_path: Path
) -> None:
    # Arrange: draw the book once through a run, save it, then run from the file.
    from deleverage.sim.runner import run

    drawn = run(Scenario.from_mapping(scenario_data))
    population = drawn.populations["BTCUSDT"]
    path = tmp_path / "book.parquet"
    population.to_parquet(path)
    data = copy.deepcopy(scenario_data)
    data["markets"][0].pop("population")
    data["markets"][0]["population_file"] = str(path)

    # Act
    loaded = run(Scenario.from_mapping(data))

    # Assert: the same positions, so the same run.
    assert loaded.populations["BTCUSDT"].frame.equals(population.frame)
    assert loaded.summary["liquidations"] == drawn.summary["liquidations"]
    assert loaded.steps["mark"].equals(drawn.steps["mark"])


def test_population_and_population_file_together_are_refused(
    scenario_data: dict[str, Any],
) -> None:
    scenario_data["markets"][0]["population_file"] = "book.parquet"

    problems = scenario_problems(scenario_data)

    assert any("not both" in p for p in problems), problems


def test_shock_noise_is_driftless_gbm_around_the_ramp(scenario_data: dict[str, Any]) -> None:
    # A 0% ramp with noise: the path's log returns have the GBM variance sigma^2 dt.
    import numpy as np

    from deleverage.prices import SECONDS_PER_YEAR
    from deleverage.sim.paths import scenario_paths

    price = {"process": "shock", "s0": 100.0, "drop_fraction": 0.0, "sigma": 2.0}
    data = {**scenario_data, "duration_s": 20_000.0}
    data["markets"][0]["price"] = price
    path, _ = scenario_paths(Scenario.from_mapping(data), np.random.default_rng(3))
    r = np.diff(np.log(path[:, 0]))
    expected = 2.0**2 / SECONDS_PER_YEAR
    assert np.var(r) == pytest.approx(expected, rel=0.05)  # 20,000 draws: ~1% sampling error


def test_a_gap_in_a_price_file_is_reported_with_its_line(tmp_path: Path) -> None:
    from deleverage.sim.runner import run

    csv = tmp_path / "gap.csv"
    csv.write_text(
        "timestamp,open,high,low,close,volume\n"
        "2025-01-01 00:00:00,100,101,99,100,1\n"
        "2025-01-01 00:01:00,100,101,99,100,1\n"
        "2025-01-01 00:04:00,100,101,90,92,1\n"  # 00:02 and 00:03 missing
        "2025-01-01 00:05:00,92,93,91,92,1\n"
    )
    scenario = Scenario.from_mapping(
        {
            "markets": [
                {
                    "price": {"process": "historical", "file": str(csv)},
                    "population": {"n_positions": 50},
                }
            ]
        }
    )

    result = run(scenario)

    assert result.warnings == [
        f"markets.0.price: {csv} line 4: 2 bar(s) missing before it (the path interpolates "
        "across the gap)"
    ]
