"""Margin calls inside quiet stretches (:mod:`deleverage.engine.quiet_calls`).

Engine twin: random books of isolated positions (one or two markets, some accounts called)
are marked along random walks that cross the call level; the stretch kernel
(:func:`deleverage.sim.quiet.quiet_path_nb`, the oracle mark rule so that the marks are the
walk) runs with a call window and its prefix is applied in bulk on one engine, and by
``set_mark`` one mark at a time on the other. Journals, state hashes, called sets and step
reports must be identical; the step-by-step engine must have liquidated nobody in the prefix
and made exactly the calls the kernel made (the oracle is the real risk step).
"""

from __future__ import annotations

import math
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deleverage import Exchange, MarginMode, MarketSpec
from deleverage.engine.events import EventKind, Journal, MarginCall, MarkPrice
from deleverage.engine.levels import zone_prices_compiled
from deleverage.engine.quiet import advance_quiet, quiet_bands
from deleverage.engine.quiet_calls import (
    append_stretch_events,
    dirty_joins_nb,
    first_unbounded_nb,
    in_order_nb,
    take_clean_nb,
)
from deleverage.sim.quiet import RULE_ORACLE, CallArgs, call_args, quiet_path_nb
from deleverage.sim.quiet_near import NEAR_REL

_NS = 1_000_000_000
#: What :func:`_stretch` returns: the quiet prefix's length, the dropped entries, the calls.
Stretch = tuple[int, np.ndarray, tuple[int, np.ndarray, np.ndarray, np.ndarray] | None]


def _book(seed: int, n_markets: int, n: int = 400) -> Exchange:
    rng = np.random.default_rng(seed)
    ex = Exchange()
    marks = [60_000.0, 3_000.0][:n_markets]
    for m, mark in enumerate(marks):
        ex.list_market(MarketSpec.simple(f"M{m}", max_leverage=50, maintenance_rate=0.01))
        ex.set_mark(m, mark, ts_ns=1)
    ids = [ex.open_account(margin_mode=MarginMode.ISOLATED) for _ in range(n)]
    ex.deposit_many(ids, np.full(n, 1e6))
    for m, mark in enumerate(marks):
        acc = np.array(ids)[rng.random(n) < 0.8]
        sizes = rng.choice([-1.0, 1.0], len(acc)) * rng.uniform(0.5, 2.0, len(acc)) * 1e4 / mark
        sizes = np.round(sizes, 3)
        acc, sizes = acc[sizes != 0], sizes[sizes != 0]
        lev = rng.uniform(5.0, 45.0, len(acc))
        ex.open_positions(m, acc, sizes, np.full(len(acc), mark), leverage=lev)
    return ex


def _poison(w: CallArgs, marks: np.ndarray, seed: int) -> None:
    """Fill the room ``call_args`` leaves unset (the called arrays past the called entries,
    the calls' arrays) with entries that would change the stretch if the kernel read them
    before writing them: live markets, zone and liquidation prices among the marks."""
    rng = np.random.default_rng(seed)
    n_old, n_m = int(w.n_called[0]), marks.shape[1]
    room = len(w.market) - n_old
    w.market[n_old:] = rng.integers(-1, n_m, room)
    w.long[n_old:] = rng.random(room) < 0.5
    w.zone[n_old:] = rng.choice(marks.ravel(), room)
    w.liq[n_old:] = rng.choice(marks.ravel(), room)
    w.dropped[n_old:] = rng.random(room) < 0.5
    w.c_acc[n_old:] = rng.integers(0, 400, room)
    w.ev_step[:] = rng.integers(0, len(marks), len(w.ev_step))
    w.ev_acc[:] = rng.integers(0, 400, len(w.ev_acc))
    w.ev_ratio[:] = rng.random(len(w.ev_ratio))


