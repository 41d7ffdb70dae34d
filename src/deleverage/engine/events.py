"""Events and the journal.

Every state change of the engine is an immutable, typed event with a timestamp (``ts_ns``, int64
nanoseconds) and a sequence number (``seq``), appended to a :class:`Journal`. Events are facts:
replaying a journal applies their effects without re-deciding anything, so a fresh engine reaches
the same state, array for array (:meth:`deleverage.engine.exchange.Exchange.replay`).

Two families share one journal:

- *effects* change balances or positions: accounts opened, markets listed, deposits and
  withdrawals, fills (trades, liquidation and ADL fills), mark prices, transfers between
  accounts (fees, penalties, insurance payments, socialized losses), margin moves;
- *notices* record decisions and alerts: a liquidation's summary, a margin call, a circuit
  breaker, a risk-parameter change, an ADL round.

The journal is columnar: all events share one wide schema (:data:`JOURNAL_SCHEMA`) with
unused columns left at their defaults, so a million fills cost a few arrays, and it is written
to and read from Parquet with pyarrow.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, cast

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.parquet as pq

from deleverage.engine import journal_read

# The schema and the kinds live in journal_schema; imported here under their old names, and
# re-exported (``X as X``) for the many modules that import them from the journal.
from deleverage.engine.journal_schema import DEFAULTS as _DEFAULTS
from deleverage.engine.journal_schema import JOURNAL_COLUMNS as _COLUMNS
from deleverage.engine.journal_schema import JOURNAL_SCHEMA as JOURNAL_SCHEMA
from deleverage.engine.journal_schema import NUMPY_DTYPES, checked_table
from deleverage.engine.journal_schema import EventKind as EventKind
from deleverage.engine.journal_schema import FillReason as FillReason
from deleverage.engine.journal_schema import TransferReason as TransferReason
from deleverage.errors import DataError

_FIELD_COLUMNS: dict[type, tuple[tuple[str, str], ...]] = {}
_KINDS = {int(k): k for k in EventKind}  #: ``EventKind(code)`` as a lookup
_OWN_ROWS = frozenset({"__ts_rows", "__kind_rows"})  #: made by ``append_columns``: not copied
_ROW_TEMPLATES: dict[type, dict[str, Any]] = {}
_NUMPY_DTYPES = NUMPY_DTYPES  #: the name the risk modules and tests import
_BATCH_NAMES = frozenset(_COLUMNS) | {"__ts_rows", "__kind_rows"}  #: append_columns' names


def _field_columns(cls: type) -> tuple[tuple[str, str], ...]:
    """(field name, journal column) pairs of an event class (cached per class)."""
    pairs = _FIELD_COLUMNS.get(cls)
    if pairs is None:
        columns: dict[str, str] = getattr(cls, "_columns", {})
        pairs = tuple((f.name, columns.get(f.name, f.name)) for f in dataclasses.fields(cls))
        _FIELD_COLUMNS[cls] = pairs
    return pairs


def _row_template(cls: type[Event]) -> dict[str, Any]:
    """An event class's row before its fields: every column's default and its kind (cached
    per class)."""
    template = _ROW_TEMPLATES[cls] = {**_DEFAULTS, "kind": int(cls.kind)}
    return template


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """Base of all events: a sequence number and a timestamp (int64 ns)."""

    kind: ClassVar[EventKind]
    # Event field -> journal column, for fields whose names differ from the column's.
    _columns: ClassVar[dict[str, str]] = {}

    seq: int = -1
    ts_ns: int = 0

    def to_row(self) -> dict[str, Any]:
        """This event as one journal row (every column present)."""
        cls = type(self)
        template = _ROW_TEMPLATES.get(cls)
        row = (template if template is not None else _row_template(cls)).copy()
        for name, column in _field_columns(cls):
            row[column] = getattr(self, name)
        return row

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Event:
        """Rebuild the typed event from a journal row."""
        return cls(**{name: row[column] for name, column in _field_columns(cls)})


@dataclass(frozen=True, slots=True, kw_only=True)
class AccountOpened(Event):
    """An account was opened; ``account_kind`` is an ``AccountKind``, ``margin_mode`` the
    default ``MarginMode`` of its positions."""

    kind: ClassVar[EventKind] = EventKind.ACCOUNT_OPENED
    _columns: ClassVar[dict[str, str]] = {
        "account_kind": "code",
        "margin_mode": "market",
        "label": "text",
    }
    account: int
    account_kind: int
    margin_mode: int = 0
    label: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class MarketListed(Event):
    """A market was listed; ``spec_json`` is its canonical :class:`MarketSpec` JSON."""

    kind: ClassVar[EventKind] = EventKind.MARKET_LISTED
    _columns: ClassVar[dict[str, str]] = {"spec_json": "text"}
    market: int
    spec_json: str


@dataclass(frozen=True, slots=True, kw_only=True)
class CollateralListed(Event):
    """A coin became eligible collateral (``asset`` its id, in listing order); ``asset_json`` is
    its :class:`deleverage.rules.collateral.CollateralAsset` (tiers, basis) as JSON."""

    kind: ClassVar[EventKind] = EventKind.COLLATERAL_LISTED
    _columns: ClassVar[dict[str, str]] = {"asset": "code", "asset_json": "text"}
    asset: int
    asset_json: str


@dataclass(frozen=True, slots=True, kw_only=True)
class CollateralPriced(Event):
    """A collateral coin's index ``price`` (quote per coin): every holding is revalued, the
    change of its collateral value credited to (or taken from) its account's cash."""

    kind: ClassVar[EventKind] = EventKind.COLLATERAL_PRICE
    _columns: ClassVar[dict[str, str]] = {"asset": "code"}
    asset: int
    price: float


