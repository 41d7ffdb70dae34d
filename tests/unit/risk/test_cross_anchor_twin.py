"""The cross index's near set and anchored bounds (engine/cross_index.py, docs/formulas.md
§14.2) against the full pass.

A bounded cross scan evaluates only the near accounts whose bounds the marks may have used up
(and the touched ones) and counts the near accounts certainly in the zone as warned without
evaluating them. Two checks, with the full pass and ``rules.margin`` as the oracles:

- the bounds themselves: on random cross books over two markets and random walks of the marks,
  with anchors re-taken at random marks from figures computed here with NumPy, every account in
  the zone or under maintenance is evaluated or certainly warned, every certainly warned one
  really is in the zone and above maintenance, and every other one is out of the zone;
- the engine: the random cross books of ``test_cross_round_twin`` (shortfalls, fund exhaustion,
  ADL, isolated positions among them) on walks of small moves, with anchors re-taken at every
  scan that evaluates a near account and ``check_invariants`` comparing every bounded scan
  with the full pass, against the same run with the full pass alone: the same journal, state
  arrays, step reports and fund records.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import pytest
import test_cross_round_twin as rounds
from hypothesis import given, settings
from hypothesis import strategies as st

from deleverage import Exchange
from deleverage.engine import cross_index as cross_mod
from deleverage.engine.cross_index import CROSS_SLACK, CrossIndex, CrossSplit, sorted_prefix
from deleverage.engine.cross_kernels import anchor_nb, cross_terms_nb, touched_bounds_nb
from deleverage.errors import InvariantError
from deleverage.rules import margin as mm
from deleverage.venues import preset

# ---------------------------------------------------------------------------- the bounds


def _figures(
    marks: np.ndarray, sizes: list[np.ndarray], entries: list[np.ndarray], cash: np.ndarray,
    tiers: list[Any], level: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
    """``E``, ``MM``, ``K`` at ``level`` and at 1 (rate of the tier of twice the notional)."""
    e, m_, k, k1 = cash.copy(), np.zeros(len(cash)), np.zeros(len(cash)), np.zeros(len(cash))
    for s, en, t, p in zip(sizes, entries, tiers, marks, strict=True):
        notional = np.abs(s) * p
        e += s * (p - en)
        m_ += mm.maintenance_margin(notional, t)
        reach = t.mmr[np.searchsorted(t.floor, 2.0 * notional, side="right") - 1]
        k += np.where(s != 0.0, notional * (level + reach), 0.0)
        k1 += np.where(s != 0.0, notional * (1.0 + reach), 0.0)
    return e, m_, k, k1


@settings(max_examples=40)
@given(
    seed=st.integers(0, 2**32 - 1),
    level=st.sampled_from([0.5, 0.8, 1.0]),
    step=st.sampled_from([0.0002, 0.0005, 0.002]),
)
def test_anchored_bounds_hold(seed: int, level: float, step: float) -> None:
    rng = np.random.default_rng(seed)
    tiers = [preset("binance", "BTCUSDT").tier_arrays, preset("okx", "BTC").tier_arrays]
    n = 300
    p0 = np.array([60_000.0, 3_000.0])
    sizes = [rng.uniform(-2.0, 2.0, n) * (rng.random(n) < 0.7), rng.uniform(-40, 40, n)]
    entries = [p * rng.uniform(0.97, 1.03, n) for p in p0]
    modes = [np.zeros(n, dtype=np.int8) for _ in p0]
    notional = sum(np.abs(s) * p for s, p in zip(sizes, p0, strict=True))
    cash = notional * rng.uniform(0.0, 0.08, n)  # leveraged: many near and in the zone
    trader = rng.random(n) < 0.95
    e0, m0, _, _ = _figures(p0, sizes, entries, cash, tiers, level)
    index = CrossIndex(level)
    index.build(p0, sizes, modes, tiers, e0, m0, trader)
    marks = p0.copy()
    checked = stable_seen = 0
    for _ in range(60):
        marks = marks * (1.0 + rng.normal(0.0, step, 2))
        split = index.split(marks)
        if split is None:
            continue
        checked += 1
        e, mt, _, _ = _figures(marks, sizes, entries, cash, tiers, level)
        has = trader & ((sizes[0] != 0.0) | (sizes[1] != 0.0))
        in_zone = has & ((mt >= level * e) | (e <= 0.0))
        parts = zip(split.in_acc, split.in_q, strict=True)
        stable = np.unique(np.concatenate([a[q > split.threshold] for a, q in parts]))
        stable_seen += len(stable)
        for j, (acc_j, q_j) in enumerate(zip(split.in_acc, split.in_q, strict=True)):
            assert np.all(sizes[j][acc_j[q_j > split.threshold]] != 0.0)  # they hold market j
        # Certainly warned: in the zone, ratio below 1, above maintenance.
        assert np.all(mt[stable] >= level * e[stable])
        assert np.all(e[stable] > mt[stable])
        assert not np.intersect1d(stable, split.evaluate).size
        # Everyone else in the zone or under maintenance is evaluated.
        rest = np.setdiff1d(np.flatnonzero(in_zone), stable)
        assert np.all(np.isin(rest, split.evaluate)), np.setdiff1d(rest, split.evaluate)
        if rng.random() < 0.3:  # re-take the anchor here, from this test's own figures
            near = index.near
            _, _, k, k1 = _figures(marks, sizes, entries, cash, tiers, level)
            holds = [s[near] != 0.0 for s in sizes]
            index.anchor(marks, e[near], mt[near], k[near], k1[near], holds)
    if step < 0.001:
        assert checked > 0  # small walks stay within the near set
    if step < 0.001 and level < 1.0:  # at level 1 the zone is under maintenance: none
        assert stable_seen > 0  # small walks keep accounts certainly in the zone


# ---------------------------------------------------------------------------- the engine


@st.composite
def drifting_books(draw: st.DrawFn) -> dict[str, Any]:
    """``test_cross_round_twin``'s books on a walk of small moves with a few large ones."""
    book = draw(rounds.books())
    n_markets = len(book["markets"])
    small = st.floats(-0.004, 0.003, allow_nan=False)
    large = st.floats(-0.08, 0.04, allow_nan=False)
    path = [
        [draw(large if draw(st.integers(0, 9)) == 0 else small) for _ in range(n_markets)]
        for _ in range(draw(st.integers(10, 30)))
    ]
    return {**book, "path": path}


