"""The zone-price index on discontinuous maintenance equals the full pass.

Risk-limit steps (BitMEX's whole-position rates, the taker fee in maintenance) and a
maintenance floor make maintenance jump; the isolated scan keys its sorted index on the
piecewise zone prices of :mod:`deleverage.engine.step_levels` there, and the cross index caps
its bound at the next floor. The oracle is the full pass (a plain loop over every position):
(a) the random operation sequences of
``test_exchange_scan_index`` (trades, marks, margin moves, funding, liquidations) on such
markets, the scans compared bit for bit after every operation and the journals and state
hashes at the end, also in the engine's ``check_invariants`` mode; (b) a BitMEX XBTUSD book
(inverse, 10 risk-limit steps) through a crash and a rally, with and without the index: the
same journal, the same state hash; (c) a simulated day of a linear BitMEX-shaped market with
the quiet-stretch path against the step-by-step full pass: the same journal and result hash;
(d) the cross index's bound, capped at the move to a position's next floor, against the zone
evaluated with :func:`deleverage.rules.margin.maintenance_margin` after random moves.
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import numpy as np
import pytest
import test_exchange_scan_index as twin_mod
from hypothesis import given, settings
from hypothesis import strategies as st

from deleverage import Exchange, MarginMode, MarketSpec
from deleverage.engine import level_index as level_mod
from deleverage.engine.cross_index import CrossIndex, CrossSplit, step_reach
from deleverage.engine.level_index import LevelIndex
from deleverage.rules import margin as mm
from deleverage.sim.runner import Simulation
from deleverage.sim.scenario import Scenario
from deleverage.venues import preset

# BitMEX's shape on a linear market: base 0.4 % + a step of 0.4 % every 1,500 from 2,000,
# rates on the whole position, the taker fee in both margins.
_STEPS = [
    {"notional_floor": 0.0 if k == 0 else 2_000.0 + (k - 1) * 1_500.0,
     "max_leverage": 1.0 / (0.01 + 0.004 * k), "maintenance_rate": 0.004 * (k + 1)}
    for k in range(10)
]  # fmt: skip


def steps_spec(symbol: str = "STEPS") -> MarketSpec:
    return MarketSpec.from_mapping({
        "symbol": symbol, "tick_size": 0.5, "lot_size": 0.001, "maker_fee_rate": -0.00025,
        "taker_fee_rate": 0.00075, "liquidation_fee_rate": 0.005, "tiers": _STEPS,
        "tier_margin": "whole_position", "taker_fee_in_margin": "initial_and_maintenance",
    })  # fmt: skip


def floor_spec() -> MarketSpec:
    """Binance's continuous table with a maintenance floor (jumps where the floor binds)."""
    base = preset("binance", "BTCUSDT").model_dump(mode="json")
    base.update(symbol="FLOORED", min_maintenance_margin=40.0)
    return MarketSpec.from_mapping(base)


_STEP_SPECS: tuple[Callable[[], MarketSpec], ...] = (
    steps_spec,
    floor_spec,
    lambda: MarketSpec.simple("SIMPLE", max_leverage=50, maintenance_rate=0.01),
)


@contextmanager
def _step_markets() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(twin_mod, "_SPECS", _STEP_SPECS)
        mp.setattr(twin_mod, "_MARKS", (2_000.0, 60_000.0, 30_000.0))
        yield


@settings(max_examples=10)
@given(seed=st.integers(0, 2**32 - 1), n_markets=st.integers(1, 3))
def test_indexed_scans_equal_full_pass_on_steps(seed: int, n_markets: int) -> None:
    with _step_markets():
        twin = twin_mod._run(seed, n_markets, 60)
        ex = twin.engines[0]
        assert ex._level_index, "the index was used"
        twin.engines[0] = Exchange.replay(ex.journal)
        twin.assert_scans_equal()


def test_step_markets_take_the_indexed_paths() -> None:
    """The sequences on step markets do use the bounded cross scan and the zone-price index."""
    used: collections.Counter[str] = collections.Counter()
    cross_split = CrossIndex.split

    def cross_spy(self: CrossIndex, marks: np.ndarray) -> CrossSplit | None:
        out = cross_split(self, marks)
        used["bounded" if out is not None else "full"] += 1
        return out

    with _step_markets(), pytest.MonkeyPatch.context() as mp:
        mp.setattr(CrossIndex, "split", cross_spy)
        twin = twin_mod._run(1, 2, 80)
    ex = twin.engines[0]
    assert ex._level_index[(0, 0.8)].rebuilds >= 1  # the whole-position market's index
    assert used["bounded"] > 0, used
    assert twin.seen["cross_scan"] > 0
    assert twin.seen["isolated_scan"] > 0


