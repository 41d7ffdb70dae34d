"""The oracle-pool venues' journals are engine journals: typed events, a Parquet round trip,
and a row for every liquidation, flag, window and ADL close."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from deleverage.engine.events import AdlRound, Journal, Liquidation
from deleverage.protocols.gmx import GmxConfig, GmxPopulation, GmxVenue
from deleverage.protocols.oracle_pool import PoolAction
from deleverage.protocols.synthetix import (
    SynthetixConfig,
    SynthetixMarketConfig,
    SynthetixPopulation,
    SynthetixVenue,
)
from deleverage.venues.protocol import PriceInputs

S = 10**9


def _round_trip(journal: Journal, path: Path) -> Journal:
    again = Journal.read_parquet(journal.write_parquet(path))
    assert again.to_arrow().equals(journal.to_arrow())
    return again


def test_a_gmx_journal_holds_liquidations_and_adl_closes(tmp_path: Path) -> None:
    # a 20x long liquidated by a fall, then a long-heavy pool deleveraged by a rise
    pop = GmxPopulation(
        is_long=np.array([True, True]),
        collateral_amount=np.array([1_000.0, 400_000.0]),
        collateral_is_long_token=np.array([False, False]),
        size_usd=np.array([20_000.0, 2_000_000.0]),
        size_tokens=np.array([10.0, 1_000.0]),
    )
    config = GmxConfig(
        asset="ETH", long_pool_tokens=1_000.0, max_pnl_factor_for_adl=0.1,
        min_pnl_factor_after_adl=0.05,
    )  # fmt: skip
    venue = GmxVenue(config, pop)
    assert venue.step({"ETH": PriceInputs(1_900.0)}, ts_ns=S).liquidations == 1
    venue.step({"ETH": PriceInputs(3_000.0)}, ts_ns=2 * S)
    again = _round_trip(venue.journal(), tmp_path / "gmx.parquet")
    liquidations = [e for e in again.events(Liquidation) if isinstance(e, Liquidation)]
    adl = [e for e in again.events(AdlRound) if isinstance(e, AdlRound)]
    assert [e.policy for e in liquidations] == [int(PoolAction.GMX_LIQUIDATION)]
    assert liquidations[0].size == -10.0
    assert len(adl) == 1
    assert adl[0].size < 0.0  # part of the long closed


def test_a_synthetix_journal_holds_the_flag_the_windows_and_their_rewards(tmp_path: Path) -> None:
    market = SynthetixMarketConfig(
        asset="OP", skew_scale=1_000.0, maker_fee=0.007, taker_fee=0.003,
        max_seconds_in_liquidation_window=10.0, initial_margin_ratio=3.0,
        minimum_initial_margin_ratio=0.0, flag_reward_ratio=0.05,
    )  # fmt: skip
    config = SynthetixConfig(markets=(market,), min_keeper_reward_usd=5.0)
    pop = SynthetixPopulation(np.array([1_500.0]), np.array([[150.0]]), np.array([[10.75]]))
    venue = SynthetixVenue(config, pop)
    venue.step({"OP": PriceInputs(1.0)}, ts_ns=100 * S)  # flag + 100 OP
    venue.step({"OP": PriceInputs(1.0)}, ts_ns=111 * S)  # the other 50 OP, a window reward
    again = _round_trip(venue.journal(), tmp_path / "synthetix.parquet")
    rows = [e for e in again.events(Liquidation) if isinstance(e, Liquidation)]
    flag = [e for e in rows if e.policy == int(PoolAction.SYNTHETIX_FLAG)]
    closes = [
        e for e in rows if e.policy == int(PoolAction.SYNTHETIX_LIQUIDATION) and e.market == 0
    ]
    rewards = [
        e for e in rows if e.policy == int(PoolAction.SYNTHETIX_LIQUIDATION) and e.market < 0
    ]
    assert len(flag) == 1
    assert [e.size for e in closes] == [-100.0, -50.0]
    assert len(rewards) == 1
    assert rewards[0].penalty == 5.0  # keeperReward(0, 0, 0) = minKeeperRewardUsd
