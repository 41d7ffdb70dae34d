"""OKX: position tiers, partial liquidation down the tiers, the liquidation penalty to the
insurance fund, ADL by ranking.

The numbers and their sources are in :data:`VENUE` (``VENUE.info``); what the engine does not
reproduce yet is listed in ``VENUE.info.spec_gaps``.
"""

from __future__ import annotations

from deleverage.spec import MarketSpec
from deleverage.venues.base import PresetInfo, VenuePreset, spec, tiers

__all__ = ["VENUE"]

# ---------------------------------------------------------------------------------------- OKX

_OKX_TIERS = 10  # tiers modelled (assumed)
_OKX_TIER_FLOORS = (0.0, 5_000_000.0, 10_000_000.0)  # assumed BTC-scale widths, USDT
_OKX_STEP = 20_000_000.0  # assumed width of tiers 4 and up, USDT


def _okx() -> MarketSpec:
    # Large-cap USDT-perpetual pattern: (MMR, max leverage) 0.50% / 75x, 0.75% / 50x,
    # 1.00% / 40x, then +0.5% MMR and +0.5% IMR per tier (leverage = 1 / IMR).
    rows = [
        (_OKX_TIER_FLOORS[0], 75.0, 0.005),
        (_OKX_TIER_FLOORS[1], 50.0, 0.0075),
        (_OKX_TIER_FLOORS[2], 40.0, 0.01),
    ]
    for k in range(1, _OKX_TIERS - 2):
        floor = _OKX_TIER_FLOORS[2] + k * _OKX_STEP
        rows.append((floor, 1.0 / (0.025 + 0.005 * k), 0.01 + 0.005 * k))
    return spec(
        symbol="BTC-USDT-SWAP",
        tick_size=0.1,
        lot_size=1e-4,
        tiers=tiers(rows),
        maker_fee_rate=0.0002,
        taker_fee_rate=0.0005,
        liquidation_fee_rate=0.0005,
        # "Margin ratio = equity / (maintenance margin + liquidation fee)": the taker-rate
        # liquidation fee is part of the maintenance requirement (tiered-rules page).
        taker_fee_in_margin="maintenance",
        # "Positions ... will be reduced to the maximum of tier 1" in one go (Forced Partial
        # or Full Liquidation, https://supdljgzdhc.okx.com/hc/en-us/articles/
        # 360020411711-V-Forced-Partial-or-Full-Liquidation: 15,000 -> close 13,000; test
        # tests/conformance/okx/test_okx_examples.py). Newer third-party copies say "two
        # tiers per round" (unverified).
        liquidation={"kind": "tier_down", "execution": "market", "tier_down_target": "first"},
        # ADL when the fund falls 30% from its 8-hour peak (third-party renditions of OKX's
        # rule; see the notes).
        # Isolated positions by PnL% x leverage, cross accounts by margin ratio, merged by
        # per-mode percentile (third-party renditions; no worked example: see spec_gaps).
        adl={"ranking": "okx", "price": "mark", "trigger_fund_drawdown": 0.30},
    )


VENUE = VenuePreset(
    info=PresetInfo(
        venue="okx",
        symbols=("BTC-USDT-SWAP",),
        sources=(
            "https://www.okx.pro/ru-ae/help/okx-to-adjust-position-tiers-of-perpetual-swaps-2023-05-15",
            "https://supdljgzdhc.okx.com/hc/en-us/articles/360020411711-V-Forced-Partial-or-Full-Liquidation",
            "https://www.okx.com/help/iv-introduction-to-auto-deleveraging-adl",
            "https://www.chouyi.net/en-us/help/iv-introduction-to-auto-deleveraging-adl",
            "https://www.ouchyi.rocks/es-la/help/what-is-the-mechanism-for-the-strong-level-in-advance-what-is-the-use",
            "https://btcc.site/en-US/questions/detail/1832958509797478400",
            "https://wuyelx.com/8757.html",
        ),
        insurance=(
            "Insurance funds are separate per business line and, within perpetual swaps, "
            "per underlying and margin currency (USDT-margined BTC swaps have their own)."
        ),
        backstop="None besides the insurance fund; ADL when it is depleted or falls fast.",
        execution=(
            "Forced partial liquidation for positions above the low tiers: reduce by IOC "
            "orders until the position is back in tier 1 (old help page), then full "
            "liquidation; mapped to 'tier_down' with tier_down_target 'first'."
        ),
        adl=(
            "Ranked by leverage PnL% = PnL% x effective leverage, normally closed at the mark "
            "price (at the bankruptcy price when the fund is nearly depleted); triggered when "
            "the fund drops 30% from its 8-hour peak or is depleted: ranking 'pnl_leverage', "
            "price 'mark'."
        ),
        notes=(
            "BTC-USDT-SWAP position tiers: not found in public docs; assumed the OKX "
            "large-cap USDT-perpetual pattern of the 2023-05-15 adjustment (ADAUSDT 'after' "
            "column: 0.50% MMR / 75x, 0.75% / 50x, 1.00% / 40x, then +0.5% MMR and +0.5% IMR "
            "per tier) with assumed BTC-scale bounds 0, 5M, 10M, then +20M USDT per tier; 10 "
            "tiers.",
            "Docs: partial liquidation reduces the position to tier 1 in one go "
            "(tier_down_target 'first'); newer third-party copies describe two tiers per "
            "round (unverified).",
            "Liquidation fee: charged at the taker fee rate, min(taker fee, 12.5% of notional) "
            "(secondary source); liquidation_fee_rate 0.05% assumed.",
            "Fees: regular tier swap maker 0.02%, taker 0.05% (secondary source).",
            "Tick 0.1 and lot 0.0001 BTC (0.01 contracts of 0.01 BTC) assumed.",
            "Liquidation at margin ratio 100%, equity = maintenance margin plus the "
            "liquidation fee (tiered maintenance margin ratio rules): taker_fee_in_margin "
            "'maintenance' (maintenance rate MMR + taker fee, as freqtrade's OKX test "
            "okx-isolated-liq-freqtrade).",
        ),
        spec_gaps=(
            "AdlPolicy.price fallback: 'bankruptcy' when the fund is nearly depleted (okx).",
            "MarketSpec.insurance_pool: str | None = 'USDT:BTC' for okx.",
            "AdlPolicy.ranking 'okx' (margin ratio for cross accounts, PnL% x leverage for "
            "isolated, merged by per-mode percentile) follows third-party renditions of OKX's "
            "rule; OKX publishes no worked example and how the two modes merge is assumed.",
        ),
    ),
    aliases={"BTC": "BTC-USDT-SWAP", "BTC-USDT-SWAP": "BTC-USDT-SWAP", "BTCUSDT": "BTC-USDT-SWAP"},
    builders={"BTC-USDT-SWAP": _okx},
)
