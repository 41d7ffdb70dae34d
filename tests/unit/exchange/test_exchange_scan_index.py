"""The indexed scans (:mod:`deleverage.engine.level_index`,
:mod:`deleverage.engine.cross_index`) equal the full passes.

Random operation sequences (isolated and cross positions at various leverages in 1-3 markets,
marks up and down with repeated quiet marks, trades, margin moves, deposits, withdrawals,
funding and the liquidations the marks cause) run on two engines, one with
``use_level_index=True`` and one with the full pass. After every operation the isolated and
cross scans of both must be identical, bit for bit; at the end, the journals (event counts by
kind) and the state hashes. The full pass is the oracle: a plain loop over every position.
Variants shrink the indexes' dirty floors so compaction and rebuilds happen on small books, and
run the engine's own ``check_invariants`` mode. Direct unit tests check the superset property
of :meth:`LevelIndex.candidates` and the bound of :class:`CrossIndex`.
"""

from __future__ import annotations

import collections
import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deleverage import Exchange, MarginMode, MarketSpec
from deleverage.engine import bulk
from deleverage.engine import cross_index as cross_mod
from deleverage.engine import level_index as level_mod
from deleverage.engine.cross_index import CrossIndex, CrossSplit
from deleverage.engine.cross_kernels import tier_nb
from deleverage.engine.kernels import tier_of_nb
from deleverage.engine.level_index import LevelIndex
from deleverage.errors import DeleverageError
from deleverage.rules import margin as mm
from deleverage.venues import preset

SCAN_FIELDS = ("below", "below_equity", "below_maintenance", "warn", "warn_ratio")
LEVELS = (0.3, 0.8, 1.0)
_SPECS = (
    lambda: MarketSpec.simple("SIMPLE", max_leverage=50, maintenance_rate=0.01),
    lambda: preset("binance", "BTCUSDT"),
    lambda: preset("okx", "BTC"),
)
_MARKS = (2_000.0, 60_000.0, 30_000.0)


# ---------------------------------------------------------------------------- the driver


def _open(ex: Exchange, *, mode: MarginMode) -> int:
    return ex.open_account(margin_mode=mode)


