"""dYdX v4 chain: protocol liquidation orders at a fillable price, an insurance fund module,
deleveraging against offsetting subaccounts from a random start.

The numbers and their sources are in :data:`VENUE` (``VENUE.info``); what the engine does not
reproduce yet is listed in ``VENUE.info.spec_gaps``.
"""

from __future__ import annotations

from deleverage.spec import MarketSpec
from deleverage.venues.base import PresetInfo, VenuePreset, spec, tiers

__all__ = ["VENUE"]

# ------------------------------------------------------------------------------------ dYdX v4


def _dydx(symbol: str) -> MarketSpec:
    # Large-Cap liquidity tier: initial_margin_ppm 20000, maintenance_fraction_ppm 600000.
    imf = 0.02
    return spec(
        symbol=symbol,
        tick_size=1.0 if symbol == "BTC-USD" else 0.1,
        lot_size=1e-4 if symbol == "BTC-USD" else 1e-3,
        tiers=tiers([(0.0, 1.0 / imf, imf * 0.6)]),
        maker_fee_rate=0.0001,
        taker_fee_rate=0.0005,
        liquidation_fee_rate=0.015,
        open_interest_scaling=None,
        # Network genesis liquidations config (v4-chain 84d4664, protocol/testing/genesis.sh,
        # scripts/genesis/sample_pregenesis.json): SMMR 1,500,000 ppm, BA 1,000,000 ppm,
        # position portion 100,000 ppm, min notional 1,000 USDC, per subaccount and block
        # 100,000 USDC notional and 1,000,000 USDC insurance lost.
        liquidation={
            "kind": "portion",
            "execution": "liquidator",
            "spread_to_maintenance_ratio": 1.5,
            "bankruptcy_adjustment": 1.0,
            "max_position_portion": 0.10,
            "min_position_notional": 1_000.0,
            "max_notional_per_account_step": 100_000.0,
            "max_insurance_loss_per_account_step": 1_000_000.0,
            # LiquidateSubaccountsAgainstOrderbook (x/clob/keeper/liquidations.go): at most
            # MaxLiquidationAttemptsPerBlock (50, x/clob/flags/flags.go) subaccounts from a
            # pseudo-random offset, sorted by SortLiquidationOrders; DeleverageSubaccounts
            # (deleveraging.go): at most MaxDeleveragingAttemptsPerBlock (10).
            "order": "fillable_price",
            "max_liquidations_per_step": 50,
            "max_deleveragings_per_step": 10,
        },
        # Deleveraging at the bankruptcy price; counterparties the match would leave below
        # initial margin and riskier are skipped (ProcessDeleveraging's collateral check).
        adl={"ranking": "random_start", "price": "bankruptcy", "counterparty": "refuse"},
    )


VENUE = VenuePreset(
    info=PresetInfo(
        venue="dydx_v4",
        symbols=("BTC-USD", "ETH-USD"),
        sources=(
            "https://github.com/dydxprotocol/v4-chain/blob/84d4664bae71e3a077adaac67fb77ad19cd28d30/protocol/x/clob/keeper/liquidations.go",
            "https://github.com/dydxprotocol/v4-chain/blob/84d4664bae71e3a077adaac67fb77ad19cd28d30/protocol/x/clob/types/liquidations_config.go",
            "https://github.com/dydxprotocol/v4-chain/blob/84d4664bae71e3a077adaac67fb77ad19cd28d30/protocol/testing/genesis.sh",
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
            "Liquidation at the fillable price P - ABR x SMMR x PMMR / |S|, ABR = clip(BA x "
            "(1 - TNC / TMMR), 0, 1), SMMR 1.5, BA 1, no clamp to the bankruptcy price; the "
            "insurance fund pays a fill beyond bankruptcy, else the account pays min(1.5% fee, "
            "surplus); per block 10% of a position (at least 1,000 USDC), 100,000 USDC "
            "notional and 1,000,000 USDC insurance loss per subaccount (kind 'portion', "
            "execution 'liquidator')."
        ),
        adl=(
            "Deleveraging against offsetting positions at the bankruptcy price, walking the "
            "subaccounts with an opposite position from a pseudo-random start "
            "(OffsetSubaccountPerpetualPosition: 'Start from a random subaccount'): ranking "
            "'random_start', price 'bankruptcy'. Counterparties the match would leave below "
            "initial margin and riskier are skipped (adl.counterparty 'refuse'); partial "
            "deleveraging leaves the rest open; only accounts with negative net collateral are "
            "deleveraged."
        ),
        notes=(
            "Integer-exact dYdX arithmetic: deleverage.rules.quantum (quantum mode); "
            "conformance suite tests/conformance/dydx_v4 (186 vectors from the v4-chain Go "
            "tests at 84d4664).",
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
            "Liquidation orders fill at the fillable price against the liquidator account, not "
            "at resting makers' prices on the book (the engine's fund payments are an upper "
            "bound of dYdX's).",
            "Liquidation ordering: the last tie-break is the account id where dYdX uses the "
            "order hash (engine accounts have no addresses; the hash itself is "
            "rules.quantum_deleverage.liquidation_order_hash, vector ordering_07); the pseudo-"
            "random offset of the 50-subaccount window comes from the engine's seeded "
            "generator, not dYdX's block-hash seed, and the daemon's subaccount list is taken "
            "in account order.",
            "The pseudo-random choice of the position to liquidate (GetPerpetualPositionTo"
            "Liquidate) is not modelled: the engine liquidates the marked market's position.",
            "MaxDeleveragingSubaccountsToIterate (500 offsetting subaccounts per deleveraging) "
            "is not modelled; deleveraging from the shortfall stage (not from an unfilled "
            "liquidation) is not counted against max_deleveragings_per_step.",
            "Withdrawal gating after a negative-TNC account (50 blocks) is not modelled.",
        ),
    ),
    aliases={"BTC": "BTC-USD", "BTC-USD": "BTC-USD", "ETH": "ETH-USD", "ETH-USD": "ETH-USD"},
    builders={"BTC-USD": lambda: _dydx("BTC-USD"), "ETH-USD": lambda: _dydx("ETH-USD")},
)
