"""CDP scenarios (sim/cdp_runner.py): loading, the price path, reproducibility, the frames."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from deleverage.errors import ConfigError
from deleverage.prices.historical import bundled_crash
from deleverage.sim.cdp_runner import (
    CDP_STEP_COLUMNS,
    CdpScenario,
    _path,
    cdp_scenario_problems,
    load_cdp_scenario,
    run_cdp,
)


def _small(**changes: Any) -> CdpScenario:
    data = load_cdp_scenario("black-thursday").model_dump()
    data["population"]["n_vaults"] = 60
    data["prices"]["step_s"] = 900.0
    for key, value in changes.items():
        data[key] = value
    return CdpScenario.model_validate(data)


def test_the_same_scenario_gives_the_same_frames() -> None:
    first, second = run_cdp(_small()), run_cdp(_small())
    assert first.result_hash == second.result_hash
    assert tuple(first.steps.columns) == CDP_STEP_COLUMNS
    assert set(first.steps["design"]) == {"english", "dutch"}


def test_both_designs_see_the_same_path_and_oracle() -> None:
    result = run_cdp(_small())
    english = result.steps[result.steps["design"] == "english"]
    dutch = result.steps[result.steps["design"] == "dutch"]
    np.testing.assert_array_equal(english["market_price"], dutch["market_price"])
    np.testing.assert_array_equal(english["osm_price"], dutch["osm_price"])


def test_the_path_caps_the_bad_tick_and_keeps_the_lows() -> None:
    scenario = load_cdp_scenario("black-thursday")
    bars = bundled_crash("ethusdt-1h-2020-03-11").frame
    path, _ = _path(scenario.prices)
    assert bars["high"].max() == 323.0  # the bad tick of 2020-03-13 02:00 (SOURCE.md)
    assert path.max() < 230.0  # capped at 1.1 x max(open, close)
    assert path.min() == pytest.approx(bars["low"].min())  # 84.23, sampled at T/4 or T/2
    assert len(path) == 96 * 3600 // 30 + 1


def test_a_design_named_twice_is_a_problem() -> None:
    data = load_cdp_scenario("black-thursday").model_dump()
    data["designs"] = ["dutch", "dutch"]
    problems = cdp_scenario_problems(data)
    assert len(problems) == 1
    assert "designs must not repeat" in problems[0]


def test_a_population_below_the_liquidation_ratio_is_refused() -> None:
    data = load_cdp_scenario("black-thursday").model_dump()
    data["population"]["ratio_median"] = 1.2
    with pytest.raises(ConfigError, match="ratio_median"):
        CdpScenario.from_mapping(data)
