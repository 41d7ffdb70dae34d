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

#: XBT -> USD conversion for XBTUSD risk limits (XBT-denominated on an inverse contract). The
#: spec has no inverse contracts yet, so the preset is a linear approximation at this price.
BITMEX_REFERENCE_PRICE = 100_000.0
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
        rows.append((floor_xbt * BITMEX_REFERENCE_PRICE, 1.0 / im, _BM_BASE_MM * (k + 1)))
    return spec(
        symbol="XBTUSD",
        tick_size=0.5,
        lot_size=1e-4,
        tiers=tiers(rows),
        maker_fee_rate=-0.00025,
        taker_fee_rate=0.00075,
        liquidation_fee_rate=_BM_BASE_MM,
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
            "XBTUSD is inverse (1 USD contracts, margined in XBT). The spec supports linear "
            "contracts only, so risk limits given in XBT are converted to USD at "
            f"BITMEX_REFERENCE_PRICE = {BITMEX_REFERENCE_PRICE:,.0f} USD/XBT (assumption).",
            "Base initial margin 1.00%, base maintenance margin 0.40% (XBTUSD from 5 May "
            "2020; 0.45% from 17 April 2020, 0.50% before). A 0.35% figure was not found in "
            "stored sources.",
            "Base risk limit 200 XBT; risk step 150 XBT (from 31 August 2021, 100 before). At "
            "each step both margins rise by the base maintenance margin (risk limits "
            "examples page). 10 steps modelled (assumed; up to 1,550 XBT).",
            "Liquidation penalty: BitMEX closes at the bankruptcy price and keeps the "
            "remaining maintenance margin; approximated by liquidation_fee_rate = base MMR "
            "0.40% (capped at the remaining equity by the engine).",
            "Fees: XBT perpetual maker -0.025% (rebate), taker 0.075% (fees page, dated).",
            "Tick 0.5 USD assumed; lot 0.0001 XBT is a stand-in for 1 USD contracts.",
        ),
        spec_gaps=(
            "MarketSpec.contract_type = 'inverse' (reserved, unsupported): bitmex XBTUSD "
            "risk limits are in XBT and PnL in XBT.",
            "LiquidationPolicy.penalty: Literal['fee_rate', 'remaining_margin'] = "
            "'remaining_margin' for bitmex and bybit (close at the bankruptcy price; "
            "everything better goes to the insurance fund).",
            "MarketSpec.insurance_pool: str | None = 'XBTUSD' for bitmex (per contract).",
        ),
    ),
    aliases={"BTC": "XBTUSD", "XBT": "XBTUSD", "XBTUSD": "XBTUSD", "BTCUSD": "XBTUSD"},
    builders={"XBTUSD": _bitmex},
)
