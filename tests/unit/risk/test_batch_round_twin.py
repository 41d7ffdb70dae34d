"""The batch round in one compiled call against the separate calls it replaced.

``engine/risk/batch_round.py`` ranks, plans and settles a round of isolated liquidations in
one kernel call (``round_kernel.round_nb``) and hands the risk step's next check the accounts
it found still under maintenance. With ``batch_round.FUSED = False`` the batch path ranks,
plans and settles in separate calls (one settlement kernel, ``batch_settle.settle_round``);
with ``batch_settle.ENABLED = False`` too, it writes the separate journal batches of the
original batch path. Twins on random books and paths (every liquidation kind the batch path
takes, recourse or not, funds from empty to ample, a book or fills at the mark, tied healths,
declared bad debt and carried deficits) must end in the same journal (row by row, floats bit
for bit), state, step reports, carried deficits, declared bad debt and fund records; the
invariant mode re-checks the round's accounts against the kernel's own check. Deliberately
wrong variants (a group's rows reversed, the accounts still under maintenance dropped) must
fail.
"""

from __future__ import annotations

import collections
import itertools
import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from batch_twins import POLICIES, assert_same_runs, run_twin_book
from deleverage import Exchange
from deleverage.engine.risk import batch_round, batch_settle
from deleverage.engine.risk import round_kernel as rk
from deleverage.errors import InvariantError

MODES = {"fused": (True, True), "settled": (True, False), "separate": (False, False)}


@contextmanager
def _mode(mode: str) -> Iterator[None]:
    enabled, fused = MODES[mode]
    before = batch_settle.ENABLED, batch_round.FUSED
    batch_settle.ENABLED, batch_round.FUSED = enabled, fused
    try:
        yield
    finally:
        batch_settle.ENABLED, batch_round.FUSED = before


def _run(
    mode: str, seed: int, kind: str, fee: float, recourse: bool, fund: float,
    depth: float | None, moves: list[float], ties: bool, check: bool = False,
) -> Exchange:  # fmt: skip
    with _mode(mode):
        return run_twin_book(seed, kind, fee, recourse, fund, depth, moves, ties, check)


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
def test_one_call_round_matches_the_separate_calls(
    seed: int, kind: str, fee: float, recourse: bool, fund: float, depth: float | None,
    moves: list[float], ties: bool,
) -> None:  # fmt: skip
    # Arrange and act: the same book and path, the round in one call, in separate calls
    # with one settlement kernel, and as the original separate batches
    args = (seed, kind, fee, recourse, fund, depth, moves, ties)
    fused = _run("fused", *args)
    settled = _run("settled", *args)
    separate = _run("separate", *args)

    # Assert: every row, the state, the reports, the carried deficits, the fund's records
    assert_same_runs(fused, separate)
    assert_same_runs(settled, separate)


def _outcomes(monkeypatch: pytest.MonkeyPatch) -> collections.Counter[Any]:
    """Count the kernel's outcomes and the rows of each settled round's groups."""
    real = rk.round_nb
    seen: collections.Counter[Any] = collections.Counter()

    def counting(*args: Any) -> Any:
        out = real(*args)
        seen[out[0]] += 1
        if out[0] == rk.SETTLED:
            scratch_i, scratch_f = args[-2], args[-1]
            bounds = scratch_i[rk.S_HEAD : rk.S_HEAD + 6]
            for g, count in enumerate(np.diff(bounds).tolist()):
                seen[f"group {g}"] += count
            seen["still under maintenance"] += int(scratch_i[rk.S_AFTER])
            # The fills' accounts as ``ints[:2, :n].ravel()`` and each group's math.fsum
            n, n_lists, n_after = scratch_i[: rk.S_HEAD].tolist()
            ints, amounts = out[3], out[4][2]
            filled = rk.S_HEAD + n_lists + n_after
            assert scratch_i[filled : filled + 2 * n].tolist() == ints[:2, :n].ravel().tolist()
            sums = scratch_f[3 * n + 5 + n_after : 3 * n + 10 + n_after]
            for g, (lo, hi) in enumerate(itertools.pairwise(bounds.tolist())):
                exact = math.fsum(amounts[n + lo : n + hi].tolist())
                assert np.float64(exact).tobytes() == sums[g].tobytes(), (g, exact, sums[g])
                seen["group sums"] += hi > lo
        return out

    monkeypatch.setattr(rk, "round_nb", counting)
    # Which way the rounds' fund groups went: the ledger's one-call inflow (True), or it
    # declined (False) and ``apply_groups`` took the group; neither: other groups too
    real_inflow = Exchange._fund_inflow_applied

    def inflow(self: Exchange, *args: Any) -> bool:
        done = real_inflow(self, *args)
        seen[f"inflow {done}"] += 1
        return done

    monkeypatch.setattr(Exchange, "_fund_inflow_applied", inflow)
    return seen


Case = tuple[int, str, float, bool, float, float | None, list[float], bool]
CASES: list[Case] = [  # (seed, kind, fee, recourse, fund, depth, moves, ties)
    (3, "tier_down", 0.02, True, 0.0, 30.0, [-0.04, -0.07, -0.05], False),
    (3, "partial", 0.02, True, 300.0, 30.0, [-0.04, -0.07, -0.05], False),
    (5, "tier_down", 0.02, True, 3e4, 30.0, [-0.03, -0.03, -0.03, -0.05], False),
    (7, "fixed_fraction", 0.005, False, 3e4, 400.0, [-0.04, -0.02, -0.06, 0.01, -0.05], True),
    (11, "full", 0.005, False, 300.0, None, [-0.06, -0.05, -0.08], True),
    (13, "partial_initial", 0.02, False, 3e4, 30.0, [-0.05, -0.04, -0.06], False),
    # small steps: rounds whose only group is closed positions' penalties out of cash (the
    # ledger's one-call inflow, ``Ledger._fund_inflow_applied``)
    (3, "tier_down", 0.02, True, 3e4, None, [-0.01, -0.01, -0.01, -0.01], False),
    (3, "partial", 0.005, False, 3e4, None, [-0.02, -0.01, -0.01], False),
]


