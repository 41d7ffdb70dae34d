"""The ADL cells (``engine/adl_index.py``) against the dense pass they stand in for.

Queue level: random books (both sides, venue accounts, flat rows, losers, non-positive
margins, scores tied on a coarse grid, spread or equal entries), built once and then changed
between queues (positions opened, resized, flipped, closed, margins moved: the touched
accounts reported as the engine reports them, rebuilds past the dirty limit included), give
the same ranking, walks, covers and capacities as :class:`DenseQueue` over a fresh dense pass
of the live columns; a queue still held when the cells change keeps what it stood for.
Engine level: risk steps with ``RiskEngine.adl_index`` on and off (the dense pass of every
step) on every venue preset's ranking, several markets, trades and margin moves between
marks, funding, end in the same journal, state hash and step reports.
"""

from __future__ import annotations

import json

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deleverage import Exchange, MarginMode, MarketSpec, preset
from deleverage.engine import adl_index as adl_index_module
from deleverage.engine.adl_index import AdlIndex, select_top_nb
from deleverage.engine.kernels import top_scores_nb
from deleverage.engine.risk.adl_queue import (
    DenseQueue,
    IndexedQueue,
    _sample_mean_size,
    pnl_leverage_scores_nb,
)
from deleverage.liquidity import ConstantDepthBook


def _book(rng: np.random.Generator, n: int, ties: bool, spread: bool) -> dict[str, np.ndarray]:
    if ties:  # a coarse grid: many candidates share a score
        size = rng.integers(-3, 4, n) * 1.0
        entry = rng.choice([90.0, 100.0, 110.0], n)
        margin = rng.integers(-1, 4, n) * 5.0
    else:
        size = np.where(rng.random(n) < 0.1, 0.0, rng.normal(0.0, 5.0, n))
        entry = rng.uniform(50.0, 150.0, n) if spread else np.full(n, 100.0)
        margin = np.where(rng.random(n) < 0.03, -rng.uniform(0, 50, n), rng.uniform(0, 80, n))
    kind = np.where(rng.random(n) < 0.03, 1, 0).astype(np.int8)
    return {"size": size, "entry": entry, "margin": margin, "kind": kind}


Columns = tuple[
    npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.int8]
]


def _columns(book: dict[str, np.ndarray]) -> Columns:
    return book["size"], book["entry"], book["margin"], book["kind"]


def _reference(book: dict[str, np.ndarray], mark: float, side: float) -> DenseQueue:
    dense = np.empty(len(book["size"]))
    count, _ = pnl_leverage_scores_nb(*_columns(book), mark, side, dense)
    return DenseQueue(dense, count, 0)


def _change(rng: np.random.Generator, book: dict[str, np.ndarray], share: float) -> np.ndarray:
    """Open, resize, flip, close positions and move margins of a random share of the
    accounts; return the accounts touched (as the engine reports them)."""
    n = len(book["size"])
    touched = np.flatnonzero(rng.random(n) < share)
    what = rng.integers(0, 5, len(touched))
    size, entry, margin = book["size"], book["entry"], book["margin"]
    for a, w in zip(touched.tolist(), what.tolist(), strict=True):
        if w == 0:  # close
            size[a] = 0.0
        elif w == 1:  # flip side
            size[a] = -size[a] if size[a] != 0.0 else 1.0
        elif w == 2:  # resize and re-enter
            size[a] = size[a] * 2.0 + (0.5 if size[a] >= 0 else -0.5)
            entry[a] = float(rng.choice([90.0, 100.0, 110.0, 125.0]))
        elif w == 3:  # margin moved (to zero or below, too)
            margin[a] = float(rng.choice([-5.0, 0.0, 1.0, 30.0]))
        else:  # open from flat at a new entry
            size[a] = float(rng.choice([-2.0, 2.0]))
            entry[a] = float(rng.uniform(60.0, 140.0))
    return touched.astype(np.int64)


