"""Command ``deleverage serve``: run the real-time risk service (FastAPI + uvicorn).

A thin layer over :func:`deleverage.service.create_app` (registered on the typer app of
:mod:`deleverage.cli.app`). FastAPI, uvicorn and SQLAlchemy are imported only when the command
runs, so the rest of the command line starts fast.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Annotated

import typer

from deleverage.errors import ConfigError

__all__ = ["check_database", "database_url", "serve"]

_SQLITE_HEADER = b"SQLite format 3\x00"
_LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")
_OPTIONS = {
    "db_url": "--db",
    "admin_key": "--admin-key",
    "margin_levels": "--margin-level",
    "world_depth_per_pct": "--world-depth",
    "rate_limit_per_s": "--rate-limit",
    "rate_burst": "--rate-burst",
    "max_body_bytes": "--max-body-bytes",
    "anonymous_rate_limit_per_s": "--anonymous-rate-limit",
    "anonymous_rate_burst": "--anonymous-rate-burst",
    "max_streams_per_key": "--max-streams-per-key",
    "max_amount": "--max-amount",
    "trade_price_band": "--trade-price-band",
    "max_clock_skew_s": "--max-clock-skew",
    "snapshot_every": "--snapshot-every",
    "webhook_urls": "--webhook-url",
    "webhook_secret": "--webhook-secret",
    "webhook_max_attempts": "--webhook-max-attempts",
    "webhook_backoff_s": "--webhook-backoff",
}


def _shown(db: str) -> str:
    """``db`` as it may be printed: a URL's password masked."""
    from deleverage.cli.redact import redact

    return redact(db)


def database_url(db: str) -> str:
    """A SQLAlchemy URL for ``--db``: URLs pass through, a plain path means a SQLite file.

    Errors name the URL with its password masked.

    Examples
    --------
    >>> database_url("risk.db")
    'sqlite:///risk.db'
    >>> database_url("sqlite:///:memory:")
    'sqlite:///:memory:'

    A PostgreSQL URL (``postgresql+psycopg://risk@localhost/risk``) passes when its driver is
    installed; otherwise the error names the missing module.
    """
    if not db.strip():
        raise ConfigError("--db", db, "must be a database URL or a SQLite file path")
    url = db if "://" in db else f"sqlite:///{db}"
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    try:
        parsed = make_url(url)
        parsed.get_dialect().import_dbapi()
    except (ArgumentError, NoSuchModuleError, ImportError, ValueError, KeyError) as exc:
        raise ConfigError(
            "--db",
            _shown(db),
            f"must be a SQLAlchemy URL whose database driver is installed ({_shown(str(exc))})",
        ) from None
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        name = str(parsed.database)
        if name.startswith("file:"):  # a SQLite URI (uri=true): the path up to its query
            name = name.removeprefix("file:").split("?", 1)[0]
        _check_sqlite_file(Path(name).expanduser(), db)
    return url


def _check_sqlite_file(file: Path, db: str) -> None:
    folder = file.resolve().parent
    if not folder.is_dir():
        raise ConfigError("--db", db, f"must name a SQLite file in an existing folder ({folder})")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ConfigError(
            "--db", db, f"must be in a writable folder (SQLite writes its journal next to it: "
            f"{folder} is read-only)"
        )  # fmt: skip
    if not file.exists():
        return
    if not file.is_file():
        raise ConfigError("--db", db, "must name a SQLite file, not a folder or special file")
    if not os.access(file, os.R_OK | os.W_OK):
        raise ConfigError("--db", db, "must be a SQLite file we can read and write (read-only)")
    with file.open("rb") as handle:
        head = handle.read(len(_SQLITE_HEADER))
    if head and head != _SQLITE_HEADER:
        raise ConfigError("--db", db, "must be a SQLite database (the file is something else)")


def check_database(url: str, db: str) -> None:
    """Open the database as the service will, check that it can write there and that the
    stored journal is valid; raise :class:`ConfigError` naming ``--db`` (password masked)."""
    from sqlalchemy import text
    from sqlalchemy.exc import SQLAlchemyError

    from deleverage.errors import DeleverageError
    from deleverage.service.storage import Storage

    storage = None
    try:
        storage = Storage(url)
        with storage.engine.begin() as conn:  # a write: read-only databases fail here
            conn.execute(text("CREATE TABLE IF NOT EXISTS deleverage_probe (x INTEGER)"))
            conn.execute(text("DROP TABLE deleverage_probe"))
        storage.load_journal()
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
        raise ConfigError(
            "--db", _shown(db), f"must be a database we can open and write ({_shown(reason)})"
        ) from None
    except DeleverageError as exc:
        raise ConfigError(
            "--db", _shown(db), f"must hold a valid journal ({_shown(str(exc))})"
        ) from None
    finally:
        if storage is not None:
            storage.close()


def _check_listen(host: str, port: int) -> None:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise ConfigError("--host", host, f"must be an interface name or address ({exc})") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            raise ConfigError(
                "--port", port, f"must be free to listen on {host} ({exc.strerror})"
            ) from None


