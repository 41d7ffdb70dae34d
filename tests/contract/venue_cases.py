"""Venue implementations under contract: each factory builds a fresh venue with a small book.

A new Venue implementation (an oracle-pool perp, a lending or CDP protocol) adds a factory
here; every test in ``test_venue_contract.py`` then runs against it. A factory returns a
:class:`VenueCase`: the venue, the asset to move, a calm price at which nothing is liquidated
and a crash price at which at least one position is.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from deleverage import ConstantDepthBook, Exchange, MarginMode, preset
from deleverage.engine.venue import PerpVenue
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
    price = 100_000.0
    # An inverse market (BitMEX XBTUSD) trades USD contracts and holds cash in the coin: the
    # same positions, in its units (its book's depth is in USD of contract value).
    usd = spec.contract_value  # USD per contract; None for a linear market

    def cash(amount: float) -> float:
        return amount / price if usd is not None else amount

    depth = 50.0 * price if usd is not None else 50.0
    ex.set_liquidity(market, ConstantDepthBook(depth_per_pct=depth, half_life_s=30.0))
    ex.set_mark(market, price, ts_ns=10**9)
    ex.deposit(ex.insurance_account, cash(50_000.0))
    maker = ex.open_account()
    ex.deposit(maker, cash(5_000_000.0))
    lot = spec.lot_size

    def size_of(base: float) -> float:
        amount = base * price / usd if usd is not None else base
        return round(amount / lot) * lot

    for k, leverage in enumerate((3.0, 5.0, 10.0, 20.0)):
        if leverage > spec.max_leverage:
            continue
        trader = ex.open_account(margin_mode=MarginMode.ISOLATED)
        ex.deposit(trader, cash(50_000.0))
        ex.set_leverage(trader, market, leverage)
        ex.trade(market, buyer=trader, seller=maker, size=size_of(0.2 + 0.1 * k), price=price)
    short = ex.open_account(margin_mode=MarginMode.ISOLATED)
    ex.deposit(short, cash(50_000.0))
    ex.set_leverage(short, market, 2.0)
    ex.trade(market, buyer=maker, seller=short, size=size_of(0.3), price=price)
    venue = PerpVenue(ex, name=venue_name, assets={"BTC": market})
    return VenueCase(venue=venue, asset="BTC", calm=99_500.0, crash=80_000.0)


def _factory(name: str) -> Callable[[], VenueCase]:
    def build() -> VenueCase:
        return _perp_case(name)

    build.__name__ = f"perp_{name}"
    return build


#: Every implementation under contract, by id.
FACTORIES: dict[str, Callable[[], VenueCase]] = {
    f"perp-{name}": _factory(name)
    for name in ("binance", "bitmex", "bybit", "drift", "dydx_v4", "hyperliquid", "okx")
}