@dataclass(frozen=True, slots=True, kw_only=True)
class CollateralMoved(Event):
    """``quantity`` coins of collateral ``asset`` added to (> 0: a deposit) or sold from (< 0)
    ``account``; a sale credits ``proceeds`` (quote, at the average ``price``) to its cash.
    ``reason``: ``"deposit"`` or ``"sale"``."""

    kind: ClassVar[EventKind] = EventKind.COLLATERAL_MOVED
    _columns: ClassVar[dict[str, str]] = {
        "asset": "code",
        "quantity": "size",
        "proceeds": "amount",
        "reason": "text",
    }
    account: int
    asset: int
    quantity: float
    price: float
    proceeds: float = 0.0
    reason: str = "deposit"


@dataclass(frozen=True, slots=True, kw_only=True)
class RiskParamsChanged(Event):
    """A market's spec was replaced (dynamic margin); ``spec_json`` is the new spec."""

    kind: ClassVar[EventKind] = EventKind.RISK_PARAMS
    _columns: ClassVar[dict[str, str]] = {"spec_json": "text"}
    market: int
    spec_json: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Deposit(Event):
    """Quote cash deposited into an account from outside the venue."""

    kind: ClassVar[EventKind] = EventKind.DEPOSIT
    account: int
    amount: float


@dataclass(frozen=True, slots=True, kw_only=True)
class Withdrawal(Event):
    """Quote cash withdrawn from an account to outside the venue."""

    kind: ClassVar[EventKind] = EventKind.WITHDRAWAL
    account: int
    amount: float


@dataclass(frozen=True, slots=True, kw_only=True)
class Fill(Event):
    """``size`` base units (> 0) bought by ``buyer`` from ``seller`` at ``price``.

    Fees are charged to each side in quote (negative for a maker rebate) and paid to the
    venue's fee account (``code`` carries the :class:`FillReason`, ``text`` the ADL policy).
    """

    kind: ClassVar[EventKind] = EventKind.FILL
    _columns: ClassVar[dict[str, str]] = {
        "buyer": "account",
        "seller": "counterparty",
        "buyer_fee": "fee",
        "seller_fee": "counterparty_fee",
        "reason": "code",
        "note": "text",
    }
    market: int
    buyer: int
    seller: int
    size: float
    price: float
    buyer_fee: float = 0.0
    seller_fee: float = 0.0
    reason: int = FillReason.TRADE
    note: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class MarkPrice(Event):
    """The oracle set a market's mark price (quote per base)."""

    kind: ClassVar[EventKind] = EventKind.MARK_PRICE
    market: int
    price: float


@dataclass(frozen=True, slots=True, kw_only=True)
class MarginMoved(Event):
    """Cash moved between an account's cross balance and an isolated position (+ = into it)."""

    kind: ClassVar[EventKind] = EventKind.MARGIN_MOVED
    account: int
    market: int
    amount: float


