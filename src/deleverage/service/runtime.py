"""The risk service's runtime: one engine, one lock, the database, the keys and the hub.

Every request that touches the engine runs through :meth:`RiskService.write` or
:meth:`RiskService.read`, which hold one :class:`asyncio.Lock`: the engine is single-threaded
and is only ever used by one coroutine at a time. A write runs the engine operation, derives
the notifications (:class:`~deleverage.service.alerts.Alerts`), commits the new journal rows
and the notifications in one database transaction (in a worker thread, the lock still held),
publishes the notifications, and only then answers. If the operation fails after emitting
events, or the commit fails, the engine is rebuilt from the journal as it was before the
request (:meth:`deleverage.engine.exchange.Exchange.replay`): nothing is half-applied.

At start-up the database is checked (:meth:`Storage.integrity_problems`), the engine is
restored from the newest snapshot plus the journal rows after it (or replayed whole), and its
money must add up (:meth:`~deleverage.engine.exchange.Exchange.conservation`); a failed check stops
the start with the reason. A restart (or ``kill -9``) loses nothing that was acknowledged.

A write sent with an ``Idempotency-Key`` stores its answer in the same transaction; the same
key (and the same request) later gets that answer again without being applied twice.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import pyarrow as pa

from deleverage import Exchange, Journal
from deleverage.engine.events import EventKind
from deleverage.engine.insurance_fund import FlowKind, InsuranceFund
from deleverage.engine.state import AccountKind
from deleverage.service import snapshots
from deleverage.service.alerts import Alerts
from deleverage.service.auth import KeyRecord, KeyRing, RateLimiter, Role, hash_key, new_key
from deleverage.service.logs import logger
from deleverage.service.metrics import Metrics
from deleverage.service.notifications import Hub, Subscriber
from deleverage.service.settings import ServiceSettings
from deleverage.service.storage import (
    IdempotencyRecord,
    NewKey,
    PredictionAlert,
    Snapshot,
    Storage,
)
from deleverage.service.webhooks import WebhookSender
from deleverage.service.world_view import WorldView

__all__ = ["IdempotencyConflictError", "RiskService", "StartupError", "WriteOutcome", "replay"]

T = TypeVar("T")
#: (role, account, expires_ns) of each key a write creates.
KeySpec = list[tuple[Role, int | None, int | None]]
Render = Callable[[Any, list[dict[str, Any]], list[tuple[int, str]]], dict[str, Any]]


class StartupError(Exception):
    """The database or the state rebuilt from it failed a start-up check."""


class IdempotencyConflictError(Exception):
    """An ``Idempotency-Key`` reused for a different request."""


@dataclass(frozen=True, slots=True)
class Idempotency:
    """An idempotent write: the key's digest (scope), the client's key, the request digest."""

    scope: str
    key: str
    fingerprint: str


@dataclass(frozen=True, slots=True)
class WriteOutcome:
    """The answer of a write: status, JSON body, and whether it was a stored answer."""

    status: int
    body: dict[str, Any]
    replayed: bool = False


def _redacted(body: dict[str, Any]) -> dict[str, Any]:
    out = dict(body)
    if "api_key" in out:
        out["api_key"] = None
    if "api_keys" in out:
        out["api_keys"] = [None] * len(out["api_keys"])
    return out


class RiskService:
    """Engine, storage, keys, alerts, subscribers, metrics and webhooks of one service.

    Parameters
    ----------
    settings
        The service's settings (database URL, bootstrap admin key, limits, levels).
    """

    def __init__(self, settings: ServiceSettings) -> None:
        self.settings = settings
        self.metrics = Metrics()
        self.storage = Storage(settings.db_url)
        problems = self.storage.integrity_problems()
        if problems:
            raise StartupError("database integrity check failed: " + "; ".join(problems))
        journal = self.storage.load_journal()
        self._snapshot: Snapshot | None = None
        self.restored_from = 0
        if len(journal):
            self.ex = self._restore(journal)
        else:
            self.ex = Exchange()
            self.storage.commit(self.ex.journal.to_arrow(), [])
        balance = self.ex.conservation()
        if not balance.holds:
            raise StartupError(f"the rebuilt engine's money does not add up: {balance}")
        self.keys = KeyRing(self.storage.load_keys())
        self._next_key_id = max((r.key_id for r in self.keys.records()), default=0) + 1
        self._bootstrap_admin(settings.admin_key)
        self.alerts = Alerts(
            self.ex, settings.margin_levels, default_volatility=settings.default_volatility
        )
        symbols = {state.spec.symbol: m for m, state in enumerate(self.ex.markets)}
        for alert in self.storage.load_prediction_alerts():
            if alert.market in symbols and alert.account < self.ex.n_accounts:
                key = (symbols[alert.market], alert.account)
                self.alerts.predictions[key] = (alert.level, alert.horizon_s)
        self.alerts.prime()
        self.world = WorldView(
            levels_file=settings.world_levels, venue=settings.world_venue,
            depth_per_pct=dict(settings.world_depth_per_pct),
            alert_ratio=settings.world_alert_ratio, alert_shock=settings.world_alert_shock,
        )  # fmt: skip
        self.next_seq = self.storage.last_notification_seq() + 1
        self.hub = Hub()
        self.streams: dict[str, set[Subscriber]] = {}
        self.limiter = RateLimiter(rate=settings.rate_limit_per_s, burst=settings.rate_burst)
        self.anonymous_limiter = RateLimiter(
            rate=settings.anonymous_rate_limit_per_s, burst=settings.anonymous_rate_burst
        )
        self.webhooks = WebhookSender(settings, self.metrics)
        self.lock = asyncio.Lock()
        self.degraded: str | None = None
        self.metrics.journal_events.set(len(self.ex.journal))
        logger.info(
            "service started",
            extra={"journal_rows": len(self.ex.journal), "snapshot_rows": self.restored_from,
                   "replayed_rows": len(self.ex.journal) - self.restored_from,
                   "schema_revision": self.storage.revision(), "database": self.storage.dialect},
        )  # fmt: skip

    # ------------------------------------------------------------------ start-up
    def _restore(self, journal: Journal) -> Exchange:
        for snap in self.storage.snapshots():
            if snap.journal_length > len(journal):
                continue
            try:
                ex = snapshots.restore(snap, journal)
            except (snapshots.SnapshotError, Exception) as exc:
                logger.warning("snapshot not used", extra={"reason": str(exc)})
                continue
            rebuild_fund_ledgers(ex, journal)
            self._snapshot, self.restored_from = snap, snap.journal_length
            return ex
        return replay(journal)

    def _bootstrap_admin(self, key: str | None) -> None:
        now = self.now_ns()
        if key is not None:
            record = self.keys.by_hash(hash_key(key))
            if record is None:
                self._store_keys([(self._next_key_id, hash_key(key), "admin", None, None)], now)
            elif record.state(now) != "active":
                logger.warning(
                    "bootstrap admin key is %s: not re-enabled", record.state(now),
                    extra={"key_id": record.key_id},
                )  # fmt: skip
        elif not self.keys.has_active(Role.ADMIN, now):
            key = new_key()
            self._store_keys([(self._next_key_id, hash_key(key), "admin", None, None)], now)
            print(f"deleverage serve: generated admin key {key} (shown once)", flush=True)

    def _store_keys(self, keys: list[NewKey], now: int) -> None:
        self.storage.commit(pa.table({}), [], keys=keys, created_ns=now)
        self._remember_keys(keys, now)

    def _remember_keys(self, keys: Sequence[NewKey], now: int) -> None:
        for key_id, digest, role, account, expires in keys:
            self.keys.put(KeyRecord(key_id, digest, Role(role), account, now, expires, None))
            self._next_key_id = max(self._next_key_id, key_id + 1)

    def close(self) -> None:
        """Release the database connections."""
        self.storage.close()

    def now_ns(self) -> int:
        """Wall-clock time in ns, never before the engine's clock."""
        return max(time.time_ns(), self.ex.clock_ns)

    # ------------------------------------------------------------------ reads and writes
    async def read(self, fn: Callable[[Exchange], T]) -> T:
        """Run a read of the engine under the lock."""
        async with self.lock:
            return fn(self.ex)

    async def write(
        self,
        op: Callable[[Exchange, int], T],
        *,
        keys: Callable[[T], KeySpec] | None = None,
        revoke: Sequence[int] = (),
    ) -> tuple[T, list[dict[str, Any]]]:
        """Apply ``op(exchange, ts_ns)``, commit its events and notifications, publish them.

        ``keys`` maps the result to API keys to create in the same transaction (role, account,
        expiry); ``revoke`` lists key ids to revoke in it. Returns the operation's result and
        the notifications sent.
        """
        outcome: list[tuple[T, list[dict[str, Any]]]] = []

        def render(
            result: T, notes: list[dict[str, Any]], _: list[tuple[int, str]]
        ) -> dict[str, Any]:
            outcome.append((result, notes))
            return {}

        await self.respond(op, render, keys=keys, revoke=revoke)
        return outcome[0]

    async def respond(
        self,
        op: Callable[[Exchange, int], T],
        render: Render,
        *,
        keys: Callable[[T], KeySpec] | None = None,
        revoke: Sequence[int] = (),
        idempotency: Idempotency | None = None,
        status: int = 200,
    ) -> WriteOutcome:
        """A write answered with ``render(result, notes, new_keys)`` ((key id, key) pairs).

        With ``idempotency``, a stored answer to the same key is returned instead of applying
        the write again (:class:`IdempotencyConflictError` for another request under it), and
        the answer of a new write is stored in the write's transaction.
        """
        async with self.lock:
            if idempotency is not None:
                stored = await asyncio.to_thread(
                    self.storage.idempotent_answer, idempotency.scope, idempotency.key
                )
                if stored is not None:
                    if stored.fingerprint != idempotency.fingerprint:
                        raise IdempotencyConflictError(idempotency.key)
                    self.metrics.writes.labels("replayed").inc()
                    return WriteOutcome(stored.status, json.loads(stored.body), replayed=True)
            ex = self.ex
            start = len(ex.journal)
            ts = self.now_ns()
            try:
                result = op(ex, ts)
                specs = keys(result) if keys is not None else []
            except BaseException:
                if len(ex.journal) != start:
                    self._rollback(start)
                    self.metrics.writes.labels("rolled_back").inc()
                else:
                    self.metrics.writes.labels("refused").inc()
                raise
            rows = ex.journal.to_arrow().slice(start) if len(ex.journal) > start else None
            try:
                made = [new_key() for _ in specs]
                new_keys: list[NewKey] = [
                    (self._next_key_id + i, hash_key(k), role.value, account, expires)
                    for i, (k, (role, account, expires)) in enumerate(zip(made, specs, strict=True))
                ]
                notes = self.alerts.derive(rows, ts) if rows is not None else []
                if rows is not None and self.world.depth_per_pct:
                    notes += self.world.derive(ex, rows, ts)
                for note in notes:
                    note["seq"] = self.next_seq
                    self.next_seq += 1
                body = render(
                    result, notes, [(n[0], k) for n, k in zip(new_keys, made, strict=True)]
                )
                record = None
                if idempotency is not None:
                    text = json.dumps(_redacted(body), separators=(",", ":"), allow_nan=False)
                    record = IdempotencyRecord(
                        idempotency.scope, idempotency.key, idempotency.fingerprint, status, text
                    )
                await asyncio.to_thread(
                    self.storage.commit,
                    rows if rows is not None else pa.table({}),
                    notes,
                    keys=new_keys,
                    created_ns=ts,
                    revoke=revoke,
                    idempotency=record,
                )
            except BaseException as exc:
                self.next_seq = await asyncio.to_thread(self._last_seq_or_keep)
                if len(self.ex.journal) != start:
                    self._rollback(start)
                self.metrics.writes.labels("rolled_back").inc()
                self.degraded = f"last commit failed: {type(exc).__name__}: {exc}"[:500]
                raise
            self.degraded = None
            self._remember_keys(new_keys, ts)
            for key_id in revoke:
                self._revoked(key_id, ts)
            self.metrics.writes.labels("committed").inc()
            self.metrics.notifications.inc(len(notes))
            self.metrics.journal_events.set(len(self.ex.journal))
            self.hub.publish(notes)
            self.webhooks.submit(notes)
            await self._maybe_snapshot()
            return WriteOutcome(status, body)

    async def set_prediction_alert(self, alert: PredictionAlert) -> float:
        """Store an account's prediction alert and watch it; return the probability now.

        Raises
        ------
        UnknownEntityError
            If the market or the account does not exist (nothing is stored).
        """
        async with self.lock:
            m = self.ex.market_id(alert.market)
            self.ex.account_kind(alert.account)
            await asyncio.to_thread(self.storage.save_prediction_alert, alert, self.now_ns())
            return self.alerts.set_prediction_alert(
                m, alert.account, level=alert.level, horizon_s=alert.horizon_s
            )

    async def remove_prediction_alert(self, account: int, market: str) -> bool:
        """Forget an account's prediction alert in a market; whether there was one."""
        async with self.lock:
            m = self.ex.market_id(market)
            removed = await asyncio.to_thread(self.storage.delete_prediction_alert, account, market)
            self.alerts.remove_prediction_alert(m, account)
            return removed

    def _last_seq_or_keep(self) -> int:
        try:
            return self.storage.last_notification_seq() + 1
        except Exception:
            return self.next_seq

    def _revoked(self, key_id: int, ts: int) -> None:
        record = self.keys.get(key_id)
        if record is None or record.revoked_ns is not None:
            return
        self.keys.put(
            KeyRecord(record.key_id, record.key_hash, record.role, record.account,
                      record.created_ns, record.expires_ns, ts)
        )  # fmt: skip
        for sub in self.streams.get(record.key_hash, set()):
            sub.close("key revoked")

    async def _maybe_snapshot(self) -> None:
        done = self._snapshot.journal_length if self._snapshot is not None else 0
        if len(self.ex.journal) - done < self.settings.snapshot_every:
            return
        snap = snapshots.take(self.ex)
        try:
            await asyncio.to_thread(self.storage.save_snapshot, snap, self.now_ns())
        except Exception as exc:
            logger.warning("snapshot not stored", extra={"reason": str(exc)})
            return
        self._snapshot = snap
        logger.info("snapshot stored", extra={"journal_rows": snap.journal_length})

    def _rollback(self, length: int) -> None:
        journal = Journal.from_arrow(self.ex.journal.to_arrow().slice(0, length))
        snap = self._snapshot
        if snap is not None and snap.journal_length <= length:
            self.ex = snapshots.restore(snap, journal)
            rebuild_fund_ledgers(self.ex, journal)
        else:
            self.ex = replay(journal)
        self.alerts = Alerts(self.ex, self.settings.margin_levels)
        self.alerts.prime()

    # ------------------------------------------------------------------ streams and health
    def backlog(
        self, since: int, *, account: int | None, everything: bool
    ) -> Sequence[dict[str, Any]]:
        """Stored notifications after ``since`` for a stream (see :class:`Storage`)."""
        return self.storage.notifications_after(since, account=account, everything=everything)

    def readiness(self) -> list[str]:
        """Why the service is not ready (empty: ready): database reachable, writable, sound,
        and holding the journal the engine has."""
        problems: list[str] = []
        try:
            problems += self.storage.integrity_problems()
            self.storage.write_probe()
            stored = self.storage.journal_length()
            if stored != len(self.ex.journal):
                problems.append(
                    f"database holds {stored} journal rows, the engine {len(self.ex.journal)}"
                )
        except Exception as exc:
            problems.append(f"database: {type(exc).__name__}: {exc}"[:500])
        if not problems and self.degraded is not None:
            self.degraded = None  # the database works again
        self.metrics.ready.set(0 if problems else 1)
        return problems


