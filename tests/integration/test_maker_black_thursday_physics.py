"""Black Thursday physics: what must come out of the mechanics, not out of a parameter.

1. Near-zero auction prices appear only when keepers are constrained (short of capital, or
   priced out by gas): the same vaults and path with unconstrained keepers sell none.
2. The same day, the same vaults and the same keepers end with a smaller deficit under the
   Dutch auctions (Liquidations 2.0) than under the English ones (1.2).
3. A delayed oracle (the OSM, one hour) liquidates later than an immediate one on the same path,
   and leaves vaults under-collateralized for longer.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deleverage.protocols.chain import Chain, ChainConfig
from deleverage.protocols.keepers import KeepersConfig, KeeperSpec
from deleverage.protocols.maker import MakerConfig, MakerVenue, build_maker, maker_population
from deleverage.sim.cdp_runner import CdpResult, CdpScenario, load_cdp_scenario, run_cdp
from deleverage.venues.protocol import PriceInputs

S = 10**9


def _fall(hours_down: float = 2.0, hours_total: float = 12.0, step_s: int = 30) -> np.ndarray:
    t = np.arange(0, hours_total * 3600 + 1, step_s)
    knots = [0.0, 1800.0, 1800.0 + hours_down * 3600.0, float(t[-1])]
    return np.asarray(np.interp(t, knots, [200.0, 200.0, 110.0, 110.0]), dtype=np.float64)


def _run_english(keepers: KeepersConfig, chain: ChainConfig, *, collateral: float) -> MakerVenue:
    config = MakerConfig(design="english", keepers=keepers, chain=chain, market_depth=1e9)
    population = maker_population(
        150, 5, price=200.0, collateral_median=collateral, collateral_sigma=0.5, ratio_median=2.2
    )
    venue = build_maker(config, population, chain=Chain(chain, seed=5))
    path = _fall()
    for k, price in enumerate(path):
        venue.step({"ETH": PriceInputs(float(price))}, ts_ns=(k * 30 + 1) * S)
    return venue


def _three(
    capital: float, gas_units: tuple[float, float, float] = (3e5, 3e5, 3e5)
) -> KeepersConfig:
    return KeepersConfig(
        keepers=tuple(
            KeeperSpec(capital=capital, latency_blocks=1, gas_units=g) for g in gas_units
        ),
        sale_delay_blocks=300,
    )


def _fixed_gas(gwei: float) -> ChainConfig:
    return ChainConfig(initial_base_fee_gwei=gwei, min_base_fee_gwei=gwei, max_gas_gwei=gwei)


def test_no_near_zero_sales_with_unconstrained_keepers() -> None:
    venue = _run_english(_three(1e9), _fixed_gas(20.0), collateral=40.0)
    summary = venue.summary()
    assert summary["sales"] > 20
    assert summary["near_zero_sales"] == 0


def test_keepers_short_of_capital_sell_at_near_zero() -> None:
    # The same vaults and path: each keeper's DAI is locked in its bids until the deals, and
    # then in the sale of the collateral; an auction where only one keeper can bid goes for
    # its first bid.
    venue = _run_english(_three(20_000.0), _fixed_gas(20.0), collateral=40.0)
    assert venue.summary()["near_zero_sales"] > 0


def test_keepers_priced_out_by_gas_leave_near_zero_sales() -> None:
    # Small vaults (2 units). Two of three keepers use 5 million gas a bid: at 1,000 gwei a bid
    # costs them more than a lot is worth, at 10 gwei it does not.
    keepers = _three(1e9, gas_units=(3e5, 5e6, 5e6))
    calm = _run_english(keepers, _fixed_gas(10.0), collateral=2.0).summary()
    spike = _run_english(keepers, _fixed_gas(1_000.0), collateral=2.0).summary()
    assert calm["sales"] > 20
    assert calm["near_zero_sales"] == 0
    assert spike["near_zero_sales"] > 0


@cache
def _black_thursday(
    step_s: float = 120.0,
    vaults: int = 800,
    designs: tuple[str, ...] = ("english", "dutch"),
    **maker: Any,
) -> CdpResult:
    base = load_cdp_scenario("black-thursday")
    data = base.model_dump()
    scale = vaults / base.population.n_vaults  # keep the keepers' capital per vault
    data["population"]["n_vaults"] = vaults
    data["prices"]["step_s"] = step_s
    for spec in data["maker"]["keepers"]["keepers"]:
        spec["capital"] *= scale
    for key in ("surplus_buffer", "sump"):
        data["maker"]["vow"][key] *= scale
    data["maker"].update(maker)
    data["designs"] = designs
    return run_cdp(CdpScenario.model_validate(data))


def test_black_thursday_deficit_falls_under_dutch_auctions() -> None:
    result = _black_thursday()
    english, dutch = result.summaries["english"], result.summaries["dutch"]
    assert english["near_zero_sales"] > 0
    assert dutch["near_zero_sales"] == 0
    assert dutch["auction_deficits"] < 0.5 * english["auction_deficits"]
    assert english["socialized_loss"] > 0.0  # a debt auction covered the English deficit
    uncovered = dutch["socialized_loss"] + dutch["bad_debt"]
    assert uncovered < english["socialized_loss"] + english["bad_debt"]


@pytest.mark.parametrize("design", ["dutch", "english"])
def test_a_delayed_oracle_liquidates_later_than_an_immediate_one(design: str) -> None:
    late = _black_thursday(designs=(design,))
    now = _black_thursday(designs=(design,), osm_delay_s=0.0)

    def first_liquidation(result: CdpResult) -> int:
        steps = result.steps
        return int(steps.loc[steps["liquidations"] > 0, "ts_ns"].iloc[0])

    assert first_liquidation(late) > first_liquidation(now)
    assert (
        late.summaries[design]["undercollateralized_vault_s"]
        > now.summaries[design]["undercollateralized_vault_s"]
    )


@settings(max_examples=15)
@given(
    drops=st.lists(st.floats(min_value=0.02, max_value=0.08), min_size=8, max_size=30),
    seed=st.integers(min_value=0, max_value=1000),
)
def test_competing_unconstrained_keepers_never_sell_near_zero(
    drops: list[float], seed: int
) -> None:
    # Any falling path (a step of up to -8% every 5 minutes), any vault book: two keepers with
    # ample capital at a low, fixed gas price bid each other up to the lot's worth or the tab.
    keepers = _three(1e9)
    config = MakerConfig(design="english", keepers=keepers, chain=_fixed_gas(5.0), market_depth=1e9)
    population = maker_population(40, seed, price=200.0, collateral_sigma=0.5, ratio_median=2.0)
    venue = build_maker(config, population, chain=Chain(config.chain, seed=seed))
    price = 200.0
    for k, drop in enumerate([*drops, *[0.0] * 40]):
        price *= 1.0 - drop
        venue.step({"ETH": PriceInputs(price)}, ts_ns=(k * 300 + 1) * S)
    sales = venue.sales.frame()
    assert len(sales) == venue.flipper.kicks - len(venue.flipper.flips)  # every dealt auction
    assert (sales["price_ratio"] >= 0.05).all()  # (one keeper alone: ratios near 1e-10)