class Twin:
    """The same operations on an indexed engine and a full-pass engine."""

    def __init__(self, n_markets: int, n_traders: int, rng: np.random.Generator, *, check: bool):
        self.rng = rng
        self.refused: collections.Counter[str] = collections.Counter()
        self.seen: collections.Counter[str] = collections.Counter()  # accounts the scans found
        self.engines = [Exchange(check_invariants=check), Exchange(check_invariants=check)]
        self.engines[1].use_level_index = False
        self.specs = [_SPECS[k]() for k in range(n_markets)]
        self.ts = 0
        for ex in self.engines:
            for spec, mark in zip(self.specs, _MARKS, strict=False):
                m = ex.list_market(spec)
                ex.set_mark(m, mark)
        modes = rng.choice([MarginMode.CROSS, MarginMode.ISOLATED], n_traders)
        self.traders: list[int] = []
        for i in range(n_traders):
            mode = MarginMode(int(modes[i]))
            deposit = float(rng.choice([200.0, 1_000.0, 5_000.0, 50_000.0]))
            a = self.both(functools.partial(_open, mode=mode))
            self.traders.append(a)
            self.both(functools.partial(Exchange.deposit, account=a, amount=deposit))
        # A columnar batch of isolated accounts too (the bulk path).
        batch = self.both(lambda ex: ex.open_accounts(4, margin_mode=MarginMode.ISOLATED))
        self.traders += [int(a) for a in batch]
        self.both(lambda ex: ex.deposit_many(batch, np.full(4, 2_000.0)))
        for a in self.traders:
            for m, spec in enumerate(self.specs):
                if rng.random() < 0.5:
                    lev = float(rng.choice([2.0, 5.0, 10.0, 20.0, 25.0, 50.0]))
                    lev = min(lev, spec.max_leverage)
                    self.both(
                        functools.partial(Exchange.set_leverage, account=a, market=m, leverage=lev)
                    )

    def both(self, op: Callable[[Exchange], Any]) -> Any:
        """Run ``op`` on both engines; both succeed or both refuse with the same error."""
        results: list[Any] = []
        errors: list[str | None] = []
        for ex in self.engines:
            try:
                results.append(op(ex))
                errors.append(None)
            except DeleverageError as exc:
                self.refused[type(exc).__name__] += 1
                results.append(None)
                errors.append(type(exc).__name__)
        assert errors[0] == errors[1], errors
        return results[0]

    # ---------------------------------------------------------------- operations
    def price(self, m: int, mark: float | None = None) -> float:
        tick = self.specs[m].tick_size
        mark = self.engines[0].markets[m].mark if mark is None else mark
        return max(1, round(mark / tick)) * tick

    def size(self, m: int, notional: float) -> float:
        lot = self.specs[m].lot_size
        return max(1, round(notional / (self.price(m) * lot))) * lot

    def step(self) -> str:
        rng = self.rng
        m = int(rng.integers(len(self.specs)))
        a = int(rng.choice(self.traders))
        book = self.engines[0].liquidity_account
        kind = rng.choice(
            ["open"] * 4
            + ["pair", "mark", "mark", "quiet", "quiet", "margin", "cash", "funding"]
            + ["stake", "settings", "bulk", "spec"]
        )
        if kind == "open":
            # Most of the free collateral at the position's leverage: close to the zone.
            ex = self.engines[0]
            free = ex.account_margins(a).withdrawable
            lev = float(ex.columns(m).leverage[a]) or self.specs[m].max_leverage
            notional = max(free, 50.0) * lev * float(rng.uniform(0.3, 0.97))
            size, px = self.size(m, notional), self.price(m)
            buyer, seller = (a, book) if rng.random() < 0.5 else (book, a)
            self.both(lambda ex: ex.trade(m, buyer=buyer, seller=seller, size=size, price=px))
        elif kind == "pair":
            b = int(rng.choice(self.traders))
            if b != a:
                size, px = self.size(m, float(np.exp(rng.uniform(5.0, 11.0)))), self.price(m)
                self.both(lambda ex: ex.trade(m, buyer=a, seller=b, size=size, price=px))
        elif kind in ("mark", "quiet"):
            mark = self.engines[0].markets[m].mark
            if kind == "mark":
                move = (
                    float(rng.normal(0.0, 0.01))
                    if rng.random() < 0.8
                    else float(rng.choice([-0.06, 0.06]))
                )
                marks = [mark * np.exp(move)]
            else:  # the same mark again, or a tick away, a few times
                marks = [mark * (1.0 + float(rng.choice([0.0, 1e-4, -1e-4]))) for _ in range(3)]
            for px in marks:
                self.ts += 1_000_000_000
                self.both(functools.partial(Exchange.set_mark, market=m, price=px, ts_ns=self.ts))
        elif kind == "margin":
            amount = float(rng.uniform(1.0, 300.0))
            if rng.random() < 0.5:
                self.both(lambda ex: ex.add_isolated_margin(a, m, amount))
            else:
                self.both(lambda ex: ex.remove_isolated_margin(a, m, amount))
        elif kind == "cash":
            if rng.random() < 0.5:
                amount = float(rng.uniform(10.0, 2_000.0))
                self.both(lambda ex: ex.deposit(a, amount))
            else:
                free = self.engines[0].account_margins(a).withdrawable
                amount = free * float(rng.uniform(0.2, 1.0))
                if amount > 0:
                    self.both(lambda ex: ex.withdraw(a, amount))
        elif kind == "stake":  # cash into the insurance fund (a transfer of cross cash)
            amount = float(rng.uniform(1.0, 500.0))
            self.both(lambda ex: ex.stake(a, amount))
        elif kind == "settings":  # mode while flat (refused otherwise), leverage
            if rng.random() < 0.5:
                mode = MarginMode(int(rng.integers(2)))
                self.both(lambda ex: ex.set_margin_mode(a, m, mode))
            else:
                lev = float(rng.choice([2.0, 10.0, 20.0]))
                self.both(lambda ex: ex.set_leverage(a, m, lev))
        elif kind == "bulk":  # the columnar paths: margin into many positions, many opens
            ex = self.engines[0]
            cols = ex.columns(m)
            acc = np.array(self.traders, dtype=np.int64)
            iso = acc[(cols.mode[acc] == MarginMode.ISOLATED) & (cols.size[acc] != 0.0)]
            if len(iso) and rng.random() < 0.5:
                amt = np.full(len(iso), 5.0)
                self.both(lambda ex: bulk.add_isolated_margin_many(ex, m, iso, amt))
            else:
                flat = acc[cols.size[acc] == 0.0][:3]
                if len(flat):
                    sizes = np.array([self.size(m, 300.0)] * len(flat))
                    sizes *= rng.choice([-1.0, 1.0], len(flat))
                    prices = np.full(len(flat), self.price(m))
                    self.both(lambda ex: ex.open_positions(m, flat, sizes, prices, leverage=5.0))
        elif kind == "spec":  # a tier change moves every zone price of the market
            spec = self.specs[m]
            rate = float(spec.tiers[0].maintenance_rate)
            if len(spec.tiers) == 1:
                new = MarketSpec.simple(
                    spec.symbol, max_leverage=spec.max_leverage,
                    maintenance_rate=0.015 if rate == 0.01 else 0.01,
                )  # fmt: skip
                self.specs[m] = new
                self.both(lambda ex: ex.update_market_spec(m, new))
        else:
            rate = float(rng.choice([-0.003, -0.0005, 0.0005, 0.003]))
            self.ts += 1_000_000_000
            self.both(lambda ex: ex.settle_funding(m, rate, ts_ns=self.ts))
        return str(kind)

    # ---------------------------------------------------------------- checks
    def assert_scans_equal(self) -> None:
        a, b = self.engines
        for m in range(len(self.specs)):
            for level in LEVELS:
                for name in ("isolated_scan", "cross_scan"):
                    got = getattr(a, name)(m, level)
                    want = getattr(b, name)(m, level)
                    self.seen[name] += len(want["warn"]) + len(want["below"])
                    for f in SCAN_FIELDS:
                        assert np.array_equal(got[f], want[f]), (name, m, level, f, got, want)

    def assert_same_history(self) -> None:
        a, b = self.engines
        assert _kind_counts(a) == _kind_counts(b)
        assert a.state_hash() == b.state_hash()


