"""A pydantic validation error as problem lines, one per failed field (``loc: msg (was x)``).

Shared by every scenario checker (perp scenarios in :mod:`deleverage.sim.checks`, CDP
scenarios in :mod:`deleverage.sim.cdp_runner`, worlds in ``deleverage validate``).
"""

from __future__ import annotations

import pydantic

from deleverage.errors import ConfigError

__all__ = ["validation_problems"]


def validation_problems(exc: pydantic.ValidationError) -> list[str]:
    """One line per error: the dotted field path, the rule, and the value given (cut to 60
    characters). A :class:`ConfigError` raised inside a validator is shown by its own message;
    a list that also reports itself too short because its entries failed is left out (a
    consequence, not a problem)."""
    out = []
    errors = exc.errors()
    for err in errors:
        loc_t = tuple(err["loc"])
        if err["type"] == "too_short" and any(
            tuple(o["loc"])[: len(loc_t)] == loc_t and len(o["loc"]) > len(loc_t) for o in errors
        ):
            continue
        loc = ".".join(str(p) for p in err["loc"]) or "scenario"
        inner = err.get("ctx", {}).get("error")
        msg = str(inner) if isinstance(inner, ConfigError) else err["msg"]
        shown = repr(err.get("input"))
        if len(shown) > 60:
            shown = shown[:57] + "..."
        out.append(f"{loc}: {msg} (was {shown})")
    return out
