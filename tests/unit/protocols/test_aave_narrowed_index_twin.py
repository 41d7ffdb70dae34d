"""The Aave venue's narrowed health-factor index (docs/formulas.md §A6 applied twice) against
full passes: a venue that narrows at every chance and one that re-sorts every account on every
moving step must do exactly the same, step by step, through a crash and the drift after it,
with keepers that act or not and trader deposits and withdrawals between steps."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from deleverage.protocols.aave import AaveConfig, AaveVenue, build_aave
from deleverage.protocols.chain import ChainConfig
from deleverage.protocols.keepers import KeepersConfig, KeeperSpec
from deleverage.venues.protocol import PriceInputs

S = 10**9


def _pair(seed: int, capital: float, base_fee_gwei: float) -> tuple[AaveVenue, AaveVenue]:
    config = AaveConfig(
        keepers=KeepersConfig(
            keepers=(KeeperSpec(capital=capital, latency_blocks=1, gas_units=5e5),),
            sale_delay_blocks=5,
        ),
        chain=ChainConfig(initial_base_fee_gwei=base_fee_gwei),
        population={
            "accounts": 500,
            "min_health": 1.01,
            "health_scale": 0.15,
            "collateral_median": 4_000.0,
        },
    )
    narrow = build_aave(config, prices={"ETH": 2_000.0}, seed=seed)
    narrow._narrow_slack = -(10**9)  # narrow at every chance
    narrow._full_pass_limit = 10**6  # never re-sort everyone: narrow instead
    full = build_aave(config, prices={"ETH": 2_000.0}, seed=seed)
    full._full_pass_limit = -1
    return narrow, full


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    capital=st.sampled_from([3e3, 1e5, 1e8]),
    base_fee_gwei=st.sampled_from([2.0, 50.0, 300.0]),
    crash=st.floats(0.0, 0.1),
    drift=st.lists(
        st.tuples(
            st.floats(-0.004, 0.004),
            st.one_of(st.none(), st.tuples(st.integers(0, 499), st.floats(0.0, 3_000.0))),
        ),
        min_size=5,
        max_size=60,
    ),
)
def test_the_narrowed_index_finds_what_full_passes_find(
    seed: int,
    capital: float,
    base_fee_gwei: float,
    crash: float,
    drift: list[tuple[float, tuple[int, float] | None]],
) -> None:
    narrow, full = _pair(seed, capital, base_fee_gwei)
    price, t_s = 2_000.0, 0
    moves = [(-crash / 3, None)] * 3 + drift
    for move, cash in moves:
        price *= 1.0 + move
        t_s += 12
        prices = {"ETH": PriceInputs(price)}
        assert narrow.step(prices, ts_ns=t_s * S) == full.step(prices, ts_ns=t_s * S)
        assert narrow.liquidatable_account_seconds == full.liquidatable_account_seconds
        assert narrow.missed_opportunities == full.missed_opportunities
        if cash is not None:  # the trader channel: bring cash, or take some out
            pick, amount = cash
            holders = np.flatnonzero(full.collateral[:, 1] > 0.0)  # quote collateral
            account = int(holders[pick % holders.size]) if holders.size else pick
            for venue in (narrow, full):
                if amount > 1_500.0:
                    venue.repay_and_supply(account, amount - 1_500.0, ts_ns=t_s * S)
                else:
                    take = min(amount, venue.withdrawable_quote(account))
                    venue.withdraw_quote(account, take, ts_ns=t_s * S)
    np.testing.assert_array_equal(narrow.collateral, full.collateral)
    np.testing.assert_array_equal(narrow.debt, full.debt)
    np.testing.assert_array_equal(narrow.keepers.capital, full.keepers.capital)
    assert narrow.journal().to_frame().equals(full.journal().to_frame())
