"""GMX v2 vectors from gmx-io/gmx-synthetics' own tests (README.md names each source).

The hardhat fixture's market configuration (``config/markets.ts``, ``hardhatBaseMarketConfig``;
``config/general.ts``): minCollateralFactor(ForLiquidation) 1%, MIN_COLLATERAL_USD 1, no
position fees, no price impact factors, maxPositionImpactFactorForLiquidations 1%,
MAX_PNL_FACTOR_FOR_TRADERS 50%, MAX_PNL_FACTOR_FOR_ADL 45%, MIN_PNL_FACTOR_AFTER_ADL 40%.
"""

from __future__ import annotations

import numpy as np
import pytest

from deleverage.protocols.gmx import GmxConfig, GmxPopulation, GmxVenue
from deleverage.protocols.gmx import math as gm
from deleverage.venues.protocol import PriceInputs

HARDHAT = {
    "min_collateral_usd": 1.0,
    "min_collateral_factor": 0.01,
    "max_impact_factor_for_liquidations": 0.01,
    "position_fee_factor_positive": 0.0,
    "position_fee_factor_negative": 0.0,
    "liquidation_fee_factor": 0.0,
    "max_pnl_factor_for_traders": 0.5,
    "max_pnl_factor_for_adl": 0.45,
    "min_pnl_factor_after_adl": 0.4,
    "execution_fee_usd": 0.0,
}
S = 10**9


def _one(
    *, is_long: bool, collateral: float, in_long_token: bool, size_usd: float, entry: float
) -> GmxPopulation:
    return GmxPopulation(
        is_long=np.array([is_long]),
        collateral_amount=np.array([collateral]),
        collateral_is_long_token=np.array([in_long_token]),
        size_usd=np.array([size_usd]),
        size_tokens=np.array([size_usd / entry]),
    )


def _eth_market(pop: GmxPopulation, long_pool: float = 1_000.0, **extra: float) -> GmxVenue:
    cfg = GmxConfig(
        asset="ETH", long_pool_tokens=long_pool, short_pool_usd=1.0, **{**HARDHAT, **extra}
    )
    return GmxVenue(cfg, pop)


def _sol_market(pop: GmxPopulation) -> GmxVenue:
    # Guardian.Liquidation's solUsdMarket: index SOL, long token WETH, short token USDC;
    # 10,000,000 WETH and 50,000,000,000 USDC deposited.
    cfg = GmxConfig(
        asset="SOL",
        long_token_asset="WETH",
        long_pool_tokens=10_000_000.0,
        short_pool_usd=10_000_000.0 * 5_000,
        **HARDHAT,
    )
    return GmxVenue(cfg, pop)


def _step(venue: GmxVenue, ts: int, **prices: float) -> int:
    return venue.step({a: PriceInputs(p) for a, p in prices.items()}, ts_ns=ts * S).liquidations


# LiquidationOrder.ts "executeLiquidation"
def test_a_long_with_eth_collateral_survives_4200_and_is_liquidated_at_4000() -> None:
    # Arrange: 10 WETH collateral, 200,000 USD long at 5,000 (40 ETH)
    venue = _eth_market(
        _one(is_long=True, collateral=10.0, in_long_token=True, size_usd=200_000.0, entry=5_000.0)
    )
    # Act / Assert: PositionShouldNotBeLiquidated at 4,200, liquidated at 4,000
    assert _step(venue, 1, ETH=4_200.0) == 0
    assert _step(venue, 2, ETH=4_000.0) == 1
    assert venue.open_positions().empty


# Guardian.Liquidation "Cannot liquidate a user who has sufficient collateral"
def test_a_4x_long_with_usdc_collateral_is_not_liquidatable_at_entry() -> None:
    venue = _eth_market(
        _one(is_long=True, collateral=50_000.0, in_long_token=False, size_usd=200_000, entry=5e3)
    )
    assert _step(venue, 1, ETH=5_000.0) == 0


def _sol_long() -> GmxPopulation:
    # 1 WNT collateral, 450,000 USD long SOL at 15 (30,000 SOL): 90x
    return _one(is_long=True, collateral=1.0, in_long_token=True, size_usd=450_000.0, entry=15.0)


def _sol_short() -> GmxPopulation:
    return _one(is_long=False, collateral=1.0, in_long_token=True, size_usd=450_000.0, entry=15.0)


