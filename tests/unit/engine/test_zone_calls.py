"""The tracked isolated scan and margin calls (:mod:`deleverage.engine.zone_calls`) against the
full pass.

Two engines take the same random operations: marks up and down (small moves, jumps, the same
mark again), fills that open, grow, cut, flip and close isolated positions, margin moves,
accounts opened on the way, funding now and then, and (in ``check_invariants`` mode) a called
set rewritten by another path, as the quiet stretches do (the tracker adopts it). One engine
runs as shipped (the zone-price index and the tracker), the other without
the index (``use_level_index = False``: a plain loop over every position, and the called set
from the scan's sets: the oracle). After every operation the called sets must be the same
arrays in the same order, the scans' ``below`` columns equal bit for bit; at the end the
journals (every ``MarginCall`` row, with its ratio) and the state hashes. A tracker whose
band is deliberately too narrow fails the comparison, and so does a step that takes the
zone's walk (a crossed band costlier than the zone) without restarting the statuses from it.
"""

from __future__ import annotations

import collections
import contextlib
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deleverage import Exchange, MarginMode, MarketSpec
from deleverage.engine import level_index as level_mod
from deleverage.engine import zone_calls
from deleverage.engine.risk import step as risk_step
from deleverage.engine.zone_calls import ZoneTracker
from deleverage.engine.zone_kernels import refresh_calls_nb, zone_step_nb
from deleverage.errors import DeleverageError
from deleverage.venues import preset

BELOW_FIELDS = ("below", "below_equity", "below_maintenance")


def _wide(spec: MarketSpec, ratio: float) -> MarketSpec:
    """``spec`` with the call level at ``ratio``: a wide warning zone, many calls and leaves."""
    liq = spec.liquidation.model_copy(update={"margin_call_ratio": ratio})
    return spec.model_copy(update={"liquidation": liq})


_SPECS = {
    "simple": lambda: MarketSpec.simple("SIMPLE", max_leverage=50, maintenance_rate=0.01),
    "simple-wide": lambda: _wide(
        MarketSpec.simple("SIMPLE", max_leverage=50, maintenance_rate=0.01), 0.4
    ),
    "binance": lambda: preset("binance", "BTCUSDT"),
    "binance-wide": lambda: _wide(preset("binance", "BTCUSDT"), 0.6),
}
_MARK = {"simple": 2_000.0, "simple-wide": 2_000.0, "binance": 60_000.0, "binance-wide": 60_000.0}


