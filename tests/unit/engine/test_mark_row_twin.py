"""The mark's and the batch path's lean bookkeeping against the paths they replace.

``Exchange.set_mark`` writes its mark through ``Ledger._emit_mark`` (no ``MarkPrice`` object);
the batch path sums a group's penalties into the fund through ``InsuranceFund.receive_checked``
(no per-call checks of the kind and amount). Each must leave the same journal rows and state
as ``_emit(MarkPrice(...))`` and ``InsuranceFund.receive`` do (the reference): Hypothesis
draws the marks and the inflows; a deliberately wrong fast path is shown to be caught.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deleverage import Exchange, MarketSpec
from deleverage.engine.events import MarkPrice
from deleverage.engine.fund_records import FlowKind
from deleverage.engine.insurance_fund import InsuranceFund, _mint
from deleverage.errors import ValidationError

_BASE = {
    "tiers": [
        {"notional_floor": 0.0, "max_leverage": 20.0, "maintenance_rate": 0.01},
        {"notional_floor": 1e6, "max_leverage": 10.0, "maintenance_rate": 0.02},
    ],
    "taker_fee_rate": 0.0,
    "maker_fee_rate": 0.0,
}
#: dYdX v4's open-interest-based initial margin: the mark moves the rates in force.
_SCALED = {"open_interest_scaling": {"lower_cap": 1_000.0, "upper_cap": 50_000.0}}

Marks = list[tuple[int, int, float]]


def _exchange() -> Exchange:
    ex = Exchange()
    ex.list_market(MarketSpec.from_mapping({"symbol": "BTCUSDT", **_BASE}), ts_ns=1)
    ex.list_market(MarketSpec.from_mapping({"symbol": "ETHUSDT", **_BASE, **_SCALED}), ts_ns=1)
    a, b = ex.open_account(ts_ns=2), ex.open_account(ts_ns=2)
    for acc in (a, b):
        ex.deposit(acc, 100_000.0, ts_ns=3)
    for m in (0, 1):
        ex.set_mark(m, 100.0, ts_ns=4)
    for m in (0, 1):
        ex.trade(m, buyer=a, seller=b, size=10.0, price=100.0, ts_ns=5)
    return ex


def _reference(ex: Exchange, m: int, ts: int, price: float) -> None:
    ex._emit(MarkPrice(ts_ns=ts, market=m, price=price))


def _fast(ex: Exchange, m: int, ts: int, price: float) -> None:
    ex._emit_mark(m, ts, price)


def _state(ex: Exchange) -> tuple[object, ...]:
    return (
        ex._version,
        ex.clock_ns,
        ex.layout_version,
        tuple(s.mark for s in ex.markets),
        tuple(s.open_interest for s in ex.markets),
        tuple(s.tiers.imr.tobytes() for s in ex.markets),
        ex.journal.last_ts_ns,
        len(ex.journal),
    )


def _run(emit: Callable[[Exchange, int, int, float], None], marks: Marks) -> Exchange:
    ex = _exchange()
    ts = 10
    for m, dt, price in marks:
        ts += dt
        emit(ex, m, ts, price)
    return ex


def _assert_same(marks: Marks, fast: Callable[[Exchange, int, int, float], None]) -> None:
    want, got = _run(_reference, marks), _run(fast, marks)
    assert _state(got) == _state(want)
    assert got.journal.since(0).equals(want.journal.since(0))


_MARKS = st.lists(
    st.tuples(
        st.integers(0, 1),
        st.integers(0, 10**9),
        st.floats(1e-3, 1e6, allow_nan=False, allow_infinity=False),
    ),
    min_size=1,
    max_size=12,
)


@settings(max_examples=60, deadline=None)
@given(marks=_MARKS)
def test_emit_mark_writes_the_mark_price_events_row_and_state(marks: Marks) -> None:
    _assert_same(marks, _fast)


def test_a_fast_mark_that_skips_the_rates_in_force_is_caught() -> None:
    # The scaled market's initial rates follow open interest x mark (dYdX's OI-based IMF).
    def wrong(ex: Exchange, m: int, ts: int, price: float) -> None:
        ex.journal.append_mark(ts, m, price)
        ex._version += 1
        ex.clock_ns = max(ex.clock_ns, ts)
        ex.markets[m].mark = price  # no _refresh_rates

    with pytest.raises(AssertionError):
        _assert_same([(1, 1, 2_000.0)], wrong)


def test_a_fast_mark_with_another_row_is_caught() -> None:
    def wrong(ex: Exchange, m: int, ts: int, price: float) -> None:
        ex._emit_mark(m, ts + 1, price)  # a row one nanosecond late

    with pytest.raises(AssertionError):
        _assert_same([(0, 5, 101.0)], wrong)


def test_set_mark_journals_one_mark_price_row() -> None:
    # Arrange
    ex = _exchange()
    before = len(ex.journal)
    # Act
    ex.set_mark(0, 123.5, ts_ns=99)
    # Assert
    rows = ex.journal.since(before).to_pylist()
    assert [(r["kind"], r["market"], r["price"], r["ts_ns"]) for r in rows[:1]] == [
        (int(MarkPrice.kind), 0, 123.5, 99)
    ]
    assert ex.markets[0].mark == 123.5


def _fund(share: float) -> InsuranceFund:
    return InsuranceFund("f", protocol_share=share, unstake_cooldown_s=0.0)


def _records(fund: InsuranceFund) -> list[tuple[object, ...]]:
    out: list[tuple[object, ...]] = [tuple(r) for r in fund.history]
    return [*out, (fund.balance, fund._total_shares, fund._protocol_shares, fund._pnl)]


_INFLOWS = st.lists(
    st.tuples(
        st.integers(0, 10**6),
        st.floats(0.0, 1e9, allow_nan=False, allow_infinity=False),
        st.sampled_from([FlowKind.FEE_INFLOW, FlowKind.LIQUIDATION_PENALTY]),
    ),
    max_size=10,
)


@settings(max_examples=80, deadline=None)
@given(share=st.floats(0.0, 1.0), inflows=_INFLOWS)
def test_receive_checked_keeps_receives_records(
    share: float, inflows: list[tuple[int, float, FlowKind]]
) -> None:
    want, got = _fund(share), _fund(share)
    ts = 0
    for dt, amount, kind in inflows:
        ts += dt
        want.receive(amount, ts, kind=kind, ref=7)
        got.receive_checked(amount, ts, kind, 7)
    assert _records(got) == _records(want)


def _receive_by_append(fund: InsuranceFund, amount: float, ts: int, flow: FlowKind) -> None:
    """``receive_checked`` as it was before its holders' record was inlined (``_append``)."""
    ts = fund._check_ts(ts)
    if amount == 0.0:
        return
    cut = amount if flow is FlowKind.PROTOCOL_REVENUE else amount * fund.protocol_share
    holders_part = amount - cut
    if holders_part > 0.0:
        fund._balance += holders_part
        if fund._total_shares == 0.0:
            fund._protocol_shares = fund._total_shares = fund._balance
        fund._append(ts, flow, holders_part, "3 accounts", 0.0)
    if cut > 0.0:
        minted = _mint(cut, fund._total_shares, fund._balance)
        fund._protocol_shares += minted
        fund._total_shares += minted
        fund._balance += cut
        fund._append(ts, FlowKind.PROTOCOL_REVENUE, cut, "3 accounts", minted)


