"""Maker's quiet steps through running Clipper sales and debt auctions (``maker/quiet.py``,
``maker/quiet_nb.py``, §M11) against stepping one step at a time.

A crash starts sales (and, with a small ``sump`` and no surplus, debt auctions); then along a
random path of steps (1 to 90 s apart, the market moving) a venue takes every stretch that
``quiet_steps`` counts through ``advance_quiet`` while its twin steps each step: every counted
step must change nothing when stepped (no journal row, no liquidation, no forced flow), the
two venues must agree field by field after each stretch (journal, sales, keepers, chain, OSM,
Vow, counters) and stay equal through the steps that act. Keepers with little capital run
out and take again when their proceeds return, the curves fall through the market, stuck
sales find no keeper for a redo, so the counts end at takes, redos and debt auctions: the
count must then be tight (a step the count refuses writes a journal row, or barks).
"""

from __future__ import annotations

import copy
import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deleverage.protocols.chain import ChainConfig
from deleverage.protocols.keepers import KeepersConfig, KeeperSpec
from deleverage.protocols.maker import (
    ClipperConfig,
    MakerConfig,
    MakerVenue,
    build_maker,
    maker_population,
)
from deleverage.protocols.maker.actions import MakerAction
from deleverage.protocols.maker.config import VowConfig
from deleverage.venues.protocol import PriceInputs, QuietPath, quiet_steps_of

S = 10**9
T0 = 1_000 * S


def _venue(
    seed: int,
    curve: str,
    capital: float,
    tip: float,
    tail_s: float,
    osm_delay_s: float,
    sump: float,
    delay: int,
    min_profit: float,
) -> MakerVenue:
    config = MakerConfig(
        osm_delay_s=osm_delay_s,
        clipper=ClipperConfig(
            buf=1.15,
            curve=curve,
            step_s=30.0,
            cut=0.97 if curve == "stairstep" else 0.999,
            tau_s=1200.0,
            tail_s=tail_s,
            cusp=0.5,
            tip=tip,
            chip=0.001,
        ),
        vow=VowConfig(sump=sump, flop_duration_s=300.0),
        keepers=KeepersConfig(
            keepers=(
                KeeperSpec(capital=capital, latency_blocks=0, count=2),
                KeeperSpec(
                    capital=capital * 3,
                    latency_blocks=3,
                    gas_units=150_000.0,
                    min_profit=min_profit,
                ),
            ),
            sale_delay_blocks=delay,
        ),
        chain=ChainConfig(volatility_demand=2.0, priority_noise_sigma=0.5),
        market_depth=2_000.0,
    )
    population = maker_population(
        200, seed, price=2_000.0, ratio_median=1.7, ratio_sigma=0.25, collateral_median=4.0
    )
    return build_maker(config, population)


def _state(venue: MakerVenue) -> dict[str, Any]:
    """Everything a step may change, as comparable values (NaN-free after the first step)."""
    keepers, chain, osm, vow = venue.keepers, venue.chain, venue.osm, venue.vow
    return {
        "summary": venue.summary(),
        "solvency": venue.solvency(),
        "sales": [vars(s) for s in venue.clipper.sales],
        "dirt": venue.clipper.dirt,
        "keepers": [
            a.tolist()
            for a in (
                keepers.capital,
                keepers.gas_paid,
                keepers.received,
                keepers._due_keeper,
                keepers._due_block,
                keepers._due_amount,
            )
        ],
        "chain": {k: v for k, v in vars(chain).items() if k != "config"},
        "osm": (osm.cur, osm.nxt, osm._hop_index),
        "vow": {k: v for k, v in vars(vow).items() if k != "config"},
        "clock": (venue._last_ts, venue.osm_price, venue.market_price),
        "vaults": (venue.ink.tolist(), venue.art.tolist(), venue._unsafe_block.tolist()),
    }


def _path(moves: list[tuple[float, int]], price: float, t: int) -> QuietPath:
    ts, index = [], []
    for move, dt in moves:
        price *= math.exp(move)
        t += dt * S
        ts.append(t)
        index.append([price])
    prices = np.array(index)
    return QuietPath(np.array(ts, dtype=np.int64), prices, prices.copy())


def _tail(path: QuietPath, j: int) -> QuietPath:
    return QuietPath(path.ts_ns[j:], path.index_prices[j:], path.book_prices[j:])