def _kind_counts(ex: Exchange) -> dict[Any, int]:
    kinds = ex.journal.to_arrow().column("kind").to_pylist()
    return dict(collections.Counter(kinds))


@contextmanager
def _small_floors(level_floor: int, cross_floor: int) -> Iterator[None]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(level_mod, "DIRTY_FLOOR", level_floor)
        mp.setattr(cross_mod, "DIRTY_FLOOR", cross_floor)
        yield


def _run(seed: int, n_markets: int, n_ops: int, *, check: bool = False) -> Twin:
    rng = np.random.default_rng(seed)
    twin = Twin(n_markets, 14, rng, check=check)
    twin.assert_scans_equal()
    for _ in range(n_ops):
        twin.step()
        twin.assert_scans_equal()
    twin.assert_same_history()
    return twin


# ---------------------------------------------------------------------------- engine tests


@settings(max_examples=12)
@given(seed=st.integers(0, 2**32 - 1), n_markets=st.integers(1, 3))
def test_indexed_scans_equal_full_pass(seed: int, n_markets: int) -> None:
    twin = _run(seed, n_markets, 60)
    # A replayed engine's indexes start empty and must agree with the full pass too.
    twin.engines[0] = Exchange.replay(twin.engines[0].journal)
    twin.assert_scans_equal()
    assert twin.engines[0].state_hash() == twin.engines[1].state_hash()


@settings(max_examples=8)
@given(
    seed=st.integers(0, 2**32 - 1),
    n_markets=st.integers(1, 3),
    floors=st.sampled_from([(0, 0), (1, 2), (4, 8)]),
)
def test_indexed_scans_equal_full_pass_with_compaction(
    seed: int, n_markets: int, floors: tuple[int, int]
) -> None:
    with _small_floors(*floors):
        _run(seed, n_markets, 60)


@pytest.mark.parametrize("seed", [1, 2, 10])
def test_check_invariants_mode_accepts_the_indexed_scans(seed: int) -> None:
    with _small_floors(2, 2):
        twin = _run(seed, 3, 50, check=True)
    # The sequences liquidated someone, so the scans had something to find.
    assert any(r.liquidations for r in twin.engines[0].risk.reports)


