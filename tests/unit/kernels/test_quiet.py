"""Quiet stretches (:mod:`deleverage.engine.quiet`, :mod:`deleverage.sim.quiet`).

- Engine twin: random books (isolated and cross positions, one or two markets, some accounts
  called) are marked along random walks; the quiet prefix that the bands and kernels admit is
  applied in bulk on one engine and by ``set_mark`` one mark at a time on the other. Journals,
  state hashes, called sets and step reports must be identical, and the step-by-step engine
  must have called or liquidated nobody in the prefix (the oracle is the real risk step).
- Venue twin: :func:`quiet_path_nb` against the runner's own :class:`VenuePrice` and
  :class:`Arbitrageurs` stepped one step at a time (book and Binance mark rules, decaying
  dislocation, arbitrageurs with latency, inflow and cost), and against its plain-Python run.
- The journal's per-row times equal one append per event.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deleverage import Exchange, MarginMode, MarketSpec
from deleverage.engine.events import EventKind, Journal, MarkPrice
from deleverage.engine.level_index import ZONE_RTOL
from deleverage.engine.quiet import (
    _cross_terms,
    advance_quiet,
    called_open_nb,
    called_step_nb,
    quiet_bands,
    quiet_mark_nb,
)
from deleverage.rules import margin as mm
from deleverage.sim.pricing import ArbitrageSpec, PricingSpec
from deleverage.sim.quiet import RULE_BINANCE, RULE_BOOK, quiet_path, quiet_path_nb
from deleverage.sim.quiet_near import NEAR_REL
from deleverage.sim.venue_price import VenuePrice
from deleverage.venues import preset

_NS = 1_000_000_000


def _book(seed: int, n_markets: int, cross_share: float) -> Exchange:
    rng = np.random.default_rng(seed)
    ex = Exchange()
    marks = [60_000.0, 3_000.0][:n_markets]
    for m, mark in enumerate(marks):
        ex.list_market(MarketSpec.simple(f"M{m}", max_leverage=50, maintenance_rate=0.01))
        ex.set_mark(m, mark, ts_ns=1)
    n = 300
    cross = rng.random(n) < cross_share
    ids = []
    for i in range(n):
        mode = MarginMode.CROSS if cross[i] else MarginMode.ISOLATED
        ids.append(ex.open_account(margin_mode=mode))
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


def _walk(
    rng: np.random.Generator, start: list[float], steps: int, vol: float, drift: float
) -> np.ndarray:
    moves = np.exp(np.cumsum(rng.normal(drift, vol, (steps, len(start))), axis=0))
    return np.round(np.asarray(start) * moves, 2)


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    n_markets=st.integers(1, 2),
    cross_share=st.sampled_from([0.0, 0.3, 1.0]),
    vol=st.sampled_from([1e-4, 1e-3, 5e-3]),
    shock=st.floats(-0.05, 0.05),
    drift=st.sampled_from([0.0, 2e-4, -2e-4]),
    touch=st.booleans(),
)
def test_bulk_stretch_equals_step_by_step(
    seed: int, n_markets: int, cross_share: float, vol: float, shock: float, drift: float,
    touch: bool,
) -> None:  # fmt: skip
    rng = np.random.default_rng(seed)
    fast, slow = _book(seed, n_markets, cross_share), _book(seed, n_markets, cross_share)
    slow.quiet_marks.enabled = False  # the oracle is the full risk step at every mark
    start = [st.mark * (1.0 + shock) for st in fast.markets]
    for ex in (fast, slow):  # a first risk step at the shocked marks: calls, liquidations
        for m, p in enumerate(start):
            ex.set_mark(m, round(p, 2), ts_ns=10 * _NS)
        cross = [a for a in range(ex.n_accounts) if ex.columns(0).mode[a] == 0]
        if touch and cross:  # touched after the cross index's build: bounded afresh
            ex.deposit(cross[-1], 1.0, ts_ns=10 * _NS)
    bands = quiet_bands(fast)
    if bands is None:
        return
    marks = _walk(rng, [st.mark for st in fast.markets], 200, vol, drift)
    dropped = np.zeros(len(bands.called_market), dtype=np.bool_)
    out = np.empty_like(dropped)
    count = 0
    for row in marks:
        quiet = quiet_mark_nb(
            row, bands.long_max, bands.short_min, bands.p0_index, bands.q_index,
            bands.p0_dirty, bands.q_dirty, ZONE_RTOL,
        ) and called_step_nb(
            row, bands.called_market, bands.called_long, bands.called_zone, bands.called_liq,
            dropped, out, ZONE_RTOL,
        )  # fmt: skip
        if not quiet:
            break
        dropped[:] = out
        count += 1
    ts = (11 + np.arange(count, dtype=np.int64)) * _NS
    advance_quiet(fast, marks[:count], ts, None, dropped)
    for j in range(count):
        for m in range(n_markets):
            slow.set_mark(m, float(marks[j, m]), ts_ns=int(ts[j]))
    assert fast.journal.to_arrow().equals(slow.journal.to_arrow())
    assert fast.state_hash() == slow.state_hash()
    for rf, rs in zip(fast.risk.markets, slow.risk.markets, strict=True):
        assert np.array_equal(rf.called_isolated, rs.called_isolated)
        assert np.array_equal(rf.called_cross, rs.called_cross)
        assert rf.capital_ts == rs.capital_ts
    assert fast.risk.reports == slow.risk.reports
    assert fast.markets[0].mark == slow.markets[0].mark


def test_a_mark_in_the_zone_is_not_quiet() -> None:
    ex = _book(3, 1, 0.0)
    ex.set_mark(0, 60_000.0, ts_ns=10 * _NS)
    bands = quiet_bands(ex)
    assert bands is not None
    assert math.isfinite(bands.long_max[0])
    inside = np.array([bands.long_max[0] * 0.999])
    args = (bands.short_min, bands.p0_index, bands.q_index, bands.p0_dirty, bands.q_dirty)
    assert not quiet_mark_nb(inside, bands.long_max, *args, ZONE_RTOL)
    assert quiet_mark_nb(np.array([60_000.0]), bands.long_max, *args, ZONE_RTOL)


#: The kernel's margin-call arguments with no call window (market -1).
_NO_CALLS = (
    -1, np.zeros(2, np.int64), 0, np.zeros(0, np.int64), np.zeros(0), np.zeros(0),
    np.zeros(0, np.bool_), np.zeros(0), np.zeros(0), np.zeros(0), np.zeros(1), np.zeros(1),
    np.zeros(1), 0.0, 1.0, np.zeros(1, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64),
    np.zeros(0, np.int64),
    np.zeros(0), np.zeros(1, np.int64), np.zeros(1, np.int64), NEAR_REL,
)  # fmt: skip


def _venue_args(
    rule: int, d0: float, capital: float, inflow: float, cost: float, lag: int, steps: int
) -> tuple[object, ...]:
    rng = np.random.default_rng(7)
    n = steps + 2
    x = np.round(100.0 * np.exp(np.cumsum(rng.normal(0, 1e-3, n))), 4).reshape(n, 1)
    index = x * 1.0005
    hist = np.zeros((1, lag + n))
    return (
        1, n, 1.0, x, index, index.copy(), np.array([rule]), np.array([d0]),
        np.array([0.5 ** (1 / 60)]), np.array([capital]), np.array([inflow]),
        np.array([inflow * 1.0]), np.array([cost]), np.array([lag]), hist,
        np.array([28_800.0]), np.array([28_800.0]), np.array([1e-4]), np.array([-0.02]),
        np.array([math.inf]), np.array([-math.inf]), np.array([math.inf]), np.ones(1),
        math.inf, np.ones(1), math.inf, np.zeros(0, np.int64), np.zeros(0, np.bool_),
        np.zeros(0), np.zeros(0), np.zeros(0, np.bool_), np.empty((n, 1)), np.empty((n, 1)),
        np.empty((n, 1)), *_NO_CALLS,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("rule", "d0", "capital", "inflow", "cost", "lag"),
    [
        (RULE_BOOK, -0.03, 0.0, 0.0, 0.0, 0),  # resilience only
        (RULE_BOOK, -0.002, 1e6, 10.0, 0.001, 3),  # inside the cost: capital grows, no trade
        (RULE_BINANCE, -0.002, 0.0, 5.0, 0.001, 0),  # inflow only, Binance mark
        (RULE_BOOK, -0.03, 1e6, 0.0, 0.001, 2),  # they trade once the lag has passed
    ],
)
def test_kernel_follows_the_venue_price_step_by_step(
    rule: int, d0: float, capital: float, inflow: float, cost: float, lag: int
) -> None:
    steps = 400
    args = _venue_args(rule, d0, capital, inflow, cost, lag, steps)
    ref = _venue_args(rule, d0, capital, inflow, cost, lag, steps)
    count = quiet_path_nb(*args)  # type: ignore[arg-type]
    assert quiet_path(*ref) == count
    outs = slice(-3 - len(_NO_CALLS), -len(_NO_CALLS))  # out_mark, out_d, out_cap
    for a, b in zip(args[outs], ref[outs], strict=True):
        assert np.array_equal(np.asarray(a)[:count], np.asarray(b)[:count])
    # The runner's own objects, one step at a time (the step-by-step run).
    x, index = np.asarray(args[3]), np.asarray(args[4])
    pricing = PricingSpec(
        mark="binance" if rule == RULE_BINANCE else "book",
        arbitrage=ArbitrageSpec(capital=capital, inflow_per_s=inflow, latency_s=lag, cost=cost),
    )
    venue = VenuePrice(pricing, pricing.rule(None), dt_s=1.0)
    venue.dislocation = d0
    venue._next_sample_s = math.inf
    venue._basis.append(-0.02)
    marks, capitals = [], []
    traded = None
    for k in range(1, steps + 2):
        before = venue.arbitrageurs.traded_notional
        venue.start_step(
            exogenous=float(x[k, 0]), index=float(index[k, 0]), oracle=float(index[k, 0]),
            t_s=float(k), decay=0.5 ** (1 / 60), book=None, ts_ns=k * _NS, first=False,
        )  # fmt: skip
        if venue.arbitrageurs.traded_notional != before:
            traded = k
            break
        marks.append(
            venue.mark(
                float(x[k, 0]),
                index=float(index[k, 0]),
                oracle=float(index[k, 0]),
                funding_rate=1e-4,
                time_left_fraction=(28_800.0 - k) / 28_800.0,
            )
        )
        capitals.append(venue.arbitrageurs.capital)
        venue.end_step()
    out_mark, out_cap = np.asarray(args[outs][0]), np.asarray(args[outs][2])
    expected = len(marks) if traded is not None else min(len(marks), count)
    if traded is not None:
        assert count == traded - 1  # the kernel stops before the arbitrageurs' trade
    assert np.array_equal(out_mark[:expected, 0], np.array(marks[:expected]))
    assert np.array_equal(out_cap[:expected, 0], np.array(capitals[:expected]))


def test_journal_rows_with_their_own_times_equal_single_appends() -> None:
    bulk, single = Journal(), Journal()
    ts = np.array([5, 6, 6, 9], dtype=np.int64) * _NS
    prices = np.array([1.0, 2.0, 3.0, 4.5])
    markets = np.array([0, 1, 0, 1])
    bulk.append_columns(EventKind.MARK_PRICE, ts, market=markets, price=prices)
    for t, m, p in zip(ts.tolist(), markets.tolist(), prices.tolist(), strict=True):
        single.append(MarkPrice(ts_ns=t, market=m, price=p))
    assert bulk.since(1).equals(single.since(1))
    got = bulk.arrays_since(2, ("ts_ns", "market", "price"))
    want = single.arrays_since(2, ("ts_ns", "market", "price"))
    assert all(np.array_equal(got[c], want[c]) for c in want)
    assert bulk.to_arrow().equals(single.to_arrow())
    assert bulk.last_ts_ns == single.last_ts_ns == 9 * _NS


def _cross_terms_numpy(
    ex: Exchange, acc: np.ndarray, marks: np.ndarray, level: float
) -> tuple[np.ndarray, ...]:
    """The bound's terms with NumPy, market by market (docs/formulas.md §14): the oracle."""
    equity = ex._cash[acc].astype(np.float64)
    maint, k_level, k_one = np.zeros(len(acc)), np.zeros(len(acc)), np.zeros(len(acc))
    for state, mark in zip(ex.markets, marks, strict=True):
        cols = ex.columns(state.id)
        size = cols.size[acc]
        cross = (size != 0.0) & (cols.mode[acc] == 0)
        notional = np.abs(size) * mark
        equity += np.where(cross, size * (mark - cols.entry[acc]), 0.0)
        maint += np.where(cross, mm.maintenance_margin(notional, state.tiers), 0.0)
        t = state.tiers
        reach = t.mmr[np.searchsorted(t.floor, 2.0 * notional, side="right") - 1]
        k_level += np.where(cross, notional * (level + reach), 0.0)
        k_one += np.where(cross, notional * (1.0 + reach), 0.0)
    return equity, maint, k_level, k_one


