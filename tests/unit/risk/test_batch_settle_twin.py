"""The batch path's settlement in one kernel and one journal batch against the separate batches.

``engine/risk/batch_settle.py`` settles a planned round (fills, penalties, covers, margin
moves, liquidation records) in one compiled pass and writes its rows as one journal batch;
with ``batch_settle.ENABLED = False`` the batch path writes the five to seven separate
batches it wrote before. Twins: random books (long and short isolated positions of random
size and leverage), random paths, every liquidation kind the batch path takes, with and
without recourse to the account's cash, with a fund from empty to ample and with a book or
fills at the mark, must end in the same journal (row by row, floats bit for bit, signed zeros
included), state, step reports, carried deficits and fund records. A deliberately wrong
settlement (two groups' rows in each other's place) must fail the same comparison.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from batch_twins import assert_same_runs, run_twin_book
from deleverage import Exchange
from deleverage.engine.risk import batch_round, batch_settle

#: The liquidation kinds this twin draws from (the shared module's have two more).
KINDS = ["fixed_fraction", "full", "partial", "tier_down"]


def _run(
    enabled: bool, seed: int, kind: str, fee: float, recourse: bool, fund: float,
    depth: float | None, moves: list[float],
) -> Exchange:  # fmt: skip
    previous = batch_settle.ENABLED
    batch_settle.ENABLED = enabled
    try:
        return run_twin_book(seed, kind, fee, recourse, fund, depth, moves)
    finally:
        batch_settle.ENABLED = previous


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    kind=st.sampled_from(KINDS),
    fee=st.sampled_from([0.0, 0.005, 0.02]),
    recourse=st.booleans(),
    fund=st.sampled_from([0.0, 300.0, 1e7]),
    depth=st.sampled_from([None, 30.0, 400.0]),
    moves=st.lists(st.floats(-0.09, 0.05), min_size=2, max_size=7),
)
def test_settlement_in_one_batch_matches_the_separate_batches(
    seed: int, kind: str, fee: float, recourse: bool, fund: float, depth: float | None,
    moves: list[float],
) -> None:  # fmt: skip
    # Arrange and act: the same book and path, settled in one batch and in separate ones
    args = (seed, kind, fee, recourse, fund, depth, moves)
    fast = _run(True, *args)
    reference = _run(False, *args)

    # Assert: every row, the state, the reports, the carried deficits, the fund's records
    assert_same_runs(fast, reference)


def test_the_twin_covers_every_group_of_a_round(monkeypatch: pytest.MonkeyPatch) -> None:
    # Books whose batch rounds have penalties of open and of closed positions, covers of
    # closed and of open positions and cash moved into open ones: the comparison above is not
    # vacuous for any group of rows.
    monkeypatch.setattr(batch_round, "FUSED", False)  # the round's settlement kernel alone
    real = batch_settle.settle_money_nb
    groups = [0] * 5

    def counting(*args: Any) -> Any:
        out = real(*args)
        for g, count in enumerate(np.diff(out[4][:6]).tolist()):  # the groups' bounds
            groups[g] += count
        return out

    monkeypatch.setattr(batch_settle, "settle_money_nb", counting)
    for kind in ("tier_down", "partial"):
        _run(True, 3, kind, 0.02, True, 0.0, 30.0, [-0.04, -0.07, -0.05])
    assert min(groups) > 0, groups


def test_a_wrong_settlement_fails_the_twin(monkeypatch: pytest.MonkeyPatch) -> None:
    # A settlement that writes each group's transfer rows in reverse order (same rows, same
    # state, same fund records): the comparison must catch it.
    monkeypatch.setattr(batch_round, "FUSED", False)  # the round's settlement kernel alone
    real = batch_settle.settle_money_nb

    def reversed_rows(*args: Any) -> Any:
        accounts, kind, ints, floats, lists, per_position = real(*args)
        n = len(accounts)
        edges = (n + lists[:6]).tolist()

        def swap(c: np.ndarray) -> np.ndarray:
            parts = [c[..., lo:hi][..., ::-1] for lo, hi in itertools.pairwise(edges)]
            return np.ascontiguousarray(
                np.concatenate([c[..., : edges[0]], *parts, c[..., edges[-1] :]], axis=-1)
            )

        return accounts, swap(kind), swap(ints), swap(floats), lists, per_position

    args = (3, "partial", 0.02, False, 300.0, 30.0, [-0.04, -0.07, -0.05])
    reference = _run(False, *args)
    monkeypatch.setattr(batch_settle, "settle_money_nb", reversed_rows)
    wrong = _run(True, *args)
    with pytest.raises(AssertionError):
        assert_same_runs(wrong, reference)
