"""SynthetixVenue: the quiet-step bound never skips an eligible account, windows cap what is
liquidated, the LP pool's loss line, keepers priced out by gas against the capped reward, the
premium/discount escape, liquidation prices, and refused configuration."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deleverage.engine.events import EventKind
from deleverage.errors import ConfigError, ValidationError
from deleverage.protocols.chain import Chain, ChainConfig
from deleverage.protocols.keepers import Keepers, KeepersConfig, KeeperSpec
from deleverage.protocols.oracle_pool import PoolAction
from deleverage.protocols.synthetix import (
    SynthetixConfig,
    SynthetixMarketConfig,
    SynthetixPopulation,
    SynthetixVenue,
    build_synthetix,
    synthetix_population,
)
from deleverage.venues.protocol import PriceInputs

S = 10**9
PRICES = {"ETH": 2_000.0, "BTC": 60_000.0, "SOL": 100.0}


def _config(**extra: float) -> SynthetixConfig:
    markets = (
        SynthetixMarketConfig(
            asset="ETH", skew_scale=50_000.0, flag_reward_ratio=0.001, max_funding_velocity=36.0
        ),
        SynthetixMarketConfig(
            asset="BTC", skew_scale=2_000.0, flag_reward_ratio=0.001, max_funding_velocity=36.0
        ),
        SynthetixMarketConfig(asset="SOL", skew_scale=1_000_000.0, flag_reward_ratio=0.001),
    )
    return SynthetixConfig(markets=markets, **extra)


def _eligible_unflagged(venue: SynthetixVenue, prices: dict[str, float]) -> int:
    count = 0
    for a in range(venue._size.shape[0]):
        if venue.is_flagged(a) or not (venue._size[a] != 0.0).any():
            continue
        count += int(venue.account_margins(a, prices)["eligible"] == 1.0)
    return count


@settings(max_examples=20, deadline=None)
@given(
    seed=st.integers(0, 2**16),
    moves=st.lists(st.tuples(*[st.floats(-0.05, 0.05)] * 3), min_size=2, max_size=15),
)
def test_no_eligible_account_stays_unflagged_after_a_step_with_funding(
    seed: int, moves: list[tuple[float, float, float]]
) -> None:
    config = _config()
    pop = synthetix_population(
        150, seed=seed, config=config, prices=PRICES, markets_per_account=2, leverage=(2.0, 40.0)
    )
    venue = SynthetixVenue(config, pop)
    prices = dict(PRICES)
    for k, move in enumerate(moves, start=1):
        prices = {a: p * float(np.exp(r)) for (a, p), r in zip(prices.items(), move, strict=True)}
        venue.step({a: PriceInputs(p) for a, p in prices.items()}, ts_ns=k * 600 * S)
        assert _eligible_unflagged(venue, prices) == 0


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**16), fall=st.floats(0.5, 0.9), steps=st.integers(3, 30))
def test_no_window_ever_liquidates_more_than_its_limit(seed: int, fall: float, steps: int) -> None:
    market = SynthetixMarketConfig(
        asset="ETH",
        skew_scale=2_000.0,
        maker_fee=0.0002,
        taker_fee=0.0005,
        max_seconds_in_liquidation_window=30.0,
    )
    config = SynthetixConfig(markets=(market,))
    pop = synthetix_population(
        100,
        seed=seed,
        config=config,
        prices={"ETH": 2_000.0},
        long_fraction=1.0,
        mean_notional_usd=200_000.0,
    )
    venue = SynthetixVenue(config, pop)
    for k in range(steps):
        venue.step({"ETH": PriceInputs(2_000.0 * fall)}, ts_ns=(100 + 7 * k) * S)
    rows = venue.journal().to_frame()
    rows = rows[rows["code"] == int(PoolAction.SYNTHETIX_LIQUIDATION)]
    ts = rows["ts_ns"].to_numpy() * 1e-9
    amount = rows["size"].abs().to_numpy()
    limit = market.max_liquidation_in_window  # (0.0002 + 0.0005) x 2,000 x 30 = 42
    assert limit == pytest.approx(42.0)
    for t in np.unique(ts):
        inside = (ts > t - 30.0) & (ts <= t)
        assert amount[inside].sum() <= limit * (1 + 1e-12)


def test_a_flag_puts_the_reward_the_collateral_cannot_cover_on_the_backstop_line() -> None:
    # 1 ETH long from 2,000 with 150 of collateral, min position margin 0, reward guards:
    # min 20, max 500, scaling 0.5. At 1,860: available = 150 - 140 = 10; reward =
    # min(max(20, 1,860 x 0.001), min(150 x 0.5, 500)) = 20: the pool loses 20 - 10 = 10.
    market = SynthetixMarketConfig(asset="ETH", skew_scale=1e9, flag_reward_ratio=0.001)
    config = SynthetixConfig(
        markets=(market,), min_keeper_reward_usd=20.0, max_keeper_scaling_ratio=0.5
    )
    pop = SynthetixPopulation(np.array([150.0]), np.array([[1.0]]), np.array([[2_000.0]]))
    venue = SynthetixVenue(config, pop)
    step = venue.step({"ETH": PriceInputs(1_860.0)}, ts_ns=S)
    assert step.liquidations == 1
    assert venue.pool_flows() == {"collateral_seized": 150.0, "keeper_rewards_paid": 20.0}
    assert step.solvency.backstop_loss == pytest.approx(10.0, rel=1e-9)
    flag = venue.journal().to_frame().iloc[0]
    assert flag["kind"] == int(EventKind.LIQUIDATION)
    assert flag["code"] == int(PoolAction.SYNTHETIX_FLAG)


def test_keepers_leave_an_account_when_gas_costs_more_than_the_capped_reward() -> None:
    # The keeper-cost oracle follows the chain's gas, but the reward is capped at 5 USD:
    # 550,000 gas at ~202 gwei and 1,860 USD costs ~207 USD, so nobody flags.
    market = SynthetixMarketConfig(asset="ETH", skew_scale=1e9)
    config = SynthetixConfig(markets=(market,), max_keeper_reward_usd=5.0)
    pop = SynthetixPopulation(np.array([150.0]), np.array([[1.0]]), np.array([[2_000.0]]))
    keepers = Keepers(
        KeepersConfig(keepers=(KeeperSpec(capital=10_000.0, latency_blocks=0, gas_units=5e5),))
    )
    chain = Chain(ChainConfig(initial_base_fee_gwei=200.0, priority_noise_sigma=0.0), seed=1)
    venue = SynthetixVenue(config, pop, keepers=keepers, chain=chain, native_asset="ETH")
    for k in range(1, 5):
        assert venue.step({"ETH": PriceInputs(1_860.0)}, ts_ns=k * 12 * S).liquidations == 0
    assert not venue.is_flagged(0)
    # with cheap gas the same keeper flags it
    cheap = Chain(ChainConfig(initial_base_fee_gwei=1.0, priority_fee_gwei=0.0), seed=1)
    venue = SynthetixVenue(
        config,
        pop,
        keepers=Keepers(KeepersConfig(keepers=(KeeperSpec(capital=1e4, latency_blocks=0),))),
        chain=cheap,
        native_asset="ETH",
    )
    assert venue.step({"ETH": PriceInputs(1_860.0)}, ts_ns=12 * S).liquidations == 1


def test_below_the_max_premium_one_more_window_opens_in_a_new_block() -> None:
    # capacity 10 per 10 s window; a 25 long; maxLiquidationPd 0.5 with skew 25 / 1,000:
    # used-up capacity lets another 10 go in each new block (PerpsMarket.maxLiquidatableAmount)
    market = SynthetixMarketConfig(
        asset="OP",
        skew_scale=1_000.0,
        maker_fee=0.0005,
        taker_fee=0.0005,
        max_seconds_in_liquidation_window=10.0,
        max_liquidation_pd=0.5,
    )
    config = SynthetixConfig(markets=(market,))
    pop = SynthetixPopulation(np.array([10.0]), np.array([[25.0]]), np.array([[10.0]]))
    venue = SynthetixVenue(config, pop)
    venue.step({"OP": PriceInputs(5.0)}, ts_ns=100 * S)
    assert venue.positions(0)["OP"] == pytest.approx(15.0)
    venue.step({"OP": PriceInputs(5.0)}, ts_ns=101 * S)
    assert venue.positions(0)["OP"] == pytest.approx(5.0)
    # without the escape the window stays shut
    shut = SynthetixVenue(
        SynthetixConfig(markets=(market.model_copy(update={"max_liquidation_pd": 0.0}),)), pop
    )
    shut.step({"OP": PriceInputs(5.0)}, ts_ns=100 * S)
    shut.step({"OP": PriceInputs(5.0)}, ts_ns=101 * S)
    assert shut.positions(0)["OP"] == pytest.approx(15.0)


@settings(max_examples=25, deadline=None)
@given(lev=st.floats(2.0, 50.0), is_long=st.booleans(), seed=st.integers(0, 1000))
def test_an_account_is_flagged_just_past_its_liquidation_price(
    lev: float, is_long: bool, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    size = float(rng.uniform(0.5, 50.0)) * (1.0 if is_long else -1.0)
    entry = 2_000.0
    market = SynthetixMarketConfig(asset="ETH", skew_scale=10_000.0, minimum_position_margin=5.0)
    config = SynthetixConfig(markets=(market,), min_keeper_reward_usd=2.0)
    pop = SynthetixPopulation(
        np.array([abs(size) * entry / lev]), np.array([[size]]), np.array([[entry]])
    )
    level = SynthetixVenue(config, pop).liquidation_levels()["liquidation_price"][0]
    if not np.isfinite(level):
        return
    safe, past = (level * 1.001, level * 0.999) if is_long else (level * 0.999, level * 1.001)
    assert SynthetixVenue(config, pop).step({"ETH": PriceInputs(safe)}, ts_ns=S).liquidations == 0
    assert SynthetixVenue(config, pop).step({"ETH": PriceInputs(past)}, ts_ns=S).liquidations == 1


def test_bad_configuration_and_populations_are_refused_by_name() -> None:
    eth = SynthetixMarketConfig(asset="ETH", skew_scale=1e6)
    with pytest.raises(ConfigError, match="markets"):
        SynthetixConfig(markets=(eth, eth))
    with pytest.raises(ConfigError, match="max_keeper_reward_usd"):
        SynthetixConfig(markets=(eth,), min_keeper_reward_usd=10.0, max_keeper_reward_usd=5.0)
    with pytest.raises(ConfigError, match="skew_scale"):
        SynthetixMarketConfig(asset="ETH", skew_scale=0.0)
    config = SynthetixConfig(markets=(eth,))
    with pytest.raises(ValidationError, match=r"entry_price\[0,0\]"):
        SynthetixVenue(
            config, SynthetixPopulation(np.array([1.0]), np.array([[1.0]]), np.array([[0.0]]))
        )
    with pytest.raises(ValidationError, match="size"):
        SynthetixVenue(
            config, SynthetixPopulation(np.array([1.0]), np.array([[1.0, 2.0]]), np.ones((1, 2)))
        )


def test_funding_alone_brings_an_account_to_its_flag_at_a_constant_price() -> None:
    # A 100 long on a 1,000 skew scale pays funding rising at 10 per day (velocity
    # 0.1 x 100): the cost grows like 1e6 x days^2 while the price never moves; the quiet
    # bound must still see it coming, step by step.
    market = SynthetixMarketConfig(asset="ETH", skew_scale=1_000.0, max_funding_velocity=100.0)
    config = SynthetixConfig(markets=(market,))
    pop = SynthetixPopulation(np.array([40_000.0]), np.array([[100.0]]), np.array([[2_000.0]]))
    venue = SynthetixVenue(config, pop)
    flagged_at = None
    for k in range(400):
        venue.step({"ETH": PriceInputs(2_000.0)}, ts_ns=(1 + 60 * k) * S)
        if venue.is_flagged(0):
            flagged_at = k
            break
        assert venue.account_margins(0, {"ETH": 2_000.0})["eligible"] == 0.0
    assert flagged_at is not None
    assert 0 < flagged_at < 400


def test_a_scenario_table_builds_a_venue_with_drawn_accounts_and_chain_keepers() -> None:
    config = SynthetixConfig.from_mapping(
        {
            "markets": [
                {"asset": "ETH", "skew_scale": 1e6, "max_funding_velocity": 9.0},
                {"asset": "BTC", "skew_scale": 3e4},
            ],
            "population": {"accounts": 300, "markets_per_account": 2},
            "keepers": {"keepers": [{"capital": 1_000.0, "latency_blocks": 1}]},
        }
    )
    venue = build_synthetix(config, prices={"ETH": 2_000.0, "BTC": 60_000.0}, seed=3)
    assert venue._size.shape == (300, 2)
    assert ((venue._size != 0.0).sum(axis=1) == 2).all()
    assert venue._keepers.native_asset == "ETH"
    with pytest.raises(ConfigError, match="markets_per_account"):
        SynthetixConfig.from_mapping(
            {
                "markets": [{"asset": "ETH", "skew_scale": 1e6}],
                "population": {"markets_per_account": 2},
            }
        )
    with pytest.raises(ConfigError, match="native_asset"):
        SynthetixConfig(markets=config.markets, native_asset="SOL")


def test_keepers_spend_no_gas_while_every_window_is_used_up() -> None:
    # 100 OP per 10 s window (Liquidation.maxLiquidationAmount's market) and a 250 OP long:
    # flagged and 100 closed at t = 100 s; no call pays until the window reopens at 110 s
    # (entries count while their time is > now - 10 s: currentLiquidationCapacity)
    market = SynthetixMarketConfig(
        asset="OP", skew_scale=1_000.0, maker_fee=0.007, taker_fee=0.003,
        max_seconds_in_liquidation_window=10.0, initial_margin_ratio=3.0,
        minimum_initial_margin_ratio=0.0, flag_reward_ratio=0.05,
    )  # fmt: skip
    config = SynthetixConfig(
        markets=(market,), flag_gas_units_per_feed=10_000.0, liquidate_gas_units=10_000.0
    )
    pop = SynthetixPopulation(np.array([2_000.0]), np.array([[250.0]]), np.array([[10.0]]))
    keepers = Keepers(
        KeepersConfig(keepers=(KeeperSpec(capital=1e4, latency_blocks=0, gas_units=20_000.0),))
    )
    chain = Chain(
        ChainConfig(block_time_s=1.0, initial_base_fee_gwei=1.0, priority_fee_gwei=0.0), seed=2
    )
    venue = SynthetixVenue(config, pop, keepers=keepers, chain=chain, native_asset="OP")
    venue.step({"OP": PriceInputs(1.0)}, ts_ns=100 * S)
    assert venue.positions(0)["OP"] == pytest.approx(150.0)
    spent = keepers.gas_paid.sum()
    for t in range(101, 110):
        venue.step({"OP": PriceInputs(1.0)}, ts_ns=t * S)
    assert keepers.gas_paid.sum() == spent
    assert venue.positions(0)["OP"] == pytest.approx(150.0)
    venue.step({"OP": PriceInputs(1.0)}, ts_ns=110 * S)
    assert venue.positions(0)["OP"] == pytest.approx(50.0)
    assert keepers.gas_paid.sum() > spent
