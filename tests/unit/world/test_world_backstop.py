"""Cross-chain backstop pools against a single book: the fall in the price impact of forced flow
is proportional to the capacity the flow reaches (up to saturation) and falls with the bridge
latency.

Outside numbers: a constant-depth book moves ``x / D`` for ``x`` base consumed (``D`` = 100 x
depth per 1 %), so the single book's impact and the pools' share have closed forms computed
here from the flow, the price and the capacity.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from deleverage import ConstantDepthBook, Exchange, MarginMode, MarketSpec
from deleverage.engine.venue import PerpVenue
from deleverage.errors import ValidationError
from deleverage.sim.pricing import ArbitrageSpec
from deleverage.sim.scenario import LiquiditySpec
from deleverage.world import SharedMarket, World, WorldVenue
from deleverage.world.backstop import (
    BackstopLayer,
    BackstopNetwork,
    BackstopPool,
    route_forced_flow,
)

S = 1_000_000_000
STEPS = 20
PER_STEP = -10.0  # base sold by liquidations every second
PRICE = 100.0
DEPTH_PER_PCT = 5.0  # D = 500 base per unit of relative move
CONCESSION = 0.01


def _final_impact(pools: list[BackstopPool] | None, *, half_life_s: float = math.inf) -> float:
    book = ConstantDepthBook(depth_per_pct=DEPTH_PER_PCT, half_life_s=half_life_s)
    network = BackstopNetwork(pools) if pools is not None else None
    frame = route_forced_flow(
        np.full(STEPS, PER_STEP),
        np.full(STEPS, PRICE),
        np.arange(STEPS, dtype=np.int64) * S,
        book=book,
        network=network,
    )
    return float(frame["price_impact"].iloc[-1])


def _pool(capacity: float, latency_s: float = 0.0, chain: str = "arbitrum") -> BackstopPool:
    return BackstopPool(chain, capacity, latency_s=latency_s, fee_rate=0.004, discount=0.006)


def test_the_single_book_moves_by_the_whole_flow_over_its_depth() -> None:
    assert _final_impact(None) == pytest.approx(STEPS * PER_STEP / (100 * DEPTH_PER_PCT))


@pytest.mark.parametrize("capacity", [1_000.0, 2_000.0, 5_000.0, 10_000.0])
def test_the_fall_in_impact_is_proportional_to_capacity_below_saturation(capacity: float) -> None:
    # The pool buys at 99 (1 % concession): it takes capacity / 99 base, all below the 200 sold.
    single = _final_impact(None)
    reduction = _final_impact([_pool(capacity)]) - single
    expected = capacity / (PRICE * (1 - CONCESSION)) / (100 * DEPTH_PER_PCT)
    assert reduction == pytest.approx(expected, rel=1e-9)
    assert reduction / capacity == pytest.approx(1 / (99.0 * 500.0), rel=1e-9)


def test_capacity_beyond_the_flow_saturates_and_removes_all_impact() -> None:
    flow_capital = STEPS * abs(PER_STEP) * PRICE * (1 - CONCESSION)  # 19,800
    assert _final_impact([_pool(flow_capital)]) == pytest.approx(0.0, abs=1e-12)
    assert _final_impact([_pool(5 * flow_capital)]) == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize(
    ("latency_s", "steps_served"), [(0.0, 20), (0.5, 19), (4.0, 16), (12.0, 8), (19.0, 1)]
)
def test_the_fall_in_impact_shrinks_with_the_bridge_latency(
    latency_s: float, steps_served: int
) -> None:
    # A saturating pool serves only the seconds after its capital arrives.
    single = _final_impact(None)
    reduction = _final_impact([_pool(1e9, latency_s)]) - single
    assert reduction == pytest.approx(steps_served * abs(PER_STEP) / 500.0, rel=1e-9)


def test_a_pool_whose_capital_arrives_after_the_flow_does_nothing() -> None:
    assert _final_impact([_pool(1e9, latency_s=25.0)]) == pytest.approx(_final_impact(None))


def test_with_a_resilient_book_more_capacity_and_less_latency_still_mean_less_impact() -> None:
    half = 10.0
    single = abs(_final_impact(None, half_life_s=half))
    by_capacity = [abs(_final_impact([_pool(c)], half_life_s=half)) for c in (0.0, 5e3, 1e4, 2e4)]
    # A pool that could take all the flow: the later it arrives, the more the book took.
    by_latency = [abs(_final_impact([_pool(1e9, s)], half_life_s=half)) for s in (0, 5, 10, 30)]
    assert by_capacity[0] == pytest.approx(single)
    assert all(a > b for a, b in itertools.pairwise(by_capacity))
    assert all(a < b for a, b in itertools.pairwise(by_latency))
    assert by_latency[-1] == pytest.approx(single)


def test_the_cheapest_arrived_pool_serves_first_and_the_forced_seller_gets_its_price() -> None:
    network = BackstopNetwork(
        [
            BackstopPool("base", 500.0, fee_rate=0.01, discount=0.02),
            BackstopPool("arbitrum", 990.0, fee_rate=0.004, discount=0.006),
            BackstopPool("solana", 1e6, latency_s=60.0),
        ]
    )
    takes = network.absorb_flow(-15.0, 100.0, ts_ns=0)
    # arbitrum (1 %) first: 990 / 99 = 10 base; then base (3 %): 5 base at 97; solana not here.
    assert [t.chain for t in takes] == ["arbitrum", "base"]
    np.testing.assert_allclose([(t.size, t.price) for t in takes], [(10.0, 99.0), (5.0, 97.0)])
    assert network.lines().concession == pytest.approx(10 * 1.0 + 5 * 3.0)
    assert network.inventory({"asset": 90.0})["profit"].tolist()[:2] == pytest.approx(
        [5 * 90 - 485.0, 10 * 90 - 990.0]  # in the order given: base, arbitrum
    )


def test_a_deficit_is_covered_after_the_latency_with_the_bridge_fee_on_top() -> None:
    network = BackstopNetwork([BackstopPool("eth", 1_010.0, latency_s=2.0, fee_rate=0.01)])
    assert network.cover_deficit(300.0, ts_ns=0) == []
    takes = network.cover_deficit(2_000.0, ts_ns=2 * S)
    assert takes[0].capital == pytest.approx(1_010.0)
    lines = network.lines()
    assert (lines.deficit_covered, lines.deficit_fees) == pytest.approx((1_000.0, 10.0))
    assert lines.deficit_uncovered == pytest.approx(300.0 + 1_000.0)


@given(
    capacities=st.lists(st.floats(0.0, 1e6), min_size=1, max_size=4),
    calls=st.lists(
        st.tuples(st.booleans(), st.floats(-1e4, 1e4), st.floats(1.0, 1e4)), max_size=10
    ),
)
def test_capital_committed_is_what_the_pools_lost_from_capacity(
    capacities: list[float], calls: list[tuple[bool, float, float]]
) -> None:
    pools = [
        BackstopPool(f"c{i}", c, latency_s=float(i), fee_rate=0.001 * i, discount=0.002)
        for i, c in enumerate(capacities)
    ]
    network = BackstopNetwork(pools)
    for k, (is_flow, amount, price) in enumerate(calls):
        if is_flow:
            network.absorb_flow(amount, price, ts_ns=k * S)
        else:
            network.cover_deficit(abs(amount), ts_ns=k * S)
    lines = network.lines()
    used = sum(capacities) - float(network.capital_left.sum())
    assert used == pytest.approx(
        lines.flow_capital + lines.deficit_covered + lines.deficit_fees, rel=1e-9, abs=1e-6
    )
    assert np.all(network.capital_left >= -1e-9)


def test_bad_pools_are_refused_naming_the_field() -> None:
    with pytest.raises(ValidationError, match=r"backstops\[eth\]\.latency_s"):
        BackstopPool("eth", 1.0, latency_s=-1.0)
    with pytest.raises(ValidationError, match=r"backstops\[eth\]\.discount"):
        BackstopPool("eth", 1.0, fee_rate=0.5, discount=0.5)
    with pytest.raises(ValidationError, match="each chain once"):
        BackstopNetwork([BackstopPool("eth", 1.0), BackstopPool("eth", 2.0)])


def _gap_world(capacity: float | None) -> float:
    """One perp venue of 10 isolated 10x longs of 400 ETH gapped from 100 to 82 in a world
    whose shared book (D = 100 x 50 base) does not recover; returns the shared market's
    dislocation after the gap."""
    start = 1_767_225_600_000_000_000
    ex = Exchange(seed=3)
    spec = MarketSpec.simple("ETH", maker_fee_rate=0.0, taker_fee_rate=0.0)
    m = ex.list_market(spec, ts_ns=start)
    ex.set_mark(m, 100.0, ts_ns=start)
    for _ in range(10):
        a = ex.open_account(margin_mode=MarginMode.ISOLATED)
        ex.deposit(a, 4_000.0, ts_ns=start)
        ex.set_leverage(a, m, 10.0)
        ex.trade(m, buyer=a, seller=ex.liquidity_account, size=400.0, price=100.0, ts_ns=start)
    venue = PerpVenue(ex, name="cex", assets={"ETH": m})
    market = SharedMarket(
        "ETH", exogenous=np.array([100.0, 82.0]),
        liquidity=LiquiditySpec(depth_per_pct=50.0, half_life_s=1e12, max_move=1.0),
        arbitrage=ArbitrageSpec(), start_ns=start, dt_s=1.0,
    )  # fmt: skip
    layers: list[BackstopLayer] = []
    if capacity is not None:
        pool = BackstopPool("arbitrum", capacity, fee_rate=0.004, discount=0.006)
        layers.append(BackstopLayer(BackstopNetwork([pool])))
    world = World([market], [WorldVenue(venue)], dt_s=1.0, start_ns=start, layers=layers)
    world.run()
    if capacity is not None:
        # The pool bought at 81.18 what the shared book then marked far lower: its loss.
        held = layers[0].panels()["Backstop positions (at the last shared prices)"]
        price = market.price
        assert held["position"].iloc[0] == pytest.approx(capacity / 81.18)
        assert held["profit"].iloc[0] == pytest.approx(capacity / 81.18 * price - capacity)
    return market.dislocation


def test_in_a_world_the_backstop_layer_cuts_the_shared_dislocation_by_capacity() -> None:
    single = _gap_world(None)
    one = _gap_world(8_118.0)  # 82 x 0.99 = 81.18 per ETH: 100 ETH
    two = _gap_world(16_236.0)  # 200 ETH
    # 4,000 ETH sold into D = 5,000 base per unit move: -0.8; each 100 ETH taken: +0.02.
    assert single == pytest.approx(-0.8, rel=1e-9)
    assert one - single == pytest.approx(0.02, rel=1e-6)
    assert two - single == pytest.approx(0.04, rel=1e-6)
