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
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deleverage import Exchange, MarginMode, MarketSpec
from deleverage.engine.risk import batch_round, batch_settle
from deleverage.engine.risk import round_kernel as rk
from deleverage.errors import InvariantError
from deleverage.liquidity import ConstantDepthBook

S = 1_000_000_000
OPEN = 1_000.0
POLICIES: dict[str, dict[str, Any]] = {
    "full": {"kind": "full"},
    "partial": {"kind": "partial", "buffer": 0.01},
    "partial_initial": {"kind": "partial", "target": "initial"},
    "fixed_fraction": {
        "kind": "fixed_fraction", "fraction": 0.3, "fraction_min_notional": 3_000.0,
        "cooldown_s": 20.0,
    },
    "tier_down": {"kind": "tier_down"},
    "tier_down_first": {"kind": "tier_down", "tier_down_target": "first"},
}  # fmt: skip
MODES = {"fused": (True, True), "settled": (True, False), "separate": (False, False)}


def _spec(kind: str, fee: float, recourse: bool) -> MarketSpec:
    return MarketSpec.from_mapping(
        {
            "symbol": "BTCUSDT", "maker_fee_rate": 0.0, "taker_fee_rate": 0.0,
            "liquidation_fee_rate": fee,
            "liquidation": {**POLICIES[kind], "isolated_recourse": recourse},
            "adl": {"ranking": "pnl_leverage"},
            "tiers": [
                {"notional_floor": 0.0, "max_leverage": 50.0, "maintenance_rate": 0.01},
                {"notional_floor": 10_000.0, "max_leverage": 20.0, "maintenance_rate": 0.025},
                {"notional_floor": 40_000.0, "max_leverage": 10.0, "maintenance_rate": 0.05},
            ],
        }
    )  # fmt: skip


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
    rng = np.random.default_rng(seed)
    with _mode(mode):
        ex = Exchange(seed=seed, check_invariants=check)
        m = ex.list_market(_spec(kind, fee, recourse))
        ex.set_mark(m, OPEN)
        if depth is not None:
            ex.set_liquidity(m, ConstantDepthBook(depth_per_pct=depth, half_life_s=30.0))
        if fund > 0:
            ex.deposit(ex.insurance_account, fund)
        n = 40
        for sign in (1.0, -1.0):
            ids = ex.open_accounts(n, margin_mode=MarginMode.ISOLATED)
            sizes = rng.uniform(0.5, 60.0, n)
            if ties:  # pairs of equal positions: equal healths (the lexsort's order)
                sizes = np.repeat(sizes[: n // 2], 2)
            notional = sizes * OPEN
            most = np.where(notional < 10_000.0, 50.0, np.where(notional < 40_000.0, 20.0, 10.0))
            leverage = np.maximum(rng.uniform(0.04, 1.0, n) * most, 1.5)
            if ties:  # each pair's leverage (its pair's size: the same tier)
                leverage = np.repeat(leverage[::2], 2)
            spare = np.where(rng.random(n) < 0.5, rng.uniform(0.0, 500.0, n), 0.0)
            ex.deposit_many(ids, sizes * OPEN / leverage + 1.0 + spare)
            ex.open_positions(m, ids, sign * sizes, np.full(n, OPEN), leverage=leverage)
        mark = OPEN
        for k, move in enumerate(moves, start=1):
            mark = round(mark * (1.0 + move), 2)
            ex.set_mark(m, mark, ts_ns=k * 30 * S)
    return ex


def _bits(table: pa.Table) -> dict[str, bytes]:
    """Every column's values as bytes (floats bit for bit: -0.0 is not 0.0 here)."""
    out: dict[str, bytes] = {}
    for name in table.column_names:
        values = table.column(name).to_numpy(zero_copy_only=False)
        out[name] = values.tobytes() if values.dtype != object else repr(values.tolist()).encode()
    return out


def _assert_same(fast: Exchange, reference: Exchange) -> None:
    ja, jb = fast.journal.to_arrow(), reference.journal.to_arrow()
    assert ja.num_rows == jb.num_rows
    assert ja.equals(jb), "journals differ"
    assert _bits(ja) == _bits(jb), "journals differ in some bit (a signed zero?)"
    assert fast.state_hash() == reference.state_hash()
    assert [r.__dict__ for r in fast.risk.reports] == [r.__dict__ for r in reference.risk.reports]
    assert list(fast.risk.carried_deficit.items()) == list(reference.risk.carried_deficit.items())
    assert list(fast.risk.declared_bad_debt.items()) == list(
        reference.risk.declared_bad_debt.items()
    )
    fa, fb = fast.funds[fast.insurance_account], reference.funds[reference.insurance_account]
    assert fa.history == fb.history
    assert fa.balance == fb.balance


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
    _assert_same(fused, separate)
    _assert_same(settled, separate)


def _outcomes(monkeypatch: pytest.MonkeyPatch) -> collections.Counter[Any]:
    """Count the kernel's outcomes and the rows of each settled round's groups."""
    real = rk.round_nb
    seen: collections.Counter[Any] = collections.Counter()

    def counting(*args: Any) -> Any:
        out = real(*args)
        seen[out[0]] += 1
        if out[0] == rk.SETTLED:
            scratch_i = args[-2]
            bounds = scratch_i[rk.S_HEAD : rk.S_HEAD + 6]
            for g, count in enumerate(np.diff(bounds).tolist()):
                seen[f"group {g}"] += count
            seen["still under maintenance"] += int(scratch_i[rk.S_AFTER])
        return out

    monkeypatch.setattr(rk, "round_nb", counting)
    return seen


Case = tuple[int, str, float, bool, float, float | None, list[float], bool]
CASES: list[Case] = [  # (seed, kind, fee, recourse, fund, depth, moves, ties)
    (3, "tier_down", 0.02, True, 0.0, 30.0, [-0.04, -0.07, -0.05], False),
    (3, "partial", 0.02, True, 300.0, 30.0, [-0.04, -0.07, -0.05], False),
    (5, "tier_down", 0.02, True, 3e4, 30.0, [-0.03, -0.03, -0.03, -0.05], False),
    (7, "fixed_fraction", 0.005, False, 3e4, 400.0, [-0.04, -0.02, -0.06, 0.01, -0.05], True),
    (11, "full", 0.005, False, 300.0, None, [-0.06, -0.05, -0.08], True),
    (13, "partial_initial", 0.02, False, 3e4, 30.0, [-0.05, -0.04, -0.06], False),
]


def test_the_twin_reaches_every_outcome_and_group(monkeypatch: pytest.MonkeyPatch) -> None:
    # Rounds settled in one call with every group of rows (penalties of open and closed
    # positions, covers of both, cash moved in), positions left under maintenance, tied
    # healths (ranked by the caller) and ADL flags (the separate path): the twins compare
    # each case with the reference.
    seen = _outcomes(monkeypatch)
    for case in CASES:
        _assert_same(_run("fused", *case), _run("separate", *case))
    for key in (rk.SETTLED, rk.UNRANKED, rk.ADL_FLAGGED, "still under maintenance"):
        assert seen[key] > 0, (key, seen)
    for g in range(5):
        assert seen[f"group {g}"] > 0, (g, seen)


@pytest.mark.parametrize("case", CASES)
def test_the_invariant_mode_agrees_with_the_kernels_check(case: Case) -> None:
    # The invariant mode checks the round's accounts again after every one-call round and
    # compares with the kernel's own check (the step raises if they differ).
    _assert_same(_run("fused", *case, check=True), _run("separate", *case))


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
        _assert_same(wrong, reference)


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
