"""The previews quiet steps read without mutating anything: ``Chain.preview`` (block, gas
price and native price along a path) against advancing a copy step by step, and
``Keepers.capital_path`` (capital as proceeds fall due) against settling a copy block by
block; both leave the originals untouched."""

from __future__ import annotations

import copy

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from deleverage.protocols.chain import Chain, ChainConfig
from deleverage.protocols.keepers import Keepers, KeepersConfig, KeeperSpec

S = 10**9


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 1_000),
    elasticity=st.sampled_from([0.0, 1.0]),
    pending=st.sampled_from([0.0, 5e7]),
    steps=st.lists(st.tuples(st.integers(0, 40), st.floats(-0.05, 0.05)), min_size=1, max_size=80),
)
def test_the_chain_preview_is_advancing_a_copy_step_by_step(
    seed: int, elasticity: float, pending: float, steps: list[tuple[int, float]]
) -> None:
    # Arrange: a chain advanced once, with transactions queued (they congest the next blocks)
    chain = Chain(ChainConfig(demand_elasticity=elasticity, volatility_demand=1.0), seed=seed)
    chain.advance(100 * S, 2_000.0)
    chain.submit(pending)
    before = copy.deepcopy(vars(chain))
    ts, prices, t, p = [], [], 100 * S, 2_000.0
    for dt, move in steps:  # dt 0: a second step at the same time (advance is a no-op)
        t += dt * S
        p *= float(np.exp(move))
        ts.append(t)
        prices.append(p)
    # Act
    blocks, gas, native = chain.preview(ts, prices)
    # Assert: the chain itself unchanged, a copy stepped along gives the same bits
    assert vars(chain) == before
    twin = copy.deepcopy(chain)
    for j, (t, p) in enumerate(zip(ts, prices, strict=True)):
        twin.advance(t, p)
        assert (blocks[j], gas[j], native[j]) == (
            twin.block_at(t),
            twin.gas_price_gwei,
            twin.native_price,
        )
    assert gas.dtype == np.float64
    assert blocks.dtype == np.int64
    # A preview in two pieces (the second going on from the first's copy) is the same
    cut = len(ts) // 2
    b1, g1, n1, end = chain.preview_from(ts[:cut], prices[:cut])
    b2, g2, n2, last = end.preview_from(ts[cut:], prices[cut:])
    assert vars(chain) == before
    assert np.array_equal(np.concatenate((b1, b2)), blocks)
    assert np.array_equal(np.concatenate((g1, g2)), gas)
    assert np.array_equal(np.concatenate((n1, n2)), native)
    assert {k: v for k, v in vars(last).items() if k != "config"} == {
        k: v for k, v in vars(twin).items() if k != "config"
    }


@settings(max_examples=40, deadline=None)
@given(
    delay=st.integers(0, 6),
    sales=st.lists(
        st.tuples(st.integers(0, 2), st.floats(0.0, 1e6), st.integers(0, 20)), max_size=12
    ),
    gaps=st.lists(st.integers(0, 4), min_size=1, max_size=40),
)
def test_the_capital_path_is_settling_a_copy_block_by_block(
    delay: int, sales: list[tuple[int, float, int]], gaps: list[int]
) -> None:
    # Arrange: keepers with proceeds due at several blocks
    config = KeepersConfig(keepers=(KeeperSpec(capital=1e5, count=3),), sale_delay_blocks=delay)
    keepers = Keepers(config)
    for keeper, proceeds, block in sorted(sales, key=lambda s: s[2]):
        keepers.receive([keeper], [proceeds], block=block)
    before = [a.copy() for a in (keepers.capital, keepers._due_block, keepers._due_amount)]
    blocks = np.cumsum(np.array(gaps, dtype=np.int64)) + 18
    # Act
    starts, capitals = keepers.capital_path(blocks)
    # Assert: nothing settled on the keepers themselves; a copy settled block by block
    for now, was in zip(
        (keepers.capital, keepers._due_block, keepers._due_amount), before, strict=True
    ):
        np.testing.assert_array_equal(now, was)
    twin = copy.deepcopy(keepers)
    assert starts[0] == 0
    assert np.all(np.diff(starts) > 0)
    for j, block in enumerate(blocks.tolist()):
        twin.settle(block)
        row = capitals[int(np.searchsorted(starts, j, side="right")) - 1]
        np.testing.assert_array_equal(row, twin.capital)
