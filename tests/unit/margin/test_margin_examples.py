"""Worked examples from the venues' public documentation.

Each test quotes its source URL and the document's numbers. Where a document gives the formula
and the tier table but no worked liquidation price, the example is constructed from them (the
comment says so) and checked against a brute-force oracle: bisection on the mark price of
``equity(P) - maintenance(P)`` built from the basic functions.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest

from deleverage.rules.margin import (
    account_liquidation_prices,
    bankruptcy_price,
    hyperliquid_tiers,
    liquidation_price_cross,
    liquidation_price_dydx,
    liquidation_price_hyperliquid,
    liquidation_price_isolated,
    maintenance_margin,
    notional,
    tier_index,
    uniform_liquidation_factors,
    unrealized_pnl,
)
from deleverage.spec import MarginTier, TierArrays

CENT = 0.005


def _tiers(rows: list[tuple[float, float, float]]) -> TierArrays:
    return TierArrays.from_tiers(
        [MarginTier(notional_floor=f, max_leverage=lev, maintenance_rate=r) for f, lev, r in rows]
    )


def _one_tier(rate: float) -> TierArrays:
    return _tiers([(0.0, 1.0 / (2.0 * rate), rate)])


# Binance BTCUSDT 125x leverage and margin tiers, announcement "Updates to Leverage and Margin
# Tiers of Binance Futures Contracts (2021-03-18)",
# https://www.binance.com/en/support/announcement/86cf9aa472574b8cb2e05bb751c2a9a6
# Position (USDT notional) / max leverage / maintenance margin rate:
#   0-50,000 125x 0.40%; 50,000-250,000 100x 0.50%; 250,000-1,000,000 50x 1.00%;
#   1,000,000-10,000,000 20x 2.50%; 10,000,000-20,000,000 10x 5.00%; 20,000,000-50,000,000 5x 10%;
#   50,000,000-100,000,000 4x 12.5%; 100,000,000-200,000,000 3x 15%; 200,000,000-300,000,000 2x
#   25%; 300,000,000-500,000,000 1x 50%.
BINANCE_BTCUSDT = _tiers(
    [
        (0.0, 125, 0.004),
        (50_000.0, 100, 0.005),
        (250_000.0, 50, 0.01),
        (1_000_000.0, 20, 0.025),
        (10_000_000.0, 10, 0.05),
        (20_000_000.0, 5, 0.10),
        (50_000_000.0, 4, 0.125),
        (100_000_000.0, 3, 0.15),
        (200_000_000.0, 2, 0.25),
        (300_000_000.0, 1, 0.50),
    ]
)

# Hyperliquid "Margin tiers", https://hyperliquid.gitbook.io/hyperliquid-docs/trading/margin-tiers
# BTC testnet table: 0-10k 40x; 10-50k 25x; 50-100k 10x; 100k-300k 5x; >300k 3x.
# BTC mainnet table: 0-150M 40x; >150M 20x.
HYPERLIQUID_BTC_TESTNET = hyperliquid_tiers(
    [0.0, 10_000.0, 50_000.0, 100_000.0, 300_000.0], [40, 25, 10, 5, 3]
)
HYPERLIQUID_BTC_MAINNET = hyperliquid_tiers([0.0, 150_000_000.0], [40, 20])


def _bisect(gap: Callable[[float], float], low: float, high: float) -> float:
    """Root of a function that changes sign once on [low, high], by plain bisection."""
    g_low = gap(low)
    assert g_low * gap(high) <= 0, "the oracle's bracket does not hold the root"
    for _ in range(200):
        mid = 0.5 * (low + high)
        g_mid = gap(mid)
        if (g_mid < 0) == (g_low < 0):
            low, g_low = mid, g_mid
        else:
            high = mid
    return 0.5 * (low + high)


def _oracle_liquidation_price(
    size: float, entry: float, margin: float, tiers: TierArrays, *, other_maintenance: float = 0.0
) -> float:
    def gap(price: float) -> float:
        equity = margin + float(unrealized_pnl(size, entry, price))
        required = other_maintenance + float(maintenance_margin(notional(size, price), tiers))
        return equity - required

    return _bisect(gap, 1e-9, 10.0 * entry)


# --- Binance USD-M --------------------------------------------------------------------------------


def test_binance_maintenance_amounts_match_the_published_brackets() -> None:
    # Source: "How to Calculate Liquidation Price of USDⓈ-M Futures Contracts",
    # https://www.binance.com/en/support/faq/b3c689c1f50a44cabb3a84e663b81d93
    # "if the position size of a USDT-margined BTCUSDT contract is 264,000 USDT, then the
    # maintenance margin rate would be 1%"; "if the position size ... is 500,000 USDT, then the
    # maintenance amount would be 1,300 USDT"; "Maintenance Amount on Level 3
    # = 250,000 * (1% - 0.5%) + 50 USDT = 1,300 USDT".
    # Act
    cum = BINANCE_BTCUSDT.cum
    mm_500k = maintenance_margin(500_000.0, BINANCE_BTCUSDT)
    # Assert
    assert cum[1] == pytest.approx(50.0)
    assert cum[2] == pytest.approx(1_300.0)
    assert BINANCE_BTCUSDT.mmr[tier_index(264_000.0, BINANCE_BTCUSDT)] == 0.01
    assert float(mm_500k) == pytest.approx(500_000 * 0.01 - 1_300)
    # The later maintenance amounts follow the same recursion (floor x rate step + previous).
    expected = [0, 50, 1_300, 16_300, 266_300, 1_266_300, 2_516_300, 5_016_300, 25_016_300]
    np.testing.assert_allclose(cum[: len(expected)], expected)


def test_binance_isolated_long_liquidation_price_uses_the_tier_maintenance_amount() -> None:
    # Constructed from the documented formula (no worked number in the FAQ):
    #   LP = (WB - TMM1 + UPNL1 + cumB - Side*Position*EP) / (Position*MMR - Side*Position)
    # https://www.binance.com/en/support/faq/b3c689c1f50a44cabb3a84e663b81d93, isolated mode:
    # TMM1 = UPNL1 = 0. Long 10 BTC at 50,000 (notional 500,000, level 3: MMR 1%, cum 1,300) with
    # 20x: isolatedWalletBalance 25,000.
    #   LP = (25,000 + 1,300 - 500,000) / (10 x 0.01 - 10) = 473,700 / 9.9 = 47,848.48
    # Notional at LP, 478,484.85, is still in level 3, so the level is self-consistent.
    # Act
    lp = float(liquidation_price_isolated(10.0, 50_000.0, 25_000.0, BINANCE_BTCUSDT))
    # Assert
    assert abs(lp - 47_848.48) < CENT
    assert lp == pytest.approx(_oracle_liquidation_price(10.0, 50_000.0, 25_000.0, BINANCE_BTCUSDT))


def test_binance_short_crossing_into_the_next_tier_uses_the_tier_at_the_liquidation_price() -> None:
    # Binance's note on the same FAQ page: "If your position (calculated at the liquidation
    # price) and the current position (calculated at the opening price) are of different levels,
    # then you must substitute ... the maintenance margin rate and the maintenance margin amount
    # of the position level, to recalculate the liquidation price."
    # Constructed: short 6.2 BTC at 40,000 (notional 248,000: level 2, MMR 0.5%, cum 50) with
    # isolated balance 12,400 (20x).
    #   level 2: (12,400 + 50 + 248,000) / (6.2 x 0.005 + 6.2) = 41,799.07 -> notional 259,154,
    #            which is in level 3: inconsistent;
    #   level 3: (12,400 + 1,300 + 248,000) / (6.2 x 0.01 + 6.2) = 41,791.76 -> notional 259,109,
    #            level 3: consistent.
    # Act
    at_liquidation = float(liquidation_price_isolated(-6.2, 40_000.0, 12_400.0, BINANCE_BTCUSDT))
    at_entry = float(
        liquidation_price_isolated(-6.2, 40_000.0, 12_400.0, BINANCE_BTCUSDT, tier_basis="at_entry")
    )
    # Assert
    assert abs(at_liquidation - 41_791.76) < CENT
    assert abs(at_entry - 41_799.07) < CENT
    oracle = _oracle_liquidation_price(-6.2, 40_000.0, 12_400.0, BINANCE_BTCUSDT)
    assert at_liquidation == pytest.approx(oracle, rel=1e-12)


def test_binance_cross_liquidation_price_folds_other_positions_into_the_margin() -> None:
    # Constructed from the cross formula (same FAQ): WB 30,000, the account's other positions
    # carry TMM1 = 2,000 maintenance and UPNL1 = -3,000 unrealized PnL; long 10 BTC at 50,000.
    #   LP = (30,000 - 2,000 - 3,000 + 1,300 - 500,000) / (10 x 0.01 - 10) = 47,848.48
    # (the isolated example above, since WB - TMM1 + UPNL1 = 25,000).
    # Act
    lp = float(
        liquidation_price_cross(
            10.0,
            50_000.0,
            wallet_balance=30_000.0,
            tiers=BINANCE_BTCUSDT,
            other_maintenance=2_000.0,
            other_unrealized_pnl=-3_000.0,
        )
    )
    # Assert
    assert abs(lp - 47_848.48) < CENT
    oracle = _oracle_liquidation_price(
        10.0, 50_000.0, 30_000.0 - 3_000.0, BINANCE_BTCUSDT, other_maintenance=2_000.0
    )
    assert lp == pytest.approx(oracle, rel=1e-12)


# --- Bybit ----------------------------------------------------------------------------------------


def test_bybit_isolated_long_liquidation_price_matches_the_help_center_example() -> None:
    # Source: Bybit Help Center, "Liquidation Price (USDT Contract)", stored copy at
    # https://testnet.bybit.com/en-US/help-center/s/article/Liquidation-Price-USDT-Contract
    # "Example 1 (Long): Trader A placed a long entry of 1 BTC at 20,000 USDT with 50x leverage.
    # Assuming the Maintenance Margin Rate (MMR) is 0.5% and no extra margin is added:
    # Initial Margin = 1 x 20,000 USDT / 50 = 400 USDT; Maintenance Margin = 1 x 20,000 x 0.5% - 0
    # = 100 USDT; LP = 20,000 USDT - (400 - 100) = 19,700 USDT". Bybit's maintenance margin is on
    # the entry position value ("Position Value = Contract Size x Entry Price").
    # Act
    lp = liquidation_price_isolated(1.0, 20_000.0, 400.0, _one_tier(0.005), mm_basis="entry")
    # Assert
    assert float(lp) == pytest.approx(19_700.0, abs=CENT)


def test_bybit_isolated_short_with_extra_margin_moves_the_liquidation_price_up() -> None:
    # Constructed from the same page's short formula: "Liquidation Price (Short) = Entry Price +
    # [(Initial Margin - Maintenance Margin)/Position Size] + (Extra Margin Added/Position Size)".
    # Short 1 BTC at 20,000 with 50x (IM 400, MM 100) and 3,000 USDT extra margin:
    #   LP = 20,000 + (400 - 100) / 1 + 3,000 / 1 = 23,300.
    # Act
    lp = liquidation_price_isolated(-1.0, 20_000.0, 3_400.0, _one_tier(0.005), mm_basis="entry")
    # Assert
    assert float(lp) == pytest.approx(23_300.0, abs=CENT)


@pytest.mark.parametrize(
    ("size", "entry", "leverage", "expected"),
    [(1.0, 10_000.0, 50.0, 9_850.0), (-1.0, 8_000.0, 40.0, 8_160.0)],
    ids=["long-50x", "short-40x"],
)
def test_bybit_isolated_liquidation_price_matches_the_earlier_usdt_examples(
    size: float, entry: float, leverage: float, expected: float
) -> None:
    # Source: Bybit's earlier "How to calculate the liquidation price of USDT perpetual contract"
    # article, as quoted at https://cryptoarmy.io/faq/how-to-calculate-the-liquidation-price-of-usdt-perpetual-contract-on-bybit/
    # "Liquidation price = entry price x (1 - initial margin rate + maintenance margin rate)":
    # long 1 BTC at 10,000 with 50x -> 10,000 x (1 - 2% + 0.5%) = 9,850 USDT; short 1 BTC at
    # 8,000 with 40x -> 8,000 x (1 + 2.5% - 0.5%) = 8,160 USDT (MMR 0.5%).
    # Arrange
    margin = abs(size) * entry / leverage
    # Act
    lp = liquidation_price_isolated(size, entry, margin, _one_tier(0.005), mm_basis="entry")
    # Assert
    assert float(lp) == pytest.approx(expected, abs=CENT)


def test_bybit_bankruptcy_price_without_fee_loses_exactly_the_initial_margin() -> None:
    # Source: Bybit Help Center, "Bankruptcy Price (USDT Contract)" (seen in the help-center
    # search at https://www.bybitx.global/fil-PH/help-center/search-result?page=46&pageSize=10&query=trade):
    # "For Buy/Long: Bankruptcy Price = Entry Price x (1 - Initial Margin Rate) ... traders hold a
    # 1BTC Long position with an entry price at 10,000USDT, leverage is 50x. Bankruptcy Price =
    # 10,000 x (1 - 2%) = 9,800 USDT"; for Sell/Short Entry Price x (1 + IMR) = 10,200.
    # Act
    prices = bankruptcy_price([1.0, -1.0], 10_000.0, 200.0)
    # Assert
    np.testing.assert_allclose(prices, [9_800.0, 10_200.0], atol=CENT)


@pytest.mark.parametrize(
    ("entry", "leverage", "fee_rate", "fee_to_close", "expected"),
    [(8_000.0, 50.0, 0.00075, 5.88, 7_840.0), (50_000.0, 10.0, 0.0006, 27.0, 45_000.0)],
    ids=["8000-50x", "50000-10x"],
)
def test_bybit_bankruptcy_price_with_fee_to_close_reserved_in_the_margin(
    entry: float, leverage: float, fee_rate: float, fee_to_close: float, expected: float
) -> None:
    # Source: Bybit Help Center, "Order Cost (USDT Contract)",
    # https://help.bybit.com/hc/en-us/articles/900000169703
    # "Trader place a long entry of 1BTC at USD8000 with 50x leverage. Initial Margin
    # = (1BTC*8000) / 50 = 160USDT ... Bankruptcy Price = 8000 x (1 - 0.02) = USD7840; Fee to close
    # = 1BTC x 7840 x 0.075% = 5.88USDT"; and (later revision of the page) "Trader A opens a long
    # position of 1 BTC at 50,000 USDT with 10x leverage ... Initial Margin = 5,000 USDT ... Fee to
    # Close Position = 1 x 50,000 x (10 - 1) / 10 x 0.06% = 27 USDT".
    # The order cost reserves the fee to close, so the position margin is IM + fee to close, and
    # the fee-inclusive bankruptcy price is where that margin, after the closing fee, is zero.
    # Arrange
    initial_margin = entry / leverage
    margin = initial_margin + fee_to_close
    # Act
    bp = float(bankruptcy_price(1.0, entry, margin, close_fee_rate=fee_rate))
    # Assert
    assert bp == pytest.approx(expected, abs=CENT)
    assert 1.0 * bp * fee_rate == pytest.approx(fee_to_close, abs=CENT)
    assert margin + (bp - entry) - bp * fee_rate == pytest.approx(0.0, abs=1e-8)


# --- dYdX v4 --------------------------------------------------------------------------------------


def test_dydx_isolated_liquidation_price_matches_the_docs_example() -> None:
    # Source: dYdX v4 docs, "Liquidations" > "Isolated Liquidation Price",
    # https://docs.dydx.exchange/concepts/trading/liquidations (repository
    # dydxprotocol/v4-documentation, docs/pages/concepts/trading/liquidations.mdx):
    # "p' = (e - s * p) / (|s| * MMF - s) ... Suppose a trader deposits $1,000 (e = 1000). The
    # trader shorts 3 ETH contracts (s = -3) at $3,000 per contract, with a maintenance margin
    # fraction of 5% (MMF = 0.05). ... p' = (1000 + 9000) / (0.15 + 3) = 10000 / 3.15 ≈ 3174.60
    # ... the trader's remaining equity would be ... $476.2 (3 * 3174.6 * 0.05 ≈ 476.2)".
    # Act
    p = float(liquidation_price_dydx(-3.0, 3_000.0, equity=1_000.0, maintenance_fraction=0.05))
    # Assert
    assert abs(p - 3_174.60) < CENT
    remaining_equity = 1_000.0 + (-3.0) * (p - 3_000.0)
    assert remaining_equity == pytest.approx(476.2, abs=0.05)
    assert remaining_equity == pytest.approx(3 * p * 0.05, rel=1e-12)
    assert p == pytest.approx(_oracle_liquidation_price(-3.0, 3_000.0, 1_000.0, _one_tier(0.05)))


def test_dydx_cross_liquidation_price_matches_the_docs_example() -> None:
    # Same page, "Cross Liquidation Price": "p' = (e - s * p - MMR_o) / (|s| * MMF - s) ...
    # Suppose a trader deposits $1,000 (e = 1000). The trader shorts 1.5 ETH (s = -1.5) at $3,000
    # and buys 1,000 STRK contracts at $1.75 (MMF = 10% for STRK). MMR_o = 1000 * 1.75 * 0.10
    # = 175. p' = (1000 - (-1.5 * 3000) - 175) / (1.5 * 0.05 + 1.5) ... ≈ 3380.95".
    # Act
    direct = float(
        liquidation_price_dydx(
            -1.5, 3_000.0, equity=1_000.0, maintenance_fraction=0.05, other_maintenance=175.0
        )
    )
    # The same account as arrays: USDC balance Q = e - sum(s p) = 1,000 + 4,500 - 1,750 = 3,750.
    per_position = account_liquidation_prices(
        [-1.5, 1_000.0], [3_000.0, 1.75], quote_balance=3_750.0, maintenance_fractions=[0.05, 0.10]
    )
    # Assert
    assert abs(direct - 3_380.95) < CENT
    assert float(per_position[0]) == pytest.approx(direct, rel=1e-12)


def test_dydx_cross_account_common_move_factor_matches_the_closed_form() -> None:
    # The docs' cross account (above) with both marks scaled by k: equity 3,750 - 2,750 k,
    # maintenance (4,500 x 5% + 1,750 x 10%) k = 400 k, so the account is safe for
    # k <= 3,750 / 3,150 = 25/21 (a 19.05% rise of every mark) and no fall liquidates it.
    # Act
    lower, upper = uniform_liquidation_factors(
        [-1.5, 1_000.0], [3_000.0, 1.75], quote_balance=3_750.0, maintenance_fractions=[0.05, 0.10]
    )
    # Assert
    assert float(lower) == 0.0
    assert float(upper) == pytest.approx(25.0 / 21.0, rel=1e-12)


def test_dydx_isolated_example_as_a_common_move_factor_gives_the_same_price() -> None:
    # One position: the factor is the liquidation price over the current price, 3174.60 / 3000.
    # Act
    lower, upper = uniform_liquidation_factors(
        [-3.0], [3_000.0], quote_balance=10_000.0, tiers=_one_tier(0.05)
    )
    # Assert
    assert float(lower) == 0.0
    assert float(upper) * 3_000.0 == pytest.approx(10_000.0 / 3.15, rel=1e-12)


# --- Hyperliquid ----------------------------------------------------------------------------------


def test_hyperliquid_tiered_maintenance_margin_uses_the_documented_deductions() -> None:
    # Source: https://hyperliquid.gitbook.io/hyperliquid-docs/trading/margin-tiers
    # "maintenance_margin = notional_position_value * maintenance_margin_rate
    # - maintenance_deduction"; "maintenance_margin_rate(tier = n) = (Initial Margin Rate at
    # Maximum leverage at tier n) / 2. For example, at 20x max leverage, maintenance_margin_rate
    # = 2.5%"; "maintenance_deduction(tier = 0) = 0; maintenance_deduction(tier = n) =
    # maintenance_deduction(tier = n - 1) + notional_position_lower_bound(tier = n) *
    # (maintenance_margin_rate(tier = n) - maintenance_margin_rate(tier = n - 1))".
    # The page gives no worked number; constructed from its BTC testnet table:
    #   rates 1.25%, 2%, 5%, 10%, 16.67%; deductions 0, 75, 1,575, 6,575, 26,575.
    # A 75,000 notional (tier 50-100k, 10x) needs 75,000 x 5% - 1,575 = 2,175, which is the sum
    # of each slice at its own rate: 10,000 x 1.25% + 40,000 x 2% + 25,000 x 5% = 2,175.
    # Act
    mm_75k = float(maintenance_margin(75_000.0, HYPERLIQUID_BTC_TESTNET))
    mm_200m = float(maintenance_margin(200_000_000.0, HYPERLIQUID_BTC_MAINNET))
    # Assert
    assert hyperliquid_tiers([0.0], [20]).mmr[0] == pytest.approx(0.025)
    np.testing.assert_allclose(
        HYPERLIQUID_BTC_TESTNET.mmr, [0.0125, 0.02, 0.05, 0.10, 1 / 6], rtol=1e-12
    )
    np.testing.assert_allclose(HYPERLIQUID_BTC_TESTNET.cum, [0, 75, 1_575, 6_575, 26_575])
    assert mm_75k == pytest.approx(10_000 * 0.0125 + 40_000 * 0.02 + 25_000 * 0.05)
    assert mm_75k == pytest.approx(2_175.0)
    # Mainnet BTC, 0-150M 40x and >150M 20x: deduction 150M x (2.5% - 1.25%) = 1,875,000, and
    # 200M notional needs 150M x 1.25% + 50M x 2.5% = 3,125,000.
    assert HYPERLIQUID_BTC_MAINNET.cum[1] == pytest.approx(1_875_000.0)
    assert mm_200m == pytest.approx(3_125_000.0)


@pytest.mark.parametrize(
    ("size", "expected"), [(1.0, 96_202.53), (-1.0, 103_703.70)], ids=["long", "short"]
)
def test_hyperliquid_isolated_liquidation_price_follows_the_documented_formula(
    size: float, expected: float
) -> None:
    # Source: https://hyperliquid.gitbook.io/hyperliquid-docs/trading/liquidations
    # "liq_price = price - side * margin_available / position_size / (1 - l * side)", side = 1
    # for long and -1 for short, l = 1 / MAINTENANCE_LEVERAGE, and for isolated positions
    # margin_available = isolated_margin - maintenance_margin_required.
    # Constructed (the page gives no numbers): 1 BTC at 100,000 with 20x on the mainnet table
    # (40x max: l = 1.25%), isolated margin 5,000, maintenance 1,250, margin_available 3,750:
    #   long:  100,000 - 3,750 / 1 / (1 - 0.0125) = 96,202.53
    #   short: 100,000 + 3,750 / 1 / (1 + 0.0125) = 103,703.70
    # Arrange
    side = math.copysign(1.0, size)
    by_hand = 100_000.0 - side * 3_750.0 / 1.0 / (1.0 - 0.0125 * side)
    # Act
    liq = float(
        liquidation_price_hyperliquid(
            size, 100_000.0, margin=5_000.0, tiers=HYPERLIQUID_BTC_MAINNET
        )
    )
    # Assert
    assert liq == pytest.approx(by_hand, rel=1e-12)
    assert abs(liq - expected) < CENT
    oracle = _oracle_liquidation_price(size, 100_000.0, 5_000.0, HYPERLIQUID_BTC_MAINNET)
    assert liq == pytest.approx(oracle, rel=1e-12)


def test_hyperliquid_liquidation_price_takes_the_tier_at_the_liquidation_price() -> None:
    # Same page: "For assets with margin tiers, maintenance leverage depends on the unique margin
    # tier corresponding to the liquidation price". Constructed on the BTC testnet table: short
    # 1 BTC at 45,000 (tier 10-50k) with isolated margin 9,000. At the liquidation price the
    # notional is in the 50-100k tier (l = 5%, deduction 1,575), so
    #   maintenance at 45,000 = 45,000 x 5% - 1,575 = 675, margin_available = 8,325,
    #   liq = 45,000 + 8,325 / 1 / (1 + 0.05) = 52,928.57 (notional 52,929: tier 50-100k).
    # Act
    liq = float(
        liquidation_price_hyperliquid(-1.0, 45_000.0, margin=9_000.0, tiers=HYPERLIQUID_BTC_TESTNET)
    )
    # Assert
    assert abs(liq - 52_928.57) < CENT
    assert liq == pytest.approx(
        _oracle_liquidation_price(-1.0, 45_000.0, 9_000.0, HYPERLIQUID_BTC_TESTNET), rel=1e-12
    )
    same = liquidation_price_isolated(-1.0, 45_000.0, 9_000.0, HYPERLIQUID_BTC_TESTNET)
    assert float(same) == pytest.approx(liq, rel=1e-12)


def test_hyperliquid_cross_liquidation_price_subtracts_the_other_maintenance() -> None:
    # Same page, cross positions: "margin_available = account_value - maintenance_margin_required".
    # Constructed: account value 12,000, other positions' maintenance 500, long 1 BTC at 100,000
    # (mainnet table, l = 1.25%): margin_available = 12,000 - 500 - 1,250 = 10,250,
    #   liq = 100,000 - 10,250 / (1 - 0.0125) = 89,620.25.
    # Act
    liq = float(
        liquidation_price_hyperliquid(
            1.0,
            100_000.0,
            margin=12_000.0,
            tiers=HYPERLIQUID_BTC_MAINNET,
            other_maintenance=500.0,
        )
    )
    # Assert
    assert abs(liq - 89_620.25) < CENT
