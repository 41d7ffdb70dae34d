"""The dense ADL queue (``engine/risk/adl_queue.py``) against the compacting queue it replaced.

Queue level: random books (both sides, venue accounts, flat rows, losers, non-positive
equity, scores tied on a coarse grid) give the same ranking, the same walks and covers while
the queue is consumed, and the same capacity as ``pnl_leverage_queue_nb`` + ``_Queue``.
Engine level: the same risk steps on venue presets (the ADL ranking of each venue, and each
venue's market with BitMEX's ranking, the one the dense queue serves) with
``RiskEngine.dense_queue`` on and off end in the same journal and state hash.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deleverage import Exchange, MarginMode, MarketSpec, preset
from deleverage.engine.kernels import pnl_leverage_queue_nb
from deleverage.engine.risk.adl_queue import (
    DenseQueue,
    capacity_reaches_nb,
    pnl_leverage_scores_nb,
)
from deleverage.engine.risk.support import _Queue
from deleverage.liquidity import ConstantDepthBook


def _book(seed: int, n: int, ties: bool) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    if ties:  # a coarse grid: many candidates share a score
        size = rng.integers(-3, 4, n) * 1.0
        entry = rng.choice([90.0, 100.0, 110.0], n)
        margin = rng.integers(-1, 4, n) * 5.0
    else:
        size = np.where(rng.random(n) < 0.1, 0.0, rng.normal(0.0, 5.0, n))
        entry = rng.uniform(50.0, 150.0, n)
        margin = np.where(rng.random(n) < 0.05, -rng.uniform(0, 50, n), rng.uniform(0, 80, n))
    kind = np.where(rng.random(n) < 0.03, 1, 0).astype(np.int8)
    return {"size": size, "entry": entry, "margin": margin, "kind": kind}


def _queues(book: dict[str, np.ndarray], mark: float, side: float) -> tuple[_Queue, DenseQueue]:
    n = len(book["size"])
    inputs = (book["size"], book["entry"], book["margin"], book["kind"], mark, side)
    idx, score, sizes = np.empty(n, dtype=np.int64), np.empty(n), np.empty(n)
    k = pnl_leverage_queue_nb(*inputs, idx, score, sizes)
    old = _Queue(idx[:k].copy(), scores=score[:k].copy(), capacity=(0, float(sizes[:k].sum())))
    dense = np.empty(n)
    count, nan = pnl_leverage_scores_nb(*inputs, dense)
    assert count == k
    assert nan == 0
    return old, DenseQueue(dense, count, 0)


@settings(max_examples=150, deadline=None)
@given(
    seed=st.integers(0, 100_000),
    n=st.integers(1, 6_000),
    ties=st.booleans(),
    side=st.sampled_from([1.0, -1.0]),
    mark=st.sampled_from([80.0, 100.0, 120.0]),
    needs=st.lists(st.floats(0.001, 400.0), min_size=1, max_size=6),
)
def test_dense_queue_ranks_walks_and_sums_like_the_compacting_queue(
    seed: int, n: int, ties: bool, side: float, mark: float, needs: list[float]
) -> None:
    # Arrange
    book = _book(seed, n, ties)
    old, dense = _queues(book, mark, side)
    size_old, size_new = book["size"].copy(), book["size"].copy()

    # Assert: the same candidates and capacity (bit for bit)
    np.testing.assert_array_equal(dense.candidates, old.candidates)
    assert dense.capacity_exact(book["size"]) == old.capacity[1]  # type: ignore[index]

    # Act and assert: the walks consume the queue the same way, need after need
    for need in needs:
        got_old = old.walk(size_old, need)
        got_new = dense.walk(size_new, need)
        np.testing.assert_array_equal(got_new[0], got_old[0])
        np.testing.assert_array_equal(got_new[1], got_old[1])
        size_old[got_old[0]] -= np.sign(size_old[got_old[0]]) * got_old[1]
        size_new[got_new[0]] -= np.sign(size_new[got_new[0]]) * got_new[1]
        # the ranked prefixes agree wherever both are ranked
        common = min(len(old.accounts), len(dense.accounts))
        np.testing.assert_array_equal(dense.accounts[:common], old.accounts[:common])
        assert dense.head == old.head

    # Assert: everything ranked, the full orders are equal
    old.ensure(len(old.candidates))
    dense.ensure(len(dense.candidates))
    np.testing.assert_array_equal(dense.accounts, old.accounts)


@settings(max_examples=150, deadline=None)
@given(
    seed=st.integers(0, 100_000),
    n=st.integers(1, 3_000),
    ties=st.booleans(),
    side=st.sampled_from([1.0, -1.0]),
    fraction=st.floats(0.0, 1.5),
)
def test_capacity_partial_sum_reaches_the_bound_or_is_the_full_sum(
    seed: int, n: int, ties: bool, side: float, fraction: float
) -> None:
    # Arrange
    book = _book(seed, n, ties)
    _, dense = _queues(book, 100.0, side)
    full = dense.capacity_exact(book["size"])
    bound = fraction * full

    # Act
    got = dense.capacity_at_least(book["size"], bound)

    # Assert: a partial sum at least the bound (never more than the full sum, float dust
    # aside), or the full sum itself
    if got >= bound and got != full:
        assert got <= full * (1 + 1e-12)
        assert capacity_reaches_nb(book["size"], dense._dense, bound) == got
    else:
        assert got == full


def test_dense_queue_breaks_ties_by_account_id() -> None:
    # Three shorts with the same score (same size, entry, margin), one better: 3 first, then
    # 1, 4, 6 in account order; 0 (a long), 2 (a loser) and 5 (a venue account) are no
    # candidates
    size = np.array([1.0, -1.0, -1.0, -2.0, -1.0, -1.0, -1.0])
    entry = np.array([100.0, 110.0, 90.0, 110.0, 110.0, 110.0, 110.0])
    margin = np.full(7, 10.0)
    kind = np.array([0, 0, 0, 0, 0, 3, 0], dtype=np.int8)
    dense = np.empty(7)
    count, _ = pnl_leverage_scores_nb(size, entry, margin, kind, 100.0, -1.0, dense)
    queue = DenseQueue(dense, count, 0)
    queue.ensure(7)
    assert queue.accounts.tolist() == [3, 1, 4, 6]
    # score of account 1: pnl% 10/110, leverage 100 / (10 + 10) = 5
    assert dense[1] == pytest.approx(10 / 110 * 5)
    assert np.isneginf(dense[[0, 2, 5]]).all()


# ---------------------------------------------------------------------------- engine twins
VENUES = ["binance", "bybit", "okx", "bitmex", "hyperliquid", "dydx_v4"]


def _spec(venue: str, bitmex_ranking: bool) -> MarketSpec:
    spec = preset(venue, "BTC")
    if not bitmex_ranking:
        return spec
    data = json.loads(spec.to_json())
    data["adl"] = {**data["adl"], "ranking": "pnl_leverage"}
    return MarketSpec.from_mapping(data)


def _run(spec: MarketSpec, seed: int, n: int, dense: bool, fund: float) -> Exchange:
    rng = np.random.default_rng(seed)
    ex = Exchange(seed=seed)
    ex.risk.dense_queue = dense
    m = ex.list_market(spec)
    price = 2_000.0
    ex.set_mark(m, price)
    ex.set_liquidity(m, ConstantDepthBook(depth_per_pct=n * 0.2, half_life_s=30.0))
    if fund > 0:
        ex.deposit(ex.insurance_account, fund)
    ids = ex.open_accounts(n, margin_mode=MarginMode.ISOLATED)
    lot = spec.lot_size
    size = np.maximum(np.round(rng.uniform(0.05, 3.0, n) / lot), 1) * lot
    size *= np.where(rng.random(n) < 0.5, 1.0, -1.0)
    max_lev = 1.0 / float(spec.tier_arrays.imr[0])
    leverage = np.minimum(rng.choice([2.0, 5.0, 10.0, 20.0, 50.0], n), max_lev)
    entry = price * (1.0 + rng.choice([-0.01, 0.0, 0.01], n))
    cash = np.abs(size) * price * (1.3 / leverage + 0.03)
    ex.deposit_many(ids, cash)
    ex.open_positions(m, ids, size, entry, leverage=leverage)
    ts = 10**9
    for move in rng.choice([-0.04, -0.02, 0.015, 0.03, -0.06], 6):
        price *= 1.0 + float(move)
        ex.set_mark(m, price, ts_ns=ts)
        ts += 10**9
    return ex


@pytest.mark.parametrize("bitmex_ranking", [False, True])
@pytest.mark.parametrize("venue", VENUES)
@settings(max_examples=4, deadline=None)
@given(seed=st.integers(0, 10_000), fund=st.sampled_from([0.0, 50.0, 5_000.0]))
def test_risk_steps_with_the_dense_queue_match_the_compacting_queue(
    venue: str, bitmex_ranking: bool, seed: int, fund: float
) -> None:
    # Arrange: one book, run twice
    spec = _spec(venue, bitmex_ranking)

    # Act
    fast = _run(spec, seed, 3_000, True, fund)
    reference = _run(spec, seed, 3_000, False, fund)

    # Assert: same journal (every event), same state, same step reports
    assert fast.journal.to_arrow().equals(reference.journal.to_arrow())
    assert fast.state_hash() == reference.state_hash()
    assert [r.__dict__ for r in fast.risk.reports] == [r.__dict__ for r in reference.risk.reports]