class Twin:
    """The same operations on the tracked engine (0) and the full-pass engine (1)."""

    def __init__(
        self, spec: str, n_traders: int, rng: np.random.Generator, *, check: bool = False,
        replace: bool = False,
    ) -> None:  # fmt: skip
        self.rng = rng
        self.spec = _SPECS[spec]()
        self.check = check
        self.replace = check or replace
        self.engines = [Exchange(check_invariants=check), Exchange()]
        self.engines[1].use_level_index = False
        if replace:  # the called sets rewritten (below): the quiet-mark shortcut off
            for ex in self.engines:
                ex.quiet_marks.enabled = False
        self.ts = 0
        for ex in self.engines:
            ex.list_market(self.spec)
            ex.set_mark(0, _MARK[spec])
        self.traders: list[int] = []
        for _ in range(n_traders):
            self.new_trader()

    def both(self, op: Any) -> Any:
        out: list[Any] = []
        errors: list[str | None] = []
        for ex in self.engines:
            try:
                out.append(op(ex))
                errors.append(None)
            except DeleverageError as exc:
                out.append(None)
                errors.append(type(exc).__name__)
        assert errors[0] == errors[1], errors
        return out[0]

    def new_trader(self) -> None:
        deposit = float(self.rng.choice([500.0, 2_000.0, 20_000.0]))
        lev = float(self.rng.choice([5.0, 10.0, 20.0, 25.0, 50.0]))
        lev = min(lev, self.spec.max_leverage)
        a = self.both(lambda ex: ex.open_account(margin_mode=MarginMode.ISOLATED))
        self.both(lambda ex: ex.deposit(a, deposit))
        self.both(lambda ex: ex.set_leverage(a, 0, lev))
        self.traders.append(a)
        self.open(a)

    def price(self) -> float:
        tick = self.spec.tick_size
        return max(1, round(self.engines[0].markets[0].mark / tick)) * tick

    def open(self, a: int, share: float | None = None) -> None:
        ex = self.engines[0]
        free = ex.account_margins(a).withdrawable
        lev = float(ex.columns(0).leverage[a]) or self.spec.max_leverage
        share = float(self.rng.uniform(0.3, 0.97)) if share is None else share
        notional = max(free, 50.0) * lev * share
        px = self.price()
        lot = self.spec.lot_size
        size = max(1, round(notional / (px * lot))) * lot
        book = ex.liquidity_account
        buyer, seller = (a, book) if self.rng.random() < 0.5 else (book, a)
        self.both(lambda ex: ex.trade(0, buyer=buyer, seller=seller, size=size, price=px))

    def step(self) -> str:
        rng = self.rng
        a = int(rng.choice(self.traders))
        kinds = ["mark"] * 6 + ["same", "open", "close", "margin", "new", "fund"]
        # A called set rewritten by another path: only without the quiet-mark shortcut, which
        # holds for the called sets the risk step makes (``check_invariants`` turns it off).
        kind = str(rng.choice([*kinds, "replace"] if self.replace else kinds))
        ex = self.engines[0]
        if kind == "mark":
            r = rng.random()
            move = (
                float(rng.normal(0.0, 0.004)) if r < 0.6
                else float(rng.normal(0.0, 0.02)) if r < 0.9
                else float(rng.choice([-0.08, 0.08]))
            )  # fmt: skip
            self.set_mark(ex.markets[0].mark * float(np.exp(move)))
        elif kind == "same":
            self.set_mark(ex.markets[0].mark * (1.0 + float(rng.choice([0.0, 1e-7, -1e-7]))))
        elif kind == "open":
            self.open(a)
        elif kind == "close":  # cut, close or flip through the book
            size = float(ex.columns(0).size[a])
            if size != 0.0:
                cut = float(rng.choice([0.5, 1.0, 2.0])) * abs(size)
                cut = max(1, round(cut / self.spec.lot_size)) * self.spec.lot_size
                book, px = ex.liquidity_account, self.price()
                buyer, seller = (a, book) if size < 0 else (book, a)
                self.both(lambda ex: ex.trade(0, buyer=buyer, seller=seller, size=cut, price=px))
        elif kind == "margin":
            amount = float(rng.uniform(1.0, 200.0))
            if rng.random() < 0.5:
                self.both(lambda ex: ex.add_isolated_margin(a, 0, amount))
            else:
                self.both(lambda ex: ex.remove_isolated_margin(a, 0, amount))
        elif kind == "replace":  # another path rewrites the called set (as quiet stretches do)
            called = ex.risk.markets[0].called_isolated
            keep = called[rng.random(len(called)) < 0.7]
            others = rng.choice(self.traders, int(rng.integers(0, 4)))
            new = np.concatenate([keep, np.setdiff1d(others, keep)]).astype(np.int64)
            for engine in self.engines:
                engine.risk.markets[0].called_isolated = new.copy()
        elif kind == "new":
            self.new_trader()
        else:
            rate = float(rng.choice([-0.002, 0.002]))
            self.ts += 1_000_000_000
            self.both(lambda ex: ex.settle_funding(0, rate, ts_ns=self.ts))
        return kind

    def set_mark(self, price: float) -> None:
        self.ts += 1_000_000_000
        self.both(lambda ex: ex.set_mark(0, price, ts_ns=self.ts))

    def assert_equal(self) -> None:
        a, b = self.engines
        assert np.array_equal(
            a.risk.markets[0].called_isolated, b.risk.markets[0].called_isolated
        ), (a.risk.markets[0].called_isolated, b.risk.markets[0].called_isolated)
        level = self.spec.liquidation.margin_call_ratio
        got, want = a.isolated_scan(0, level), b.isolated_scan(0, level)
        for f in BELOW_FIELDS:
            assert np.array_equal(got[f], want[f]), (f, got[f], want[f])

    def assert_same_history(self) -> None:
        a, b = self.engines
        assert a.journal.to_arrow().equals(b.journal.to_arrow())
        assert a.state_hash() == b.state_hash()


