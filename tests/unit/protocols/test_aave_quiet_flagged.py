"""Aave's quiet steps with accounts under water that no keeper takes (``aave/quiet.py``,
``aave/quiet_nb.py``, §A7) against stepping one step at a time.

A crash leaves small accounts under ``HF = 1`` whose liquidation does not pay the keepers'
gas and minimum profit (the big ones are liquidated); then along a random path of steps the
market moves (some steps repeat the oracle price: the plans in memory serve), one venue takes
every stretch that ``quiet_steps`` counts through ``advance_quiet`` while its twin steps each
step: every counted step must liquidate nothing when stepped (no journal row), changing only the
counters and flags the module names (accounts crossing 1 either way within a stretch are
flagged or cleared), and the two venues must agree field by field after each stretch
(journal, flagged accounts in order, their blocks, time under water, missed opportunities,
keepers, chain, index) and stay equal through the steps that act (keepers' takes).
"""

from __future__ import annotations

import copy
import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deleverage.protocols.aave import AaveConfig, build_aave, quiet_nb
from deleverage.protocols.aave.health_nb import health_rows_nb
from deleverage.protocols.aave.venue import AaveVenue
from deleverage.protocols.keepers import KeepersConfig, KeeperSpec
from deleverage.venues.protocol import PriceInputs, QuietPath, quiet_steps_of

S = 10**9
T0 = 1_000 * S


_RESERVES = (
    {"name": "WBTC", "asset": "BTC", "decimals": 8, "ltv": 0.73, "liquidation_threshold": 0.78,
     "liquidation_bonus": 1.05, "protocol_fee": 0.1, "sale_depth_per_pct": 50.0},
    {"name": "WETH", "asset": "ETH", "decimals": 18, "ltv": 0.8, "liquidation_threshold": 0.83,
     "liquidation_bonus": 1.05, "protocol_fee": 0.1, "sale_depth_per_pct": 1000.0},
    {"name": "USDC", "decimals": 6, "ltv": 0.75, "liquidation_threshold": 0.78,
     "liquidation_bonus": 1.045, "protocol_fee": 0.1},
)  # fmt: skip
START = {"BTC": 60_000.0, "ETH": 3_000.0}


def _venue(
    seed: int, min_profit: float, latency: int, delay: int, capital: float = 2e5
) -> AaveVenue:
    config = AaveConfig(
        reserves=_RESERVES,
        population={"accounts": 600, "min_health": 1.002, "health_scale": 1.0,
                    "collateral_median": 2_000.0, "collateral_sigma": 1.5},
        keepers=KeepersConfig(
            keepers=(
                KeeperSpec(capital=capital, latency_blocks=latency, gas_units=450_000.0,
                           min_profit=min_profit),
                KeeperSpec(capital=capital / 4, latency_blocks=latency + 2, gas_units=300_000.0,
                           min_profit=min_profit / 2),
            ),
            sale_delay_blocks=delay,
        ),
    )  # fmt: skip
    venue = build_aave(config, prices=START, seed=seed)
    venue._narrow_slack = 0  # narrow after the crash, as a 10^5-account book does
    return venue


def _state(venue: AaveVenue) -> dict[str, Any]:
    keepers, chain = venue.keepers, venue.chain
    return {
        "journal": venue.journal().to_frame(),
        "solvency": venue.solvency(),
        "flagged": venue._flagged.tolist(),
        "since": venue._since.tolist(),
        "counters": (venue.liquidatable_account_seconds, venue.missed_opportunities),
        "clock": (venue._last_ts, venue._price.tolist(), venue._memo_key, venue._version),
        "keepers": [
            a.tolist()
            for a in (
                keepers.capital,
                keepers.gas_paid,
                keepers.received,
                keepers._due_block,
                keepers._due_amount,
            )
        ],
        "chain": {k: v for k, v in vars(chain).items() if k != "config"},
        "book": (venue._c.tolist(), venue._d.tolist(), venue.treasury.tolist()),
        "index": (
            venue._ref_list,
            venue._inner_ref,
            venue._inner_limit,
            venue._inner_floor,
            venue._inner_order.tolist(),
            venue._touched.tolist(),
        ),
    }


