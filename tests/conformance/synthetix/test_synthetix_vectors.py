"""Synthetix perps v3 vectors from Synthetixio/synthetix-v3's own tests (README.md names each).

Each test builds the repository test's markets and accounts with the parameters its
``bootstrapMarkets`` call sets; a parameter the test leaves unset is 0 (the contracts'
storage default), e.g. the keeper reward guards of ``Liquidation.margin.test.ts``.
"""

from __future__ import annotations

import numpy as np
import pytest

from deleverage.protocols.synthetix import (
    SynthetixConfig,
    SynthetixMarketConfig,
    SynthetixPopulation,
    SynthetixVenue,
)
from deleverage.protocols.synthetix import math as sm
from deleverage.venues.protocol import PriceInputs

S = 10**9
NO_GUARDS = {
    "min_keeper_reward_usd": 0.0,
    "min_keeper_profit_ratio": 0.0,
    "max_keeper_reward_usd": 0.0,
    "max_keeper_scaling_ratio": 0.0,
}

# Liquidation.margin.test.ts: five markets, one account with 20,000 snxUSD
MARGIN_MARKETS = (
    # asset, price, skewScale, initialMarginFraction, minimumInitialMarginRatio, size
    ("BTC", 30_000.0, 100.0, 2.0, 0.01, -1.0),
    ("ETH", 2_000.0, 1_000.0, 2.0, 0.01, 20.0),
    ("LINK", 5.0, 100_000.0, 2.0, 0.01, 2_000.0),
    ("ARB", 2.0, 100_000.0, 1.5, 0.035, 5_000.0),
    ("OP", 2.0, 100_000.0, 1.5, 0.035, 5_000.0),
)


def _margin_venue() -> SynthetixVenue:
    markets = tuple(
        SynthetixMarketConfig(
            asset=asset,
            skew_scale=scale,
            maker_fee=0.0,
            taker_fee=0.0,
            initial_margin_ratio=imf,
            minimum_initial_margin_ratio=min_imr,
            maintenance_margin_scalar=0.5,
            flag_reward_ratio=0.05,
            max_liquidation_limit_accumulation_multiplier=1.0,
            max_seconds_in_liquidation_window=10.0,
        )
        for asset, _, scale, imf, min_imr, _ in MARGIN_MARKETS
    )
    config = SynthetixConfig(markets=markets, **NO_GUARDS)
    # each position opened alone in its market: the fill price moves the skew from 0
    entries = [
        sm.fill_price(skew=0.0, size_delta=size, price=price, skew_scale=scale)
        for _, price, scale, _, _, size in MARGIN_MARKETS
    ]
    pop = SynthetixPopulation(
        collateral_usd=np.array([20_000.0]),
        size=np.array([[m[5] for m in MARGIN_MARKETS]]),
        entry_price=np.array([entries]),
    )
    return SynthetixVenue(config, pop)


def _prices(*values: float) -> dict[str, float]:
    return {m[0]: v for m, v in zip(MARGIN_MARKETS, values, strict=True)}


@pytest.mark.parametrize(
    ("asset", "pnl"),
    [("BTC", -150.0), ("ETH", -400.0), ("LINK", -100.0), ("ARB", -250.0), ("OP", -250.0)],
)
def test_the_fill_premium_gives_each_new_position_its_opening_pnl(asset: str, pnl: float) -> None:
    # "account check after initial positions open"
    margins = _margin_venue().account_margins(0, _prices(30_000.0, 2_000.0, 5.0, 2.0, 2.0))
    assert margins[f"pnl_{asset}"] == pytest.approx(pnl, rel=1e-12)


def test_available_margin_after_opening_is_18850_and_not_eligible() -> None:
    venue = _margin_venue()
    margins = venue.account_margins(0, _prices(30_000.0, 2_000.0, 5.0, 2.0, 2.0))
    assert margins["available"] == pytest.approx(18_850.0, rel=1e-12)
    assert margins["eligible"] == 0.0


def test_after_the_first_price_change_pnls_and_margin_match_and_nothing_is_liquidated() -> None:
    # "prices changes": btc 28,000, eth 1,900, link 4.6, arb 1.9, op 1.8
    venue = _margin_venue()
    prices = _prices(28_000.0, 1_900.0, 4.6, 1.9, 1.8)
    margins = venue.account_margins(0, prices)
    expected = {"BTC": 1_850.0, "ETH": -2_400.0, "LINK": -900.0, "ARB": -750.0, "OP": -1_250.0}
    for asset, pnl in expected.items():
        assert margins[f"pnl_{asset}"] == pytest.approx(pnl, rel=1e-9)
    assert margins["available"] == pytest.approx(16_550.0, rel=1e-12)
    step = venue.step({a: PriceInputs(p) for a, p in prices.items()}, ts_ns=S)
    assert step.liquidations == 0  # NotEligibleForLiquidation
    assert not venue.is_flagged(0)