def _run(seed: int, spec: str, n_ops: int, *, check: bool = False, replace: bool = False) -> Twin:
    twin = Twin(spec, 24, np.random.default_rng(seed), check=check, replace=replace)
    twin.assert_equal()
    for _ in range(n_ops):
        twin.step()
        twin.assert_equal()
    twin.assert_same_history()
    return twin


def _failures(spec: str, n_ops: int) -> int:
    """On how many of six seeds the twin comparison fails."""
    failed = 0
    for seed in range(6):
        try:
            _run(seed, spec, n_ops)
        except AssertionError:
            failed += 1
    return failed


class _Spy:
    """Counts the tracker's incremental steps that evaluated (``step``, either path: the
    scan's :meth:`.ZoneTracker.step` or the margin calls' one pass), the margin calls made
    in one pass (``one pass``: :func:`.zone_calls.tracked_calls`), the general path's call
    updates and the full restarts."""

    def __init__(self, mp: pytest.MonkeyPatch) -> None:
        self.used: collections.Counter[str] = collections.Counter()
        moved, calls, resync = ZoneTracker._moved, ZoneTracker.calls, ZoneTracker.resync
        tracked = risk_step.tracked_calls

        def one_pass(*args: Any) -> Any:
            out = tracked(*args)
            self.used["one pass"] += out is not None
            return out

        mp.setattr(risk_step, "tracked_calls", one_pass)

        def spy(name: str, fn: Any) -> Any:
            def wrapped(*args: Any, **kwargs: Any) -> Any:
                self.used[name] += 1
                return fn(*args, **kwargs)

            return wrapped

        self.count = spy
        mp.setattr(ZoneTracker, "_moved", spy("step", moved))
        mp.setattr(ZoneTracker, "calls", spy("calls", calls))
        mp.setattr(ZoneTracker, "resync", spy("resync", resync))


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), spec=st.sampled_from(sorted(_SPECS)))
def test_tracked_calls_equal_full_pass(seed: int, spec: str) -> None:
    with pytest.MonkeyPatch.context() as mp:
        spy = _Spy(mp)
        _run(seed, spec, 80)
    assert spy.used["step"] > spy.used["resync"]  # the incremental path did the work
    assert spy.used["one pass"] > 0  # most margin calls in one pass


@pytest.mark.parametrize("spec", ["simple-wide", "binance"])
def test_margin_calls_without_the_one_pass_equal_full_pass(spec: str) -> None:
    """With :func:`.zone_calls.tracked_calls` switched off (``risk.step.TRACKED_CALLS``) the
    margin calls take the general path (the ask, the step's call update, ``calls``): the
    same as the full pass too (the one-pass twin: tests/unit/engine/
    test_calls_only_step_twin.py)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(risk_step, "TRACKED_CALLS", False)
        spy = _Spy(mp)
        for seed in range(2):
            _run(seed, spec, 80)
    assert spy.used["one pass"] == 0
    assert spy.used["step"] > spy.used["resync"]
    assert spy.used["calls"] > 0


def test_replaced_called_sets_adopted_in_one_pass() -> None:
    """Called sets rewritten by another path (the quiet-mark shortcut off, as the check mode
    has it) and the margin calls in one pass (no check): the fused call adopts them, and
    the calls equal the full pass's."""
    with pytest.MonkeyPatch.context() as mp:
        spy = _Spy(mp)
        kernels = _Kernels(mp)
        for seed in range(3):
            _run(seed, "simple-wide", 120, replace=True)
    assert spy.used["one pass"] > 0
    assert kernels.used["adopted"] > 0


@pytest.mark.parametrize("floor", [0, 2])
def test_tracked_calls_equal_full_pass_with_compaction(floor: int) -> None:
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(level_mod, "DIRTY_FLOOR", floor)
        _run(7, "simple", 100)