def test_quiet_marks_build_and_use_the_cross_index() -> None:
    """The sequences do take the indexed paths: bounded cross scans, dirty isolated entries."""
    used: collections.Counter[str] = collections.Counter()
    cross_split, level_scan = CrossIndex.split, LevelIndex.scan

    def cross_spy(self: CrossIndex, marks: np.ndarray) -> CrossSplit | None:
        out = cross_split(self, marks)
        used["cross bounded" if out is not None else "cross full"] += 1
        return out

    def level_spy(self: LevelIndex, *args: Any) -> tuple[np.ndarray, ...]:
        used["level dirty" if self._touched or self._n_flagged else "level clean"] += 1
        return level_scan(self, *args)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(CrossIndex, "split", cross_spy)
        mp.setattr(LevelIndex, "scan", level_spy)
        twin = _run(1, 2, 80)
    ex = twin.engines[0]
    assert ex._cross_index[0.8].builds >= 1
    assert ex._level_index[(0, 0.8)].rebuilds >= 1
    assert len(used) == 4, used
    # The comparison had accounts in the zone to compare, on both sides.
    assert twin.seen["isolated_scan"] > 0
    assert twin.seen["cross_scan"] > 0
    assert any(r.liquidations for r in ex.risk.reports)


# ---------------------------------------------------------------------------- LevelIndex


def _book(rng: np.random.Generator, n: int, tiers: Any) -> dict[str, np.ndarray]:
    entry = rng.uniform(50.0, 150.0, n)
    size = rng.uniform(0.1, 50.0, n) * rng.choice([-1.0, 1.0], n)
    size[rng.random(n) < 0.1] = 0.0
    margin = np.abs(size) * entry / rng.uniform(1.0, 40.0, n)
    mode = np.where(rng.random(n) < 0.8, 1, 0).astype(np.int8)
    kind = np.where(rng.random(n) < 0.95, 0, 2).astype(np.int8)
    return {"size": size, "entry": entry, "margin": margin, "mode": mode, "kind": kind}


def _in_zone(b: dict[str, np.ndarray], mark: float, level: float, tiers: Any) -> np.ndarray:
    """Oracle: isolated trader positions with ``MM(mark) >= level x E(mark)``."""
    s = b["size"]
    equity = b["margin"] + s * (mark - b["entry"])
    maint = mm.maintenance_margin(np.abs(s) * mark, tiers)
    live = (s != 0.0) & (b["mode"] != 0) & (b["kind"] == 0)
    return np.flatnonzero(live & (maint >= level * equity))


@settings(max_examples=30)
@given(
    seed=st.integers(0, 2**32 - 1),
    level=st.sampled_from([0.8, 1.0]),
    dirty_floor=st.sampled_from([0, 1, 3, 1024]),
)
def test_level_index_candidates_are_a_superset(seed: int, level: float, dirty_floor: int) -> None:
    rng = np.random.default_rng(seed)
    tiers = preset("binance", "BTCUSDT").tier_arrays
    n = 60
    b = _book(rng, n, tiers)
    index = LevelIndex(level)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(level_mod, "DIRTY_FLOOR", dirty_floor)
        index.rebuild(b["size"], b["entry"], b["margin"], b["mode"], b["kind"], tiers)
        for _ in range(25):
            # Touch a few positions: new sizes (some closed, some flipped), margins, entries.
            hit = rng.choice(n, int(rng.integers(1, 6)), replace=False)
            b["size"][hit] = rng.uniform(-50.0, 50.0, len(hit)) * (rng.random(len(hit)) > 0.2)
            b["entry"][hit] = rng.uniform(50.0, 150.0, len(hit))
            b["margin"][hit] = (
                np.abs(b["size"][hit]) * b["entry"][hit] / rng.uniform(1.0, 40.0, len(hit))
            )
            index.touch(hit.astype(np.int64))
            if rng.random() < 0.1:
                index.invalidate()  # funding or a tier change: rebuilt from live state
            if not index.valid:
                index.rebuild(b["size"], b["entry"], b["margin"], b["mode"], b["kind"], tiers)
            for mark in rng.uniform(40.0, 170.0, 4):
                cand = index.candidates(float(mark), b["size"], b["entry"], b["margin"], tiers)
                assert np.all(np.diff(cand) > 0), "ascending, no duplicates"
                missing = np.setdiff1d(_in_zone(b, float(mark), level, tiers), cand)
                assert len(missing) == 0, (mark, missing)
    if dirty_floor <= 1:
        assert index.compactions + index.rebuilds > 1