def _twins(book: dict[str, Any]) -> None:
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(cross_mod, "ANCHOR_EVAL", 0)  # re-take the anchor at every scan it can
        mp.setattr(rounds, "Exchange", functools.partial(Exchange, check_invariants=True))
        fast = rounds._run(book, columns=True)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(CrossIndex, "split", lambda self, marks: None)  # the full pass only
        slow = rounds._run(book, columns=True)
    rounds._assert_twins(fast, slow)


@settings(max_examples=60, deadline=None)
@given(drifting_books())
def test_anchored_scans_match_the_full_pass(book: dict[str, Any]) -> None:
    _twins(book)


def test_the_anchored_paths_run(monkeypatch: pytest.MonkeyPatch) -> None:
    """A crash book on a slow walk takes the bounded scan with certainly warned accounts and
    re-taken anchors, liquidates, and still matches the full pass."""
    seen = {"split": 0, "stable": 0, "anchor": 0}
    split, anchor = CrossIndex.split, CrossIndex.take_anchor

    def split_spy(self: CrossIndex, marks: np.ndarray) -> CrossSplit | None:
        out = split(self, marks)
        if out is not None:
            seen["split"] += 1
            seen["stable"] += sum(int(np.sum(q > out.threshold)) for q in out.in_q)
        return out

    def anchor_spy(self: CrossIndex, *args: Any) -> None:
        seen["anchor"] += 1
        anchor(self, *args)

    book = rounds._crash(2_000.0, "pnl_leverage")
    book["path"] = [[-0.072, -0.072, -0.072]] + [[0.0005 * (-1) ** k] * 3 for k in range(30)]
    book["path"] += [[-0.06, -0.05, -0.07], [0.001, 0.0, -0.001]]
    monkeypatch.setattr(CrossIndex, "split", split_spy)
    monkeypatch.setattr(CrossIndex, "take_anchor", anchor_spy)
    _twins(book)
    assert min(seen.values()) > 0, seen


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    level=st.sampled_from([0.5, 0.8, 1.0]),
    move=st.sampled_from([0.0, 0.003, 0.03]),
    keep=st.sampled_from([1, 16, 512]),
)
def test_compiled_anchor_equals_numpy(seed: int, level: float, move: float, keep: int) -> None:
    """:func:`.cross_kernels.anchor_nb` (the scans' and the stretches' anchor) gives
    :meth:`.CrossIndex.anchor`'s arrays bit for bit from the same figures, on books with
    accounts without positions, with isolated positions, with equity at or below zero; the
    ``keep`` nearest sorted, the others after them at the next bound up."""
    rng = np.random.default_rng(seed)
    tiers = [preset("binance", "BTCUSDT").tier_arrays, preset("okx", "BTC").tier_arrays]
    n = 400
    p0 = np.array([60_000.0, 3_000.0])
    sizes = [
        np.round(rng.uniform(-2.0, 2.0, n) * (rng.random(n) < 0.7), 3),
        np.round(rng.uniform(-40, 40, n) * (rng.random(n) < 0.8), 2),
    ]
    entries = [p * rng.uniform(0.97, 1.03, n) for p in p0]
    modes = [(rng.random(n) < 0.1).astype(np.int8) for _ in p0]  # some isolated
    notional = sum(np.abs(s) * p for s, p in zip(sizes, p0, strict=True))
    cash = notional * rng.uniform(-0.02, 0.08, n)
    trader = rng.random(n) < 0.95
    cross_sizes = [np.where(m == 0, s, 0.0) for s, m in zip(sizes, modes, strict=True)]
    e0, m0, _, _ = _figures(p0, cross_sizes, entries, cash, tiers, level)
    index = CrossIndex(level)
    index.near_sorted = keep
    index.build(p0, sizes, modes, tiers, e0, m0, trader)
    marks = p0 * (1.0 + rng.uniform(-move, move, 2))
    near = index.near
    sz, en, md = tuple(sizes), tuple(entries), tuple(modes)
    fl, mr, cu = (tuple(t.floor for t in tiers), tuple(t.mmr for t in tiers),
                  tuple(t.cum for t in tiers))  # fmt: skip
    mn = np.array([t.min_margin for t in tiers])
    k = len(near)
    e, mt, kl, k1 = np.empty(k), np.empty(k), np.empty(k), np.empty(k)
    cross_terms_nb(near, sz, en, md, cash, marks, fl, mr, cu, mn, index.level, e, mt, kl, k1)
    holds = [(s[near] != 0.0) & (m[near] == 0) for s, m in zip(sizes, modes, strict=True)]
    cols = index.near_columns(sz, en, md, cash, check=True)
    by_dist, dist, in_acc, in_q, in_at = anchor_nb(
        near, *cols, marks, fl, mr, cu, mn, index.level, CROSS_SLACK, keep
    )
    other = CrossIndex(level)
    other.build(p0, sizes, modes, tiers, e0, m0, trader)
    other.take_anchor(marks, by_dist, dist, in_acc, in_q, in_at)
    index.anchor(marks, e, mt, kl, k1, holds)
    assert np.array_equal(index.near_by_dist, other.near_by_dist)
    assert np.array_equal(index.near_dist, other.near_dist)
    assert np.array_equal(index.p1, other.p1)
    for j in range(2):
        assert np.array_equal(index.in_acc[j], other.in_acc[j])
        assert np.array_equal(index.in_q[j], other.in_q[j])
    # The order: the bounds ascending, every near account once, the nearest by their own.
    assert np.all(np.diff(index.near_dist) >= 0.0)
    assert np.array_equal(np.sort(index.near_by_dist), near)
    dist = np.maximum(
        (level * e - mt - CROSS_SLACK * (level * np.abs(e) + mt)) / kl,
        np.minimum(
            (mt - level * e - CROSS_SLACK * (level * np.abs(e) + mt)) / kl,
            (e - mt - CROSS_SLACK * (level * np.abs(e) + mt)) / k1,
        ),
    )
    own = dist[np.searchsorted(near, index.near_by_dist)]
    assert np.all(index.near_dist <= own)  # a lower bound of each account's own
    head = min(keep, len(near))  # the nearest at their own bounds (ties: at the cut, theirs)
    assert np.array_equal(index.near_dist[:head], np.sort(dist)[:head])


