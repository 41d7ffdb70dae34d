"""GmxVenue's fast path (quiet band, trigger ladders, candidates only) against its full-pass
reference (``full_pass=True``: every open position evaluated every step): step by step the
same liquidations, ADL closes, journal rows, pool amounts, funding and solvency lines."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from deleverage.protocols.chain import Chain, ChainConfig
from deleverage.protocols.gmx import GmxConfig, GmxPopulation, GmxVenue, gmx_population
from deleverage.protocols.gmx import math as gm
from deleverage.protocols.keepers import Keepers, KeepersConfig, KeeperSpec
from deleverage.venues.protocol import PriceInputs

S = 10**9


@st.composite
def _markets(draw: st.DrawFn) -> dict[str, Any]:
    """A market config (impact, fees, accrual, spread, pool size, ADL, a long token priced
    apart or not) and how its positions are drawn."""
    impact = draw(st.sampled_from([(0.0, 0.0), (2.5e-10, 5e-10), (1e-9, 0.0), (5e-9, 2e-8)]))
    fees = draw(st.sampled_from([(0.0004, 0.0006), (0.0005, 0.0005), (0.0, 0.0)]))
    separate = draw(st.booleans())
    cfg: dict[str, Any] = {
        "asset": "SOL" if separate else "ETH",
        "long_token_asset": "WETH" if separate else None,
        "long_pool_tokens": draw(st.sampled_from([300.0, 3_000.0, 1e6])),
        "short_pool_usd": draw(st.sampled_from([5e5, 5e6, 5e7])),
        "oracle_half_spread": draw(st.sampled_from([0.0, 0.0005])),
        "positive_impact_factor": impact[0],
        "negative_impact_factor": impact[1],
        "position_fee_factor_positive": fees[0],
        "position_fee_factor_negative": fees[1],
        "liquidation_fee_factor": draw(st.sampled_from([0.0, 0.002])),
        "borrowing_rate_per_s": draw(st.sampled_from([0.0, 1e-8, 1e-6])),
        "funding_factor": draw(st.sampled_from([0.0, 5e-8, 1e-5])),
        "max_impact_factor_for_liquidations": draw(st.sampled_from([0.0, 0.005, 0.01])),
        "adl_enabled": draw(st.booleans()),
        "max_pnl_factor_for_adl": 0.3,
        "min_pnl_factor_after_adl": 0.2,
        "max_pnl_factor_for_traders": draw(st.sampled_from([0.25, 0.9])),
        "execution_fee_usd": 50.0,
    }
    return {
        "config": cfg,
        "n": draw(st.integers(1, 250)),
        "seed": draw(st.integers(0, 2**16)),
        "leverage_high": draw(st.floats(2.0, 100.0)),
        "dispersion": draw(st.sampled_from([0.0, 0.005, 0.05])),
        "keepers": draw(st.sampled_from([None, 0, 3, 20])),
    }


def _build(market: dict[str, Any], *, full_pass: bool) -> GmxVenue:
    cfg = GmxConfig(**market["config"])
    index_price = 100.0 if cfg.long_token_asset else 2_000.0
    pop = gmx_population(
        market["n"],
        seed=market["seed"],
        price=index_price,
        leverage=(1.5, max(1.5, market["leverage_high"])),
        entry_dispersion=market["dispersion"],
    )
    if cfg.long_token_asset:  # long-token collateral in WETH at 2,000, not the index at 100
        pop = pop._replace(
            collateral_amount=np.where(
                pop.collateral_is_long_token, pop.collateral_amount * index_price / 2_000.0,
                pop.collateral_amount,
            )
        )  # fmt: skip
    if market["keepers"] is None:
        return GmxVenue(cfg, pop, full_pass=full_pass)
    spec = KeeperSpec(capital=1e6, latency_blocks=market["keepers"], gas_units=200_000.0)
    chain = Chain(ChainConfig(block_time_s=12.0, priority_noise_sigma=0.0), seed=3)
    gas = cfg.long_token_asset or cfg.asset
    return GmxVenue(
        cfg,
        pop,
        keepers=Keepers(KeepersConfig(keepers=(spec,))),
        chain=chain,
        native_asset=gas,
        full_pass=full_pass,
    )


_MOVES = st.lists(
    st.tuples(
        st.one_of(st.floats(-2e-4, 2e-4), st.floats(-0.03, 0.03)),  # index log move
        st.floats(-0.01, 0.01),  # the long token's log move (when priced apart)
        st.one_of(st.integers(1, 30), st.integers(1, 3_600)),  # seconds to the step
    ),
    min_size=1,
    max_size=60,
)


def _state(venue: GmxVenue) -> tuple[Any, ...]:
    return (
        venue.pool_amounts(),
        venue.funding_claimable_usd(),
        venue.solvency(),
        venue._oi_long_usd,
        venue._oi_short_usd,
        venue._seen.tolist(),
        list(venue._adl_seen),
    )


@settings(max_examples=60, deadline=None)
@given(market=_markets(), moves=_MOVES)
def test_the_fast_path_equals_a_full_pass_step_by_step(
    market: dict[str, Any], moves: list[tuple[float, float, int]]
) -> None:
    # Arrange
    fast = _build(market, full_pass=False)
    full = _build(market, full_pass=True)
    separate = fast.assets != (fast._cfg.asset,)
    p, q, t = (100.0, 2_000.0, 0) if separate else (2_000.0, 2_000.0, 0)
    # Act / Assert: every step returns the same figures and leaves the same state
    for move, q_move, dt in moves:
        p, q, t = p * float(np.exp(move)), q * float(np.exp(q_move)), t + dt
        prices = {fast._cfg.asset: PriceInputs(p)}
        if separate:
            prices["WETH"] = PriceInputs(q)
        a = fast.step(prices, ts_ns=t * S)
        b = full.step(prices, ts_ns=t * S)
        assert a == b
        assert _state(fast) == _state(full)
    pd.testing.assert_frame_equal(fast.journal().to_frame(), full.journal().to_frame())
    pd.testing.assert_frame_equal(fast.open_positions(), full.open_positions())


def test_the_full_pass_reference_never_returns_early() -> None:
    # Arrange: 200 positions opened at 2,000 at up to 20x: none liquidatable near 2,000
    market: dict[str, Any] = {
        "config": {"asset": "ETH", "execution_fee_usd": 1.0},
        "n": 200,
        "seed": 1,
        "leverage_high": 20.0,
        "dispersion": 0.0,
        "keepers": None,
    }
    fast, full = _build(market, full_pass=False), _build(market, full_pass=True)
    evaluated = {"fast": 0, "full": 0}
    for name, venue in (("fast", fast), ("full", full)):
        original = venue._liquidate

        def counting(*args: Any, _name: str = name, _f: Any = original) -> Any:
            evaluated[_name] += int(args[-1].size)
            return _f(*args)

        venue._liquidate = counting  # type: ignore[method-assign, assignment]
    # Act: a first step (both evaluate all), then three quiet wiggles
    for k, price in enumerate((2_000.0, 2_001.0, 1_999.0, 2_000.5), start=1):
        fast.step({"ETH": PriceInputs(price)}, ts_ns=k * S)
        full.step({"ETH": PriceInputs(price)}, ts_ns=k * S)
    # Assert: the reference evaluated every open position every step, the fast path once
    assert evaluated["full"] == 4 * evaluated["fast"] > 0


def test_a_position_liquidatable_then_safe_over_a_quiet_step_is_seen_afresh() -> None:
    # Arrange: a 20x long from 2,000 (liquidatable below ~1,921), keepers 2 blocks late
    def venue(full_pass: bool) -> GmxVenue:
        spec = KeeperSpec(capital=1e6, latency_blocks=2, gas_units=1_000.0)
        return GmxVenue(
            GmxConfig(asset="ETH", execution_fee_usd=50.0),
            GmxPopulation(
                is_long=np.array([True]),
                collateral_amount=np.array([1_000.0]),
                collateral_is_long_token=np.array([False]),
                size_usd=np.array([20_000.0]),
                size_tokens=np.array([10.0]),
            ),
            keepers=Keepers(KeepersConfig(keepers=(spec,))),
            chain=Chain(ChainConfig(block_time_s=12.0, priority_noise_sigma=0.0), seed=3),
            native_asset="ETH",
            full_pass=full_pass,
        )

    fast, full = venue(False), venue(True)
    # Act: seen in block 1, safe again in block 2 (a quiet step for the fast path), seen
    # afresh in block 3: the keepers' latency runs from block 3, not block 1
    counts = []
    for k, price in enumerate((1_900.0, 2_000.0, 1_900.0, 1_900.0, 1_900.0), start=1):
        a = fast.step({"ETH": PriceInputs(price)}, ts_ns=k * 12 * S)
        b = full.step({"ETH": PriceInputs(price)}, ts_ns=k * 12 * S)
        assert a == b
        counts.append(a.liquidations)
    # Assert
    assert counts == [0, 0, 0, 0, 1]


def test_a_close_that_raises_anothers_fee_liquidates_it_in_the_next_round() -> None:
    # Arrange: longs L1 (600 USD collateral) and L2 (800) of 10,000 each (5 ETH at 2,000)
    # and a short of 5,000; no impact, a close fee of 0 when it improves balance, 5%
    # when not. At 1,890 L1 has 600 + 9,450 - 10,000 = 50 < 100 (the threshold, 1% of
    # size); L2 has 250 while its close improves balance (OI 20,000 vs 5,000), but once
    # L1 is gone its close would cross balance (10,000 vs 5,000 -> 5,000 vs 5,000: not
    # improved) at a 500 fee: -250, liquidatable in the next round
    def venue(full_pass: bool) -> GmxVenue:
        pop = GmxPopulation(
            is_long=np.array([True, True, False]),
            collateral_amount=np.array([600.0, 800.0, 5_000.0]),
            collateral_is_long_token=np.array([False, False, False]),
            size_usd=np.array([10_000.0, 10_000.0, 5_000.0]),
            size_tokens=np.array([5.0, 5.0, 2.5]),
        )
        cfg = GmxConfig(
            asset="ETH", position_fee_factor_positive=0.0, position_fee_factor_negative=0.05
        )
        return GmxVenue(cfg, pop, full_pass=full_pass)

    fast, full = venue(False), venue(True)
    # Act
    steps = []
    for k, price in enumerate((2_000.0, 1_995.0, 1_890.0), start=1):
        a = fast.step({"ETH": PriceInputs(price)}, ts_ns=k * S)
        assert a == full.step({"ETH": PriceInputs(price)}, ts_ns=k * S)
        steps.append(a.liquidations)
    # Assert: nothing at 2,000 or 1,995 (L1: 600 + 9,975 - 10,000 = 575 >= 100), both longs
    # at 1,890, the second in the second round
    assert steps == [0, 0, 2]
    assert fast.journal().to_frame()["account"].tolist() == [0, 1]


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**16),
    oi=st.tuples(st.floats(0.0, 1e9), st.floats(0.0, 1e9)),
    factors=st.sampled_from([(0.0, 0.0), (2.5e-10, 5e-10), (1e-9, 0.0), (0.0, 3e-9)]),
    exponent=st.sampled_from([1.0, 1.5, 2.0, 2.7]),
    accrual=st.tuples(st.floats(0.0, 1e-2), st.floats(0.0, 1e-2), st.floats(0.0, 1e-2)),
)
def test_the_compiled_close_costs_equal_the_numpy_formulas_bit_for_bit(
    seed: int,
    oi: tuple[float, float],
    factors: tuple[float, float],
    exponent: float,
    accrual: tuple[float, float, float],
) -> None:
    # Arrange: positions against an arbitrary open interest (closes on either side of
    # balance, crossing it or not), impact with any exponent, borrowing and funding owed
    cfg = GmxConfig(
        asset="ETH",
        positive_impact_factor=factors[0],
        negative_impact_factor=factors[1],
        impact_exponent=exponent,
    )
    size = max(float(np.mean(oi)) / 50.0, 100.0)
    pop = gmx_population(200, seed=seed, price=2_000.0, mean_size_usd=size)
    compiled, reference = GmxVenue(cfg, pop), GmxVenue(cfg, pop, full_pass=True)
    rng = np.random.default_rng(seed)
    borrow_entry = rng.uniform(0.0, accrual[0], 200)
    fund_entry = rng.uniform(0.0, accrual[1], 200)
    for venue in (compiled, reference):
        venue._oi_long_usd, venue._oi_short_usd = oi
        venue._borrow_entry[:] = borrow_entry
        venue._fund_entry[:] = fund_entry
    idx = np.flatnonzero(rng.random(200) < 0.7)
    fund = np.array([accrual[1], accrual[2]])
    # Act
    got = compiled._close_costs(idx, accrual[0], fund)
    want = reference._close_costs(idx, accrual[0], fund)
    # Assert: the same bits (impact <= 0, fees)
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])
    assert (got[0] <= 0.0).all()


def test_only_a_flipped_fee_factor_or_a_negative_margin_asks_for_another_round() -> None:
    # Open interest 20,000 long / 5,000 short before, 10,000 / 5,000 after. Closing a
    # 10,000 long improves balance before (|15,000 - 10,000| < 15,000) and not after
    # (|5,000 - 10,000| = 5,000): its fee factor goes from 0 to 5%, 500 USD. A 2,000 long's
    # close improves balance both times; a short's close never does.
    near = gm.may_become_liquidatable(
        is_long=np.array([True, True, True, False, True]),
        size_usd=np.array([10_000.0, 10_000.0, 2_000.0, 2_000.0, 2_000.0]),
        margin_usd=np.array([499.0, 501.0, 1e-6, 1e-6, -1e-6]),
        open_interest_before=(20_000.0, 5_000.0),
        open_interest_after=(10_000.0, 5_000.0),
        fee_factors=(0.0, 0.05),
        max_impact_factor=None,
    )
    assert near.tolist() == [True, False, False, False, True]
    # with a negative impact factor every position within fee difference + impact cap
    near = gm.may_become_liquidatable(
        is_long=np.array([True, False]),
        size_usd=np.array([2_000.0, 2_000.0]),
        margin_usd=np.array([119.0, 121.0]),
        open_interest_before=(20_000.0, 5_000.0),
        open_interest_after=(10_000.0, 5_000.0),
        fee_factors=(0.0, 0.05),
        max_impact_factor=0.01,
    )
    assert near.tolist() == [True, False]