@pytest.mark.parametrize("seed", [3, 4])
def test_check_invariants_mode_on_steps(seed: int) -> None:
    with _step_markets(), twin_mod._small_floors(2, 2):
        twin = twin_mod._run(seed, 2, 60, check=True)
    assert twin.seen["isolated_scan"] > 0, "the scans found positions in the zone"


# ------------------------------------------------------------------------ BitMEX XBTUSD book


def _bitmex_book(indexed: bool, *, check: bool = False) -> Exchange:
    """400 isolated XBTUSD positions across the risk-limit steps, then marks down and up."""
    rng = np.random.default_rng(7)
    spec = preset("bitmex", "XBTUSD")
    tiers = spec.tier_arrays
    ex = Exchange(check_invariants=check)
    ex.use_level_index = indexed
    ex.list_market(spec)
    ex.deposit(ex.liquidity_account, 1e7)
    ex.deposit(ex.insurance_account, 50.0)
    mark = 60_000.0
    ex.set_mark("XBTUSD", mark, ts_ns=0)
    n = 400
    value_xbt = np.exp(rng.uniform(np.log(0.05), np.log(1_500.0), n))  # across the steps
    contracts = np.maximum(np.round(value_xbt * mark), 1.0)
    value_xbt = contracts / mark
    tier = np.searchsorted(tiers.floor, value_xbt, side="right") - 1
    leverage = np.minimum(rng.uniform(2.0, 100.0, n), 1.0 / tiers.imr[tier] * 0.999)
    accounts = ex.open_accounts(n, margin_mode=MarginMode.ISOLATED)
    ex.deposit_many(accounts, value_xbt * (1.0 / leverage + 0.003) * 1.05 + 0.001)
    sign = np.where(rng.random(n) < 0.6, 1.0, -1.0)
    ex.open_positions(
        "XBTUSD", accounts, sign * contracts, np.full(n, mark), leverage=leverage, ts_ns=1
    )
    path = np.concatenate([
        mark * np.exp(np.cumsum(rng.normal(0.0, 0.002, 60))),
        mark * np.linspace(1.0, 0.8, 60), mark * np.linspace(0.8, 1.25, 80),
    ])  # fmt: skip
    for k, price in enumerate(path):
        ex.set_mark("XBTUSD", round(float(price) * 2.0) / 2.0, ts_ns=10 + k)
        if k % 25 == 0:  # margin moves on a few positions (the index's dirty set)
            hit = accounts[rng.choice(n, 5, replace=False)]
            for a in hit:
                if ex.position(int(a), "XBTUSD").size != 0.0:
                    ex.add_isolated_margin(int(a), "XBTUSD", 0.001)
    return ex


def test_bitmex_book_same_journal_with_and_without_the_index() -> None:
    fast, full = _bitmex_book(True), _bitmex_book(False)
    assert fast._level_index
    assert not full._level_index
    assert fast.journal.to_arrow().equals(full.journal.to_arrow())
    assert fast.state_hash() == full.state_hash()
    liquidated = sum(r.liquidations for r in full.risk.reports)
    assert liquidated > 20, liquidated  # the crash and the rally liquidated on both sides
    checked = _bitmex_book(True, check=True)  # every indexed scan compared with the full pass
    assert checked.state_hash() == full.state_hash()


# ------------------------------------------------------------------------ simulated day


def _steps_scenario() -> Scenario:
    market = steps_spec("BTCUSDT").model_dump(mode="json")
    return Scenario.from_mapping({
        "name": "steps-day", "seed": 3, "duration_s": 1_200.0,
        "markets": [{
            "symbol": "BTCUSDT", "preset": None, "spec": market,
            "price": {"process": "shock", "s0": 60_000.0, "drop_fraction": 0.06,
                      "start_s": 400.0, "duration_s": 300.0, "sigma": 0.3},
            "liquidity": {"depth_per_pct": 2.0, "half_life_s": 300.0},
            "population": {"n_positions": 3_000, "isolated_fraction": 1.0,
                           "long_fraction": 0.6, "leverage_median": 12.0, "size_min": 0.002},
        }],
        "insurance": {"fund": 60_000.0},
    })  # fmt: skip


def test_simulated_steps_day_identical_with_the_index_and_quiet_stretches() -> None:
    scenario = _steps_scenario()
    fast = Simulation(scenario, quiet=True)
    full = Simulation(scenario, quiet=False)
    full.ex.use_level_index = False
    a, b = fast.run(), full.run()
    assert a.journal.to_arrow().equals(b.journal.to_arrow()), "journals differ"
    assert a.result_hash == b.result_hash
    assert sum(r.liquidations for r in fast.ex.risk.reports) > 0
    assert fast.quiet is not None
    assert fast.quiet.skipped > 0