@dataclass(frozen=True, slots=True, kw_only=True)
class Transfer(Event):
    """Cash moved from ``source`` to ``destination`` (``reason``: a :class:`TransferReason`).

    ``market`` >= 0 takes (or pays) the cash from the source's (destination's) isolated margin
    in that market when that position is isolated and open; otherwise cash moves.
    """

    kind: ClassVar[EventKind] = EventKind.TRANSFER
    _columns: ClassVar[dict[str, str]] = {
        "source": "account",
        "destination": "counterparty",
        "reason": "code",
    }
    source: int
    destination: int
    amount: float
    reason: int
    market: int = -1


@dataclass(frozen=True, slots=True, kw_only=True)
class PositionSettings(Event):
    """A position's margin mode (``code``) and chosen leverage (``price`` column) were set."""

    kind: ClassVar[EventKind] = EventKind.POSITION_SETTINGS
    _columns: ClassVar[dict[str, str]] = {"margin_mode": "code", "leverage": "price"}
    account: int
    market: int
    margin_mode: int
    leverage: float


@dataclass(frozen=True, slots=True, kw_only=True)
class Liquidation(Event):
    """Summary of one account's liquidation in a market (a notice; the fills carry the effect).

    ``size`` is the signed size closed (a long's liquidation has size < 0), ``price`` the
    average fill price, ``shortfall`` what the account could not pay (quote, >= 0),
    ``penalty`` the fee charged, ``bankruptcy_price`` the position's bankruptcy price when it
    was closed; ``policy`` the liquidation kind (0 full, 1 partial, 2 fixed fraction, 3 tier
    down, 4 portion).
    """

    kind: ClassVar[EventKind] = EventKind.LIQUIDATION
    _columns: ClassVar[dict[str, str]] = {
        "shortfall": "amount",
        "penalty": "fee",
        "policy": "code",
        "bankruptcy_price": "counterparty_fee",
    }
    account: int
    market: int
    size: float
    price: float
    shortfall: float = 0.0
    penalty: float = 0.0
    bankruptcy_price: float = 0.0
    policy: int = 0
    text: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class AdlRound(Event):
    """Summary of one ADL round against a bankrupt account (a notice; fills carry the effect).

    ``size`` is the bankrupt account's signed size closed, ``price`` the ADL price, ``amount``
    the loss covered, ``text`` JSON metrics (notional closed, overshoot, policy).
    """

    kind: ClassVar[EventKind] = EventKind.ADL_ROUND
    account: int
    market: int
    size: float
    price: float
    amount: float
    text: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class MarginCall(Event):
    """An account's margin ratio crossed the warning level (``amount``: the ratio)."""

    kind: ClassVar[EventKind] = EventKind.MARGIN_CALL
    _columns: ClassVar[dict[str, str]] = {"ratio": "amount"}
    account: int
    market: int
    ratio: float


@dataclass(frozen=True, slots=True, kw_only=True)
class CircuitBreaker(Event):
    """A market was halted (``code`` 1) or resumed (``code`` 0); ``amount`` is the move."""

    kind: ClassVar[EventKind] = EventKind.CIRCUIT_BREAKER
    _columns: ClassVar[dict[str, str]] = {"halted": "code", "move": "amount"}
    market: int
    halted: int
    move: float = 0.0
    text: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class MarginNotice(Event):
    """Proactive margin: a raise announced to an account (``action`` 1: the maintenance rate
    times ``multiplier`` after ``grace_s`` seconds) or cancelled (2); ``probability`` is the
    predicted cascade probability that prompted it."""

    kind: ClassVar[EventKind] = EventKind.MARGIN_NOTICE
    _columns: ClassVar[dict[str, str]] = {
        "action": "code",
        "probability": "amount",
        "multiplier": "price",
        "grace_s": "size",
    }
    account: int
    market: int
    action: int
    probability: float
    multiplier: float
    grace_s: float = 0.0


@dataclass(frozen=True, slots=True, kw_only=True)
class BadDebt(Event):
    """Loss left after fund, backstop and ADL: recorded, never silent (``amount`` quote)."""

    kind: ClassVar[EventKind] = EventKind.BAD_DEBT
    account: int
    market: int
    amount: float
    text: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class FundingPayment(Event):
    """A perpetual funding payment received by one position (``amount`` quote, < 0 when paid).

    ``rate`` (the ``price`` column) is the period's funding rate and ``mark`` (``size``) the mark
    it was applied at: ``amount = -size x mark x rate``, longs paying shorts when the rate is
    positive. An isolated position's payment moves its margin, a cross one the account's cash.
    """

    kind: ClassVar[EventKind] = EventKind.FUNDING
    _columns: ClassVar[dict[str, str]] = {"rate": "price", "mark": "size"}
    account: int
    market: int
    amount: float
    rate: float
    mark: float


