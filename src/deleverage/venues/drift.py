"""Drift protocol v2 (Solana): partial liquidation to a buffered target with a liquidator fee
and an insurance-fund fee, bankruptcy resolved by the insurance fund, the fee pool and
socialized loss over open interest.

The numbers and their sources are in :data:`VENUE` (``VENUE.info``); what the engine does not
reproduce yet is listed in ``VENUE.info.spec_gaps``.
"""

from __future__ import annotations

from deleverage.spec import MarketSpec
from deleverage.venues.base import PresetInfo, VenuePreset, spec, tiers

__all__ = ["UNSTAKE_COOLDOWN_S", "VENUE"]

#: Insurance-fund unstaking cooldown, seconds: "a cooldown period of 13 days for unstaking"
#: (https://docs.drift.trade/insurance-fund/insurance-fund-staking).
UNSTAKE_COOLDOWN_S = 13 * 24 * 3600

# -------------------------------------------------------------------------------------- Drift

_DRIFT_MMR = 0.03  # not found in public docs; assumed (see notes)
_DRIFT_LIQUIDATOR_FEE = 0.01  # not found for BTC-PERP; assumed (see notes)


def _drift() -> MarketSpec:
    return spec(
        symbol="BTC-PERP",
        tick_size=0.1,
        lot_size=1e-4,
        tiers=tiers([(0.0, 20.0, _DRIFT_MMR)]),
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


VENUE = VenuePreset(
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