def _stretch(
    ex: Exchange, marks: np.ndarray, window: int | tuple[int, int], near_rel: float = NEAR_REL,
    poison: int | None = None,
) -> Stretch | None:  # fmt: skip
    """The kernel's quiet prefix of ``marks`` from ``ex`` (oracle marks, no arbitrage or
    funding; called entries split for windows of half-width ``near_rel``; ``poison``: the
    unset room filled from that seed, :func:`_poison`): its length, the called entries
    dropped, the calls made."""
    bands = quiet_bands(ex, window=window)
    if bands is None:
        return None
    steps, n_m = marks.shape
    path = np.vstack([marks[:1], marks])  # the kernel starts at step 1
    w = call_args(ex, bands)
    if poison is not None:
        _poison(w, marks, poison)
    inf = np.full(n_m, math.inf)
    count = quiet_path_nb(
        1, steps + 1, 1.0, path, path, path, np.full(n_m, RULE_ORACLE, np.int64),
        np.zeros(n_m), np.ones(n_m), np.zeros(n_m), np.zeros(n_m), np.zeros(n_m), np.zeros(n_m),
        np.zeros(n_m, np.int64), np.zeros((n_m, steps)), inf, inf, np.zeros(n_m),
        np.zeros(n_m), inf, bands.long_max, bands.short_min, bands.p0_index, bands.q_index,
        bands.p0_dirty, bands.q_dirty, w.market, w.long, w.zone, w.liq, w.dropped,
        np.empty((steps, n_m)), np.empty((steps, n_m)), np.empty((steps, n_m)), w.call_m,
        w.ptr, w.n_long, w.acc, w.w_zone, w.w_liq, w.w_long, w.size, w.entry, w.margin,
        w.floor, w.mmr, w.cum, w.min_margin, w.level, w.n_called, w.c_acc, w.ev_step, w.ev_acc,
        w.ev_ratio, w.n_ev, np.zeros(1, np.int64), near_rel,
    )  # fmt: skip
    made = int(w.n_ev[0])
    calls = (w.call_m, w.ev_step[:made], w.ev_acc[:made], w.ev_ratio[:made]) if made else None
    return int(count), w.dropped[: int(w.n_called[0])], calls


def _pin(
    ex: Exchange, marks: np.ndarray, rng: np.random.Generator, share: float, liq: bool
) -> None:
    """Set a ``share`` of market 0's marks to the exact zone price (call level; ``liq``: or
    liquidation price) of a position near the mark: positions on the edge of the zone,
    within the index's slack, are evaluated exactly."""
    cols = ex.columns(0)
    n = ex.n_accounts
    live = np.flatnonzero((cols.size[:n] != 0.0) & (cols.mode[:n] != 0))
    level = ex.markets[0].spec.liquidation.margin_call_ratio
    tiers = ex.markets[0].tiers
    args = (cols.size[live], cols.entry[live], cols.isolated_margin[live])
    edges = zone_prices_compiled(*args, level, tiers)
    if liq:
        edges = np.concatenate([edges, zone_prices_compiled(*args, 1.0, tiers)])
    edges = edges[np.isfinite(edges)]
    for j in np.flatnonzero(rng.random(len(marks)) < share):
        near = edges[np.abs(edges / marks[j, 0] - 1.0) < 0.002]
        if len(near):
            marks[j, 0] = float(rng.choice(near))


def _twin(
    seed: int, n_markets: int, shock: float, vol: float, drift: float,
    window: int | tuple[int, int], pin: float = 0.0, near_rel: float = NEAR_REL, n: int = 400,
    poison: int | None = None,
) -> int:  # fmt: skip
    """Run one twin (``n`` accounts; ``poison``: :func:`_stretch`'s); return the calls the
    stretch made."""
    rng = np.random.default_rng(seed)
    fast, slow = _book(seed, n_markets, n), _book(seed, n_markets, n)
    start = [round(st.mark * (1.0 + shock), 2) for st in fast.markets]
    for ex in (fast, slow):  # a first risk step at the shocked marks: calls, liquidations
        for m, p in enumerate(start):
            ex.set_mark(m, p, ts_ns=10 * _NS)
    moves = np.exp(np.cumsum(rng.normal(drift, vol, (300, n_markets)), axis=0))
    marks = np.round(np.asarray(start) * moves, 2)
    if pin:
        _pin(fast, marks, rng, pin, liq=pin > 0.2)
    got = _stretch(fast, marks, window, near_rel, poison)
    if got is None:
        return 0
    count, dropped, calls = got
    ts = (11 + np.arange(count, dtype=np.int64)) * _NS
    advance_quiet(fast, marks[:count], ts, None, dropped, calls)
    liquidated = 0
    for j in range(count):
        for m in range(n_markets):
            slow.set_mark(m, float(marks[j, m]), ts_ns=int(ts[j]))
            liquidated += slow.last_step.liquidations
    assert liquidated == 0
    assert fast.journal.to_arrow().equals(slow.journal.to_arrow())
    assert fast.state_hash() == slow.state_hash()
    for rf, rs in zip(fast.risk.markets, slow.risk.markets, strict=True):
        assert np.array_equal(rf.called_isolated, rs.called_isolated)
    assert fast.risk.reports == slow.risk.reports
    made = 0 if calls is None else len(calls[1])
    journal = slow.journal.to_arrow().to_pandas()
    in_prefix = (journal["kind"] == int(EventKind.MARGIN_CALL)) & (journal["ts_ns"] >= 11 * _NS)
    assert int(in_prefix.sum()) == made
    return made


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    n_markets=st.integers(1, 2),
    shock=st.floats(-0.05, 0.05),
    vol=st.sampled_from([1e-4, 1e-3, 3e-3]),
    drift=st.sampled_from([0.0, 5e-4, -5e-4]),
    window=st.sampled_from([1, 4, 1024, (1024, 1), (1, 1024), (4, 128)]),
    pin=st.sampled_from([0.0, 0.0, 0.3]),
    near_rel=st.sampled_from([0.0, 1e-6, 1e-4, NEAR_REL, 0.05]),
    poison=st.one_of(st.none(), st.integers(0, 2**32 - 1)),
)
def test_calls_in_a_stretch_equal_step_by_step(
    seed: int, n_markets: int, shock: float, vol: float, drift: float,
    window: int | tuple[int, int], pin: float, near_rel: float, poison: int | None,
) -> None:  # fmt: skip
    """Any window of marks the called entries are split for (:mod:`deleverage.sim.quiet_near`:
    none, tiny, the default, wide) and any call window (a width a side, or longs' and shorts'
    own) gives the step-by-step result, whatever the room ``call_args`` leaves unset holds."""
    _twin(seed, n_markets, shock, vol, drift, window, pin, near_rel, poison=poison)