@settings(max_examples=20, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    level=st.sampled_from([0.5, 0.8, 1.0]),
    move=st.floats(-0.3, 0.3),
)
def test_cross_terms_equal_numpy(seed: int, level: float, move: float) -> None:
    """The compiled terms of the cross bound equal the NumPy formulas bit for bit (tiered
    Binance and OKX tables, cross and isolated positions, marks moved from the entries)."""
    rng = np.random.default_rng(seed)
    ex = Exchange()
    specs = [preset("binance", "BTCUSDT"), preset("okx", "BTC"), MarketSpec.simple("S")]
    marks0 = [60_000.0, 30_000.0, 2_000.0]
    for spec, mark in zip(specs, marks0, strict=True):
        m = ex.list_market(spec)
        ex.set_mark(m, mark, ts_ns=1)
    n = 60
    modes = rng.random(n) < 0.7
    ids = [ex.open_account(margin_mode=MarginMode.CROSS if c else MarginMode.ISOLATED)
           for c in modes]  # fmt: skip
    ex.deposit_many(ids, rng.uniform(2e7, 5e7, n))
    for m, mark in enumerate(marks0):
        acc = np.array(ids)[rng.random(n) < 0.7]
        notional = rng.choice([1e3, 1e5, 3e6], len(acc)) * rng.uniform(0.5, 2.0, len(acc))
        sizes = np.round(rng.choice([-1.0, 1.0], len(acc)) * notional / mark, 3)
        acc, sizes = acc[sizes != 0], sizes[sizes != 0]
        ex.open_positions(m, acc, sizes, np.full(len(acc), mark), leverage=2.0)
    acc = np.array(sorted(rng.choice(ids, 40, replace=False)), dtype=np.int64)
    marks = np.array(marks0) * (1.0 + move * rng.uniform(0.0, 1.0, 3))
    got = _cross_terms(ex, acc, marks, level)
    want = _cross_terms_numpy(ex, acc, marks, level)
    for g, w in zip(got, want, strict=True):
        assert np.array_equal(g, w)


