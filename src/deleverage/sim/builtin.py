"""Built-in scenarios, shipped as TOML files in ``deleverage/data/scenarios``."""

from __future__ import annotations

import tomllib
from importlib import resources
from pathlib import Path

#: The scenario ``make run`` and ``deleverage run`` use when none is named.
DEFAULT_SCENARIO = "btc-2025-10-10"


def _folder() -> Path:
    return Path(str(resources.files("deleverage") / "data" / "scenarios"))


def builtin_names() -> tuple[str, ...]:
    """Names of the built-in scenarios, sorted."""
    return tuple(sorted(p.stem for p in _folder().glob("*.toml")))


def builtin_path(name: str) -> Path:
    """Path of a built-in scenario's TOML file."""
    return _folder() / f"{name}.toml"


def builtin_descriptions() -> dict[str, str]:
    """One-line description of each built-in scenario."""
    out = {}
    for name in builtin_names():
        data = tomllib.loads(builtin_path(name).read_text())
        out[name] = str(data.get("description", ""))
    return out
