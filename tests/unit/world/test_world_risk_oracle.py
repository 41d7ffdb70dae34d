"""Unified cross-venue risk: the per-trader table, the holistic maintenance, and the cross-venue
oracle against platform-local triggers on a two-venue scenario with one shared book.

Outside numbers: the tier table below is Binance-style (maintenance ``N x mmr - cum`` with the
deduction making it continuous); a trader long 400 ETH at 100 on each of two venues, 10x, has
local maintenance 2.5 % x 40,000 = 1,000 per venue, and holistic maintenance on 80,000 gross
``80,000 x 5 % - 1,250 = 2,750`` (tier 2). Its local trigger is where
``4,000 + 400 (P - 100) = 0.025 x 400 P``, ``P = 36,000 / 390 = 92.31``; the holistic one where
``8,000 + 800 (P - 100) = 0.05 x 800 P - 1,250``, ``P = 70,750 / 760 = 93.09``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, Literal

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from deleverage import ConstantDepthBook, Exchange, MarginMode, MarketSpec
from deleverage.engine.venue import PerpVenue
from deleverage.errors import ValidationError
from deleverage.sim.pricing import ArbitrageSpec
from deleverage.sim.scenario import LiquiditySpec
from deleverage.spec import MarginTier
from deleverage.venues.protocol import PriceInputs
from deleverage.world import RiskLayer, RoundView, SharedMarket, World, WorldVenue
from deleverage.world.exposure import (
    POSITION_COLUMNS,
    aggregate_health,
    holistic_maintenance,
    perp_positions,
    stressed_deficits,
    trader_equity,
    trader_table,
    venue_tiers,
)
from deleverage.world.risk_oracle import (
    HolisticRiskOracle,
    RiskOracleConfig,
    RiskOracleLayer,
    plan_reductions,
)

S = 1_000_000_000
START_NS = 1_767_225_600_000_000_000
TIERS = (
    MarginTier(notional_floor=0.0, max_leverage=20.0, maintenance_rate=0.025),
    MarginTier(notional_floor=50_000.0, max_leverage=10.0, maintenance_rate=0.05),
    MarginTier(notional_floor=250_000.0, max_leverage=5.0, maintenance_rate=0.10),
)


def _spec() -> MarketSpec:
    return MarketSpec.from_mapping(
        {
            "symbol": "ETH",
            "tiers": TIERS,
            "maker_fee_rate": 0.0,
            "taker_fee_rate": 0.0,
            "liquidation_fee_rate": 0.0,
        }
    )


def _world(
    sizes: list[float], *, book: ConstantDepthBook | None = None
) -> tuple[dict[str, PerpVenue], dict[str, dict[str, int]]]:
    venues: dict[str, PerpVenue] = {}
    accounts: dict[str, dict[str, int]] = {f"t{k}": {} for k in range(len(sizes))}
    for name in ("cex", "dex"):
        ex = Exchange(seed=1)
        m = ex.list_market(_spec())
        if book is not None:
            ex.set_liquidity(m, book)
        ex.set_mark(m, 100.0, ts_ns=0)
        for k, size in enumerate(sizes):
            a = ex.open_account(margin_mode=MarginMode.ISOLATED)
            ex.deposit(a, size * 100.0 / 10.0)
            ex.set_leverage(a, m, 10.0)
            ex.trade(m, buyer=a, seller=ex.liquidity_account, size=size, price=100.0, ts_ns=0)
            accounts[f"t{k}"][name] = a
        venues[name] = PerpVenue(ex, name=name)
    return venues, accounts


def test_the_trader_table_and_the_holistic_maintenance_match_the_tier_arithmetic() -> None:
    venues, accounts = _world([400.0])
    table = trader_table(venues, accounts)
    assert table[["venue", "asset", "size", "notional", "maintenance"]].values.tolist() == [
        ["cex", "ETH", 400.0, 40_000.0, 1_000.0],
        ["dex", "ETH", 400.0, 40_000.0, 1_000.0],
    ]
    aggregate = aggregate_health(table, trader_equity(venues, accounts), venue_tiers(venues))
    row = aggregate.iloc[0]
    assert (row["equity"], row["local_maintenance"]) == pytest.approx((8_000.0, 2_000.0))
    assert row["holistic_maintenance"] == pytest.approx(2_750.0)
    assert row["holistic_health"] == pytest.approx(8_000.0 / 2_750.0)


@pytest.mark.parametrize(
    ("price", "local_fires", "holistic_fires"),
    [(93.5, False, False), (92.8, False, True), (92.0, True, True)],
)
def test_the_holistic_trigger_fires_between_93_09_and_the_local_92_31(
    price: float, local_fires: bool, holistic_fires: bool
) -> None:
    venues, accounts = _world([400.0])
    oracle = HolisticRiskOracle(venues, accounts)
    _, before = oracle.profile()
    # Where the holistic health would be at `price` (equity falls 800 per unit of price).
    holistic = (8_000.0 + 800.0 * (price - 100.0)) / (0.05 * 800.0 * price - 1_250.0)
    assert (holistic < 1.0) == holistic_fires
    liquidated = sum(
        v.step({"ETH": PriceInputs(price)}, ts_ns=S).liquidations for v in venues.values()
    )
    assert (liquidated > 0) == local_fires
    if not local_fires:
        _, after = oracle.profile()
        assert after["holistic_health"].iloc[0] == pytest.approx(holistic)
        assert bool(oracle.plan()) == holistic_fires
    assert before["holistic_health"].iloc[0] == pytest.approx(8_000.0 / 2_750.0)


def test_the_rule_reduces_the_weakest_venue_first_and_stops_at_the_target() -> None:
    venues, accounts = _world([400.0])
    table = trader_table(venues, accounts)
    table.loc[table["venue"] == "dex", "equity"] = 3_000.0  # dex is the weaker piece
    table["health"] = table["equity"] / table["maintenance"]
    tiers = venue_tiers(venues)
    config = RiskOracleConfig(level=3.0, target=3.2, step_fraction=0.25)
    orders = plan_reductions(
        "t0", table, 7_000.0, tiers, {(v, "ETH"): tiers["ETH"] for v in venues}, config
    )
    assert [o.venue for o in orders][:1] == ["dex"]
    assert all(o.size < 0 for o in orders)
    # 7,000 / M_h >= 3.2 needs M_h <= 2,187.5: gross <= (2,187.5 + 1,250) / 0.05 = 68,750, so
    # 11,250 of notional goes: two orders of 100 ETH (10,000 each) on the weaker venue.
    assert [(o.venue, o.size) for o in orders] == [("dex", -100.0), ("dex", -100.0)]


def test_stressed_deficits_are_the_losses_beyond_each_positions_margin() -> None:
    venues, accounts = _world([400.0, 200.0])
    table = trader_table(venues, accounts)
    # -15 %: each 10x position loses 15 % of its notional, 5 % beyond its margin.
    assert stressed_deficits(table, {"ETH": -0.15}) == pytest.approx(
        {"cex": 0.05 * 60_000.0, "dex": 0.05 * 60_000.0}
    )
    assert stressed_deficits(table, {"ETH": -0.05}) == {"cex": 0.0, "dex": 0.0}


def _fill(book: ConstantDepthBook, mid: float, ts: int, _asset: str, side: int, q: float) -> float:
    return book.execute(side, q, mid, ts).vwap


def _run(*, holistic: bool) -> tuple[float, int | None, float]:
    """The same falling index and one book shared by both venues (their liquidations and the
    oracle's orders consume the same depth), with local triggers only or the oracle too.

    Returns the venues' bad debt, the first time anything was deleveraged and the lowest mark.
    """
    book = ConstantDepthBook(depth_per_pct=500.0, half_life_s=60.0)
    sizes = [300.0 + 20.0 * k for k in range(10)]
    venues, accounts = _world(sizes, book=book)
    oracle = HolisticRiskOracle(venues, accounts, RiskOracleConfig()) if holistic else None
    first: int | None = None
    low = 100.0
    for t in range(1, 131):  # the index falls 0.1 % a second, to 87
        ts = t * S
        index = 100.0 * (1.0 - 0.001 * t)
        for _ in range(50):  # cascade rounds at one time, until nothing more is liquidated
            mark = index * (1.0 + book.price_impact(ts))
            low = min(low, mark)
            liquidated = 0
            for venue in venues.values():
                venue.exchange.set_book_mid(0, index)
                liquidated += venue.step({"ETH": PriceInputs(mark)}, ts_ns=ts).liquidations
            if liquidated and first is None:
                first = ts
            if not liquidated:
                break
        if oracle is not None:
            orders = oracle.plan()
            oracle.execute(orders, functools.partial(_fill, book, index, ts), ts_ns=ts)
            if oracle.first_order_ns is not None and (
                first is None or oracle.first_order_ns < first
            ):
                first = oracle.first_order_ns
    bad_debt = sum(v.solvency().bad_debt for v in venues.values())
    return bad_debt, first, low


def test_the_holistic_trigger_deleverages_earlier_and_leaves_less_bad_debt_than_local_ones() -> (
    None
):
    local_debt, local_first, local_low = _run(holistic=False)
    holistic_debt, holistic_first, holistic_low = _run(holistic=True)
    assert local_first is not None
    assert holistic_first is not None
    assert holistic_first < local_first
    assert local_debt > 0.0
    assert holistic_debt < local_debt
    # The oracle's earlier, partial orders leave the shared book less displaced at the worst.
    assert holistic_low > local_low


def test_bad_oracle_settings_are_refused_naming_the_field() -> None:
    with pytest.raises(ValidationError, match=r"risk_oracle\.target"):
        RiskOracleConfig(level=1.2, target=1.1)
    with pytest.raises(ValidationError, match=r"risk_oracle\.step_fraction"):
        RiskOracleConfig(step_fraction=1.5)


class _FirstLiquidation(RiskLayer):
    name = "watch"

    def __init__(self) -> None:
        self.ts_ns: int | None = None

    def on_round(self, world: World, view: RoundView) -> None:
        if self.ts_ns is None and any(s.liquidations for s in view.steps.values()):
            self.ts_ns = view.ts_ns


def _world_run(
    *, holistic: bool, leverages: tuple[float, ...], every: Literal["step", "round"] = "step"
) -> tuple[float, int]:
    """Two order-book venues (each with its own book) and one shared ETH market in a World;
    the index falls 0.1 % a second. Returns the bad debt and the first time anything was
    deleveraged (a liquidation or an oracle order)."""
    start = 1_767_225_600_000_000_000
    accounts: dict[str, dict[str, int]] = {}
    entries = []
    for name in ("cex", "dex"):
        ex = Exchange(seed=1)
        m = ex.list_market(_spec(), ts_ns=start)
        ex.set_mark(m, 100.0, ts_ns=start)
        ex.set_liquidity(m, ConstantDepthBook(depth_per_pct=500.0, half_life_s=60.0, ts_ns=start))
        for k in range(10):
            leverage, size = leverages[k % len(leverages)], 300.0 + 20.0 * k
            a = ex.open_account(margin_mode=MarginMode.ISOLATED)
            ex.deposit(a, size * 100.0 / leverage, ts_ns=start)
            ex.set_leverage(a, m, leverage)
            ex.trade(m, buyer=a, seller=ex.liquidity_account, size=size, price=100.0, ts_ns=start)
            accounts.setdefault(f"t{k}", {})[name] = a
        entries.append(WorldVenue(PerpVenue(ex, name=name, assets={"ETH": m}), kind="perp"))
    market = SharedMarket(
        "ETH", exogenous=np.asarray(100.0 * (1.0 - 0.001 * np.arange(131)), dtype=np.float64),
        liquidity=LiquiditySpec(depth_per_pct=500.0, half_life_s=60.0),
        arbitrage=ArbitrageSpec(), start_ns=start, dt_s=1.0,
    )  # fmt: skip
    watch, oracle = _FirstLiquidation(), RiskOracleLayer(accounts, every=every)
    layers: list[RiskLayer] = [watch, oracle] if holistic else [watch]
    world = World([market], entries, dt_s=1.0, start_ns=start, layers=layers)
    world.run()
    bad_debt = sum(v.solvency().bad_debt for v in world.venues.values())
    times = [t for t in (watch.ts_ns, oracle.oracle and oracle.oracle.first_order_ns) if t]
    return bad_debt, min(times)


@pytest.mark.parametrize("every", ["step", "round"])
def test_in_a_world_the_oracle_layer_acts_first_and_leaves_less_bad_debt(
    every: Literal["step", "round"],
) -> None:
    # Leverage spread over 8x-15x: the traders cross the line at different prices. (With one
    # leverage for all, every trader crosses the holistic line at once and the oracle's own
    # sales push the shared price through the local lines: see docs/formulas.md §20.3.)
    leverages = (8.0, 10.0, 12.0, 15.0)
    local, local_first = _world_run(holistic=False, leverages=leverages)
    holistic, holistic_first = _world_run(holistic=True, leverages=leverages, every=every)
    assert holistic_first < local_first
    assert local > 0.0
    assert holistic < local


def test_the_position_table_matches_the_engines_margin_table(
    make_perp: Callable[..., tuple[WorldVenue, Any]],
) -> None:
    # A drawn book (half cross, half isolated) at a moved mark: each row's notional and
    # maintenance are the engine's; cross rows share their account's cross equity by
    # maintenance (so they add up to it), isolated rows carry the position's equity.
    entry, _ = make_perp("cex", n=400, seed=5)
    venue = entry.venue
    assert isinstance(venue, PerpVenue)
    venue.exchange.set_mark(0, 97_000.0, ts_ns=START_NS + S)
    mine = perp_positions(venue)
    engine = venue.exchange.margin_table()
    assert len(mine) == len(engine) > 0
    joined = mine.merge(engine, on="account", suffixes=("", "_engine"), validate="one_to_one")
    np.testing.assert_allclose(joined["notional"], joined["notional_engine"], rtol=1e-12)
    np.testing.assert_allclose(joined["maintenance"], joined["maintenance_margin"], rtol=1e-12)
    iso = joined["mode"] == "isolated"
    np.testing.assert_allclose(joined.loc[iso, "equity"], joined.loc[iso, "equity_engine"])
    # One market: a cross account's only position carries all its cross equity.
    np.testing.assert_allclose(joined.loc[~iso, "equity"], joined.loc[~iso, "equity_engine"])
    assert set(joined["mode"]) == {"isolated", "cross"}


@st.composite
def _profiles(draw: st.DrawFn) -> tuple[pd.DataFrame, float]:
    n = draw(st.integers(1, 4))
    rows = []
    for k in range(n):
        size = draw(st.floats(1.0, 2_000.0)) * draw(st.sampled_from([-1.0, 1.0]))
        price = draw(st.floats(10.0, 200.0))
        notional = abs(size) * price
        maintenance = 0.025 * notional
        equity = draw(st.floats(0.0, 0.2)) * notional
        rows.append(
            ("t", f"v{k}", k, "ETH", "isolated", size, notional, equity, maintenance,
             equity / maintenance)
        )  # fmt: skip
    frame = pd.DataFrame(rows, columns=["trader", *POSITION_COLUMNS])
    return frame, float(frame["equity"].sum())


@given(profile=_profiles(), step=st.floats(0.05, 1.0), target=st.floats(1.0, 3.0))
def test_the_rules_orders_only_reduce_and_stop_at_the_target_or_the_limit(
    profile: tuple[pd.DataFrame, float], step: float, target: float
) -> None:
    table, equity = profile
    tiers = MarketSpec.from_mapping({"symbol": "ETH", "tiers": TIERS}).tier_arrays
    local = {(v, "ETH"): tiers for v in table["venue"]}
    config = RiskOracleConfig(level=target, target=target, step_fraction=step, max_orders=50)
    orders = plan_reductions("t", table, equity, {"ETH": tiers}, local, config)
    held = dict(zip(table["venue"], table["size"], strict=True))
    left = dict(held)
    for order in orders:
        assert order.size * held[order.venue] < 0  # against the position
        left[order.venue] += order.size
        assert abs(left[order.venue]) <= abs(held[order.venue]) * (1 + 1e-12)
        assert left[order.venue] * held[order.venue] >= -1e-9  # never flips it
    gross = sum(
        abs(s) * p
        for s, p in zip(left.values(), table["notional"] / table["size"].abs(), strict=True)
    )
    health = equity / max(float(holistic_maintenance({"ETH": gross}, {"ETH": tiers})), 1e-300)
    holistic_before = equity / float(
        holistic_maintenance({"ETH": float(table["notional"].sum())}, {"ETH": tiers})
    )
    if holistic_before >= target:
        assert orders == []
    elif len(orders) < 50 and any(abs(v) > 0 for v in left.values()):
        assert health >= target * (1 - 1e-9)
