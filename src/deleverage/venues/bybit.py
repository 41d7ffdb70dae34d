"""Bybit: risk-limit levels, liquidation by levels, remaining margin to the insurance fund, ADL
ranked by PnL and leverage.

The numbers and their sources are in :data:`VENUE` (``VENUE.info``); what the engine does not
reproduce yet is listed in ``VENUE.info.spec_gaps``.
"""

from __future__ import annotations

from deleverage.spec import MarketSpec
from deleverage.venues.base import PresetInfo, VenuePreset, spec, tiers

__all__ = ["DRAWDOWN_ALERT_FRACTION", "DRAWDOWN_WINDOW_S", "VENUE"]

#: ADL alert window, seconds: the insurance pool's PnL drawdown "in the last 8 hours"
#: (https://bybit-exchange.github.io/docs/v5/market/adl-alert).
DRAWDOWN_WINDOW_S = 8 * 3600

#: ADL alert level: ``insurancePnlRatio`` of -0.3, as a positive fraction of the window's
#: maximum balance (same page).
DRAWDOWN_ALERT_FRACTION = 0.3

# -------------------------------------------------------------------------------------- Bybit

_BY_LEVELS = 10  # risk-limit levels modelled (assumed)


def _bybit() -> MarketSpec:
    # Level k (1-based): max value 2M x k, MMR 0.5% x k, IMR 1% + 0.75% x (k - 1).
    rows = [
        ((k - 1) * 2_000_000.0, 1.0 / (0.01 + 0.0075 * (k - 1)), 0.005 * k)
        for k in range(1, _BY_LEVELS + 1)
    ]
    return spec(
        symbol="BTCUSDT",
        tick_size=0.1,
        lot_size=0.001,
        tiers=tiers(rows),
        maker_fee_rate=0.0002,
        taker_fee_rate=0.00055,
        liquidation_fee_rate=0.005,
        liquidation={"kind": "tier_down", "execution": "market"},
        # ADL alert (bybit-exchange/docs@072c197d, docs/v5/market/adl-alert): ADL also while
        # the pool's 8-hour PnL drawdown is at or past -30%, until it recovers past -25%.
        adl={
            "ranking": "pnl_leverage",
            "price": "bankruptcy",
            "trigger_fund_drawdown": 0.30,
            "trigger_fund_drawdown_stop": 0.25,
        },
    )


def _bybit_inverse() -> MarketSpec:
    # Inverse BTCUSD: 1 USD contracts margined in BTC; the lowest risk-limit level only.
    return spec(
        symbol="BTCUSD",
        contract_type="inverse",
        contract_value=1.0,
        settlement_asset="BTC",
        tick_size=0.5,
        lot_size=1.0,
        tiers=tiers([(0.0, 100.0, 0.005)]),
        maker_fee_rate=-0.00025,
        taker_fee_rate=0.00075,
        liquidation_fee_rate=0.005,
        liquidation={"kind": "tier_down", "execution": "market"},
        adl={
            "ranking": "pnl_leverage",
            "price": "bankruptcy",
            "trigger_fund_drawdown": 0.30,
            "trigger_fund_drawdown_stop": 0.25,
        },
    )


