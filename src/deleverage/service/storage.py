"""Storage of the risk service: the engine's journal, notifications and API keys (SQLAlchemy).

Three tables:

- ``journal``: the engine's events, one row per event, the columns of
  :data:`deleverage.engine.events.JOURNAL_SCHEMA` (floats stored as 8-byte doubles, so a replay of
  the stored journal rebuilds the engine bit for bit);
- ``notifications``: every notification sent, with its global sequence number (clients resume
  from it after a reconnect);
- ``api_keys``: SHA-256 digests of the keys, never the keys themselves, with role and account.

A request's events and notifications are written in one transaction (:meth:`Storage.commit`)
before the request is answered, so what was acknowledged survives a crash. SQLite runs in WAL
mode with ``synchronous=NORMAL``: a committed transaction survives the process being killed
(``kill -9``); an operating-system crash may lose the last transactions (use ``FULL`` or
PostgreSQL where that matters).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pyarrow as pa
from sqlalchemy import (
    BigInteger,
    Column,
    Double,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    create_engine,
    event,
    func,
    insert,
    select,
)
from sqlalchemy.engine import Engine

from deleverage.engine.events import JOURNAL_SCHEMA, EventKind, Journal

__all__ = ["Storage", "metadata"]

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
)


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
        self.engine: Engine = create_engine(url, future=True)
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
        metadata.create_all(self.engine)

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
        keys: Sequence[tuple[str, str, int | None]] = (),
        created_ns: int = 0,
    ) -> None:
        """Write a request's journal rows, notifications and new keys in one transaction."""
        records = rows.to_pylist() if rows.num_rows else []
        with self.engine.begin() as conn:
            if keys:
                conn.execute(
                    insert(keys_table),
                    [
                        {"key_hash": h, "role": r, "account": a, "created_ns": created_ns}
                        for h, r, a in keys
                    ],
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
    def add_key(self, key_hash: str, role: str, account: int | None, created_ns: int) -> None:
        """Store a key's digest with its role and account."""
        with self.engine.begin() as conn:
            conn.execute(
                insert(keys_table).values(
                    key_hash=key_hash, role=role, account=account, created_ns=created_ns
                )
            )

    def load_keys(self) -> list[tuple[str, str, int | None]]:
        """Every stored key as (digest, role, account)."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(keys_table.c.key_hash, keys_table.c.role, keys_table.c.account)
            )
            return [(str(h), str(r), None if a is None else int(a)) for h, r, a in rows]
