"""Arbitrageurs close a dislocation as far as their cost, latency and capital allow.

Closed forms on a constant-depth book (``D = 100 depth_per_pct`` base units per unit move,
re-centred at the book's mid ``B``): moving the mid by a relative ``r`` takes ``r D`` base
units, notional ``B r D (1 + r / 2)`` (the linear book's VWAP, docs/formulas.md "Liquidity").
"""

from __future__ import annotations

import itertools
import math

import pytest

from deleverage.liquidity import ConstantDepthBook
from deleverage.sim.arbitrage import Arbitrageurs, arbitrage_gap
from deleverage.sim.pricing import ArbitrageSpec


def _book() -> ConstantDepthBook:
    return ConstantDepthBook(depth_per_pct=10.0, half_life_s=math.inf)  # D = 1,000


def test_gap_stops_at_the_cost_band() -> None:
    assert arbitrage_gap(-0.05, -0.05, 0.01) == pytest.approx(0.04)
    assert arbitrage_gap(0.004, 0.004, 0.005) == 0.0


def test_unlimited_capital_closes_the_gap_to_the_cost() -> None:
    arbs = Arbitrageurs(ArbitrageSpec(capital=math.inf, cost=0.001), dt_s=1.0)
    after = arbs.step(-0.05, index=100.0, book=_book(), ts_ns=0)
    assert after == pytest.approx(-0.001)


def test_capital_bounds_the_move() -> None:
    # Book at 95 (index 100, d = -5%); with 47.5 quote the arbs buy q units where
    # 95 q (1 + q / 2000) = 47.5 (the root of 0.0475 q^2 + 95 q - 47.5), moving the mid by q / D.
    arbs = Arbitrageurs(ArbitrageSpec(capital=47.5), dt_s=1.0)
    after = arbs.step(-0.05, index=100.0, book=_book(), ts_ns=0)
    q = (-95.0 + math.sqrt(95.0**2 + 4 * 0.0475 * 47.5)) / (2 * 0.0475)
    assert after == pytest.approx(0.95 * (1 + q / 1000) - 1, rel=1e-9)
    assert arbs.capital == pytest.approx(0.0, abs=1e-6)
    assert arbs.traded_notional == pytest.approx(47.5)


def test_no_capital_no_move_until_capital_arrives() -> None:
    arbs = Arbitrageurs(ArbitrageSpec(capital=0.0, inflow_per_s=95.0), dt_s=1.0)
    book = _book()
    d = -0.05
    path = []
    for k in range(200):
        d = arbs.step(d, index=100.0, book=book, ts_ns=k * 10**9)
        path.append(d)
    assert path[0] > -0.05  # the first second's inflow already buys
    assert all(b >= a - 1e-15 for a, b in itertools.pairwise(path))  # monotone back
    assert path[-1] == pytest.approx(0.0, abs=1e-12)


def test_latency_acts_on_what_was_seen() -> None:
    arbs = Arbitrageurs(ArbitrageSpec(capital=math.inf, latency_s=2.0), dt_s=1.0)
    book = _book()
    assert arbs.step(-0.05, index=100.0, book=book, ts_ns=0) == -0.05  # saw nothing yet
    arbs.record(-0.05)
    assert arbs.step(-0.05, index=100.0, book=book, ts_ns=10**9) == -0.05
    arbs.record(-0.05)
    assert arbs.step(-0.08, index=100.0, book=book, ts_ns=2 * 10**9) == pytest.approx(-0.03)
