"""Every ADL-laboratory policy through one interface: properties and worked examples.

Properties (Hypothesis), for every policy of :data:`POLICY_NAMES` and the fund-first hybrid:
covers the deficit exactly when capacity allows, never beyond a winner's cap, never touches
a non-eligible account, same inputs give the same output. Worked examples are by hand in the
comments. Fairness indices: Gini (mean absolute difference over twice the mean) and Jain,
Chiu and Hawe's index (1984), ``(sum x)^2 / (n sum x^2)``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deleverage.analytics.adl_study import example_rounds, run_study
from deleverage.errors import UnknownEntityError, ValidationError
from deleverage.rules.deleveraging import (
    POLICY_NAMES,
    BankruptSide,
    CappedProRata,
    Counterparties,
    bankrupt_side,
    counterparties,
    policy_named,
    transfers,
    water_fill,
)
from deleverage.rules.deleveraging_metrics import gini, jain, round_metrics, waves

CLOSING = {"bitmex", "bybit", "binance", "hyperliquid", "dydx", "risk_score", "okx",
           "size_pro_rata", "whole_lots"}  # fmt: skip
LOT = 0.5


@st.composite
def rounds(draw: st.DrawFn) -> tuple[BankruptSide, Counterparties]:
    n = draw(st.integers(0, 12))
    mark = draw(st.floats(10.0, 1_000.0))
    side = draw(st.sampled_from([1.0, -1.0]))
    lots = draw(st.integers(1, 200))
    gap = draw(st.floats(0.001, 0.2)) * mark
    size = side * lots * LOT
    deficit = draw(st.floats(0.0, 1.0)) * abs(size) * gap
    bankrupt = bankrupt_side(size, mark + side * gap, deficit, mark)
    sizes = [draw(st.integers(-40, 40)) * LOT for _ in range(n)]
    entries = [mark * draw(st.floats(0.7, 1.3)) for _ in range(n)]
    equity = [draw(st.floats(-10.0, 5_000.0)) for _ in range(n)]
    cps = counterparties(
        np.arange(100, 100 + n), sizes, entries, mark, equity,
        margin_ratio=[draw(st.floats(0.0, 1.0)) for _ in range(n)], lot_size=LOT,
        cross=[draw(st.booleans()) for _ in range(n)],
    )  # fmt: skip
    return bankrupt, cps


NAMES = [*POLICY_NAMES, "fund_first+bitmex", "fund_first+profit_pro_rata"]


@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=60, deadline=None)
@given(case=rounds())
def test_policy_properties(name: str, case: tuple[BankruptSide, Counterparties]) -> None:
    bankrupt, cps = case
    policy = policy_named(name, fund=0.3 * bankrupt.deficit, drawdown_limit=0.5)
    result = policy.allocate(bankrupt, cps)
    again = policy.allocate(bankrupt, cps)
    # Same inputs, same output.
    assert np.array_equal(result.closed, again.closed)
    assert np.array_equal(result.haircut, again.haircut)
    assert result.price == again.price
    # Never a non-eligible account.
    ok = policy.eligible(bankrupt, cps)
    assert not result.closed[~ok].any()
    assert not result.haircut[~ok].any()
    # Never beyond a winner's cap: its size, and (haircuts) its profit.
    assert np.all(result.closed >= 0)
    assert np.all(result.closed <= np.abs(cps.size) * (1 + 1e-12))
    assert np.all(result.haircut >= 0)
    assert np.all(result.haircut <= np.maximum(cps.upnl, 0.0) * (1 + 1e-12))
    assert result.bankrupt_closed <= abs(bankrupt.size) * (1 + 1e-12)
    # Never beyond the bankruptcy price; covers exactly when capacity allows.
    gap = abs(bankrupt.bankruptcy_price - bankrupt.mark)
    assert abs(result.price - bankrupt.mark) <= gap * (1 + 1e-12)
    budget = bankrupt.deficit - result.fund_paid
    inner = name.removeprefix("fund_first+")
    if inner in CLOSING:
        capacity = min(abs(bankrupt.size), float(np.abs(cps.size[ok]).sum())) * gap
    else:
        capacity = float(np.maximum(cps.upnl[ok], 0.0).sum())
    covered = math.fsum(transfers(bankrupt, cps, result).tolist())
    if capacity >= budget * (1 + 1e-9):
        assert covered == pytest.approx(budget, rel=1e-9, abs=1e-9)
    else:
        assert covered <= budget * (1 + 1e-9) + 1e-9


def test_capped_pro_rata_takes_the_deficit_while_queues_take_more() -> None:
    totals = run_study(example_rounds()).totals.set_index("policy")
    for name in ("profit_pro_rata", "equity_pro_rata", "notional_pro_rata",
                 "socialized_profit", "min_max"):  # fmt: skip
        row = totals.loc[name]
        assert row["haircut"] == pytest.approx(row["deficit"], rel=1e-9)
        assert row["uncovered"] == 0.0
    for name in ("bitmex", "binance", "okx", "hyperliquid", "dydx", "size_pro_rata"):
        assert totals.loc[name, "haircut"] > 2 * totals.loc[name, "deficit"]


def _example() -> tuple[BankruptSide, Counterparties]:
    # Long 10 bankrupt at mark 100, bankruptcy price 110: deficit 10 x 10 = 100. Shorts:
    # 2 @ 120 (profit 40, 4x), 3 @ 130 (profit 90, 3x), 5 @ 105 (profit 25, 2.5x), a losing
    # short 1 @ 90 and a long 4 (the bankrupt's side).
    b = bankrupt_side(10.0, 110.0, 100.0, 100.0)
    c = counterparties(np.arange(5), [-2.0, -3.0, -5.0, -1.0, 4.0],
                       [120.0, 130.0, 105.0, 90.0, 80.0], 100.0,
                       [50.0, 100.0, 200.0, 40.0, 100.0])  # fmt: skip
    return b, c


def test_worked_example_profit_pro_rata_and_the_queue() -> None:
    b, c = _example()
    # Profit pro rata: 100 x (40, 90, 25) / 155.
    pro = policy_named("profit_pro_rata").allocate(b, c)
    assert pro.haircut == pytest.approx([100 * 40 / 155, 100 * 90 / 155, 100 * 25 / 155, 0, 0])
    assert not pro.closed.any()
    # BitMEX queue closes all 10 shorts at 110: covered 10 x 10 = 100, haircut the closed
    # profit 40 + 90 + 25 = 155, overshoot 55.
    q = policy_named("bitmex").allocate(b, c)
    m = round_metrics(b, c, q)
    assert (m.covered, m.haircut, m.overshoot) == pytest.approx((100.0, 155.0, 55.0))
    assert m.participation == 1.0
    assert m.largest_haircut_pct == 1.0
    # Capped at half the profit: caps 20, 45, 12.5 = 77.5 < 100, so all caps, 22.5 uncovered.
    half = policy_named("profit_pro_rata", cap_fraction=0.5).allocate(b, c)
    assert round_metrics(b, c, half).uncovered == pytest.approx(22.5)


def test_budget_driven_hybrid_closes_part_of_the_bankrupt_position() -> None:
    b, c = _example()
    # The fund pays 40 of the 100; 60 at 10 per unit needs 6 of the 10 units.
    r = policy_named("fund_first+bitmex", fund=40.0).allocate(b, c)
    assert r.fund_paid == 40.0
    assert r.bankrupt_closed == pytest.approx(6.0)
    m = round_metrics(b, c, r)
    assert m.covered == pytest.approx(100.0)
    assert m.uncovered == 0.0


def test_min_max_equals_capped_profit_pro_rata() -> None:
    b, c = _example()
    for cap in (1.0, 0.8):
        lp = policy_named("min_max", cap_fraction=cap).allocate(b, c)
        wf = CappedProRata("profit", cap).allocate(b, c)
        assert lp.haircut == pytest.approx(wf.haircut, rel=1e-7, abs=1e-7)
        assert lp.haircut.sum() == pytest.approx(100.0, rel=1e-12)


def test_whole_lots_close_whole_lots_and_move_the_price_to_cover_exactly() -> None:
    b = bankrupt_side(3.3, 110.0, 30.0, 100.0)  # needs 3 units at 10; lots of 1 -> 3 lots
    c = counterparties([1, 2], [-4.0, -4.0], [120.0, 120.0], 100.0, [100.0, 100.0], lot_size=1.0)
    r = policy_named("whole_lots").allocate(b, c)
    assert sorted(r.closed.tolist()) == [1.0, 2.0]
    assert r.price == pytest.approx(110.0)
    b2 = bankrupt_side(3.3, 110.0, 25.0, 100.0)  # 2.5 units -> 3 lots at 100 + 25 / 3
    r2 = policy_named("whole_lots").allocate(b2, c)
    assert r2.closed.sum() == 3.0
    assert r2.price == pytest.approx(100.0 + 25.0 / 3.0)


def test_okx_ranks_cross_accounts_by_margin_ratio() -> None:
    b = bankrupt_side(1.0, 110.0, 10.0, 100.0)
    # Two cross shorts: the one with the higher maintenance / equity goes first.
    c = counterparties([1, 2], [-1.0, -1.0], [120.0, 150.0], 100.0, [100.0, 100.0],
                       margin_ratio=[0.9, 0.1], cross=[True, True])  # fmt: skip
    r = policy_named("okx").allocate(b, c)
    assert r.closed.tolist() == [1.0, 0.0]


def test_water_fill_gini_jain_and_waves_by_hand() -> None:
    assert water_fill([1.0, 1.0, 1.0], [1.0, 5.0, 5.0], 7.0).tolist() == [1.0, 3.0, 3.0]
    assert water_fill([1.0, 2.0], [1.0, 1.0], 5.0).tolist() == [1.0, 1.0]
    assert gini([0.0, 0.0, 1.0]) == pytest.approx(2 / 3)
    assert gini([0.5, 0.5]) == 0.0
    assert jain([1.0, 0.0, 0.0, 0.0]) == pytest.approx(0.25)
    assert waves([5_000, 0, 200_000], 60.0).tolist() == [0, 0, 1]


def test_bad_input_names_the_field() -> None:
    with pytest.raises(ValidationError, match="deficit"):
        bankrupt_side(1.0, 110.0, -1.0, 100.0)
    with pytest.raises(ValidationError, match="entry"):
        counterparties([1], [-1.0], [0.0], 100.0, [1.0])
    with pytest.raises(UnknownEntityError, match="policy"):
        policy_named("nope")
    with pytest.raises(ValidationError, match="cap_fraction"):
        policy_named("profit_pro_rata", cap_fraction=1.5)


def test_whole_lots_covers_a_deficit_far_below_one_lot() -> None:
    # Hypothesis found it: a deficit of 1.5e-8 over a gap of 30.125 needs 5e-10 base, 1e-9
    # lots; the float slack rounded that to zero lots and left the deficit uncovered. One lot
    # (0.5 base) is closed at a price 3e-8 from the mark: 0.5 x 3.0e-8 = 1.5e-8.
    bankrupt = bankrupt_side(-85.5, 210.875, 1.5e-8, 241.0)
    cps = counterparties([100], [30.125], [210.0], 241.0, [1_000.0], lot_size=LOT)
    result = policy_named("whole_lots").allocate(bankrupt, cps)
    assert result.closed.tolist() == [LOT]
    assert math.fsum(transfers(bankrupt, cps, result).tolist()) == pytest.approx(1.5e-8)