@settings(max_examples=80, deadline=None)
@given(share=st.floats(0.0, 1.0), stake=st.sampled_from([0.0, 1.0, 5e5]), inflows=_INFLOWS)
def test_receive_checked_twin_of_the_append_path(
    share: float, stake: float, inflows: list[tuple[int, float, FlowKind]]
) -> None:
    # The inlined holders' record against ``_append``/``_push``: the records, the balance,
    # shares and PnL, and the lists the fund's reads use (times, PnL and balance after)
    want, got = _fund(share), _fund(share)
    if stake:
        want.stake("s", stake, 0, available_cash=stake)
        got.stake("s", stake, 0, available_cash=stake)
    ts = 0
    for dt, amount, kind in inflows:
        ts += dt
        _receive_by_append(want, amount, ts, kind)
        got.receive_checked(amount, ts, kind, "3 accounts")
    assert _records(got) == _records(want)
    lists = ("_ts", "_pnl_after", "_balance_after")
    assert [getattr(got, a) for a in lists] == [getattr(want, a) for a in lists]


def test_receive_checked_still_checks_the_time() -> None:
    fund = _fund(0.1)
    fund.receive_checked(5.0, 100, FlowKind.LIQUIDATION_PENALTY, 1)
    with pytest.raises(ValidationError, match="ts_ns"):
        fund.receive_checked(5.0, 99, FlowKind.LIQUIDATION_PENALTY, 1)


def test_receive_checked_splits_the_protocols_cut_as_receive_documents() -> None:
    # receive's docstring: holders get (1 - p) x amount, the protocol p x amount as
    # protocol_revenue; 100 in at p = 0.25 -> 75 then 25, balance 100.
    fund = _fund(0.25)
    fund.receive_checked(100.0, 10, FlowKind.LIQUIDATION_PENALTY, None)
    kinds = [(r.kind, r.amount) for r in fund.history]
    assert kinds == [(FlowKind.LIQUIDATION_PENALTY, 75.0), (FlowKind.PROTOCOL_REVENUE, 25.0)]
    assert math.isclose(fund.balance, 100.0)


def test_journal_tables_compare_row_for_row() -> None:
    # the comparison above is strict: a table with one price changed differs
    ex = _run(_fast, [(0, 1, 100.0)])
    table = ex.journal.since(0)
    price = table.column("price").to_numpy(zero_copy_only=False).copy()
    price[-1] = np.nextafter(price[-1], np.inf)
    changed = table.set_column(table.schema.get_field_index("price"), "price", pa.array(price))
    assert not changed.equals(table)
