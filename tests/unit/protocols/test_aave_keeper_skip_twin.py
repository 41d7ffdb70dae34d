"""The Aave venue's keeper-pass skip bound (docs/formulas.md §D3) against the full pass: a twin
venue whose keepers never skip must do exactly the same, step by step, on random populations,
keepers, gas and price paths (oracle and market apart): the same steps, journal rows, solvency
lines, keeper state, missed opportunities and time under water."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from deleverage.protocols.aave import AaveConfig, AaveVenue, build_aave
from deleverage.protocols.chain import ChainConfig
from deleverage.protocols.keepers import Keepers, KeepersConfig, KeeperSpec
from deleverage.venues.protocol import PriceInputs

S = 10**9


class _NeverSkip(Keepers):
    """The reference: the keepers always run their full pass."""

    def none_would_act(self, **_: object) -> bool:
        return False


def _pair(seed: int, keepers: KeepersConfig, base_fee_gwei: float) -> tuple[AaveVenue, ...]:
    config = AaveConfig(
        keepers=keepers,
        chain=ChainConfig(initial_base_fee_gwei=base_fee_gwei),
        population={
            "accounts": 400,
            "min_health": 1.005,
            "health_scale": 0.15,
            "collateral_median": 3_000.0,
        },
    )
    fast = build_aave(config, prices={"ETH": 2_000.0}, seed=seed)
    full = build_aave(
        config, prices={"ETH": 2_000.0}, seed=seed, keepers=_NeverSkip(config.keepers)
    )
    return fast, full


_KEEPERS = st.builds(
    KeeperSpec,
    capital=st.sampled_from([5e3, 5e4, 1e7]),
    latency_blocks=st.integers(0, 3),
    gas_units=st.sampled_from([2e5, 5e5, 2e6]),
    min_profit=st.sampled_from([0.0, 20.0, 300.0]),
    count=st.integers(1, 2),
)


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    specs=st.lists(_KEEPERS, min_size=1, max_size=3),
    sale_delay=st.integers(0, 20),
    base_fee_gwei=st.sampled_from([5.0, 60.0, 400.0]),
    path=st.lists(
        st.tuples(st.floats(-0.05, 0.04), st.floats(0.97, 1.03), st.integers(1, 60)),
        min_size=2,
        max_size=30,
    ),
)
def test_the_skip_bound_does_what_the_full_keeper_pass_does(
    seed: int,
    specs: list[KeeperSpec],
    sale_delay: int,
    base_fee_gwei: float,
    path: list[tuple[float, float, int]],
) -> None:
    keepers = KeepersConfig(keepers=tuple(specs), sale_delay_blocks=sale_delay)
    fast, full = _pair(seed, keepers, base_fee_gwei)
    oracle, t_s = 2_000.0, 0
    for move, market, dt_s in path:
        oracle *= 1.0 + move
        t_s += dt_s
        prices = {"ETH": PriceInputs(oracle * market, oracle_price=oracle)}
        assert fast.step(prices, ts_ns=t_s * S) == full.step(prices, ts_ns=t_s * S)
        assert fast.missed_opportunities == full.missed_opportunities
        assert fast.liquidatable_account_seconds == full.liquidatable_account_seconds
        assert fast.keepers.snapshot() == full.keepers.snapshot()
    np.testing.assert_array_equal(fast.collateral, full.collateral)
    np.testing.assert_array_equal(fast.debt, full.debt)
    np.testing.assert_array_equal(fast.keepers.capital, full.keepers.capital)
    np.testing.assert_array_equal(fast.keepers.gas_paid, full.keepers.gas_paid)
    assert fast.chain.gas_price_gwei == full.chain.gas_price_gwei
    assert fast.journal().to_frame().equals(full.journal().to_frame())