@dataclass(frozen=True, slots=True, kw_only=True)
class InsuranceAction(Event):
    """A staker asked to unstake ``shares`` (``code`` 1) or cancelled the request (``code`` 2).

    Cash moves only with the later :class:`Transfer` (reason ``UNSTAKE``).
    """

    kind: ClassVar[EventKind] = EventKind.INSURANCE
    _columns: ClassVar[dict[str, str]] = {
        "staker": "account",
        "fund_account": "counterparty",
        "action": "code",
        "shares": "size",
    }
    staker: int
    fund_account: int
    action: int
    shares: float = 0.0


#: Kinds that record decisions and alerts but change no balance (replay skips them).
NOTICE_KINDS = frozenset(
    {
        EventKind.LIQUIDATION,
        EventKind.ADL_ROUND,
        EventKind.MARGIN_CALL,
        EventKind.CIRCUIT_BREAKER,
        EventKind.BAD_DEBT,
        EventKind.MARGIN_NOTICE,
    }
)

UNSTAKE_REQUEST = 1
UNSTAKE_CANCEL = 2


EVENT_TYPES: dict[EventKind, type[Event]] = {
    cls.kind: cls
    for cls in (
        AccountOpened,
        MarketListed,
        RiskParamsChanged,
        CollateralListed,
        CollateralPriced,
        CollateralMoved,
        Deposit,
        Withdrawal,
        Fill,
        MarkPrice,
        MarginMoved,
        Transfer,
        PositionSettings,
        Liquidation,
        AdlRound,
        MarginCall,
        CircuitBreaker,
        BadDebt,
        InsuranceAction,
        FundingPayment,
        MarginNotice,
    )
}


