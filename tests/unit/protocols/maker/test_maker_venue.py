"""The Maker venue: bookkeeping invariants, the English design's share of the Venue contract,
the OSM delay and bad input."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from deleverage.errors import ConfigError, ValidationError
from deleverage.protocols.chain import ChainConfig
from deleverage.protocols.keepers import KeepersConfig, KeeperSpec, sale_slippage_quote
from deleverage.protocols.maker import (
    ClipperConfig,
    MakerConfig,
    MakerPopulation,
    MakerVenue,
    build_maker,
    maker_population,
)
from deleverage.protocols.maker.actions import MakerAction, sale_slippage
from deleverage.protocols.maker.osm import Osm
from deleverage.venues.protocol import PriceInputs

S = 10**9


def _venue(design: str, *, capital: float = 1e6, count: int = 2, **kw: object) -> MakerVenue:
    ink = np.array([10.0, 20.0, 5.0, 40.0])
    ratio = np.array([1.6, 2.0, 3.0, 5.0])
    config = MakerConfig(
        design=design,
        osm_delay_s=0.0,
        keepers=KeepersConfig(
            keepers=(KeeperSpec(capital=capital, latency_blocks=0, count=count),),
            sale_delay_blocks=0,
        ),
        **kw,
    )
    return build_maker(config, MakerPopulation(ink=ink, art=ink * 2_000.0 / ratio))


def _step(venue: MakerVenue, price: float, t_s: int) -> float:
    return venue.step({"ETH": PriceInputs(price)}, ts_ns=t_s * S).forced_flow["ETH"]


def _losses_balance(venue: MakerVenue) -> None:
    vow = venue.vow
    lost = vow.auction_deficits + vow.incentives_paid
    placed = vow.insurance_paid + vow.socialized_loss + vow.bad_debt + vow.pending
    assert math.isclose(lost, placed, rel_tol=1e-9, abs_tol=1e-6)
    surplus = vow.config.surplus_buffer + vow.penalty_income - vow.insurance_paid
    assert math.isclose(vow.joy, surplus, rel_tol=1e-9, abs_tol=1e-6)


def _collateral_balance(venue: MakerVenue, initial: float) -> None:
    running = sum(s.lot for s in venue.clipper.sales) + sum(f.lot for f in venue.flipper.flips)
    returned = venue.clipper.returned + venue.flipper.returned
    total = float(venue.ink.sum()) + venue.collateral_sold + returned + running
    assert math.isclose(total, initial, rel_tol=1e-9)


def test_english_auction_bites_on_the_crash_and_sells_after_ttl() -> None:
    # Arrange
    venue = _venue("english")
    assert _step(venue, 1_990.0, 10) == 0.0
    # Act: the crash bites two vaults, but an English auction sells only at deal.
    crash = venue.step({"ETH": PriceInputs(1_400.0)}, ts_ns=20 * S)
    later = _step(venue, 1_400.0, 20 + 601)  # the bids have stood ttl (600 s)
    # Assert
    assert crash.liquidations == 2
    assert crash.forced_flow["ETH"] == 0.0
    assert later < 0.0
    assert venue.flipper.flips == []


@pytest.mark.parametrize("design", ["english", "dutch"])
def test_competing_keepers_pay_the_tab_and_the_penalty_is_surplus(design: str) -> None:
    # At 1,450 both vaults' collateral is worth more than their tab plus gas (gas capped at
    # 50 gwei: the chain's volatility demand would otherwise price bids above the margin).
    venue = _venue(design, clipper=ClipperConfig(buf=1.0), chain=ChainConfig(max_gas_gwei=50.0))
    _step(venue, 1_990.0, 10)
    for t in range(710, 3_000, 30):  # every 30 s: the Dutch price is caught at its first cut
        _step(venue, 1_450.0, t)
    summary = venue.summary()
    assert summary["auction_deficits"] == 0.0
    assert summary["near_zero_sales"] == 0
    assert summary["running_auctions"] == 0
    # tab = 1.13 x due: the 13% penalty of both vaults comes back as surplus
    due = 10 * 2_000 / 1.6 + 20 * 2_000 / 2.0
    assert math.isclose(summary["penalty_income"], 0.13 * due, rel_tol=1e-9)


def test_a_lone_keeper_wins_an_english_auction_for_its_first_bid() -> None:
    venue = _venue("english", count=1)
    for k, price in enumerate([1_990.0, 1_400.0, 1_400.0]):
        _step(venue, price, 10 + k * 700)
    sales = venue.sales.frame()
    assert len(sales) == 2
    assert (sales["dai"] == venue.config.flipper.min_bid).all()
    assert venue.vow.auction_deficits > 0.9 * (10 * 2_000 / 1.6 + 20 * 2_000 / 2.0)


@pytest.mark.parametrize("design", ["english", "dutch"])
@given(
    moves=st.lists(st.floats(min_value=-0.25, max_value=0.2), min_size=3, max_size=25),
    capital=st.sampled_from([2e3, 3e4, 1e7]),
    count=st.integers(min_value=1, max_value=3),
)
def test_losses_and_collateral_balance_on_any_path(
    design: str, moves: list[float], capital: float, count: int
) -> None:
    venue = _venue(design, capital=capital, count=count)
    initial = float(venue.ink.sum())
    price = 2_000.0
    for k, move in enumerate(moves):
        price = max(50.0, price * (1.0 + move))
        _step(venue, price, 10 + 400 * k)
        _losses_balance(venue)
        _collateral_balance(venue, initial)
        assert (venue.keepers.capital >= 0.0).all()
    venue.close()
    _losses_balance(venue)
    assert venue.vow.pending == 0.0


def test_close_declares_pending_system_debt_as_bad_debt_once() -> None:
    venue = _venue("english", count=1)
    for k, price in enumerate([1_990.0, 1_400.0, 1_400.0]):
        _step(venue, price, 10 + k * 700)
    pending = venue.vow.pending
    assert pending > 0.0  # less than one debt auction's sump, never auctioned
    assert venue.close() == pending
    assert venue.solvency().bad_debt == pending
    assert venue.close() == 0.0
    with pytest.raises(ValidationError, match="close"):
        _step(venue, 1_400.0, 5_000)


def test_osm_publishes_the_price_read_an_hour_earlier() -> None:
    osm = Osm(delay_s=3600.0)
    seen = [osm.read(t * S, p) for t, p in [(0, 200), (3599, 150), (3600, 120), (7300, 90)]]
    assert seen == [200, 200, 200, 120]
    assert Osm(delay_s=0.0).read(5 * S, 99.0) == 99.0


def test_liquidation_levels_are_the_vaults_oracle_trigger_prices() -> None:
    venue = _venue("dutch")
    levels = venue.liquidation_levels()
    np.testing.assert_allclose(levels["liquidation_price"], [1_875.0, 1_500.0, 1_000.0, 600.0])
    assert levels["size"].tolist() == [10.0, 20.0, 5.0, 40.0]


@pytest.mark.parametrize(
    ("field", "value"),
    [("mat", 0.9), ("chop", 2.5), ("osm_delay_s", -1.0), ("design", "vickrey")],
)
def test_bad_config_names_the_field(field: str, value: object) -> None:
    with pytest.raises(ConfigError, match=field):
        MakerConfig(**{field: value})


def test_english_dunk_below_dust_is_refused() -> None:
    with pytest.raises(ConfigError, match="dunk"):
        MakerConfig.from_mapping({"design": "english", "dust": 100.0, "flipper": {"dunk": 50.0}})


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [({"n": 0}, "n"), ({"price": -1.0}, "price"), ({"ratio_median": 1.2}, "ratio_median")],
)
def test_bad_population_arguments_name_the_field(kwargs: dict[str, float], field: str) -> None:
    args: dict[str, object] = {"n": 10, "seed": 1, "price": 200.0, **kwargs}
    with pytest.raises(ValidationError, match=field):
        maker_population(args.pop("n"), args.pop("seed"), **args)  # type: ignore[arg-type]


def test_population_is_safe_seeded_and_not_dusty() -> None:
    a = maker_population(500, 3, price=200.0, dust=20.0)
    b = maker_population(500, 3, price=200.0, dust=20.0)
    np.testing.assert_array_equal(a.ink, b.ink)
    ratio = a.ink * 200.0 / a.art
    assert (ratio >= 1.01 * 1.5 - 1e-12).all()
    assert (a.art >= 20.0 - 1e-9).all()


def test_a_bad_population_is_refused_naming_the_vault() -> None:
    with pytest.raises(ValidationError, match=r"population.art\[1\]"):
        build_maker(MakerConfig(), MakerPopulation(np.ones(2), np.array([1.0, np.nan])))


@given(
    size=st.floats(min_value=0.0, max_value=1e6),
    price=st.floats(min_value=1e-3, max_value=1e6),
    depth=st.floats(min_value=1.0, max_value=1e12),
)
def test_scalar_sale_slippage_equals_the_keepers_array_form(
    size: float, price: float, depth: float
) -> None:
    expected = float(sale_slippage_quote(size, price, depth))
    # The array form computes size x (price - vwap): a difference of two near-equal numbers
    # with an absolute error of a few ulps of size x price.
    slack = 1e-12 * size * price + 1e-9
    assert math.isclose(sale_slippage(size, price, depth), expected, rel_tol=1e-9, abs_tol=slack)


def test_the_journal_holds_one_row_per_action_with_its_code() -> None:
    venue = _venue("dutch", clipper=ClipperConfig(buf=1.0), chain=ChainConfig(max_gas_gwei=50.0))
    _step(venue, 1_990.0, 10)
    for t in range(710, 2_000, 30):
        _step(venue, 1_450.0, t)
    frame = venue.journal().to_frame()
    codes = frame["code"].tolist()
    assert codes.count(int(MakerAction.BARK)) == venue.barks == 2
    assert codes.count(int(MakerAction.TAKE)) == len(venue.sales)
    assert all(json.loads(t)["action"] in {"bark", "take"} for t in frame["text"])
    takes = frame[frame["code"] == int(MakerAction.TAKE)]
    assert takes["size"].sum() == pytest.approx(-venue.collateral_sold)
