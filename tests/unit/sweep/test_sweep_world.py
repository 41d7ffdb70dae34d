"""Sweeps over worlds: parameters address a venue by name, metrics are the world's and each
venue's; single-venue-only settings are refused naming the field."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from deleverage.errors import ConfigError
from deleverage.sweep import LocalExecutor, run_sweep
from deleverage.sweep.experiment import Experiment
from deleverage.sweep.results import read_results
from scenarios import SMALL_WORLD


def _experiment(**fields: object) -> Experiment:
    data: dict[str, object] = {
        "name": "world-sweep",
        "base": tomllib.loads(SMALL_WORLD),
        "parameters": {
            "fund": {"path": "venues.cex.config.insurance_fund", "values": [100.0, 1e7]}
        },
        "metrics": ["liquidations", "venues.cex.insurance_paid", "venues.cex.bad_debt"],
    }
    data.update(fields)
    return Experiment.from_mapping(data)


def test_a_world_sweep_sets_a_venue_parameter_by_name(tmp_path: Path) -> None:
    # Act
    summary = run_sweep(_experiment(), tmp_path / "out", executor=LocalExecutor(0))
    rows = read_results(tmp_path / "out").sort_values("fund")
    # Assert: no errors; the small fund pays at most its size, the large one leaves no bad debt
    assert summary.errors == 0
    assert rows["error"].isna().all()
    small, large = rows.iloc[0], rows.iloc[1]
    assert small["venues.cex.insurance_paid"] <= 100.0 + 1e-9
    assert large["venues.cex.bad_debt"] == 0.0
    assert large["venues.cex.insurance_paid"] >= small["venues.cex.insurance_paid"]


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"metrics": ["adl_notional"]}, "metrics"),
        ({"metrics": ["venues.nowhere.bad_debt"]}, "metrics"),
        ({"feedback_twin": True, "metrics": ["liquidations"]}, "feedback_twin"),
        (
            {
                "parameters": {
                    "x": {"path": "venues.nowhere.config.insurance_fund", "values": [1.0]}
                }
            },
            "parameters.x.path",
        ),
    ],
)
def test_bad_world_experiments_are_refused_naming_the_field(
    fields: dict[str, object], field: str
) -> None:
    with pytest.raises(ConfigError, match=field):
        _experiment(**fields).check()
