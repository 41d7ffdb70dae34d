"""Twin test of the single-mark quiet fast path of ``Exchange.set_mark`` (issue #20): every
built-in perp scenario, a cascade and the perp venues of a world give the same journal and the
same result hash with the fast path on and off."""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest

from deleverage.engine import quiet_mark
from deleverage.sim.builtin import builtin_names, builtin_path
from deleverage.sim.runner import RunResult, Simulation
from deleverage.sim.scenario import Scenario, load_scenario

PERP = [
    name
    for name in builtin_names()
    if tomllib.loads(builtin_path(name).read_text()).get("kind", "perp") == "perp"
]


def _run(
    scenario: Scenario, *, fast: bool, monkeypatch: pytest.MonkeyPatch
) -> tuple[Simulation, RunResult]:
    monkeypatch.setattr(quiet_mark, "DEFAULT_ENABLED", fast)
    sim = Simulation(scenario, quiet=False)  # every mark through set_mark, one at a time
    result = sim.run()
    assert sim.ex.quiet_marks.enabled is fast
    return sim, result


def _twin(scenario: Scenario, monkeypatch: pytest.MonkeyPatch) -> Simulation:
    fast, a = _run(scenario, fast=True, monkeypatch=monkeypatch)
    slow, b = _run(scenario, fast=False, monkeypatch=monkeypatch)
    ja, jb = a.journal.to_arrow(), b.journal.to_arrow()
    assert ja.num_rows == jb.num_rows
    assert ja.equals(jb), "journals differ"
    assert a.steps.equals(b.steps), "per-step frames differ"
    assert a.result_hash == b.result_hash
    assert a.final_equity is not None
    assert b.final_equity is not None
    assert np.array_equal(a.final_equity, b.final_equity)
    assert fast.ex.state_hash() == slow.ex.state_hash()
    assert slow.ex.quiet_marks.fast == 0
    return fast


@pytest.mark.parametrize("name", PERP)
def test_builtin_scenarios_identical_with_the_quiet_mark_path(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _twin(load_scenario(builtin_path(name)), monkeypatch)


def test_a_cascade_takes_the_fast_path_and_stays_identical(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sys.path.insert(0, str(Path(__file__).parents[2] / "benchmarks"))
    from cascade_day import isolated_scenario  # type: ignore[import-not-found]

    fast = _twin(isolated_scenario(5_000, 1_800.0, 0.05), monkeypatch)
    marks = fast.ex.quiet_marks
    assert marks.fast > 900  # most of the half hour is quiet
    assert marks.full > 0  # and the cascade is not