def _same(a: dict[str, Any], b: dict[str, Any]) -> None:
    assert a["journal"].equals(b["journal"])
    assert {k: v for k, v in a.items() if k != "journal"} == {
        k: v for k, v in b.items() if k != "journal"
    }


def _path(moves: list[tuple[float, float, int]], price: list[float], t: int) -> QuietPath:
    ts, index = [], []
    btc, eth = price
    for move, spread, dt in moves:
        btc *= math.exp(move)  # a move of 0: the oracle repeats its prices
        eth *= math.exp(move + spread)
        t += dt * S
        ts.append(t)
        index.append([btc, eth])
    prices = np.array(index)
    return QuietPath(np.array(ts, dtype=np.int64), prices, prices.copy())


def _twin(bulk: AaveVenue, loop: AaveVenue, path: QuietPath) -> dict[str, int]:
    seen = {"skipped": 0, "flagged_skipped": 0, "stops": 0, "crossings": 0}
    j, n_path = 0, len(path.ts_ns)
    while j < n_path:
        rest = QuietPath(path.ts_ns[j:], path.index_prices[j:], path.book_prices[j:])
        before = _state(bulk)
        n = quiet_steps_of(bulk, rest)
        assert quiet_steps_of(bulk, rest) == n  # counting changed nothing
        _same(_state(bulk), before)
        rows = len(loop.journal())
        flagged = loop._flagged.tolist()
        for i in range(n):
            step = loop.step(rest.inputs(i, loop.assets), ts_ns=int(rest.ts_ns[i]))
            assert step.liquidations == 0
            assert all(v == 0.0 for v in step.forced_flow.values())
            assert len(loop.journal()) == rows
        if n:
            bulk.advance_quiet(rest.head(n))
            seen["skipped"] += n
            seen["flagged_skipped"] += n if flagged else 0
            seen["crossings"] += sorted(bulk._flagged.tolist()) != sorted(flagged)
        _same(_state(bulk), _state(loop))
        j += n
        if j == n_path:
            break
        inputs, ts = path.inputs(j, loop.assets), int(path.ts_ns[j])
        assert bulk.step(inputs, ts_ns=ts) == loop.step(inputs, ts_ns=ts)
        _same(_state(bulk), _state(loop))
        seen["stops"] += 1
        j += 1
    return seen


def _crashed(venue: AaveVenue, crash: float) -> tuple[list[float], int]:
    """Step ``venue`` through BTC falling ``crash`` and ETH half as far in a minute."""
    btc, eth, t = START["BTC"], START["ETH"], T0
    for k in range(6):
        btc *= 1.0 - crash / 5 if k else 1.0
        eth *= 1.0 - crash / 10 if k else 1.0
        t = T0 + 12 * k * S
        venue.step({"BTC": PriceInputs(btc, btc, btc), "ETH": PriceInputs(eth, eth, eth)}, ts_ns=t)
    return [btc, eth], t


_MOVES = st.lists(
    st.tuples(
        st.one_of(st.just(0.0), st.floats(-2e-4, 2e-4), st.floats(-0.01, 0.01)),
        st.one_of(st.just(0.0), st.floats(-1e-4, 1e-4)),
        st.integers(1, 30),
    ),
    min_size=2,
    max_size=120,
)


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 1_000),
    min_profit=st.sampled_from([5.0, 60.0]),
    latency=st.integers(0, 2),
    delay=st.sampled_from([0, 1, 4]),
    capital=st.sampled_from([400.0, 2e5]),  # 400: the keepers' pass runs, nobody can pay
    crash=st.sampled_from([0.08, 0.1]),
    moves=_MOVES,
)
def test_quiet_stretches_with_flagged_accounts_equal_stepping_them(
    seed: int,
    min_profit: float,
    latency: int,
    delay: int,
    capital: float,
    crash: float,
    moves: list[tuple[float, float, int]],
) -> None:
    bulk = _venue(seed, min_profit, latency, delay, capital)
    loop = copy.deepcopy(bulk)
    price, t = _crashed(bulk, crash)
    assert _crashed(loop, crash) == (price, t)
    _twin(bulk, loop, _path(moves, price, t))
    _same(_state(bulk), _state(loop))


