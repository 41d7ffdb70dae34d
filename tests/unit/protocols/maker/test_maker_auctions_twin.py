"""The Clipper's vectorised sale filter and the venue's bark prefilter (§M9) against the per-sale
paths they skip: a twin venue whose Clipper runs every sale through the per-sale path
(``Clipper.fast = False``) and whose Dog tries every unsafe vault (``fast_bark = False``) must do
exactly the same on random populations, curves, limits, keepers and price paths, step by step:
the same steps, journal, solvency lines, keeper state, sales and auctions."""

from __future__ import annotations

import numpy as np
from hypothesis import example, given, settings
from hypothesis import strategies as st

from deleverage.protocols.keepers import KeepersConfig, KeeperSpec
from deleverage.protocols.maker import (
    ClipperConfig,
    MakerConfig,
    MakerVenue,
    build_maker,
    maker_population,
)
from deleverage.protocols.maker.config import DogConfig
from deleverage.venues.protocol import PriceInputs

S = 10**9


def _pair(
    seed: int, curve: str, capital: float, hole: float, dust: float, tail_s: float, cusp: float
) -> tuple[MakerVenue, MakerVenue]:
    config = MakerConfig(
        osm_delay_s=60.0,
        dust=dust,
        dog=DogConfig(hole=hole),
        clipper=ClipperConfig(
            buf=1.1,
            curve=curve,
            step_s=60.0,
            cut=0.97 if curve == "stairstep" else 0.9995,
            tau_s=1800.0,
            tail_s=tail_s,
            cusp=cusp,
        ),
        market_depth=1e7,
        keepers=KeepersConfig(
            keepers=(
                KeeperSpec(capital=capital, latency_blocks=0, count=2),
                KeeperSpec(capital=capital * 5, latency_blocks=4, gas_units=150_000.0),
            ),
            sale_delay_blocks=3,
        ),
    )
    population = maker_population(
        300, seed, price=2_000.0, ratio_median=1.7, ratio_sigma=0.3, collateral_median=6.0
    )
    fast, slow = build_maker(config, population), build_maker(config, population)
    slow.clipper.fast = False
    slow.fast_bark = False
    return fast, slow


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    curve=st.sampled_from(["linear", "stairstep", "exponential"]),
    capital=st.sampled_from([0.0, 500.0, 3e4, 1e7]),  # 0 and 500: budgets at or below gas
    hole=st.sampled_from([2e3, 3e4, 50e6]),  # small holes: dusty partials and limits
    dust=st.sampled_from([0.0, 20.0, 5e3]),
    tail_s=st.sampled_from([600.0, 8400.0]),
    cusp=st.sampled_from([0.0, 0.4, 0.9]),
    crash=st.floats(0.0, 0.4),
    moves=st.lists(st.floats(-0.08, 0.06), min_size=2, max_size=60),
)
# A hole below dust x chop: partial barks are dusty, only small whole vaults are barked.
@example(
    seed=3, curve="stairstep", capital=3e4, hole=2e3, dust=5e3, tail_s=600.0, cusp=0.4,
    crash=0.0, moves=[-0.03] * 9 + [0.0] * 40,
)  # fmt: skip
def test_the_fast_auction_paths_do_what_the_per_sale_paths_do(
    seed: int,
    curve: str,
    capital: float,
    hole: float,
    dust: float,
    tail_s: float,
    cusp: float,
    crash: float,
    moves: list[float],
) -> None:
    fast, slow = _pair(seed, curve, capital, hole, dust, tail_s, cusp)
    price = 2_000.0
    for k, move in enumerate([-crash / 3] * 3 + moves, start=1):
        price *= 1.0 + move
        prices = {"ETH": PriceInputs(price)}
        ts = k * 45 * S
        assert fast.step(prices, ts_ns=ts) == slow.step(prices, ts_ns=ts)
        assert [vars(s) for s in fast.clipper.sales] == [vars(s) for s in slow.clipper.sales]
        assert fast.clipper.dirt == slow.clipper.dirt
        np.testing.assert_array_equal(fast.keepers.capital, slow.keepers.capital)
    np.testing.assert_array_equal(fast.art, slow.art)
    np.testing.assert_array_equal(fast.ink, slow.ink)
    np.testing.assert_array_equal(fast.keepers.gas_paid, slow.keepers.gas_paid)
    np.testing.assert_array_equal(fast.keepers.received, slow.keepers.received)
    assert fast.summary() == slow.summary()
    assert fast.sales.frame().equals(slow.sales.frame())
    assert fast.journal().to_frame().equals(slow.journal().to_frame())
    assert fast.close() == slow.close()


def test_the_twin_exercises_redos_takes_and_skips() -> None:
    # The property above must see the paths it compares: a crash that starts sales, lets some
    # run unbought (priced above the market), redoes stuck ones and sells others.
    fast, slow = _pair(7, "stairstep", 3e4, 50e6, 20.0, 600.0, 0.4)
    price = 2_000.0
    for k in range(1, 80):
        price *= 0.97 if k < 8 else 1.0
        prices = {"ETH": PriceInputs(price)}
        assert fast.step(prices, ts_ns=k * 45 * S) == slow.step(prices, ts_ns=k * 45 * S)
    summary = fast.summary()
    assert summary == slow.summary()
    assert summary["auctions"] > 10
    assert summary["redos"] > 0
    assert summary["sales"] > 0
