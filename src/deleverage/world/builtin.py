"""Built-in world scenarios, shipped as TOML files in ``deleverage/data/worlds``."""

from __future__ import annotations

import tomllib
from importlib import resources
from pathlib import Path

__all__ = ["world_builtin_descriptions", "world_builtin_names", "world_builtin_path"]


def _folder() -> Path:
    return Path(str(resources.files("deleverage") / "data" / "worlds"))


def world_builtin_names() -> tuple[str, ...]:
    """Names of the built-in worlds, sorted."""
    return tuple(sorted(p.stem for p in _folder().glob("*.toml")))


def world_builtin_path(name: str) -> Path:
    """Path of a built-in world's TOML file."""
    return _folder() / f"{name}.toml"


def world_builtin_descriptions() -> dict[str, str]:
    """One-line description of each built-in world."""
    return {
        name: str(tomllib.loads(world_builtin_path(name).read_text()).get("description", ""))
        for name in world_builtin_names()
    }