def test_check_invariants_mode_compares_the_tracked_calls() -> None:
    """The engine's own check (every tracked scan and call update against the full pass)
    accepts the tracked path."""
    with pytest.MonkeyPatch.context() as mp:
        spy = _Spy(mp)
        mp.setattr(ZoneTracker, "adopt", spy.count("adopt", ZoneTracker.adopt))
        kernels = _Kernels(mp)
        twin = _run(3, "simple-wide", 120, check=True)
    assert spy.used["calls"] > 0
    assert kernels.used["adopted"] > 0  # replaced called sets adopted in the fused call
    assert any(r.margin_calls for r in twin.engines[0].risk.reports)


def test_a_too_narrow_band_fails_the_comparison() -> None:
    """Evaluating only the positions well past the old mark (the band cut by 3 %) misses
    entrants: the called sets or the journals differ on some of these seeds."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(zone_calls, "CERTAIN_RTOL", -0.03)
        assert _failures("simple", 80) > 0


def _walk_often(mp: pytest.MonkeyPatch, weight: float) -> None:
    """Let every step that evaluates more entries than ``1 / weight`` times the zone's walk
    take the walk (the shipped thresholds only let a crash across thousands of prices); at
    0.5 about three steps in four of these small books take it, at 2 nearly all."""
    mp.setattr(zone_calls, "WALK_MIN", 0)
    mp.setattr(zone_calls, "WALK_SHARE", 1 << 40)
    mp.setattr(zone_calls, "WALK_WEIGHT", weight)


@pytest.mark.parametrize("weight", [0.5, 2.0])
def test_a_step_that_takes_the_walk_keeps_the_same_calls(weight: float) -> None:
    """Steps whose crossed band outweighs the zone take the index's walk and restart the
    statuses from it; the tracked steps after it give the full pass's calls."""
    walked: list[int] = []
    with pytest.MonkeyPatch.context() as mp:
        _walk_often(mp, weight)
        spy = _Spy(mp)
        walk = zone_calls.walked_scan

        def counted(*args: Any) -> Any:
            walked.append(1)
            return walk(*args)

        mp.setattr(zone_calls, "walked_scan", counted)
        for seed in range(3):
            _run(seed, "simple-wide", 80)
            _run(seed + 10, "binance", 60)
    assert len(walked) > 0
    assert spy.used["step"] > 0  # tracked steps besides the walks


def test_a_walk_that_keeps_the_old_statuses_fails_the_comparison() -> None:
    """The walk must restart the statuses: one that keeps them (only the scan taken) leaves
    the positions the mark carried out of the zone at their old status, and a later return
    into the zone is not called."""

    def stale(
        ex: Any, tracker: ZoneTracker, index: Any, m: int, call_level: float
    ) -> dict[str, Any]:
        scan = zone_calls.plain_scan(ex, index, m, call_level)
        tracker.synced = True  # step() turned it off: the statuses kept as they were
        tracker.mark, tracker.version = ex.markets[m].mark, ex._version
        return scan

    with pytest.MonkeyPatch.context() as mp:
        _walk_often(mp, 0.5)
        mp.setattr(zone_calls, "walked_scan", stale)
        assert _failures("simple-wide", 80) > 0


class _Kernels:
    """Counts the tracker's compiled calls (the step alone, the step with the call update,
    the refreshes with both) and the codes of :func:`.refresh_calls_nb`."""

    def __init__(self, mp: pytest.MonkeyPatch, corrupt: bool = False) -> None:
        self.used: collections.Counter[str] = collections.Counter()
        for name in ("zone_step_nb", "refresh_calls_nb", "calls_apply_nb"):
            mp.setattr(zone_calls, name, self._wrap(name, getattr(zone_calls, name), corrupt))

    def _wrap(self, name: str, fn: Any, corrupt: bool) -> Any:
        def wrapped(*args: Any) -> Any:
            out = fn(*args)
            if name == "refresh_calls_nb":
                refresh = args[10]
                self.used[f"code {out[0]}" if refresh else "no refresh"] += 1
                if corrupt and out[0] == 0:  # the called set left as it was
                    return (*out[:5], args[-5], out[6][:0], out[7][:0], *out[8:])
            if name == "refresh_calls_nb" and args[-1]:
                self.used["adopted"] += 1  # a called set replaced by another path
            self.used[name] += 1
            return out

        return wrapped


