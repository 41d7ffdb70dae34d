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
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="TCP port.")] = 8000,
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
    max_body_bytes: Annotated[int, typer.Option(help="Largest request body.")] = 1_048_576,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "warning",
) -> None:
    """Run the risk service: HTTP API, WebSocket alerts, state rebuilt from the database.

    Example: deleverage serve --db risk.db --port 8000 --admin-key "$DELEVERAGE_ADMIN_KEY"
    """
    import pydantic
    import uvicorn

    from deleverage.service import ServiceSettings, create_app

    fields: dict[str, object] = {
        "db_url": database_url(db),
        "admin_key": admin_key,
        "rate_limit_per_s": rate_limit,
        "rate_burst": rate_burst,
        "max_body_bytes": max_body_bytes,
    }
    if margin_level:
        fields["margin_levels"] = tuple(margin_level)
    try:
        settings = ServiceSettings.model_validate(fields)
    except pydantic.ValidationError as exc:
        err = exc.errors()[0]
        field = str(err["loc"][0]) if err["loc"] else ""
        option = _OPTIONS.get(field, "--" + field.replace("_", "-"))
        raise ConfigError(option, err.get("input"), str(err["msg"])) from None
    uvicorn.run(
        create_app(settings), host=host, port=port, log_level=log_level, ws="websockets-sansio"
    )