def test_the_twin_reaches_every_outcome_and_group(monkeypatch: pytest.MonkeyPatch) -> None:
    # Rounds settled in one call with every group of rows (penalties of open and closed
    # positions, covers of both, cash moved in), positions left under maintenance, tied
    # healths (ranked by the caller), ADL flags (the separate path) and rounds whose fund
    # record the ledger takes in one call: the twins compare each case with the reference.
    seen = _outcomes(monkeypatch)
    for case in CASES:
        assert_same_runs(_run("fused", *case), _run("separate", *case))
    keys = (rk.SETTLED, rk.UNRANKED, rk.ADL_FLAGGED, "still under maintenance", "inflow True")
    for key in keys:
        assert seen[key] > 0, (key, seen)
    for g in range(5):
        assert seen[f"group {g}"] > 0, (g, seen)
    assert seen["group sums"] > 0, seen


def test_a_wrong_group_sum_fails_the_twin(monkeypatch: pytest.MonkeyPatch) -> None:
    # A round whose groups' sums are one ulp high: the fund's records (written from those
    # sums) must differ from the separate path's.
    real = rk.round_nb

    def nudged(*args: Any) -> Any:
        out = real(*args)
        if out[0] == rk.SETTLED:
            scratch_i, scratch_f = args[-2], args[-1]
            n, n_after = int(scratch_i[rk.S_N]), int(scratch_i[rk.S_AFTER])
            sums = scratch_f[3 * n + 5 + n_after : 3 * n + 10 + n_after]
            sums[:] = np.nextafter(sums, np.inf)
        return out

    case = (3, "partial", 0.02, False, 300.0, 30.0, [-0.04, -0.07, -0.05], False)
    reference = _run("separate", *case)
    monkeypatch.setattr(rk, "round_nb", nudged)
    wrong = _run("fused", *case)
    with pytest.raises(AssertionError):
        assert_same_runs(wrong, reference)


def test_a_wrong_one_call_inflow_fails_the_twin(monkeypatch: pytest.MonkeyPatch) -> None:
    # The ledger's one-call inflow recording a total one ulp high: the fund's records must
    # differ from the separate path's (the case's rounds take that call: see CASES).
    real = Exchange._fund_inflow_applied

    def nudged(self: Exchange, fund: int, ts: int, reason: int, total: float, *rows: Any) -> bool:
        return real(self, fund, ts, reason, math.nextafter(total, math.inf), *rows)

    case = CASES[-2]
    reference = _run("separate", *case)
    monkeypatch.setattr(Exchange, "_fund_inflow_applied", nudged)
    wrong = _run("fused", *case)
    with pytest.raises(AssertionError):
        assert_same_runs(wrong, reference)


@pytest.mark.parametrize("case", CASES)
def test_the_invariant_mode_agrees_with_the_kernels_check(case: Case) -> None:
    # The invariant mode checks the round's accounts again after every one-call round and
    # compares with the kernel's own check (the step raises if they differ).
    assert_same_runs(_run("fused", *case, check=True), _run("separate", *case))


def test_a_wrong_round_fails_the_twin(monkeypatch: pytest.MonkeyPatch) -> None:
    # A round that writes each group's transfer rows in reverse order (same rows, same state,
    # same fund records): the comparison must catch it.
    real = rk.round_nb

    def reversed_rows(*args: Any) -> Any:
        status, consumed, kind, ints, floats = real(*args)
        if status != rk.SETTLED:
            return status, consumed, kind, ints, floats
        scratch_i = args[-2]
        n = int(scratch_i[rk.S_N])
        edges = (n + scratch_i[rk.S_HEAD : rk.S_HEAD + 6]).tolist()

        def swap(c: np.ndarray) -> np.ndarray:
            parts = [c[..., lo:hi][..., ::-1] for lo, hi in itertools.pairwise(edges)]
            return np.ascontiguousarray(
                np.concatenate([c[..., : edges[0]], *parts, c[..., edges[-1] :]], axis=-1)
            )

        return status, consumed, swap(kind), swap(ints), swap(floats)

    case = (3, "partial", 0.02, False, 300.0, 30.0, [-0.04, -0.07, -0.05], False)
    reference = _run("separate", *case)
    monkeypatch.setattr(rk, "round_nb", reversed_rows)
    wrong = _run("fused", *case)
    with pytest.raises(AssertionError):
        assert_same_runs(wrong, reference)


def test_a_wrong_check_of_the_rounds_accounts_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    # A kernel that reports none of the round's accounts still under maintenance: the
    # invariant mode's second check must refuse it.
    real = rk.round_nb

    def forgetful(*args: Any) -> Any:
        out = real(*args)
        args[-2][rk.S_AFTER] = 0
        return out

    def run_all() -> None:
        for case in CASES:
            _run("fused", *case, check=True)

    monkeypatch.setattr(rk, "round_nb", forgetful)
    with pytest.raises(InvariantError, match="check of its accounts"):
        run_all()