def _touched_bounds_checked(seed: int, level: float, step: float) -> int:
    """:func:`.cross_kernels.touched_bounds_nb` (the touched accounts' bounds in a cross
    stretch) against figures from ``rules.margin`` at random marks: an account it leaves out
    (no cross position, not a trader) is never in the zone as a trader with a position; at
    each move every account in the zone or under maintenance is picked (bound at or below the
    move) or certainly warned in each market it holds, and every certainly warned one is in
    the zone and above maintenance."""
    rng = np.random.default_rng(seed)
    tiers = [preset("binance", "BTCUSDT").tier_arrays, preset("okx", "BTC").tier_arrays]
    n = 300
    p0 = np.array([60_000.0, 3_000.0])
    sizes = [rng.uniform(-2.0, 2.0, n) * (rng.random(n) < 0.6), rng.uniform(-40, 40, n)]
    sizes[1] *= rng.random(n) < 0.7
    entries = [p * rng.uniform(0.97, 1.03, n) for p in p0]
    modes = [(rng.random(n) < 0.1).astype(np.int8) for _ in p0]
    cross_sizes = [np.where(m == 0, s, 0.0) for s, m in zip(sizes, modes, strict=True)]
    notional = sum(np.abs(s) * p for s, p in zip(sizes, p0, strict=True))
    cash = notional * rng.uniform(0.0, 0.03, n)  # many in the zone or near it
    kind = np.where(rng.random(n) < 0.05, 1, 0).astype(np.int8)
    acc = np.sort(rng.choice(n, 120, replace=False)).astype(np.int64)
    fl, mr, cu = (tuple(t.floor for t in tiers), tuple(t.mmr for t in tiers),
                  tuple(t.cum for t in tiers))  # fmt: skip
    mn = np.array([t.min_margin for t in tiers])
    by_dist, dist, in_acc, in_q, in_at = touched_bounds_nb(
        acc, tuple(sizes), tuple(entries), tuple(modes), kind, cash, p0, fl, mr, cu, mn,
        min(level, 1.0), CROSS_SLACK,
    )  # fmt: skip
    assert np.all(np.diff(dist) >= 0.0)
    has = (kind == 0) & ((cross_sizes[0] != 0.0) | (cross_sizes[1] != 0.0))
    assert np.array_equal(np.sort(by_dist), acc[has[acc]])  # the others are left out
    marks = p0.copy()
    certain_seen = 0
    for k in range(40):
        if k:  # the first at the bounds' own marks
            marks = marks * (1.0 + rng.normal(0.0, step, 2))
        move = float(np.max(np.abs(marks / p0 - 1.0)))
        threshold = move * (1.0 + 1e-9) + 1e-12
        e, mt, _, _ = _figures(marks, cross_sizes, entries, cash, tiers, level)
        in_zone = (mt >= level * e) | (e <= 0.0)
        picked = set(by_dist[dist <= threshold].tolist())
        for j in range(2):
            part = slice(in_at[j], in_at[j + 1])
            sure = in_acc[part][in_q[part] > threshold]
            certain_seen += len(sure)
            assert np.all(cross_sizes[j][sure] != 0.0)
            assert np.all((mt[sure] >= level * e[sure]) & (e[sure] > mt[sure]))
            holders = acc[has[acc] & (cross_sizes[j][acc] != 0.0) & in_zone[acc]]
            missed = [a for a in holders.tolist() if a not in picked and a not in set(sure)]
            assert not missed, missed
    return certain_seen


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    level=st.sampled_from([0.5, 0.8, 1.0]),
    step=st.sampled_from([0.0005, 0.002, 0.01]),
)
def test_touched_bounds_hold(seed: int, level: float, step: float) -> None:
    """The checks of :func:`_touched_bounds_checked` on random books and paths (some draw no
    certainly warned account: the next test shows the certain branch is exercised)."""
    _touched_bounds_checked(seed, level, step)