def test_level_index_compaction_keeps_every_zone_position() -> None:
    rng = np.random.default_rng(5)
    tiers = MarketSpec.simple("X", max_leverage=50, maintenance_rate=0.01).tier_arrays
    n = 40
    b = _book(rng, n, tiers)
    index = LevelIndex(1.0)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(level_mod, "DIRTY_FLOOR", 0)
        index.rebuild(b["size"], b["entry"], b["margin"], b["mode"], b["kind"], tiers)
        # Open a long on a flat account: it joins through the dirty set, then the sorted order.
        a = int(np.flatnonzero(b["size"] == 0.0)[0]) if np.any(b["size"] == 0.0) else 0
        b["size"][a], b["entry"][a], b["margin"][a], b["mode"][a], b["kind"][a] = (
            10.0, 100.0, 20.0, 1, 0,
        )  # fmt: skip
        index.touch(np.array([a]))
        zone = (100.0 - 2.0) / (1.0 - 0.01)  # (e - M / s) / (1 - mmr), the liquidation price
        cand = index.candidates(zone * 0.999, b["size"], b["entry"], b["margin"], tiers)
        assert a in cand
        assert index.compactions >= 1
        assert a in index.long_acc  # merged into the sorted order
        cand = index.candidates(zone * 1.01, b["size"], b["entry"], b["margin"], tiers)
        assert a not in cand


# ---------------------------------------------------------------------------- CrossIndex


