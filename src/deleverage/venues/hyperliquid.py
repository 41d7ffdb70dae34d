"""Hyperliquid: perpetuals on its own L1, liquidation on the book, the HLP liquidator vault as
backstop, ADL ranked by price ratio times leverage.

The numbers and their sources are in :data:`VENUE` (``VENUE.info``); what the engine does not
reproduce yet is listed in ``VENUE.info.spec_gaps``.
"""

from __future__ import annotations

from deleverage.spec import MarketSpec
from deleverage.venues.base import PresetInfo, VenuePreset, spec, tiers

__all__ = ["VENUE"]

# --------------------------------------------------------------------------------- Hyperliquid


def _hyperliquid(
    symbol: str, bounds: tuple[float, float], leverages: tuple[float, float]
) -> MarketSpec:
    # Maintenance rate = half the initial rate at the tier's max leverage (margin-tiers page).
    rows = [(bound, lev, 0.5 / lev) for bound, lev in zip(bounds, leverages, strict=True)]
    return spec(
        symbol=symbol,
        tick_size=1.0,
        lot_size=1e-5 if symbol == "BTC" else 1e-4,
        tiers=tiers(rows),
        maker_fee_rate=0.00015,
        taker_fee_rate=0.00045,
        liquidation_fee_rate=0.0,
        liquidation={
            "kind": "fixed_fraction",
            "execution": "market",
            "fraction": 0.2,
            "fraction_min_notional": 100_000.0,
            "cooldown_s": 30.0,
            "cooldown_mode": "full_position",  # orders for the entire position meanwhile
            "backstop_equity_fraction": 2.0 / 3.0,
        },
        adl={"ranking": "hyperliquid", "price": "mark"},
    )


VENUE = VenuePreset(
    info=PresetInfo(
        venue="hyperliquid",
        symbols=("BTC", "ETH"),
        sources=(
            "https://hyperliquid.gitbook.io/hyperliquid-docs/trading/margin-tiers",
            "https://hyperliquid.gitbook.io/hyperliquid-docs/trading/liquidations",
            "https://hyperliquid.gitbook.io/hyperliquid-docs/trading/auto-deleveraging",
            "https://hyperliquid.gitbook.io/hyperliquid-docs/trading/fees",
            "https://hypernode-docs.polynode.dev/research/fees",
            "https://tginsight.xyz/channel/hyperliquid_announcements/post/307",
            "https://docs.tings.xyz/core-mechanics/liquidations",
            "https://tglist.com/ru/channel/vIeNxn (mirror of the March 2025 post-JELLY "
            "announcement: the liquidator vault gets a tight cap; ADL past a loss threshold)",
        ),
        insurance=(
            "No per-market insurance fund: losses beyond the book go to the liquidator vault "
            "(part of HLP, shared by all markets), then to ADL. Fees go to HLP and the "
            "assistance fund."
        ),
        backstop=(
            "HLP liquidator vault: when account equity falls below 2/3 of maintenance margin "
            "without a successful book liquidation, the cross positions and cross margin (or "
            "the isolated position and its margin) are transferred to the vault; the "
            "maintenance margin is not returned (backstop_equity_fraction = 2/3). The vault "
            "has capital (deposit into Exchange.backstop_account; scenarios "
            "insurance.backstop) and takes nothing over without it; past a loss limit "
            "(RiskEngine.set_backstop(max_loss=...), default its whole capital; scenarios "
            "insurance.backstop_max_loss) it takes no more positions and its own positions "
            "are deleveraged at the mark (Hyperliquid after JELLY, March 2025)."
        ),
        execution=(
            "Market orders to the book; no clearance fee. Positions above 100,000 USDC are "
            "liquidated 20% at a time; after a partial liquidation a 30 s cooldown applies, "
            "during which liquidation orders are for the whole position."
        ),
        adl=(
            "When an account or isolated position value turns negative, opposing users are "
            "ranked by unrealized PnL and leverage and closed at the previous oracle (mark) "
            "price: ranking 'hyperliquid', price 'mark'. Also when the liquidator vault's "
            "loss passes its threshold (the vault's positions are deleveraged at the mark)."
        ),
        notes=(
            "BTC margin tiers (mainnet): 0-150M USDC 40x, >150M 20x; ETH: 0-100M 25x, >100M "
            "15x (margin-tiers page). Maintenance rate = half the initial rate at max "
            "leverage: BTC 1.25% / 2.5%, ETH 2% / 3.33%.",
            "Fees: base tier (14-day volume <= 5M) taker 0.045%, maker 0.015% (positive: the "
            "maker pays; some third-party tables print -0.015%, the official page lists "
            "rebates only for the maker-share programme).",
            "The ADL page says positions are closed 'at the previous oracle price'; later "
            "HIP-3 copies say 'previous mark price'; mapped to AdlPolicy.price = 'mark'.",
            "Tick and lot: prices have at most 5 significant figures (tick 1 USD at BTC "
            "~100k, assumed fixed); lot from szDecimals 5 (BTC) and 4 (ETH), not verified "
            "against a stored source.",
            "The backstop vault unwinds nothing on its own (Hyperliquid's vault trades its "
            "positions out over time); it holds them until its loss limit deleverages them.",
        ),
        spec_gaps=(
            "MarketSpec.insurance_pool: str | None = 'hlp' for hyperliquid (no market fund; "
            "the backstop vault is shared by all markets).",
            "The liquidator vault's loss threshold and capital share of HLP are not "
            "published: max_loss and the vault capital are user parameters, not preset "
            "values.",
        ),
    ),
    aliases={"BTC": "BTC", "ETH": "ETH", "BTC-PERP": "BTC", "ETH-PERP": "ETH"},
    builders={
        "BTC": lambda: _hyperliquid("BTC", (0.0, 150e6), (40.0, 20.0)),
        "ETH": lambda: _hyperliquid("ETH", (0.0, 100e6), (25.0, 15.0)),
    },
)
