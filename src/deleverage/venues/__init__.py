"""Named venue presets: each real venue's documented margin tiers, fees and failure rules.

A preset is a :class:`~deleverage.spec.MarketSpec` that bundles what one venue publishes for
one perpetual market (BTC, and ETH where the venue documents it simply):

- **margin tiers** (notional floors, maximum leverage, maintenance rates), from which the spec
  computes the maintenance deduction (Binance ``cum``, Hyperliquid ``maintenance_deduction``);
- **fees** at the base (non-VIP) tier and the **liquidation penalty** paid to the insurance fund;
- the **liquidation policy** (full, partial to maintenance plus a buffer, a fixed fraction with a
  cooldown, or one tier down) and its **execution** (against the book, or a transfer to a
  liquidator at a fillable price);
- the **ADL policy**: who takes the loss that the insurance fund and the backstop cannot cover.

Everything a :class:`MarketSpec` cannot hold (which insurance pool backs the market, the
backstop vault, per-bracket fees, triggers) is described in :class:`PresetInfo`, next to the
URL of every source. Where a venue's documentation and its code disagree, the preset follows
the code and the notes say so; where a number could not be found in public material, the preset
uses a stated, conservative assumption.

Venue parameters change often (most venues revise tiers per symbol without notice): treat a
preset as a documented snapshot, not a live feed.

Examples
--------
>>> spec = preset("binance", "BTC")
>>> spec.symbol, spec.max_leverage, spec.tiers[0].maintenance_rate
('BTCUSDT', 125.0, 0.004)
>>> float(spec.tier_arrays.cum[1])  # Binance's published maintenance amount of bracket 2
50.0
>>> list_presets()
['binance', 'bitmex', 'bybit', 'drift', 'dydx_v4', 'hyperliquid', 'okx']
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from deleverage.errors import UnknownEntityError, ValidationError
from deleverage.spec import MarginTier, MarketSpec

__all__ = ["PresetInfo", "list_presets", "preset", "preset_info"]


@dataclass(frozen=True, slots=True)
class PresetInfo:
    """What a venue preset models, what it cannot, and where each number comes from.

    Parameters
    ----------
    venue
        Preset name, as accepted by :func:`preset`.
    symbols
        Venue symbols available, e.g. ``("BTCUSDT",)``; the generic ``"BTC"``/``"ETH"`` map to
        them.
    sources
        URLs of the documents and code the numbers come from.
    insurance
        Insurance model: one fund per market, or a fund shared by several markets.
    backstop
        What absorbs a position the book cannot take before the insurance fund and ADL.
    execution
        How liquidation orders are executed.
    adl
        The venue's ADL (or loss-socialization) rule and the ranking it maps to.
    notes
        Assumptions, disagreements between docs and code, and dated values.
    spec_gaps
        Venue rules that :class:`~deleverage.spec.MarketSpec` has no field for, each as
        ``field: type = value per venue (meaning)``.
    """

    venue: str
    symbols: tuple[str, ...]
    sources: tuple[str, ...]
    insurance: str
    backstop: str
    execution: str
    adl: str
    notes: tuple[str, ...]
    spec_gaps: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class _Venue:
    info: PresetInfo
    aliases: Mapping[str, str]  # upper-case input name -> venue symbol
    builders: Mapping[str, Callable[[], MarketSpec]]  # venue symbol -> spec builder


def _tiers(rows: Sequence[tuple[float, float, float]]) -> tuple[MarginTier, ...]:
    return tuple(
        MarginTier(notional_floor=floor, max_leverage=leverage, maintenance_rate=mmr)
        for floor, leverage, mmr in rows
    )


def _spec(**fields: Any) -> MarketSpec:
    return MarketSpec.from_mapping(fields)


# --------------------------------------------------------------------------------- Hyperliquid


def _hyperliquid(
    symbol: str, bounds: tuple[float, float], leverages: tuple[float, float]
) -> MarketSpec:
    # Maintenance rate = half the initial rate at the tier's max leverage (margin-tiers page).
    rows = [(bound, lev, 0.5 / lev) for bound, lev in zip(bounds, leverages, strict=True)]
    return _spec(
        symbol=symbol,
        tick_size=1.0,
        lot_size=1e-5 if symbol == "BTC" else 1e-4,
        tiers=_tiers(rows),
        maker_fee_rate=0.00015,
        taker_fee_rate=0.00045,
        liquidation_fee_rate=0.0,
        liquidation={
            "kind": "fixed_fraction",
            "execution": "market",
            "fraction": 0.2,
            "fraction_min_notional": 100_000.0,
            "cooldown_s": 30.0,
            "backstop_equity_fraction": 2.0 / 3.0,
        },
        adl={"ranking": "hyperliquid", "price": "mark"},
    )


_HYPERLIQUID = _Venue(
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
            "maintenance margin is not returned (backstop_equity_fraction = 2/3)."
        ),
        execution=(
            "Market orders to the book; no clearance fee. Positions above 100,000 USDC are "
            "liquidated 20% at a time; after a partial liquidation a 30 s cooldown applies, "
            "during which liquidation orders are for the whole position."
        ),
        adl=(
            "When an account or isolated position value turns negative, opposing users are "
            "ranked by unrealized PnL and leverage and closed at the previous oracle (mark) "
            "price: ranking 'hyperliquid', price 'mark'."
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
        ),
        spec_gaps=(
            "LiquidationPolicy.cooldown_mode: Literal['full_position'] = 'full_position' for "
            "hyperliquid (during the 30 s cooldown, liquidation orders are for the entire "
            "position; the engine's fixed_fraction cooldown already implies this).",
            "MarketSpec.insurance_pool: str | None = 'hlp' for hyperliquid (no market fund; "
            "the backstop vault is shared by all markets).",
        ),
    ),
    aliases={"BTC": "BTC", "ETH": "ETH", "BTC-PERP": "BTC", "ETH-PERP": "ETH"},
    builders={
        "BTC": lambda: _hyperliquid("BTC", (0.0, 150e6), (40.0, 20.0)),
        "ETH": lambda: _hyperliquid("ETH", (0.0, 100e6), (25.0, 15.0)),
    },
)


# ------------------------------------------------------------------------------------ dYdX v4


def _dydx(symbol: str) -> MarketSpec:
    # Large-Cap liquidity tier: initial_margin_ppm 20000, maintenance_fraction_ppm 600000.
    imf = 0.02
    return _spec(
        symbol=symbol,
        tick_size=1.0 if symbol == "BTC-USD" else 0.1,
        lot_size=1e-4 if symbol == "BTC-USD" else 1e-3,
        tiers=_tiers([(0.0, 1.0 / imf, imf * 0.6)]),
        maker_fee_rate=0.0001,
        taker_fee_rate=0.0005,
        liquidation_fee_rate=0.015,
        open_interest_scaling=None,
        liquidation={
            "kind": "partial",
            "execution": "liquidator",
            "target": "maintenance",
            "spread_to_maintenance_ratio": 1.5,
            "max_notional_per_account_step": 100_000.0,
        },
        adl={"ranking": "random_start", "price": "bankruptcy"},
    )


_DYDX = _Venue(
    info=PresetInfo(
        venue="dydx_v4",
        symbols=("BTC-USD", "ETH-USD"),
        sources=(
            "https://github.com/dydxprotocol/v4-chain/blob/main/protocol/x/clob/keeper/deleveraging.go",
            "https://github.com/dydxprotocol/v4-chain/blob/main/protocol/scripts/genesis/sample_pregenesis.json",
            "https://github.com/dydxprotocol/v4-chain/pull/2431",
            "https://github.com/dydxprotocol/v4-chain/pull/1355",
            "https://docs.dydx.community/dydx-unlimited/modules/governance/governance-adjustable-parameters/markets",
            "https://help.dydx.exchange/en/articles/8580691-liquidations-on-dydx-chain",
            "https://docs.dydx.exchange/concepts-trading/margin",
            "https://help.dydx.exchange/en/articles/8581982-contract-loss-mechanisms-on-dydx-chain",
            "https://dydx-documentation-six.vercel.app/concepts/trading/contract-loss-mechanism",
            "https://docs.dydx.exchange/introduction-trading_fees",
        ),
        insurance=(
            "One insurance fund (module account) shared by all cross-margined markets, BTC-USD "
            "and ETH-USD included (isolated markets have their own); it takes the liquidation "
            "penalties and pays for fills beyond the bankruptcy price."
        ),
        backstop=(
            "None besides the insurance fund: the insurance fund itself takes the other side "
            "of liquidation fills up to the fillable price."
        ),
        execution=(
            "Protocol liquidation orders with the fillable price as limit, matched against "
            "the book: Fillable = P x (1 - SMMR x MMF x BA x (1 - Q)), SMMR = 1.5, BA = 1, "
            "Q = TNC / TMMR; per-block limits: 10% of a position (at least 1,000 USDC "
            "notional) and 100,000 USDC notional per subaccount. Mapped to "
            "execution 'liquidator' with spread_to_maintenance_ratio 1.5."
        ),
        adl=(
            "Deleveraging against offsetting positions at the bankruptcy price, walking the "
            "subaccounts with an opposite position from a pseudo-random start "
            "(OffsetSubaccountPerpetualPosition: 'Start from a random subaccount'): ranking "
            "'random_start', price 'bankruptcy'."
        ),
        notes=(
            "Docs vs code: the help-center page says deleveraging prioritizes 'accounts with a "
            "combination of high profit and high leverage'; the v4 code (deleveraging.go) and "
            "the newer docs walk offsetting subaccounts from a random start. Following the "
            "code: ranking 'random_start'.",
            "Large-Cap tier (BTC-USD, ETH-USD): initial_margin_ppm 20,000 (IMF 2%, 50x) and "
            "maintenance_fraction_ppm 600,000, so MMF = 0.6 x 2% = 1.2% (governance markets "
            "page; genesis PR 2431 changed 50,000 -> 20,000). Older genesis files still show "
            "IMF 5% / MMF 3%.",
            "Open-interest IMF scaling: the Large-Cap tier's open_interest_lower_cap and "
            "open_interest_upper_cap are 0 in the v4-chain genesis (scaling disabled; PR 1355 "
            "set caps only for the smaller tiers, e.g. Small-Cap 20M / 50M USDC), so "
            "open_interest_scaling is None.",
            "Liquidation penalty: max_liquidation_fee_ppm 15,000 (1.5%), taken only while the "
            "account stays solvent (the engine's capped penalty).",
            "Fees: tier 1 (30-day volume < 1M) taker 5 bps, maker 1 bp.",
            "Tick 1 USD and step 0.0001 BTC from the sample genesis clob pair "
            "(subticks_per_tick 100000, quantum_conversion_exponent -9, atomic_resolution -10, "
            "step_base_quantums 1e6); ETH tick and step assumed.",
        ),
        spec_gaps=(
            "LiquidationPolicy.bankruptcy_adjustment: float (>= 1) = 1.0 for dydx_v4 (BA in the "
            "fillable price; the engine also omits the (1 - Q) factor, Q = TNC / TMMR, so its "
            "fillable price is further from the oracle than dYdX's).",
            "LiquidationPolicy.max_position_fraction_per_step: float = 0.10 for dydx_v4 "
            "(max_position_portion_liquidated_ppm 100,000 per block).",
            "LiquidationPolicy.min_notional_per_step: float = 1000.0 for dydx_v4 "
            "(min_position_notional_liquidated, USDC).",
            "LiquidationPolicy.max_insurance_loss_per_account_step: float = 1_000_000.0 for "
            "dydx_v4 (max_quantums_insurance_lost per subaccount per block, USDC).",
            "MarketSpec.insurance_pool: str | None = 'global' for dydx_v4 cross markets.",
        ),
    ),
    aliases={"BTC": "BTC-USD", "BTC-USD": "BTC-USD", "ETH": "ETH-USD", "ETH-USD": "ETH-USD"},
    builders={"BTC-USD": lambda: _dydx("BTC-USD"), "ETH-USD": lambda: _dydx("ETH-USD")},
)


# -------------------------------------------------------------------------------------- Drift

_DRIFT_MMR = 0.03  # not found in public docs; assumed (see notes)
_DRIFT_LIQUIDATOR_FEE = 0.01  # not found for BTC-PERP; assumed (see notes)


def _drift() -> MarketSpec:
    return _spec(
        symbol="BTC-PERP",
        tick_size=0.1,
        lot_size=1e-4,
        tiers=_tiers([(0.0, 20.0, _DRIFT_MMR)]),
        maker_fee_rate=-0.000025,
        taker_fee_rate=0.00035,
        liquidation_fee_rate=0.01,
        liquidation={
            "kind": "partial",
            "execution": "liquidator",
            "target": "maintenance",
            "buffer": 0.02,
            # liquidator discount = SMMR x MMR = liquidator_fee (see notes)
            "spread_to_maintenance_ratio": _DRIFT_LIQUIDATOR_FEE / _DRIFT_MMR,
        },
        adl={"ranking": "socialized_loss", "socialize_over": "open_interest"},
    )


_DRIFT = _Venue(
    info=PresetInfo(
        venue="drift",
        symbols=("BTC-PERP",),
        sources=(
            "https://docs.drift.trade/protocol/trading/margin/per-market-leverage",
            "https://github.com/drift-labs/protocol-v2/blob/master/programs/drift/src/math/constants.rs",
            "https://github.com/drift-labs/protocol-v2/blob/master/programs/drift/src/controller/liquidation.rs",
            "https://docs.drift.trade/liquidations/liquidation-engine",
            "https://docs.drift.trade/trading/trading-fees",
            "https://docs.drift.trade/about-v2/revenue-pool",
        ),
        insurance=(
            "One USDC insurance fund vault (stakeable) shared by the perp markets, with a "
            "per-market cap on what it pays (insurance_claim.quote_max_insurance); the market's "
            "fee pool pays next."
        ),
        backstop="None besides the insurance fund and the market's fee pool.",
        execution=(
            "Keepers (liquidators) take over the position at the oracle price less the "
            "liquidator fee, partially, until the account is above maintenance plus the 2% "
            "liquidation margin buffer. Mapped to execution 'liquidator' with "
            "spread_to_maintenance_ratio = liquidator_fee / MMR."
        ),
        adl=(
            "No ADL queue: resolve_perp_bankruptcy pays from the insurance fund (capped per "
            "market), then the fee pool, and socializes the rest through the cumulative "
            "funding rates of the open interest: ranking 'socialized_loss' over "
            "'open_interest'."
        ),
        notes=(
            "Initial margin: BTC-PERP market limit 20x (IMF 5%) per the per-market leverage "
            "page (high-leverage mode up to 50x not modelled).",
            "Maintenance margin ratio for BTC-PERP: not found in public docs; assumed 3% "
            "(margin_ratio_maintenance 300; protocol tests use 1000 / 500 for 10x markets).",
            "Liquidation buffer: DEFAULT_LIQUIDATION_MARGIN_BUFFER_RATIO = MARGIN_PRECISION / "
            "50 = 2% (constants.rs).",
            "Liquidation fees: if_liquidation_fee 1% (LIQUIDATION_FEE_PRECISION / 100, the "
            "protocol default in code) -> liquidation_fee_rate 0.01; the BTC-PERP "
            "liquidator_fee was not found and is assumed 1%, applied as the takeover discount.",
            "Fees: tier 0 (30-day volume <= 2M) taker 0.035%, maker -0.0025% (rebate).",
            "Size-dependent margin (imf_factor, sqrt of size) is not modelled: one tier.",
            "Tick 0.1 assumed; step 0.0001 BTC = DEFAULT_BASE_ASSET_AMOUNT_STEP_SIZE.",
        ),
        spec_gaps=(
            "LiquidationPolicy.liquidator_fee_rate: float = 0.01 for drift (discount to the "
            "liquidator on the transferred position, separate from the insurance-fund fee; "
            "approximated here by spread_to_maintenance_ratio; Drift sizes a partial "
            "liquidation as shortage / (target - liquidator_fee - if_fee), the engine "
            "subtracts only liquidation_fee_rate).",
            "MarketSpec.insurance_cap: float | None (per-market cap on insurance payouts; "
            "drift quote_max_insurance, value for BTC-PERP not found).",
            "MarginTier size premium: imf_factor: float (drift margin grows with sqrt(size)).",
        ),
    ),
    aliases={"BTC": "BTC-PERP", "BTC-PERP": "BTC-PERP"},
    builders={"BTC-PERP": _drift},
)


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


def _binance() -> MarketSpec:
    return _spec(
        symbol="BTCUSDT",
        tick_size=0.1,
        lot_size=0.001,
        tiers=_tiers(_BN_BTCUSDT),
        maker_fee_rate=0.0002,
        taker_fee_rate=0.0005,
        liquidation_fee_rate=0.003,
        liquidation={"kind": "tier_down", "execution": "market"},
        adl={"ranking": "binance", "price": "bankruptcy"},
    )


_BINANCE = _Venue(
    info=PresetInfo(
        venue="binance",
        symbols=("BTCUSDT",),
        sources=(
            "https://www.binance.com/tr/support/announcement/86cf9aa472574b8cb2e05bb751c2a9a6",
            "https://gist.github.com/highfestiva/b71e76f51eed84d56c1be8ebbcc286b5",
            "https://www.binance.com/en/support/faq/leverage-and-margin-of-usd%E2%93%A2-m-futures-360033162192",
            "https://binance.zendesk.com/hc/en-us/articles/360033525271-Liquidation",
            "https://www.binance.com/en/support/articles/360033525371-Insurance-Fund",
            "https://www.binance.com/zh-CN/support/announcement/360033525471",
            "https://babianfox.com/en/kb/binance-futures-fee/",
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
            "Tick 0.1 and lot 0.001 assumed from the BTCUSDT exchangeInfo filters, not "
            "verified against a stored source.",
        ),
        spec_gaps=(
            "MarginTier.liquidation_fee_rate: float | None = per-bracket clearance fee for "
            "binance (values not found; flat 0.003 used).",
            "MarketSpec.insurance_pool: str | None = 'BTCUSDT' for binance (own fund; other "
            "symbols 'shared').",
            "LiquidationPolicy.insurance_takeover_max_notional: float | None (binance: the "
            "fund takes over bankrupt positions up to its own size, then ADL).",
        ),
    ),
    aliases={"BTC": "BTCUSDT", "BTCUSDT": "BTCUSDT"},
    builders={"BTCUSDT": _binance},
)


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
    return _spec(
        symbol="XBTUSD",
        tick_size=0.5,
        lot_size=1e-4,
        tiers=_tiers(rows),
        maker_fee_rate=-0.00025,
        taker_fee_rate=0.00075,
        liquidation_fee_rate=_BM_BASE_MM,
        liquidation={"kind": "full", "execution": "market"},
        adl={"ranking": "pnl_leverage", "price": "bankruptcy"},
    )


_BITMEX = _Venue(
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


# -------------------------------------------------------------------------------------- Bybit

_BY_LEVELS = 10  # risk-limit levels modelled (assumed)


def _bybit() -> MarketSpec:
    # Level k (1-based): max value 2M x k, MMR 0.5% x k, IMR 1% + 0.75% x (k - 1).
    rows = [
        ((k - 1) * 2_000_000.0, 1.0 / (0.01 + 0.0075 * (k - 1)), 0.005 * k)
        for k in range(1, _BY_LEVELS + 1)
    ]
    return _spec(
        symbol="BTCUSDT",
        tick_size=0.1,
        lot_size=0.001,
        tiers=_tiers(rows),
        maker_fee_rate=0.0002,
        taker_fee_rate=0.00055,
        liquidation_fee_rate=0.005,
        liquidation={"kind": "tier_down", "execution": "market"},
        adl={"ranking": "pnl_leverage", "price": "bankruptcy"},
    )


_BYBIT = _Venue(
    info=PresetInfo(
        venue="bybit",
        symbols=("BTCUSDT",),
        sources=(
            "https://mobie.io/details-of-risk-limit-adjustment-by-bybit",
            "https://bybit-tr.com/ar-SA/help-center/article/?id=000001095&language=en_US",
            "https://help.bybit.com/hc/en-us/articles/900000167723-Liquidation-Process-USDT-Contract-",
            "https://help.bybit.com/hc/en-us/articles/900000031623-What-is-Auto-Deleveraging-ADL-",
            "https://bybit.nl/nl-NL/help-center/article/Auto-Deleveraging-ADL",
            "https://www.bybit.com/en/help-center/article/Insurance-Fund",
            "https://www.bybitgum.org/en-US/help-center/bybitHC_Article?id=000001634",
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
            "ADL trigger (2025 docs): a pair's 8-hour insurance drawdown crossing a "
            "threshold; not modelled (ADL when the fund is empty).",
            "Fees: VIP 0 perpetual maker 0.02%, taker 0.055%.",
            "Tick 0.1 and lot 0.001 assumed, not verified against a stored source.",
        ),
        spec_gaps=(
            "LiquidationPolicy.penalty: Literal['fee_rate', 'remaining_margin'] = "
            "'remaining_margin' for bybit.",
            "AdlPolicy.trigger_fund_drawdown: float | None (bybit: drawdown of the pair's "
            "insurance pool over 8 h; okx: 0.30 from the 8 h peak).",
            "MarketSpec.insurance_pool: str | None (bybit: shared or isolated per pair).",
        ),
    ),
    aliases={"BTC": "BTCUSDT", "BTCUSDT": "BTCUSDT"},
    builders={"BTCUSDT": _bybit},
)


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
    return _spec(
        symbol="BTC-USDT-SWAP",
        tick_size=0.1,
        lot_size=1e-4,
        tiers=_tiers(rows),
        maker_fee_rate=0.0002,
        taker_fee_rate=0.0005,
        liquidation_fee_rate=0.0005,
        liquidation={"kind": "tier_down", "execution": "market"},
        adl={"ranking": "pnl_leverage", "price": "mark"},
    )


_OKX = _Venue(
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
            "liquidation; mapped to 'tier_down' (one tier at a time)."
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
            "Docs: partial liquidation reduces the position to tier 1 in one go; the spec's "
            "'tier_down' goes one tier down per round.",
            "Liquidation fee: charged at the taker fee rate, min(taker fee, 12.5% of notional) "
            "(secondary source); liquidation_fee_rate 0.05% assumed.",
            "Fees: regular tier swap maker 0.02%, taker 0.05% (secondary source).",
            "Tick 0.1 and lot 0.0001 BTC (0.01 contracts of 0.01 BTC) assumed.",
        ),
        spec_gaps=(
            "LiquidationPolicy.tier_down_target: Literal['next', 'first'] = 'first' for okx "
            "(reduce to tier 1), 'next' for binance and bybit.",
            "AdlPolicy.trigger_fund_drawdown: float | None = 0.30 for okx (8-hour peak).",
            "AdlPolicy.price fallback: 'bankruptcy' when the fund is nearly depleted (okx).",
            "MarketSpec.insurance_pool: str | None = 'USDT:BTC' for okx.",
        ),
    ),
    aliases={"BTC": "BTC-USDT-SWAP", "BTC-USDT-SWAP": "BTC-USDT-SWAP", "BTCUSDT": "BTC-USDT-SWAP"},
    builders={"BTC-USDT-SWAP": _okx},
)


_VENUES: Mapping[str, _Venue] = {
    venue.info.venue: venue
    for venue in (_BINANCE, _BITMEX, _BYBIT, _DRIFT, _DYDX, _HYPERLIQUID, _OKX)
}


def list_presets() -> list[str]:
    """Return the names of the venue presets, sorted.

    Examples
    --------
    >>> "hyperliquid" in list_presets()
    True
    """
    return sorted(_VENUES)


def _venue(venue: str) -> _Venue:
    if not isinstance(venue, str):
        raise ValidationError("venue", venue, "must be a string naming a preset")
    found = _VENUES.get(venue.strip().lower())
    if found is None:
        raise UnknownEntityError("venue", venue, ", ".join(list_presets()))
    return found


def preset_info(venue: str) -> PresetInfo:
    """Describe a venue preset: sources, insurance, backstop, execution, ADL and notes.

    Parameters
    ----------
    venue
        A name from :func:`list_presets` (case-insensitive).

    Raises
    ------
    UnknownEntityError
        If ``venue`` is not a preset; the message lists the known ones.

    Examples
    --------
    >>> preset_info("dydx_v4").symbols
    ('BTC-USD', 'ETH-USD')
    """
    return _venue(venue).info


def preset(venue: str, symbol: str = "BTC") -> MarketSpec:
    """Build the :class:`~deleverage.spec.MarketSpec` of a venue's market.

    Parameters
    ----------
    venue
        A name from :func:`list_presets` (case-insensitive).
    symbol
        The venue's own symbol (``"BTCUSDT"`` on Binance, ``"BTC-USD"`` on dYdX v4,
        ``"XBTUSD"`` on BitMEX) or the generic ``"BTC"`` / ``"ETH"`` (case-insensitive).

    Returns
    -------
    MarketSpec
        The market, with the venue symbol as ``symbol``; details in :func:`preset_info`.

    Raises
    ------
    UnknownEntityError
        If the venue or the symbol is unknown; the message lists the known names.

    Examples
    --------
    >>> preset("hyperliquid", "eth").tiers[1].max_leverage
    15.0
    >>> preset("dydx_v4").liquidation.execution
    'liquidator'
    """
    found = _venue(venue)
    if not isinstance(symbol, str):
        raise ValidationError("symbol", symbol, "must be a string naming a market")
    venue_symbol = found.aliases.get(symbol.strip().upper())
    if venue_symbol is None:
        known = ", ".join(sorted(found.aliases))
        raise UnknownEntityError(f"{found.info.venue} symbol", symbol, known)
    return found.builders[venue_symbol]()
