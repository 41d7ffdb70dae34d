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
from deleverage.protocols.chain import Chain, ChainConfig
from deleverage.protocols.gmx import GmxConfig, GmxPopulation, build_gmx
from deleverage.protocols.keepers import Keepers, KeepersConfig, KeeperSpec
from deleverage.protocols.synthetix import (
    SynthetixConfig,
    SynthetixMarketConfig,
    SynthetixPopulation,
    build_synthetix,
)
from deleverage.venues.protocol import Venue


@dataclass(frozen=True)
class VenueCase:
    venue: Venue
    asset: str
    calm: float
    crash: float
    #: Seconds after the crash's step within which its forced flow reaches the market: 0 where
    #: the venue sells in the same step; an English auction sells at ``deal``, ``ttl`` after
    #: the last bid.
    settle_s: int = 0


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


def _keepers_on_chain() -> tuple[Keepers, Chain]:
    # Two keepers on a 1-gwei chain whose gas token is the venue's asset (BTC at 100,000):
    # 20,000 gas cost ~2 USD; the faster one acts in the block it sees a liquidation.
    spec_fast = KeeperSpec(capital=10_000.0, latency_blocks=0, gas_units=20_000.0)
    spec_slow = KeeperSpec(capital=10_000.0, latency_blocks=3, gas_units=20_000.0)
    keepers = Keepers(KeepersConfig(keepers=(spec_fast, spec_slow)))
    chain = Chain(
        ChainConfig(initial_base_fee_gwei=1.0, min_base_fee_gwei=0.5, priority_fee_gwei=0.0),
        seed=11,
    )
    return keepers, chain


def _gmx_case(*, on_chain: bool = False) -> VenueCase:
    # Longs at 3x, 5x, 10x and 20x (collateral half in BTC, half in USD) and a 2x short, all
    # opened at 100,000; GMX's default parameters. On chain: keepers paid a 5 USD fee.
    leverage = np.array([3.0, 5.0, 10.0, 20.0, 2.0])
    size_usd = np.array([20_000.0, 30_000.0, 40_000.0, 50_000.0, 30_000.0])
    in_btc = np.array([True, False, True, False, False])
    collateral_usd = size_usd / leverage
    population = GmxPopulation(
        is_long=np.array([True, True, True, True, False]),
        collateral_amount=np.where(in_btc, collateral_usd / 100_000.0, collateral_usd),
        collateral_is_long_token=in_btc,
        size_usd=size_usd,
        size_tokens=size_usd / 100_000.0,
    )
    config = GmxConfig(
        name="gmx", asset="BTC", long_pool_tokens=100.0, short_pool_usd=10_000_000.0,
        execution_fee_usd=5.0,
    )  # fmt: skip
    keepers, chain = _keepers_on_chain() if on_chain else (None, None)
    venue = build_gmx(config, population, keepers=keepers, chain=chain, native_asset="BTC")
    return VenueCase(venue, asset="BTC", calm=99_500.0, crash=80_000.0)


def _synthetix_case(*, on_chain: bool = False) -> VenueCase:
    # One BTC market; longs at 3x, 5x, 10x and 20x and a 2x short, opened at 100,000. On
    # chain, the keeper-cost oracle prices 10,000 gas per feed and per liquidation.
    leverage = np.array([3.0, 5.0, 10.0, 20.0, 2.0])
    size = np.array([0.2, 0.3, 0.4, 0.5, -0.3])
    config = SynthetixConfig(
        name="synthetix",
        markets=(SynthetixMarketConfig(asset="BTC", skew_scale=1_000.0),),
        flag_gas_units_per_feed=10_000.0,
        liquidate_gas_units=10_000.0,
    )
    population = SynthetixPopulation(
        collateral_usd=np.abs(size) * 100_000.0 / leverage,
        size=size[:, None],
        entry_price=np.full((5, 1), 100_000.0),
    )
    keepers, chain = _keepers_on_chain() if on_chain else (None, None)
    venue = build_synthetix(config, population, keepers=keepers, chain=chain, native_asset="BTC")
    return VenueCase(venue, asset="BTC", calm=99_500.0, crash=80_000.0)


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
    "gmx-v2": _gmx_case,
    "gmx-v2-keepers": lambda: _gmx_case(on_chain=True),
    "synthetix-v3": _synthetix_case,
    "synthetix-v3-keepers": lambda: _synthetix_case(on_chain=True),
    "aave-v3": _aave_case,
}


def _maker_case(design: str) -> VenueCase:
    import numpy as np

    from deleverage.protocols.keepers import KeepersConfig, KeeperSpec
    from deleverage.protocols.maker import (
        ClipperConfig,
        MakerConfig,
        MakerPopulation,
        build_maker,
    )

    # Four vaults at 2,000 with collateral ratios 1.6, 2, 3 and 5 (mat 1.5): liquidation
    # prices 1,875, 1,500, 1,000 and 600. An immediate oracle and keepers without latency;
    # the Dutch case starts its sales 10% under the oracle (buf 0.9) so that the crash's own
    # step sells collateral.
    ink = np.array([10.0, 20.0, 5.0, 40.0])
    ratio = np.array([1.6, 2.0, 3.0, 5.0])
    population = MakerPopulation(ink=ink, art=ink * 2_000.0 / ratio)
    config = MakerConfig(
        name=f"maker-{design}",
        design=design,
        osm_delay_s=0.0,
        clipper=ClipperConfig(buf=0.9),
        keepers=KeepersConfig(
            keepers=(KeeperSpec(capital=1e6, latency_blocks=0, gas_units=300_000.0),),
            sale_delay_blocks=0,
        ),
    )
    # An English auction bites in the crash's step and sells at deal: ttl after the last bid
    # (tau bounds the whole auction).
    settle = 0 if design == "dutch" else int(config.flipper.tau_s)
    return VenueCase(
        venue=build_maker(config, population),
        asset="ETH",
        calm=1_990.0,
        crash=1_400.0,
        settle_s=settle,
    )


FACTORIES["maker-dutch"] = lambda: _maker_case("dutch")
FACTORIES["maker-english"] = lambda: _maker_case("english")
