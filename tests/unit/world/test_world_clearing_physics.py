"""Physics: on a correlated shock, a clearinghouse waterfall leaves less bad debt than
standalone insurance funds of the same total size.

Three perp venues on the engine mark one asset (ETH, 100) and a world gaps it to 82 (-18 %):

- ``cex``: 10 longs of 400 ETH at 10x (4,000 margin each): each loses 7,200, 3,200 beyond
  its margin, 32,000 in all;
- ``dex``: 5 longs of 200 ETH at 10x: 1,600 each beyond margin, 8,000;
- ``perp``: 10 shorts of 300 ETH at 10x: they gain 5,400 each, 54,000.

Each venue pledges a 5,000 fund. Cover-2 over two named stress scenarios (``crash`` -15 %,
``rally`` +15 %): under ``crash`` cex loses 10 x (6,000 - 4,000) = 20,000 beyond margin (15,000
beyond its fund), dex 5 x 1,000 = 5,000 (0 beyond its fund); under ``rally`` perp loses 10 x
(4,500 - 3,000) = 15,000 (10,000 beyond its fund). The default fund is max(15,000, 10,000) =
15,000, shared 15 : 0 : 10 (cex 9,000, perp 6,000); skin in the game 2,000; total resources
15,000 + 15,000 + 2,000 = 32,000.

Standalone funds of the same size (each keeps what it put in plus skin pro rata: cex 14,933.3,
dex 5,333.3, perp 11,733.3) leave 32,000 - 14,933.3 + 8,000 - 5,333.3 = 19,733.3 of bad debt;
the waterfall without the haircut leaves 10,000 (cex: 5,000 + 9,000 + 2,000 + perp's 6,000)
+ 3,000 (dex: its 5,000 fund only) = 13,000, and with the haircut of perp's 54,000 gains none.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from deleverage import Exchange, MarginMode, MarketSpec
from deleverage.engine.venue import PerpVenue
from deleverage.sim.pricing import ArbitrageSpec
from deleverage.sim.scenario import LiquiditySpec
from deleverage.world import SharedMarket, World, WorldVenue
from deleverage.world.clearing import ClearingHouse, ClearingLayer, standalone_funds
from deleverage.world.exposure import perp_positions, stressed_deficits

START_NS = 1_767_225_600_000_000_000
BOOKS = {"cex": (10, 400.0), "dex": (5, 200.0), "perp": (10, -300.0)}
FUND = 5_000.0


def _venue(name: str, fund: float) -> WorldVenue:
    count, size = BOOKS[name]
    ex = Exchange(seed=3)
    spec = MarketSpec.simple(
        "ETH", max_leverage=20.0, maintenance_rate=0.025, maker_fee_rate=0.0,
        taker_fee_rate=0.0, liquidation_fee_rate=0.0,
    )  # fmt: skip
    m = ex.list_market(spec, ts_ns=START_NS)
    ex.set_mark(m, 100.0, ts_ns=START_NS)
    if fund:
        ex.deposit(ex.insurance_account, fund, ts_ns=START_NS)
    for _ in range(count):
        a = ex.open_account(margin_mode=MarginMode.ISOLATED)
        ex.deposit(a, abs(size) * 100.0 / 10.0, ts_ns=START_NS)
        ex.set_leverage(a, m, 10.0)
        buyer, seller = (a, ex.liquidity_account) if size > 0 else (ex.liquidity_account, a)
        ex.trade(m, buyer=buyer, seller=seller, size=abs(size), price=100.0, ts_ns=START_NS)
    return WorldVenue(PerpVenue(ex, name=name, assets={"ETH": m}), kind="perp")


def _world(entries: list[WorldVenue], layers: list[ClearingLayer]) -> World:
    path = np.array([100.0, 82.0, 82.0])
    market = SharedMarket(
        "ETH", exogenous=path, liquidity=LiquiditySpec(model="none"),
        arbitrage=ArbitrageSpec(), start_ns=START_NS, dt_s=1.0,
    )  # fmt: skip
    return World([market], entries, dt_s=1.0, start_ns=START_NS, layers=layers)


def _house(entries: list[WorldVenue], *, vm_haircut: bool = True) -> ClearingHouse:
    positions = pd.concat(
        [perp_positions(e.venue) for e in entries if isinstance(e.venue, PerpVenue)],
        ignore_index=True,
    )
    stressed = {
        "crash": stressed_deficits(positions, {"ETH": -0.15}),
        "rally": stressed_deficits(positions, {"ETH": 0.15}),
    }
    return ClearingHouse.cover2(
        member_funds=dict.fromkeys(BOOKS, FUND), stressed_losses=stressed,
        skin_in_game=2_000.0, vm_haircut=vm_haircut,
    )  # fmt: skip


def _standalone_bad_debt(funds: dict[str, float]) -> float:
    world = _world([_venue(name, funds[name]) for name in BOOKS], [])
    world.run()
    return sum(v.solvency().bad_debt for v in world.venues.values())


@pytest.mark.parametrize("vm_haircut", [False, True])
def test_the_waterfall_leaves_less_bad_debt_than_standalone_funds_of_the_same_size(
    vm_haircut: bool,
) -> None:
    # Arrange: the clearinghouse arm's venues pledge their funds (none inside the engine).
    entries = [_venue(name, 0.0) for name in BOOKS]
    house = _house(entries, vm_haircut=vm_haircut)
    funds = standalone_funds(house)
    assert house.default_fund == pytest.approx(15_000.0)
    assert house.total_resources == pytest.approx(32_000.0)
    assert sum(funds.values()) == pytest.approx(32_000.0)
    layer = ClearingLayer(house)
    world = _world(entries, [layer])

    # Act
    world.run()
    standalone = _standalone_bad_debt(funds)

    # Assert: the same losses reached both arms; the waterfall leaves less uncovered.
    deficits = {n: v.solvency().bad_debt for n, v in world.venues.items()}
    assert deficits == pytest.approx({"cex": 32_000.0, "dex": 8_000.0, "perp": 0.0})
    assert standalone == pytest.approx(32_000.0 - funds["cex"] + 8_000.0 - funds["dex"])
    assert standalone == pytest.approx(19_733.333, rel=1e-6)
    lines = house.lines()
    assert lines.total == pytest.approx(40_000.0)
    expected = 0.0 if vm_haircut else 13_000.0
    assert lines.bad_debt == pytest.approx(expected, abs=1e-6)
    assert lines.bad_debt < standalone
    assert sum(world.absorbed.values()) == pytest.approx(40_000.0 - lines.bad_debt)
    # The report's comparison row (the same deficits on standalone funds) is the engine's.
    table = layer.panels()["Clearinghouse waterfall (quote)"].set_index("line")["amount"]
    assert table["standalone funds: bad debt"] == pytest.approx(standalone, rel=1e-9)
    if vm_haircut:
        assert lines.vm_haircut == pytest.approx(13_000.0)
        assert layer.settlements[-1].by_member["vm_gain"].max() <= 54_000.0 + 1e-6
