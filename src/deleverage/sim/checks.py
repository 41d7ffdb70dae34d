"""Every problem of a scenario at once, before anything runs (``deleverage validate``).

:func:`scenario_problems` validates the TOML or mapping against :class:`Scenario` with every
pydantic error listed, then builds what only a run would touch: each market's price path (price
files, bundled names, process parameters) and funding history, each market on its own.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import numpy as np
import pydantic

from deleverage._files import read_text
from deleverage.errors import ConfigError, DeleverageError
from deleverage.sim.funding import load_funding_history
from deleverage.sim.paths import scenario_paths
from deleverage.sim.problems import validation_problems
from deleverage.sim.scenario import MAX_STEPS, Scenario, resource_problems
from deleverage.spec import collect_problems

__all__ = ["scenario_problems"]


# ---------------------------------------------------------------------------- checking
def scenario_problems(source: str | Path | dict[str, Any]) -> list[str]:
    """Every problem of a scenario document, one line each (empty when it is valid).

    ``source`` is a path to a TOML file, TOML text, or the parsed mapping.
    """
    if isinstance(source, dict):
        data = source
    else:
        path = Path(source) if not isinstance(source, str) or source.endswith(".toml") else None
        try:
            text = (
                read_text(path, field="path", what="TOML file") if path is not None else str(source)
            )
        except ConfigError as exc:
            return [str(exc)]
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            return [f"toml: must be valid TOML ({exc})"]
    if data.get("kind") == "cdp":  # a CDP scenario (sim/cdp_runner.py)
        from deleverage.sim.cdp_runner import cdp_scenario_problems

        return cdp_scenario_problems(data)
    try:
        with collect_problems():
            Scenario.model_validate(data)
    except pydantic.ValidationError as exc:
        return validation_problems(exc)
    except ConfigError as exc:
        return [str(exc)]
    scenario = Scenario.from_mapping(data)
    return resource_problems(scenario) or _data_problems(scenario)


def _data_problems(scenario: Scenario) -> list[str]:
    """Problems only building the run finds: price files, bundled names, process parameters,
    funding histories; each market tried on its own so that every one is reported."""
    out: list[str] = []
    for i, market in enumerate(scenario.markets):
        one = scenario.model_copy(update={"markets": (market,), "correlation": None})
        steps = MAX_STEPS if one.duration_s is None else one.duration_s / one.dt_s
        # The whole path when it is cheap (it must stay in range), else its first steps.
        short = one if steps <= 1_000_000 else one.model_copy(update={"duration_s": 10 * one.dt_s})
        try:
            scenario_paths(short, np.random.default_rng(0))
        except (DeleverageError, ValueError, OSError) as exc:
            out.append(f"markets.{i}.price: {exc}")
        f = market.funding
        if f.kind == "historical":
            try:
                load_funding_history(bundled=f.bundled, file=f.file)
            except (DeleverageError, ValueError, OSError) as exc:
                out.append(f"markets.{i}.funding: {exc}")
    return out
