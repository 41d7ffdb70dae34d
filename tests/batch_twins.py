"""Shared parts of the batch path's twin tests (``tests/unit/risk/test_batch_*_twin.py``):
the market (three tiers, a liquidation kind from :data:`POLICIES`), the random isolated book
and path both twins of a pair run, and the comparison of two runs (journal row by row with
floats bit for bit, state, step reports, carried deficits, declared bad debt, fund records)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from deleverage import Exchange, MarginMode, MarketSpec
from deleverage.liquidity import ConstantDepthBook
from deleverage.sim.runner import RunResult

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


def twin_spec(kind: str, fee: float, recourse: bool) -> MarketSpec:
    """A market of three tiers (50x/1%, 20x/2.5% from 10,000, 10x/5% from 40,000 notional)
    liquidating by ``POLICIES[kind]`` with liquidation fee rate ``fee``."""
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


def run_twin_book(
    seed: int, kind: str, fee: float, recourse: bool, fund: float, depth: float | None,
    moves: list[float], ties: bool = False, check: bool = False,
) -> Exchange:  # fmt: skip
    """An exchange with 40 isolated longs and 40 isolated shorts of random size and leverage
    (up to the tier's maximum, at least 1.5x; half of them with spare cash up to 500), an
    insurance fund of ``fund``, a constant-depth book of ``depth`` per percent (None: fills
    at the mark), marked along ``moves`` (relative moves 30 s apart, rounded to cents).
    ``ties``: positions in equal pairs (equal healths). The caller sets the path's mode."""
    rng = np.random.default_rng(seed)
    ex = Exchange(seed=seed, check_invariants=check)
    m = ex.list_market(twin_spec(kind, fee, recourse))
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


def journal_bits(table: pa.Table) -> dict[str, bytes]:
    """Every column's values as bytes (floats bit for bit: -0.0 is not 0.0 here)."""
    out: dict[str, bytes] = {}
    for name in table.column_names:
        values = table.column(name).to_numpy(zero_copy_only=False)
        out[name] = values.tobytes() if values.dtype != object else repr(values.tolist()).encode()
    return out


def assert_same_runs(fast: Exchange, reference: Exchange) -> None:
    """The two runs' journals (row by row, bit for bit), states, step reports, carried
    deficits, declared bad debt and insurance fund records are the same."""
    ja, jb = fast.journal.to_arrow(), reference.journal.to_arrow()
    assert ja.num_rows == jb.num_rows
    assert ja.equals(jb), "journals differ"
    assert journal_bits(ja) == journal_bits(jb), "journals differ in some bit (a signed zero?)"
    assert fast.state_hash() == reference.state_hash()
    assert [r.__dict__ for r in fast.risk.reports] == [r.__dict__ for r in reference.risk.reports]
    assert list(fast.risk.carried_deficit.items()) == list(reference.risk.carried_deficit.items())
    assert list(fast.risk.declared_bad_debt.items()) == list(
        reference.risk.declared_bad_debt.items()
    )
    fa, fb = fast.funds[fast.insurance_account], reference.funds[reference.insurance_account]
    assert fa.history == fb.history
    assert fa.balance == fb.balance


def assert_same_results(fast: RunResult, slow: RunResult) -> None:
    """Two simulation runs of one scenario (a fast path on and off) give the same journal,
    per-step frame, result hash and final equity."""
    assert fast.journal.to_arrow().equals(slow.journal.to_arrow()), "journals differ"
    assert fast.steps.equals(slow.steps), "per-step frames differ"
    assert fast.result_hash == slow.result_hash
    assert np.array_equal(fast.final_equity, slow.final_equity)  # type: ignore[arg-type]
