"""Twin test of quiet stretches: every built-in perp scenario gives the same journal and the
same result hash with the compiled quiet-stretch path on and off (issue #20)."""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest

from deleverage.sim.builtin import builtin_names, builtin_path
from deleverage.sim.runner import Simulation
from deleverage.sim.scenario import Scenario, load_scenario

PERP = [  # the perp engine's scenarios (black-thursday is a CDP one)
    name
    for name in builtin_names()
    if tomllib.loads(builtin_path(name).read_text()).get("kind", "perp") == "perp"
]


def _twin(scenario: Scenario, feedback: bool | None = None) -> tuple[Simulation, Simulation]:
    fast = Simulation(scenario, feedback=feedback, quiet=True)
    slow = Simulation(scenario, feedback=feedback, quiet=False)
    a, b = fast.run(), slow.run()
    ja, jb = a.journal.to_arrow(), b.journal.to_arrow()
    assert ja.num_rows == jb.num_rows
    assert ja.equals(jb), "journals differ"
    assert a.steps.equals(b.steps), "per-step frames differ"
    assert a.result_hash == b.result_hash
    assert np.array_equal(a.final_equity, b.final_equity)  # type: ignore[arg-type]
    return fast, slow


@pytest.mark.parametrize("name", PERP)
def test_builtin_scenarios_identical_with_quiet_stretches(name: str) -> None:
    _twin(load_scenario(builtin_path(name)))


def test_cascade_day_skips_most_steps_and_stays_identical() -> None:
    sys.path.insert(0, str(Path(__file__).parents[2] / "benchmarks"))
    from cascade_day import isolated_scenario  # type: ignore[import-not-found]

    fast, _ = _twin(isolated_scenario(5_000, 1_800.0, 0.05))
    assert fast.quiet is not None
    assert fast.quiet.skipped > 900  # most of the half hour is quiet
    assert fast.quiet.calls > 0  # margin calls made inside stretches (engine.quiet_calls)


def test_counterfactual_twin_identical() -> None:
    """``feedback = false``: the book stays at rest, the dislocation 0."""
    sys.path.insert(0, str(Path(__file__).parents[2] / "benchmarks"))
    from cascade_day import isolated_scenario

    fast, _ = _twin(isolated_scenario(5_000, 1_200.0, 0.05), feedback=False)
    assert fast.quiet is not None
    assert fast.quiet.skipped > 0
