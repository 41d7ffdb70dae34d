"""Twins of the runner's cascade-round fast paths (issue #20, speed round 13, runner14).

- :meth:`VenuePrice.marker` against :meth:`VenuePrice.mark` for every rule: the same mark
  (bits and type) as the book moves between rounds, and the same refusal of a bad input;
- ``take_impact`` against ``price_impact`` then ``restore`` of a rested book, on every book;
- ``_add_reports`` against ``Simulation._add_report`` report by report;
- ``_fund_by_step`` and ``_max_drop`` against the groupbys they stand in for;
- ``Simulation._step_market`` against the loop it replaced (kept here as the reference) on
  small scenarios of each mark rule, with and without feedback and stretches, with an L2
  book, hedgers and coins: the same journal, frame, summary and result hash.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deleverage.engine.risk.support import StepReport
from deleverage.errors import ValidationError
from deleverage.liquidity import ConstantDepthBook, L2Book, PowerLawImpact
from deleverage.sim import runner as runner_mod
from deleverage.sim.pricing import PricingSpec
from deleverage.sim.runner import MIN_DISLOCATION, Simulation
from deleverage.sim.scenario import Scenario
from deleverage.sim.venue_price import VenuePrice

ScenarioFactory = Callable[..., Scenario]

RULES = ("book", "binance", "hyperliquid", "oracle")


def _bits(value: object) -> tuple[type, bytes]:
    return type(value), np.float64(value).tobytes()  # type: ignore[arg-type]


def _venue(rule: str, *, basis: list[float], ema: float, dislocation: float) -> VenuePrice:
    venue = VenuePrice(PricingSpec(), rule, dt_s=1.0)  # type: ignore[arg-type]
    venue._basis.extend(basis)
    venue.basis_ema = ema
    venue.dislocation = dislocation
    return venue


def _outcome(call: Any) -> object:
    try:
        return _bits(call())
    except ValidationError as exc:
        return ("refused", str(exc))


prices = st.floats(min_value=1.0, max_value=1e6)
moves = st.lists(st.floats(min_value=-0.5, max_value=0.5), min_size=1, max_size=6)


@settings(max_examples=150, deadline=None)
@given(
    rule=st.sampled_from(RULES),
    x=prices,
    index=prices,
    oracle=prices,
    rate=st.floats(min_value=-0.01, max_value=0.01),
    left=st.floats(min_value=-0.5, max_value=1.5),
    basis=st.lists(st.floats(min_value=-500.0, max_value=500.0), max_size=5),
    ema=st.floats(min_value=-100.0, max_value=100.0),
    d0=st.floats(min_value=-0.5, max_value=0.5),
    impacts=moves,
)
def test_the_marker_gives_the_marks_of_mark_round_by_round(
    rule: str,
    x: float,
    index: float,
    oracle: float,
    rate: float,
    left: float,
    basis: list[float],
    ema: float,
    d0: float,
    impacts: list[float],
) -> None:
    venue = _venue(rule, basis=basis, ema=ema, dislocation=d0)
    inputs = {"index": index, "oracle": oracle, "funding_rate": rate, "time_left_fraction": left}
    mark_now = venue.marker(x, **inputs)
    assert _outcome(mark_now) == _outcome(lambda: venue.mark(x, **inputs))
    for impact in impacts:  # the rounds: only the dislocation moves
        venue.absorb(impact)
        assert _outcome(mark_now) == _outcome(lambda: venue.mark(x, **inputs))


@pytest.mark.parametrize("rule", RULES)
@pytest.mark.parametrize(
    "bad",
    [
        {"index": math.nan},
        {"index": -1.0},
        {"oracle": math.inf},
        {"funding_rate": math.nan},
        {"time_left_fraction": math.nan},
        {"exogenous": math.nan},
        {"exogenous": math.inf},
    ],
)
def test_the_marker_refuses_what_mark_refuses(rule: str, bad: dict[str, float]) -> None:
    inputs = {"index": 100.0, "oracle": 100.0, "funding_rate": 1e-4, "time_left_fraction": 0.5}
    x = bad.pop("exogenous", 100.0)
    inputs.update(bad)
    venue = _venue(rule, basis=[1.0, -2.0], ema=0.5, dislocation=-0.01)
    assert _outcome(venue.marker(x, **inputs)) == _outcome(lambda: venue.mark(x, **inputs))


@pytest.mark.parametrize("rule", ["binance", "book"])
def test_a_book_gone_bad_after_the_first_mark_is_refused_as_mark_refuses_it(rule: str) -> None:
    inputs = {"index": 100.0, "oracle": 100.0, "funding_rate": 1e-4, "time_left_fraction": 0.5}
    venue = _venue(rule, basis=[1.0], ema=0.0, dislocation=0.0)
    mark_now = venue.marker(100.0, **inputs)
    assert _outcome(mark_now) == _outcome(lambda: venue.mark(100.0, **inputs))
    for d in (math.nan, math.inf, np.float64(0.01), np.float64(math.nan)):
        venue.dislocation = d  # type: ignore[assignment]
        assert _outcome(mark_now) == _outcome(lambda: venue.mark(100.0, **inputs))


def _books() -> list[Any]:
    return [
        ConstantDepthBook(depth_per_pct=10.0, half_life_s=30.0, max_move=0.5, ts_ns=0),
        PowerLawImpact(y=0.7, sigma=0.03, daily_volume=1e4, half_life_s=60.0, ts_ns=0),
        L2Book(
            np.array([99.0, 98.0, 97.0]),
            np.array([5.0, 5.0, 5.0]),
            np.array([101.0, 102.0, 103.0]),
            np.array([5.0, 5.0, 5.0]),
            half_life_s=20.0,
            mid=100.0,
            ts_ns=0,
        ),
    ]


@settings(max_examples=60, deadline=None)
@given(
    which=st.integers(0, 2),
    trades=st.lists(
        st.tuples(st.sampled_from([-1, 1]), st.floats(0.0, 8.0), st.integers(0, 5 * 10**9)),
        max_size=4,
    ),
    gap=st.integers(0, 10**11),
)
def test_take_impact_is_price_impact_then_restore(
    which: int, trades: list[tuple[int, float, int]], gap: int
) -> None:
    fast, slow = _books()[which], _books()[which]
    ts = 0
    for side, size, dt in trades:
        ts += dt
        for book in (fast, slow):
            book.execute(side, size, 100.0, ts)
    at = ts + gap
    moved = slow.price_impact(at)
    if float(moved) != 0.0:
        slow.restore({"consumed_depth": 0.0, "ts_ns": at})
    taken = fast.take_impact(at)
    assert _bits(float(taken)) == _bits(float(moved))
    assert fast.snapshot() == slow.snapshot()
    assert _bits(fast.consumed_depth) == _bits(slow.consumed_depth)
    before = fast.ts_ns - 1  # before the last update: refused as price_impact refuses it
    with pytest.raises(ValidationError) as refused:
        fast.take_impact(before)
    with pytest.raises(ValidationError) as reference:
        slow.price_impact(before)
    assert str(refused.value) == str(reference.value)
    assert fast.snapshot() == slow.snapshot()


def test_recover_at_the_last_update_changes_nothing() -> None:
    for book in _books():
        book.execute(-1, 3.0, 100.0, 10)
        before = book.snapshot()
        book.recover(10)
        book.recover(np.int64(10))
        assert book.snapshot() == before
        book.recover(10 + 10**9)
        assert book.snapshot()["ts_ns"] == 10 + 10**9
        with pytest.raises(ValidationError):
            book.recover(5)


report_fields = {
    "liquidations": st.integers(0, 50),
    "liquidated_notional": st.floats(0.0, 1e7),
    "adl_notional": st.floats(0.0, 1e6),
    "adl_rounds": st.integers(0, 3),
    "bad_debt": st.floats(0.0, 1e5),
    "socialized_loss": st.floats(0.0, 1e5),
    "margin_calls": st.integers(0, 100),
    "shortfall": st.floats(-1e3, 1e5),
    "adl_loss": st.floats(0.0, 1e4),
    "backstop_takeovers": st.integers(0, 3),
    "backstop_loss": st.floats(0.0, 1e4),
}


@settings(max_examples=100, deadline=None)
@given(
    reports=st.lists(
        st.one_of(st.none(), st.fixed_dictionaries(report_fields)), min_size=1, max_size=8
    )
)
def test_add_reports_is_add_report_one_by_one(reports: list[dict[str, Any] | None]) -> None:
    objects = [None if r is None else StepReport(0, 0, **r) for r in reports]
    one_by_one = dict(runner_mod._ROW)
    for report in objects:
        Simulation._add_report(one_by_one, report)
    at_once = dict(runner_mod._ROW)
    runner_mod._add_reports(at_once, objects)
    assert list(at_once) == list(one_by_one)
    assert [_bits(v) for v in at_once.values()] == [_bits(v) for v in one_by_one.values()]


def _frame(n: int, n_m: int, fund: np.ndarray, marks: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "step": np.repeat(np.arange(n), n_m),
            "market": pd.Categorical.from_codes(
                np.tile(np.arange(n_m, dtype=np.int8), n), categories=[f"M{j}" for j in range(n_m)]
            ),
            "insurance_fund": fund,
            "mark": marks,
        }
    )


@settings(max_examples=80, deadline=None)
@given(
    n=st.integers(1, 30),
    n_m=st.integers(1, 3),
    data=st.data(),
)
def test_fund_by_step_and_max_drop_are_the_groupbys(n: int, n_m: int, data: Any) -> None:
    values = st.one_of(st.floats(0.0, 1e6), st.just(math.nan))
    positive = st.one_of(st.floats(1e-3, 1e6), st.just(math.nan))  # marks: > 0 or NaN
    fund = np.array(data.draw(st.lists(values, min_size=n * n_m, max_size=n * n_m)))
    marks = np.array(data.draw(st.lists(positive, min_size=n * n_m, max_size=n * n_m)))
    steps = _frame(n, n_m, fund, marks)
    fast = runner_mod._fund_by_step(steps, n_m)
    slow = steps.groupby("step")["insurance_fund"].first()
    assert fast.index.equals(slow.index)
    assert np.array_equal(fast.to_numpy(), slow.to_numpy(), equal_nan=True)
    assert _bits(float(fast.min())) == _bits(float(slow.min()))
    assert _bits(float(fast.iloc[-1])) == _bits(float(slow.iloc[-1]))
    worst = 0.0
    with np.errstate(invalid="ignore"):  # NaN marks: the same NaN ratios on both sides
        for _, group in steps.groupby("market", observed=True)["mark"]:
            v = group.to_numpy()
            worst = max(worst, float(np.max(1.0 - v / np.maximum.accumulate(v))))
        fast_drop = runner_mod._max_drop(steps, "mark", n_m)
    assert _bits(fast_drop) == _bits(worst)


def _reference_step_market(
    self: Simulation, m: int, k: int, ts: int, prices: tuple[float, float, float], left: float
) -> dict[str, float]:
    """``Simulation._step_market`` as it was before runner14 (main 923dccc)."""
    ex = self.ex
    book = self.books[m]
    venue = self.venue[m]
    row = dict.fromkeys(runner_mod._ROW_KEYS, 0.0)
    if not self.feedback and book is not None:
        book.restore({"consumed_depth": 0.0, "ts_ns": ts})
    x, index, oracle = prices
    inputs = {
        "index": index, "oracle": oracle, "funding_rate": float(self.last_funding_rate[m]),
        "time_left_fraction": left,
    }  # fmt: skip
    mark = venue.mark(x, **inputs)
    if k == 0 and mark == ex.markets[m].mark:
        return row

    def set_mark(mark: float) -> None:
        if self.books[m] is not None:
            ex.set_book_mid(m, venue.book_mid(x))
        ex.set_mark(m, mark, ts_ns=ts)

    def absorb_impact() -> float:
        assert book is not None
        moved = float(book.price_impact(ts))
        if moved != 0.0:
            venue.absorb(moved)
            book.restore({"consumed_depth": 0.0, "ts_ns": ts})
        return moved

    add = Simulation._add_report
    set_mark(mark)
    add(row, ex.last_step)
    rounds = 0
    limit = self.scenario.max_cascade_rounds
    while self.feedback and book is not None and rounds < limit:
        moved = absorb_impact()
        if moved == 0.0 or venue.dislocation <= MIN_DISLOCATION:
            break
        rounds += 1
        set_mark(venue.mark(x, **inputs))
        report = ex.last_step
        add(row, report)
        if report.liquidations == 0 and report.adl_rounds == 0:
            moved = absorb_impact()
            if moved != 0.0:
                set_mark(venue.mark(x, **inputs))
                add(row, ex.last_step)
            break
    row["cascade_rounds"] = rounds
    return row


CASES: dict[str, dict[str, Any]] = {
    "book": {},
    "binance": {"markets.0.pricing.mark": "binance"},
    "hyperliquid": {"markets.0.pricing.mark": "hyperliquid"},
    "oracle": {"markets.0.pricing.mark": "oracle"},
    "binance-arbitrage": {
        "markets.0.pricing": {"mark": "binance", "arbitrage": {"capital": 2e5, "cost": 5e-4}},
    },
    "no-feedback": {"feedback": False},
    "power-law": {
        "markets.0.liquidity": {
            "model": "power_law",
            "half_life_s": 60.0,
            "power_law": {"y": 0.7, "sigma_daily": 0.03, "daily_volume": 2e4},
        },
    },
    "hedgers": {"agents.hedgers.fraction": 0.3, "markets.0.population.long_fraction": 0.4},
}


@pytest.mark.parametrize("quiet", [True, False])
@pytest.mark.parametrize("case", list(CASES))
def test_step_market_is_the_loop_it_replaced(
    case: str, quiet: bool, make_scenario: ScenarioFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    scenario = make_scenario(CASES[case])
    new_sim = Simulation(scenario, quiet=quiet)
    new = new_sim.run()
    monkeypatch.setattr(Simulation, "_step_market", _reference_step_market)
    old_sim = Simulation(scenario, quiet=quiet)
    old = old_sim.run()
    assert new.steps["liquidations"].sum() > 0  # the premise: the crash liquidates
    assert new.journal.to_arrow().equals(old.journal.to_arrow())
    assert new.steps.equals(old.steps)
    assert new.result_hash == old.result_hash
    assert {k: _bits(v) for k, v in new.summary.items()} == {
        k: _bits(v) for k, v in old.summary.items()
    }
    assert new_sim.ex.state_hash() == old_sim.ex.state_hash()
    # The run leaves the engine's single-mark quiet path as it found it.
    assert new_sim.ex.quiet_marks.enabled


def test_a_run_with_stretches_marks_with_floats(
    make_scenario: ScenarioFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    from deleverage.engine.exchange import Exchange

    seen: set[type] = set()
    original = Exchange.set_mark

    def spy(self: Exchange, market: Any, price: float, **kwargs: Any) -> None:
        seen.add(type(price))
        original(self, market, price, **kwargs)

    monkeypatch.setattr(Exchange, "set_mark", spy)
    sim = Simulation(make_scenario({}))
    sim.run()
    assert seen == {float}  # no NumPy scalar: every mark takes set_mark's one comparison
    assert type(sim.venue[0].dislocation) is float


def test_a_run_that_raises_leaves_the_single_mark_path_as_it_found_it(
    make_scenario: ScenarioFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The run turns the engine's single-mark quiet path off under stretches; a run stopped
    by an exception (here its progress callback's, once the stretches are running) leaves it
    on, as it found it."""
    sim = Simulation(make_scenario({}))
    assert sim.ex.quiet_marks.enabled
    states: list[bool] = []

    def progress(k: int, n: int) -> None:
        states.append(sim.ex.quiet_marks.enabled)
        if k > 0:
            raise RuntimeError("stop")

    with pytest.raises(RuntimeError, match="stop"):
        sim.run(progress=progress)
    assert sim.quiet is not None  # the run had stretches
    assert states[-1] is False  # the path was off while it ran
    assert sim.ex.quiet_marks.enabled  # and is back on after the raise


