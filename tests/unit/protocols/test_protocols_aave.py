"""Tests of the Aave v3.3 venue (deleverage.protocols.aave): the issue's worked example, the
close factor, deficits on the bad-debt line, keepers' latency and gas, the quiet-step index
against a full pass, liquidation levels, configuration and population.

Outside numbers: the issue's worked example (10 ETH at 2,000, LT 0.83, 17,000 USDC ->
HF 0.9765, 8,500 repaid, 4.4625 ETH seized, 0.02125 ETH fee, 4.44125 ETH to the liquidator,
HF 1.0814 after) and closed forms worked by hand in each test.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from deleverage.engine.events import EventKind
from deleverage.errors import ConfigError, ValidationError
from deleverage.protocols.aave.config import (
    AaveConfig,
    AavePopulation,
    AaveReserve,
    aave_population,
)
from deleverage.protocols.aave.venue import AaveVenue, build_aave
from deleverage.protocols.chain import ChainConfig
from deleverage.protocols.keepers import KeepersConfig, KeeperSpec
from deleverage.venues.protocol import PriceInputs

S = 10**9
WETH = AaveReserve(
    name="WETH",
    asset="ETH",
    ltv=0.80,
    liquidation_threshold=0.83,
    liquidation_bonus=1.05,
    protocol_fee=0.10,
)
USDC = AaveReserve(
    name="USDC",
    asset=None,
    decimals=6,
    ltv=0.75,
    liquidation_threshold=0.78,
    liquidation_bonus=1.045,
    protocol_fee=0.10,
)


def _config(latency: int = 0, capital: float = 1e7, **chain: float) -> AaveConfig:
    return AaveConfig(
        reserves=(WETH, USDC),
        chain=ChainConfig(priority_noise_sigma=0.0, **chain),
        keepers=KeepersConfig(keepers=(KeeperSpec(capital=capital, latency_blocks=latency),)),
    )


def _venue(collateral: list[list[float]], debt: list[list[float]], **kw: float) -> AaveVenue:
    population = AavePopulation(np.array(collateral), np.array(debt))
    return build_aave(_config(**kw), population, prices={"ETH": 2_000.0})  # type: ignore[arg-type]


def _eth(price: float) -> dict[str, PriceInputs]:
    return {"ETH": PriceInputs(price)}


def test_the_issues_worked_example() -> None:
    # Arrange: 10 ETH at 2,000 (LT 0.83) against 17,000 USDC.
    venue = _venue([[10.0, 0.0]], [[0.0, 17_000.0]])
    assert venue.health_factors()[0] == pytest.approx(0.9765, abs=5e-5)
    # Act
    step = venue.step(_eth(2_000.0), ts_ns=12 * S)
    # Assert: 50% close factor, 8,500 repaid, 4.4625 ETH seized, 0.02125 ETH to the treasury,
    # 4.44125 ETH to the keeper (sold into the market), HF 1.0814 after.
    assert step.liquidations == 1
    assert venue.debt[0, 1] == pytest.approx(8_500.0)
    assert venue.collateral[0, 0] == pytest.approx(10.0 - 4.4625)
    assert venue.treasury[0] == pytest.approx(0.02125)
    assert step.forced_flow["ETH"] == pytest.approx(-4.44125)
    assert step.liquidated_notional == pytest.approx(4.4625 * 2_000.0)
    assert venue.health_factors()[0] == pytest.approx(1.0814, abs=5e-5)
    assert step.solvency.bad_debt == 0.0
    row = venue.journal().to_frame().iloc[0]
    assert row["kind"] == EventKind.LIQUIDATION
    assert row["size"] == pytest.approx(-4.4625)
    assert row["fee"] == pytest.approx(0.02125 * 2_000.0)


def test_below_hf_095_the_whole_debt_is_repaid() -> None:
    # HF = 10 x 1,900 x 0.83 / 17,000 = 0.9276 <= 0.95: close factor 100%.
    venue = _venue([[10.0, 0.0]], [[0.0, 17_000.0]])
    venue.step(_eth(1_900.0), ts_ns=12 * S)
    assert venue.debt[0, 1] == 0.0
    assert venue.collateral[0, 0] == pytest.approx(10.0 - 17_000.0 / 1_900.0 * 1.05)


def test_collateral_running_out_leaves_a_deficit_on_the_bad_debt_line() -> None:
    # 1 ETH against 1,900 USDC; at 1,500 the ETH buys back 1,500 / 1.05 = 1,428.57 of debt.
    venue = _venue([[1.0, 0.0]], [[0.0, 1_900.0]])
    step = venue.step(_eth(1_500.0), ts_ns=12 * S)
    deficit = 1_900.0 - 1_500.0 / 1.05
    assert step.liquidations == 1
    assert venue.collateral[0].sum() == 0.0
    assert venue.debt[0].sum() == 0.0
    assert venue.deficit[1] == pytest.approx(deficit)
    assert step.solvency.bad_debt == pytest.approx(deficit)
    assert step.solvency.uncovered == pytest.approx(deficit)
    bad = venue.journal().to_frame().query("kind == @EventKind.BAD_DEBT")
    assert bad["amount"].sum() == pytest.approx(deficit)


def test_a_slow_keeper_leaves_the_account_under_water_for_its_latency() -> None:
    venue = _venue([[10.0, 0.0]], [[0.0, 17_000.0]], latency=2)
    assert venue.step(_eth(2_000.0), ts_ns=0).liquidations == 0  # block 0: seen
    assert venue.step(_eth(2_000.0), ts_ns=12 * S).liquidations == 0  # block 1
    assert venue.step(_eth(2_000.0), ts_ns=24 * S).liquidations == 1  # block 2: acts
    assert venue.liquidatable_account_seconds == pytest.approx(24.0)


def test_gas_dearer_than_the_bonus_stops_the_keepers() -> None:
    # 400,000 gas x 100,000 gwei x 2,000 = 80,000 USD > the 382.5 USD bonus.
    venue = _venue([[10.0, 0.0]], [[0.0, 17_000.0]], initial_base_fee_gwei=1e5, max_gas_gwei=1e6)
    step = venue.step(_eth(2_000.0), ts_ns=12 * S)
    assert step.liquidations == 0
    assert venue.missed_opportunities == 1
    assert venue.health_factors()[0] < 1.0


def test_keepers_without_capital_cannot_repay() -> None:
    venue = _venue([[10.0, 0.0]], [[0.0, 17_000.0]], capital=8_000.0)  # needs 8,500 + gas
    assert venue.step(_eth(2_000.0), ts_ns=12 * S).liquidations == 0


def test_a_short_is_liquidated_when_the_debt_asset_rises_and_keepers_buy_it() -> None:
    # 30,000 USDC (LT 0.78) against 10 ETH: HF 1 at 2,340.
    venue = _venue([[0.0, 30_000.0]], [[10.0, 0.0]])
    level = venue.liquidation_levels()
    assert level["liquidation_price"].iloc[0] == pytest.approx(2_340.0)
    assert level["size"].iloc[0] == pytest.approx(-10.0)
    step = venue.step(_eth(2_400.0), ts_ns=12 * S)
    assert step.liquidations == 1
    assert step.forced_flow["ETH"] > 0.0


@given(
    seed=st.integers(0, 1000),
    moves=st.lists(st.floats(-0.08, 0.08), min_size=3, max_size=12),
)
def test_the_quiet_step_index_finds_what_a_full_pass_finds(seed: int, moves: list[float]) -> None:
    # Same venue twice, one forced to a full pass on every step: identical steps and state.
    config = _config()
    population = aave_population(config, 300, seed=seed, prices={"ETH": 2_000.0}, min_health=1.01)
    fast = build_aave(config, population, prices={"ETH": 2_000.0})
    full = build_aave(config, population, prices={"ETH": 2_000.0})
    full._full_pass_limit = -1
    price = 2_000.0
    collateral0, debt0 = population.collateral.copy(), population.debt.copy()
    for k, move in enumerate(moves, start=1):
        price *= float(np.exp(move))
        a = fast.step(_eth(price), ts_ns=k * 12 * S)
        b = full.step(_eth(price), ts_ns=k * 12 * S)
        assert a == b
        assert (fast.collateral >= 0.0).all()
        assert (fast.debt >= 0.0).all()
    np.testing.assert_array_equal(fast.collateral, full.collateral)
    # Tokens add up: what left the accounts was seized, repaid or burned into the deficit.
    rows = fast.journal().to_frame()
    liq = rows[rows["kind"] == EventKind.LIQUIDATION]
    seized = np.bincount(liq["market"], weights=-liq["size"], minlength=2)
    scale = 1e-12 * collateral0.sum()  # sums in another order differ by rounding
    np.testing.assert_allclose(
        collateral0.sum(0) - fast.collateral.sum(0), seized, rtol=1e-9, atol=scale
    )
    repaid_plus_deficit = debt0.sum(0) - fast.debt.sum(0)
    assert (repaid_plus_deficit >= fast.deficit - 1e-12 * debt0.sum()).all()
    assert fast.solvency().bad_debt == pytest.approx(
        rows.loc[rows["kind"] == EventKind.BAD_DEBT, "amount"].sum()
    )


@given(seed=st.integers(0, 1000))
def test_at_a_liquidation_level_the_health_factor_is_one(seed: int) -> None:
    config = _config()
    population = aave_population(config, 50, seed=seed, prices={"ETH": 2_000.0})
    venue = build_aave(config, population, prices={"ETH": 2_000.0})
    levels = venue.liquidation_levels().dropna()
    assert len(levels) > 0
    for row in levels.itertuples():
        probe = build_aave(config, population, prices={"ETH": row.liquidation_price})
        assert probe.health_factors()[row.account] == pytest.approx(1.0, rel=1e-9)


def test_the_population_is_seeded_and_within_its_loan_to_value() -> None:
    config = _config()
    a = aave_population(config, 2_000, seed=3, prices={"ETH": 2_000.0})
    b = aave_population(config, 2_000, seed=3, prices={"ETH": 2_000.0})
    np.testing.assert_array_equal(a.collateral, b.collateral)
    venue = build_aave(config, a, prices={"ETH": 2_000.0})
    assert venue.health_factors().min() >= 1.03 - 1e-12
    p = np.array([2_000.0, 1.0])
    ltv = np.array([0.80, 0.75])
    assert ((a.debt @ p) <= (a.collateral * p) @ ltv * (1 + 1e-12)).all()
    assert (a.debt > 0).sum(axis=1).tolist() == [1] * 2_000


def test_bad_configuration_is_refused_naming_the_field() -> None:
    with pytest.raises(ConfigError, match="liquidation_bonus"):
        AaveReserve(
            name="X", asset="X", ltv=0.8, liquidation_threshold=0.97, liquidation_bonus=1.05
        )
    with pytest.raises(ConfigError, match="ltv"):
        AaveReserve(name="X", asset="X", ltv=0.9, liquidation_threshold=0.8, liquidation_bonus=1.05)
    with pytest.raises(ConfigError, match="native_asset"):
        AaveConfig(reserves=(USDC,))
    with pytest.raises(ConfigError, match="unique"):
        AaveConfig(reserves=(WETH, WETH))
    with pytest.raises(ConfigError, match="not a field"):
        AaveConfig.from_mapping({"reserve": []})
    with pytest.raises(ValidationError, match=r"population\.debt"):
        build_aave(
            _config(), AavePopulation(np.ones((2, 2)), -np.ones((2, 2))), prices={"ETH": 1.0}
        )
    with pytest.raises(ValidationError, match="prices"):
        build_aave(_config(), AavePopulation(np.ones((2, 2)), np.ones((2, 2))), prices={})
    with pytest.raises(ValidationError, match="min_health"):
        aave_population(_config(), 5, seed=1, prices={"ETH": 1.0}, min_health=0.9)


def test_a_config_round_trips_through_toml_mapping() -> None:
    config = AaveConfig.from_mapping(
        {
            "name": "aave-eth",
            "reserves": [WETH.model_dump(), USDC.model_dump()],
            "keepers": {"keepers": [{"capital": 1e6, "latency_blocks": 3}]},
        }
    )
    assert config.assets == ("ETH",)
    assert config.keepers.keepers[0].latency_blocks == 3
    assert AaveConfig.from_json(config.to_json()) == config


def test_liquidations_read_the_oracle_not_the_index() -> None:
    # The index has crashed, the oracle still reads 2,100: HF = 10 x 2,100 x 0.83 / 17,000 > 1.
    venue = _venue([[10.0, 0.0]], [[0.0, 17_000.0]])
    stale = {"ETH": PriceInputs(1_500.0, oracle_price=2_100.0)}
    assert venue.step(stale, ts_ns=12 * S).liquidations == 0
    assert venue.step(_eth(2_000.0), ts_ns=24 * S).liquidations == 1


def test_keepers_sell_at_the_market_price_and_their_slippage_counts() -> None:
    # Oracle 2,000 but the book sells at 1,900: 4.44125 x 1,900 - 8,500 = -61.6 < 0, no action.
    venue = _venue([[10.0, 0.0]], [[0.0, 17_000.0]])
    book = {"ETH": PriceInputs(2_000.0, book_price=1_900.0)}
    assert venue.step(book, ts_ns=12 * S).liquidations == 0
    assert venue.missed_opportunities == 1


def test_liquidations_queue_gas_that_raises_the_next_blocks_fee() -> None:
    # 300 accounts liquidated at once submit 300 x 400,000 = 120M gas: 8 full blocks.
    n = 300
    venue = _venue([[10.0, 0.0]] * n, [[0.0, 17_000.0]] * n, volatility_demand=0.0)
    before = venue.chain.base_fee_gwei
    assert venue.step(_eth(2_000.0), ts_ns=0).liquidations == n
    assert venue.chain.pending_gas == pytest.approx(n * 400_000.0)
    venue.step(_eth(2_000.0), ts_ns=12 * S)
    assert venue.chain.base_fee_gwei == pytest.approx(before * 1.125)
