"""Cross margin calls inside quiet stretches (:mod:`deleverage.engine.quiet_cross`) against the
risk step.

Random books of cross accounts over two or three markets (most accounts in several, leveraged
so that a shock puts many in or near the warning zone) get a first risk step at shocked marks
(calls, liquidations, the cross index built) and deposits into a few accounts (touched
accounts, bounded by their own figures in the stretch), then the marks walk. On one engine the
stretch kernel runs along the walk from the current state and its prefix is applied in bulk
(:func:`.quiet.advance_quiet`); on the other the same marks are set one at a time by
``set_mark`` (the real risk step is the oracle). Journals (row by row, every column), state
hashes, the called sets of every market and the step reports must be identical; the
step-by-step engine must liquidate nobody in the prefix and make exactly the calls the kernel
made, and where the kernel stopped for an account under maintenance the next step must
liquidate. A deliberately loosened bound (the near accounts' distances raised) must fail.
"""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from deleverage import Exchange, MarginMode, MarketSpec
from deleverage.engine.events import EventKind
from deleverage.engine.quiet import advance_quiet, quiet_bands
from deleverage.engine.quiet_cross import STOP_BELOW, CrossStretch, cross_setup, cross_stretch

S = 1_000_000_000
OPENS = (1_000.0, 100.0, 10.0)


def _spec(symbol: str, level: float) -> MarketSpec:
    return MarketSpec.from_mapping(
        {
            "symbol": symbol, "maker_fee_rate": 0.0, "taker_fee_rate": 0.0,
            "liquidation": {"kind": "full", "margin_call_ratio": level},
            "tiers": [
                {"notional_floor": 0.0, "max_leverage": 50.0, "maintenance_rate": 0.01},
                {"notional_floor": 10_000.0, "max_leverage": 20.0, "maintenance_rate": 0.025},
                {"notional_floor": 30_000.0, "max_leverage": 10.0, "maintenance_rate": 0.05},
            ],
        }
    )  # fmt: skip


def _book(seed: int, n_markets: int, level: float, n: int = 400) -> Exchange:
    rng = np.random.default_rng(seed)
    ex = Exchange(seed=3)
    for j in range(n_markets):
        m = ex.list_market(_spec(f"M{j}", level))
        ex.set_mark(m, OPENS[j], ts_ns=1)
    ex.deposit(ex.insurance_account, 1e9)
    traders = ex.open_accounts(n, margin_mode=MarginMode.CROSS)
    sizes = []
    for j in range(n_markets):
        side = rng.choice([0.0, 1.0, 1.0, -1.0], n)
        sizes.append(np.round(side * rng.uniform(200.0, 20_000.0, n) / OPENS[j], 4))
    total = sum(np.abs(s) * p for s, p in zip(sizes, OPENS, strict=False))
    ex.deposit_many(traders, np.maximum(total * rng.uniform(0.1, 0.3, n), 1.0))
    for j in range(n_markets):
        held = sizes[j] != 0.0
        notional = np.abs(sizes[j][held]) * OPENS[j]
        lev = np.where(notional >= 30_000.0, 10.0, np.where(notional >= 10_000.0, 20.0, 50.0))
        ex.open_positions(j, traders[held], sizes[j][held], np.full(int(held.sum()), OPENS[j]),
                          leverage=lev)  # fmt: skip
    return ex


def _setup(ex: Exchange) -> CrossStretch | None:
    """The stretch's cross state (also where the cross bound alone would still hold)."""
    bands = quiet_bands(ex, cross_calls=True)
    if bands is None:
        return None
    if bands.cross is not None:
        return bands.cross
    level = min(float(ex.markets[0].spec.liquidation.margin_call_ratio), 1.0)
    return cross_setup(ex, ex._cross_index[level], ex.mark_prices())


