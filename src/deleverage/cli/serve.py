"""Command ``deleverage serve``: run the real-time risk service (FastAPI + uvicorn).

A thin layer over :func:`deleverage.service.create_app` (registered on the typer app of
:mod:`deleverage.cli.app`). FastAPI, uvicorn and SQLAlchemy are imported only when the command
runs, so the rest of the command line starts fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from deleverage.errors import ConfigError

__all__ = ["database_url", "serve"]

_OPTIONS = {
    "db_url": "--db",
    "admin_key": "--admin-key",
    "margin_levels": "--margin-level",
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


def database_url(db: str) -> str:
    """A SQLAlchemy URL for ``--db``: URLs pass through, a plain path means a SQLite file.

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
            "--db", db, f"must be a SQLAlchemy URL whose database driver is installed ({exc})"
        ) from None
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        folder = Path(parsed.database).expanduser().resolve().parent
        if not folder.is_dir():
            raise ConfigError(
                "--db", db, f"must name a SQLite file in an existing folder ({folder})"
            )
    return url


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
    if log_level.lower() not in ("debug", "info", "warning", "error", "critical"):
        raise ConfigError(
            "--log-level", log_level, "must be debug, info, warning, error or critical"
        )
    fields: dict[str, object] = {
        "db_url": database_url(db),
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
    try:
        settings = ServiceSettings.model_validate(fields)
    except pydantic.ValidationError as exc:
        err = exc.errors()[0]
        field = str(err["loc"][0]) if err["loc"] else "webhook_secret"
        option = _OPTIONS.get(field, "--" + field.replace("_", "-"))
        raise ConfigError(option, err.get("input"), str(err["msg"])) from None
    configure_logging(log_level, log_format)
    uvicorn.run(
        create_app(settings), host=host, port=port, log_level=log_level.lower(),
        ws="websockets-sansio", access_log=False, log_config=None,
    )  # fmt: skip