def test_the_fused_calls_do_the_work() -> None:
    """The call updates of these runs come from the fused kernel: the step with the update
    (:func:`.refresh_calls_nb` without refreshes) and the refreshes with both (code 0), or
    the walk after the refreshes (code 1); every run still equals the full pass."""
    with pytest.MonkeyPatch.context() as mp:
        kernels = _Kernels(mp)
        for seed in range(4):
            _run(seed, "simple-wide", 80)
            _run(seed + 20, "binance-wide", 60)
        _walk_often(mp, 0.5)
        for seed in range(3):
            _run(seed + 40, "simple-wide", 60)
    used = kernels.used
    assert used["no refresh"] > 0
    assert used["code 0"] > 0  # the refreshes, the step and the update in one call
    assert used["code 1"] > 0  # the walk (refreshes installed, nothing evaluated)


def test_an_index_that_compacts_at_every_refresh() -> None:
    """Where an index must compact after the refreshes (here: any dirty entry), the fused
    call stops before the step (code 2), the refreshes are installed and compacted the usual
    way, and the step runs on the compacted indexes: the same calls as the full pass."""
    with pytest.MonkeyPatch.context() as mp:
        kernels = _Kernels(mp)
        mp.setattr(level_mod.LevelIndex, "dirty_limits", lambda self: (0, 0))
        for seed in range(3):
            _run(seed, "simple-wide", 80)
            _run(seed + 20, "binance-wide", 60)
    assert kernels.used["code 2"] > 0


def test_refreshes_that_must_grow_the_flags() -> None:
    """A fused call that meets a touched account beyond the flags changes nothing and says
    so (code 3; the kernel checks that first): the one-index refreshes grow the flags, then
    the step runs (the fused call without refreshes). Every fused call with refreshes
    answered so here: the same calls as the full pass."""
    answered: list[int] = []

    def beyond(*args: Any) -> Any:
        if not args[10]:  # no refreshes: the kernel itself
            return refresh_calls_nb(*args)
        answered.append(1)
        e_i, e_f = np.zeros(0, dtype=np.int64), np.zeros(0)
        refresh = (-1, e_i, e_f, -1, e_i)
        return 3, refresh, e_i, e_f, e_f, args[-5], e_i, e_f, 0, 0

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(zone_calls, "refresh_calls_nb", beyond)
        for seed in range(3):
            _run(seed, "simple-wide", 80)
    assert len(answered) > 0


def test_the_fused_refresh_stops_at_an_account_beyond_the_flags() -> None:
    """:func:`.refresh_calls_nb` itself: a touched account past the flags gives code 3 and
    leaves the flags, the statuses and the called flags as they were."""
    n = 8
    key, acc = np.array([-1.0, -0.5]), np.array([1, 2], dtype=np.int64)
    side = (key, acc, 0)
    flag = np.zeros(n, dtype=np.bool_)
    dirty = (flag, False, np.zeros(0, dtype=np.int64), np.zeros(0))
    cols = np.ones(n), np.ones(n), np.ones(n), np.ones(n, dtype=np.int8), np.zeros(n, np.int8)
    status = np.array([0, 2, 1, 0, 0, 0, 0, 0], dtype=np.int8)
    is_called = status == 2
    called = np.array([1], dtype=np.int64)
    touched = np.array([3, n + 2], dtype=np.int64)
    code, refresh, *_ = refresh_calls_nb(
        touched, np.zeros(n, dtype=np.bool_), 0.5, 0, (10, 10), touched,
        np.zeros(n, dtype=np.bool_), 0, (10, 10), np.full(16, np.nan), True, side, side, dirty,
        side, side, dirty, touched[:1], *cols, 1.0, 0.9, np.zeros(1), np.array([0.01]),
        np.zeros(1), 0.0, 0.5, 1e-6, status, np.zeros(n, dtype=np.bool_),
        np.zeros(n, dtype=np.bool_), 1e-7, 2.0, 1024, 0, called, np.zeros(0, dtype=np.int64),
        is_called, called, False,
    )  # fmt: skip
    assert code == 3
    assert refresh[0] == -1
    assert not flag.any()
    assert status.tolist() == [0, 2, 1, 0, 0, 0, 0, 0]
    assert is_called.tolist() == (status == 2).tolist()


