"""Old module paths keep importing, with a warning that names the new one.

Version 0.2 gave every architecture component its own subpackage (docs/architecture.md). Code
written against 0.1 imported, e.g., ``deleverage.exchange`` or ``deleverage.presets``; those
names are served by a finder at the end of :data:`sys.meta_path` that hands out the module at
its new path and emits a :class:`FutureWarning` (shown to users by default, unlike
``DeprecationWarning``). The old paths go away in 0.3.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import types
import warnings
from collections.abc import Sequence

#: old module path -> new module path
MOVED: dict[str, str] = {
    "deleverage.adl": "deleverage.rules.adl",
    "deleverage.bulk": "deleverage.engine.bulk",
    "deleverage.cli_position": "deleverage.cli.position",
    "deleverage.cli_run": "deleverage.cli.run",
    "deleverage.cli_serve": "deleverage.cli.serve",
    "deleverage.cli_sweep": "deleverage.cli.sweep",
    "deleverage.cross_index": "deleverage.engine.cross_index",
    "deleverage.demo": "deleverage.cli.demo",
    "deleverage.dynamic": "deleverage.rules.dynamic",
    "deleverage.events": "deleverage.engine.events",
    "deleverage.exchange": "deleverage.engine.exchange",
    "deleverage.insurance": "deleverage.engine.insurance_fund",
    "deleverage.kernels": "deleverage.engine.kernels",
    "deleverage.level_index": "deleverage.engine.level_index",
    "deleverage.levels": "deleverage.engine.levels",
    "deleverage.liquidation": "deleverage.rules.liquidation",
    "deleverage.margin": "deleverage.rules.margin",
    "deleverage.presets": "deleverage.venues",
    "deleverage.replay": "deleverage.engine.replay",
    "deleverage.risk": "deleverage.engine.risk",
    "deleverage.state": "deleverage.engine.state",
}


class _MovedLoader(importlib.abc.Loader):
    def __init__(self, new: str) -> None:
        self._new = new

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        warnings.warn(
            f"{spec.name} moved to {self._new} in deleverage 0.2; import it from there "
            "(the old path goes in 0.3)",
            FutureWarning,
            stacklevel=2,
        )
        return importlib.import_module(self._new)

    def exec_module(self, module: types.ModuleType) -> None:
        return None  # already executed under its new name


class _MovedFinder(importlib.abc.MetaPathFinder):
    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: types.ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        new = MOVED.get(fullname)
        if new is None:
            return None
        return importlib.machinery.ModuleSpec(fullname, _MovedLoader(new))


def install() -> None:
    """Serve the old paths (idempotent; called by ``deleverage/__init__``)."""
    if not any(isinstance(finder, _MovedFinder) for finder in sys.meta_path):
        sys.meta_path.append(_MovedFinder())
