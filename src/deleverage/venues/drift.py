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
            # Source for the fields below: drift-labs/protocol-v2
            # @ 0ae3e3b1db782a6765c3525b3dec38ad4d9d3a62, programs/drift/src/.
            # The liquidator takes the position at the oracle less its fee (liquidate_perp;
            # math/liquidation.rs::calculate_base_asset_amount_to_cover_margin_shortage).
            # The BTC-PERP value is assumed (see notes).
            "liquidator_fee_rate": _DRIFT_LIQUIDATOR_FEE,
            # state/perp_market.rs::get_max_liquidation_fee, MAX_LIQUIDATION_MULTIPLIER = 3.
            "liquidator_fee_max_rate": min(3 * _DRIFT_LIQUIDATOR_FEE, _DRIFT_MMR),
            # LIQUIDATION_FEE_ADJUST_GRACE_PERIOD_SLOTS = 1500 ("~10 minutes") x 0.4 s per slot.
            "liquidator_fee_grace_s": 600.0,
            # LIQUIDATION_FEE_INCREASE_PER_SLOT = 1 (1e-6 per slot) / 0.4 s per slot.
            "liquidator_fee_ramp_per_s": 2.5e-6,
            # liquidate_perp: if_fee = base_value x if_liquidation_fee, on the oracle value.
            "fee_basis": "oracle",
            # math/liquidation.rs::calculate_perp_if_fee.
            "insurance_fee": "shrink_with_shortage",
            # No time ramp (ramp_duration_s, ramp_initial_fraction left at 0):
            # State.liquidation_duration and initial_pct_to_liquidate are 0 at initialize
            # (instructions/admin.rs); live mainnet values not verified.
            # calculate_max_pct_to_liquidate: a shortage under $50 is covered at once (only
            # matters with a ramp).
            "ramp_full_below": 50.0,
        },
        # insurance_claim.quote_max_insurance <= the contract tier's cap (INSURANCE_A_MAX =
        # $100M for tier A); BTC-PERP assumed tier A, its own quote_max_insurance not found.
        insurance_cap=100_000_000.0,
        # controller/liquidation.rs::resolve_perp_bankruptcy: insurance fund first, then
        # amm.fee_pool, then the cumulative funding rates.
        adl={
            "ranking": "socialized_loss",
            "socialize_over": "open_interest",
            "fee_pool_pays": True,
        },
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
            "liquidator fee (time-ramped), partially, until the account is above maintenance "
            "plus the 2% liquidation margin buffer; the insurance-fund fee is charged on the "
            "oracle value. Mapped to execution 'liquidator' with liquidator_fee_rate."
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
            "protocol default in code) -> liquidation_fee_rate 0.01, charged on the oracle "
            "value and shrunk with the shortage (calculate_perp_if_fee); the BTC-PERP "
            "liquidator_fee was not found and is assumed 1%, ramped after 1,500 slots by 1e-6 "
            "per slot up to min(3 x fee, MMR) = 3% (slots converted at 0.4 s).",
            "Bankruptcy (resolve_perp_bankruptcy, commit 0ae3e3b1): insurance fund first "
            "(capped by quote_max_insurance, assumed at the tier-A cap $100M), then the "
            "market's fee pool (the engine's fee account, shared by all markets), then "
            "socialized over open interest through the cumulative funding rates.",
            "Liquidation time ramp (liquidation_duration, initial_pct_to_liquidate): 0 at "
            "initialize, live values not verified; not enabled.",
            "Fees: tier 0 (30-day volume <= 2M) taker 0.035%, maker -0.0025% (rebate).",
            "Size-dependent margin (imf_factor, sqrt of size) is not modelled: one tier.",
            "Tick 0.1 assumed; step 0.0001 BTC = DEFAULT_BASE_ASSET_AMOUNT_STEP_SIZE.",
        ),
        spec_gaps=(
            "MarginTier.imf_factor: float (drift margin ratio max(r, 0.8 r + imf x sqrt(size)); "
            "exact form in rules.fixed_point.size_premium_ratio, not in the engine's margins).",
            "MarketSpec.quote_price: float (drift values USDC at its oracle price; the engine "
            "assumes 1).",
            "AdlPolicy.fee_pool: Literal['market', 'shared'] = 'market' for drift (the "
            "engine's fee pool is the exchange's one fee account).",
        ),
    ),
    aliases={"BTC": "BTC-PERP", "BTC-PERP": "BTC-PERP"},
    builders={"BTC-PERP": _drift},
)