def test_available_margin_reaches_zero_at_the_second_price_change() -> None:
    # "price change - available margin 0": btc 31,000, eth 1,775, link 3, arb 1, op 1.13
    margins = _margin_venue().account_margins(0, _prices(31_000.0, 1_775.0, 3.0, 1.0, 1.13))
    expected = {"BTC": -1_150.0, "ETH": -4_900.0, "LINK": -4_100.0, "ARB": -5_250.0, "OP": -4_600.0}
    for asset, pnl in expected.items():
        assert margins[f"pnl_{asset}"] == pytest.approx(pnl, rel=1e-9)
    assert margins["available"] == pytest.approx(0.0, abs=1e-7)


def test_with_250_of_available_margin_the_account_is_eligible_and_flagged() -> None:
    # "price change - eligible for liquidation": btc 31,000, eth 1,820, link 3, arb 1, op 1
    venue = _margin_venue()
    prices = _prices(31_000.0, 1_820.0, 3.0, 1.0, 1.0)
    margins = venue.account_margins(0, prices)
    assert margins["pnl_ETH"] == pytest.approx(-4_000.0, rel=1e-9)
    assert margins["pnl_OP"] == pytest.approx(-5_250.0, rel=1e-9)
    assert margins["available"] == pytest.approx(250.0, rel=1e-9)
    assert margins["eligible"] == 1.0  # AccountLiquidatable
    step = venue.step({a: PriceInputs(p) for a, p in prices.items()}, ts_ns=S)
    assert step.liquidations == 1
    assert venue.is_flagged(0)


# Liquidation.maxLiquidationAmount.test.ts
def _op_window_venue() -> SynthetixVenue:
    market = SynthetixMarketConfig(
        asset="OP",
        skew_scale=1_000.0,
        maker_fee=0.007,
        taker_fee=0.003,
        initial_margin_ratio=3.0,
        minimum_initial_margin_ratio=0.0,
        maintenance_margin_scalar=0.5,
        flag_reward_ratio=0.05,
        max_liquidation_limit_accumulation_multiplier=1.0,
        max_seconds_in_liquidation_window=10.0,
        minimum_position_margin=0.0,
    )
    config = SynthetixConfig(
        markets=(market,),
        min_keeper_reward_usd=5.0,
        min_keeper_profit_ratio=0.0,
        max_keeper_reward_usd=1_000.0,
        max_keeper_scaling_ratio=0.0,
    )
    first = sm.fill_price(skew=0.0, size_delta=150.0, price=10.0, skew_scale=1_000.0)
    second = sm.fill_price(skew=150.0, size_delta=150.0, price=10.0, skew_scale=1_000.0)
    pop = SynthetixPopulation(
        collateral_usd=np.array([1_500.0, 1_600.0]),
        size=np.array([[150.0], [150.0]]),
        entry_price=np.array([[first], [second]]),
    )
    return SynthetixVenue(config, pop)


def test_the_window_allows_100_op() -> None:
    # "(maker + taker) * skewScale * secondsInWindow * multiplier" == 100
    market = _op_window_venue().config.markets[0]
    assert market.max_liquidation_in_window == pytest.approx(100.0, rel=1e-12)


def test_liquidation_proceeds_100_op_per_10_second_window() -> None:
    venue = _op_window_venue()
    t0 = 1_000

    def at(dt: int) -> None:
        venue.step({"OP": PriceInputs(1.0)}, ts_ns=(t0 + dt) * S)

    at(0)  # "liquidated only 100 OP"
    assert venue.positions(0)["OP"] == pytest.approx(50.0)
    paid = venue.pool_flows()["keeper_rewards_paid"]
    at(0)  # "calling liquidate again": "liquidated nothing", no keeper reward paid
    assert venue.positions(0)["OP"] == pytest.approx(50.0)
    assert venue.pool_flows()["keeper_rewards_paid"] == paid
    at(6)  # "after 6 seconds": nothing
    assert venue.positions(0)["OP"] == pytest.approx(50.0)
    at(11)  # "after 5 more seconds": the rest; the second trader gets the other 50
    assert venue.positions(0)["OP"] == 0.0
    assert venue.positions(1)["OP"] == pytest.approx(100.0)  # "liquidated only 50 OP"
    at(23)  # "after 10 more seconds": the rest
    assert venue.positions(1)["OP"] == 0.0


