"""Replay: rebuild an engine from its journal, bit for bit.

Events are facts: replay applies their effects (fills, transfers, deposits, margin moves,
marks, settings, risk parameters) to a fresh engine without re-deciding anything, and skips
notices. Runs of consecutive rows of one kind are applied with the same compiled kernels that
applied them live, in the same order, so the rebuilt arrays are identical
(:meth:`deleverage.engine.exchange.Exchange.state_hash`). The risk engine's own bookkeeping
(cooldowns, circuit-breaker windows, bad debt already declared) is not part of the ledger and
starts empty. An event the engine cannot hold (a corrupt journal) raises
:class:`~deleverage.errors.DataError` naming its rows.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

from deleverage.engine.events import NOTICE_KINDS, EventKind, Journal, event_from_row
from deleverage.engine.state import AccountKind
from deleverage.errors import DataError, DeleverageError, InvariantError

if TYPE_CHECKING:
    from deleverage.engine.exchange import Exchange


def replay(cls: type[Exchange], journal: Journal, *, check_invariants: bool = False) -> Exchange:
    """Rebuild an engine by applying every event of a journal to a fresh state.

    Runs of fills in one market are applied by the same compiled kernel that applied them
    live, in the same order, so the rebuilt arrays are bit-identical.
    """
    ex = cls.__new__(cls)
    ex._init_state(check_invariants=False)
    table = journal.to_arrow()
    kinds = np.asarray(table["kind"])
    markets = np.asarray(table["market"])
    n = len(kinds)
    # Runs of consecutive rows of one batchable kind (fills: in one market) apply at once.
    batchable = np.isin(
        kinds,
        [
            int(EventKind.FILL),
            int(EventKind.ACCOUNT_OPENED),
            int(EventKind.MARGIN_MOVED),
            int(EventKind.DEPOSIT),
            int(EventKind.TRANSFER),
            int(EventKind.POSITION_SETTINGS),
            int(EventKind.FUNDING),
        ],
    )
    boundary = np.ones(n, dtype=bool)
    if n > 1:
        boundary[1:] = ~(
            batchable[1:] & (kinds[1:] == kinds[:-1]) & (markets[1:] == markets[:-1])
            | (kinds[1:] == kinds[:-1]) & (kinds[1:] == int(EventKind.ACCOUNT_OPENED))
        )
    starts = np.flatnonzero(boundary)
    ends = np.append(starts[1:], n) if n else starts
    notices = np.isin(kinds, [int(k) for k in NOTICE_KINDS])
    for lo, hi in zip(starts.tolist(), ends.tolist(), strict=True):
        try:
            _apply_run(
                ex,
                table,
                lo,
                hi,
                batch=bool(hi - lo > 1 and batchable[lo]),
                notice=bool(notices[lo:hi].all()),
            )
        except DeleverageError as exc:
            if not isinstance(exc, InvariantError):
                raise
            raise DataError(
                f"journal[{lo}:{hi}]", str(exc), "must hold events the engine can apply"
            ) from None
        except (ValueError, OverflowError, IndexError, KeyError, TypeError) as exc:
            # A journal is a data file: an event the engine cannot hold is bad data.
            raise DataError(
                f"journal[{lo}:{hi}]",
                f"{type(exc).__name__}: {exc}",
                "must hold events the engine can apply",
            ) from None
    ex.journal = Journal.from_arrow(table)
    ex.check_invariants = check_invariants
    if check_invariants:
        ex.assert_conserved()
    return ex


def _apply_run(
    ex: Exchange, table: pa.Table, lo: int, hi: int, *, batch: bool, notice: bool
) -> None:
    if batch:
        apply_batch(ex, table.slice(lo, hi - lo))
    elif notice:
        ex.clock_ns = max(ex.clock_ns, int(np.asarray(table["ts_ns"][hi - 1].as_py())))
    else:
        for row in table.slice(lo, hi - lo).to_pylist():
            ex._apply(event_from_row(row))


def apply_batch(ex: Exchange, part: pa.Table) -> None:
    """Apply a run of same-kind rows with array operations (replay's fast path)."""
    ex._version += 1
    ex.layout_version += 1
    kind = EventKind(int(part["kind"][0].as_py()))
    account = np.asarray(part["account"], dtype=np.int64)
    ex.clock_ns = max(ex.clock_ns, int(np.asarray(part["ts_ns"]).max()))
    if kind is EventKind.FILL:
        ex._apply_fill_columns(
            int(part["market"][0].as_py()),
            account,
            np.asarray(part["counterparty"], dtype=np.int64),
            np.asarray(part["size"], dtype=np.float64),
            np.asarray(part["price"], dtype=np.float64),
            np.asarray(part["fee"], dtype=np.float64),
            np.asarray(part["counterparty_fee"], dtype=np.float64),
        )
    elif kind is EventKind.DEPOSIT:
        ex._apply_deposits(account, np.asarray(part["amount"], dtype=np.float64))
    elif kind is EventKind.TRANSFER:
        ex._apply_transfer_columns(
            int(part["market"][0].as_py()),
            account,
            np.asarray(part["counterparty"], dtype=np.int64),
            np.asarray(part["amount"], dtype=np.float64),
            np.asarray(part["code"], dtype=np.int64),
            np.asarray(part["ts_ns"], dtype=np.int64),
        )
    elif kind is EventKind.FUNDING:
        ex._apply_funding(
            int(part["market"][0].as_py()), account, np.asarray(part["amount"], dtype=np.float64)
        )
    elif kind is EventKind.POSITION_SETTINGS:
        cols = ex._positions[int(part["market"][0].as_py())]
        cols.mode[account] = np.asarray(part["code"], dtype=np.int8)
        cols.leverage[account] = np.asarray(part["price"], dtype=np.float64)
        ex._touch(int(part["market"][0].as_py()), account)
    elif kind is EventKind.MARGIN_MOVED:
        amount = np.asarray(part["amount"], dtype=np.float64)
        cols = ex._positions[int(part["market"][0].as_py())]
        np.subtract.at(ex._cash, account, amount)
        np.add.at(cols.isolated_margin, account, amount)
        ex._touch(int(part["market"][0].as_py()), account)
    else:
        first, count = int(account[0]), len(account)
        if not np.array_equal(account, np.arange(first, first + count)) or first != ex._n:
            raise InvariantError(f"account ids must be opened in order from {ex._n}")
        capacity = ex._capacity
        while capacity < first + count:
            capacity *= 2
        if capacity != ex._capacity:
            ex._grow(capacity)
        modes = np.asarray(part["market"], dtype=np.int8)
        ex._kind[first : first + count] = np.asarray(part["code"], dtype=np.int8)
        ex._default_mode[first : first + count] = modes
        for cols in ex._positions:
            cols.mode[first : first + count] = modes
        labels = part["text"].to_pylist()
        for k, label in enumerate(labels):
            if label:
                ex._labels[first + k] = label
        ex._n += count
        kinds = np.asarray(part["code"], dtype=np.int8)
        for k in np.flatnonzero(kinds == int(AccountKind.INSURANCE)).tolist():
            ex._register_fund(first + k, labels[k] or "")