def _twin(
    seed: int, n_markets: int, level: float, shock: float, vol: float, drift: float,
    loosen: float = 0.0, room: int = 64, anchor_eval: int = 64, keep: int = 512,
    stale: float = 0.0,
) -> tuple[int, bool]:  # fmt: skip
    """Run one twin; return the calls the stretch made and whether the twins agree (with
    ``loosen == 0`` and ``stale == 0`` they must). ``stale``: the index's gathered copy of the
    near accounts' cash raised by this share (a deliberately stale copy for the anchors)."""
    rng = np.random.default_rng(seed + 1)
    fast, slow = _book(seed, n_markets, level), _book(seed, n_markets, level)
    start = [round(OPENS[j] * (1.0 + shock * (1.0 + 0.3 * j)), 4) for j in range(n_markets)]
    touch = rng.choice(fast.n_accounts, 12, replace=False)
    for ex in (fast, slow):  # a first risk step at the shocked marks: calls, liquidations
        for m, p in enumerate(start):
            ex.set_mark(m, p, ts_ns=10 * S)
        for a in touch.tolist():  # touched accounts (also by the liquidations): their own bounds
            ex.deposit(a, 1.0 + a % 7)
    moves = np.exp(np.cumsum(rng.normal(drift, vol, (200, n_markets)), axis=0))
    marks = np.round(np.asarray(start) * moves, 4)
    setup = _setup(fast)
    if setup is None:
        return 0, True
    setup.index.near_sorted = keep  # the anchors the stretch re-takes sort these
    if loosen:
        setup.index.near_dist = setup.index.near_dist + loosen
    if stale:  # the touched accounts are read again; the others keep the raised cash
        sizes, entries, modes = fast._cross_columns()
        cols = setup.index.near_columns(sizes, entries, modes, fast._cash)
        cols.cash[:] = cols.cash * (1.0 + stale)
    count, calls, stop = cross_stretch(fast, setup, marks, room=room, anchor_eval=anchor_eval)
    ts = (11 + np.arange(count, dtype=np.int64)) * S
    advance_quiet(fast, marks[:count], ts, cross=calls)
    liquidated = 0
    for j in range(count):
        for m in range(n_markets):
            slow.set_mark(m, float(marks[j, m]), ts_ns=int(ts[j]))
            liquidated += slow.last_step.liquidations
    same = (
        liquidated == 0
        and fast.journal.to_arrow().equals(slow.journal.to_arrow())
        and fast.state_hash() == slow.state_hash()
        and all(
            np.array_equal(rf.called_cross, rs.called_cross)
            for rf, rs in zip(fast.risk.markets, slow.risk.markets, strict=True)
        )
        and fast.risk.reports == slow.risk.reports
    )
    if not (loosen or stale):
        assert liquidated == 0
        ja, jb = fast.journal.to_arrow(), slow.journal.to_arrow()
        assert ja.num_rows == jb.num_rows
        for name in ja.column_names:  # row by row, every column
            assert np.array_equal(
                ja.column(name).to_numpy(zero_copy_only=False),
                jb.column(name).to_numpy(zero_copy_only=False),
            ), name
        assert same
        journal = jb.to_pandas()
        in_prefix = (journal["kind"] == int(EventKind.MARGIN_CALL)) & (journal["ts_ns"] >= 11 * S)
        assert int(in_prefix.sum()) == len(calls.step)
        if stop == STOP_BELOW and count < len(marks):  # the next step liquidates
            for m in range(n_markets):
                slow.set_mark(m, float(marks[count, m]), ts_ns=(11 + count) * S)
                liquidated += slow.last_step.liquidations
            assert liquidated > 0
    return len(calls.step), same


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    n_markets=st.integers(2, 3),
    level=st.sampled_from([0.5, 0.8, 1.0]),
    shock=st.floats(-0.12, 0.0),
    vol=st.sampled_from([3e-4, 1e-3, 3e-3]),
    drift=st.sampled_from([0.0, 2e-4, -2e-4]),
    room=st.sampled_from([1, 64]),
    anchor_eval=st.sampled_from([0, 8, 64]),
    keep=st.sampled_from([4, 512]),
)
def test_cross_calls_in_a_stretch_equal_step_by_step(
    seed: int, n_markets: int, level: float, shock: float, vol: float, drift: float, room: int,
    anchor_eval: int, keep: int,
) -> None:  # fmt: skip
    _twin(seed, n_markets, level, shock, vol, drift, room=room, anchor_eval=anchor_eval, keep=keep)


def test_a_falling_walk_makes_cross_calls_in_the_stretch() -> None:
    """A slow fall after a shock: accounts enter the zone one market at a time and the
    stretch calls them itself (in several markets)."""
    made = [
        _twin(seed, 3, 0.8, -0.06, 3e-4, -2e-4, room=1, anchor_eval=anchor_eval)[0]
        for seed in range(6)
        for anchor_eval in (0, 64)  # the anchor re-taken inside the stretch at every scan
    ]
    assert sum(made) > 0


def test_a_loosened_bound_fails_the_twin() -> None:
    """The near accounts' distances raised by 2%: accounts entering the zone go unevaluated
    and the stretch's calls differ from the risk step's."""
    agree = [_twin(seed, 3, 0.8, -0.06, 3e-4, -2e-4, loosen=0.02)[1] for seed in range(6)]
    assert not all(agree)


def test_stale_gathered_columns_fail_the_twin() -> None:
    """The anchors re-taken in the stretch from a gathered copy of the near accounts' columns
    whose cash is 5% too high (:meth:`.CrossIndex.near_columns` not matching the ledger):
    accounts entering the zone go unevaluated and the calls differ from the risk step's."""
    agree = [
        _twin(seed, 3, 0.8, -0.06, 3e-4, -2e-4, anchor_eval=0, stale=0.05)[1] for seed in range(6)
    ]
    assert not all(agree)
