"""Exogenous price paths of a scenario: grid, closed forms, correlation, history."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from deleverage.errors import ConfigError
from deleverage.sim.paths import DEFAULT_START_NS, scenario_paths
from deleverage.sim.runner import run
from deleverage.sim.scenario import Scenario

ScenarioFactory = Callable[..., Scenario]

#: 365 days in seconds: the year that annualizes mu and sigma (deleverage.prices.processes).
YEAR_S = 365 * 86_400.0


def _paths(scenario: Scenario, seed: int = 0) -> tuple[np.ndarray, int]:
    return scenario_paths(scenario, np.random.default_rng(seed))


def test_grid_has_floor_duration_over_dt_steps_plus_the_start(
    make_scenario: ScenarioFactory,
) -> None:
    path, start_ns = _paths(make_scenario({"duration_s": 100.5, "dt_s": 2.0}))
    assert path.shape == (51, 1)  # floor(100.5 / 2) = 50 steps
    assert start_ns == DEFAULT_START_NS


def test_duration_shorter_than_one_step_is_rejected(make_scenario: ScenarioFactory) -> None:
    with pytest.raises(ConfigError, match="duration_s"):
        _paths(make_scenario({"duration_s": 0.5, "dt_s": 1.0}))


@pytest.mark.parametrize("shape", ["linear", "log"])
def test_shock_path_matches_its_closed_form(make_scenario: ScenarioFactory, shape: str) -> None:
    # Arrange: 60,000 flat until 30 s, down 4% over 60 s, flat after.
    path, _ = _paths(make_scenario({"markets.0.price.shape": shape}))
    t = np.arange(201.0)
    f = np.clip((t - 30.0) / 60.0, 0.0, 1.0)

    # Act
    expected = 60_000.0 * (1 - 0.04 * f) if shape == "linear" else 60_000.0 * 0.96**f

    # Assert
    np.testing.assert_allclose(path[:, 0], expected, rtol=1e-12)


def test_gbm_without_volatility_is_the_exponential_of_the_drift(
    make_scenario: ScenarioFactory,
) -> None:
    # Arrange: S(t) = s0 exp(mu t), t in years of 365 days.
    scenario = make_scenario(
        {"markets.0.price": {"process": "gbm", "s0": 100.0, "mu": 500.0, "sigma": 0.0}}
    )

    # Act
    path, _ = _paths(scenario)

    # Assert
    t_years = np.arange(201.0) / YEAR_S
    np.testing.assert_allclose(path[:, 0], 100.0 * np.exp(500.0 * t_years), rtol=1e-12)


def test_stochastic_paths_repeat_with_the_generator_seed(make_scenario: ScenarioFactory) -> None:
    scenario = make_scenario({"markets.0.price": {"process": "gbm", "s0": 100.0, "sigma": 2.0}})
    first, _ = _paths(scenario, seed=5)
    again, _ = _paths(scenario, seed=5)
    other, _ = _paths(scenario, seed=6)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)


def test_gbm_log_returns_have_the_annualized_volatility(make_scenario: ScenarioFactory) -> None:
    # Arrange: sigma 2.0 a year over 20,000 one-second steps.
    scenario = make_scenario(
        {"duration_s": 20_000.0, "markets.0.price": {"process": "gbm", "s0": 100.0, "sigma": 2.0}}
    )

    # Act
    path, _ = _paths(scenario)
    returns = np.diff(np.log(path[:, 0]))

    # Assert: std = sigma sqrt(dt), within 4 standard errors (se = std / sqrt(2n)).
    expected = 2.0 * np.sqrt(1.0 / YEAR_S)
    assert abs(returns.std() / expected - 1.0) < 4.0 / np.sqrt(2 * len(returns))


def test_correlated_markets_have_the_requested_return_correlation(
    scenario_data: dict[str, Any],
) -> None:
    # Arrange: two GBM markets, correlation 0.8, 5,000 steps.
    btc = scenario_data["markets"][0]
    btc["price"] = {"process": "gbm", "s0": 60_000.0, "sigma": 1.0}
    eth = copy.deepcopy(btc)
    eth["symbol"] = "ETHUSDT"
    eth["price"] = {"process": "gbm", "s0": 3_000.0, "sigma": 1.5}
    scenario_data["markets"].append(eth)
    scenario_data["correlation"] = [[1.0, 0.8], [0.8, 1.0]]
    scenario_data["duration_s"] = 5_000.0

    # Act
    path, _ = _paths(Scenario.from_mapping(scenario_data))
    returns = np.diff(np.log(path), axis=0)

    # Assert: the sample correlation's standard error is about (1 - rho^2) / sqrt(n) = 0.005.
    assert path.shape == (5_001, 2)
    assert np.corrcoef(returns.T)[0, 1] == pytest.approx(0.8, abs=0.03)
    assert path[0].tolist() == [60_000.0, 3_000.0]


@pytest.mark.parametrize(
    "price",
    [
        {"process": "garch", "s0": 100.0, "sigma": 1.0},
        {"process": "regime", "s0": 100.0},
        {"process": "merton", "s0": 100.0, "jump_intensity": 1e5},
    ],
)
def test_every_stochastic_process_gives_a_positive_finite_path_from_s0(
    make_scenario: ScenarioFactory, price: dict[str, Any]
) -> None:
    path, _ = _paths(make_scenario({"markets.0.price": price}))
    assert path.shape == (201, 1)
    assert path[0, 0] == 100.0
    assert np.isfinite(path).all()
    assert (path > 0).all()


def _bars(tmp_path: Path, name: str, closes: list[float]) -> Path:
    path = tmp_path / name
    t0 = 1_767_225_600_000
    lines = ["timestamp,open,high,low,close,volume"]
    lines += [f"{t0 + 60_000 * i},{c},{c},{c},{c},1" for i, c in enumerate(closes)]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_history_sets_the_length_and_the_clock_when_no_duration_is_given(
    tmp_path: Path, scenario_data: dict[str, Any]
) -> None:
    # Arrange: one market replays four one-minute bars (five points at dt = 60 s), the other
    # six; the shorter one sets the run's length.
    btc = scenario_data["markets"][0]
    btc["price"] = {"process": "historical", "file": str(_bars(tmp_path, "a.csv", [1.0] * 4))}
    eth = copy.deepcopy(btc)
    eth["symbol"] = "ETHUSDT"
    eth["price"] = {"process": "historical", "file": str(_bars(tmp_path, "b.csv", [2.0] * 6))}
    scenario_data["markets"].append(eth)
    scenario_data["dt_s"] = 60.0
    del scenario_data["duration_s"]

    # Act
    path, start_ns = _paths(Scenario.from_mapping(scenario_data))

    # Assert
    assert path.shape == (5, 2)
    assert start_ns == 1_767_225_600_000 * 1_000_000


def test_history_shorter_than_the_duration_holds_its_last_price(
    tmp_path: Path, scenario_data: dict[str, Any]
) -> None:
    # Arrange: three bars closing 100, 110, 90, replayed for ten minutes.
    file = _bars(tmp_path, "a.csv", [100.0, 110.0, 90.0])
    scenario_data["markets"][0]["price"] = {
        "process": "historical", "file": str(file), "method": "close",
    }  # fmt: skip
    scenario_data["dt_s"] = 60.0
    scenario_data["duration_s"] = 600.0

    # Act
    path, _ = _paths(Scenario.from_mapping(scenario_data))

    # Assert
    assert path[:, 0].tolist() == [100.0, 100.0, 110.0, 90.0] + [90.0] * 7


def test_scale_to_rescales_a_replayed_crash(tmp_path: Path, scenario_data: dict[str, Any]) -> None:
    file = _bars(tmp_path, "a.csv", [100.0, 110.0, 90.0])
    scenario_data["markets"][0]["price"] = {
        "process": "historical", "file": str(file), "method": "close", "scale_to": 50.0,
    }  # fmt: skip
    scenario_data["dt_s"] = 60.0
    del scenario_data["duration_s"]
    path, _ = _paths(Scenario.from_mapping(scenario_data))
    assert path[:, 0].tolist() == pytest.approx([50.0, 50.0, 55.0, 45.0])


def test_a_shock_the_scenario_accepts_is_one_the_runner_can_run(
    make_scenario: ScenarioFactory,
) -> None:
    # Arrange: ShockPrice.drop_fraction admits (-10, 1), a negative value being a rise (a
    # squeeze). Either the scenario rejects it up front, or the run replays the rise.
    try:
        scenario = make_scenario({"markets.0.price.drop_fraction": -0.06})
    except ConfigError:
        return  # rejected when loaded, naming the field: consistent

    # Act
    steps = run(scenario).steps

    # Assert
    assert steps["exogenous"].iloc[-1] == pytest.approx(60_000.0 * 1.06)


# ---------------------------------------------------------------------------- common jump beta
def _beta_scenario(beta: Any) -> Scenario:
    def market(symbol: str) -> dict[str, Any]:
        return {
            "symbol": symbol, "preset": "binance", "preset_symbol": "BTCUSDT",
            "price": {"process": "merton", "s0": 100.0, "sigma": 0.0, "jump_intensity": 0.0},
        }  # fmt: skip

    return Scenario.from_mapping(
        {
            "duration_s": 3_600.0,
            "markets": [market("BTCUSDT"), market("SOLUSDT")],
            "common_jumps": {"intensity": 50_000.0, "mean": -0.02, "std": 0.01, "beta": beta},
        }
    )


def test_common_jumps_scale_by_each_markets_beta() -> None:
    # Arrange: no diffusion, no own jumps: each log return is the compensator plus the common
    # jump times beta, so r_2 - 2.5 r_1 is the same every step (the compensators' difference).
    path, _ = _paths(_beta_scenario([1.0, 2.5]), seed=4)
    r = np.diff(np.log(path), axis=0)
    dt = 1.0 / YEAR_S
    lam, m, s = 50_000.0, -0.02, 0.01
    kappa = [np.expm1(b * m + 0.5 * (b * s) ** 2) for b in (1.0, 2.5)]

    # Act
    residual = r[:, 1] - 2.5 * r[:, 0]

    # Assert
    assert np.count_nonzero(r[:, 0] < 0.0) > 3  # jumps happened (about 5.7 expected)
    expected = -lam * dt * (kappa[1] - 2.5 * kappa[0])
    np.testing.assert_allclose(residual, expected, rtol=0, atol=1e-12)


def test_common_jump_beta_needs_one_entry_per_market() -> None:
    with pytest.raises(ConfigError, match=r"common_jumps\.beta"):
        _beta_scenario([1.0])
