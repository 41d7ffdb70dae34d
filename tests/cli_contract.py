"""The command line's contract, as a checker shared by the contract tests and the fuzzer.

Every command, on any input: exit 0, or exit 2 with one message on stderr naming the option or
field (in backticks, or click's quoted option), the value and the rule; never a traceback, an
"internal error", or a file outside the output folder. :func:`call` runs ``deleverage`` in this
process (as the console script does, through :func:`deleverage.cli.app.main`) and returns the
exit code and both streams; :func:`assert_contract` checks them.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deleverage.cli.app import main

#: Test scenarios stay small: a run of one takes about a second.
TINY_SCENARIO: dict[str, Any] = {
    "name": "tiny",
    "seed": 3,
    "dt_s": 1.0,
    "duration_s": 60,
    "markets": [
        {
            "symbol": "BTCUSDT",
            "preset": "binance",
            "price": {
                "process": "shock",
                "s0": 60000.0,
                "drop_fraction": 0.2,
                "start_s": 10.0,
                "duration_s": 30.0,
            },
            "liquidity": {"depth_per_pct": 2.0, "half_life_s": 60.0},
            "population": {"n_positions": 150, "long_fraction": 0.8, "leverage_median": 25.0},
        }
    ],
    "insurance": {"fund": 200.0},
}

TINY_EXPERIMENT: dict[str, Any] = {
    "name": "tiny-sweep",
    "seed": 1,
    "base": "scenario.toml",
    "seeds_per_cell": 1,
    "metrics": ["bad_debt", "liquidations"],
    "overrides": {"duration_s": 30},
    "parameters": {"fund": {"path": "insurance.fund", "values": [100.0]}},
}


@dataclass(frozen=True)
class Outcome:
    """What one command did: exit code and both streams (whitespace collapsed)."""

    code: int
    out: str
    err: str

    @property
    def text(self) -> str:
        return " ".join((self.out + " " + self.err).split())


def call(*args: str) -> Outcome:
    """Run ``deleverage *args`` in this process; never raises (SystemExit is the exit code)."""
    out, err = io.StringIO(), io.StringIO()
    argv = sys.argv
    sys.argv = ["deleverage", *args]
    code: object = 0
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            main()
    except SystemExit as exc:
        code = exc.code if exc.code is not None else 0
    finally:
        sys.argv = argv
    return Outcome(int(code) if isinstance(code, int) else 1, out.getvalue(), err.getvalue())


def assert_contract(outcome: Outcome, *, names: tuple[str, ...] = ()) -> None:
    """Exit 0, or exit 2 naming a field; no traceback; JSON output (if any) has no NaN."""
    text = outcome.text
    assert outcome.code in (0, 2), f"exit {outcome.code}: {text[-600:]}"
    assert "Traceback" not in text, text[-600:]
    assert "internal error" not in text, text[-600:]
    if outcome.code == 2:
        err = " ".join(outcome.err.split())
        named = (
            "`" in err  # `field` rule, was value
            or re.match(r"error: [\w.\[\]*-]+: ", err) is not None  # Model.field: rule, was value
            or "'--" in err  # click's usage errors: Invalid value for '--size'
            or re.match(r"error: unknown [\w ]+ '", err) is not None  # unknown market 'X'
            or "Missing argument" in err
            or "No such" in err
        )
        assert named, f"message names no field: {err}"
        for name in names:
            assert name in err, f"{name!r} not in {err}"
    stripped = outcome.out.strip()
    if stripped.startswith(("{", "[")):
        json.loads(stripped, parse_constant=_no_constant)


def _no_constant(name: str) -> float:
    raise AssertionError(f"JSON output holds {name}")


def toml_value(value: Any) -> str:
    """A TOML literal for ``value`` (tables inline), enough for generated documents."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a TOML basic string accepts JSON's escapes
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return (
            "{ " + ", ".join(f"{json.dumps(k)} = {toml_value(v)}" for k, v in value.items()) + " }"
        )
    raise TypeError(type(value))


def toml_document(data: dict[str, Any]) -> str:
    """A TOML document of ``data``: one ``key = value`` line per top-level key."""
    return "".join(f"{json.dumps(k)} = {toml_value(v)}\n" for k, v in data.items())


def snapshot(folder: Path) -> set[str]:
    """Every path under ``folder``, relative, as strings."""
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


@contextlib.contextmanager
def inside(folder: Path) -> Iterator[None]:
    """Run the block with ``folder`` as the working directory."""
    before = Path.cwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(before)
