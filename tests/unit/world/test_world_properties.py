"""Invariants of the world's pieces (Hypothesis): the shared book's closed form, composition of
moves, the trader map's shared set."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from hypothesis import given
from hypothesis import strategies as st

from deleverage.sim.pricing import ArbitrageSpec
from deleverage.sim.scenario import LiquiditySpec
from deleverage.world import SharedMarket, TraderMap

START_NS = 1_767_225_600_000_000_000
depths = st.floats(min_value=0.1, max_value=1e4)
fractions = st.floats(min_value=-0.2, max_value=0.2).filter(lambda f: abs(f) > 1e-9)


def _market(depth: float) -> SharedMarket:
    market = SharedMarket(
        "BTC", exogenous=np.full(3, 50_000.0),
        liquidity=LiquiditySpec(depth_per_pct=depth, half_life_s=1e12),
        arbitrage=ArbitrageSpec(), start_ns=START_NS, dt_s=1.0,
    )  # fmt: skip
    market.begin(0, START_NS)
    return market


@given(depth=depths, first=fractions, second=fractions)
def test_shared_moves_follow_the_linear_book_and_compose(
    depth: float, first: float, second: float
) -> None:
    # Arrange: flows sized as fractions of the book's depth D = 100 d
    market = _market(depth)
    big_d = 100.0 * depth
    # Act
    move_1 = market.absorb(first * big_d, START_NS)
    move_2 = market.absorb(second * big_d, START_NS)
    # Assert: P = X (1 + q1 / D)(1 + q2 / D); the log moves add up to the total
    assert math.isclose(move_1, math.log1p(first), rel_tol=1e-9, abs_tol=1e-12)
    assert math.isclose(move_2, math.log1p(second), rel_tol=1e-9, abs_tol=1e-12)
    expected = 50_000.0 * (1.0 + first) * (1.0 + second)
    assert math.isclose(market.price, expected, rel_tol=1e-9)


@given(
    rows=st.lists(
        st.tuples(st.integers(0, 20), st.sampled_from(["a", "b", "c"])), max_size=40, unique=True
    )
)
def test_the_shared_traders_are_those_on_several_venues(rows: list[tuple[int, str]]) -> None:
    frame = pd.DataFrame(
        {"trader": [r[0] for r in rows], "venue": [r[1] for r in rows],
         "account": np.arange(len(rows))}
    )  # fmt: skip
    traders = TraderMap(frame)
    venues_of: dict[int, set[str]] = {}
    for trader, venue in rows:
        venues_of.setdefault(trader, set()).add(venue)
    expected = sorted(t for t, v in venues_of.items() if len(v) > 1)
    assert traders.shared().tolist() == expected
    for venue in ("a", "b", "c"):
        assert sorted(traders.traders(venue).tolist()) == sorted(t for t, v in rows if v == venue)
