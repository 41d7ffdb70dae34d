"""The risk step of a market of isolated traders alone against the general step it shortcuts.

``RiskEngine._isolated_step`` (``step.FAST_ROUND``) reads the isolated scan once after the
margin calls and, where the market's rules take the batch path, runs the one-call round
(``batch_round.run_round``) directly; a round whose accounts all left maintenance ends the
step there, without the general rounds' layers (``_none_below``, ``_Caps``, ``_batchable``'s
second look, ``_batch_isolated``, ``_batch_found``, ``_candidates``). Everything else (accounts
still under maintenance after the round, a round the kernel does not settle, cooldowns,
bad debt) goes on into the same rounds as the general step. With ``FAST_ROUND = False`` every
step takes the general path. Twins on random books and paths, on a small cascade day and on
the built-in perp scenarios must end in the same journal (bit for bit), state, reports and
fund records; a fast path that ends every step after its batch round must fail.
"""

from __future__ import annotations

import collections
import sys
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from batch_twins import POLICIES, assert_same_results, assert_same_runs, run_twin_book
from deleverage import Exchange
from deleverage.engine.risk import batch_round, step
from deleverage.engine.risk.step import RiskEngine
from deleverage.sim.builtin import builtin_names, builtin_path
from deleverage.sim.runner import RunResult, Simulation
from deleverage.sim.scenario import Scenario, load_scenario


@contextmanager
def _fast(on: bool) -> Iterator[None]:
    before = step.FAST_ROUND
    step.FAST_ROUND = on
    try:
        yield
    finally:
        step.FAST_ROUND = before


def _run(fast: bool, *case: Any) -> Exchange:
    with _fast(fast):
        return run_twin_book(*case)


Case = tuple[int, str, float, bool, float, float | None, list[float], bool]
CASES: list[Case] = [  # (seed, kind, fee, recourse, fund, depth, moves, ties)
    (3, "tier_down", 0.02, True, 0.0, 30.0, [-0.04, -0.07, -0.05], False),
    (3, "partial", 0.02, True, 300.0, 30.0, [-0.04, -0.07, -0.05], False),
    (5, "tier_down", 0.02, True, 3e4, 30.0, [-0.03, -0.03, -0.03, -0.05], False),
    (7, "fixed_fraction", 0.005, False, 3e4, 400.0, [-0.04, -0.02, -0.06, 0.01, -0.05], True),
    (11, "full", 0.005, False, 300.0, None, [-0.06, -0.05, -0.08], True),
    (13, "partial_initial", 0.02, False, 3e4, 30.0, [-0.05, -0.04, -0.06], False),
    (3, "tier_down", 0.02, True, 3e4, None, [-0.01, -0.01, -0.01, -0.01], False),
    (3, "partial", 0.005, False, 3e4, None, [-0.02, -0.01, -0.01], False),
    (17, "full", 0.02, False, 0.0, 30.0, [-0.08, -0.09, 0.02, -0.09], False),
]


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    kind=st.sampled_from(sorted(POLICIES)),
    fee=st.sampled_from([0.0, 0.005, 0.02]),
    recourse=st.booleans(),
    fund=st.sampled_from([0.0, 300.0, 3e4, 1e7]),
    depth=st.sampled_from([None, 30.0, 400.0]),
    moves=st.lists(st.floats(-0.09, 0.05), min_size=2, max_size=7),
    ties=st.booleans(),
)
def test_isolated_step_matches_the_general_step(
    seed: int, kind: str, fee: float, recourse: bool, fund: float, depth: float | None,
    moves: list[float], ties: bool,
) -> None:  # fmt: skip
    # Arrange and act: the same book and path through the shortcut and the general step
    case = (seed, kind, fee, recourse, fund, depth, moves, ties)

    # Assert: every row, the state, the reports, the carried deficits, the fund's records
    assert_same_runs(_run(True, *case), _run(False, *case))


