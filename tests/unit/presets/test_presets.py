"""Venue presets: every preset is a valid market, and its numbers match the venues' documents.

Each spot check quotes the source (URL and the number as published); the full list of sources
per venue is in ``preset_info(venue).sources`` and docs/_sections/presets.md.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from deleverage.errors import UnknownEntityError, ValidationError
from deleverage.spec import MarketSpec
from deleverage.venues import PresetInfo, list_presets, preset, preset_info

VENUES = ["binance", "bitmex", "bybit", "drift", "dydx_v4", "hyperliquid", "okx"]
ALL_MARKETS = [(v, s) for v in VENUES for s in preset_info(v).symbols]


# ------------------------------------------------------------------------------ every preset


def test_list_presets_names_the_seven_venues_sorted() -> None:
    assert list_presets() == VENUES


@pytest.mark.parametrize(("venue", "symbol"), ALL_MARKETS)
def test_every_preset_builds_a_valid_spec_that_round_trips_json(venue: str, symbol: str) -> None:
    # Act
    spec = preset(venue, symbol)

    # Assert
    assert isinstance(spec, MarketSpec)
    assert spec.symbol == symbol
    again = MarketSpec.from_json(spec.to_json())
    assert again == spec
    assert again.spec_id == spec.spec_id


@pytest.mark.parametrize(("venue", "symbol"), ALL_MARKETS)
def test_every_preset_keeps_maintenance_below_initial_margin(venue: str, symbol: str) -> None:
    tiers = preset(venue, symbol).tier_arrays
    assert np.all(tiers.mmr < tiers.imr)
    assert np.all(np.diff(tiers.floor) > 0)


def test_presets_are_distinct_markets() -> None:
    ids = [preset(v, s).spec_id for v, s in ALL_MARKETS]
    assert len(set(ids)) == len(ids)


@pytest.mark.parametrize("venue", VENUES)
def test_preset_info_is_frozen_and_cites_https_sources(venue: str) -> None:
    # Act
    info = preset_info(venue)

    # Assert
    assert isinstance(info, PresetInfo)
    assert info.venue == venue
    assert info.sources
    assert all(url.startswith("https://") for url in info.sources)
    for text in (info.insurance, info.backstop, info.execution, info.adl):
        assert text
    assert info.notes
    with pytest.raises(dataclasses.FrozenInstanceError):
        info.venue = "other"  # type: ignore[misc]


@given(
    market=st.sampled_from(ALL_MARKETS),
    notional=st.floats(min_value=0.0, max_value=2e9, allow_nan=False),
)
def test_maintenance_margin_is_continuous_and_below_initial_at_any_notional(
    market: tuple[str, str], notional: float
) -> None:
    # Oracle: maintenance margin = max over tiers of (notional x mmr_i - cum_i) is what the
    # "tax bracket" deductions make continuous; the tier in force must give the same value.
    tiers = preset(*market).tier_arrays
    t = int(np.searchsorted(tiers.floor, notional, side="right") - 1)
    in_force = notional * tiers.mmr[t] - tiers.cum[t]
    envelope = float(np.max(notional * tiers.mmr - tiers.cum))
    assert in_force == pytest.approx(envelope, rel=1e-12, abs=1e-6)
    assert in_force <= notional * tiers.imr[t] + 1e-9


# ------------------------------------------------------------------------------ symbols, errors


@pytest.mark.parametrize(
    ("venue", "generic", "venue_symbol"),
    [
        ("binance", "BTC", "BTCUSDT"),
        ("bitmex", "btc", "XBTUSD"),
        ("bybit", "BTC", "BTCUSDT"),
        ("drift", "BTC", "BTC-PERP"),
        ("dydx_v4", "eth", "ETH-USD"),
        ("hyperliquid", "ETH", "ETH"),
        ("okx", "BTC", "BTC-USDT-SWAP"),
    ],
)
def test_generic_symbol_maps_to_the_venue_symbol(
    venue: str, generic: str, venue_symbol: str
) -> None:
    assert preset(venue, generic) == preset(venue, venue_symbol)
    assert preset(venue, generic).symbol == venue_symbol


def test_venue_name_is_case_insensitive() -> None:
    assert preset("Binance", "BTCUSDT") == preset("binance", "btcusdt")


def test_unknown_venue_raises_naming_the_known_ones() -> None:
    with pytest.raises(UnknownEntityError) as info:
        preset("ftx")
    message = str(info.value)
    assert "'ftx'" in message
    for venue in VENUES:
        assert venue in message
    assert isinstance(info.value, KeyError)


def test_unknown_venue_in_preset_info_raises_too() -> None:
    with pytest.raises(UnknownEntityError, match="hyperliquid"):
        preset_info("deribit")


def test_unknown_symbol_raises_naming_the_venue_symbols() -> None:
    with pytest.raises(UnknownEntityError) as info:
        preset("binance", "DOGEUSDT")
    message = str(info.value)
    assert "DOGEUSDT" in message
    assert "BTCUSDT" in message


def test_non_string_venue_is_a_validation_error() -> None:
    with pytest.raises(ValidationError, match="venue"):
        preset(7)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------ Binance


def test_binance_btcusdt_first_bracket_is_125x_at_0_40_percent() -> None:
    # Binance, "Updates to Leverage and Margin Tiers ... (2021-03-18)", BTCUSDT 125x:
    # "0 < Position <= 50,000 | 125x | 0.40% | 0.80%"
    # https://www.binance.com/tr/support/announcement/86cf9aa472574b8cb2e05bb751c2a9a6
    tier = preset("binance").tiers[0]
    assert tier.max_leverage == 125.0
    assert tier.maintenance_rate == pytest.approx(0.004)
    assert tier.initial_rate == pytest.approx(0.008)


def test_binance_computed_cum_equals_published_maintenance_amounts() -> None:
    # Maintenance amounts of the same BTCUSDT table as read from Binance's front end
    # (cumFastMaintenanceAmount), gist of 2021-03-26:
    # https://gist.github.com/highfestiva/b71e76f51eed84d56c1be8ebbcc286b5
    published = [0, 50, 1_300, 16_300, 266_300, 1_266_300, 2_516_300, 5_016_300, 25_016_300,
                 100_016_300]  # fmt: skip
    cum = preset("binance").tier_arrays.cum
    assert cum[1] == pytest.approx(50.0)
    np.testing.assert_allclose(cum, published, rtol=1e-12)


def test_binance_uses_tier_down_and_binance_adl_at_bankruptcy() -> None:
    spec = preset("binance")
    assert spec.liquidation.kind == "tier_down"
    assert spec.adl.ranking == "binance"
    assert spec.adl.price == "bankruptcy"
    # Binance Liquidation FAQ: "a liquidation fee (0.3% on BTC/USDT perpetual contract ...)"
    assert spec.liquidation_fee_rate == pytest.approx(0.003)


# ------------------------------------------------------------------------------ Hyperliquid


def test_hyperliquid_btc_tiers_halve_the_initial_rate_at_max_leverage() -> None:
    # https://hyperliquid.gitbook.io/hyperliquid-docs/trading/margin-tiers
    # BTC: "0-150M 40", ">150M 20"; maintenance_margin_rate = initial rate at max leverage / 2;
    # deduction(1) = 150M x (2.5% - 1.25%) = 1,875,000 (closed form of the page's recursion).
    tiers = preset("hyperliquid", "BTC").tier_arrays
    np.testing.assert_allclose(tiers.floor, [0.0, 150e6])
    np.testing.assert_allclose(1.0 / tiers.imr, [40.0, 20.0])
    np.testing.assert_allclose(tiers.mmr, [0.0125, 0.025])
    assert tiers.cum[1] == pytest.approx(1_875_000.0)


def test_hyperliquid_liquidates_20_percent_above_100k_with_30s_cooldown_and_hlp_backstop() -> None:
    # Partial liquidation announcement: "For liquidatable positions larger than 100k USDC ...
    # only 20% of the position ... cooldown period of 30 seconds"; liquidations page:
    # "If the account equity drops below 2/3 of the maintenance margin ... backstop".
    policy = preset("hyperliquid").liquidation
    assert policy.kind == "fixed_fraction"
    assert policy.fraction == pytest.approx(0.2)
    assert policy.fraction_min_notional == pytest.approx(100_000.0)
    assert policy.cooldown_s == pytest.approx(30.0)
    assert policy.backstop_equity_fraction == pytest.approx(2.0 / 3.0)
    assert preset("hyperliquid").adl.ranking == "hyperliquid"


# ------------------------------------------------------------------------------ dYdX v4


def test_dydx_large_cap_imf_2_percent_mmf_1_2_percent() -> None:
    # docs.dydx.community markets page: Large-Cap initial_margin_ppm 20000 [0.02],
    # maintenance_fraction_ppm 600000 [0.6] -> MMF = 0.6 x 0.02 = 0.012.
    for symbol in ("BTC-USD", "ETH-USD"):
        tier = preset("dydx_v4", symbol).tiers[0]
        assert tier.initial_rate == pytest.approx(0.02)
        assert tier.maintenance_rate == pytest.approx(0.012)


def test_dydx_liquidation_is_by_position_portion_via_liquidator_with_1_5_percent_max_fee() -> None:
    # v4-chain 84d4664 testing/genesis.sh and sample_pregenesis.json liquidations_config:
    # max_liquidation_fee_ppm 15000, spread_to_maintenance_margin_ratio_ppm 1500000,
    # bankruptcy_adjustment_ppm 1000000, max_position_portion_liquidated_ppm 100000,
    # min_position_notional_liquidated 1e9 qq, max_notional_liquidated 1e11 qq (100,000 USDC),
    # max_quantums_insurance_lost 1e12 qq (1,000,000 USDC).
    spec = preset("dydx_v4")
    assert spec.liquidation_fee_rate == pytest.approx(0.015)
    assert spec.liquidation.kind == "portion"
    assert spec.liquidation.execution == "liquidator"
    assert spec.liquidation.spread_to_maintenance_ratio == pytest.approx(1.5)
    assert spec.liquidation.bankruptcy_adjustment == pytest.approx(1.0)
    assert spec.liquidation.max_position_portion == pytest.approx(0.10)
    assert spec.liquidation.min_position_notional == pytest.approx(1_000.0)
    assert spec.liquidation.max_notional_per_account_step == pytest.approx(100_000.0)
    assert spec.liquidation.max_insurance_loss_per_account_step == pytest.approx(1_000_000.0)
    assert spec.adl.counterparty == "refuse"


def test_dydx_deleverages_from_a_random_start_per_the_code() -> None:
    # deleveraging.go, OffsetSubaccountPerpetualPosition: "Start from a random subaccount."
    spec = preset("dydx_v4")
    assert spec.adl.ranking == "random_start"
    assert spec.adl.price == "bankruptcy"
    assert any("Docs vs code" in note for note in preset_info("dydx_v4").notes)


# ------------------------------------------------------------------------------ Drift, others


def test_drift_partial_to_maintenance_plus_2_percent_buffer_then_socialized_loss() -> None:
    # constants.rs: DEFAULT_LIQUIDATION_MARGIN_BUFFER_RATIO = MARGIN_PRECISION / 50 (2%);
    # liquidation.rs resolve_perp_bankruptcy socializes the loss through funding rates.
    spec = preset("drift")
    assert spec.liquidation.kind == "partial"
    assert spec.liquidation.target == "maintenance"
    assert spec.liquidation.buffer == pytest.approx(0.02)
    assert spec.adl.ranking == "socialized_loss"
    assert spec.adl.socialize_over == "open_interest"
    assert spec.max_leverage == pytest.approx(20.0)


def test_drift_liquidator_fee_ramp_oracle_fee_basis_insurance_cap_and_fee_pool() -> None:
    # drift-labs/protocol-v2 @ 0ae3e3b1db782a6765c3525b3dec38ad4d9d3a62, programs/drift/src/:
    # get_max_liquidation_fee caps at min(MAX_LIQUIDATION_MULTIPLIER 3 x fee, MMR) = 3%;
    # LIQUIDATION_FEE_ADJUST_GRACE_PERIOD_SLOTS 1500 x 0.4 s = 600 s;
    # LIQUIDATION_FEE_INCREASE_PER_SLOT 1e-6 / 0.4 s = 2.5e-6 per s; liquidate_perp charges
    # the IF fee on the oracle value and calculate_perp_if_fee shrinks it;
    # calculate_max_pct_to_liquidate covers a shortage under $50 at once; INSURANCE_A_MAX =
    # $100M (BTC-PERP assumed tier A); resolve_perp_bankruptcy: insurance fund, then
    # amm.fee_pool, then the cumulative funding rates.
    spec = preset("drift")
    policy = spec.liquidation
    assert policy.execution == "liquidator"
    assert policy.liquidator_fee_rate == pytest.approx(0.01)  # assumed for BTC-PERP (notes)
    assert policy.liquidator_fee_max_rate == pytest.approx(0.03)
    assert policy.liquidator_fee_grace_s == pytest.approx(600.0)
    assert policy.liquidator_fee_ramp_per_s == pytest.approx(2.5e-6)
    assert (policy.fee_basis, policy.insurance_fee) == ("oracle", "shrink_with_shortage")
    assert (policy.ramp_duration_s, policy.ramp_initial_fraction) == (0.0, 0.0)
    assert policy.ramp_full_below == pytest.approx(50.0)
    assert spec.insurance_cap == pytest.approx(100_000_000.0)
    assert spec.adl.fee_pool_pays is True


def test_bybit_level_two_matches_published_rates() -> None:
    # Bybit risk limit notice (via mobie.io): "for the same 4,000,000 position value ... 1% and
    # 1.75%, respectively ... maximum allowable leverage ... 57.14 times".
    tiers = preset("bybit").tiers
    assert tiers[1].notional_floor == pytest.approx(2_000_000.0)
    assert tiers[1].maintenance_rate == pytest.approx(0.01)
    assert tiers[1].initial_rate == pytest.approx(0.0175)
    assert tiers[1].max_leverage == pytest.approx(57.14, abs=0.01)


def test_bitmex_base_margins_and_full_liquidation_with_pnl_leverage_adl() -> None:
    # BitMEX 5 May 2020: XBTUSD base maintenance 0.40%, base initial 1.00%; ADL ranking
    # "PNL Percentage * Effective Leverage", closed at the bankruptcy price.
    spec = preset("bitmex")
    assert spec.tiers[0].initial_rate == pytest.approx(0.01)
    assert spec.tiers[0].maintenance_rate == pytest.approx(0.004)
    # First risk step at the 200 XBT base risk limit: both margins + 0.40%.
    assert spec.tiers[1].maintenance_rate == pytest.approx(0.008)
    assert spec.tiers[1].initial_rate == pytest.approx(0.014)
    assert spec.liquidation.kind == "full"
    assert (spec.adl.ranking, spec.adl.price) == ("pnl_leverage", "bankruptcy")
    # Liquidation Examples (https://testnet.bitmex.com/app/liquidationExamples): BP 99.00,
    # fill 99.25 -> +0.25 to the insurance fund; the trader keeps nothing above bankruptcy.
    assert spec.liquidation_fee_rate == pytest.approx(1.0)


def test_okx_tier_down_and_adl_at_mark() -> None:
    # OKX ADL page: "Deleveraged Positions are ranked based on the leverage PnL% ... forcibly
    # closed at the mark price".
    spec = preset("okx")
    assert spec.liquidation.kind == "tier_down"
    # Forced Partial or Full Liquidation: positions "will be reduced to the maximum of tier 1"
    # (https://supdljgzdhc.okx.com/hc/en-us/articles/360020411711).
    assert spec.liquidation.tier_down_target == "first"
    # Isolated positions by leverage PnL%, cross accounts by margin ratio (ranking 'okx'),
    # ADL when the fund falls 30% within 8 hours.
    assert (spec.adl.ranking, spec.adl.price) == ("okx", "mark")
    assert spec.adl.trigger_fund_drawdown == pytest.approx(0.30)


def test_every_spec_gap_and_assumption_is_recorded() -> None:
    for venue in VENUES:
        info = preset_info(venue)
        assert info.spec_gaps, venue
        assert all(len(gap) > 20 for gap in info.spec_gaps), venue
