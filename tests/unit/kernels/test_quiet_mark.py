"""The single-mark quiet fast path of ``Exchange.set_mark`` (:mod:`deleverage.engine.quiet_mark`)
against the full risk step: random books (isolated and cross positions, one or two markets)
marked along random walks with jumps that cross liquidation and call levels, one engine with
the fast path and one without. The oracle is the real risk step: journals, state hashes,
called sets and step reports must be identical after every walk."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from deleverage import Exchange, MarginMode, MarketSpec

_NS = 1_000_000_000


def _book(seed: int, n_markets: int, cross_share: float, call: float, fast: bool) -> Exchange:
    rng = np.random.default_rng(seed)
    ex = Exchange()
    ex.quiet_marks.enabled = fast
    marks = [60_000.0, 3_000.0][:n_markets]
    for m, mark in enumerate(marks):
        spec = MarketSpec.simple(f"M{m}", max_leverage=50, maintenance_rate=0.01)
        if call != spec.liquidation.margin_call_ratio:
            policy = spec.liquidation.model_copy(update={"margin_call_ratio": call})
            spec = spec.model_copy(update={"liquidation": policy})
        ex.list_market(spec)
        ex.set_mark(m, mark, ts_ns=1)
    n = 200
    cross = rng.random(n) < cross_share
    ids = [
        ex.open_account(margin_mode=MarginMode.CROSS if c else MarginMode.ISOLATED) for c in cross
    ]
    ex.deposit_many(ids, np.full(n, 1e6))
    for m, mark in enumerate(marks):
        acc = np.array(ids)[rng.random(n) < 0.8]
        sizes = rng.choice([-1.0, 1.0], len(acc)) * rng.uniform(0.5, 2.0, len(acc)) * 1e4 / mark
        sizes = np.round(sizes, 3)
        acc, sizes = acc[sizes != 0], sizes[sizes != 0]
        lev = rng.uniform(5.0, 45.0, len(acc))
        ex.open_positions(m, acc, sizes, np.full(len(acc), mark), leverage=lev)
    for i, c in enumerate(ids):  # cross accounts keep their initial margin and a little more
        margins = ex.account_margins(c)
        spare = margins.withdrawable - float(rng.uniform(0.0, 1.0)) * margins.cross_maintenance
        if cross[i] and spare > 0:
            ex.withdraw(c, spare, ts_ns=2)
    return ex


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    n_markets=st.integers(1, 2),
    cross_share=st.sampled_from([0.0, 0.3, 1.0]),
    call=st.sampled_from([1.0, 0.8]),
    vol=st.sampled_from([1e-4, 1e-3]),
    jumps=st.lists(st.floats(-0.04, 0.04), min_size=1, max_size=3),
    deposit_at=st.integers(0, 150),
)
def test_quiet_mark_path_equals_the_risk_step(
    seed: int, n_markets: int, cross_share: float, call: float, vol: float,
    jumps: list[float], deposit_at: int,
) -> None:  # fmt: skip
    rng = np.random.default_rng(seed)
    fast = _book(seed, n_markets, cross_share, call, True)
    slow = _book(seed, n_markets, cross_share, call, False)
    steps = 150
    moves = rng.normal(0.0, vol, (steps, n_markets))
    for j, jump in enumerate(jumps):  # jumps that reach the zones (calls, liquidations)
        moves[(j + 1) * steps // (len(jumps) + 1)] += jump
    marks = np.round([st.mark for st in fast.markets] * np.exp(np.cumsum(moves, axis=0)), 2)
    for j in range(steps):
        ts = (10 + j) * _NS
        for ex in (fast, slow):
            if j == deposit_at:  # a state change between marks drops the cached bands
                ex.deposit(ex.n_accounts - 1, 5.0, ts_ns=ts)
            for m in range(n_markets):
                ex.set_mark(m, float(marks[j, m]), ts_ns=ts)
    assert fast.journal.to_arrow().equals(slow.journal.to_arrow())
    assert fast.state_hash() == slow.state_hash()
    for rf, rs in zip(fast.risk.markets, slow.risk.markets, strict=True):
        assert np.array_equal(rf.called_isolated, rs.called_isolated)
        assert np.array_equal(rf.called_cross, rs.called_cross)
        assert rf.capital_ts == rs.capital_ts
    assert fast.risk.reports == slow.risk.reports
    assert slow.quiet_marks.fast == 0


def test_the_fast_path_serves_quiet_marks_and_leaves_the_zone_to_the_risk_step() -> None:
    fast = _book(7, 1, 0.0, 1.0, True)
    slow = _book(7, 1, 0.0, 1.0, False)
    path = [60_000.0 + 10.0 * j for j in range(20)] + [54_000.0, 53_000.0]
    for j, p in enumerate(path):
        for ex in (fast, slow):
            ex.set_mark(0, p, ts_ns=(10 + j) * _NS)
    assert fast.quiet_marks.fast >= 19  # the quiet walk took the fast path
    assert fast.quiet_marks.full >= 1  # the fall reached the zone: the full step ran
    assert sum(r.liquidations for r in slow.risk.reports) > 0
    assert fast.risk.reports == slow.risk.reports
    assert fast.journal.to_arrow().equals(slow.journal.to_arrow())