@pytest.mark.parametrize("seed", range(6))
def test_the_unset_room_is_never_read(seed: int) -> None:
    """A fall through the longs' zones (calls made in the stretch, entries called again)
    with the room ``call_args`` leaves unset filled with live-looking entries."""
    _twin(seed, 1, 0.0, 2e-4, -1e-4, 1024, pin=0.1, poison=seed)


def test_a_falling_walk_calls_inside_the_stretch() -> None:
    """A slow fall through the longs' call zones: the stretch makes calls itself."""
    made = sum(_twin(seed, 1, 0.0, 2e-4, -1e-4, 1024) for seed in range(6))
    assert made > 0


def test_a_falling_walk_with_a_narrow_short_side_calls_inside_the_stretch() -> None:
    """The call window sized per side (sim/quiet.py's ``_size_window``): a fall through the
    longs' zones with a one-entry short side."""
    made = sum(_twin(seed, 1, 0.0, 2e-4, -1e-4, (1024, 1)) for seed in range(6))
    assert made > 0


def test_marks_on_the_zone_edges_equal_step_by_step() -> None:
    """Marks pinned to zone and liquidation prices: the exact evaluations of the slack (some
    stretches run on, calling or dropping positions on the edge)."""
    made = sum(_twin(seed, 1, 0.0, 2e-4, -1e-4, 1024, pin=0.1) for seed in range(6))
    assert made > 0


def test_take_clean_skips_flagged_and_called() -> None:
    acc = np.array([5, 3, 8, 1, 9, 2], dtype=np.int64)
    flag = np.zeros(10, dtype=np.bool_)
    flag[3] = True
    out = np.empty(6, dtype=np.int64)
    called = np.zeros(9, dtype=np.bool_)  # accounts 1 and 8 (9 is beyond: not called)
    called[[1, 8]] = True
    count, nxt = take_clean_nb(acc, flag, called, 0, 2, out)
    assert (count, nxt) == (2, 5)  # 5 and 9 taken, 2 (at 5) is the next clean one
    assert out[:2].tolist() == [0, 4]
    count, nxt = take_clean_nb(acc, flag, np.zeros(0, dtype=np.bool_), 1, 10, out)
    assert (count, nxt) == (4, 6)
    assert out[:4].tolist() == [2, 3, 4, 5]


