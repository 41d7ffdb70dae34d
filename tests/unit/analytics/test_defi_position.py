"""Risk figures of DeFi positions (analytics/defi_position.py).

Numbers from outside the code: the issue's worked examples (Aave: 10 ETH at 2,000, LT 0.83,
17,000 USDC -> HF 0.9765, 50% close factor, 8,500 repaid, 4.4625 ETH seized at 105%, 0.02125
ETH protocol fee at 10%, 4.44125 ETH to the liquidator, new HF 1.0814; Maker: 10,000 DAI at
chop 13% -> tab 11,300, keeper incentive 300 + 0.1% x tab = 311.3), the liquidation-price closed
forms worked by hand (Aave ``HF = 1``, Maker ``debt x mat / ink`` as Maker's documentation
states it, GMX remaining collateral = threshold, Synthetix margin = MM + reward), and the
protocols' venues as independent oracles (their ``liquidation_levels``).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deleverage.analytics.defi_position import (
    Horizon,
    aave_account_metrics,
    aave_asset_levels,
    gmx_position_metrics,
    maker_vault_metrics,
    synthetix_position_metrics,
)
from deleverage.analytics.first_passage import gbm_hit_probability
from deleverage.errors import ValidationError
from deleverage.protocols.aave import AaveConfig, AaveReserve
from deleverage.protocols.aave import math as am
from deleverage.protocols.gmx.config import GmxConfig, GmxPopulation
from deleverage.protocols.gmx.venue import build_gmx
from deleverage.protocols.maker.config import DogConfig, MakerConfig
from deleverage.protocols.synthetix.config import (
    SynthetixConfig,
    SynthetixMarketConfig,
    SynthetixPopulation,
)
from deleverage.protocols.synthetix.venue import build_synthetix

H = Horizon(volatility=0.8, drift=0.0, hours=24.0)
ETH, USDC = {"ETH": 10.0}, {"USDC": 17_000.0}


def _with_wbtc() -> AaveConfig:
    reserves = (
        *AaveConfig().reserves,
        AaveReserve(
            name="WBTC", asset="BTC", decimals=8, ltv=0.73, liquidation_threshold=0.78,
            liquidation_bonus=1.05, protocol_fee=0.1,
        ),
    )  # fmt: skip
    return AaveConfig(reserves=reserves)


# ------------------------------------------------------------------------------------- Aave


def test_aave_issue_worked_example() -> None:
    m = aave_account_metrics(AaveConfig(), ETH, USDC, {"ETH": 2_000.0}, H)

    assert round(m.health_factor, 4) == 0.9765
    assert m.close_factor == 0.5
    assert m.debt_repaid == pytest.approx(8_500.0, rel=1e-12)
    assert m.collateral_seized == pytest.approx(4.4625, rel=1e-12)
    assert m.protocol_fee == pytest.approx(0.02125, rel=1e-12)
    assert m.to_liquidator == pytest.approx(4.44125, rel=1e-12)
    assert m.bonus == pytest.approx(4.4625 - 4.4625 / 1.05, rel=1e-12)
    assert round(m.health_after, 4) == 1.0814
    assert m.status == am.LIQUIDATABLE
    assert m.deficit_value == 0.0
    (level,) = m.levels
    assert level.liquidation_price == pytest.approx(17_000.0 / (10 * 0.83), rel=1e-12)
    assert level.falls
    assert level.probability == 1.0  # already below it


def test_aave_full_close_factor_below_hf_095() -> None:
    # HF = 16,600 / 17,600 = 0.943 <= 0.95: the whole debt; 8.8 ETH x 1.05 = 9.24 ETH seized.
    m = aave_account_metrics(AaveConfig(), ETH, {"USDC": 17_600.0}, {"ETH": 2_000.0}, H)

    assert m.close_factor == 1.0
    assert m.debt_repaid == pytest.approx(17_600.0)
    assert m.collateral_seized == pytest.approx(9.24)
    assert m.protocol_fee == pytest.approx((9.24 - 9.24 / 1.05) * 0.1)


def test_aave_healthy_account_is_valued_where_it_becomes_liquidatable() -> None:
    m = aave_account_metrics(AaveConfig(), ETH, {"USDC": 16_000.0}, {"ETH": 2_000.0}, H)
    level = 16_000.0 / 8.3

    assert m.health_factor == pytest.approx(16_600.0 / 16_000.0)
    assert m.at_price == pytest.approx(level, rel=1e-8)
    assert m.health_at < 1.0
    assert m.health_at == pytest.approx(1.0, abs=1e-8)
    assert m.close_factor == 0.5  # HF just below 1 > 0.95, both reserves >= 2,000
    assert m.debt_repaid == pytest.approx(8_000.0)
    assert m.collateral_seized == pytest.approx(8_000.0 / level * 1.05, rel=1e-8)
    assert m.levels[0].probability == pytest.approx(
        float(gbm_hit_probability(2_000.0, level, 0.0, 0.8, 86_400.0, direction="down"))
    )


def test_aave_quote_collateral_is_liquidated_when_the_debt_asset_rises() -> None:
    # 20,000 USDC (LT 0.78) against 5 ETH: HF = 15,600 / 10,000; HF = 1 at ETH 3,120.
    m = aave_account_metrics(AaveConfig(), {"USDC": 20_000.0}, {"ETH": 5.0}, {"ETH": 2_000.0}, H)

    assert m.levels == ()  # no priced collateral
    assert m.health_factor == pytest.approx(1.56)
    assert m.driver == "ETH"
    assert m.at_price == pytest.approx(3_120.0, rel=1e-8)
    assert m.debt_repaid == pytest.approx(2.5)
    assert m.collateral_seized == pytest.approx(2.5 * 3_120.0 * 1.045, rel=1e-8)


def test_aave_asset_both_collateral_and_debt() -> None:
    # 10 ETH (LT 0.83) against 2 ETH and 10,000 USDC: x (8.3 - 2) = 10,000 -> x = 1,587.30.
    m = aave_account_metrics(AaveConfig(), ETH, {"ETH": 2.0, "USDC": 10_000.0}, {"ETH": 2_000.0}, H)

    assert m.levels[0].liquidation_price == pytest.approx(10_000.0 / 6.3)
    assert m.at_price == pytest.approx(10_000.0 / 6.3, rel=1e-8)
    assert m.health_at == pytest.approx(1.0, abs=1e-8)


def test_aave_each_collateral_asset_with_the_others_fixed_by_hand() -> None:
    # 10 ETH (LT 0.83) at 2,000 and 1 WBTC (LT 0.78) at 60,000 against 60,000 USDC.
    levels = aave_asset_levels(
        _with_wbtc(), {"ETH": 10.0, "WBTC": 1.0}, {"USDC": 60_000.0},
        {"ETH": 2_000.0, "BTC": 60_000.0},
    )  # fmt: skip

    assert levels["ETH"][0] == pytest.approx((60_000.0 - 0.78 * 60_000.0) / 8.3)
    assert levels["BTC"][0] == pytest.approx((60_000.0 - 8.3 * 2_000.0) / 0.78)
    assert levels["ETH"][1]
    assert levels["BTC"][1]


@settings(max_examples=60, deadline=None)
@given(
    eth=st.floats(0.1, 1e4),
    btc=st.floats(0.0, 100.0),
    usdc=st.floats(100.0, 1e8),
    eth_debt=st.floats(0.0, 1e3),
    p_eth=st.floats(10.0, 1e5),
)
def test_aave_health_is_one_at_each_level(
    eth: float, btc: float, usdc: float, eth_debt: float, p_eth: float
) -> None:
    config = _with_wbtc()
    prices = {"ETH": p_eth, "BTC": 60_000.0}
    collateral, debt = {"ETH": eth, "WBTC": btc}, {"USDC": usdc, "ETH": eth_debt}
    lt = np.array([r.liquidation_threshold for r in config.reserves])
    c = np.array([eth, 0.0, btc])
    d = np.array([eth_debt, usdc, 0.0])
    for asset, (level, _) in aave_asset_levels(config, collateral, debt, prices).items():
        if math.isfinite(level):
            at = {**prices, asset: level}
            p = np.array([at["ETH"], 1.0, at["BTC"]])
            health = float(am.health_factor(c * p, lt, d * p))
            assert health == pytest.approx(1.0, rel=1e-9)


def test_aave_bad_reserve_is_named() -> None:
    with pytest.raises(ValidationError, match="--collateral"):
        aave_account_metrics(AaveConfig(), {"DOGE": 1.0}, USDC, {"ETH": 2_000.0}, H)
    with pytest.raises(ValidationError, match="--debt"):
        aave_account_metrics(AaveConfig(), ETH, {}, {"ETH": 2_000.0}, H)


# ------------------------------------------------------------------------------------ Maker


def test_maker_issue_worked_example() -> None:
    m = maker_vault_metrics(
        MakerConfig(), ink=10.0, debt=10_000.0, price=2_000.0, osm_price=None, horizon=H
    )

    assert m.liquidation_price == pytest.approx(10_000.0 * 1.5 / 10.0)  # debt x mat / ink
    assert m.tab == pytest.approx(11_300.0)
    assert m.penalty == pytest.approx(1_300.0)
    assert m.keeper_incentive == pytest.approx(311.3)
    assert m.lot == pytest.approx(10.0)
    assert m.auction_top == pytest.approx(1_500.0 * 1.3)
    assert m.refusal == "NONE"


def test_maker_osm_lags_the_market() -> None:
    m = maker_vault_metrics(
        MakerConfig(), ink=10.0, debt=10_000.0, price=1_400.0, osm_price=1_600.0, horizon=H
    )

    assert not m.unsafe_now  # the Spotter still reads 1,600 > 1,500
    assert m.unsafe_next  # the next poke publishes 1,400
    assert m.probability_market == 1.0


def test_maker_hole_limits_the_bark() -> None:
    # Dog.bark: room 5,000 -> dart = 5,000 / 1.13, tab = 5,000; the rest stays in the vault.
    config = MakerConfig(dog=DogConfig(hole=5_000.0))
    m = maker_vault_metrics(
        config, ink=10.0, debt=10_000.0, price=2_000.0, osm_price=None, horizon=H
    )

    assert m.tab == pytest.approx(5_000.0)
    assert m.lot == pytest.approx(10.0 * (5_000.0 / 1.13) / 10_000.0)


@settings(max_examples=40, deadline=None)
@given(price=st.floats(1_600.0, 5_000.0), hours=st.floats(2.0, 24 * 30.0))
def test_maker_osm_sees_a_crossing_no_sooner_than_the_market(price: float, hours: float) -> None:
    m = maker_vault_metrics(
        MakerConfig(), ink=10.0, debt=10_000.0, price=price, osm_price=None,
        horizon=Horizon(hours=hours),
    )  # fmt: skip

    assert 0.0 <= m.probability_osm <= m.probability_market + 1e-12


def test_maker_dusty_vault_is_refused() -> None:
    with pytest.raises(ValidationError, match="dust"):
        maker_vault_metrics(
            MakerConfig(dust=15_000.0), ink=10.0, debt=10_000.0, price=2_000.0,
            osm_price=None, horizon=H,
        )  # fmt: skip


# -------------------------------------------------------------------------------------- GMX


def _gmx(config: GmxConfig, **kw: object) -> float:
    return gmx_position_metrics(config, horizon=H, **kw).liquidation_price  # type: ignore[arg-type]


def test_gmx_liquidation_prices_by_hand() -> None:
    base = {"size_tokens": 10.0, "entry_price": 2_000.0, "price": 2_000.0}
    # Long, 2,000 USD: 2,000 + 10 x - 20,000 - 12 (fee 0.06%) - 200 (impact cap 1%) = 200.
    m = gmx_position_metrics(
        GmxConfig(), side="long", collateral=2_000.0, collateral_in_token=False, horizon=H, **base
    )
    assert m.liquidation_price == pytest.approx(18_412.0 / 10.0)
    assert m.liquidation_price_no_impact == pytest.approx(18_212.0 / 10.0)
    assert m.remaining_usd == pytest.approx(2_000.0 - 12.0 - 200.0)
    assert m.threshold_usd == pytest.approx(200.0)
    # Long, 1 ETH of collateral: x + 10 x - 20,212 = 200.
    long_token = _gmx(GmxConfig(), side="long", collateral=1.0, collateral_in_token=True, **base)
    assert long_token == pytest.approx(20_412.0 / 11.0)
    # Short, 2,000 USD: 2,000 + 20,000 - 10 x - 212 = 200.
    short = _gmx(GmxConfig(), side="short", collateral=2_000.0, collateral_in_token=False, **base)
    assert short == pytest.approx(21_588.0 / 10.0)


@pytest.mark.parametrize(("is_long", "in_token"), [(True, False), (True, True), (False, False)])
def test_gmx_level_matches_the_venue(is_long: bool, in_token: bool) -> None:
    # Without impact and with one fee factor, the venue's own levels are the same condition.
    config = GmxConfig(
        position_fee_factor_positive=0.0005, position_fee_factor_negative=0.0005,
        max_impact_factor_for_liquidations=0.0, oracle_half_spread=0.001,
    )  # fmt: skip
    amount = 1.5 if in_token else 3_000.0
    population = GmxPopulation(
        is_long=np.array([is_long]),
        collateral_amount=np.array([amount]),
        collateral_is_long_token=np.array([in_token]),
        size_usd=np.array([30_000.0]),
        size_tokens=np.array([15.0]),
    )
    venue_level = float(build_gmx(config, population).liquidation_levels()["liquidation_price"][0])

    mine = _gmx(
        config, side="long" if is_long else "short", size_tokens=15.0, entry_price=2_000.0,
        collateral=amount, collateral_in_token=in_token, price=2_000.0,
    )  # fmt: skip

    assert mine == pytest.approx(venue_level, rel=1e-12)


# -------------------------------------------------------------------------------- Synthetix


def _snx(**market: float) -> SynthetixConfig:
    return SynthetixConfig(markets=(SynthetixMarketConfig(asset="ETH", skew_scale=1e6, **market),))


def test_synthetix_by_hand() -> None:
    # Short 10 at 2,000, margin 2,000, price 2,050: IMR = 10 / 1e6 x 2 + 0.01 = 0.01002,
    # MMR = 0.00501, MM = 20,500 x 0.00501; flag reward 20,500 x 0.0001 = 2.05 (within the
    # guards [1, min(2,000 x 0.005, 500)]); 2,000 - 10 (x - 2,000) = 10 x 0.00501 x + 2.05.
    m = synthetix_position_metrics(
        _snx(), size=-10.0, entry_price=2_000.0, margin=2_000.0, price=2_050.0, horizon=H
    )

    assert m.initial_margin_ratio == pytest.approx(0.01002)
    assert m.maintenance_margin_ratio == pytest.approx(0.00501)
    assert m.maintenance_margin == pytest.approx(20_500.0 * 0.00501)
    assert m.flag_reward == pytest.approx(2.05)
    assert m.liquidation_reward == pytest.approx(2.05)
    assert m.liquidation_price == pytest.approx((22_000.0 - 2.05) / 10.0501)
    assert not m.liquidatable


def test_synthetix_minimum_position_margin_and_reward_cap() -> None:
    # Long 1 at 1,000, margin 100, min position margin 50: reward min(max(1, 0.1), cap) with
    # the cap min(100 x 0.005, 500) = 0.5 (keeperReward's guards);
    # 100 + (x - 1,000) = x x MMR + 50 + 0.5, MMR = (1 / 1e6 x 2 + 0.01) x 0.5.
    m = synthetix_position_metrics(
        _snx(minimum_position_margin=50.0), size=1.0, entry_price=1_000.0, margin=100.0,
        price=1_000.0, horizon=H,
    )  # fmt: skip
    mmr = (1.0 / 1e6 * 2.0 + 0.01) * 0.5

    assert m.liquidation_reward == pytest.approx(0.5)
    assert m.liquidation_price == pytest.approx((1_000.0 + 50.5 - 100.0) / (1.0 - mmr))


@pytest.mark.parametrize("size", [25.0, -25.0])
def test_synthetix_level_matches_the_venue(size: float) -> None:
    config = _snx(minimum_position_margin=20.0, flag_reward_ratio=0.001)
    population = SynthetixPopulation(
        collateral_usd=np.array([4_000.0]),
        size=np.array([[size]]),
        entry_price=np.array([[2_000.0]]),
    )
    venue_level = float(
        build_synthetix(config, population).liquidation_levels()["liquidation_price"][0]
    )

    mine = synthetix_position_metrics(
        config, size=size, entry_price=2_000.0, margin=4_000.0, price=2_000.0, horizon=H
    )

    assert mine.liquidation_price == pytest.approx(venue_level, rel=1e-12)