def fingerprint(method: str, path: str, body: bytes) -> str:
    """SHA-256 of a request (method, path with query, body): what an idempotency key binds."""
    h = hashlib.sha256()
    for part in (method.encode(), path.encode(), body):
        h.update(len(part).to_bytes(8, "big"))
        h.update(part)
    return h.hexdigest()


def replay(journal: Journal) -> Exchange:
    """Rebuild the engine from a journal, insurance-fund ledgers included (see below)."""
    ex = Exchange.replay(journal)
    rebuild_fund_ledgers(ex, journal)
    return ex


def rebuild_fund_ledgers(ex: Exchange, journal: Journal) -> None:
    """Rebuild the insurance-fund ledgers a replay left out.

    :meth:`Exchange.replay` applies a run of account openings as one batch, which (in this
    version) opens insurance accounts without their :class:`InsuranceFund` ledger (the
    constructor's system accounts are such a run). The missing ledgers are rebuilt here from
    the journal's deposits and transfers into and out of those accounts, in order, the way the
    live engine mirrors them (``Exchange._fund_ledger``).
    """
    kinds = ex.state_arrays()["kind"]
    missing = [
        int(a) for a in np.flatnonzero(kinds == AccountKind.INSURANCE) if int(a) not in ex.funds
    ]
    if not missing:
        return
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
