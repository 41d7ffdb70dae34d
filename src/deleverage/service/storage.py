"""Storage of the risk service: journal, notifications, API keys, idempotency, snapshots.

The schema is managed by Alembic (``service/migrations``): :meth:`Storage.migrate` upgrades
the database to the newest revision at every start (a database made before migrations existed
is stamped with the first revision, then upgraded). Tables:

- ``journal``: the engine's events, one row per event, the columns of
  :data:`~.events.JOURNAL_SCHEMA` (floats stored as 8-byte doubles, so a replay of the
  stored journal rebuilds the engine bit for bit);
- ``notifications``: every notification sent, with its global sequence number (clients resume
  from it after a reconnect);
- ``api_keys``: SHA-256 digests of the keys, never the keys themselves, with role, account,
  expiry and revocation;
- ``idempotency``: the answer to each write sent with an ``Idempotency-Key`` header (API keys
  in it redacted), written in the write's own transaction, so a retry after a crash is answered
  from here instead of being applied twice;
- ``snapshots``: pickled engine states with their journal length and state hash, the newest
  two kept, so start-up replays only the journal rows after the newest;
- ``prediction_alerts``: per account and market, the probability level and horizon the
  account chose for its prediction alert (:class:`~deleverage.service.alerts.Alerts`).

A request's events and notifications are written in one transaction (:meth:`Storage.commit`)
before the request is answered, so what was acknowledged survives a crash. SQLite runs in WAL
mode with ``synchronous=NORMAL``: a committed transaction survives the process being killed
(``kill -9``); an operating-system crash may lose the last transactions (use ``FULL`` or
PostgreSQL where that matters).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
from sqlalchemy import (
    BigInteger,
    Column,
    Double,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    create_engine,
    delete,
    event,
    func,
    insert,
    inspect,
    select,
    text,
    update,
)
from sqlalchemy.engine import Engine

from deleverage.engine.events import JOURNAL_SCHEMA, EventKind, Journal
from deleverage.errors import DataError
from deleverage.service.auth import KeyRecord, Role

__all__ = ["IdempotencyRecord", "NewKey", "PredictionAlert", "Snapshot", "Storage", "metadata"]

MIGRATIONS = Path(__file__).with_name("migrations")
#: (key id, digest, role, account, expires_ns) of a key to store.
NewKey = tuple[int, str, str, int | None, int | None]

metadata = MetaData()

journal_table = Table(
    "journal",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("ts_ns", BigInteger, nullable=False),
    Column("kind", SmallInteger, nullable=False),
    Column("account", BigInteger, nullable=False),
    Column("counterparty", BigInteger, nullable=False),
    Column("market", Integer, nullable=False),
    Column("size", Double, nullable=False),
    Column("price", Double, nullable=False),
    Column("amount", Double, nullable=False),
    Column("fee", Double, nullable=False),
    Column("counterparty_fee", Double, nullable=False),
    Column("code", Integer, nullable=False),
    Column("text", Text, nullable=False),
    Index("ix_journal_kind_market", "kind", "market"),
)

notifications_table = Table(
    "notifications",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("ts_ns", BigInteger, nullable=False),
    Column("kind", String(32), nullable=False),
    Column("account", BigInteger, nullable=True),  # NULL: a market-wide notification
    Column("market", String(64), nullable=True),
    Column("data", Text, nullable=False),  # JSON object
    Index("ix_notifications_account", "account", "seq"),
)

keys_table = Table(
    "api_keys",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("key_hash", String(64), nullable=False, unique=True),  # hex SHA-256
    Column("role", String(16), nullable=False),
    Column("account", BigInteger, nullable=True),
    Column("created_ns", BigInteger, nullable=False),
    Column("expires_ns", BigInteger, nullable=True),
    Column("revoked_ns", BigInteger, nullable=True),
)

idempotency_table = Table(
    "idempotency",
    metadata,
    Column("scope", String(64), primary_key=True),  # the key's digest
    Column("idem_key", String(128), primary_key=True),
    Column("fingerprint", String(64), nullable=False),  # SHA-256 of method, path, body
    Column("status", Integer, nullable=False),
    Column("body", Text, nullable=False),  # JSON answer, API keys redacted
    Column("created_ns", BigInteger, nullable=False),
)

snapshots_table = Table(
    "snapshots",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("journal_length", BigInteger, nullable=False),
    Column("state_hash", String(64), nullable=False),
    Column("created_ns", BigInteger, nullable=False),
    Column("data", LargeBinary, nullable=False),
)


prediction_alerts_table = Table(
    "prediction_alerts",
    metadata,
    Column("account", BigInteger, primary_key=True, autoincrement=False),
    Column("market", String(64), primary_key=True),  # symbol
    Column("level", Double, nullable=False),  # probability in (0, 1)
    Column("horizon_s", Double, nullable=False),
    Column("created_ns", BigInteger, nullable=False),
)


@dataclass(frozen=True, slots=True)
class PredictionAlert:
    """An account's prediction alert in one market: notify when the predicted probability of
    liquidation within ``horizon_s`` rises through ``level``."""

    account: int
    market: str
    level: float
    horizon_s: float


@dataclass(frozen=True, slots=True)
class IdempotencyRecord:
    """A stored answer to a write sent with an ``Idempotency-Key``."""

    scope: str
    key: str
    fingerprint: str
    status: int = 0
    body: str = ""


@dataclass(frozen=True, slots=True)
class Snapshot:
    """An engine snapshot: pickled state (journal left out) after ``journal_length`` rows."""

    journal_length: int
    state_hash: str
    data: bytes


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()


class Storage:
    """The service's database: journal rows, notifications and hashed API keys.

    Parameters
    ----------
    url
        SQLAlchemy database URL (``sqlite:///file.db``, ``postgresql+psycopg://...``).
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine: Engine = create_engine(url, future=True, pool_pre_ping=True)
        self.dialect = self.engine.dialect.name
        if self.dialect == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
        self.migrate()

    def migrate(self) -> None:
        """Upgrade the schema to the newest Alembic revision (stamp a pre-Alembic database)."""
        from alembic import command
        from alembic.config import Config

        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        with self.engine.begin() as conn:
            config.attributes["connection"] = conn
            tables = set(inspect(conn).get_table_names())
            if "journal" in tables and "alembic_version" not in tables:
                # A database from before migrations: ours only if its journal has our columns.
                have = {c["name"] for c in inspect(conn).get_columns("journal")}
                missing = [name for name in JOURNAL_SCHEMA.names if name not in have]
                if missing:
                    raise DataError(
                        f"journal.{missing[0]}",
                        "missing",
                        "must be a column of the journal table (this is not a deleverage database)",
                    )
                command.stamp(config, "0001")
            command.upgrade(config, "head")

    def revision(self) -> str | None:
        """The schema's Alembic revision."""
        with self.engine.connect() as conn:
            value = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
        return None if value is None else str(value)

    def close(self) -> None:
        """Release the connection pool."""
        self.engine.dispose()

    # ------------------------------------------------------------------ journal
    def load_journal(self) -> Journal:
        """The stored journal, in sequence order (empty if none)."""
        columns: dict[str, list[Any]] = {name: [] for name in JOURNAL_SCHEMA.names}
        names = JOURNAL_SCHEMA.names
        with self.engine.connect() as conn:
            result = conn.execute(select(journal_table).order_by(journal_table.c.seq))
            for row in result:
                for name, value in zip(names, row, strict=True):
                    columns[name].append(value)
        table = pa.table(
            {name: pa.array(values, type=JOURNAL_SCHEMA.field(name).type)
             for name, values in columns.items()},
            schema=JOURNAL_SCHEMA,
        )  # fmt: skip
        return Journal.from_arrow(table, source="database journal")

    def commit(
        self,
        rows: pa.Table,
        notifications: Sequence[dict[str, Any]],
        *,
        keys: Sequence[NewKey] = (),
        created_ns: int = 0,
        revoke: Sequence[int] = (),
        idempotency: IdempotencyRecord | None = None,
    ) -> None:
        """Write a request's journal rows, notifications, new and revoked keys and its
        idempotency record in one transaction."""
        records = rows.to_pylist() if rows.num_rows else []
        with self.engine.begin() as conn:
            if keys:
                conn.execute(
                    insert(keys_table),
                    [
                        {"id": i, "key_hash": h, "role": r, "account": a,
                         "created_ns": created_ns, "expires_ns": e}
                        for i, h, r, a, e in keys
                    ],
                )  # fmt: skip
            for key_id in revoke:
                conn.execute(
                    update(keys_table)
                    .where(keys_table.c.id == key_id, keys_table.c.revoked_ns.is_(None))
                    .values(revoked_ns=created_ns)
                )
            if records:
                conn.execute(insert(journal_table), records)
            if notifications:
                conn.execute(
                    insert(notifications_table),
                    [
                        {
                            "seq": n["seq"],
                            "ts_ns": n["ts_ns"],
                            "kind": n["kind"],
                            "account": n["account"],
                            "market": n["market"],
                            "data": json.dumps(n["data"], separators=(",", ":")),
                        }
                        for n in notifications
                    ],
                )
            if idempotency is not None:
                conn.execute(
                    insert(idempotency_table).values(
                        scope=idempotency.scope, idem_key=idempotency.key,
                        fingerprint=idempotency.fingerprint, status=idempotency.status,
                        body=idempotency.body, created_ns=created_ns,
                    )
                )  # fmt: skip

    def journal_length(self) -> int:
        """Number of stored journal rows."""
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(journal_table)).scalar_one())

    def recent_liquidations(self, market: int, limit: int) -> list[dict[str, Any]]:
        """The newest ``limit`` liquidation notices of a market, newest first."""
        t = journal_table
        query = (
            select(t)
            .where(t.c.kind == int(EventKind.LIQUIDATION), t.c.market == market)
            .order_by(t.c.seq.desc())
            .limit(limit)
        )
        with self.engine.connect() as conn:
            return [dict(row._mapping) for row in conn.execute(query)]

    # ------------------------------------------------------------------ notifications
    def last_notification_seq(self) -> int:
        """The highest stored notification sequence number (0 if none)."""
        with self.engine.connect() as conn:
            value = conn.execute(select(func.max(notifications_table.c.seq))).scalar_one()
        return int(value or 0)

    def notifications_after(
        self, seq: int, *, account: int | None, everything: bool, limit: int = 10_000
    ) -> list[dict[str, Any]]:
        """Stored notifications with sequence number above ``seq``, oldest first.

        ``everything``: all of them (an admin's stream, optionally narrowed to ``account``);
        otherwise the account's own and the market-wide ones (``account`` NULL).
        """
        t = notifications_table
        query = select(t).where(t.c.seq > seq)
        if account is not None:
            query = query.where((t.c.account == account) | (t.c.account.is_(None)))
        elif not everything:
            query = query.where(t.c.account.is_(None))
        query = query.order_by(t.c.seq).limit(limit)
        with self.engine.connect() as conn:
            out = []
            for row in conn.execute(query):
                item = dict(row._mapping)
                item["data"] = json.loads(item["data"])
                out.append(item)
        return out

    # ------------------------------------------------------------------ keys
    def load_keys(self) -> list[KeyRecord]:
        """Every stored key."""
        t = keys_table
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(t.c.id, t.c.key_hash, t.c.role, t.c.account, t.c.created_ns,
                       t.c.expires_ns, t.c.revoked_ns).order_by(t.c.id)
            )  # fmt: skip
            return [
                KeyRecord(int(i), str(h), Role(r), None if a is None else int(a), int(c),
                          None if e is None else int(e), None if v is None else int(v))
                for i, h, r, a, c, e, v in rows
            ]  # fmt: skip

    # ------------------------------------------------------------------ prediction alerts
    def save_prediction_alert(self, alert: PredictionAlert, created_ns: int) -> None:
        """Store (or replace) an account's prediction alert in a market."""
        t = prediction_alerts_table
        with self.engine.begin() as conn:
            conn.execute(delete(t).where(t.c.account == alert.account, t.c.market == alert.market))
            conn.execute(
                insert(t).values(
                    account=alert.account, market=alert.market, level=alert.level,
                    horizon_s=alert.horizon_s, created_ns=created_ns,
                )
            )  # fmt: skip

    def delete_prediction_alert(self, account: int, market: str) -> bool:
        """Remove an account's prediction alert in a market; whether there was one."""
        t = prediction_alerts_table
        with self.engine.begin() as conn:
            done = conn.execute(delete(t).where(t.c.account == account, t.c.market == market))
        return bool(done.rowcount)

    def load_prediction_alerts(self) -> list[PredictionAlert]:
        """Every stored prediction alert."""
        t = prediction_alerts_table
        query = select(t.c.account, t.c.market, t.c.level, t.c.horizon_s).order_by(
            t.c.account, t.c.market
        )
        with self.engine.connect() as conn:
            return [
                PredictionAlert(int(a), str(m), float(lv), float(h))
                for a, m, lv, h in conn.execute(query)
            ]

    # ------------------------------------------------------------------ idempotency
    def idempotent_answer(self, scope: str, key: str) -> IdempotencyRecord | None:
        """The stored answer of a write sent with this key, or None."""
        t = idempotency_table
        query = select(t.c.fingerprint, t.c.status, t.c.body).where(
            t.c.scope == scope, t.c.idem_key == key
        )
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        if row is None:
            return None
        return IdempotencyRecord(scope, key, str(row[0]), int(row[1]), str(row[2]))

    # ------------------------------------------------------------------ snapshots
    def save_snapshot(self, snapshot: Snapshot, created_ns: int, *, keep: int = 2) -> None:
        """Store a snapshot and drop all but the newest ``keep``."""
        t = snapshots_table
        with self.engine.begin() as conn:
            conn.execute(
                insert(t).values(
                    journal_length=snapshot.journal_length, state_hash=snapshot.state_hash,
                    created_ns=created_ns, data=snapshot.data,
                )
            )  # fmt: skip
            ids = [row[0] for row in conn.execute(select(t.c.id).order_by(t.c.id.desc()))]
            if len(ids) > keep:
                conn.execute(delete(t).where(t.c.id.in_(ids[keep:])))

    def snapshots(self) -> list[Snapshot]:
        """Stored snapshots, newest first."""
        t = snapshots_table
        query = select(t.c.journal_length, t.c.state_hash, t.c.data).order_by(t.c.id.desc())
        with self.engine.connect() as conn:
            return [Snapshot(int(n), str(h), bytes(d)) for n, h, d in conn.execute(query)]

    # ------------------------------------------------------------------ health
    def integrity_problems(self, *, quick_check: bool = True) -> list[str]:
        """What is wrong with the database: SQLite's ``quick_check``, journal gaps."""
        problems: list[str] = []
        with self.engine.connect() as conn:
            if quick_check and self.dialect == "sqlite":
                result = [str(r[0]) for r in conn.execute(text("PRAGMA quick_check(5)"))]
                if result != ["ok"]:
                    problems.append("sqlite quick_check: " + "; ".join(result))
            t = journal_table
            count, low, high = conn.execute(
                select(func.count(), func.min(t.c.seq), func.max(t.c.seq))
            ).one()
            if count and (low != 0 or high != count - 1):
                problems.append(
                    f"journal rows must be numbered 0..{count - 1} without gaps, "
                    f"found {count} rows numbered {low}..{high}"
                )
        return problems

    def write_probe(self) -> None:
        """Try a write (rolled back): raises when the database refuses writes."""
        with self.engine.connect() as conn:
            trans = conn.begin()
            try:
                conn.execute(delete(idempotency_table).where(idempotency_table.c.created_ns < 0))
            finally:
                trans.rollback()
