"""The batch planner's second run is skipped only where it would repeat the first.

``BatchStage._batch_plan`` plans with unbounded ADL queues, and again with each flagged side's
queue capacity when some position needs ADL. A queue holding at least the bound (the side's
total planned size with ``_BOUND``'s margin) passes every capacity check the first run made,
so the second run is skipped there. Twin: the same books run with ``_BOUND = inf`` (no queue
reaches it: the second run always happens, as before the cut) must end in the same journal,
state and step reports, bit for bit.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import deleverage.engine.kernels as kernels
import deleverage.engine.risk.batch as batch
from deleverage import Exchange, MarginMode, MarketSpec
from deleverage.liquidity import ConstantDepthBook

S = 1_000_000_000
OPEN = 1_000.0
PATH = [-0.03, -0.06, -0.04, 0.02, -0.08]
KERNEL = kernels.plan_isolated_liquidations_nb


def _run(seed: int, short_scale: float, n: int, depth: float | None = None) -> Exchange:
    # Isolated longs of random size and leverage (the crash bankrupts many), an empty fund
    # (every shortfall asks ADL), and isolated shorts whose total is short_scale x the longs'
    # (below 1: the queue cannot take every flag; above: it can); fills at the mark or on a
    # constant-depth book (where a position the queue cannot take moves the book in its turn).
    rng = np.random.default_rng(seed)
    ex = Exchange(seed=seed)
    spec = MarketSpec.simple(
        "BTCUSDT", max_leverage=50.0, maintenance_rate=0.01, maker_fee_rate=0.0,
        taker_fee_rate=0.0, liquidation_fee_rate=0.0,
    )  # fmt: skip
    m = ex.list_market(spec)
    ex.set_mark(m, OPEN)
    if depth is not None:
        ex.set_liquidity(m, ConstantDepthBook(depth_per_pct=depth, half_life_s=30.0))
    longs = rng.uniform(0.5, 5.0, n)
    shorts = rng.uniform(0.5, 5.0, n)
    shorts *= short_scale * longs.sum() / shorts.sum()
    for sign, sizes in ((1.0, longs), (-1.0, shorts)):
        ids = ex.open_accounts(n, margin_mode=MarginMode.ISOLATED)
        leverage = rng.uniform(2.0, 50.0, n) if sign > 0 else np.full(n, 2.0)
        notional = sizes * OPEN
        ex.deposit_many(ids, notional / leverage + 1.0)
        ex.open_positions(m, ids, sign * sizes, np.full(n, OPEN), leverage=leverage)
    mark = OPEN
    for k, move in enumerate(PATH, start=1):
        mark = round(mark * (1.0 + move), 2)
        ex.set_mark(m, mark, ts_ns=k * 45 * S)
    return ex


def _counted(monkeypatch: pytest.MonkeyPatch, bound: float) -> list[int]:
    calls: list[int] = []

    def counting(*args: Any) -> Any:
        calls.append(1)
        return KERNEL(*args)

    monkeypatch.setattr(kernels, "plan_isolated_liquidations_nb", counting)
    monkeypatch.setattr(batch, "_BOUND", bound)
    return calls


@settings(max_examples=10, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    short_scale=st.sampled_from([0.05, 0.3, 0.9, 1.5, 4.0]),
    depth=st.sampled_from([None, 20.0, 200.0]),
)
def test_planning_once_matches_planning_twice(
    seed: int, short_scale: float, depth: float | None
) -> None:
    with pytest.MonkeyPatch.context() as mp:
        # Arrange and act: the same book planned as shipped and with the second run forced
        once = _counted(mp, batch._BOUND)
        fast = _run(seed, short_scale, 60, depth)
        twice = _counted(mp, math.inf)
        reference = _run(seed, short_scale, 60, depth)

    # Assert: same journal (every event), same state, same step reports
    assert fast.journal.to_arrow().equals(reference.journal.to_arrow())
    assert fast.state_hash() == reference.state_hash()
    assert [r.__dict__ for r in fast.risk.reports] == [r.__dict__ for r in reference.risk.reports]
    assert len(once) <= len(twice)


def test_a_queue_holding_every_flag_plans_once(monkeypatch: pytest.MonkeyPatch) -> None:
    # Shorts 4x the longs: the queue holds every flag, so each planned batch runs the kernel
    # once, where the forced path runs it twice for each batch with a flag.
    once = _counted(monkeypatch, batch._BOUND)
    fast = _run(7, 4.0, 60)
    twice = _counted(monkeypatch, math.inf)
    reference = _run(7, 4.0, 60)

    assert sum(r.adl_rounds for r in reference.risk.reports) > 0
    assert len(once) < len(twice)
    assert fast.state_hash() == reference.state_hash()