# Guardian.Liquidation "User can get liquidated if they invalidate the minCollateralUsdForLeverage"
def test_collateral_below_one_percent_of_size_liquidates_and_returns_the_collateral() -> None:
    venue = _sol_market(_sol_long())
    pool_before = venue.pool_amounts()[0]
    assert _step(venue, 1, SOL=15.0, WETH=5_000.0) == 0  # 5,000 >= 4,500
    assert _step(venue, 2, SOL=15.0, WETH=2_500.0) == 1  # 2,500 < 4,500
    # the user receives their 1 WNT back: the pool's WETH is unchanged
    assert venue.pool_amounts()[0] - pool_before == pytest.approx(0.0, abs=1e-9)


def test_a_one_cent_fall_liquidates_and_returns_0_88_weth() -> None:
    # second "minCollateralUsdForLeverage" test: SOL 14.99, WETH 2,500 -> user gets 0.88 ETH
    venue = _sol_market(_sol_long())
    pool_before = venue.pool_amounts()[0]
    assert _step(venue, 1, SOL=15.0, WETH=5_000.0) == 0
    assert _step(venue, 2, SOL=14.99, WETH=2_500.0) == 1
    assert 1.0 - (venue.pool_amounts()[0] - pool_before) == pytest.approx(0.88, rel=1e-8)


# "Liquidate short position because collateral depreciates"
def test_a_short_is_liquidated_when_its_weth_collateral_falls_below_4500() -> None:
    venue = _sol_market(_sol_short())
    pool_before = venue.pool_amounts()[0]
    assert _step(venue, 1, SOL=15.0, WETH=4_501.0) == 0
    assert _step(venue, 2, SOL=15.0, WETH=4_499.0) == 1
    assert 1.0 - (venue.pool_amounts()[0] - pool_before) == pytest.approx(1.0, rel=1e-8)


# "Liquidate short position because index token price increases"
def test_a_short_survives_15_016_and_is_liquidated_at_15_017_with_0_898_back() -> None:
    venue = _sol_market(_sol_short())
    pool_before = venue.pool_amounts()[0]
    assert _step(venue, 1, SOL=15.0, WETH=5_000.0) == 0
    assert _step(venue, 2, SOL=15.016, WETH=5_000.0) == 0
    assert _step(venue, 3, SOL=15.017, WETH=5_000.0) == 1
    assert 1.0 - (venue.pool_amounts()[0] - pool_before) == pytest.approx(0.898, rel=1e-8)


# "Liquidate short position because index token price increases a lot"
def test_a_tenfold_rise_leaves_the_short_nothing_and_the_pool_the_loss() -> None:
    venue = _sol_market(_sol_short())
    assert _step(venue, 1, SOL=150.0, WETH=5_000.0) == 1
    # the user receives 0 ETH; the pool gets the 1 WETH; the loss beyond collateral
    # (30,000 x 135 - 5,000 = 4,045,000 USD) is the LP pool's
    assert venue.pool_amounts()[0] == pytest.approx(10_000_001.0, rel=1e-15)
    assert venue.solvency().backstop_loss == pytest.approx(30_000 * 135.0 - 5_000.0, rel=1e-12)


# "Liquidate someone with more losses than collateral"
def test_a_long_losing_more_than_its_collateral_gives_the_pool_all_of_it() -> None:
    venue = _sol_market(_sol_long())
    pool_before = venue.pool_amounts()[0]
    assert _step(venue, 1, SOL=1.0, WETH=5_000.0) == 1
    assert venue.pool_amounts()[0] - pool_before == pytest.approx(1.0, rel=1e-9)


# "Liquidate someone in profit & they receive their native tokens"
def test_a_long_in_profit_is_liquidated_and_the_pool_pays_0_075_weth_of_pnl() -> None:
    venue = _sol_market(_sol_long())
    pool_before = venue.pool_amounts()[0]
    # $4,000 collateral + $300 profit = $4,300 < $4,500: liquidated
    assert _step(venue, 1, SOL=15.01, WETH=4_000.0) == 1
    assert pool_before - venue.pool_amounts()[0] == pytest.approx(0.075, rel=1e-7)
    assert venue.solvency().backstop_loss == 0.0