@settings(max_examples=30)
@given(seed=st.integers(0, 2**32 - 1), level=st.sampled_from([0.8, 1.0]))
def test_cross_index_bound_is_safe(seed: int, level: float) -> None:
    """An account the bound leaves out is really out of the zone after moves below ``q``."""
    rng = np.random.default_rng(seed)
    specs = [preset("binance", "BTCUSDT"), preset("okx", "BTC")]
    tiers = [s.tier_arrays for s in specs]
    n = 80
    p0 = np.array([60_000.0, 3_000.0])
    sizes = [rng.uniform(-5.0, 5.0, n) * (rng.random(n) < 0.7) for _ in specs]
    sizes[1] *= 20.0
    entries = [p * rng.uniform(0.9, 1.1, n) for p in p0]
    modes = [np.zeros(n, dtype=np.int8) for _ in specs]
    notional0 = sum(np.abs(s) * p for s, p in zip(sizes, p0, strict=True))
    cash = notional0 * rng.uniform(0.01, 0.5, n)
    trader = rng.random(n) < 0.95

    def equity_maint(marks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        e = cash.copy()
        mt = np.zeros(n)
        for s, en, t, p in zip(sizes, entries, tiers, marks, strict=True):
            e += s * (p - en)
            mt += mm.maintenance_margin(np.abs(s) * p, t)
        return e, mt

    e0, m0 = equity_maint(p0)
    index = CrossIndex(level)
    index.build(p0, sizes, modes, tiers, e0, m0, trader)
    assert index.valid
    for _ in range(40):
        move = rng.uniform(-0.6, 0.6, 2) * rng.choice([1.0, 0.1, 0.01])
        marks = p0 * (1.0 + move)
        split = index.split(marks)
        e1, m1 = equity_maint(marks)
        in_zone = np.flatnonzero(trader & (m1 >= level * e1) & (index_has(index, n)))
        if split is not None:  # each one evaluated or certainly warned (the near set's bounds)
            parts = zip(split.in_acc, split.in_q, strict=True)
            sure = np.concatenate([a[q > split.threshold] for a, q in parts])
            covered = np.union1d(split.evaluate, sure)
            assert np.all(np.isin(in_zone, covered)), (move, np.setdiff1d(in_zone, covered))
        # Independent of the prefix logic: every account with q above the move is out.
        safe = index.acc[index.q > np.max(np.abs(move)) * (1 + 1e-9) + 1e-12]
        assert not np.any(np.isin(safe, in_zone)), (move, np.intersect1d(safe, in_zone))


def index_has(index: CrossIndex, n: int) -> np.ndarray:
    out = np.zeros(n, dtype=bool)
    out[index.acc] = True
    return out


def test_cross_index_touched_accounts_are_always_evaluated() -> None:
    tiers = [MarketSpec.simple("X", max_leverage=20, maintenance_rate=0.01).tier_arrays]
    n = 5
    size = [np.array([1.0, -1.0, 2.0, 0.0, 1.0])]
    modes = [np.zeros(n, dtype=np.int8)]
    equity = np.array([50.0, 50.0, 60.0, 10.0, 90.0])
    maint = np.abs(size[0]) * 100.0 * 0.01
    index = CrossIndex(1.0)
    index.build(np.array([100.0]), size, modes, tiers, equity, maint, np.ones(n, dtype=bool))
    # q = (E - MM) / (|s| p0 (1 + mmr)): 49/101, 49/101, 58/202, 89/101; account 3 is flat.
    np.testing.assert_allclose(np.sort(index.q), np.sort([49 / 101, 49 / 101, 58 / 202, 89 / 101]))
    split = index.split(np.array([100.0]))
    assert split is not None
    assert len(split.evaluate) == 0
    split = index.split(np.array([130.0]))  # a 30 % move reaches q = 0.287 (all are near)
    assert split is not None
    assert list(split.evaluate) == [2]
    index.touch(np.array([4, 3]))
    split = index.split(np.array([100.0]))
    assert split is not None
    assert list(split.evaluate) == [3, 4]
    assert index.split(np.array([250.0])) is None  # beyond MAX_MOVE: full pass


# ---------------------------------------------------------------------------- cross kernels


@settings(max_examples=10)
@given(seed=st.integers(0, 2**32 - 1), n_markets=st.integers(1, 3))
def test_subset_scan_and_cross_pool_equal_the_full_pass(seed: int, n_markets: int) -> None:
    """The compiled subset scan over any set of accounts equals the full pass restricted to
    them, :meth:`Exchange.cross_pool` equals ``account_margins``' cross figures and
    :meth:`Exchange.cross_maintenances` the NumPy maintenance of each cross position, bit for
    bit, after every operation of a random sequence (the full pass, ``account_margins`` and
    ``rules.margin`` are the oracles)."""
    rng = np.random.default_rng(seed)
    twin = Twin(n_markets, 14, rng, check=False)
    ex = twin.engines[1]  # the full-pass engine: its cross_scan is the plain loop
    for _ in range(40):
        twin.step()
        n = ex.n_accounts
        for m in range(n_markets):
            for level in LEVELS:
                full = ex.cross_scan(m, level)
                acc = np.flatnonzero(rng.random(n) < 0.6).astype(np.int64)
                got = ex._cross_scan_subset(m, level, acc)
                keep_b = np.isin(full["below"], acc)
                keep_w = np.isin(full["warn"], acc)
                assert np.array_equal(got["below"], full["below"][keep_b])
                assert np.array_equal(got["below_equity"], full["below_equity"][keep_b])
                assert np.array_equal(got["below_maintenance"], full["below_maintenance"][keep_b])
                assert np.array_equal(got["warn"], full["warn"][keep_w])
                assert np.array_equal(got["warn_ratio"], full["warn_ratio"][keep_w])
        for a in range(n):
            margins = ex.account_margins(a)
            assert ex.cross_pool(a) == (margins.cross_equity, margins.cross_maintenance)
            ids, maint = ex.cross_maintenances(a)
            want = [
                (m, float(mm.maintenance_margin(abs(ex.columns(m).size[a]) * st_.mark, st_.tiers)))
                for m, st_ in enumerate(ex.markets)
                if ex.columns(m).size[a] != 0.0 and ex.columns(m).mode[a] == MarginMode.CROSS
            ]
            assert list(zip(ids, maint, strict=True)) == want


@settings(max_examples=60)
@given(
    steps=st.lists(st.floats(0.0, 1e7), min_size=0, max_size=12),
    notional=st.one_of(st.floats(0.0, 1e9), st.just(float("nan"))),
)
def test_walked_tier_equals_counted_tier(steps: list[float], notional: float) -> None:
    """The cross kernels' tier walk finds the tier :func:`tier_of_nb` counts (and NumPy's
    ``tier_index`` searches) for any increasing floors from 0."""
    floor = np.concatenate([[0.0], np.cumsum(steps)])
    assert tier_nb(notional, floor) == tier_of_nb(notional, floor)
    if notional == notional:
        tiers = MarketSpec.simple("X").tier_arrays
        tiers = type(tiers)(floor=floor, imr=floor, mmr=floor, cum=floor)
        assert tier_nb(notional, floor) == int(mm.tier_index(notional, tiers))
