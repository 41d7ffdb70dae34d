"""GmxVenue: the trigger band never skips a liquidatable position, liquidation prices are
where liquidation starts, ADL lands on its target, keepers on a chain wait and weigh gas, and
bad configuration is refused with the field named."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deleverage.errors import ConfigError, ValidationError
from deleverage.protocols.chain import Chain, ChainConfig
from deleverage.protocols.gmx import (
    GmxConfig,
    GmxPopulation,
    GmxVenue,
    build_gmx,
    gmx_population,
)
from deleverage.protocols.gmx import math as gm
from deleverage.protocols.keepers import Keepers, KeepersConfig, KeeperSpec
from deleverage.venues.protocol import PriceInputs

S = 10**9


def _venue(pop: GmxPopulation, **cfg: float | str | bool) -> GmxVenue:
    base: dict[str, float | str | bool] = {
        "asset": "ETH",
        "long_pool_tokens": 10_000.0,
        "short_pool_usd": 50_000_000.0,
        "oracle_half_spread": 0.0005,
        "positive_impact_factor": 2.5e-10,
        "negative_impact_factor": 5e-10,
        "borrowing_rate_per_s": 1e-8,
        "funding_factor": 5e-8,
    }
    return GmxVenue(GmxConfig(**{**base, **cfg}), pop)


def _unliquidated(venue: GmxVenue, price: float) -> int:
    """Open positions still liquidatable at ``price`` (a brute-force pass of the formulas)."""
    h = venue._cfg.oracle_half_spread
    open_ = np.flatnonzero(venue._size_usd > 0.0)
    rem = venue._remaining(open_, price * (1 - h), price * (1 + h))
    thr = gm.liquidation_threshold_usd(
        venue._size_usd[open_],
        min_collateral_usd=venue._cfg.min_collateral_usd,
        min_collateral_factor=venue._cfg.min_collateral_factor,
    )
    return int(((rem < thr) | (rem <= 0.0)).sum())


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**16),
    moves=st.lists(st.floats(-0.04, 0.04), min_size=3, max_size=25),
)
def test_no_liquidatable_position_survives_a_step_quiet_or_not(
    seed: int, moves: list[float]
) -> None:
    # Arrange
    pop = gmx_population(300, seed=seed, price=2_000.0, leverage=(2.0, 80.0))
    venue = _venue(pop)
    price = 2_000.0
    # Act / Assert: with perfect keepers, after every step nothing open is liquidatable,
    # whether the band let the step return early or not
    for k, move in enumerate(moves, start=1):
        price *= np.exp(move)
        venue.step({"ETH": PriceInputs(price)}, ts_ns=k * 60 * S)
        assert _unliquidated(venue, price) == 0


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**16), lev=st.floats(2.0, 90.0), is_long=st.booleans())
def test_a_position_is_liquidated_just_past_its_liquidation_price_and_not_before(
    seed: int, lev: float, is_long: bool
) -> None:
    rng = np.random.default_rng(seed)
    in_token = bool(rng.random() < 0.5)
    size = float(rng.uniform(1e3, 1e6))
    entry = float(2_000.0 * np.exp(rng.normal(0, 0.03)))
    coll_usd = size / lev
    pop = GmxPopulation(
        is_long=np.array([is_long]),
        collateral_amount=np.array([coll_usd / 2_000.0 if in_token else coll_usd]),
        collateral_is_long_token=np.array([in_token]),
        size_usd=np.array([size]),
        size_tokens=np.array([size / entry]),
    )
    level = _venue(pop, borrowing_rate_per_s=0.0).liquidation_levels()["liquidation_price"][0]
    if not np.isfinite(level):
        return
    falls = is_long or (in_token and coll_usd / 2_000.0 > size / entry * 1.001)
    safe, past = (level * 1.0001, level * 0.9999) if falls else (level * 0.9999, level * 1.0001)
    assert (
        _venue(pop, borrowing_rate_per_s=0.0).step({"ETH": PriceInputs(safe)}, ts_ns=S).liquidations
        == 0
    )
    assert (
        _venue(pop, borrowing_rate_per_s=0.0).step({"ETH": PriceInputs(past)}, ts_ns=S).liquidations
        == 1
    )


def test_borrowing_fees_liquidate_a_position_at_a_constant_price() -> None:
    # 10x long with USD collateral: 10% margin, 1% threshold, 0.06% close fee; borrowing of
    # 1e-7 of size per second eats the remaining 8.94% in about 894,000 s.
    pop = GmxPopulation(
        is_long=np.array([True]),
        collateral_amount=np.array([1_000.0]),
        collateral_is_long_token=np.array([False]),
        size_usd=np.array([10_000.0]),
        size_tokens=np.array([5.0]),
    )
    venue = _venue(
        pop,
        funding_factor=0.0,
        borrowing_rate_per_s=1e-7,
        oracle_half_spread=0.0,
        negative_impact_factor=0.0,
        positive_impact_factor=0.0,
    )
    venue.step({"ETH": PriceInputs(2_000.0)}, ts_ns=S)
    assert venue.step({"ETH": PriceInputs(2_000.0)}, ts_ns=800_000 * S).liquidations == 0
    assert venue.step({"ETH": PriceInputs(2_000.0)}, ts_ns=900_000 * S).liquidations == 1


def test_the_larger_side_pays_funding_until_it_is_liquidated() -> None:
    # longs 30,000 and shorts 10,000 of open interest: longs pay
    # fundingFactor x diff / total = 2e-6 x 20,000 / 40,000 = 1e-6 per second on their size;
    # the 10x long (3,000 over a 300 threshold) lasts 2,700 / 0.03 = 90,000 s
    pop = GmxPopulation(
        is_long=np.array([True, False]),
        collateral_amount=np.array([3_000.0, 5_000.0]),
        collateral_is_long_token=np.array([False, False]),
        size_usd=np.array([30_000.0, 10_000.0]),
        size_tokens=np.array([15.0, 5.0]),
    )
    venue = _venue(
        pop,
        oracle_half_spread=0.0,
        borrowing_rate_per_s=0.0,
        funding_factor=2e-6,
        max_funding_factor_per_s=1e-5,
        position_fee_factor_positive=0.0,
        position_fee_factor_negative=0.0,
        positive_impact_factor=0.0,
        negative_impact_factor=0.0,
    )
    venue.step({"ETH": PriceInputs(2_000.0)}, ts_ns=S)
    assert venue.step({"ETH": PriceInputs(2_000.0)}, ts_ns=89_000 * S).liquidations == 0
    assert venue.step({"ETH": PriceInputs(2_000.0)}, ts_ns=91_001 * S).liquidations == 1
    assert venue.open_positions()["is_long"].tolist() == [False]  # the short pays nothing
    # the long owed 30,000 x 1e-6 x 91,000 = 2,730, paid from its collateral to the shorts
    assert venue.funding_claimable_usd() == pytest.approx(2_730.0, rel=1e-9)


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**16), rise=st.floats(1.5, 4.0))
def test_adl_brings_each_side_to_the_target_and_never_below(seed: int, rise: float) -> None:
    pop = gmx_population(200, seed=seed, price=2_000.0, leverage=(2.0, 5.0), long_fraction=1.0)
    venue = _venue(
        pop,
        long_pool_tokens=60.0,
        max_pnl_factor_for_adl=0.3,
        min_pnl_factor_after_adl=0.2,
        max_pnl_factor_for_traders=0.5,
        oracle_half_spread=0.0,
    )
    price = 2_000.0 * rise
    before = venue.pnl_to_pool_factor(is_long=True, price=price)
    venue.step({"ETH": PriceInputs(price)}, ts_ns=S)
    after = venue.pnl_to_pool_factor(is_long=True, price=price)
    if before > 0.3:
        assert after == pytest.approx(0.2, abs=1e-9)
        assert len(venue.journal()) > 0
    else:
        assert after == pytest.approx(before)


def test_the_price_impact_of_a_close_follows_the_same_side_and_crossover_formulas() -> None:
    # long OI 3,000, short 1,000; closing a 1,000 long improves balance on the same side:
    # +2.5e-10 x (2,000^2 - 1,000^2); closing a 3,000 long crosses to 1,000 short-heavy:
    # f+(2,000) - f-(1,000)
    impact = gm.close_price_impact_usd(
        is_long=np.array([True, True, False]),
        size_usd=np.array([1_000.0, 3_000.0, 500.0]),
        long_open_interest_usd=3_000.0,
        short_open_interest_usd=1_000.0,
        positive_factor=2.5e-10,
        negative_factor=5e-10,
        exponent=2.0,
    )
    assert impact[0] == pytest.approx(2.5e-10 * (2_000.0**2 - 1_000.0**2))
    assert impact[1] == pytest.approx(2.5e-10 * 2_000.0**2 - 5e-10 * 1_000.0**2)
    # closing a 500 short widens the imbalance: -5e-10 x (2,500^2 - 2,000^2)
    assert impact[2] == pytest.approx(-5e-10 * (2_500.0**2 - 2_000.0**2))


def _one_liquidatable() -> GmxPopulation:
    return GmxPopulation(
        is_long=np.array([True]),
        collateral_amount=np.array([1_000.0]),
        collateral_is_long_token=np.array([False]),
        size_usd=np.array([20_000.0]),
        size_tokens=np.array([10.0]),
    )


def _keepers(latency: int, gas_units: float = 500_000.0) -> Keepers:
    spec = KeeperSpec(capital=1_000.0, latency_blocks=latency, gas_units=gas_units)
    return Keepers(KeepersConfig(keepers=(spec,)))


def test_keepers_on_chain_liquidate_after_their_latency_in_blocks() -> None:
    chain = Chain(ChainConfig(block_time_s=12.0, priority_noise_sigma=0.0), seed=3)
    venue = GmxVenue(
        GmxConfig(asset="ETH", execution_fee_usd=50.0),
        _one_liquidatable(),
        keepers=_keepers(latency=2),
        chain=chain,
        native_asset="ETH",
    )
    # 20x long from 2,000: liquidatable below ~1,921; seen in block 1, taken from block 3
    assert venue.step({"ETH": PriceInputs(1_900.0)}, ts_ns=12 * S).liquidations == 0
    assert venue.step({"ETH": PriceInputs(1_900.0)}, ts_ns=24 * S).liquidations == 0
    assert venue.step({"ETH": PriceInputs(1_900.0)}, ts_ns=36 * S).liquidations == 1


def test_keepers_do_not_liquidate_when_gas_costs_more_than_the_execution_fee() -> None:
    chain = Chain(ChainConfig(initial_base_fee_gwei=200.0, priority_noise_sigma=0.0), seed=3)
    # 500,000 gas x ~202 gwei x 1,900 = ~192 USD of gas against a 50 USD fee
    venue = GmxVenue(
        GmxConfig(asset="ETH", execution_fee_usd=50.0),
        _one_liquidatable(),
        keepers=_keepers(latency=0),
        chain=chain,
        native_asset="ETH",
    )
    for k in range(1, 6):
        assert venue.step({"ETH": PriceInputs(1_900.0)}, ts_ns=k * 12 * S).liquidations == 0
    assert len(venue.liquidation_levels()) == 1


def test_a_config_with_the_adl_target_above_its_trigger_is_refused_by_name() -> None:
    with pytest.raises(ConfigError, match="min_pnl_factor_after_adl"):
        GmxConfig(max_pnl_factor_for_adl=0.3, min_pnl_factor_after_adl=0.4)
    with pytest.raises(ConfigError, match="min_collateral_factor"):
        GmxConfig(min_collateral_factor=1.5)


def test_a_population_with_a_negative_collateral_is_refused_by_name() -> None:
    pop = _one_liquidatable()._replace(collateral_amount=np.array([-1.0]))
    with pytest.raises(ValidationError, match=r"collateral_amount\[0\]"):
        GmxVenue(GmxConfig(), pop)


def test_keepers_need_a_chain_and_a_gas_asset() -> None:
    with pytest.raises(ValidationError, match="keepers"):
        GmxVenue(GmxConfig(), _one_liquidatable(), keepers=_keepers(0))
    with pytest.raises(ValidationError, match="native_asset"):
        GmxVenue(GmxConfig(), _one_liquidatable(), native_asset="BTC")


def test_a_scenario_table_builds_a_venue_with_drawn_positions_and_chain_keepers() -> None:
    # what a world's `[[venues]] kind = "gmx"` config table would hold
    config = GmxConfig.from_toml(
        """
        asset = "ETH"
        long_pool_tokens = 50000.0
        short_pool_usd = 100000000.0
        [population]
        positions = 500
        leverage_high = 20.0
        [keepers]
        keepers = [{capital = 1000.0, latency_blocks = 2}]
        [chain]
        block_time_s = 2.0
        """
    )
    venue = build_gmx(config, prices={"ETH": 2_000.0}, seed=5)
    assert len(venue.open_positions()) == 500
    assert venue._keepers.chain is not None
    assert venue._keepers.native_asset == "ETH"
    again = build_gmx(config, prices={"ETH": 2_000.0}, seed=5)
    assert again.open_positions().equals(venue.open_positions())


def test_building_without_a_population_needs_the_price_and_a_bad_gas_asset_is_named() -> None:
    with pytest.raises(ValidationError, match="prices"):
        build_gmx(GmxConfig())
    with pytest.raises(ConfigError, match="native_asset"):
        GmxConfig(asset="ETH", native_asset="BTC")
    with pytest.raises(ConfigError, match="leverage_high"):
        GmxConfig.from_mapping({"population": {"leverage_low": 10.0, "leverage_high": 5.0}})


def test_adl_waits_for_keepers_who_find_it_worth_their_gas() -> None:
    # the AdlOrder.ts position (2,000,000 long at 5,000, 1,000 WETH pool) at 10,000: factor
    # 0.2 > 0.1; a 50 USD fee against ~200 USD of gas leaves it; 5 USD of gas takes it to 0.02
    pop = GmxPopulation(
        is_long=np.array([True]),
        collateral_amount=np.array([100.0]),
        collateral_is_long_token=np.array([True]),
        size_usd=np.array([2_000_000.0]),
        size_tokens=np.array([400.0]),
    )
    config = GmxConfig(
        asset="ETH", long_pool_tokens=1_000.0, max_pnl_factor_for_adl=0.1,
        min_pnl_factor_after_adl=0.02, execution_fee_usd=50.0,
    )  # fmt: skip
    for base_fee, expected in ((10.0, 0.2), (0.25, 0.02)):
        chain = Chain(
            ChainConfig(
                initial_base_fee_gwei=base_fee, min_base_fee_gwei=0.1, priority_fee_gwei=0.0
            ),
            seed=1,
        )
        venue = GmxVenue(
            config, pop, keepers=_keepers(latency=0, gas_units=2_000_000.0), chain=chain,
            native_asset="ETH",
        )  # fmt: skip
        venue.step({"ETH": PriceInputs(10_000.0)}, ts_ns=12 * S)
        factor = venue.pnl_to_pool_factor(is_long=True, price=10_000.0)
        assert factor == pytest.approx(expected, rel=1e-6)


@settings(max_examples=40, deadline=None)
@given(
    is_long=st.booleans(),
    in_token=st.booleans(),
    lev=st.floats(2.0, 100.0),
    move=st.floats(-0.6, 0.6),
    liq_fee=st.floats(0.0, 0.01),
)
def test_the_pool_gains_the_traders_loss_and_fees_less_the_loss_beyond_collateral(
    is_long: bool, in_token: bool, lev: float, move: float, liq_fee: float
) -> None:
    # one position opened at 2,000; the price jumps; with no spread, impact (a lone position's
    # close restores balance: positive, counted as 0) or borrowing, a liquidation must leave
    # pool gain (USD) = -PnL + position fee + liquidation fee - loss beyond collateral
    size, entry, price = 100_000.0, 2_000.0, 2_000.0 * (1.0 + move)
    coll_usd = size / lev
    pop = GmxPopulation(
        is_long=np.array([is_long]),
        collateral_amount=np.array([coll_usd / entry if in_token else coll_usd]),
        collateral_is_long_token=np.array([in_token]),
        size_usd=np.array([size]),
        size_tokens=np.array([size / entry]),
    )
    venue = _venue(
        pop, oracle_half_spread=0.0, borrowing_rate_per_s=0.0, funding_factor=0.0,
        liquidation_fee_factor=liq_fee, long_pool_tokens=1e6, short_pool_usd=1e9,
    )  # fmt: skip
    long_before, short_before = venue.pool_amounts()
    step = venue.step({"ETH": PriceInputs(price)}, ts_ns=S)
    if step.liquidations == 0:
        return
    long_after, short_after = venue.pool_amounts()
    gain = (long_after - long_before) * price + (short_after - short_before)
    pnl = size / entry * price - size if is_long else size - size / entry * price
    fees = size * (0.0004 + liq_fee)  # the close improves balance: the positive fee factor
    expected = -pnl + fees - step.solvency.backstop_loss
    assert gain == pytest.approx(expected, rel=1e-9, abs=1e-6)


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**16),
    moves=st.lists(
        st.tuples(st.floats(-0.04, 0.04), st.floats(-0.04, 0.04)), min_size=3, max_size=25
    ),
)
def test_with_a_separate_long_token_no_liquidatable_position_survives_a_step(
    seed: int, moves: list[tuple[float, float]]
) -> None:
    # a SOL market backed by WETH: half the collateral in WETH, priced apart from the index
    pop = gmx_population(300, seed=seed, price=100.0, leverage=(2.0, 60.0))
    pop = pop._replace(
        collateral_amount=np.where(
            pop.collateral_is_long_token, pop.collateral_amount * 100.0 / 2_000.0,
            pop.collateral_amount,
        )
    )  # fmt: skip
    venue = _venue(pop, asset="SOL", long_token_asset="WETH", long_pool_tokens=1e6)
    sol, weth = 100.0, 2_000.0
    for k, (a, b) in enumerate(moves, start=1):
        sol, weth = sol * float(np.exp(a)), weth * float(np.exp(b))
        venue.step({"SOL": PriceInputs(sol), "WETH": PriceInputs(weth)}, ts_ns=k * 60 * S)
        h = venue._cfg.oracle_half_spread
        open_ = np.flatnonzero(venue._size_usd > 0.0)
        rem = venue._remaining(open_, sol * (1 - h), sol * (1 + h))
        thr = gm.liquidation_threshold_usd(
            venue._size_usd[open_], min_collateral_usd=1.0, min_collateral_factor=0.01
        )
        assert not ((rem < thr) | (rem <= 0.0)).any()
