"""Output helpers shared by the ``position`` and ``heatmap`` commands: a console wide enough
for the tables off a terminal, and JSON without NaN or Infinity."""

from __future__ import annotations

import math
from typing import Any

from rich.console import Console

__all__ = ["console", "json_safe"]


def console() -> Console:
    """A rich console; 130 columns wide off a terminal (logs, pipes and tests)."""
    out = Console()
    if not out.is_terminal:
        out = Console(width=130)
    return out


def json_safe(value: Any) -> Any:
    """Non-finite floats as ``None``: JSON has no NaN or Infinity."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value