def test_stretch_events_in_one_append_equal_single_appends() -> None:
    """Marks of two markets and calls of market 1 in one append (per-row kinds) read back as
    the step-by-step run's single appends."""
    bulk, single = Journal(), Journal()
    marks = np.array([[10.0, 20.0], [11.0, 21.0], [12.0, 22.0]])
    ts = np.array([5, 6, 8], dtype=np.int64) * _NS
    step, acc, ratio = np.array([0, 0, 2]), np.array([3, 7, 2]), np.array([0.8, 0.9, 0.85])
    append_stretch_events(bulk, marks, ts, 1, step, acc, ratio)
    for j in range(3):
        for m in range(2):
            single.append(MarkPrice(ts_ns=int(ts[j]), market=m, price=float(marks[j, m])))
            if m == 1:
                for a, r in zip(acc[step == j].tolist(), ratio[step == j].tolist(), strict=True):
                    single.append(MarginCall(ts_ns=int(ts[j]), account=a, market=1, ratio=r))
    assert bulk.to_arrow().equals(single.to_arrow())
    assert bulk.since(4).equals(single.since(4))
    cols = ("kind", "ts_ns", "account", "market", "price", "amount")
    got, want = bulk.arrays_since(2, cols), single.arrays_since(2, cols)
    assert all(np.array_equal(got[c], want[c]) for c in cols)
    assert bulk.last_ts_ns == single.last_ts_ns


@pytest.mark.parametrize("seed", range(8))
def test_random_stretch_events_equal_single_appends(seed: int) -> None:
    """Random stretches (one to three markets, calls of one market or one market per call,
    steps without calls and steps with several) read back as the single appends
    (:func:`.stretch_rows_nb`'s row placement against the step-by-step journal)."""
    rng = np.random.default_rng(seed)
    steps, n_m = int(rng.integers(1, 30)), int(rng.integers(1, 4))
    marks = rng.uniform(1.0, 2.0, (steps, n_m))
    ts = np.cumsum(rng.integers(1, 3, steps)).astype(np.int64) * _NS
    one = seed % 2 == 0  # calls of one market, else one market per call
    per = rng.integers(0, 3, (steps, n_m)) * (rng.random((steps, n_m)) < 0.4)
    if one:
        per[:, np.arange(n_m) != n_m - 1] = 0
    step = np.repeat(np.arange(steps), per.sum(axis=1))
    market = np.concatenate([np.repeat(np.arange(n_m), per[j]) for j in range(steps)])
    acc = np.concatenate(
        [np.sort(rng.choice(50, per[j].sum(), replace=False)) for j in range(steps)]
    )
    acc = acc.astype(np.int64)
    ratio = rng.uniform(0.8, 1.0, len(step))
    bulk, single = Journal(), Journal()
    append_stretch_events(bulk, marks, ts, n_m - 1 if one else market, step, acc, ratio)
    for j in range(steps):
        for m in range(n_m):
            single.append(MarkPrice(ts_ns=int(ts[j]), market=m, price=float(marks[j, m])))
            mine = (step == j) & (market == m)
            for a, r in zip(acc[mine].tolist(), ratio[mine].tolist(), strict=True):
                single.append(MarginCall(ts_ns=int(ts[j]), account=a, market=m, ratio=r))
    assert bulk.to_arrow().equals(single.to_arrow())
    assert bulk.last_ts_ns == single.last_ts_ns


_PRICES = st.lists(
    st.sampled_from([0.0, -0.0, 1.0, 2.0, 3.0, math.inf, -math.inf, math.nan]), max_size=8
)


@given(_PRICES, _PRICES)
@settings(max_examples=300, deadline=None)
def test_window_order_and_first_unbounded_entry_equal_the_array_tests(
    zone: list[float], liq: list[float]
) -> None:
    """:func:`.in_order_nb` and :func:`.first_unbounded_nb` against the NumPy expressions
    they replace in :func:`.call_window` (ties, signed zeros, infinities, NaN)."""
    z = np.array(zone, dtype=np.float64)
    for descending in (True, False):
        key = -z if descending else z
        assert in_order_nb(z, descending) == bool(np.all(key[1:] >= key[:-1]))
    n = min(len(zone), len(liq))
    z, q = z[:n], np.array(liq[:n], dtype=np.float64)
    bad = ~(np.isfinite(q) & np.isfinite(z))
    assert first_unbounded_nb(z, q) == (int(np.argmax(bad)) if bad.any() else n)