def _twin(bulk: MakerVenue, loop: MakerVenue, path: QuietPath) -> dict[str, int]:
    """Take ``path`` in quiet stretches on ``bulk`` and step by step on ``loop`` (asserting
    as the module docstring says); return counts of what happened."""
    seen = {"skipped": 0, "stretches": 0, "takes": 0, "redos": 0, "flops": 0, "stops": 0}
    j, n_path = 0, len(path.ts_ns)
    while j < n_path:
        rest = _tail(path, j)
        before = _state(bulk)
        n = quiet_steps_of(bulk, rest)
        assert quiet_steps_of(bulk, rest) == n  # counting changed nothing
        assert _state(bulk) == before
        rows = len(loop.journal())
        for i in range(n):
            step = loop.step(rest.inputs(i, loop.assets), ts_ns=int(rest.ts_ns[i]))
            assert step.liquidations == 0
            assert step.forced_flow == {"ETH": 0.0}
            assert len(loop.journal()) == rows, f"step {j + i} was counted quiet but acted"
        if n:
            bulk.advance_quiet(rest.head(n))
            seen["skipped"] += n
            seen["stretches"] += 1
        assert _state(bulk) == _state(loop)
        assert bulk.journal().to_frame().equals(loop.journal().to_frame())
        j += n
        if j == n_path:
            break
        # The step the count refused: both step it; it must act (a row) or bark.
        top = loop._highest_trigger()
        inputs, ts = path.inputs(j, loop.assets), int(path.ts_ns[j])
        assert bulk.step(inputs, ts_ns=ts) == loop.step(inputs, ts_ns=ts)
        frame = loop.journal().to_frame()
        codes = frame["code"].to_numpy()[rows:]
        assert codes.size or top > loop.osm_price, f"step {j} was refused but did nothing"
        seen["takes"] += int(np.count_nonzero(codes == MakerAction.TAKE))
        seen["redos"] += int(np.count_nonzero(codes == MakerAction.REDO))
        seen["flops"] += int(np.count_nonzero(codes >= MakerAction.FLOP_KICK))
        seen["stops"] += 1
        assert _state(bulk) == _state(loop)
        j += 1
    assert bulk.journal().to_frame().equals(loop.journal().to_frame())
    return seen


def _crashed(venue: MakerVenue, crash: float) -> tuple[float, int]:
    """Step ``venue`` through a fall of ``crash`` in three minutes (sales start); return the
    price and time reached."""
    price, t = 2_000.0, T0
    for k in range(7):
        price *= 1.0 - crash / 6 if k else 1.0
        t = T0 + 30 * k * S
        venue.step({"ETH": PriceInputs(price)}, ts_ns=t)
    return price, t


_MOVES = st.lists(
    st.tuples(st.one_of(st.floats(-5e-4, 5e-4), st.floats(-0.03, 0.03)), st.integers(1, 90)),
    min_size=2,
    max_size=120,
)


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    curve=st.sampled_from(["linear", "stairstep", "exponential"]),
    capital=st.sampled_from([3e3, 3e4, 1e7]),  # small: keepers wait for their proceeds
    tip=st.sampled_from([12.0, 300.0]),  # 12: near the gas, a redo may find no keeper
    tail_s=st.sampled_from([240.0, 8400.0]),
    osm_delay_s=st.sampled_from([0.0, 60.0, 600.0]),
    sump=st.sampled_from([500.0, 5e7]),  # small: debt auctions start and settle
    delay=st.sampled_from([0, 2, 5]),
    min_profit=st.sampled_from([0.0, 50.0]),
    crash=st.sampled_from([0.1, 0.25]),
    moves=_MOVES,
)
def test_quiet_stretches_through_running_sales_equal_stepping_them(
    seed: int,
    curve: str,
    capital: float,
    tip: float,
    tail_s: float,
    osm_delay_s: float,
    sump: float,
    delay: int,
    min_profit: float,
    crash: float,
    moves: list[tuple[float, int]],
) -> None:
    # Arrange: two equal venues with running sales after a crash
    args = (seed, curve, capital, tip, tail_s, osm_delay_s, sump, delay, min_profit)
    bulk, loop = _venue(*args), _venue(*args)
    price, t = _crashed(bulk, crash)
    assert _crashed(loop, crash) == (price, t)
    # Act / Assert (in _twin)
    _twin(bulk, loop, _path(moves, price, t))
    assert bulk.close() == loop.close()
    assert bulk.journal().to_frame().equals(loop.journal().to_frame())


@pytest.mark.parametrize(
    ("tip", "tail_s", "sump", "field"),
    [(300.0, 8400.0, 5e7, "takes"), (300.0, 240.0, 5e7, "redos"), (300.0, 8400.0, 500.0, "flops")],
)
def test_the_twin_skips_through_sales_and_stops_at_takes_redos_and_debt_auctions(
    tip: float, tail_s: float, sump: float, field: str
) -> None:
    # The property above must see what it compares: stretches taken while sales run, ended
    # by a take (keepers' budgets back after 5 blocks), a redo (a sale older than ``tail``
    # whose discount pays a keeper) or a debt auction's kick, tick or deal.
    bulk = _venue(11, "stairstep", 3e4, tip, tail_s, 60.0, sump, 5, 0.0)
    loop = copy.deepcopy(bulk)
    price, t = _crashed(bulk, 0.25)
    assert _crashed(loop, 0.25) == (price, t)
    assert bulk.clipper.sales
    moves = [(0.002 * math.sin(k / 7.0), 1 + (k * 37) % 40) for k in range(400)]
    seen = _twin(bulk, loop, _path(moves, price, t))
    assert seen["skipped"] > 100
    assert seen["stretches"] >= 8
    assert seen[field] > 0, seen
