"""The risk service's runtime: one engine, one lock, the database, the keys and the hub.

Every request that touches the engine runs through :meth:`RiskService.write` or
:meth:`RiskService.read`, which hold one :class:`asyncio.Lock`: the engine is single-threaded
and is only ever used by one coroutine at a time. A write runs the engine operation, derives
the notifications (:class:`~deleverage.service.alerts.Alerts`), commits the new journal rows
and the notifications in one database transaction (in a worker thread, the lock still held),
publishes the notifications, and only then answers. If the operation fails after emitting
events, or the commit fails, the engine is rebuilt from the journal as it was before the
request (:meth:`deleverage.engine.exchange.Exchange.replay`): nothing is half-applied.

At start-up the engine is rebuilt from the stored journal, so a restart (or ``kill -9``)
loses nothing that was acknowledged.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import numpy as np
import pyarrow as pa

from deleverage.engine.events import EventKind, Journal
from deleverage.engine.exchange import Exchange
from deleverage.engine.insurance_fund import FlowKind, InsuranceFund
from deleverage.engine.state import AccountKind
from deleverage.service.alerts import Alerts
from deleverage.service.auth import KeyRing, RateLimiter, Role, hash_key, new_key
from deleverage.service.notifications import Hub
from deleverage.service.settings import ServiceSettings
from deleverage.service.storage import Storage

__all__ = ["RiskService", "replay"]

T = TypeVar("T")
NewKeys = list[tuple[str, str, int | None]]


class RiskService:
    """Engine, storage, keys, alerts and subscribers of one running service.

    Parameters
    ----------
    settings
        The service's settings (database URL, bootstrap admin key, limits, levels).
    """

    def __init__(self, settings: ServiceSettings) -> None:
        self.settings = settings
        self.storage = Storage(settings.db_url)
        journal = self.storage.load_journal()
        if len(journal):
            self.ex = replay(journal)
        else:
            self.ex = Exchange()
            self.storage.commit(self.ex.journal.to_arrow(), [])
        self.keys = KeyRing(self.storage.load_keys())
        self._bootstrap_admin(settings.admin_key)
        self.alerts = Alerts(self.ex, settings.margin_levels)
        self.alerts.prime()
        self.next_seq = self.storage.last_notification_seq() + 1
        self.hub = Hub()
        self.limiter = RateLimiter(rate=settings.rate_limit_per_s, burst=settings.rate_burst)
        self.lock = asyncio.Lock()

    def _bootstrap_admin(self, key: str | None) -> None:
        if key is not None:
            digest = hash_key(key)
            if digest not in self.keys:
                self.storage.commit(pa.table({}), [], keys=[(digest, "admin", None)])
                self.keys.add(digest, Role.ADMIN, None)
        elif not self.keys.has_role(Role.ADMIN):
            key = new_key()
            self.storage.commit(pa.table({}), [], keys=[(hash_key(key), "admin", None)])
            self.keys.add(hash_key(key), Role.ADMIN, None)
            print(f"deleverage serve: generated admin key {key} (shown once)", file=sys.stderr)

    def close(self) -> None:
        """Release the database connections."""
        self.storage.close()

    def now_ns(self) -> int:
        """Wall-clock time in ns, never before the engine's clock."""
        return max(time.time_ns(), self.ex.clock_ns)

    async def read(self, fn: Callable[[Exchange], T]) -> T:
        """Run a read of the engine under the lock."""
        async with self.lock:
            return fn(self.ex)

    async def write(
        self,
        op: Callable[[Exchange, int], T],
        *,
        keys: Callable[[T], NewKeys] | None = None,
    ) -> tuple[T, list[dict[str, Any]]]:
        """Apply ``op(exchange, ts_ns)``, commit its events and notifications, publish them.

        ``keys`` maps the result to API keys to store in the same transaction (digest, role,
        account). Returns the operation's result and the notifications sent.
        """
        async with self.lock:
            ex = self.ex
            start = len(ex.journal)
            ts = self.now_ns()
            try:
                result = op(ex, ts)
                new_keys = keys(result) if keys is not None else []
            except BaseException:
                if len(ex.journal) != start:
                    self._rollback(start)
                raise
            rows = ex.journal.to_arrow().slice(start) if len(ex.journal) > start else None
            try:
                notes = self.alerts.derive(rows, ts) if rows is not None else []
                for note in notes:
                    note["seq"] = self.next_seq
                    self.next_seq += 1
                await asyncio.to_thread(
                    self.storage.commit,
                    rows if rows is not None else pa.table({}),
                    notes,
                    keys=new_keys,
                    created_ns=ts,
                )
            except BaseException:
                self.next_seq = self.storage.last_notification_seq() + 1
                self._rollback(start)
                raise
            for digest, role, account in new_keys:
                self.keys.add(digest, Role(role), account)
            self.hub.publish(notes)
            return result, notes

    def _rollback(self, length: int) -> None:
        table = self.ex.journal.to_arrow().slice(0, length)
        self.ex = replay(Journal.from_arrow(table))
        self.alerts = Alerts(self.ex, self.settings.margin_levels)
        self.alerts.prime()

    def backlog(
        self, since: int, *, account: int | None, everything: bool
    ) -> Sequence[dict[str, Any]]:
        """Stored notifications after ``since`` for a stream (see :class:`Storage`)."""
        return self.storage.notifications_after(since, account=account, everything=everything)


def replay(journal: Journal) -> Exchange:
    """Rebuild the engine from a journal, insurance-fund ledgers included.

    :meth:`Exchange.replay` applies a run of account openings as one batch, which (in this
    version) opens insurance accounts without their :class:`InsuranceFund` ledger (the
    constructor's system accounts are such a run). The missing ledgers are rebuilt here from
    the journal's deposits and transfers into and out of those accounts, in order, the way the
    live engine mirrors them (``Exchange._fund_ledger``).
    """
    ex = Exchange.replay(journal)
    kinds = ex.state_arrays()["kind"]
    missing = [
        int(a) for a in np.flatnonzero(kinds == AccountKind.INSURANCE) if int(a) not in ex.funds
    ]
    if not missing:
        return ex
    table = journal.to_arrow()
    labels = table.filter(
        pa.array(np.asarray(table["kind"]) == int(EventKind.ACCOUNT_OPENED))
    ).to_pylist()
    share, cooldown = ex._fund_settings
    for a in missing:
        label = labels[a]["text"] if a < len(labels) else ""
        ex.funds[a] = InsuranceFund(
            label or f"insurance-{a}", protocol_share=share, unstake_cooldown_s=cooldown
        )
    wanted = np.asarray(missing, dtype=np.int64)
    kind = np.asarray(table["kind"])
    account = np.asarray(table["account"])
    counterparty = np.asarray(table["counterparty"])
    rows = (kind == int(EventKind.TRANSFER)) & (
        np.isin(account, wanted) | np.isin(counterparty, wanted)
    ) | (kind == int(EventKind.DEPOSIT)) & np.isin(account, wanted)
    for row in table.filter(pa.array(rows)).to_pylist():
        if row["kind"] == int(EventKind.DEPOSIT):
            fund = ex.funds[row["account"]]
            fund.receive(
                row["amount"], row["ts_ns"], kind=FlowKind.PROTOCOL_REVENUE, ref=row["account"]
            )
        else:
            ex._fund_ledger(
                row["account"], row["counterparty"], row["amount"], row["code"], row["ts_ns"]
            )
    return ex