def test_a_fused_update_that_drops_the_changes_fails_the_comparison() -> None:
    """The called sets come from the fused kernels' update: one that leaves the set as it
    was (the step's status changes not applied) gives other called sets or journals."""
    with pytest.MonkeyPatch.context() as mp:
        _Kernels(mp, corrupt=True)
        assert _failures("simple-wide", 80) > 0


def test_a_fused_call_that_skips_the_adoption_fails() -> None:
    """A called set replaced by another path is adopted in the fused call (the flags follow
    the new set before the update): one that updates the new set with the flags of the old
    one (``replaced`` dropped) gives other called sets."""

    def skipping(fn: Any) -> Any:
        def wrapped(*args: Any) -> Any:
            return fn(*args[:-1], False)

        return wrapped

    failed = 0
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(zone_calls, "refresh_calls_nb", skipping(refresh_calls_nb))
        for seed in range(4):
            try:
                _run(seed, "simple-wide", 120, check=True)
            except (AssertionError, DeleverageError):
                failed += 1
    assert failed > 0


def _copied(value: Any) -> Any:
    """``value`` with every array copied (tuples of arrays too)."""
    if isinstance(value, np.ndarray):
        return value.copy()
    if isinstance(value, tuple):
        return tuple(_copied(v) for v in value)
    return value


class _HeadsTwin:
    """Replays every fused call without refreshes of the runs on copies of its arguments
    through :func:`.zone_step_nb` alone (which returns the liquidation index's heads as an
    array): the fused call's two head numbers and ``below`` columns must be the same
    (``differed`` counts the calls where they were not)."""

    def __init__(self, fn: Any) -> None:
        self.fn = fn
        self.compared = self.moved = self.differed = 0

    def __call__(self, *args: Any) -> Any:
        if args[10]:  # with refreshes: the step runs on the refreshed dirty entries
            return self.fn(*args)
        step = zone_step_nb(*_copied(args[11:38]))
        out = self.fn(*args)
        if out[0] == 0:
            below, below_e, below_m, _, heads, _ = step
            same = (out[8], out[9]) == (heads[0], heads[1]) and all(
                np.array_equal(got, want)
                for got, want in zip(out[2:5], (below, below_e, below_m), strict=True)
            )
            self.differed += not same
            self.compared += 1
            self.moved += (out[8], out[9]) != (args[14][2], args[15][2])
        return out


def test_the_fused_call_returns_the_steps_heads() -> None:
    """The fused call returns the liquidation index's heads as two numbers: those of
    :func:`.zone_step_nb` on the same state (heads that moved included), and the runs still
    equal the full pass."""
    twin = _HeadsTwin(refresh_calls_nb)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(zone_calls, "refresh_calls_nb", twin)
        for seed in range(3):
            _run(seed, "simple-wide", 80)
            _run(seed + 20, "binance-wide", 60)
    assert twin.compared > 0
    assert twin.moved > 0
    assert twin.differed == 0


def test_swapped_heads_fail_the_heads_twin() -> None:
    """The heads twin can fail: a fused call that returns the heads swapped."""

    def swapped(*args: Any) -> Any:
        out = refresh_calls_nb(*args)
        return (*out[:8], out[9], out[8])

    twin = _HeadsTwin(swapped)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(zone_calls, "refresh_calls_nb", twin)
        for seed in range(3):
            with contextlib.suppress(AssertionError):  # the runs need not notice it
                _run(seed, "simple-wide", 80)
    assert twin.differed > 0