@pytest.mark.parametrize("capital", [2e5, 400.0])
def test_the_twin_takes_stretches_while_accounts_stay_under_water(capital: float) -> None:
    # The property above must see what it compares: after the crash some accounts stay
    # flagged (their liquidation does not pay; with 400 of capital the skip bound lets the
    # keepers' pass run and nobody can pay the debt), the narrowed index serves, and
    # stretches are taken through them; accounts crossing 1 end some.
    bulk = _venue(3, 60.0 if capital > 400.0 else 5.0, 1, 1, capital)
    loop = copy.deepcopy(bulk)
    price, t = _crashed(bulk, 0.1)
    assert _crashed(loop, 0.1) == (price, t)
    assert bulk._flagged.size > 0
    assert bulk._inner_ref is not None
    moves = [
        (1e-3 * math.sin(k / 5.0) if k % 4 else 0.0, 0.0 if k % 4 else 1e-5, 1 + k % 13)
        for k in range(300)
    ]
    seen = _twin(bulk, loop, _path(moves, price, t))
    assert seen["flagged_skipped"] > 100, seen
    assert seen["crossings"] > 0, seen  # accounts crossed 1 within stretches
    assert bulk.missed_opportunities > 0


@settings(max_examples=30, deadline=None)
@given(
    rows=st.lists(
        st.tuples(st.floats(0.0, 1e6), st.floats(0.0, 1e6), st.floats(0.0, 1e6),
                  st.floats(0.0, 1e6)),
        min_size=1, max_size=20,
    ),
    prices=st.tuples(st.floats(1e-3, 1e5), st.floats(1e-3, 1e5)),
)  # fmt: skip
def test_the_walks_health_factor_is_the_steps_to_the_bit(
    rows: list[tuple[float, float, float, float]], prices: tuple[float, float]
) -> None:
    # The walk's one-row health factor against the step's kernel (health_nb.health_rows_nb)
    table = np.array(rows)
    collateral = np.asfortranarray(table[:, :2])
    debt = np.asfortranarray(table[:, 2:])
    p = np.array(prices)
    weights = p * np.array([0.83, 0.78])
    expected = health_rows_nb(collateral, debt, np.arange(len(rows)), weights, p)
    got = [quiet_nb._health(collateral, debt, i, weights, p) for i in range(len(rows))]
    assert np.array_equal(np.array(got), expected)


def _fresh_count(venue: AaveVenue, path: QuietPath) -> int:
    # The count of a copy that has walked nothing (no findings of earlier asks kept).
    twin = copy.deepcopy(venue)
    twin._walks = None
    return quiet_steps_of(twin, path)


