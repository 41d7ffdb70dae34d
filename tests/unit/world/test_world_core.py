"""The world's loop: shared prices against closed forms, hooks, determinism, bad input."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np
import pytest

from deleverage.engine.venue import PerpVenue
from deleverage.errors import ValidationError
from deleverage.prices import shock_path
from deleverage.sim.pricing import ArbitrageSpec
from deleverage.sim.scenario import LiquiditySpec
from deleverage.world import Channels, Deficit, RiskLayer, SharedMarket, World

if TYPE_CHECKING:
    from conftest import PerpFactory

START_NS = 1_767_225_600_000_000_000


def _market(path: np.ndarray, depth: float = 20.0, half_life: float = 120.0) -> SharedMarket:
    return SharedMarket(
        "BTC", exogenous=path, liquidity=LiquiditySpec(depth_per_pct=depth, half_life_s=half_life),
        arbitrage=ArbitrageSpec(), start_ns=START_NS, dt_s=1.0,
    )  # fmt: skip


def test_shared_market_moves_by_the_linear_books_closed_form() -> None:
    # Arrange: D = 100 x depth_per_pct = 1000 base per unit move; selling 50 moves -5%.
    market = _market(np.full(3, 100_000.0), depth=10.0, half_life=1e12)
    market.begin(0, START_NS)
    # Act
    move = market.absorb(-50.0, START_NS)
    # Assert
    assert move == pytest.approx(math.log(0.95), rel=1e-12)
    assert market.price == pytest.approx(95_000.0, rel=1e-12)


def test_shared_dislocation_halves_over_one_half_life() -> None:
    market = _market(np.full(3, 100_000.0), depth=10.0, half_life=1.0)
    market.begin(0, START_NS)
    market.absorb(-50.0, START_NS)
    market.end(50.0)
    market.begin(1, START_NS + 10**9)
    assert market.dislocation == pytest.approx(-0.025, rel=1e-12)


class _TakeAll(RiskLayer):
    name = "take-all"

    def __init__(self) -> None:
        self.deficits: list[Deficit] = []
        self.rounds = 0

    def on_round(self, world: World, view: object) -> None:
        self.rounds += 1

    def route_flow(
        self, world: World, asset: str, flows: Mapping[str, float], *, ts_ns: int
    ) -> dict[str, float]:
        return dict.fromkeys(flows, 0.0)

    def route_deficit(self, world: World, deficit: Deficit) -> float:
        self.deficits.append(deficit)
        return deficit.total


def test_a_layer_that_takes_all_flow_leaves_the_shared_price_on_the_path(
    make_perp: PerpFactory,
) -> None:
    # Arrange: a gap of 8% in one second takes 30x longs past bankruptcy
    path = shock_path(100_000.0, 0.08, 20, 1, 1.0, 200)
    a, _ = make_perp("a", leverage=30.0, long_fraction=0.9, fund=1_000.0)
    layer = _TakeAll()
    world = World([_market(path)], [a], dt_s=1.0, start_ns=START_NS, layers=[layer])
    # Act
    result = world.run()
    # Assert: venues liquidated, the shared market never moved, deficits were routed
    assert result.venues["liquidations"].sum() > 0
    np.testing.assert_allclose(result.assets["shared"], result.assets["exogenous"], rtol=1e-12)
    assert layer.deficits
    assert all(d.total > 0 for d in layer.deficits)
    absorbed = result.venues.groupby("venue", observed=True)["absorbed"].last()["a"]
    assert absorbed == pytest.approx(sum(d.total for d in layer.deficits))
    assert layer.rounds == world.round_index


def test_without_a_layer_forced_flow_moves_the_shared_price_below_the_path(
    make_perp: PerpFactory,
) -> None:
    path = shock_path(100_000.0, 0.08, 20, 100, 1.0, 200)
    a, _ = make_perp("a", leverage=30.0, long_fraction=0.9)
    result = World([_market(path)], [a], dt_s=1.0, start_ns=START_NS).run()
    shared = result.assets["shared"].to_numpy()
    assert (shared < result.assets["exogenous"].to_numpy() * (1 - 1e-6)).any()
    # the sell flow recorded equals the shared book's closed-form move in the first flow step
    assert result.assets["forced_flow"].sum() < 0


def test_a_layer_that_absorbs_more_than_the_deficit_is_refused(make_perp: PerpFactory) -> None:
    class Greedy(RiskLayer):
        name = "greedy"

        def route_deficit(self, world: World, deficit: Deficit) -> float:
            return deficit.total * 2 + 1

    path = shock_path(100_000.0, 0.08, 20, 1, 1.0, 200)
    a, _ = make_perp("a", leverage=30.0, long_fraction=0.9, fund=1_000.0)
    world = World([_market(path)], [a], dt_s=1.0, start_ns=START_NS, layers=[Greedy()])
    with pytest.raises(ValidationError, match=r"greedy\.route_deficit"):
        world.run()


def test_same_inputs_give_the_same_result_hash(make_perp: PerpFactory) -> None:
    path = shock_path(100_000.0, 0.06, 20, 100, 1.0, 150)
    hashes = []
    for _ in range(2):
        a, _ = make_perp("a", leverage=25.0, seed=3)
        b, _ = make_perp("b", venue="hyperliquid", leverage=10.0, seed=4)
        hashes.append(World([_market(path)], [a, b], dt_s=1.0, start_ns=START_NS).run().result_hash)
    assert hashes[0] == hashes[1]


def test_bad_worlds_are_refused_naming_the_field(make_perp: PerpFactory) -> None:
    a, _ = make_perp("a")
    a2, _ = make_perp("a")
    path = np.full(5, 100_000.0)
    with pytest.raises(ValidationError, match="distinct names"):
        World([_market(path)], [a, a2], dt_s=1.0, start_ns=START_NS)
    with pytest.raises(ValidationError, match="max_rounds"):
        World([_market(path)], [a], dt_s=1.0, start_ns=START_NS, max_rounds=0)
    eth = SharedMarket(
        "ETH", exogenous=path, liquidity=LiquiditySpec(), arbitrage=ArbitrageSpec(),
        start_ns=START_NS, dt_s=1.0,
    )  # fmt: skip
    with pytest.raises(ValidationError, match=r"venues\.a\.assets"):
        World([eth], [a], dt_s=1.0, start_ns=START_NS, channels=Channels())


def test_perp_collateral_margins_match_the_engines_margin_table(make_perp: PerpFactory) -> None:
    # Arrange: isolated and cross accounts mixed, one position each
    entry, ids = make_perp("a", n=300, isolated_fraction=0.5, seed=9)
    access = entry.collateral
    assert access is not None
    assert isinstance(entry.venue, PerpVenue)
    ex = entry.venue.exchange
    # Act
    equity, maintenance = access.margins(ids)
    # Assert: against the engine's own per-account and per-position figures
    table = ex.margin_table().set_index("account")
    for i, account in enumerate(ids.tolist()):
        assert equity[i] == pytest.approx(ex.account_margins(account).total_equity, abs=1e-9)
        expected = table.loc[account, "maintenance_margin"] if account in table.index else 0.0
        assert maintenance[i] == pytest.approx(float(expected), rel=1e-9, abs=1e-9)