def serve(
    db: Annotated[
        str,
        typer.Option(
            "--db",
            envvar="DELEVERAGE_DB",
            help="Database URL (sqlite:///file.db, postgresql+psycopg://...) or a SQLite path.",
        ),
    ] = "deleverage.db",
    host: Annotated[
        str, typer.Option(envvar="DELEVERAGE_HOST", help="Interface to listen on.")
    ] = "127.0.0.1",
    port: Annotated[
        int, typer.Option(envvar="DELEVERAGE_PORT", min=0, max=65535, help="TCP port.")
    ] = 8000,
    admin_key: Annotated[
        str | None,
        typer.Option(
            envvar="DELEVERAGE_ADMIN_KEY",
            help="Bootstrap admin API key, stored hashed on first start (else one is printed).",
        ),
    ] = None,
    margin_level: Annotated[
        list[float] | None,
        typer.Option(help="Margin-ratio warning level (maintenance/equity); repeat for more."),
    ] = None,
    rate_limit: Annotated[float, typer.Option(help="Requests per second per key.")] = 100.0,
    rate_burst: Annotated[int, typer.Option(help="Burst size of the per-key limit.")] = 200,
    anonymous_rate_limit: Annotated[
        float, typer.Option(help="Requests per second per address without a valid key.")
    ] = 5.0,
    anonymous_rate_burst: Annotated[
        int, typer.Option(help="Burst size of the per-address limit.")
    ] = 20,
    max_streams_per_key: Annotated[int, typer.Option(help="Open WebSocket streams per key.")] = 10,
    max_body_bytes: Annotated[int, typer.Option(help="Largest request body.")] = 1_048_576,
    max_amount: Annotated[
        float, typer.Option(help="Largest deposit or withdrawal per request (quote).")
    ] = 1e9,
    trade_price_band: Annotated[
        float, typer.Option(help="A trade's price must be within this fraction of the mark.")
    ] = 0.1,
    max_clock_skew: Annotated[
        float, typer.Option(help="Seconds a client ts_ns may differ from the server clock.")
    ] = 300.0,
    snapshot_every: Annotated[
        int, typer.Option(help="Journal rows between engine snapshots.")
    ] = 50_000,
    webhook_url: Annotated[
        list[str] | None,
        typer.Option(help="POST notifications here (signed); repeat for more."),
    ] = None,
    webhook_secret: Annotated[
        str | None,
        typer.Option(envvar="DELEVERAGE_WEBHOOK_SECRET", help="HMAC-SHA256 key of webhooks."),
    ] = None,
    webhook_max_attempts: Annotated[
        int, typer.Option(help="Delivery attempts per webhook batch.")
    ] = 5,
    webhook_backoff: Annotated[
        float, typer.Option(help="Seconds before the first webhook retry (then doubling).")
    ] = 0.5,
    world_levels: Annotated[
        str | None,
        typer.Option(help="A world run's levels.parquet: the other venues of the world."),
    ] = None,
    world_venue: Annotated[
        str, typer.Option(help="This service's venue name in the world.")
    ] = "service",
    world_depth: Annotated[
        list[str] | None,
        typer.Option(
            help="SYMBOL=DEPTH: the shared book's depth (base per 1%) of a market, for world "
            "criticality and its alert; repeat for more."
        ),
    ] = None,
    world_alert_ratio: Annotated[
        float, typer.Option(help="Alert when the world's branching ratio reaches this.")
    ] = 0.8,
    log_level: Annotated[str, typer.Option(help="Log level (debug, info, warning).")] = "info",
    log_format: Annotated[str, typer.Option(help="json (one object per line) or text.")] = "json",
) -> None:
    """Run the risk service: HTTP API, WebSocket alerts, state rebuilt from the database.

    Example: deleverage serve --db risk.db --port 8000 --admin-key "$DELEVERAGE_ADMIN_KEY"
    """
    import pydantic
    import uvicorn

    from deleverage.service import ServiceSettings, create_app
    from deleverage.service.logs import configure_logging

    if log_format not in ("json", "text"):
        raise ConfigError("--log-format", log_format, "must be 'json' or 'text'")
    if log_level.lower() not in _LOG_LEVELS:
        raise ConfigError("--log-level", log_level, f"must be one of {', '.join(_LOG_LEVELS)}")
    url = database_url(db)
    fields: dict[str, object] = {
        "db_url": url,
        "admin_key": admin_key or None,
        "rate_limit_per_s": rate_limit,
        "rate_burst": rate_burst,
        "anonymous_rate_limit_per_s": anonymous_rate_limit,
        "anonymous_rate_burst": anonymous_rate_burst,
        "max_streams_per_key": max_streams_per_key,
        "max_body_bytes": max_body_bytes,
        "max_amount": max_amount,
        "trade_price_band": trade_price_band,
        "max_clock_skew_s": max_clock_skew,
        "snapshot_every": snapshot_every,
        "webhook_urls": tuple(webhook_url or ()),
        "webhook_secret": webhook_secret or None,
        "webhook_max_attempts": webhook_max_attempts,
        "webhook_backoff_s": webhook_backoff,
    }
    if margin_level:
        fields["margin_levels"] = tuple(margin_level)
    fields["world_levels"] = world_levels
    fields["world_venue"] = world_venue
    fields["world_alert_ratio"] = world_alert_ratio
    depths: dict[str, str] = {}
    for item in world_depth or ():
        symbol, sep, depth = item.partition("=")
        if not sep or not symbol:
            raise ConfigError("--world-depth", item, "must be SYMBOL=DEPTH (base per 1%)")
        depths[symbol] = depth
    fields["world_depth_per_pct"] = depths
    try:
        settings = ServiceSettings.model_validate(fields)
    except pydantic.ValidationError as exc:
        err = exc.errors()[0]
        field = str(err["loc"][0]) if err["loc"] else "webhook_secret"
        option = _OPTIONS.get(field, "--" + field.replace("_", "-"))
        shown = err.get("input")
        if field == "admin_key":  # a secret: its length, never its text
            shown = f"<{len(str(shown))} characters>"
        elif field == "db_url":
            shown = _shown(str(shown))
        raise ConfigError(option, shown, str(err["msg"])) from None
    _check_listen(host, port)
    check_database(url, db)
    configure_logging(log_level, log_format)
    uvicorn.run(
        create_app(settings), host=host, port=port, log_level=log_level.lower(),
        ws="websockets-sansio", access_log=False, log_config=None,
    )  # fmt: skip