@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(0, 12),
    edges=st.tuples(
        st.sampled_from([-math.inf, 1.0, 2.0, math.inf]),
        st.sampled_from([-math.inf, 2.0, 3.0, math.inf]),
    ),
)
@settings(max_examples=300, deadline=None)
def test_dirty_joins_equal_the_array_tests(seed: int, n: int, edges: tuple[float, float]) -> None:
    """:func:`.dirty_joins_nb` against the NumPy tests of :func:`.call_window` it stands in
    front of: no window when a kept dirty entry's zone is unbounded, else whether one joins a
    side (closed, cross, system and called accounts left out; ties at the edges join)."""
    rng = np.random.default_rng(seed)
    n_acc = 16
    size = rng.choice([0.0, -0.0, 1.5, -2.0], n_acc)
    mode = rng.choice([0, 1], n_acc).astype(np.int8)
    kind = rng.choice([0, 0, 1], n_acc).astype(np.int8)
    called = rng.random(n_acc) < 0.3
    d_acc = np.sort(rng.choice(n_acc, n, replace=False)).astype(np.int64)
    d_price = rng.choice([1.0, 2.0, 3.0, math.inf, -math.inf, math.nan], n)
    long_max, short_min = edges
    keep = (mode[d_acc] != 0) & (kind[d_acc] == 0) & (size[d_acc] != 0.0) & ~called[d_acc]
    price, d_size = d_price[keep], size[d_acc][keep]
    if not np.all(np.isfinite(price)):
        want = -1
    else:
        joins = ((d_size > 0) & (price >= long_max)) | ((d_size < 0) & (price <= short_min))
        want = int(joins.any())
    got = dirty_joins_nb(d_acc, d_price, size, mode, kind, called, long_max, short_min)
    assert got == want


@pytest.mark.parametrize("near_rel", [0.0, 1e-3, 0.05])
def test_called_entries_split_for_any_window_equal_step_by_step(near_rel: float) -> None:
    """A fall calls many longs, then the marks wander up and down through their zone prices
    (entries dropped, called again): the step tests only the entries near the marks
    (:mod:`deleverage.sim.quiet_near`), for windows of marks from a point to 5 %."""
    made = sum(
        _twin(seed, 1, -0.01, 3e-4, 0.0, 1024, near_rel=near_rel, n=3000) for seed in range(3)
    )
    assert made > 0


def test_a_wide_split_narrower_than_it_claims_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """The nested splits (:mod:`deleverage.sim.quiet_near`): a wide split that keeps only the
    entries near the *near* window (while the kernel takes it for the wide one) leaves out
    entries a later mark inside the wide window changes; the kernel, run as plain Python with
    that split, then differs from the step-by-step run."""
    import deleverage.sim.quiet as sim_quiet
    from deleverage.sim.quiet_near import near_split_nb

    def narrow(nc: int, *args: object) -> int:
        *cols, lo, hi, rtol, out = args
        mid = (np.asarray(lo) + np.asarray(hi)) / 2.0
        return int(
            near_split_nb(nc, *cols, mid * (1 - NEAR_REL), mid * (1 + NEAR_REL), rtol, out)  # type: ignore[arg-type,call-arg]
        )

    monkeypatch.setattr(sys.modules[__name__], "quiet_path_nb", sim_quiet.quiet_path_nb.py_func)
    made = _twin(0, 1, -0.01, 3e-4, 0.0, 1024, n=3000)  # the plain-Python kernel as it is
    assert made > 0
    monkeypatch.setattr(sim_quiet, "near_split_nb", narrow)
    caught = 0
    for seed in range(3):
        try:
            _twin(seed, 1, -0.01, 3e-4, 0.0, 1024, n=3000)
        except AssertionError:
            caught += 1
    assert caught > 0


def test_window_sides_are_sized_on_their_own() -> None:
    """``_size_window``: a side that used half its width doubles, one that used under an
    eighth halves (not below ``WINDOW_MIN``), a band stop doubles both."""
    from types import SimpleNamespace

    from deleverage.engine.quiet_calls import WINDOW_MIN
    from deleverage.sim.quiet import STOP_BAND, STOP_CALLED, QuietStretches

    def sized(window: tuple[int, int], used: tuple[int, int], stop: int) -> tuple[int, int]:
        state = SimpleNamespace(window=window, stop=np.array([stop], dtype=np.int64))
        n_long = window[0]
        w = SimpleNamespace(call_m=0, n_long=n_long, ptr=np.array([used[0], n_long + used[1]]))
        QuietStretches._size_window(state, w)  # type: ignore[arg-type]
        return state.window  # type: ignore[no-any-return]

    assert sized((1024, 1024), (600, 0), STOP_CALLED) == (2048, 512)
    assert sized((1024, WINDOW_MIN), (200, 0), STOP_CALLED) == (1024, WINDOW_MIN)
    assert sized((1024, 256), (0, 200), STOP_CALLED) == (512, 512)
    assert sized((1024, 256), (0, 0), STOP_BAND) == (2048, 512)