@pytest.mark.parametrize("level", [0.5, 0.8])
def test_touched_bounds_certain_branch_is_exercised(level: float) -> None:
    """Below level 1 the bounds do declare accounts certainly warned (each checked to be in the
    zone and above maintenance) on fixed books: the certain branch is not vacuous."""
    seen = sum(_touched_bounds_checked(seed, level, 0.002) for seed in range(8))
    assert seen > 0


@settings(max_examples=60, deadline=None)
@given(
    q=st.lists(st.sampled_from([-0.5, 0.0, 0.01, 0.02, 0.05, 0.3, 1.0]) | st.floats(-1.0, 2.0),
               min_size=0, max_size=80),
    keep=st.integers(0, 90),
)  # fmt: skip
def test_sorted_prefix_equals_a_stable_sort_where_read(q: list[float], keep: int) -> None:
    """:func:`.cross_index.sorted_prefix` (the build's order) against NumPy's stable argsort:
    the first ``keep + 1`` entries identical, every account once, ``q`` ascending and never
    above an account's own (ties included: the values are drawn from a small set too)."""
    qa = np.array(q, dtype=np.float64)
    acc = np.arange(100, 100 + len(qa), dtype=np.int64)
    got_acc, got_q = sorted_prefix(acc, qa, keep)
    order = np.argsort(qa, kind="stable")
    head = min(keep + 1, len(qa))
    assert np.array_equal(got_acc[:head], acc[order][:head])
    assert np.array_equal(got_q[:head], qa[order][:head])
    assert np.array_equal(np.sort(got_acc), acc)
    assert np.all(np.diff(got_q) >= 0.0)
    assert np.all(got_q <= qa[got_acc - 100])