class Journal:
    """Append-only, columnar log of events.

    Single events are kept as rows; :meth:`append_columns` takes a batch of one event kind as
    arrays (a million fills at once) without creating Python objects.
    """

    def __init__(self) -> None:
        self._rows: list[dict[str, Any]] = []
        # Arrow tables, column batches (dicts) and runs of single rows (lists of row dicts),
        # in journal order; batches and rows become Arrow only when the journal is read.
        self._segments: list[pa.Table | dict[str, Any] | list[dict[str, Any]]] = []
        self._count = 0
        self._last_ts = 0

    def __len__(self) -> int:
        return self._count

    @property
    def next_seq(self) -> int:
        """Sequence number the next event gets."""
        return self._count

    @property
    def last_ts_ns(self) -> int:
        """Timestamp of the newest event (0 for an empty journal)."""
        return self._last_ts

    def append(self, event: Event) -> Event:
        """Append one event, stamping its sequence number; return the stamped event."""
        stamped = dataclasses.replace(event, seq=self._count)
        self.append_unstamped(event)
        return stamped

    def append_mark(self, ts_ns: int, market: int, price: float) -> None:
        """:meth:`append_unstamped` of ``MarkPrice(ts_ns=ts_ns, market=market, price=price)``
        without building the event: the same row (the class's template, then its fields),
        :meth:`Exchange.set_mark`'s hot path (tests/unit/engine/test_mark_row_twin.py)."""
        template = _ROW_TEMPLATES.get(MarkPrice)
        row = (template if template is not None else _row_template(MarkPrice)).copy()
        row["seq"] = self._count
        row["ts_ns"] = ts_ns
        row["market"] = market
        row["price"] = price
        self._rows.append(row)
        self._count += 1
        if ts_ns > self._last_ts:
            self._last_ts = ts_ns

    def append_unstamped(self, event: Event) -> None:
        """Append one event (its row gets the next sequence number); the engine's hot path."""
        row = event.to_row()
        row["seq"] = self._count
        self._rows.append(row)
        self._count += 1
        if event.ts_ns > self._last_ts:
            self._last_ts = event.ts_ns

    def append_columns(
        self,
        kind: EventKind | npt.NDArray[np.int16],
        ts_ns: int | npt.NDArray[np.int64],
        **columns: npt.ArrayLike | Callable[[], Any],
    ) -> None:
        """Append a batch of events given as equal-length columns.

        The columns are kept as given (copied) and become an Arrow table only when the journal
        is read, so the hot path pays for a copy, not a conversion. A column may be a callable
        returning the values (texts formatted only if read). ``ts_ns``: one time for the batch
        or one per row (non-decreasing: a stretch of marks). ``kind``: one kind for the batch
        or one per row (a stretch's marks and calls; each row's other columns its own or the
        defaults)."""
        if type(ts_ns) is int and isinstance(kind, int):  # one kind and time (EventKind: int)
            self._append_batch(kind, ts_ns, columns)
            return
        last_ts = self._last_ts
        if not isinstance(kind, int) and np.ndim(kind) > 0:
            columns = {**columns, "__kind_rows": np.array(kind, dtype=np.int16)}
            kind = EventKind(int(np.asarray(kind)[0])) if np.size(kind) else EventKind.MARK_PRICE
        if isinstance(ts_ns, int | np.integer) or np.ndim(ts_ns) == 0:
            last_ts = int(ts_ns)
        else:
            stamps = np.array(ts_ns, dtype=np.int64)
            columns = {**columns, "__ts_rows": stamps}
            last_ts = int(stamps[-1]) if len(stamps) else last_ts
        self._append_batch(cast(EventKind, kind), last_ts, columns)

    def _append_batch(
        self, kind: EventKind, ts_ns: int, columns: dict[str, npt.ArrayLike | Callable[[], Any]]
    ) -> None:
        """:meth:`append_columns`' batch of one kind (the first row's) and time (the last
        row's): array columns copied (not the per-row stamps and kinds it made), a 0-d column
        as its NumPy scalar, callables kept."""
        batch: dict[str, Any] = {"__n": 0, "__seq0": self._count, "__ts": ts_ns, "__kind": kind}
        n = -1
        for name, value in columns.items():
            if type(value) is np.ndarray and value.ndim:
                batch[name] = value if name in _OWN_ROWS else value.copy()
                size = value.size
            elif callable(value):  # a column computed only if the journal is read (texts)
                batch[name] = value
                continue
            else:
                arr = np.asarray(value)
                if not arr.ndim:
                    batch[name] = arr[()]
                    continue
                batch[name] = arr.copy()
                size = arr.size
            if n != size and n >= 0:
                raise ValueError(f"columns must share one length, got lengths {n}, {size}")
            n = size
        if n < 0:
            raise ValueError("columns must share one length, got no array column")
        if not _BATCH_NAMES.issuperset(columns):
            raise ValueError(f"unknown journal columns {sorted(columns.keys() - _BATCH_NAMES)}")
        batch["__n"] = n
        if self._rows:
            self._flush_rows()
        self._segments.append(batch)
        self._count += n
        if ts_ns > self._last_ts:
            self._last_ts = ts_ns

    def append_owned_columns(
        self, kinds: npt.NDArray[np.int16], ts_ns: int, **columns: npt.NDArray[Any]
    ) -> None:
        """:meth:`append_columns` of a batch with one kind per row (``kinds``, int16), one time
        and array columns of its length, that the caller hands over: kept as they are, not
        copied (the caller never writes to them again). The batch path's round
        (:mod:`deleverage.engine.risk.batch_settle`): its columns come fresh from a kernel."""
        n = len(kinds)
        for name, arr in columns.items():
            if arr.shape != (n,) or name not in _BATCH_NAMES:
                raise ValueError(f"column {name!r} must be a known column of {n} rows")
        kind = EventKind(int(kinds[0])) if n else EventKind.MARK_PRICE
        batch: dict[str, Any] = {"__n": n, "__seq0": self._count, "__ts": ts_ns, "__kind": kind}
        batch.update(columns)
        batch["__kind_rows"] = kinds
        self._flush_rows()
        self._segments.append(batch)
        self._count += n
        self._last_ts = max(self._last_ts, ts_ns)

    def append_round(
        self, kinds: npt.NDArray[np.int16], ts_ns: int, ints: npt.NDArray[np.int64],
        floats: npt.NDArray[np.float64],
    ) -> None:  # fmt: skip
        """:meth:`append_owned_columns` of a batch round's rows as its kernel returns them
        (:mod:`deleverage.engine.risk.round_kernel`): ``ints``' rows are the account,
        counterparty, market and code columns, ``floats``' the size, price, amount, fee and
        counterparty fee; kept as they are (row views, not copied), the first row's kind the
        batch's."""
        n = len(kinds)
        if ints.shape != (4, n) or floats.shape != (5, n) or n == 0:
            raise ValueError(f"a round's columns must be 4 and 5 rows of {n} > 0 entries")
        if self._rows:
            self._flush_rows()
        self._segments.append(
            {  # the rows by index (half the cost of unpacking a 2-D array into its rows)
                "__n": n, "__seq0": self._count, "__ts": ts_ns, "__kind": _KINDS[int(kinds[0])],
                "account": ints[0], "counterparty": ints[1], "market": ints[2],
                "size": floats[0], "price": floats[1], "amount": floats[2], "fee": floats[3],
                "counterparty_fee": floats[4], "code": ints[3], "__kind_rows": kinds,
            }
        )  # fmt: skip
        self._count += n
        if ts_ns > self._last_ts:
            self._last_ts = ts_ns

    @staticmethod
    def _batch_table(batch: dict[str, Any], names: tuple[str, ...] = _COLUMNS) -> pa.Table:
        n = batch["__n"]
        data: dict[str, Any] = {}
        for name in names:
            if name == "seq":
                data[name] = np.arange(batch["__seq0"], batch["__seq0"] + n, dtype=np.int64)
            elif name == "ts_ns":
                rows = batch.get("__ts_rows")
                data[name] = rows if rows is not None else np.full(n, batch["__ts"], np.int64)
            elif name == "kind":
                rows = batch.get("__kind_rows")
                data[name] = (
                    rows if rows is not None else np.full(n, int(batch["__kind"]), np.int16)
                )
            elif name in batch:
                raw = batch[name]
                value = np.asarray(
                    raw() if callable(raw) else raw, dtype=object if callable(raw) else None
                )
                if name == "text":
                    data[name] = np.broadcast_to(value, (n,)).astype(str)
                else:
                    data[name] = np.broadcast_to(value, (n,)).astype(_NUMPY_DTYPES[name])
            elif name == "text":
                data[name] = np.full(n, "", dtype=object)
            else:
                data[name] = np.full(n, _DEFAULTS[name], dtype=_NUMPY_DTYPES[name])
        if names is _COLUMNS:
            return pa.table(data, schema=JOURNAL_SCHEMA)
        return pa.table(data, schema=pa.schema([JOURNAL_SCHEMA.field(c) for c in names]))

    def _readable(self, i: int) -> pa.Table | dict[str, Any]:
        """Segment ``i``, a run of single rows converted to Arrow (once, kept)."""
        segment = self._segments[i]
        if isinstance(segment, list):
            segment = self._segments[i] = pa.Table.from_pylist(segment, schema=JOURNAL_SCHEMA)
        return segment

    def _flush_rows(self) -> None:
        """Close the run of single rows before a batch (kept as it is: converted on read)."""
        if self._rows:
            self._segments.append(self._rows)
            self._rows = []

    def since(self, seq: int, columns: tuple[str, ...] | None = None) -> pa.Table:
        """The events numbered ``seq`` and later as one Arrow table (equal to
        ``to_arrow().slice(seq)``, or its ``columns`` only), reading only the newest segments:
        a cheap way to look at what one step appended to a long journal (batches build only
        the columns asked for, so texts are not formatted unless asked)."""
        self._flush_rows()
        names = _COLUMNS if columns is None else tuple(columns)
        unknown = [c for c in names if c not in _COLUMNS]
        if unknown:
            raise ValueError(f"unknown journal columns {unknown}")
        parts: list[pa.Table] = []
        for i in range(len(self._segments) - 1, -1, -1):
            segment = self._readable(i)
            if isinstance(segment, pa.Table):
                if segment.num_rows == 0:
                    continue
                first = int(segment.column("seq")[0].as_py())
                table = segment if columns is None else segment.select(list(names))
            else:
                first = int(segment["__seq0"])
                table = self._batch_table(segment, names)
            end = first + table.num_rows
            if end <= seq:
                break
            parts.append(table.slice(max(seq - first, 0)) if first < seq else table)
            if first <= seq:
                break
        if not parts:
            empty = JOURNAL_SCHEMA.empty_table()
            return empty if columns is None else empty.select(list(names))
        return pa.concat_tables(parts[::-1])

    def arrays_since(
        self, seq: int, columns: tuple[str, ...], kinds: tuple[int, ...] | None = None
    ) -> dict[str, npt.NDArray[Any]]:
        """The ``columns`` of the events numbered ``seq`` and later (of ``kinds`` only, when
        given) as NumPy arrays (the values of :meth:`since`), built straight from the newest
        segments without Arrow tables (:func:`deleverage.engine.journal_read.arrays_since`: a
        step's reader on the hot path). Text columns cannot be asked for."""
        if "text" in columns:
            raise ValueError("arrays_since does not build texts; use since()")
        self._flush_rows()
        segments = self._segments
        return journal_read.arrays_since(segments, seq, columns, _NUMPY_DTYPES, _DEFAULTS, kinds)

    def to_arrow(self) -> pa.Table:
        """All events as one Arrow table with :data:`JOURNAL_SCHEMA`."""
        self._flush_rows()
        if not self._segments:
            return JOURNAL_SCHEMA.empty_table()
        # Every run of single rows converted in one call, then sliced back into place.
        runs = [seg for seg in self._segments if isinstance(seg, list)]
        rows = pa.Table.from_pylist([r for run in runs for r in run], schema=JOURNAL_SCHEMA)
        tables, start = [], 0
        for seg in self._segments:
            if isinstance(seg, list):
                tables.append(rows.slice(start, len(seg)))
                start += len(seg)
            else:
                tables.append(seg if isinstance(seg, pa.Table) else self._batch_table(seg))
        table = pa.concat_tables(tables).combine_chunks()
        self._segments = [table]
        return table

    def to_frame(self) -> Any:
        """All events as a pandas DataFrame, with the kind's name in ``kind_name``."""
        frame = self.to_arrow().to_pandas()
        frame["kind_name"] = [EventKind(k).name for k in frame["kind"]]
        return frame

    def __iter__(self) -> Iterator[Event]:
        for row in self.to_arrow().to_pylist():
            yield event_from_row(row)

    def events(self, kind: type[Event] | None = None) -> list[Event]:
        """The typed events, optionally only those of one class."""
        table = self.to_arrow()
        if kind is not None:
            mask = np.asarray(table["kind"]) == int(kind.kind)
            table = table.filter(pa.array(mask))
        return [event_from_row(row) for row in table.to_pylist()]

    def write_parquet(self, path: str | Path) -> Path:
        """Write the journal to a Parquet file and return its path."""
        out = Path(path)
        pq.write_table(self.to_arrow(), out)
        return out

    @classmethod
    def read_parquet(cls, path: str | Path) -> Journal:
        """Read a journal written by :meth:`write_parquet`, checking its schema and order."""
        p = Path(path)
        if not p.is_file():
            what = "a folder" if p.is_dir() else "missing" if not p.exists() else "a special file"
            raise DataError("path", str(p), f"must name an existing Parquet journal (is {what})")
        try:
            table = pq.read_table(p)
        except (pa.ArrowInvalid, OSError) as exc:
            raise DataError("path", str(p), f"must be a readable Parquet file ({exc})") from None
        return cls.from_arrow(table, source=str(p))

    @classmethod
    def from_arrow(cls, table: pa.Table, *, source: str = "table") -> Journal:
        """Build a journal from an Arrow table, checking schema, sequence and time order."""
        table = checked_table(table, source)
        ts = np.asarray(table["ts_ns"])
        journal = cls()
        journal._segments = [table]
        journal._count = table.num_rows
        journal._last_ts = int(ts[-1]) if len(ts) else 0
        return journal


def event_from_row(row: dict[str, Any]) -> Event:
    """The typed event for one journal row."""
    kind = EventKind(row["kind"])
    cls = EVENT_TYPES.get(kind)
    if cls is None:
        raise DataError("kind", int(kind), "has no event type in this version")
    return cls.from_row(row)


def rows_of_kind(table: pa.Table, kinds: Sequence[EventKind]) -> pa.Table:
    """The rows of ``table`` whose kind is one of ``kinds``."""
    mask = np.isin(np.asarray(table["kind"]), [int(k) for k in kinds])
    return table.filter(pa.array(mask))
