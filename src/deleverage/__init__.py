"""deleverage: a risk engine and laboratory for liquidation cascades and automated deleveraging.

The public API is re-exported here; see the README for a tour and docs/architecture.md for
where each part lives. The engine's names import eagerly; the simulator's (``run``,
``load_scenario``, ``Scenario``, ``RunResult``) on first use, so ``import deleverage`` stays
light.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from deleverage import _kernel_cache, _moved  # noqa: F401  (_kernel_cache first: numba's cache folder)
from deleverage.engine.events import Journal
from deleverage.engine.exchange import AccountKind, Exchange
from deleverage.errors import DeleverageError
from deleverage.liquidity import ConstantDepthBook, L2Book, PowerLawImpact
from deleverage.spec import MarginMode, MarginTier, MarketSpec
from deleverage.venues import list_presets, preset, preset_info
from deleverage.venues.protocol import Venue

if TYPE_CHECKING:
    from deleverage.sim.runner import RunResult, run
    from deleverage.sim.scenario import Scenario, load_scenario

_moved.install()

__version__ = "0.2.0"

_LAZY = {
    "RunResult": "deleverage.sim.runner",
    "Scenario": "deleverage.sim.scenario",
    "load_scenario": "deleverage.sim.scenario",
    "run": "deleverage.sim.runner",
}

__all__ = [
    "AccountKind",
    "ConstantDepthBook",
    "DeleverageError",
    "Exchange",
    "Journal",
    "L2Book",
    "MarginMode",
    "MarginTier",
    "MarketSpec",
    "PowerLawImpact",
    "RunResult",
    "Scenario",
    "Venue",
    "__version__",
    "list_presets",
    "load_scenario",
    "preset",
    "preset_info",
    "run",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'deleverage' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
