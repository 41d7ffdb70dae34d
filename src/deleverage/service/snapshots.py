"""Engine snapshots: start-up and rollback without replaying all history.

A snapshot is the engine pickled with its journal left out, taken after ``journal_length``
rows, with its :meth:`~.Exchange.state_hash`. :func:`restore` unpickles the
newest snapshot, checks its hash, and applies only the journal rows after it, the way
:func:`deleverage.engine.replay.replay` applies them (runs of one kind in one batch, notices only
moving the clock), so the result is bit for bit the engine a full replay rebuilds (a property
test checks it). Snapshots are written by the service itself into its own database; a
database an attacker can write to is lost anyway, so unpickling it adds no exposure.
"""

from __future__ import annotations

import pickle

import numpy as np
import pyarrow as pa

from deleverage import Exchange, Journal
from deleverage.engine.events import NOTICE_KINDS, EventKind, event_from_row
from deleverage.engine.replay import apply_batch
from deleverage.service.storage import Snapshot

__all__ = ["SnapshotError", "advance", "restore", "take"]

_BATCHABLE = [
    int(EventKind.FILL),
    int(EventKind.ACCOUNT_OPENED),
    int(EventKind.MARGIN_MOVED),
    int(EventKind.DEPOSIT),
    int(EventKind.TRANSFER),
    int(EventKind.POSITION_SETTINGS),
    int(EventKind.FUNDING),
]


class SnapshotError(Exception):
    """A snapshot that does not restore to the state it recorded."""


def take(ex: Exchange) -> Snapshot:
    """Pickle the engine without its journal (the database holds the journal)."""
    journal = ex.journal
    ex.journal = Journal()
    try:
        data = pickle.dumps(ex, protocol=pickle.HIGHEST_PROTOCOL)
    finally:
        ex.journal = journal
    return Snapshot(len(journal), ex.state_hash(), data)


def advance(ex: Exchange, rows: pa.Table) -> None:
    """Apply journal rows (the ones after the engine's state) as replay does."""
    n = rows.num_rows
    if n == 0:
        return
    kinds = np.asarray(rows["kind"])
    markets = np.asarray(rows["market"])
    batchable = np.isin(kinds, _BATCHABLE)
    boundary = np.ones(n, dtype=bool)
    if n > 1:
        same = kinds[1:] == kinds[:-1]
        boundary[1:] = ~(
            batchable[1:] & same & (markets[1:] == markets[:-1])
            | same & (kinds[1:] == int(EventKind.ACCOUNT_OPENED))
        )
    starts = np.flatnonzero(boundary)
    ends = np.append(starts[1:], n)
    notices = np.isin(kinds, [int(k) for k in NOTICE_KINDS])
    for lo, hi in zip(starts.tolist(), ends.tolist(), strict=True):
        if hi - lo > 1 and batchable[lo]:
            apply_batch(ex, rows.slice(lo, hi - lo))
        elif notices[lo:hi].all():
            ex.clock_ns = max(ex.clock_ns, int(rows["ts_ns"][hi - 1].as_py()))
        else:
            for row in rows.slice(lo, hi - lo).to_pylist():
                ex._apply(event_from_row(row))


def restore(snapshot: Snapshot, journal: Journal) -> Exchange:
    """The engine after the whole ``journal``: the snapshot, then the rows after it."""
    ex = pickle.loads(snapshot.data)
    if not isinstance(ex, Exchange):
        raise SnapshotError(f"snapshot holds a {type(ex).__name__}, not an Exchange")
    if ex.state_hash() != snapshot.state_hash:
        raise SnapshotError(
            f"snapshot at journal row {snapshot.journal_length} restores to state "
            f"{ex.state_hash()[:16]}, recorded {snapshot.state_hash[:16]}"
        )
    table = journal.to_arrow()
    if snapshot.journal_length > table.num_rows:
        raise SnapshotError(
            f"snapshot is after journal row {snapshot.journal_length}, the journal has "
            f"{table.num_rows} rows"
        )
    advance(ex, table.slice(snapshot.journal_length))
    ex._version += 1  # invalidate cached valuations
    ex.journal = journal
    return ex
