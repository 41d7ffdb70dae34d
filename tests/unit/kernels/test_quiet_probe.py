"""The first-step probe of stretch tries (:mod:`deleverage.engine.quiet_probe`).

- Its claim, audited over a cascade half-hour: every try it refuses (a position under
  maintenance at the first step's marks) is made anyway, and stops at its first step; the
  probe refuses many tries there.
- The run with the probe equals the run without it and the step-by-step run (journal,
  per-step frame, result hash): it only decides whether a try is made.
- A probe that answers at the wrong marks (0.2 % low) is caught by the audit.
- The same for the cross accounts' probe (:func:`.quiet_probe.cross_liquidates_first`) on a
  cross cascade (benchmarks/cascade_day.py's cross day, small).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from deleverage.engine import quiet_probe
from deleverage.sim import quiet as sim_quiet
from deleverage.sim.runner import Simulation


def _scenario() -> Any:
    sys.path.insert(0, str(Path(__file__).parents[3] / "benchmarks"))
    from cascade_day import isolated_scenario  # type: ignore[import-not-found]

    return isolated_scenario(5_000, 1_800.0, 0.05)


def _cross_scenario() -> Any:
    sys.path.insert(0, str(Path(__file__).parents[3] / "benchmarks"))
    from cascade_day import cross_scenario  # type: ignore[import-not-found]

    return cross_scenario(3_000, 1_800.0)


def _audit(
    monkeypatch: pytest.MonkeyPatch, scenario: Callable[[], Any] = _scenario
) -> tuple[int, int]:
    """Runs the cascade with every refused try made anyway: (refused, refused that ran on)."""
    probe = sim_quiet.QuietStretches._liquidates_first
    advance = sim_quiet.QuietStretches.advance
    refused = ran_on = 0
    said: list[bool] = []

    def asking(self: Any, *args: Any) -> bool:
        said.append(bool(probe(self, *args)))
        return False  # the try is made: its result audits the answer

    def audited(self: Any, k: int, **kw: Any) -> int:
        nonlocal refused, ran_on
        said.clear()
        count = advance(self, k, **kw)
        if said and said[0]:
            refused += 1
            ran_on += count > 0
        return count

    monkeypatch.setattr(sim_quiet.QuietStretches, "_liquidates_first", asking)
    monkeypatch.setattr(sim_quiet.QuietStretches, "advance", audited)
    Simulation(scenario()).run()
    return refused, ran_on


def test_every_refused_try_stops_at_its_first_step(monkeypatch: pytest.MonkeyPatch) -> None:
    refused, ran_on = _audit(monkeypatch)
    assert refused > 20
    assert ran_on == 0


def test_a_probe_at_the_wrong_marks_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """A probe asked at marks 0.2 % below the step's refuses tries that run on."""
    probe = sim_quiet.liquidates_first  # type: ignore[attr-defined]

    def low(ex: Any, marks: Any) -> bool:
        return bool(probe(ex, marks * 0.998))

    monkeypatch.setattr(sim_quiet, "liquidates_first", low)
    _, ran_on = _audit(monkeypatch)
    assert ran_on > 0


def test_every_refused_cross_try_stops_at_its_first_step(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    refused, ran_on = _audit(monkeypatch, _cross_scenario)
    assert refused > 10
    assert ran_on == 0


def test_a_cross_probe_at_the_wrong_marks_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """The cross probe asked at marks 0.2 % below the step's refuses tries that run on."""
    probe = quiet_probe.cross_liquidates_first

    def low(ex: Any, marks: Any) -> bool:
        return probe(ex, marks * 0.998)

    monkeypatch.setattr(quiet_probe, "cross_liquidates_first", low)
    _, ran_on = _audit(monkeypatch, _cross_scenario)
    assert ran_on > 0


@pytest.mark.parametrize("scenario", [_scenario, _cross_scenario])
def test_the_probe_leaves_the_run_as_it_is(
    monkeypatch: pytest.MonkeyPatch, scenario: Callable[[], Any]
) -> None:
    with_probe = Simulation(scenario())
    runs = [with_probe.run()]
    assert with_probe.quiet is not None
    assert with_probe.quiet.probed > 0
    runs.append(Simulation(scenario(), quiet=False).run())
    monkeypatch.setattr(sim_quiet.QuietStretches, "_liquidates_first", lambda *args: False)
    without = Simulation(scenario())
    runs.append(without.run())
    assert without.quiet is not None
    assert without.quiet.probed == 0
    first = runs[0]
    for other in runs[1:]:
        assert first.journal.to_arrow().equals(other.journal.to_arrow())
        assert first.steps.equals(other.steps)
        assert first.result_hash == other.result_hash
        assert np.array_equal(first.final_equity, other.final_equity)  # type: ignore[arg-type]