def _assert_same_queue(
    got: IndexedQueue,
    ref: DenseQueue,
    book: dict[str, np.ndarray],
    needs: list[float],
    *,
    unchanged: bool = True,
) -> None:
    size_got, size_ref = book["size"].copy(), book["size"].copy()
    if unchanged:  # the engine asks for a partial capacity only while nothing moved
        bound = float(np.abs(book["size"]).sum()) * 0.01
        assert got.capacity_at_least(book["size"], bound) == ref.capacity_at_least(
            book["size"], bound
        )
    for need in needs:
        walk_got = got.walk(size_got, need)
        walk_ref = ref.walk(size_ref, need)
        np.testing.assert_array_equal(walk_got[0], walk_ref[0])
        np.testing.assert_array_equal(walk_got[1], walk_ref[1])
        size_got[walk_got[0]] -= np.sign(size_got[walk_got[0]]) * walk_got[1]
        size_ref[walk_ref[0]] -= np.sign(size_ref[walk_ref[0]]) * walk_ref[1]
        np.testing.assert_array_equal(got.accounts, ref.accounts)
        assert got.head == ref.head
    np.testing.assert_array_equal(got.candidates, ref.candidates)
    assert got.capacity_exact(book["size"]) == ref.capacity_exact(book["size"])
    got.ensure(len(got.candidates))
    ref.ensure(len(ref.candidates))
    np.testing.assert_array_equal(got.accounts, ref.accounts)


@settings(max_examples=120, deadline=None)
@given(
    seed=st.integers(0, 100_000),
    n=st.integers(1, 6_000),
    ties=st.booleans(),
    spread=st.booleans(),
    marks=st.lists(st.sampled_from([80.0, 95.0, 100.0, 105.0, 120.0]), min_size=1, max_size=4),
    share=st.sampled_from([0.0, 0.002, 0.05, 0.3]),
    floor=st.sampled_from([4, 1024]),
    needs=st.lists(st.floats(0.001, 400.0), min_size=1, max_size=5),
)
def test_indexed_queue_ranks_walks_and_sums_like_a_fresh_dense_pass(
    seed: int,
    n: int,
    ties: bool,
    spread: bool,
    marks: list[float],
    share: float,
    floor: int,
    needs: list[float],
) -> None:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(adl_index_module, "DIRTY_FLOOR", floor)
        _check_queues(seed, n, ties, spread, marks, share, needs)


def _check_queues(
    seed: int,
    n: int,
    ties: bool,
    spread: bool,
    marks: list[float],
    share: float,
    needs: list[float],
) -> None:
    # Arrange: cells built once; between queues, positions change and are reported
    rng = np.random.default_rng(seed)
    book = _book(rng, n, ties, spread)
    index = AdlIndex(0)
    index.build(*_columns(book))
    for step, mark in enumerate(marks):
        if step:
            index.touch(_change(rng, book, share))
        for side in (1, -1):
            # Act
            cells = index.side(side, *_columns(book))
            got = IndexedQueue(cells, _columns(book), mark, n, 0)

            # Assert: the same queue as the dense pass over the live columns
            _assert_same_queue(got, _reference(book, mark, float(side)), book, needs)


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 100_000), n=st.integers(50, 3_000), ties=st.booleans())
def test_a_queue_held_across_a_change_keeps_the_scores_of_its_creation(
    seed: int, n: int, ties: bool
) -> None:
    # Arrange: a queue made, then positions change and a new queue of the side is made
    rng = np.random.default_rng(seed)
    book = _book(rng, n, ties, spread=True)
    index = AdlIndex(0)
    index.build(*_columns(book))
    index.touch(_change(rng, book, 0.05))
    old = IndexedQueue(index.side(-1, *_columns(book)), _columns(book), 100.0, n, 0)
    reference_old = _reference(book, 100.0, -1.0)
    before = {k: v.copy() for k, v in book.items()}

    # Act: the cells take in new changes (the held queue is detached first)
    index.touch(_change(rng, book, 0.05))
    new = IndexedQueue(index.side(-1, *_columns(book)), _columns(book), 100.0, n, 0)

    # Assert: each queue is its own moment's dense pass
    _assert_same_queue(old, reference_old, before, [5.0, 50.0], unchanged=False)
    _assert_same_queue(new, _reference(book, 100.0, -1.0), book, [5.0, 50.0])


