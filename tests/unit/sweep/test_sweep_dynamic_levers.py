"""The bundled dynamic-margin experiment: a sweep over the venue's dynamic levers shows their
effect on liquidations, the loss beyond collateral and bad debt, with 95% intervals."""

from __future__ import annotations

import math
import tomllib
from importlib import resources
from pathlib import Path

import pytest

from deleverage.sweep.executors import LocalExecutor, run_sweep
from deleverage.sweep.experiment import Experiment, load_experiment
from deleverage.sweep.report import aggregate
from deleverage.sweep.results import read_results

EXPERIMENT = resources.files("deleverage") / "data" / "experiments" / "dynamic-margin-levers.toml"


def test_the_bundled_lever_experiment_is_valid() -> None:
    # Act
    experiment = load_experiment(str(EXPERIMENT))
    base = experiment.check()

    # Assert: 3 caps x 2 depth exponents x 2 volatility references, 4 seeds each
    assert base.name == "dynamic-margin"
    assert len(experiment.cells()) == 12
    assert len(experiment.tasks()) == 48
    assert base.markets[0].dynamic is not None


@pytest.mark.slow
def test_a_higher_margin_cap_cuts_the_loss_beyond_collateral_across_seeds(
    tmp_path: Path,
) -> None:
    # Arrange: the bundled experiment with two caps (1: dynamic margin off; 3) and 3 seeds,
    # the same seeds in both cells (common random numbers), so runs pair up by replicate.
    data = tomllib.loads(Path(str(EXPERIMENT)).read_text(encoding="utf-8"))
    data["seeds_per_cell"] = 3
    data["common_random_numbers"] = True
    data["parameters"] = {
        "cap": {"path": "markets.0.dynamic.max_multiplier", "values": [1.0, 3.0]},
    }
    data["report"] = {"policy": "cap"}
    experiment = Experiment.from_mapping(data)

    # Act
    summary = run_sweep(experiment, tmp_path / "sweep", executor=LocalExecutor(1))
    frame = read_results(tmp_path / "sweep")

    # Assert: every run done, an interval per cell ...
    assert summary.errors == 0
    shortfall = aggregate(frame, ["cap"], "shortfall").set_index("cap")
    liquidations = aggregate(frame, ["cap"], "liquidations").set_index("cap")
    assert (shortfall["n"] == 3).all()
    assert all(math.isfinite(h) for h in shortfall["half_width"])
    # ... margin that rises with volatility liquidates earlier: more positions close, each
    # with less left to lose, so the loss beyond collateral falls, in every paired seed.
    assert liquidations.loc[3.0, "mean"] >= liquidations.loc[1.0, "mean"]
    assert shortfall.loc[3.0, "mean"] < shortfall.loc[1.0, "mean"]
    by_seed = frame.pivot_table(index="replicate", columns="cap", values="shortfall")
    assert (by_seed[3.0] <= by_seed[1.0]).all()
