"""Venue implementations under contract: each factory builds a fresh venue with a small book.

A new Venue implementation (an oracle-pool perp, a lending or CDP protocol) adds a factory
here; every test in ``test_venue_contract.py`` then runs against it. A factory returns a
:class:`VenueCase`: the venue, the asset to move, a calm price at which nothing is liquidated
and a crash price at which at least one position is.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from deleverage import ConstantDepthBook, Exchange, MarginMode, preset
from deleverage.engine.venue import PerpVenue
from deleverage.protocols.aave.config import AaveConfig, AavePopulation
from deleverage.protocols.aave.venue import build_aave
from deleverage.protocols.keepers import KeepersConfig, KeeperSpec
from deleverage.venues.protocol import Venue


@dataclass(frozen=True)
class VenueCase:
    venue: Venue
    asset: str
    calm: float
    crash: float


def _perp_case(venue_name: str) -> VenueCase:
    ex = Exchange(seed=7)
    spec = preset(venue_name, "BTC")
    market = ex.list_market(spec)
    ex.set_liquidity(market, ConstantDepthBook(depth_per_pct=50.0, half_life_s=30.0))
    ex.set_mark(market, 100_000.0, ts_ns=10**9)
    ex.deposit(ex.insurance_account, 50_000.0)
    maker = ex.open_account()
    ex.deposit(maker, 5_000_000.0)
    lot = spec.lot_size
    for k, leverage in enumerate((3.0, 5.0, 10.0, 20.0)):
        if leverage > spec.max_leverage:
            continue
        trader = ex.open_account(margin_mode=MarginMode.ISOLATED)
        ex.deposit(trader, 50_000.0)
        ex.set_leverage(trader, market, leverage)
        size = round((0.2 + 0.1 * k) / lot) * lot
        ex.trade(market, buyer=trader, seller=maker, size=size, price=100_000.0)
    short = ex.open_account(margin_mode=MarginMode.ISOLATED)
    ex.deposit(short, 50_000.0)
    ex.set_leverage(short, market, 2.0)
    ex.trade(market, buyer=maker, seller=short, size=round(0.3 / lot) * lot, price=100_000.0)
    venue = PerpVenue(ex, name=venue_name, assets={"BTC": market})
    return VenueCase(venue=venue, asset="BTC", calm=99_500.0, crash=80_000.0)


def _factory(name: str) -> Callable[[], VenueCase]:
    def build() -> VenueCase:
        return _perp_case(name)

    build.__name__ = f"perp_{name}"
    return build


def _aave_case() -> VenueCase:
    # WETH collateral borrowing USDC at health factors 1.05 to 2 at ETH 2,000 (a long's
    # liquidation price is 2,000 x HF^-1 with one collateral and stable debt), one USDC
    # supplier borrowing WETH (a short), and a fast, rich keeper.
    config = AaveConfig(
        keepers=KeepersConfig(keepers=(KeeperSpec(capital=1e7, latency_blocks=0),)),
    )
    health = [1.05, 1.2, 1.5, 2.0]
    collateral = [[10.0, 0.0] for _ in health] + [[0.0, 30_000.0]]
    debt = [[0.0, 20_000.0 * 0.83 / h] for h in health] + [[5.0, 0.0]]
    population = AavePopulation(collateral=np.array(collateral), debt=np.array(debt))
    venue = build_aave(config, population, prices={"ETH": 2_000.0})
    return VenueCase(venue=venue, asset="ETH", calm=1_990.0, crash=1_600.0)


#: Every implementation under contract, by id.
FACTORIES: dict[str, Callable[[], VenueCase]] = {
    **{
        f"perp-{name}": _factory(name)
        for name in ("binance", "bitmex", "bybit", "drift", "dydx_v4", "hyperliquid", "okx")
    },
    "aave-v3": _aave_case,
}