def test_cell_bounds_hold_every_row_score() -> None:
    # Arrange: spread entries and margins, marks across and beyond the entries
    rng = np.random.default_rng(7)
    book = _book(rng, 20_000, ties=False, spread=True)
    index = AdlIndex(0)
    index.build(*_columns(book))
    for side in (1, -1):
        cells = index.side(side, *_columns(book))
        assert cells.cells is not None
        acc, _, _, _, start = cells.cells
        for mark in (40.0, 90.0, 100.0, 133.0, 200.0):
            dense = np.empty(len(book["size"]))
            pnl_leverage_scores_nb(*_columns(book), mark, float(side), dense)

            # Act
            bounds = cells.bounds(mark)

            # Assert: no row scores above its cell's bound
            for c in range(len(bounds)):
                rows = acc[start[c] : start[c + 1]]
                if len(rows):
                    assert dense[rows].max() <= bounds[c]


def test_ties_are_broken_by_account_id_through_the_cells() -> None:
    # Three shorts with the same score, one better: 3 first, then 1, 4, 6 in account order;
    # 0 (a long), 2 (a loser) and 5 (a venue account) are no candidates
    book = {
        "size": np.array([1.0, -1.0, -1.0, -2.0, -1.0, -1.0, -1.0]),
        "entry": np.array([100.0, 110.0, 90.0, 110.0, 110.0, 110.0, 110.0]),
        "margin": np.full(7, 10.0),
        "kind": np.array([0, 0, 0, 0, 0, 3, 0], dtype=np.int8),
    }
    index = AdlIndex(0)
    index.build(*_columns(book))
    queue = IndexedQueue(index.side(-1, *_columns(book)), _columns(book), 100.0, 7, 0)
    queue.ensure(7)
    assert queue.accounts.tolist() == [3, 1, 4, 6]


# ---------------------------------------------------------------------------- engine twins
VENUES = ["binance", "bybit", "okx", "bitmex", "hyperliquid", "dydx_v4", "drift"]


def _spec(venue: str, symbol: str, bitmex_ranking: bool) -> MarketSpec:
    data = json.loads(preset(venue, "BTC").to_json())
    data["symbol"] = symbol  # two markets of the venue's BTC rules
    if bitmex_ranking:
        data["adl"] = {**data["adl"], "ranking": "pnl_leverage"}
    return MarketSpec.from_mapping(data)


def _run(
    venue: str, bitmex: bool, seed: int, n: int, indexed: bool, fund: float, *, check: bool = False
) -> Exchange:
    rng = np.random.default_rng(seed)
    ex = Exchange(seed=seed, check_invariants=check)
    ex.risk.adl_index = indexed
    markets = []
    for symbol, price in (("AAAUSD", 2_000.0), ("BBBUSD", 300.0)):
        spec = _spec(venue, symbol, bitmex)
        m = ex.list_market(spec)
        ex.set_mark(m, price)
        ex.set_liquidity(m, ConstantDepthBook(depth_per_pct=n * 0.2, half_life_s=30.0))
        markets.append((m, spec, price))
    if fund > 0:
        ex.deposit(ex.insurance_account, fund)
    ids = ex.open_accounts(n, margin_mode=MarginMode.ISOLATED)
    ex.deposit_many(ids, np.full(n, 1e9))  # cash for the trades between marks
    for m, spec, price in markets:
        lot = spec.lot_size
        size = np.maximum(np.round(rng.uniform(0.05, 3.0, n) * 2000.0 / price / lot), 1) * lot
        size *= np.where(rng.random(n) < 0.5, 1.0, -1.0)
        max_lev = 1.0 / float(spec.tier_arrays.imr[0])
        leverage = np.minimum(rng.choice([2.0, 5.0, 10.0, 20.0, 50.0], n), max_lev)
        entry = price * (1.0 + rng.choice([-0.01, 0.0, 0.01], n))
        ex.open_positions(m, ids, size, entry, leverage=leverage)
    prices = [p for _, _, p in markets]
    ts = 10**9
    for step in range(6):
        for k, (m, spec, _) in enumerate(markets):
            prices[k] *= 1.0 + float(rng.choice([-0.04, -0.02, 0.015, 0.03, -0.06]))
            ex.set_mark(m, prices[k], ts_ns=ts)
            ts += 10**8
            # between marks: positions opened, changed and closed, margins moved, funding
            lot = spec.lot_size
            px = round(prices[k] / spec.tick_size) * spec.tick_size
            for a in rng.choice(ids, 5, replace=False).tolist():
                held = float(ex._positions[m].size[a])
                qty = abs(held) if rng.random() < 0.4 and held else lot * rng.integers(1, 50)
                buy = held < 0 if rng.random() < 0.5 else bool(rng.random() < 0.5)
                buyer, seller = (a, ex.liquidity_account) if buy else (ex.liquidity_account, a)
                ex.trade(m, buyer=buyer, seller=seller, size=float(qty), price=px,
                         ts_ns=ts)  # fmt: skip
            a = int(rng.choice(ids))
            if ex._positions[m].size[a] != 0.0:
                ex.add_isolated_margin(a, m, 10.0, ts_ns=ts)
            if step == 3:
                ex.settle_funding(m, 0.0001, ts_ns=ts)
            if step == 2 and k == 0:  # accounts opened after the load, trading both markets
                fresh = ex.open_accounts(3, margin_mode=MarginMode.ISOLATED)
                ex.deposit_many(fresh, np.full(3, 1e9))
                for k2, (m2, spec2, _) in enumerate(markets):
                    px2 = round(prices[k2] / spec2.tick_size) * spec2.tick_size  # venue units
                    for a in fresh.tolist():
                        ex.trade(m2, buyer=ex.liquidity_account, seller=a, ts_ns=ts,
                                 size=spec2.lot_size * 40, price=px2)  # fmt: skip
                ids = np.concatenate([ids, fresh])
            ts += 10**8
    return ex


