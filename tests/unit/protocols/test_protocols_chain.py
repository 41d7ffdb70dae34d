"""Tests of deleverage.protocols.chain: blocks, the EIP-1559 base fee under congestion, the
volatility-driven demand, the cap and determinism.

Expected numbers are worked by hand from EIP-1559's rule (+-12.5% a block around a half-full
target) and from the definition of an exponentially weighted variance.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from deleverage.errors import ConfigError, ValidationError
from deleverage.protocols.chain import NS_PER_S, Chain, ChainConfig, gas_cost_quote

S = NS_PER_S


def _quiet(**overrides: float) -> ChainConfig:
    # No tip and no noise: the gas price is the base fee.
    return ChainConfig(priority_fee_gwei=0.0, priority_noise_sigma=0.0, **overrides)


def test_blocks_are_numbered_from_genesis_by_block_time() -> None:
    chain = Chain(ChainConfig(block_time_s=12.0, genesis_ts_ns=100 * S))
    assert chain.block_at(100 * S) == 0
    assert chain.block_at(111 * S) == 0
    assert chain.block_at(112 * S) == 1
    assert chain.block_at(100 * S + 120 * S) == 10
    with pytest.raises(ValidationError, match="genesis_ts_ns"):
        chain.block_at(99 * S)


def test_gas_cost_is_units_times_price_times_native_price() -> None:
    # 300,000 gas at 150 gwei = 0.045 ETH; at 180 USD per ETH (Black Thursday's low) = 8.1 USD.
    assert float(gas_cost_quote(300_000, 150.0, 180.0)) == pytest.approx(8.1)
    np.testing.assert_allclose(gas_cost_quote([1e5, 2e5], 10.0, 1_000.0), [1.0, 2.0])


def test_a_calm_chain_at_the_target_keeps_its_base_fee() -> None:
    chain = Chain(_quiet(volatility_demand=0.0))
    for k in range(50):
        chain.advance(k * 12 * S, 2_000.0)
    assert chain.base_fee_gwei == pytest.approx(20.0)
    assert chain.gas_price_gwei == pytest.approx(20.0)


def test_pending_gas_fills_blocks_and_raises_the_fee_12_5_percent_each() -> None:
    # Arrange: background 0.5 of a 30M block leaves 15M of spare gas a block.
    chain = Chain(_quiet(volatility_demand=0.0))
    chain.advance(0, 2_000.0)
    # Act: 67.5M of liquidations: 4 full blocks (60M), then one block 0.5 + 7.5/30 = 0.75 full.
    chain.submit(67.5e6)
    chain.advance(10 * 12 * S, 2_000.0)
    # Assert: 20 x 1.125^4 x (1 + 0.25/4) x 1^5, and the queue is empty.
    assert chain.base_fee_gwei == pytest.approx(20.0 * 1.125**4 * 1.0625)
    assert chain.pending_gas == 0.0


def test_empty_blocks_lower_the_fee_to_its_floor() -> None:
    chain = Chain(_quiet(background_utilization=0.0, min_base_fee_gwei=5.0))
    chain.advance(0, 2_000.0)
    chain.advance(12 * S, 2_000.0)
    assert chain.base_fee_gwei == pytest.approx(20.0 * 0.875)
    chain.advance(1_000 * 12 * S, 2_000.0)
    assert chain.base_fee_gwei == 5.0


def test_the_realized_variance_is_an_exponentially_weighted_average() -> None:
    # One step of dt = half-life: weight 1/2 on the old variance, 1/2 on r^2 / dt.
    chain = Chain(_quiet(volatility_half_life_s=12.0))
    start = chain.variance_per_s
    chain.advance(0, 2_000.0)
    chain.advance(12 * S, 1_800.0)
    r = math.log(0.9)
    assert chain.variance_per_s == pytest.approx(0.5 * start + 0.5 * r * r / 12.0)


def test_a_crash_raises_gas_and_a_calm_path_does_not() -> None:
    crash, calm = Chain(ChainConfig(), seed=4), Chain(ChainConfig(), seed=4)
    for k in range(300):  # one hour of 12 s blocks, -0.3% a block on the crash path
        crash.advance(k * 12 * S, 2_000.0 * 0.997**k)
        calm.advance(k * 12 * S, 2_000.0)
    assert crash.volatility_ratio > 3.0
    assert calm.volatility_ratio < 1.0
    assert crash.gas_price_gwei > 10 * calm.gas_price_gwei


def test_advancing_twice_at_the_same_time_changes_nothing() -> None:
    chain = Chain(ChainConfig(), seed=2)
    chain.advance(0, 2_000.0)
    chain.advance(24 * S, 1_900.0)
    state = (chain.base_fee_gwei, chain.variance_per_s, chain.gas_price_gwei, chain.block)
    chain.advance(24 * S, 1_000.0)  # a second venue on the same chain, same time
    assert (chain.base_fee_gwei, chain.variance_per_s, chain.gas_price_gwei, chain.block) == state


def test_bad_inputs_are_refused_naming_the_field() -> None:
    chain = Chain(ChainConfig())
    chain.advance(10 * S, 2_000.0)
    with pytest.raises(ValidationError, match="ts_ns"):
        chain.advance(5 * S, 2_000.0)
    with pytest.raises(ValidationError, match="native_price"):
        chain.advance(20 * S, float("nan"))
    with pytest.raises(ValidationError, match="gas_units"):
        chain.submit(-1.0)
    with pytest.raises(ConfigError, match="block_time_s"):
        ChainConfig(block_time_s=0.0)
    with pytest.raises(ConfigError, match="initial_base_fee_gwei"):
        ChainConfig(initial_base_fee_gwei=50.0, max_gas_gwei=10.0)
    with pytest.raises(ConfigError, match=r"unknown|not a field"):
        ChainConfig.from_mapping({"block_time": 12})


@given(
    seed=st.integers(0, 2**32),
    returns=st.lists(st.floats(-0.3, 0.3), min_size=1, max_size=60),
    submitted=st.lists(st.floats(0.0, 1e9), min_size=1, max_size=60),
    gap_s=st.integers(1, 600),
)
def test_gas_stays_within_floor_and_cap_and_is_deterministic(
    seed: int, returns: list[float], submitted: list[float], gap_s: int
) -> None:
    config = ChainConfig(max_gas_gwei=500.0)
    chains = [Chain(config, seed=seed), Chain(config, seed=seed)]
    prices = 2_000.0 * np.exp(np.cumsum(returns))
    seen: list[list[float]] = [[], []]
    for chain, out in zip(chains, seen, strict=True):
        for k, price in enumerate(prices):
            chain.submit(submitted[k % len(submitted)])
            chain.advance(k * gap_s * S, float(price))
            assert config.min_base_fee_gwei <= chain.base_fee_gwei <= config.max_gas_gwei
            assert 0.0 < chain.gas_price_gwei <= config.max_gas_gwei
            assert chain.pending_gas >= 0.0
            out.append(chain.gas_price_gwei)
    assert seen[0] == seen[1]


def test_different_seeds_draw_different_tips() -> None:
    a, b = Chain(ChainConfig(), seed=1), Chain(ChainConfig(), seed=2)
    a.advance(12 * S, 2_000.0)
    b.advance(12 * S, 2_000.0)
    assert a.gas_price_gwei != b.gas_price_gwei