# KeeperRewards.N-Positions.test.ts
def test_flagging_three_positions_pays_the_flag_rewards_plus_the_keeper_costs() -> None:
    wei = 1e-18
    markets = tuple(
        SynthetixMarketConfig(
            asset=asset,
            skew_scale=100_000.0,
            initial_margin_ratio=0.0,
            minimum_initial_margin_ratio=0.0,
            maintenance_margin_scalar=0.0,
            flag_reward_ratio=0.05,
            max_seconds_in_liquidation_window=0.0,  # not limited in that test
        )
        for asset in ("ETH", "OP", "LINK")
    )
    config = SynthetixConfig(
        markets=markets,
        min_keeper_reward_usd=1 * wei,
        min_keeper_profit_ratio=0.0,
        max_keeper_reward_usd=100.0,
        max_keeper_scaling_ratio=0.005,
        flag_cost_usd_per_feed=3_333 * wei,
        liquidate_cost_usd=5_555 * wei,
    )
    open_prices = (1_000.0, 10.0, 100.0)
    skew = 0.0
    entries = []
    for price in open_prices:
        entries.append(
            sm.fill_price(skew=skew, size_delta=100.0, price=price, skew_scale=100_000.0)
        )
    pop = SynthetixPopulation(
        collateral_usd=np.array([10_000.0]),
        size=np.array([[100.0, 100.0, 100.0]]),
        entry_price=np.array([entries]),
    )
    venue = SynthetixVenue(config, pop)
    step = venue.step(
        {"ETH": PriceInputs(1.0), "OP": PriceInputs(2.0), "LINK": PriceInputs(3.0)}, ts_ns=S
    )
    # AccountLiquidationAttempt(2, 5 + 10 + 15 + 3 x flagCost + liquidateCost, true)
    expected = 100 * 0.05 + 200 * 0.05 + 300 * 0.05 + (3 * 3_333 + 5_555) * wei
    assert venue.pool_flows()["keeper_rewards_paid"] == pytest.approx(expected, rel=1e-12)
    # PositionLiquidated(2, market, 100, 0) in each market
    assert venue.positions(0) == {"ETH": 0.0, "OP": 0.0, "LINK": 0.0}
    assert step.forced_flow == {"ETH": -100.0, "OP": -100.0, "LINK": -100.0}


def test_the_keeper_reward_is_capped_by_the_guards() -> None:
    # GlobalPerpsMarketConfiguration.keeperReward: min(max(minCap, rewards + cost), maxCap),
    # maxCap = min(available x maxKeeperScalingRatio, maxKeeperRewardUsd): with the
    # N-Positions guards and 10,000 of collateral the cap is 50
    guards = {
        "min_keeper_reward_usd": 1e-18,
        "min_keeper_profit_ratio": 0.0,
        "max_keeper_reward_usd": 100.0,
        "max_keeper_scaling_ratio": 0.005,
    }
    assert float(sm.keeper_reward(30.0, 0.0, 10_000.0, **guards)) == pytest.approx(30.0)
    assert float(sm.keeper_reward(80.0, 0.0, 10_000.0, **guards)) == pytest.approx(50.0)
    # a flagged account (available 0) is capped by maxKeeperRewardUsd alone
    assert float(sm.keeper_reward(180.0, 0.0, 0.0, **guards)) == pytest.approx(100.0)


# Position/Funding.test.ts: a 20 ETH long at 2,000, skewScale 10,000, maxFundingVelocity 3;
# another trader moves the skew after each interval. The test's table (accrued funding of
# the 20 ETH long, as a cost) and its own formula:
FUNDING_TABLE = (
    # days elapsed, skew change after the interval, accrued funding (cost) at its end
    (1.0, -60.0, 120.0),
    (1.0, 15.0, 120.0),
    (0.25, 37.0, 50.625),
    (2.0, -17.0, -291.375),
    (0.2, 155.0, -297.975),
    (0.1, -150.0, -292.875),
    (0.1, -15.0, -278.775),
    (0.03, -4.0, -274.626),
    (3.0, 19.0, -893.826),
)


def test_funding_accrues_as_in_the_repository_table() -> None:
    skew, rate, value = 20.0, 0.0, 0.0
    for days, change, accrued in FUNDING_TABLE:
        new_rate = sm.funding_rate(
            last_rate=rate, skew=skew, skew_scale=10_000.0, max_velocity=3.0, elapsed_days=days
        )
        value += sm.unrecorded_funding(
            last_rate=rate, rate=new_rate, elapsed_days=days, price=2_000.0
        )
        rate, skew = new_rate, skew + change
        # the position's accrued funding is size x the change of the value: a cost of `accrued`
        assert -20.0 * value == pytest.approx(accrued, abs=1e-9)


def test_a_day_of_funding_costs_the_20_eth_long_120() -> None:
    # the table's first row through the venue: skew 20 all day, the rate rises 0 -> 0.006
    market = SynthetixMarketConfig(
        asset="ETH", skew_scale=10_000.0, max_funding_velocity=3.0, maker_fee=0.0, taker_fee=0.0
    )
    config = SynthetixConfig(markets=(market,))
    pop = SynthetixPopulation(np.array([50_000.0]), np.array([[20.0]]), np.array([[2_000.0]]))
    venue = SynthetixVenue(config, pop)
    venue.step({"ETH": PriceInputs(2_000.0)}, ts_ns=1_000 * S)
    venue.step({"ETH": PriceInputs(2_000.0)}, ts_ns=(1_000 + 86_400) * S)
    assert venue.account_margins(0, {"ETH": 2_000.0})["pnl_ETH"] == pytest.approx(-120.0)