@pytest.mark.parametrize("bitmex_ranking", [False, True])
@pytest.mark.parametrize("venue", VENUES)
@settings(max_examples=3, deadline=None)
@given(seed=st.integers(0, 10_000), fund=st.sampled_from([0.0, 50.0, 5_000.0]))
def test_risk_steps_with_the_adl_cells_match_the_dense_pass(
    venue: str, bitmex_ranking: bool, seed: int, fund: float
) -> None:
    # Arrange and act: one book, run with the cells and with a dense pass every step
    fast = _run(venue, bitmex_ranking, seed, 2_000, True, fund)
    reference = _run(venue, bitmex_ranking, seed, 2_000, False, fund)

    # Assert: same journal (every event), same state, same step reports
    assert fast.journal.to_arrow().equals(reference.journal.to_arrow())
    assert fast.state_hash() == reference.state_hash()
    assert [r.__dict__ for r in fast.risk.reports] == [r.__dict__ for r in reference.risk.reports]
    if bitmex_ranking:  # both markets' cells were built at the load
        assert set(fast._adl_index) == {0, 1}


@pytest.mark.parametrize("seed", [3, 11])
def test_check_invariants_compares_the_cells_with_the_dense_pass(seed: int) -> None:
    # check_invariants mode compares every indexed queue with a dense pass of the live
    # columns as it is made (an assertion inside the engine) and gives the same run
    checked = _run("bitmex", True, seed, 800, True, 0.0, check=True)
    plain = _run("bitmex", True, seed, 800, False, 0.0)
    assert checked.state_hash() == plain.state_hash()
    assert any(r.adl_rounds for r in checked.risk.reports)


@settings(max_examples=150, deadline=None)
@given(
    seed=st.integers(0, 100_000),
    n=st.integers(1, 5_000),
    ties=st.booleans(),
    spread=st.booleans(),
    side=st.sampled_from([1.0, -1.0]),
    mark=st.sampled_from([80.0, 100.0, 120.0]),
    share=st.sampled_from([0.0, 0.01, 0.1]),
    k_share=st.floats(0.0, 1.2),
)
def test_cells_select_the_top_k_of_the_dense_pass(
    seed: int,
    n: int,
    ties: bool,
    spread: bool,
    side: float,
    mark: float,
    share: float,
    k_share: float,
) -> None:
    # Arrange: cells, then changes reported; the dense pass of the live columns
    rng = np.random.default_rng(seed)
    book = _book(rng, n, ties, spread)
    index = AdlIndex(0)
    index.build(*_columns(book))
    index.touch(_change(rng, book, share))
    cells = index.side(int(side), *_columns(book))
    dense = np.empty(n)
    count, _ = pnl_leverage_scores_nb(*_columns(book), mark, side, dense)
    k = max(1, int(k_share * count))
    assert cells.cells is not None
    acc, row_s, row_e, row_m, start = cells.cells
    dirty = cells.dirty.copy()
    dirty_score = np.where(np.isin(dirty, np.flatnonzero(dense > -np.inf)), dense[dirty], -np.inf)

    # Act
    got, scores, every = select_top_nb(
        cells.bounds(mark), start, acc, row_s, row_e, row_m, dirty, dirty_score, mark, side, k
    )

    # Assert: the set top_scores_nb keeps (all candidates when k reaches their count), with
    # the dense pass's scores
    want = np.flatnonzero(dense > -np.inf) if k >= count else top_scores_nb(dense, k)
    np.testing.assert_array_equal(np.sort(got), want)
    np.testing.assert_array_equal(scores[np.argsort(got)], dense[want])
    if every:  # claimed complete: every candidate is in (the converse may not be known)
        assert len(want) == count