def _probe(bulk: AaveVenue, rest: QuietPath, asks: list[float], cash: bool) -> int:
    """Ask ``bulk`` about heads of ``rest`` as a world does (growing heads, a cut one, the
    same one again), each answer against a copy that walks from scratch; ``cash``: a
    trader's deposit between two asks (the findings must be dropped)."""
    n_path = len(rest.ts_ns)
    full = _fresh_count(bulk, rest)
    for i, share in enumerate(asks):
        length = max(1, min(n_path, round(share * n_path)))
        before = _state(bulk)
        got = quiet_steps_of(bulk, rest.head(length))
        _same(_state(bulk), before)  # counting changed nothing
        assert got == min(length, full), (length, got, full)
        walks = bulk._walks
        if walks is not None:  # the chain previewed in pieces: as in one piece
            seen = len(walks.ts)
            natives = rest.book_prices[:seen, bulk._native_index]
            blocks, gas, _ = bulk.chain.preview(rest.ts_ns[:seen].tolist(), natives.tolist())
            assert np.array_equal(walks.blocks, blocks)
            assert np.array_equal(walks.gas, gas)
        if cash and i == 0 and bulk._flagged.size:
            account = int(bulk._flagged[0])
            bulk.repay_and_supply(account, 1e-3, ts_ns=bulk._last_ts)
            full = _fresh_count(bulk, rest)
    return full


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 1_000),
    min_profit=st.sampled_from([5.0, 60.0]),
    latency=st.integers(0, 2),
    delay=st.sampled_from([0, 1, 4]),
    capital=st.sampled_from([400.0, 2e5]),
    moves=_MOVES,
    asks=st.lists(st.floats(0.0, 1.0), min_size=1, max_size=6),
    take=st.floats(0.0, 1.0),
    cash=st.booleans(),
)
def test_asks_about_heads_of_one_path_answer_as_walking_each_from_its_start(
    seed: int,
    min_profit: float,
    latency: int,
    delay: int,
    capital: float,
    moves: list[tuple[float, float, int]],
    asks: list[float],
    take: float,
    cash: bool,
) -> None:
    # The walks keep what they found on a path (aave/quiet.py's Walks: the chain's preview,
    # the walk's state after heads found quiet, the first step found not quiet) while the
    # venue's state stays: each answer must be a fresh walk's, and a head taken after the
    # asks (a cut of the longest asked, or all of it) must leave the venue as stepping it.
    bulk = _venue(seed, min_profit, latency, delay, capital)
    price, t = _crashed(bulk, 0.1)
    loop = copy.deepcopy(bulk)
    path = _path(moves, price, t)
    j, n_path = 0, len(path.ts_ns)
    while j < n_path:
        rest = QuietPath(path.ts_ns[j:], path.index_prices[j:], path.book_prices[j:])
        if cash and bulk._flagged.size:
            loop.repay_and_supply(int(bulk._flagged[0]), 1e-3, ts_ns=bulk._last_ts)
        full = _probe(bulk, rest, asks, cash)
        n = max(1, round(take * full)) if full else 0
        for i in range(n):
            assert (
                loop.step(rest.inputs(i, loop.assets), ts_ns=int(rest.ts_ns[i])).liquidations == 0
            )
        if n:
            bulk.advance_quiet(rest.head(n))
        _same(_state(bulk), _state(loop))
        j += n
        if j == n_path:
            break
        inputs, ts = path.inputs(j, loop.assets), int(path.ts_ns[j])
        assert bulk.step(inputs, ts_ns=ts) == loop.step(inputs, ts_ns=ts)
        _same(_state(bulk), _state(loop))
        j += 1


def test_a_world_like_probe_reuses_the_walks_findings() -> None:
    # The findings serve: after asks about 16 and 128 steps the head of 128 is taken
    # without walking again, and the chain was previewed once per step (400 of capital:
    # nobody can pay the debt, the accounts stay flagged).
    bulk = _venue(3, 60.0, 1, 1, 400.0)
    loop = copy.deepcopy(bulk)
    price, t = _crashed(bulk, 0.1)
    _crashed(loop, 0.1)
    assert bulk._flagged.size > 0
    assert bulk._inner_ref is not None
    moves = [(1e-6 * math.sin(k / 7.0), 0.0, 12) for k in range(128)]
    path = _path(moves, price, t)
    calls: list[int] = []
    real = quiet_nb.flagged_quiet_nb

    def spy(*args: Any) -> Any:
        calls.append(args[8].shape[0] - args[35])  # steps walked: path length - start
        return real(*args)

    previews: list[int] = []
    chain_type = type(bulk.chain)
    real_preview = chain_type.preview_from

    def preview_spy(self: Any, ts: Any, natives: Any) -> Any:
        previews.append(len(ts))
        return real_preview(self, ts, natives)

    import deleverage.protocols.aave.quiet as quiet_mod

    quiet_mod.flagged_quiet_nb = spy
    chain_type.preview_from = preview_spy  # type: ignore[method-assign]
    try:
        n16 = quiet_steps_of(bulk, path.head(16))
        n128 = quiet_steps_of(bulk, path)
        assert (n16, n128) == (16, 128), (n16, n128)
        bulk.advance_quiet(path)
    finally:
        quiet_mod.flagged_quiet_nb = real
        chain_type.preview_from = real_preview  # type: ignore[method-assign]
    assert sum(calls) == 128, calls  # each step walked once: 16, then 16 .. 32, 32 .. 128
    assert sum(previews) == 128, previews
    for i in range(128):
        loop.step(path.inputs(i, loop.assets), ts_ns=int(path.ts_ns[i]))
    _same(_state(bulk), _state(loop))
