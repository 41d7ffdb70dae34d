"""What a journal table is: the event kinds, the reasons, the one wide Arrow schema.

Every event of :mod:`deleverage.engine.events` is one row of :data:`JOURNAL_SCHEMA` (unused
columns at :data:`DEFAULTS`); :func:`checked_table` is the test a table read from outside
(Parquet, a database) passes before it becomes a journal: every column present and none
unknown, no nulls, finite floats, the schema's types, ``seq`` numbered 0, 1, 2, ..., time never
going backwards, and known kinds.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Any

import numpy as np
import pyarrow as pa

from deleverage.errors import DataError

__all__ = [
    "DEFAULTS",
    "JOURNAL_COLUMNS",
    "JOURNAL_SCHEMA",
    "NUMPY_DTYPES",
    "EventKind",
    "FillReason",
    "TransferReason",
    "checked_table",
]


class EventKind(IntEnum):
    """Kind of an event; the journal's ``kind`` column."""

    ACCOUNT_OPENED = 1
    MARKET_LISTED = 2
    DEPOSIT = 3
    WITHDRAWAL = 4
    FILL = 5
    MARK_PRICE = 6
    MARGIN_MOVED = 7
    TRANSFER = 8
    POSITION_SETTINGS = 9
    RISK_PARAMS = 10
    COLLATERAL_LISTED = 11
    COLLATERAL_PRICE = 12
    COLLATERAL_MOVED = 13
    LIQUIDATION = 20
    ADL_ROUND = 21
    MARGIN_CALL = 22
    CIRCUIT_BREAKER = 23
    BAD_DEBT = 24
    INSURANCE = 25
    FUNDING = 26
    MARGIN_NOTICE = 27


class FillReason(IntEnum):
    """Why a fill happened."""

    TRADE = 0
    LIQUIDATION = 1
    LIQUIDATOR_TAKEOVER = 2
    ADL = 3
    BACKSTOP = 4
    PREDICTIVE = 5  # predictive deleveraging: a partial close before liquidation


class TransferReason(IntEnum):
    """Why cash moved between two accounts."""

    TRADING_FEE = 0
    LIQUIDATION_FEE = 1
    INSURANCE_COVER = 2
    SOCIALIZED_LOSS = 3
    STAKE = 4
    UNSTAKE = 5
    FUNDING = 6
    BACKSTOP_MARGIN = 7
    PROTOCOL_REVENUE = 8
    BAD_DEBT_WRITE_OFF = 9


JOURNAL_SCHEMA = pa.schema(
    [
        pa.field("seq", pa.int64(), nullable=False),
        pa.field("ts_ns", pa.int64(), nullable=False),
        pa.field("kind", pa.int16(), nullable=False),
        pa.field("account", pa.int64(), nullable=False),  # -1 where none
        pa.field("counterparty", pa.int64(), nullable=False),  # -1 where none
        pa.field("market", pa.int32(), nullable=False),  # -1 where none
        pa.field("size", pa.float64(), nullable=False),  # base units
        pa.field("price", pa.float64(), nullable=False),  # quote per base
        pa.field("amount", pa.float64(), nullable=False),  # quote
        pa.field("fee", pa.float64(), nullable=False),  # quote
        pa.field("counterparty_fee", pa.float64(), nullable=False),  # quote
        pa.field("code", pa.int32(), nullable=False),  # reason / sub-kind
        pa.field("text", pa.string(), nullable=False),  # JSON or a name
    ]
)
JOURNAL_COLUMNS = tuple(JOURNAL_SCHEMA.names)  #: the schema's column names, in order
DEFAULTS: dict[str, Any] = {  #: every column's value where an event leaves it unset
    "account": -1,
    "counterparty": -1,
    "market": -1,
    "size": 0.0,
    "price": 0.0,
    "amount": 0.0,
    "fee": 0.0,
    "counterparty_fee": 0.0,
    "code": 0,
    "text": "",
}
NUMPY_DTYPES = {  #: the NumPy dtype of every column but ``text``
    "seq": np.int64,
    "ts_ns": np.int64,
    "kind": np.int16,
    "account": np.int64,
    "counterparty": np.int64,
    "market": np.int32,
    "size": np.float64,
    "price": np.float64,
    "amount": np.float64,
    "fee": np.float64,
    "counterparty_fee": np.float64,
    "code": np.int32,
}


def checked_table(table: pa.Table, source: str = "table") -> pa.Table:
    """``table`` cast to :data:`JOURNAL_SCHEMA` (columns in order) once it passes the checks
    named in the module docstring; ``source`` names it in the errors.

    Raises
    ------
    DataError
        The first check it fails, with the column and row.
    """
    missing = [n for n in JOURNAL_COLUMNS if n not in table.column_names]
    if missing:
        raise DataError(f"{source}.columns", missing, "must include every journal column")
    extra = [n for n in table.column_names if n not in JOURNAL_COLUMNS]
    if extra:
        raise DataError(f"{source}.columns", extra, "must not include unknown columns")
    for name in JOURNAL_COLUMNS:
        column = table[name]
        if column.null_count:
            bad = int(np.flatnonzero(np.asarray(column.is_null()))[0])
            raise DataError(f"{source}.{name}[{bad}]", None, "must not be null")
        if pa.types.is_floating(column.type):
            values = np.asarray(column)
            if not np.isfinite(values).all():
                bad = int(np.flatnonzero(~np.isfinite(values))[0])
                raise DataError(f"{source}.{name}[{bad}]", float(values[bad]), "must be finite")
    try:
        table = table.select(list(JOURNAL_COLUMNS)).cast(JOURNAL_SCHEMA)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise DataError(f"{source}.schema", str(exc)[:80], "must match JOURNAL_SCHEMA") from None
    seq = np.asarray(table["seq"])
    if len(seq) and not np.array_equal(seq, np.arange(len(seq))):
        bad = int(np.flatnonzero(seq != np.arange(len(seq)))[0])
        raise DataError(f"{source}.seq[{bad}]", int(seq[bad]), f"must be {bad} (0, 1, 2, ...)")
    ts = np.asarray(table["ts_ns"])
    if len(ts) > 1 and np.any(np.diff(ts) < 0):
        bad = int(np.flatnonzero(np.diff(ts) < 0)[0]) + 1
        raise DataError(f"{source}.ts_ns[{bad}]", int(ts[bad]), "must not go backwards")
    kinds = np.asarray(table["kind"])
    known = np.array([int(k) for k in EventKind])
    unknown = ~np.isin(kinds, known)
    if unknown.any():
        bad = int(np.flatnonzero(unknown)[0])
        raise DataError(f"{source}.kind[{bad}]", int(kinds[bad]), "must be an EventKind")
    return table
