"""``deleverage --version``, ``python -m deleverage``, ``init`` and ``population``."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cli_contract import assert_contract, call
from deleverage import __version__
from deleverage.sim.population import Population
from deleverage.sim.runner import Simulation
from deleverage.sim.scenario import load_scenario
from deleverage.sweep import load_experiment


def test_version_is_the_one_in_pyproject() -> None:
    pyproject = tomllib.loads((Path(__file__).parents[3] / "pyproject.toml").read_text())

    outcome = call("--version")

    assert outcome.code == 0
    assert outcome.out.strip() == f"deleverage {__version__}"
    # pyproject reads the version from the package (one source): dynamic, not written twice
    assert "version" in pyproject["project"]["dynamic"]
    assert pyproject["tool"]["setuptools"]["dynamic"]["version"] == {
        "attr": "deleverage.__version__"
    }


def test_python_dash_m_deleverage_prints_the_version() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "deleverage", "--version"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"deleverage {__version__}"


def test_init_writes_a_scenario_and_experiment_that_validate_as_written(tmp_path: Path) -> None:
    # Act
    outcome = call("init", str(tmp_path / "study"))
    checked = call("validate", str(tmp_path / "study" / "scenario.toml"))

    # Assert
    assert outcome.code == 0, outcome.text
    assert checked.code == 0, checked.text
    scenario_text = (tmp_path / "study" / "scenario.toml").read_text()
    assert scenario_text.count("#") >= 10  # commented
    experiment = load_experiment(tmp_path / "study" / "experiment.toml")
    base = experiment.check()
    assert base.name == "my-scenario"
    assert len(experiment.cells()) == 4


def test_init_refuses_to_overwrite_without_force(tmp_path: Path) -> None:
    (tmp_path / "scenario.toml").write_text("mine")

    refused = call("init", str(tmp_path))
    forced = call("init", str(tmp_path), "--force")

    assert refused.code == 2
    assert_contract(refused, names=("scenario.toml", "--force"))
    assert forced.code == 0
    assert (tmp_path / "scenario.toml").read_text().startswith("# A deleverage scenario")


def test_population_writes_the_rows_the_runner_draws(tmp_path: Path) -> None:
    # Arrange
    out = tmp_path / "population.parquet"
    scenario = load_scenario("gbm-stress")
    expected = Simulation(scenario).populations["BTCUSDT"].frame

    # Act
    outcome = call("population", "gbm-stress", "--out", str(out))

    # Assert: the same rows, and a file the population reader accepts as is.
    assert outcome.code == 0, outcome.text
    written = pd.read_parquet(out)
    pd.testing.assert_frame_equal(written, expected.reset_index(drop=True), check_dtype=False)
    again = Population.from_parquet(out, market=scenario.market_specs()[0])
    np.testing.assert_array_equal(again.frame["size"], expected["size"])


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (["--out", "x.csv"], "`--out`"),
        (["--out", "p.parquet", "--market", "ETHUSDT"], "`--market`"),
    ],
)
def test_population_bad_input_exits_2(tmp_path: Path, args: list[str], field: str) -> None:
    argv = [a if not a.endswith((".csv", ".parquet")) else str(tmp_path / a) for a in args]

    outcome = call("population", "gbm-stress", *argv)

    assert outcome.code == 2
    assert_contract(outcome, names=(field,))
    assert list(tmp_path.iterdir()) == []
