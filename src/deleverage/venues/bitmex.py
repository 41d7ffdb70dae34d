"""BitMEX: risk-limit steps that raise both margins, full liquidation, the insurance fund,
ADL ranked by PnL percentage times effective leverage.

The numbers and their sources are in :data:`VENUE` (``VENUE.info``); what the engine does not
reproduce yet is listed in ``VENUE.info.spec_gaps``.
"""

from __future__ import annotations

from deleverage.spec import MarketSpec
from deleverage.venues.base import PresetInfo, VenuePreset, spec, tiers

__all__ = ["VENUE"]

# ------------------------------------------------------------------------------------- BitMEX

_BM_BASE_IM = 0.01
_BM_BASE_MM = 0.004
_BM_BASE_RISK_LIMIT_XBT = 200.0
_BM_RISK_STEP_XBT = 150.0
_BM_STEPS = 10  # number of risk-limit steps modelled (assumed)


def _bitmex() -> MarketSpec:
    # Each risk-limit step raises both margins by the base maintenance margin.
    rows = []
    for k in range(_BM_STEPS):
        floor_xbt = 0.0 if k == 0 else _BM_BASE_RISK_LIMIT_XBT + (k - 1) * _BM_RISK_STEP_XBT
        im = _BM_BASE_IM + k * _BM_BASE_MM
        rows.append((floor_xbt, 1.0 / im, _BM_BASE_MM * (k + 1)))
    return spec(
        symbol="XBTUSD",
        # Inverse: 1 USD contracts margined and settled in XBT (Inverse Perpetuals Guide);
        # the risk-limit floors are XBT values at the mark.
        contract_type="inverse",
        contract_value=1.0,
        settlement_asset="XBT",
        tick_size=0.5,
        lot_size=1.0,
        tiers=tiers(rows),
        # A risk-limit step's rates apply to the whole position (Risk Limits Examples: 230 XBT
        # at the 1% step needs 2.3 XBT), and both margins hold the fees: "IM = value /
        # leverage + 2 x taker fee x value" (Margin Terms Definitions), MM = base + taker
        # (BitMEX staff).
        tier_margin="whole_position",
        taker_fee_in_margin="initial_and_maintenance",
        maker_fee_rate=-0.00025,
        taker_fee_rate=0.00075,
        # "The trader always loses the maintenance margin": everything between the fill and
        # the bankruptcy price goes to the insurance fund (Liquidation Examples,
        # https://testnet.bitmex.com/app/liquidationExamples: BP 99.00, fill 99.25 -> +0.25
        # to the fund). With kind "full" the engine's capped penalty is exactly that (test
        # tests/conformance/bitmex/test_bitmex_examples.py::
        # test_fill_better_than_bankruptcy_goes_to_the_insurance_fund).
        liquidation_fee_rate=1.0,
        liquidation={"kind": "full", "execution": "market"},
        adl={"ranking": "pnl_leverage", "price": "bankruptcy"},
    )


VENUE = VenuePreset(
    info=PresetInfo(
        venue="bitmex",
        symbols=("XBTUSD",),
        sources=(
            "https://www.bitmex.com/app/riskLimitsExamples",
            "https://cryptomak.co.uk/?p=156497",
            "https://blog.bitmex.com/site_announcement/reduction-in-base-maintenance-margin-xbt-and-eth-series-17-april-2020-2/",
            "https://cryptomak.co.uk/?p=263944",
            "https://www.bitmex.com/app/autoDeleveraging",
            "https://support.bitmex.com/hc/en-gb/articles/18589621443357-What-is-Auto-Deleveraging",
            "https://www.bitmex.com/app/fees",
            "https://www.bitmex.com/app/inversePerpetualsGuide",
            "https://bitmex.com/app/inverseFuturesGuide",
            "https://support.bitmex.com/hc/en-gb/articles/6131434043421-Margin-Terms-Definitions",
            "https://testnet.bitmex.com/app/liquidationExamples",
        ),
        insurance=(
            "Insurance fund used per contract: 'if it is depleted for a given contract, ADL "
            "will occur' (ADL page)."
        ),
        backstop=(
            "The liquidation engine takes over the position at the bankruptcy price; the "
            "maintenance margin left goes to the insurance fund."
        ),
        execution=(
            "Full liquidation: the engine takes the position over and works it in the book "
            "(kind 'full'); a fill better than bankruptcy credits the insurance fund."
        ),
        adl=(
            "Ranking = PNL% x effective leverage (PNL% / leverage when losing), closed at the "
            "bankruptcy price of the liquidated order: ranking 'pnl_leverage', price "
            "'bankruptcy'."
        ),
        notes=(
            "XBTUSD is inverse: 1 USD contracts, margin, PnL, fees and the insurance fund in "
            "XBT (contract_type 'inverse', contract_value 1, settlement_asset 'XBT'); sizes "
            "are contracts and the risk-limit floors XBT values at the mark. An Exchange "
            "holding it settles in XBT only.",
            "Base initial margin 1.00%, base maintenance margin 0.40% (XBTUSD from 5 May "
            "2020; 0.45% from 17 April 2020, 0.50% before). A 0.35% figure was not found in "
            "stored sources.",
            "Risk Limits Examples pages print base maintenance 0.50% (older revisions); the "
            "preset keeps 0.40% (5 May 2020 announcement).",
            "Base risk limit 200 XBT; risk step 150 XBT (from 31 August 2021, 100 before). At "
            "each step both margins rise by the base maintenance margin (risk limits "
            "examples page). 10 steps modelled (assumed; up to 1,550 XBT).",
            "Liquidation penalty: BitMEX takes the position with its remaining maintenance "
            "margin; a fill better than bankruptcy credits the insurance fund (Liquidation "
            "Examples: BP 99.00, fill 99.25 -> +0.25): liquidation_fee_rate = 1 (the capped "
            "penalty keeps all equity down to bankruptcy).",
            "Fees: XBT perpetual maker -0.025% (rebate), taker 0.075% (fees page, dated).",
            "Risk-limit steps charge their rates on the whole position (tier_margin "
            "'whole_position': 230 XBT at the 1% step needs 2.3 XBT), and the margins hold "
            "the fees (taker_fee_in_margin 'initial_and_maintenance': IM = value / leverage + "
            "2 x taker x value, Margin Terms Definitions; MM = base MM + taker x value, "
            "BitMEX staff comment).",
            "Tick 0.5 USD and lot 1 contract assumed (BitMEX has since raised the XBTUSD lot "
            "to 100 contracts).",
        ),
        spec_gaps=(
            "rules.inverse.round_price_conservatively is not applied by the engine: "
            "liquidation and bankruptcy prices are exact, not rounded to the 0.5 tick.",
            "MarketSpec.insurance_pool: str | None = 'XBTUSD' for bitmex (a fund per "
            "contract): the spec cannot name a pool; Exchange(insurance='per_market') gives "
            "each listed market its own fund, which is BitMEX's rule.",
            "Funding in the maintenance margin when it is due (BitMEX staff: MM = base + taker "
            "+ funding rate when paid): not modelled.",
        ),
    ),
    aliases={"BTC": "XBTUSD", "XBT": "XBTUSD", "XBTUSD": "XBTUSD", "BTCUSD": "XBTUSD"},
    builders={"XBTUSD": _bitmex},
)