# ---------------------------------------------------------------------------- the build


def _numpy_slopes(
    marks: np.ndarray, sizes: list[np.ndarray], modes: list[np.ndarray], tiers: list[Any],
    level: float, tier_of: int = 2,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
    """The build's slopes ``K``, ``K_one`` and step caps, NumPy array by array (the build's
    code before its compiled slopes); ``tier_of``: the rate of the tier of this multiple of
    the notional (2: the rule; 1: a deliberately wrong reach)."""
    k, k_one = np.zeros(len(sizes[0])), np.zeros(len(sizes[0]))
    to_step = np.full(len(sizes[0]), np.inf)
    for size, mode, t, mark in zip(sizes, modes, tiers, marks, strict=True):
        cross = (size != 0.0) & (mode == 0)
        notional = np.abs(size) * mark
        rate = t.mmr[np.searchsorted(t.floor, tier_of * notional, side="right") - 1]
        if t.whole_position:
            tier = np.searchsorted(t.floor, notional, side="right") - 1
            rate = np.maximum(rate, t.mmr[tier])
            to_step = np.where(
                cross, np.minimum(to_step, cross_mod.step_reach(notional, t)), to_step
            )
        k += np.where(cross, notional * (level + rate), 0.0)
        k_one += np.where(cross, notional * (1.0 + rate), 0.0)
    return k, k_one, to_step


def _build_twin(seed: int, level: float, venue: str, tier_of: int = 2) -> bool:
    """Build an index on a random cross book and compare its order, bounds and first anchor
    with those from :func:`_numpy_slopes`' figures; return whether they agree."""
    rng = np.random.default_rng(seed)
    tiers = (
        [preset("bitmex", "XBTUSD").tier_arrays, preset("binance", "BTCUSDT").tier_arrays]
        if venue == "bitmex"
        else [preset("binance", "BTCUSDT").tier_arrays, preset("okx", "BTC").tier_arrays]
    )
    n = 500
    p0 = np.array([60_000.0, 3_000.0]) if venue != "bitmex" else np.array([300.0, 60_000.0])
    scale = [2.0, 40.0] if venue != "bitmex" else [600.0, 2.0]
    sizes = [np.round(rng.uniform(-s, s, n) * (rng.random(n) < 0.7), 3) for s in scale]
    modes = [(rng.random(n) < 0.1).astype(np.int8) for _ in p0]
    entries = [p * rng.uniform(0.97, 1.03, n) for p in p0]
    notional = sum(np.abs(s) * p for s, p in zip(sizes, p0, strict=True))
    cash = notional * rng.uniform(-0.01, 0.08, n)
    trader = rng.random(n) < 0.95
    cross_sizes = [np.where(m == 0, s, 0.0) for s, m in zip(sizes, modes, strict=True)]
    e0, m0, _, _ = _figures(p0, cross_sizes, entries, cash, tiers, level)
    index = CrossIndex(level)
    index.build(p0, sizes, modes, tiers, e0, m0, trader)
    k, k_one, to_step = _numpy_slopes(p0, sizes, modes, tiers, index.level, tier_of)
    acc = np.flatnonzero(trader & (k > 0.0)).astype(np.int64)
    q = np.minimum((index.level * e0[acc] - m0[acc]) / k[acc], to_step[acc])
    n_near = min(len(acc), max(64, int(len(acc) * cross_mod.PREFIX_SHARE)))
    ref_acc, ref_q = sorted_prefix(acc, q, n_near)
    other = CrossIndex(level)  # the first anchor from the reference figures
    near = np.sort(ref_acc[:n_near])
    holds = [(s[near] != 0.0) & (m[near] == 0) for s, m in zip(sizes, modes, strict=True)]
    other._set_anchor(
        p0, near, e0[near], m0[near], k[near], k_one[near], to_step[near], holds
    )  # fmt: skip
    return (
        np.array_equal(index.acc, ref_acc)
        and np.array_equal(index.q, ref_q)
        and np.array_equal(index.near, other.near)
        and np.array_equal(index.near_by_dist, other.near_by_dist)
        and np.array_equal(index.near_dist, other.near_dist)
        and all(np.array_equal(a, b) for a, b in zip(index.in_acc, other.in_acc, strict=True))
        and all(np.array_equal(a, b) for a, b in zip(index.in_q, other.in_q, strict=True))
    )


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    level=st.sampled_from([0.5, 0.8, 1.0, 1.5]),
    venue=st.sampled_from(["binance", "bitmex"]),
)
def test_compiled_build_slopes_equal_numpy(seed: int, level: float, venue: str) -> None:
    """:meth:`.CrossIndex.build`'s slopes (:func:`.cross_kernels.slopes_nb`) give the NumPy
    figures' order, bounds and first anchor bit for bit: isolated positions, accounts without
    positions, other kinds, equity below zero, risk-limit steps (BitMEX)."""
    assert _build_twin(seed, level, venue)