# ------------------------------------------------------------------------ cross bound


@settings(max_examples=30)
@given(seed=st.integers(0, 2**32 - 1), level=st.sampled_from([0.8, 1.0]))
def test_cross_index_bound_is_safe_across_steps(seed: int, level: float) -> None:
    """An account the bound leaves out is really out of the zone after moves below ``q``,
    with positions sized around the steps (maintenance jumps) of a whole-position market."""
    rng = np.random.default_rng(seed)
    specs = [steps_spec(), preset("binance", "BTCUSDT")]
    tiers = [s.tier_arrays for s in specs]
    n = 120
    p0 = np.array([2_000.0, 60_000.0])
    step = rng.choice(tiers[0].floor[1:], n) * rng.uniform(0.9, 1.1, n)  # near a floor
    sizes = [step / p0[0] * rng.choice([-1.0, 1.0], n), rng.uniform(-2.0, 2.0, n)]
    sizes[1] *= rng.random(n) < 0.5
    entries = [p * rng.uniform(0.97, 1.03, n) for p in p0]
    modes = [np.zeros(n, dtype=np.int8) for _ in specs]
    notional0 = sum(np.abs(s) * p for s, p in zip(sizes, p0, strict=True))
    cash = notional0 * rng.uniform(0.005, 0.3, n)
    trader = np.ones(n, dtype=bool)

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
    crossed = 0
    for _ in range(60):
        move = rng.uniform(-0.15, 0.15, 2) * rng.choice([1.0, 0.1, 0.01])
        marks = p0 * (1.0 + move)
        e1, m1 = equity_maint(marks)
        in_zone = np.flatnonzero((m1 >= level * e1) & ~(m0 >= level * e0))
        safe = index.acc[index.q > np.max(np.abs(move)) * (1 + 1e-9) + 1e-12]
        assert not np.any(np.isin(safe, in_zone)), (move, np.intersect1d(safe, in_zone))
        crossed += len(in_zone)
    assert crossed > 0, "moves put accounts in the zone"


def test_step_reach_of_a_position_between_floors() -> None:
    t = steps_spec().tier_arrays  # floors 0, 2,000, 3,500, 5,000, ...
    reach = step_reach(np.array([1_000.0, 2_500.0, 3_400.0, 2_000.0]), t)
    np.testing.assert_allclose(reach, [1.0, 0.2, 1 / 34, 0.0], rtol=1e-8, atol=1e-12)


# ------------------------------------------------------------------------ LevelIndex


@settings(max_examples=30)
@given(
    seed=st.integers(0, 2**32 - 1),
    level=st.sampled_from([0.8, 1.0]),
    table=st.sampled_from(["bitmex", "steps", "floor"]),
    dirty_floor=st.sampled_from([0, 3, 1024]),
)
def test_level_index_candidates_are_a_superset_on_steps(
    seed: int, level: float, table: str, dirty_floor: int
) -> None:
    """Every position in the zone (the oracle of ``test_exchange_scan_index``) is a
    candidate, through rebuilds, touches and compactions, at marks across the steps."""
    spec = {"bitmex": lambda: preset("bitmex", "XBTUSD"), "steps": steps_spec,
            "floor": floor_spec}[table]()  # fmt: skip
    tiers = spec.tier_arrays
    rng = np.random.default_rng(seed)
    n = 80
    b = twin_mod._book(rng, n, tiers)
    scale = float(tiers.floor[1]) / 100.0 if len(tiers.floor) > 1 else 1.0
    b["size"] *= scale  # notionals from a fraction of the first step to several steps
    b["margin"] *= scale
    index = LevelIndex(level)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(level_mod, "DIRTY_FLOOR", dirty_floor)
        index.rebuild(b["size"], b["entry"], b["margin"], b["mode"], b["kind"], tiers)
        found = 0
        for _ in range(20):
            hit = rng.choice(n, int(rng.integers(1, 6)), replace=False)
            b["size"][hit] = rng.uniform(-50.0, 50.0, len(hit)) * scale
            b["margin"][hit] = (
                np.abs(b["size"][hit]) * b["entry"][hit] / rng.uniform(1, 60, len(hit))
            )
            index.touch(hit.astype(np.int64))
            if not index.valid:
                index.rebuild(b["size"], b["entry"], b["margin"], b["mode"], b["kind"], tiers)
            for mark in rng.uniform(40.0, 170.0, 5):
                cand = index.candidates(float(mark), b["size"], b["entry"], b["margin"], tiers)
                zone = twin_mod._in_zone(b, float(mark), level, tiers)
                assert len(np.setdiff1d(zone, cand)) == 0, (mark, np.setdiff1d(zone, cand))
                found += len(zone)
        assert found > 0