def test_a_run_sets_the_heap_apart_from_the_collector_and_gives_it_back(
    make_scenario: ScenarioFactory,
) -> None:
    """The run freezes the objects alive at its start (``Simulation.run``: the collector keeps
    running, on what the run makes) and unfreezes them at its end, also when it raises (here
    its progress callback, once the run is under way)."""
    import gc

    states: list[tuple[bool, int]] = []

    def progress(k: int, n: int) -> None:
        states.append((gc.isenabled(), gc.get_freeze_count()))
        if k > 0:
            raise RuntimeError("stop")

    gc.unfreeze()  # a process with nothing frozen (whatever ran before in this worker)
    Simulation(make_scenario({})).run()
    assert gc.get_freeze_count() == 0
    with pytest.raises(RuntimeError, match="stop"):
        Simulation(make_scenario({})).run(progress=progress)
    assert states
    assert all(enabled and frozen > 0 for enabled, frozen in states)  # collecting, heap apart
    assert gc.get_freeze_count() == 0
    assert gc.isenabled()


def test_a_cycle_made_during_a_run_is_collected_during_it(make_scenario: ScenarioFactory) -> None:
    """The collector still frees cycles that code called by the run leaves (an observer here),
    on its own schedule: a run that makes a cycle a step does not keep them all to its end
    (as it would with the collector off)."""
    import weakref

    class Node:
        pass

    alive: list[weakref.ref[Node]] = []
    kept: list[int] = []  # the earlier steps' cycles not yet freed, at each step

    def observer(*_: object) -> None:
        kept.append(sum(ref() is not None for ref in alive))  # before this step's allocations
        junk = [[] for _ in range(2_000)]  # enough allocations to trigger collections
        del junk
        node = Node()
        node.self = node  # type: ignore[attr-defined]  # a cycle, unreachable on return
        alive.append(weakref.ref(node))

    Simulation(make_scenario({})).run(observer=observer)
    assert len(kept) >= 10
    assert kept[-1] < len(kept) // 2  # counted inside the run (a collection after it frees all)


def test_a_process_that_froze_objects_is_left_as_it_is(
    make_scenario: ScenarioFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A process that froze objects of its own (a pre-fork server) keeps them frozen: the run
    neither freezes more nor unfreezes them."""
    import gc

    calls: list[str] = []
    freeze, unfreeze = gc.freeze, gc.unfreeze
    gc.freeze()
    try:
        monkeypatch.setattr(gc, "freeze", lambda: calls.append("freeze"))
        monkeypatch.setattr(gc, "unfreeze", lambda: calls.append("unfreeze"))
        Simulation(make_scenario({})).run()
        assert calls == []
        assert gc.get_freeze_count() > 0
    finally:
        monkeypatch.undo()
        assert gc.freeze is freeze
        unfreeze()
