"""Index and oracle feeds against worked examples.

- Weighted median of sources (Hyperliquid's oracle: a weighted median of spot venues,
  hyperliquid.gitbook.io/hyperliquid-docs/trading/oracle): a source moves it only with half the
  weight or more.
- Push feeds (Chainlink Data Feeds, docs.chain.link, "Decentralized Data Model": "deviation
  threshold" and "heartbeat"): a new answer when the price moves by the threshold or the
  heartbeat expires.
- Maker's OSM (makerdao/osm src/osm.sol, ``hop = 3600``; ``poke`` moves ``nxt`` to ``cur`` and
  reads a new ``nxt``): the price in force during an hour was read at the start of the hour before.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from deleverage.errors import ValidationError
from deleverage.prices import oracles


def test_median_holds_when_a_minority_source_is_pushed() -> None:
    prices = [[100.0, 100.1, 99.9, 160.0, 100.0]]
    assert oracles.weighted_median(prices, [3, 2, 2, 1, 1]).tolist() == [100.0]


def test_median_breaks_when_the_pushed_source_holds_half_the_weight() -> None:
    prices = [[100.0, 160.0]]
    assert oracles.weighted_median(prices, [1, 1]).tolist() == [100.0]  # lower median at a tie
    assert oracles.weighted_median(prices, [1, 1.01]).tolist() == [160.0]


def test_sources_out_drop_with_their_weight() -> None:
    prices = [[math.nan, 101.0, 102.0], [math.nan] * 3]
    out = oracles.weighted_median(prices, [5, 1, 1])
    assert out[0] == 101.0
    assert math.isnan(out[1])


def test_bad_weights_are_rejected() -> None:
    with pytest.raises(ValidationError, match="weights"):
        oracles.weighted_median([[1.0, 2.0]], [0.0, 0.0])


@given(
    others=st.lists(st.floats(50.0, 150.0), min_size=2, max_size=6),
    pushed=st.floats(1e-3, 1e9),
)
def test_one_source_under_half_the_weight_cannot_leave_the_others_range(
    others: list[float], pushed: float
) -> None:
    prices = np.array([[*others, pushed]])
    weights = np.ones(len(others) + 1)  # the pushed one has 1 / (n + 1) < 1/2
    median = oracles.weighted_median(prices, weights)[0]
    assert min(others) <= median <= max(others)


def test_push_feed_updates_on_deviation_or_heartbeat_after_its_latency() -> None:
    # 0.5% threshold, 10 s heartbeat, 2 s latency; the price steps up 0.3% at t = 3 and t = 5.
    x = np.array([100.0] * 3 + [100.3] * 2 + [100.6] * 15)
    published, observed = oracles.push_feed(
        x, 1.0, heartbeat_s=10.0, deviation=0.005, latency_s=2.0
    )
    # observations: t=0 (first), t=5 (+0.6% >= 0.5%), t=15 (heartbeat); each lands 2 s later
    assert published.tolist() == [100.0] * 7 + [100.6] * 13
    assert observed.tolist() == [0.0] * 7 + [5.0] * 10 + [15.0] * 3


def test_push_feed_skips_a_source_that_is_out() -> None:
    published, observed = oracles.push_feed([100.0, math.nan, math.nan, 90.0], 1.0)
    assert published.tolist() == [100.0, 100.0, 100.0, 90.0]
    assert observed.tolist() == [0.0, 0.0, 0.0, 3.0]
    assert oracles.staleness(observed, 1.0, 1.0).tolist() == [False, False, True, False]


def test_osm_serves_the_price_read_an_hour_before_the_current_hop() -> None:
    x = np.arange(4 * 3600 + 1, dtype=np.float64)  # the price is the time, in seconds
    delayed = oracles.osm_delayed(x, 1.0)
    assert delayed[0] == delayed[7199] == 0.0  # hops 0 and 1 serve the first reading
    assert delayed[7200] == delayed[10_799] == 3600.0  # hop 2 serves the reading at 1 h
    assert delayed[10_800] == 7200.0


def test_lagged_source_sees_the_past() -> None:
    assert oracles.lagged([1.0, 2.0, 3.0, 4.0], 2.0, 1.0).tolist() == [1.0, 1.0, 1.0, 2.0]
