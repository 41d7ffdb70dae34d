"""Binance USDⓈ-M futures: bracket tiers with a maintenance amount (cum), tier-down
liquidation, the clearance fee to the insurance fund, ADL ranked by leverage-PnL.

The numbers and their sources are in :data:`VENUE` (``VENUE.info``); what the engine does not
reproduce yet is listed in ``VENUE.info.spec_gaps``.
"""

from __future__ import annotations

from deleverage.spec import MarketSpec
from deleverage.venues.base import PresetInfo, VenuePreset, spec, tiers

__all__ = ["VENUE"]

# ------------------------------------------------------------------------------------ Binance

# BTCUSDT 125x brackets effective 2021-03-18 (USDT notional floor, max leverage, MMR).
_BN_BTCUSDT = (
    (0.0, 125.0, 0.004),
    (50_000.0, 100.0, 0.005),
    (250_000.0, 50.0, 0.01),
    (1_000_000.0, 20.0, 0.025),
    (10_000_000.0, 10.0, 0.05),
    (20_000_000.0, 5.0, 0.10),
    (50_000_000.0, 4.0, 0.125),
    (100_000_000.0, 3.0, 0.15),
    (200_000_000.0, 2.0, 0.25),
    (300_000_000.0, 1.0, 0.50),
)


# BTCUSD_PERP (COIN-M) brackets, BTC notional floor, max leverage, MMR. Floors and leverage:
# "Leverage and Margin in Coin-Margined Futures Contracts" (2021 revision); MMR per leverage
# level as in the USDⓈ-M table above (assumed). The computed maintenance amount of the 4x
# bracket, 11.605 BTC, is the one that reproduces Binance's calculator (33,599.4, test
# tests/conformance/binance/test_binance_examples.py::test_coinm_market_in_the_engine).
_BN_BTCUSD_PERP = (
    (0.0, 125.0, 0.004),
    (5.0, 100.0, 0.005),
    (10.0, 50.0, 0.01),
    (20.0, 20.0, 0.025),
    (50.0, 10.0, 0.05),
    (100.0, 5.0, 0.10),
    (200.0, 4.0, 0.125),
    (400.0, 3.0, 0.15),
    (1000.0, 2.0, 0.25),
)


def _binance_coinm() -> MarketSpec:
    return spec(
        symbol="BTCUSD_PERP",
        contract_type="inverse",
        contract_value=100.0,
        settlement_asset="BTC",
        tick_size=0.1,
        lot_size=1.0,
        tiers=tiers(_BN_BTCUSD_PERP),
        maker_fee_rate=0.0001,
        taker_fee_rate=0.0005,
        liquidation_fee_rate=0.005,
        liquidation={"kind": "tier_down", "execution": "market"},
        adl={"ranking": "binance", "price": "bankruptcy"},
    )


def _binance() -> MarketSpec:
    return spec(
        symbol="BTCUSDT",
        tick_size=0.1,
        lot_size=0.001,
        tiers=tiers(_BN_BTCUSDT),
        maker_fee_rate=0.0002,
        taker_fee_rate=0.0005,
        liquidation_fee_rate=0.003,
        liquidation={"kind": "tier_down", "execution": "market"},
        # The fund takes over bankrupt positions up to a net notional of 100% of its size;
        # beyond, counterparty liquidation (Insurance Fund page).
        adl={"ranking": "binance", "price": "bankruptcy", "fund_takeover_max_notional": 1.0},
    )