# AdlOrder.ts "updateAdlState"
def test_adl_is_enabled_above_ten_percent_and_stops_at_the_two_percent_target() -> None:
    # 1,000 WETH deposited; 2,000,000 USD long at 5,000 with 100 WETH collateral; the ETH price
    # doubles: PnL 2,000,000 over a 10,000,000 pool = 20% > MAX_PNL_FACTOR_FOR_ADL 10%
    pop = _one(
        is_long=True, collateral=100.0, in_long_token=True, size_usd=2_000_000.0, entry=5_000.0
    )
    venue = _eth_market(
        pop,
        max_pnl_factor_for_traders=0.5,
        max_pnl_factor_for_adl=0.10,
        min_pnl_factor_after_adl=0.02,
    )
    assert venue.pnl_to_pool_factor(is_long=True, price=10_000.0) == pytest.approx(0.2)
    step = venue.step({"ETH": PriceInputs(10_000.0)}, ts_ns=S)
    after = venue.pnl_to_pool_factor(is_long=True, price=10_000.0)
    # GMX's executeAdl: the factor must fall (InvalidAdl) and not below the target
    # (PnlOvercorrected): keepers close until it is at 2%
    assert after == pytest.approx(0.02, rel=1e-9)
    assert step.forced_flow["ETH"] < 0.0
    assert step.liquidations == 0


def test_adl_is_not_required_at_the_entry_price() -> None:
    # AdlHandler.executeAdl reverts AdlNotRequired when the factor is not above the maximum
    pop = _one(
        is_long=True, collateral=100.0, in_long_token=True, size_usd=2_000_000.0, entry=5_000.0
    )
    venue = _eth_market(pop, max_pnl_factor_for_adl=0.10, min_pnl_factor_after_adl=0.02)
    venue.step({"ETH": PriceInputs(5_000.0)}, ts_ns=S)
    assert len(venue.journal()) == 0
    assert venue.pnl_to_pool_factor(is_long=True, price=5_000.0) == 0.0


def test_a_100k_adl_order_gives_the_factor_of_the_repository_test() -> None:
    # executeAdl(sizeDeltaUsd 100,000) in AdlOrder.ts: 5% of the position is closed, its
    # 100,000 of PnL is paid in WETH at 10,000 (10 WETH): (1,900,000) / (9,900,000)
    pnl_after = 2_000_000.0 * 0.95
    pool_after = (1_000.0 - 100_000.0 / 10_000.0) * 10_000.0
    assert gm.pnl_to_pool_factor(pnl_after, pool_after) == pytest.approx(1_900_000 / 9_900_000)
    # ... which is what the closed form realizes when the target is that factor
    y = gm.adl_profit_to_target(
        side_pnl=2_000_000.0,
        pool_usd=10_000_000.0,
        target_factor=1_900_000 / 9_900_000,
        paid_per_unit=1.0,
    )
    assert y == pytest.approx(100_000.0, rel=1e-12)


# test/exchange/PositionPriceImpact/PairMarket.ts "price impact pair market": positive
# factor 5e-9, negative 1e-8, exponent 2; each order's pendingPriceImpactUsd
@pytest.mark.parametrize(
    ("long_oi", "short_oi", "next_long", "next_short", "impact"),
    [
        (0.0, 0.0, 200_000.0, 0.0, -400.0),  # first 200k long: crosses from balance
        (200_000.0, 0.0, 400_000.0, 0.0, -1_200.0),  # second 200k long: worsens
        (400_000.0, 0.0, 400_000.0, 10_000.0, 39.5),  # 10k short: improves
        (400_000.0, 0.0, 400_000.0, 500_000.0, 700.0),  # 500k short: crosses over
    ],
    ids=["first-long", "second-long", "small-short", "crossing-short"],
)
def test_price_impact_matches_the_pair_market_test(
    long_oi: float, short_oi: float, next_long: float, next_short: float, impact: float
) -> None:
    got = gm.price_impact_usd(
        long_open_interest_usd=long_oi,
        short_open_interest_usd=short_oi,
        next_long_usd=np.array([next_long]),
        next_short_usd=np.array([next_short]),
        positive_factor=5e-9,
        negative_factor=1e-8,
        exponent=2.0,
    )
    assert float(got[0]) == pytest.approx(impact, rel=1e-12)
