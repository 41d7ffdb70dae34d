"""The Maker venue's open-vault index (:mod:`deleverage.protocols.maker.open_vaults`) and the
Clipper's skip of sales priced above the market against full passes: a twin venue that filters
the whole sorted prefix every step and lets every keeper try every sale, as the venue did
before, must do exactly the same on random populations and price paths, step by step: the
same steps, journal, solvency lines, keepers and under-collateralized seconds."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from hypothesis import given, settings
from hypothesis import strategies as st

from deleverage.protocols.keepers import KeepersConfig, KeeperSpec
from deleverage.protocols.maker import (
    ClipperConfig,
    MakerConfig,
    MakerVenue,
    build_maker,
    maker_population,
)
from deleverage.protocols.maker.actions import StepContext
from deleverage.protocols.maker.clipper import Clipper
from deleverage.protocols.maker.open_vaults import OpenVaults
from deleverage.venues.protocol import PriceInputs

S = 10**9


class _EveryKeeperTries(Clipper):
    """The reference Clipper: every keeper considers every sale, whatever its price."""

    def __init__(self, config: ClipperConfig, *, dust: float, chop: float) -> None:
        super().__init__(config, dust=dust, chop=chop)
        self.fast = False  # the per-sale path for every sale

    def _no_taker(self, price: float, ctx: StepContext) -> bool:
        return False


class _FullPass(MakerVenue):
    """The reference: every query filters the whole prefix of the sorted vaults."""

    def _highest_trigger(self) -> float:
        open_ = self.art[self._by_trigger] > 0.0
        return float(self._trigger_sorted[np.argmax(open_)]) if open_.any() else 0.0

    def _unsafe_prefix(self, price: float) -> npt.NDArray[np.int64]:
        idx = self._by_trigger[: self._unsafe_end(price)]
        return idx[self.art[idx] > 0.0]

    def _count_undercollateralized(self, market: float, dt_s: float) -> None:
        idx = self._unsafe_prefix(market)
        self.undercollateralized_vault_s += idx.size * dt_s
        self.undercollateralized_debt_s += float(self.art[idx].sum()) * self.rate * dt_s


def _pair(
    seed: int, design: str, capital: float, osm_delay_s: float, buf: float
) -> tuple[MakerVenue, ...]:
    config = MakerConfig(
        design=design,
        osm_delay_s=osm_delay_s,
        clipper=ClipperConfig(buf=buf, step_s=30.0),
        market_depth=1e12,  # no slippage to speak of: takes come close to the market price
        keepers=KeepersConfig(
            keepers=(
                KeeperSpec(capital=capital, latency_blocks=0, count=2),
                KeeperSpec(capital=capital * 10, latency_blocks=3, gas_units=150_000.0),
            ),
            sale_delay_blocks=2,
        ),
    )
    population = maker_population(
        400, seed, price=2_000.0, ratio_median=1.8, ratio_sigma=0.25, collateral_median=8.0
    )
    full = _FullPass(config, population)
    full.clipper = _EveryKeeperTries(config.clipper, dust=config.dust, chop=config.chop)
    return build_maker(config, population), full


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    design=st.sampled_from(["dutch", "english"]),
    capital=st.sampled_from([2e4, 3e5, 1e8]),
    osm_delay_s=st.sampled_from([0.0, 60.0]),
    buf=st.sampled_from([1.3, 1.02]),  # sales that start near the market are taken sooner
    crash=st.floats(0.0, 0.2),
    moves=st.lists(st.floats(-0.08, 0.06), min_size=2, max_size=40),
)
def test_the_open_vault_index_does_what_a_full_pass_does(
    seed: int,
    design: str,
    capital: float,
    osm_delay_s: float,
    buf: float,
    crash: float,
    moves: list[float],
) -> None:
    fast, full = _pair(seed, design, capital, osm_delay_s, buf)
    price = 2_000.0
    for k, move in enumerate([-crash / 3] * 3 + moves, start=1):
        price *= 1.0 + move
        prices = {"ETH": PriceInputs(price)}
        assert fast.step(prices, ts_ns=k * 30 * S) == full.step(prices, ts_ns=k * 30 * S)
        assert fast.undercollateralized_vault_s == full.undercollateralized_vault_s
        assert fast.undercollateralized_debt_s == full.undercollateralized_debt_s
        assert fast._highest_trigger() == full._highest_trigger()
    np.testing.assert_array_equal(fast.art, full.art)
    np.testing.assert_array_equal(fast.ink, full.ink)
    np.testing.assert_array_equal(fast.keepers.capital, full.keepers.capital)
    assert fast.summary() == full.summary()
    assert fast.journal().to_frame().equals(full.journal().to_frame())


@given(
    art=st.lists(st.sampled_from([0.0, 1e-3, 0.5, 7.0, 3e4]), min_size=1, max_size=60),
    data=st.data(),
)
def test_open_vault_prefixes_are_the_filtered_prefixes(
    art: list[float], data: st.DataObject
) -> None:
    # Sums of the same values in the same order: the same float as the filtered prefix's.
    values = np.array(art)
    order = np.array(data.draw(st.permutations(range(values.size))), dtype=np.int64)
    index = OpenVaults(order, values)
    for _ in range(3):
        for end in range(values.size + 1):
            idx = order[:end]
            idx = idx[values[idx] > 0.0]
            np.testing.assert_array_equal(index.vaults_before(end), idx)
            assert index.art_before(end) == (idx.size, float(values[idx].sum()))
        open_ = np.flatnonzero(values > 0.0)
        if open_.size == 0:
            assert index.first_rank() == -1
            assert len(index) == 0
            break
        picked = data.draw(st.sets(st.sampled_from(open_.tolist()), min_size=1))
        changed = np.array(sorted(picked), dtype=np.int64)
        values[changed] = values[changed] * np.array(
            data.draw(st.lists(st.sampled_from([0.0, 0.5, 1.0]), min_size=changed.size,
                               max_size=changed.size))
        )  # fmt: skip
        index.update(changed, values)