def test_a_wrong_reach_fails_the_build_twin() -> None:
    """The reference with the rate of the notional's own tier (not of twice it) disagrees: the
    twin sees the slopes."""
    assert not all(_build_twin(seed, 0.8, "binance", tier_of=1) for seed in range(5))


def test_near_columns_follow_the_touched_accounts() -> None:
    """:meth:`.CrossIndex.near_columns` re-reads the touched near accounts (a touched account's
    new cash and size are in the copy); a change nobody reported leaves the copy stale and
    ``check`` says so."""
    rng = np.random.default_rng(7)
    tiers = [preset("binance", "BTCUSDT").tier_arrays, preset("okx", "BTC").tier_arrays]
    n, p0 = 400, np.array([60_000.0, 3_000.0])
    sizes = [rng.uniform(-2.0, 2.0, n), rng.uniform(-40, 40, n)]
    entries = [p * rng.uniform(0.97, 1.03, n) for p in p0]
    modes = [np.zeros(n, dtype=np.int8) for _ in p0]
    cash = sum(np.abs(s) * p for s, p in zip(sizes, p0, strict=True)) * rng.uniform(0.0, 0.08, n)
    e0, m0, _, _ = _figures(p0, sizes, entries, cash, tiers, 0.8)
    index = CrossIndex(0.8)
    index.build(p0, sizes, modes, tiers, e0, m0, np.ones(n, dtype=np.bool_))
    cols = (tuple(sizes), tuple(entries), tuple(modes))
    index.near_columns(*cols, cash, check=True)
    a, b = int(index.near[3]), int(index.near[5])
    cash[a] += 100.0
    sizes[1][a] = -sizes[1][a]
    index.touch(np.array([a]))
    got = index.near_columns(*cols, cash, check=True)
    assert got.cash[3] == cash[a]
    assert got.size[1, 3] == sizes[1][a]
    cash[b] += 100.0  # not reported
    with pytest.raises(InvariantError, match="cash"):
        index.near_columns(*cols, cash, check=True)
