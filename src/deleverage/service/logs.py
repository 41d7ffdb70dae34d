"""Structured logs of the risk service: one JSON object per line on stderr.

Every record carries ``time``, ``level``, ``logger`` and ``message`` and the fields passed in
``extra`` (a request's ``method``, ``route``, ``status``, ``duration_ms``, ``key_id``,
``client``; a refused write's ``field``; a webhook's ``url`` and ``attempt``). Keys are never
logged, only their ids. ``--log-format text`` gives plain lines instead.
"""

from __future__ import annotations

import logging
import sys

from pythonjsonlogger.json import JsonFormatter

__all__ = ["configure_logging", "logger"]

logger = logging.getLogger("deleverage.service")


def configure_logging(level: str = "info", fmt: str = "json") -> None:
    """Send the service's and uvicorn's logs to stderr, as JSON lines or text."""
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(
            JsonFormatter(
                "{asctime}{levelname}{name}{message}",
                style="{",
                rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            )
        )
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    for name in ("deleverage.service", "uvicorn", "uvicorn.error"):
        log = logging.getLogger(name)
        log.handlers[:] = [handler]
        log.setLevel(level.upper())
        log.propagate = False