def test_quiet_reports_equal_constructed_ones_and_are_distinct() -> None:
    """A quiet stretch's reports held as a run (:class:`deleverage.engine.report_log.QuietRun`)
    are the constructor's reports, field for field, each its own object."""
    from dataclasses import asdict

    from deleverage.engine.report_log import QuietRun
    from deleverage.engine.risk.support import StepReport

    ts = [5, 7, 9]
    run = QuietRun(np.array(ts), 2, -1.5, np.zeros(0, np.int64), np.zeros(0, np.int64))
    got = run.reports()
    want = [StepReport(market=m, ts_ns=t, backstop_pnl=-1.5) for t in ts for m in range(2)]
    assert got == want
    assert [run.report(i) for i in range(len(run))] == want
    assert [asdict(r) for r in got] == [asdict(r) for r in want]
    assert all(type(r) is StepReport and type(r.ts_ns) is int for r in got)
    got[0].margin_calls = 3
    assert got[1].margin_calls == 0
    assert run.reports()[0].margin_calls == 0
    assert len({id(r) for r in got}) == len(got)


@given(
    st.lists(st.sampled_from([0.0, -0.0, 1.5, -2.0, math.nan]), min_size=1, max_size=6),
    st.lists(st.sampled_from([0, 1]), min_size=6, max_size=6),
    st.lists(st.integers(0, 5), max_size=6),
)
@settings(max_examples=200, deadline=None)
def test_called_open_equals_the_array_test(
    size: list[float], mode: list[int], called: list[int]
) -> None:
    """:func:`.called_open_nb` against ``not (any(size == 0) or any(mode == 0))`` over the
    called accounts (the test :func:`.quiet_bands` makes before any band)."""
    s = np.array(size, dtype=np.float64)
    c = np.array([a % len(size) for a in called], dtype=np.int64)
    md = np.array(mode[: len(size)], dtype=np.int8)
    want = not (np.any(s[c] == 0.0) or np.any(md[c] == 0))
    assert called_open_nb(s, md, c) == want
