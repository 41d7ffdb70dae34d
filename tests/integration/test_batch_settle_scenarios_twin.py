"""Twin test of the batch settlement (``engine/risk/batch_settle.py``) on scenarios: every
built-in perp scenario and a small cascade day give the same journal, per-step frame and
result hash with the round settled in one kernel and one journal batch and with the separate
batches it replaced (``batch_settle.ENABLED = False``)."""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path

import pytest

from batch_twins import assert_same_results
from deleverage.engine.risk import batch_settle
from deleverage.sim.builtin import builtin_names, builtin_path
from deleverage.sim.runner import RunResult, Simulation
from deleverage.sim.scenario import Scenario, load_scenario

PERP = [  # the perp engine's scenarios (black-thursday is a CDP one)
    name
    for name in builtin_names()
    if tomllib.loads(builtin_path(name).read_text()).get("kind", "perp") == "perp"
]


def _run(scenario: Scenario, enabled: bool) -> RunResult:
    previous = batch_settle.ENABLED
    batch_settle.ENABLED = enabled
    try:
        return Simulation(scenario).run()
    finally:
        batch_settle.ENABLED = previous


def _twin(scenario: Scenario) -> RunResult:
    fast, slow = _run(scenario, True), _run(scenario, False)
    assert_same_results(fast, slow)
    return fast


@pytest.mark.parametrize("name", PERP)
def test_builtin_scenarios_identical_with_the_batch_settlement(name: str) -> None:
    _twin(load_scenario(builtin_path(name)))


def test_a_cascade_day_identical_with_the_batch_settlement() -> None:
    sys.path.insert(0, str(Path(__file__).parents[2] / "benchmarks"))
    from cascade_day import isolated_scenario  # type: ignore[import-not-found]

    result = _twin(isolated_scenario(5_000, 1_800.0, 0.05))
    assert result.summary["liquidations"] > 50  # the batch path settled rounds
