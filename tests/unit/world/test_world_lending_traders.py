"""The trader channel through a lending market: borrowers long BTC on Aave (WBTC collateral,
USDC debt) who are also short the BTC perp on a CEX. In a slide their perp gains repay their
Aave debt (fewer Aave liquidations); on the rebound the short, left with only its initial
margin, is liquidated: contagion from Aave to the CEX through the traders, which vanishes when
the trader channel is cut (prices cut in every run, so only traders carry it)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pytest

from deleverage.errors import ValidationError
from deleverage.protocols.aave import AaveConfig, AavePopulation, build_aave
from deleverage.protocols.aave.config import AaveReserve
from deleverage.sim.pricing import ArbitrageSpec
from deleverage.sim.scenario import LiquiditySpec
from deleverage.world import Channels, SharedMarket, SharedWallets, TraderMap, World, WorldVenue
from deleverage.world.aave import AaveCollateral
from deleverage.world.result import WorldResult

if TYPE_CHECKING:
    from conftest import PerpFactory

START_NS = 1_767_225_600_000_000_000
N = 400

#: WBTC collateral (LT 0.78, 5% bonus) and USDC, the quote reserve, borrowed (not a collateral).
MARKET = AaveConfig(
    name="lend",
    native_asset="BTC",
    reserves=(
        AaveReserve(name="WBTC", asset="BTC", decimals=8, ltv=0.73, liquidation_threshold=0.78,
                    liquidation_bonus=1.05, protocol_fee=0.1),
        AaveReserve(name="USDC", decimals=6),
    ),
)  # fmt: skip


def _v_path() -> np.ndarray:
    # 100,000 -> 90,000 over 60 s (from t = 20 s), flat, then back up to 101,000 by t = 400 s
    t = np.arange(601, dtype=np.float64)
    return np.interp(t, [0, 20, 80, 200, 400, 600], [1e5, 1e5, 9e4, 9e4, 1.01e5, 1.01e5])


def _aave(seed: int = 5) -> AaveCollateral:
    rng = np.random.default_rng(seed)
    btc = np.exp(rng.normal(0.0, 0.5, N))  # WBTC per borrower
    health = 1.10 + 0.06 * rng.random(N)
    collateral = np.column_stack([btc, np.zeros(N)])
    debt = np.column_stack([np.zeros(N), btc * 1e5 * 0.78 / health])
    venue = build_aave(MARKET, AavePopulation(collateral, debt), prices={"BTC": 1e5})
    return AaveCollateral(venue)


def _world(make_perp: PerpFactory, channels: Channels) -> tuple[WorldResult, World]:
    perp, ids = make_perp(
        "cex", n=N, leverage=10.0, long_fraction=0.0, isolated_fraction=0.0, seed=31
    )
    access = _aave()
    lend = WorldVenue(access.venue, collateral=access, kind="aave")
    assert perp.collateral is not None
    traders = TraderMap(
        pd.DataFrame(
            {
                "trader": np.concatenate([np.arange(N), np.arange(N)]),
                "venue": ["lend"] * N + ["cex"] * N,
                "account": np.concatenate([np.arange(N), ids]),
            }
        )
    )
    wallets = SharedWallets(
        traders, {"lend": access, "cex": perp.collateral}, interval_s=5.0,
        trigger_ratio=0.8, target_ratio=0.5,
    )  # fmt: skip
    market = SharedMarket(
        "BTC", exogenous=_v_path(), liquidity=LiquiditySpec(depth_per_pct=15.0),
        arbitrage=ArbitrageSpec(), start_ns=START_NS, dt_s=1.0,
    )  # fmt: skip
    world = World(
        [market], [perp, lend], dt_s=1.0, start_ns=START_NS, traders=traders, wallets=wallets,
        channels=channels,
    )  # fmt: skip
    return world.run(), world


def _liquidations(result: WorldResult, venue: str) -> int:
    return int(result.venues.loc[result.venues["venue"] == venue, "liquidations"].sum())


def _cross(result: WorldResult, source: str, target: str) -> float:
    c = result.contagion
    rows = c[(c["channel"] == "traders") & (c["source"] == source) & (c["target"] == target)]
    return float(rows["liquidations"].sum())


def test_perp_gains_rescue_aave_borrowers_and_the_drained_shorts_fall_on_the_rebound(
    make_perp: PerpFactory,
) -> None:
    # Act: the same venues and seeds, prices cut; the trader channel on, then off
    linked, world = _world(make_perp, Channels(prices=False, traders=True))
    cut, _ = _world(make_perp, Channels(prices=False, traders=False))
    # Assert: cash moved from the perp to Aave (debt repaid), fewer Aave liquidations
    assert world.wallets is not None
    moved = [t for t in world.wallets.transfers if t.to_venue == "lend"]
    assert moved
    assert all(t.from_venue == "cex" for t in moved)
    assert _liquidations(cut, "lend") > 0
    assert _liquidations(linked, "lend") < _liquidations(cut, "lend")
    # ... and the drained shorts are liquidated on the rebound, credited to Aave
    assert _liquidations(linked, "cex") > _liquidations(cut, "cex")
    assert _cross(linked, "lend", "cex") > 0.0
    assert _cross(cut, "lend", "cex") == 0.0
    assert cut.summary()["cross_venue_liquidations"] == 0.0


def test_aave_access_margins_follow_the_health_factor_and_withdrawals_keep_hf_above_one() -> None:
    # Arrange: the worked example (10 ETH at 2,000, LT 0.83, 17,000 USDC debt: HF
    # 0.9765), and 10 ETH with 5,000 USDC supplied (LT 0.78) against 19,000 USDC of debt
    config = AaveConfig()
    names = [r.name for r in config.reserves]
    c = np.zeros((2, len(names)))
    d = np.zeros((2, len(names)))
    weth, usdc = names.index("WETH"), names.index("USDC")
    c[0, weth], d[0, usdc] = 10.0, 17_000.0
    c[1, weth], c[1, usdc], d[1, usdc] = 10.0, 5_000.0, 19_000.0
    venue = build_aave(config, AavePopulation(c, d), prices={"ETH": 2_000.0})
    access = AaveCollateral(venue)
    lt_usdc = config.reserves[usdc].liquidation_threshold
    # Act
    equity, maintenance = access.margins(np.array([0, 1]))
    # Assert: maintenance / equity >= 1 exactly when HF <= 1 (account 0: HF 0.9765)
    assert equity[0] == pytest.approx(3_000.0)
    assert maintenance[0] == pytest.approx(3_400.0)
    assert maintenance[0] / equity[0] > 1.0
    # account 1: W = 16,600 + 5,000 LT_q, D = 19,000: it may withdraw (W - D) / LT_q of its
    # 5,000 USDC (1,923.08 at LT_q 0.78), which leaves HF = 1
    weighted = 16_600.0 + 5_000.0 * lt_usdc
    allowed = (weighted - 19_000.0) / lt_usdc
    assert 0.0 < allowed < 5_000.0
    assert access.withdrawable(1) == pytest.approx(allowed)
    assert access.withdrawable(0) == 0.0
    access.withdraw(1, allowed, ts_ns=1)
    _, w, owed = venue.account_values(np.array([1]))
    assert w[0] / owed[0] == pytest.approx(1.0)
    assert venue.collateral[1, usdc] == pytest.approx(5_000.0 - allowed)
    with pytest.raises(ValidationError, match="amount"):
        access.withdraw(1, 1.0, ts_ns=2)
    # a deposit repays USDC debt first, then supplies the rest
    access.deposit(0, 20_000.0, ts_ns=3)
    assert venue.debt[0, usdc] == 0.0
    assert venue.collateral[0, usdc] == pytest.approx(3_000.0)
