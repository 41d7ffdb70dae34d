"""The venue's auction machinery: redo of stuck Dutch sales, the Dog's Hole, the Vow's debt
auctions (numbers worked by hand from the rules in docs/formulas.md §M)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from deleverage.protocols.chain import ChainConfig
from deleverage.protocols.keepers import KeepersConfig, KeeperSpec
from deleverage.protocols.maker import (
    ClipperConfig,
    DogConfig,
    MakerConfig,
    MakerPopulation,
    VowConfig,
    build_maker,
)
from deleverage.protocols.maker.vow import Vow
from deleverage.venues.protocol import PriceInputs

S = 10**9
CALM_GAS = ChainConfig(initial_base_fee_gwei=10.0, min_base_fee_gwei=10.0, max_gas_gwei=10.0)


FAST = KeepersConfig(keepers=(KeeperSpec(capital=1e6, latency_blocks=0),), sale_delay_blocks=0)


def _one_vault(**kw: object) -> MakerConfig:
    kw.setdefault("keepers", FAST)
    return MakerConfig(osm_delay_s=0.0, chain=CALM_GAS, **kw)


def test_a_sale_nobody_buys_is_reset_at_tail_with_the_redo_incentive() -> None:
    # Keepers that want 1e9 of profit never take, but a redo's 300 DAI tip beats their gas:
    # the sale is reset once it is older than tail (600 s), top = feed x buf again.
    keepers = KeepersConfig(
        keepers=(KeeperSpec(capital=1e6, latency_blocks=0, min_profit=250.0),),
        sale_delay_blocks=0,
    )
    clipper = ClipperConfig(buf=1.2, tail_s=600.0, cusp=0.1, tip=300.0, chip=0.0)
    venue = build_maker(
        _one_vault(clipper=clipper, keepers=keepers),
        MakerPopulation(ink=np.array([10.0]), art=np.array([10_000.0])),
    )
    venue.step({"ETH": PriceInputs(1_600.0)}, ts_ns=S)
    venue.step({"ETH": PriceInputs(1_400.0)}, ts_ns=2 * S)  # barked: 10 x 1400 / 1.5 < 10,000
    assert venue.barks == 1
    sale = venue.clipper.sales[0]
    assert sale.top == pytest.approx(1_400.0 * 1.2)
    venue.step({"ETH": PriceInputs(1_300.0)}, ts_ns=602 * S)  # 600 s: not older than tail
    assert venue.clipper.redos == 0
    venue.step({"ETH": PriceInputs(1_300.0)}, ts_ns=603 * S)
    assert venue.clipper.redos == 1
    assert sale.top == pytest.approx(1_300.0 * 1.2)
    assert sale.tic_ns == 603 * S
    # two incentives paid by the Vow: the bark's (tip) and the redo's (tip)
    assert venue.vow.incentives_paid == pytest.approx(600.0)


def test_the_dog_barks_no_more_than_its_hole_at_once() -> None:
    # Ten vaults of 10,000 DAI (tab 11,300 each), Hole 25,000: two full barks, then a partial
    # one of the remaining room (2,400 DAI of tab) since its remainder is not dusty; then
    # nothing until sales end.
    population = MakerPopulation(ink=np.full(10, 10.0), art=np.full(10, 10_000.0))
    config = _one_vault(
        dog=DogConfig(hole_global=25_000.0, hole=25_000.0),
        clipper=ClipperConfig(buf=2.0),  # nobody buys at twice the price in this test
    )
    venue = build_maker(config, population)
    venue.step({"ETH": PriceInputs(1_600.0)}, ts_ns=S)
    step = venue.step({"ETH": PriceInputs(1_400.0)}, ts_ns=2 * S)
    assert step.liquidations == 3
    assert venue.clipper.dirt == pytest.approx(25_000.0)
    tabs = sorted(s.tab for s in venue.clipper.sales)
    assert tabs == pytest.approx([25_000.0 - 2 * 11_300.0, 11_300.0, 11_300.0])
    assert venue.step({"ETH": PriceInputs(1_400.0)}, ts_ns=3 * S).liquidations == 0


def test_the_vow_absorbs_then_auctions_debt_then_declares_the_rest() -> None:
    vow = Vow(VowConfig(surplus_buffer=30_000.0, sump=50_000.0, dump=250.0, mkr_price=400.0,
                        flop_discount=0.0, flop_duration_s=3600.0))  # fmt: skip
    assert vow.settle_auction(due=200_000.0, raised=70_000.0) == 130_000.0
    assert (vow.joy, vow.insurance_paid, vow.pending) == (0.0, 30_000.0, 100_000.0)
    kicked = vow.step(0)
    assert [a for a, _, _ in kicked] == ["flop_kick", "flop_kick"]  # 2 x sump <= 100,000
    assert vow.ash == 100_000.0
    assert vow.step(3599 * S) == []
    dealt = vow.step(3600 * S)
    # each raises 50,000 for 50,000 / 400 = 125 MKR (within dump 250)
    assert dealt == [("flop_deal", 50_000.0, 125.0)] * 2
    assert (vow.socialized_loss, vow.mkr_minted, vow.pending) == (100_000.0, 250.0, 0.0)
    assert vow.close() == 0.0


def test_a_debt_auction_without_bids_at_its_lot_restarts_with_pad() -> None:
    # MKR at 100: 50,000 DAI needs 500 MKR > dump 250 -> tick to 375, then 562.5 (pad 1.5).
    vow = Vow(VowConfig(sump=50_000.0, dump=250.0, pad=1.5, mkr_price=100.0,
                        flop_discount=0.0, flop_duration_s=60.0))  # fmt: skip
    vow.settle_auction(due=60_000.0, raised=0.0)
    vow.step(0)
    assert vow.step(60 * S) == [("flop_tick", 50_000.0, 375.0)]
    assert vow.step(120 * S) == [("flop_tick", 50_000.0, 562.5)]
    assert vow.step(180 * S) == [("flop_deal", 50_000.0, 500.0)]
    assert vow.close() == 10_000.0  # less than sump was never auctioned: bad debt
    assert math.isclose(vow.bad_debt + vow.socialized_loss, 60_000.0)