VENUE = VenuePreset(
    info=PresetInfo(
        venue="bybit",
        symbols=("BTCUSDT", "BTCUSD"),
        sources=(
            "https://mobie.io/details-of-risk-limit-adjustment-by-bybit",
            "https://bybit-tr.com/ar-SA/help-center/article/?id=000001095&language=en_US",
            "https://help.bybit.com/hc/en-us/articles/900000167723-Liquidation-Process-USDT-Contract-",
            "https://help.bybit.com/hc/en-us/articles/900000031623-What-is-Auto-Deleveraging-ADL-",
            "https://bybit.nl/nl-NL/help-center/article/Auto-Deleveraging-ADL",
            "https://www.bybit.com/en/help-center/article/Insurance-Fund",
            "https://www.bybitgum.org/en-US/help-center/bybitHC_Article?id=000001634",
            "https://help.bybit.com/hc/en-us/articles/360039261334-How-to-calculate-Liquidation-Price-Inverse-Contract-",
        ),
        insurance=(
            "Insurance fund pools: some pairs share a pool, others have an isolated pool "
            "(ADL page); which one backs BTCUSDT is not stated in stored sources."
        ),
        backstop=(
            "The liquidation engine takes over the position at the bankruptcy price; margin "
            "left after a better fill goes to the insurance fund."
        ),
        execution=(
            "Laddered liquidation: above the lowest risk limit, cancel orders and send a "
            "FillOrKill order for the difference to the lower risk-limit value ('tier_down'); "
            "at the lowest risk limit, or if still liquidatable, take over at bankruptcy."
        ),
        adl=(
            "Ranked by profit and effective leverage (PNL% x leverage, as BitMEX), closed at "
            "the bankruptcy price of the liquidated order: ranking 'pnl_leverage', price "
            "'bankruptcy'."
        ),
        notes=(
            "BTCUSDT risk limit: level 1 up to 2,000,000 USDT at MMR 0.5% and IMR 1% (100x); "
            "each level adds 2,000,000 USDT, +0.5% MMR and +0.75% IMR (level 2 = 4,000,000 "
            "USDT at MMR 1%, IMR 1.75%, 57.14x; Bybit's adjustment notice as reported by "
            "mobie.io). 10 levels modelled (assumed). Bybit has since moved BTCUSDT to other "
            "tables; the live table is on its Margin Parameters page.",
            "Liquidation penalty: the margin left at the bankruptcy-price takeover goes to "
            "the insurance fund; approximated by liquidation_fee_rate = base MMR 0.5%.",
            "ADL trigger (2025 docs, adl-alert): the pool's 8-hour PnL drawdown at or past "
            "-30% starts ADL while the fund could still pay, until it recovers past -25% "
            "(AdlPolicy.trigger_fund_drawdown 0.30, trigger_fund_drawdown_stop 0.25), as well "
            "as an empty fund; the drawdown is the fund's own (one pool per exchange fund).",
            "Fees: VIP 0 perpetual maker 0.02%, taker 0.055%.",
            "Tick 0.1 and lot 0.001 assumed, not verified against a stored source.",
            "BTCUSD (inverse perpetual): 1 USD contracts margined and settled in BTC; taker "
            "0.075% (the fee the inverse liquidation-price page reserves), maker -0.025% "
            "(older inverse fee schedule, assumed); lowest risk-limit level 100x with MMR "
            "0.5% ('minimum MMR 0.5% BTC', older inverse page); higher levels not found in "
            "stored sources, so one level is modelled; tick 0.5 (the page's rounding step), "
            "lot 1 contract. Same liquidation and ADL policies as BTCUSDT (assumed). It "
            "settles in BTC, so it is listed on its own Exchange.",
        ),
        spec_gaps=(
            "LiquidationPolicy.takeover_penalty: Literal['fee_rate', 'remaining_margin'] = "
            "'remaining_margin' for bybit (the final takeover at the bankruptcy price keeps "
            "all margin left for the fund; partial reductions pay no penalty; kind 'full' "
            "presets use liquidation_fee_rate = 1 for this).",
            "MarketSpec.insurance_pool: str | None (bybit: shared or isolated per pair).",
            "Risk-limit rates on the whole position (MarketSpec.tier_margin = "
            "'whole_position', as bitmex) are not set for bybit: the inverse maintenance page "
            "prices each slice at its own tier's rate (the deduction form, 0.45 XYZ), and the "
            "USDT risk-limit pages in stored sources do not say which form applies.",
            "MarketSpec.maintenance_basis: Literal['mark', 'entry'] = 'entry' for bybit "
            "(maintenance on the position value at entry, a constant: rules.inverse "
            "mm_basis='entry'; the engine values maintenance at the mark, so BTCUSD's "
            "liquidation prices are Binance COIN-M's form).",
            "Bybit inverse cross bankruptcy and liquidation prices reserve the taker fee to "
            "close at bankruptcy (1.00075 Q / (Q/EP + available)); the engine's do not, and "
            "it does not round them to 0.5 (rules.inverse.round_price_conservatively).",
        ),
    ),
    aliases={"BTC": "BTCUSDT", "BTCUSDT": "BTCUSDT", "BTCUSD": "BTCUSD"},
    builders={"BTCUSDT": _bybit, "BTCUSD": _bybit_inverse},
)