def _outcomes(monkeypatch: pytest.MonkeyPatch) -> collections.Counter[str]:
    """Count how the shortcut's steps went: ended after the round, on into the rounds."""
    seen: collections.Counter[str] = collections.Counter()
    seen["counting"] = 1  # the caller sets it to 0 for its reference runs
    real_step, real_rounds = RiskEngine._isolated_step, RiskEngine._rounds
    real_round = batch_round.run_round

    def counted_step(self: RiskEngine, *args: Any) -> Any:
        seen["isolated step"] += seen["counting"]
        return real_step(self, *args)

    def counted_rounds(self: RiskEngine, *args: Any) -> Any:
        seen["rounds"] += seen["counting"]
        return real_rounds(self, *args)

    def counted_round(*args: Any) -> Any:
        out = real_round(*args)
        seen["round settled" if out is not None else "round not settled"] += seen["counting"]
        return out

    monkeypatch.setattr(RiskEngine, "_isolated_step", counted_step)
    monkeypatch.setattr(RiskEngine, "_rounds", counted_rounds)
    monkeypatch.setattr(batch_round, "run_round", counted_round)
    return seen


def test_the_twin_reaches_every_branch(monkeypatch: pytest.MonkeyPatch) -> None:
    # Steps ended after the round, steps that went on into the rounds (accounts still under
    # maintenance, cooldowns), rounds the kernel did not settle (ADL flags): the shortcut
    # took them all, and each case equals the general step.
    seen = _outcomes(monkeypatch)
    for case in CASES:
        seen["counting"] = 1
        fast = _run(True, *case)
        seen["counting"] = 0
        assert_same_runs(fast, _run(False, *case))
    for key in ("isolated step", "rounds", "round settled", "round not settled"):
        assert seen[key] > 0, (key, seen)
    assert seen["isolated step"] > seen["rounds"], seen  # most steps end in the shortcut


def test_a_shortcut_that_ends_every_step_after_its_round_fails_the_twin(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A shortcut that never goes on into the rounds (positions left under maintenance by a
    # partial close wait for the next mark): some case must differ from the general step.
    references = [_run(False, *case) for case in CASES]

    def no_more_rounds(self: RiskEngine, m: int, ts: int, report: Any, *args: Any) -> Any:
        return self._step_end(m, ts, report)

    monkeypatch.setattr(RiskEngine, "_rounds", no_more_rounds)
    wrong = 0
    for case, reference in zip(CASES, references, strict=True):
        try:
            assert_same_runs(_run(True, *case), reference)
        except AssertionError:
            wrong += 1
    assert wrong > 0


def test_the_shortcut_is_taken_only_without_invariant_checks() -> None:
    # The invariant mode re-checks the round's accounts in the general step: the shortcut
    # leaves it alone, and the results are the same.
    case = CASES[1]
    checked = run_twin_book(*case, check=True)
    assert_same_runs(checked, _run(True, *case))


PERP = [  # the perp engine's scenarios (black-thursday is a CDP one)
    name
    for name in builtin_names()
    if tomllib.loads(builtin_path(name).read_text()).get("kind", "perp") == "perp"
]


def _sim_twin(scenario: Scenario) -> RunResult:
    with _fast(True):
        fast = Simulation(scenario).run()
    with _fast(False):
        slow = Simulation(scenario).run()
    assert_same_results(fast, slow)
    return fast


@pytest.mark.parametrize("name", PERP)
def test_builtin_scenarios_identical_with_the_shortcut(name: str) -> None:
    _sim_twin(load_scenario(builtin_path(name)))


def test_a_cascade_day_identical_with_the_shortcut() -> None:
    sys.path.insert(0, str(Path(__file__).parents[3] / "benchmarks"))
    from cascade_day import isolated_scenario  # type: ignore[import-not-found]

    result = _sim_twin(isolated_scenario(5_000, 1_800.0, 0.05))
    assert result.summary["liquidations"] > 50  # the shortcut's rounds settled
