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
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deleverage import Exchange, MarginMode, MarketSpec
from deleverage.engine.risk import batch_round, batch_settle
from deleverage.liquidity import ConstantDepthBook

S = 1_000_000_000
OPEN = 1_000.0
POLICIES: dict[str, dict[str, Any]] = {
    "full": {"kind": "full"},
    "partial": {"kind": "partial", "buffer": 0.01},
    "fixed_fraction": {
        "kind": "fixed_fraction", "fraction": 0.3, "fraction_min_notional": 3_000.0,
        "cooldown_s": 20.0,
    },
    "tier_down": {"kind": "tier_down"},
}  # fmt: skip


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


def _run(
    enabled: bool, seed: int, kind: str, fee: float, recourse: bool, fund: float,
    depth: float | None, moves: list[float],
) -> Exchange:  # fmt: skip
    rng = np.random.default_rng(seed)
    previous = batch_settle.ENABLED
    batch_settle.ENABLED = enabled
    try:
        ex = Exchange(seed=seed)
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
            notional = sizes * OPEN
            most = np.where(notional < 10_000.0, 50.0, np.where(notional < 40_000.0, 20.0, 10.0))
            leverage = rng.uniform(0.04, 1.0, n) * most  # up to the tier's maximum
            leverage = np.maximum(leverage, 1.5)
            # Some accounts hold spare cash (recourse pays from it), some none.
            spare = np.where(rng.random(n) < 0.5, rng.uniform(0.0, 500.0, n), 0.0)
            ex.deposit_many(ids, sizes * OPEN / leverage + 1.0 + spare)
            ex.open_positions(m, ids, sign * sizes, np.full(n, OPEN), leverage=leverage)
        mark = OPEN
        for k, move in enumerate(moves, start=1):
            mark = round(mark * (1.0 + move), 2)
            ex.set_mark(m, mark, ts_ns=k * 30 * S)
    finally:
        batch_settle.ENABLED = previous
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
    _assert_same(fast, reference)


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
        _assert_same(wrong, reference)
