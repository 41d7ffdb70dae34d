"""Reading a journal's newest events as arrays (engine/journal_read.py) against the journal's
own Arrow table: the same values and dtypes from every starting point, of every kind or of
some kinds only, whatever mix of single rows, column batches and Arrow tables the journal
holds, read before any of it is combined."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from deleverage.engine.events import (
    _COLUMNS,
    _NUMPY_DTYPES,
    AdlRound,
    Deposit,
    EventKind,
    Fill,
    FillReason,
    Journal,
    MarkPrice,
)
from deleverage.engine.journal_read import kinds_mask

_READABLE = tuple(c for c in _COLUMNS if c != "text")
_KINDS = tuple(int(k) for k in (EventKind.FILL, EventKind.MARK_PRICE, EventKind.DEPOSIT,
                                EventKind.ADL_ROUND, EventKind.TRANSFER))  # fmt: skip


def _single(journal: Journal, draw: st.DataObject, ts: int) -> None:
    which = draw.draw(st.sampled_from(("mark", "fill", "deposit", "adl")))
    price = draw.draw(st.floats(1.0, 1e6))
    if which == "mark":
        journal.append(MarkPrice(ts_ns=ts, market=draw.draw(st.integers(0, 3)), price=price))
    elif which == "fill":
        journal.append(
            Fill(
                ts_ns=ts, market=draw.draw(st.integers(0, 3)), buyer=draw.draw(st.integers(0, 9)),
                seller=draw.draw(st.integers(0, 9)), size=draw.draw(st.floats(0.0, 10.0)),
                price=price, buyer_fee=0.5, reason=int(FillReason.LIQUIDATION), note="x",
            )
        )  # fmt: skip
    elif which == "deposit":
        journal.append(Deposit(ts_ns=ts, account=draw.draw(st.integers(0, 9)), amount=price))
    else:
        journal.append(
            AdlRound(ts_ns=ts, account=1, market=0, size=2.0, price=price, amount=price / 3)
        )


def _batch(journal: Journal, draw: st.DataObject, ts: int) -> None:
    n = draw.draw(st.integers(1, 6))
    per_row = draw.draw(st.booleans())
    columns: dict[str, object] = {
        "account": np.arange(n) + draw.draw(st.integers(0, 5)),
        "size": draw.draw(st.sampled_from((1.5, 2))),  # a scalar for the whole batch
        "market": np.full(n, draw.draw(st.integers(0, 3)), dtype=np.int64),
    }
    if draw.draw(st.booleans()):
        columns["code"] = np.full(n, int(FillReason.BACKSTOP))
    kind = (
        np.array([int(EventKind.FILL), int(EventKind.MARK_PRICE)] * n, dtype=np.int16)[:n]
        if per_row
        else draw.draw(st.sampled_from((EventKind.FILL, EventKind.TRANSFER, EventKind.DEPOSIT)))
    )
    stamps = np.arange(ts, ts + n, dtype=np.int64) if per_row else ts
    journal.append_columns(kind, stamps, **columns)  # type: ignore[arg-type]


@settings(max_examples=80, deadline=None)
@given(st.data())
def test_arrays_since_equals_the_whole_tables_slice(data: st.DataObject) -> None:
    # Arrange: a random mix of single rows, batches, partial and whole reads
    journal = Journal()
    ts = 0
    for _ in range(data.draw(st.integers(1, 14))):
        op = data.draw(st.sampled_from(("single", "single", "batch", "since", "arrow")))
        ts += 1
        if op == "single":
            for _ in range(data.draw(st.integers(1, 4))):
                _single(journal, data, ts)
        elif op == "batch":
            _batch(journal, data, ts)
            ts += 10
        elif op == "since" and len(journal):  # converts the runs it reads to Arrow
            journal.since(data.draw(st.integers(0, len(journal) - 1)))
        elif op == "arrow":
            journal.to_arrow()
    columns = tuple(data.draw(st.permutations(_READABLE)))[: data.draw(st.integers(1, 12))]
    kinds = data.draw(
        st.none() | st.lists(st.sampled_from(_KINDS), min_size=1, max_size=3).map(tuple)
    )
    # Act: every starting point (past the end too), before anything else is combined
    got = [journal.arrays_since(seq, columns, kinds) for seq in range(len(journal) + 2)]
    # Assert: the whole table's slice, its rows of those kinds
    whole = journal.to_arrow()
    for seq, arrays in enumerate(got):
        assert tuple(arrays) == columns
        want = whole.slice(seq)
        if kinds is not None:
            want = want.filter(pa.array(np.isin(want.column("kind").to_numpy(), kinds)))
        for name, values in arrays.items():
            assert values.dtype == np.dtype(_NUMPY_DTYPES[name]), name
            np.testing.assert_array_equal(values, want.column(name).to_numpy())


def test_to_row_holds_every_column_with_the_fields_and_defaults() -> None:
    # Arrange: a fill (renamed columns) and a deposit (mostly defaults)
    fill = Fill(ts_ns=7, market=1, buyer=2, seller=3, size=0.5, price=100.0, note="n")
    deposit = Deposit(ts_ns=9, account=4, amount=12.5)
    # Act
    rows = [fill.to_row(), deposit.to_row()]
    # Assert: the values written out by hand from the event classes' column maps
    assert rows[0] == {
        "account": 2, "counterparty": 3, "market": 1, "size": 0.5, "price": 100.0,
        "amount": 0.0, "fee": 0.0, "counterparty_fee": 0.0, "code": int(FillReason.TRADE),
        "text": "n", "kind": int(EventKind.FILL), "seq": -1, "ts_ns": 7,
    }  # fmt: skip
    assert rows[1] == {
        "account": 4, "counterparty": -1, "market": -1, "size": 0.0, "price": 0.0,
        "amount": 12.5, "fee": 0.0, "counterparty_fee": 0.0, "code": 0, "text": "",
        "kind": int(EventKind.DEPOSIT), "seq": -1, "ts_ns": 9,
    }  # fmt: skip
    assert Fill.from_row(rows[0]) == fill


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.integers(-3, 40), max_size=50),
    st.lists(st.integers(0, 40), max_size=4).map(tuple),
)
def test_kinds_mask_is_isin(values: list[int], kinds: tuple[int, ...]) -> None:
    # Arrange: a kind column of the journal's dtype, and the kinds asked for (none too)
    kind = np.array(values, dtype=np.int16)
    # Act
    got = kinds_mask(kind, kinds)
    # Assert: NumPy's set membership, element by element
    assert got.dtype == np.bool_
    np.testing.assert_array_equal(got, np.isin(kind, kinds))