@settings(max_examples=80, deadline=None)
@given(
    seed=st.integers(0, 100_000),
    n=st.integers(1, 40_000),
    side=st.sampled_from([1, -1]),
    share=st.sampled_from([0.0, 0.01, 0.1]),
)
def test_sampled_mean_size_is_the_dense_arrays(seed: int, n: int, side: int, share: float) -> None:
    # Arrange: cells, changes reported, a queue
    rng = np.random.default_rng(seed)
    book = _book(rng, n, ties=False, spread=True)
    index = AdlIndex(0)
    index.build(*_columns(book))
    index.touch(_change(rng, book, share))
    queue = IndexedQueue(index.side(side, *_columns(book)), _columns(book), 100.0, n, 0)

    # Act
    got = queue._sample_mean(book["size"])

    # Assert: the same float as the dense pass's strided sample
    assert got == _sample_mean_size(book["size"], _reference(book, 100.0, float(side))._dense)


def test_accounts_opened_after_the_build_are_scored_once() -> None:
    # Arrange: cells of 500 accounts; then 20 accounts open (touched twice each) and a
    # queue is made, then more changes and another queue
    rng = np.random.default_rng(5)
    book = _book(rng, 500, ties=False, spread=True)
    index = AdlIndex(0)
    index.build(*_columns(book))
    extra = _book(rng, 20, ties=False, spread=True)
    extra["size"][:] = -np.abs(extra["size"]) - 1.0  # shorts
    extra["margin"][:] = 10.0
    extra["kind"][:] = 0
    book = {k: np.concatenate([book[k], extra[k]]) for k in book}
    new = np.arange(500, 520, dtype=np.int64)
    index.touch(new)
    index.touch(new)
    for mark in (100.0, 90.0):
        # Act
        queue = IndexedQueue(index.side(-1, *_columns(book)), _columns(book), mark, 520, 0)

        # Assert: each new account once, the same queue as the dense pass
        assert len(np.unique(queue.dirty_accounts)) == len(queue.dirty_accounts)
        _assert_same_queue(queue, _reference(book, mark, -1.0), book, [3.0, 30.0, 300.0])
        index.touch(new[::2])


@pytest.mark.parametrize("held", [False, True])
def test_repeated_touches_are_taken_in_once_unless_a_queue_reads_the_cells(held: bool) -> None:
    # Arrange: 4,000 accounts (1/8 of a side's rows is under the 1,024 floor); a queue made
    rng = np.random.default_rng(9)
    book = _book(rng, 4_000, ties=False, spread=True)
    index = AdlIndex(0)
    index.build(*_columns(book))
    side = index.sides[-1]
    queues = [IndexedQueue(index.side(-1, *_columns(book)), _columns(book), 100.0, 4_000, 0)]
    if not held:
        queues.clear()  # dropped, as the engine drops a step's queues

    # Act: the same 200 accounts touched 30 times (6,000 entries, over 4 x the limit)
    touched = _change(rng, book, 0.05)[:200]
    for _ in range(30):
        index.touch(touched)

    # Assert: taken in once (the cells stay valid) unless a held queue reads them (then a
    # rebuild); the next queue is the dense pass's either way
    assert side.valid is not held
    assert held or len(side.dirty) == len(np.unique(touched))
    fresh = IndexedQueue(index.side(-1, *_columns(book)), _columns(book), 100.0, 4_000, 0)
    _assert_same_queue(fresh, _reference(book, 100.0, -1.0), book, [2.0, 40.0])