VENUE = VenuePreset(
    info=PresetInfo(
        venue="binance",
        symbols=("BTCUSDT", "BTCUSD_PERP"),
        sources=(
            "https://www.binance.com/tr/support/announcement/86cf9aa472574b8cb2e05bb751c2a9a6",
            "https://gist.github.com/highfestiva/b71e76f51eed84d56c1be8ebbcc286b5",
            "https://www.binance.com/en/support/faq/leverage-and-margin-of-usd%E2%93%A2-m-futures-360033162192",
            "https://binance.zendesk.com/hc/en-us/articles/360033525271-Liquidation",
            "https://www.binance.com/en/support/articles/360033525371-Insurance-Fund",
            "https://www.binance.com/zh-CN/support/announcement/360033525471",
            "https://babianfox.com/en/kb/binance-futures-fee/",
            "https://www.binance.com/en/support/faq/be2c7d9d95b04a7e8044ed02dd7dfe5c",
            "https://www.binance.com/es/support/faq/ceccfcfb4e3a45e3b48b0b1bb1a8ae46",
        ),
        insurance=(
            "BTCUSDT (and ETHUSDT) have their own insurance fund; all other USDT perpetuals "
            "share one (Insurance Fund FAQ). The fund takes over bankrupt positions up to a "
            "maximum net notional (by default 100% of the fund)."
        ),
        backstop=(
            "The insurance fund takes over bankrupt positions and unwinds them; beyond its "
            "notional limit, ADL ('counterparty liquidation')."
        ),
        execution=(
            "IOC liquidation orders to the book; the engine first tries one large IOC order "
            "that reduces the position without fully liquidating it (mapped to 'tier_down'); "
            "if still deficient, the position is closed at the bankruptcy price."
        ),
        adl=(
            "Ranked by 'LeveragePnl' = unrealized PnL / collateral x margin ratio, closed at "
            "the bankruptcy price of the liquidated order: ranking 'binance', price "
            "'bankruptcy'."
        ),
        notes=(
            "Brackets are the BTCUSDT 125x table effective 2021-03-18 (announcement); the "
            "maintenance amounts cum = 0, 50, 1,300, 16,300, 266,300, 1,266,300, 2,516,300, "
            "5,016,300, 25,016,300, 100,016,300 (gist of Binance's front-end constants, "
            "2021-03-26) equal the ones the spec computes. Binance has revised BTCUSDT "
            "brackets since; the live table is on the Leverage & Margin page.",
            "The announcement lists the 3x bracket's initial margin as 33.30%; the spec uses "
            "1 / 3.",
            "Liquidation fee 0.3% on BTCUSDT, 0.5% on other perpetuals (Liquidation FAQ, "
            "older text). Binance now publishes a per-bracket 'liquidation clearance fee'; "
            "those values were not found in stored sources, so one flat rate is used.",
            "Fees: regular tier USD-M maker 0.02%, taker 0.05%.",
            "Insurance fund takeover limit: 'The fund will not be allowed to exceed a "
            "predefined position notional on the market; by default, this is 100% the size "
            "of the insurance fund' (Insurance Fund page): a bankrupt position whose notional "
            "at the mark exceeds the fund goes to ADL (AdlPolicy.fund_takeover_max_notional "
            "= 1.0).",
            "Tick 0.1 and lot 0.001 assumed from the BTCUSDT exchangeInfo filters, not "
            "verified against a stored source.",
            "BTCUSD_PERP (COIN-M): 100 USD contracts margined and settled in BTC (COIN-M "
            "liquidation FAQ); brackets by BTC notional 5/10/20/50/100/200/400/1,000 at "
            "125/100/50/20/10/5/4/3/2x (COIN-M leverage FAQ, 2021 revision); the MMR of each "
            "leverage level is taken from the USDⓈ-M table (assumed), which gives the 4x "
            "bracket the maintenance amount 11.605 BTC that reproduces the calculator's "
            "33,599.4. Fees maker 0.01%, taker 0.05% and liquidation fee 0.5% assumed (not in "
            "stored sources); lot 1 contract, tick 0.1. It settles in BTC, so it is listed "
            "on its own Exchange (COIN-M is a separate wallet).",
        ),
        spec_gaps=(
            "MarginTier.liquidation_fee_rate: float | None = per-bracket clearance fee for "
            "binance (values not found; flat 0.003 used).",
            "MarketSpec.insurance_pool: str | None = 'BTCUSDT' for binance (own fund; other "
            "symbols 'shared').",
            "The fund's takeover is its payment of the deficit at the fill (the engine's fund "
            "holds no positions): Binance's fund holds the bankrupt position and offloads it "
            "'according to a preset algorithm' (not published), and its net notional limit "
            "(AdlPolicy.fund_takeover_max_notional = 1.0, 100% of the fund) is checked per "
            "position, not against positions it still holds.",
            "LiquidationPolicy.takeover_remaining_to_fund: float | None for binance ('a "
            "portion of the remaining collateral' goes to the fund on a bankruptcy takeover; "
            "portion not stated).",
        ),
    ),
    aliases={"BTC": "BTCUSDT", "BTCUSDT": "BTCUSDT", "BTCUSD_PERP": "BTCUSD_PERP"},
    builders={"BTCUSDT": _binance, "BTCUSD_PERP": _binance_coinm},
)
