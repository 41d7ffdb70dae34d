"""Oracle test: a per-account Python valuation agrees with the engine's vectorized one.

The oracle reads positions one by one through the public views and values them with plain
loops: maintenance margin slice by slice over the tier table (each slice of notional between two
floors pays its own tier's rate, which is what the ``cum`` deduction encodes), initial margin at
``max(1 / max_leverage of the tier, 1 / chosen leverage)``. It shares no code with
:mod:`deleverage.rules.margin` or the compiled kernels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings

from deleverage import AccountKind, Exchange, MarginMode, MarginTier, MarketSpec
from strategies import Population, build_population, populations

RTOL = 1e-9
ATOL = 1e-6


def _tier(tiers: tuple[MarginTier, ...], notional: float) -> MarginTier:
    chosen = tiers[0]
    for tier in tiers:
        if notional >= tier.notional_floor:
            chosen = tier
    return chosen


def _maintenance(tiers: tuple[MarginTier, ...], notional: float) -> float:
    total = 0.0
    for i, tier in enumerate(tiers):
        top = tiers[i + 1].notional_floor if i + 1 < len(tiers) else math.inf
        if notional <= tier.notional_floor:
            break
        total += (min(notional, top) - tier.notional_floor) * tier.maintenance_rate
    return total


def _initial(tiers: tuple[MarginTier, ...], notional: float, leverage: float) -> float:
    rate = 1.0 / _tier(tiers, notional).max_leverage
    if leverage > 0:
        rate = max(rate, 1.0 / leverage)
    return notional * rate


def _ratio(equity: float, maintenance: float) -> float:
    if equity <= 0:
        return math.inf
    return maintenance / equity


@dataclass
class OraclePosition:
    market: str
    mode: MarginMode
    size: float
    entry: float
    mark: float
    notional: float
    upnl: float
    initial: float
    maintenance: float
    isolated_margin: float


@dataclass
class OracleAccount:
    cash: float
    positions: list[OraclePosition] = field(default_factory=list)

    @property
    def cross(self) -> list[OraclePosition]:
        return [p for p in self.positions if p.mode is MarginMode.CROSS]

    @property
    def cross_equity(self) -> float:
        return self.cash + sum(p.upnl for p in self.cross)

    @property
    def cross_maintenance(self) -> float:
        return sum(p.maintenance for p in self.cross)

    @property
    def cross_initial(self) -> float:
        return sum(p.initial for p in self.cross)

    @property
    def total_equity(self) -> float:
        return self.cash + sum(p.upnl + p.isolated_margin for p in self.positions)


def _oracle(ex: Exchange) -> list[OracleAccount]:
    accounts = []
    for a in range(ex.n_accounts):
        acct = OracleAccount(cash=ex.cash(a))
        for m, state in enumerate(ex.markets):
            pos = ex.position(a, m)
            mark = state.mark
            notional = abs(pos.size) * mark
            tiers = state.spec.tiers
            acct.positions.append(
                OraclePosition(
                    market=state.spec.symbol,
                    mode=pos.margin_mode,
                    size=pos.size,
                    entry=pos.entry_price,
                    mark=mark,
                    notional=notional,
                    upnl=pos.size * (mark - pos.entry_price),
                    initial=_initial(tiers, notional, pos.leverage),
                    maintenance=_maintenance(tiers, notional),
                    isolated_margin=pos.isolated_margin,
                )
            )
        accounts.append(acct)
    return accounts


def _close(actual: object, expected: object) -> None:
    np.testing.assert_allclose(
        np.asarray(actual, dtype=float), np.asarray(expected, dtype=float), rtol=RTOL, atol=ATOL
    )


def _check_margin_state(ex: Exchange) -> None:
    oracle = _oracle(ex)
    state = ex.margin_state()

    _close(state["cross_equity"], [o.cross_equity for o in oracle])
    _close(state["cross_maintenance"], [o.cross_maintenance for o in oracle])
    _close(state["cross_initial"], [o.cross_initial for o in oracle])
    _close(state["total_equity"], [o.total_equity for o in oracle])
    # ``total_equity()`` (the run's final equity) is the margin state's column, bit for bit.
    assert ex.total_equity().tobytes() == state["total_equity"].tobytes()
    _close(
        state["cross_margin_ratio"],
        [_ratio(o.cross_equity, o.cross_maintenance) for o in oracle],
    )
    for a, o in enumerate(oracle):
        margins = ex.account_margins(a)
        _close(
            [margins.cross_equity, margins.cross_initial, margins.cross_maintenance],
            [o.cross_equity, o.cross_initial, o.cross_maintenance],
        )
        _close(margins.total_equity, o.total_equity)
    for m in range(len(ex.markets)):
        iso = ex.isolated_state(m)
        rows = [o.positions[m] for o in oracle]
        equity = [
            p.isolated_margin + p.upnl if p.mode is MarginMode.ISOLATED else 0.0 for p in rows
        ]
        maint = [p.maintenance if p.mode is MarginMode.ISOLATED else 0.0 for p in rows]
        _close(iso["equity"], equity)
        _close(iso["maintenance"], maint)


def _check_margin_table(ex: Exchange, *, include_system: bool) -> None:
    oracle = _oracle(ex)
    table = ex.margin_table(include_system=include_system)
    expected = []
    for a, o in enumerate(oracle):
        if not include_system and ex.account_kind(a) is not AccountKind.TRADER:
            continue
        for p in o.positions:
            if p.size == 0.0:
                continue
            isolated = p.mode is MarginMode.ISOLATED
            equity = p.isolated_margin + p.upnl if isolated else o.cross_equity
            maint = p.maintenance if isolated else o.cross_maintenance
            expected.append(
                {
                    "account": a,
                    "market": p.market,
                    "mode": "isolated" if isolated else "cross",
                    "size": p.size,
                    "entry_price": p.entry,
                    "mark_price": p.mark,
                    "notional": p.notional,
                    "unrealized_pnl": p.upnl,
                    "initial_margin": p.initial,
                    "maintenance_margin": p.maintenance,
                    "equity": equity,
                    "margin_ratio": _ratio(equity, maint),
                }
            )
    want = pd.DataFrame(expected, columns=list(table.columns))
    got = table.sort_values(["account", "market"]).reset_index(drop=True)
    want = want.sort_values(["account", "market"]).reset_index(drop=True)

    assert len(got) == len(want)
    assert got["account"].tolist() == want["account"].tolist()
    assert got["market"].tolist() == want["market"].tolist()
    assert got["mode"].tolist() == want["mode"].tolist()
    for column in table.columns.drop(["account", "market", "mode"]):
        _close(got[column].to_numpy(dtype=float), want[column].to_numpy(dtype=float))


@settings(max_examples=40)
@given(pop=populations())
def test_margin_state_matches_per_account_oracle(pop: Population) -> None:
    # Arrange
    ex, _ = build_population(pop)

    # Act / Assert
    _check_margin_state(ex)


@settings(max_examples=30)
@given(pop=populations())
def test_margin_table_matches_per_position_oracle(pop: Population) -> None:
    ex, _ = build_population(pop)

    _check_margin_table(ex, include_system=False)
    _check_margin_table(ex, include_system=True)


def test_oracle_agrees_on_hand_built_two_market_account() -> None:
    # Arrange: one cross account long BTC and short ETH, one isolated account long BTC.
    ex = Exchange()
    btc = ex.list_market(
        MarketSpec.from_mapping(
            {
                "symbol": "BTCUSDT",
                "maker_fee_rate": 0.0,
                "taker_fee_rate": 0.0,
                "tiers": [
                    {"notional_floor": 0, "max_leverage": 125, "maintenance_rate": 0.004},
                    {"notional_floor": 50_000, "max_leverage": 100, "maintenance_rate": 0.005},
                    {"notional_floor": 250_000, "max_leverage": 50, "maintenance_rate": 0.01},
                ],
            }
        )
    )
    eth = ex.list_market(
        MarketSpec.simple("ETHUSDT", max_leverage=20, maker_fee_rate=0.0, taker_fee_rate=0.0)
    )
    ex.set_mark(btc, 60_000.0)
    ex.set_mark(eth, 3_000.0)
    cross = ex.open_account()
    iso = ex.open_account(margin_mode=MarginMode.ISOLATED)
    ex.deposit(cross, 100_000.0)
    ex.deposit(iso, 100_000.0)
    ex.trade(btc, buyer=cross, seller=ex.liquidity_account, size=5.0, price=60_000.0)
    ex.trade(eth, buyer=ex.liquidity_account, seller=cross, size=10.0, price=3_000.0)
    ex.set_leverage(iso, btc, 25.0)
    ex.trade(btc, buyer=iso, seller=ex.liquidity_account, size=1.0, price=60_000.0)

    # Act
    ex.set_mark(btc, 62_000.0)
    state = ex.margin_state()

    # Assert by hand: BTC notional 5 x 62,000 = 310,000 (tier 3): maintenance
    # 310,000 x 1% - 1,300 = 1,800; initial 310,000 / 50 = 6,200. ETH notional 30,000:
    # maintenance 2.5% = 750, initial / 20 = 1,500. Cross equity 100,000 + 10,000 = 110,000.
    assert state["cross_maintenance"][cross] == pytest.approx(1_800.0 + 750.0)
    assert state["cross_initial"][cross] == pytest.approx(6_200.0 + 1_500.0)
    assert state["cross_equity"][cross] == pytest.approx(110_000.0)
    assert state["cross_margin_ratio"][cross] == pytest.approx(2_550.0 / 110_000.0)
    # Isolated: 62,000 notional at 25x = 2,480 initial; 62,000 x 0.5% - 50 = 260 maintenance;
    # margin 2,400 put in at the open + 2,000 of profit = 4,400 of equity.
    isolated = ex.isolated_state(btc)
    assert isolated["maintenance"][iso] == pytest.approx(260.0)
    assert isolated["equity"][iso] == pytest.approx(4_400.0)
    _check_margin_state(ex)
    _check_margin_table(ex, include_system=True)
