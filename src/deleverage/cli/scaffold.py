"""Commands ``deleverage init`` and ``deleverage population``.

- ``init`` writes a commented template scenario and experiment into a folder: the starting
  point of a user's own study (``deleverage validate``, ``run`` and ``sweep`` accept them as
  written);
- ``population`` draws a scenario's population exactly as ``run`` does (same seed, same rows:
  :class:`deleverage.sim.runner.Simulation`) and writes it as Parquet, the input of
  ``deleverage heatmap`` and of a scenario's ``population_file``.

Both write atomically (:mod:`deleverage._files`) and refuse to overwrite a file unless
``--force`` is given.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from deleverage._files import atomic_write, check_output_file
from deleverage.errors import ConfigError, ValidationError

__all__ = ["EXPERIMENT_TEMPLATE", "SCENARIO_TEMPLATE", "init", "population"]

#: The scenario ``deleverage init`` writes (valid as written; every key documented).
SCENARIO_TEMPLATE = """\
# A deleverage scenario: one market, its price process, its population of positions, the
# insurance fund. Check it with `deleverage validate scenario.toml`, run it with
# `deleverage run scenario.toml`. Every table rejects unknown keys.

name = "my-scenario"          # a slug: names the output folder results/<name>/
description = "A 15% crash in five minutes on a thin BTCUSDT book"
seed = 1                      # same seed, same run (bit for bit)
dt_s = 1.0                    # seconds between two marks
duration_s = 900              # length of the run, seconds

[[markets]]
symbol = "BTCUSDT"
preset = "binance"            # venue rules and tiers: see `deleverage presets`

[markets.price]               # the exogenous price: gbm, merton, garch, regime, shock, historical
process = "shock"             # flat, then a fall of drop_fraction over duration_s from start_s
s0 = 60000.0                  # first price, quote per base
drop_fraction = 0.15
start_s = 60.0
duration_s = 300.0

[markets.liquidity]           # outside liquidity of a constant-depth book
depth_per_pct = 5.0           # base units that move the price by 1%
half_life_s = 60.0            # how fast the book refills after a trade

[markets.population]          # seeded positions (or population_file = "positions.parquet")
n_positions = 2000
long_fraction = 0.7
leverage_median = 20.0
size_min = 0.01

[insurance]
fund = 50000.0                # quote units in the insurance fund at the start
"""

#: The experiment ``deleverage init`` writes (a sweep over the template scenario).
EXPERIMENT_TEMPLATE = """\
# A deleverage experiment: a base scenario, parameters to vary, seeds per cell.
# Run it with `deleverage sweep experiment.toml --workers 2`, then
# `deleverage sweep-report sweep-my-experiment`.

name = "my-experiment"        # a slug: names the results folder sweep-<name>/
description = "Bad debt against book depth and insurance fund"
base = "scenario.toml"        # a built-in name or a TOML path (relative to this file)
seed = 1                      # root of every run's seed
seeds_per_cell = 2            # Monte Carlo replicates of each cell
overrides = { duration_s = 600 }   # fixed changes to the base scenario

# Each parameter: a column of the results, the dotted path it sets, its values.
[parameters.depth]
path = "markets.0.liquidity.depth_per_pct"
values = [2.0, 8.0]

[parameters.fund]
path = "insurance.fund"
values = [10000.0, 100000.0]
"""


def _target(folder: Path, name: str, *, force: bool) -> Path:
    file = check_output_file(folder / name, field="FOLDER")
    if file.exists() and not force:
        raise ConfigError("FOLDER", str(file), "must not hold the file already (use --force)")
    return file


def _write_text(file: Path, text: str) -> None:
    atomic_write(file, lambda tmp: tmp.write_text(text, encoding="utf-8"), field="FOLDER")


def init(
    folder: Annotated[
        Path, typer.Argument(help="Folder to write scenario.toml and experiment.toml into.")
    ] = Path("."),
    force: Annotated[bool, typer.Option(help="Overwrite existing files.")] = False,
) -> None:
    """Write a commented template scenario and experiment to start from.

    Examples:

      deleverage init my-study && deleverage validate my-study/scenario.toml
    """
    if folder.exists() and not folder.is_dir():
        raise ConfigError("FOLDER", str(folder), "must be a folder, not a file")
    if not folder.exists():
        if not folder.parent.is_dir():
            raise ConfigError(
                "FOLDER", str(folder), f"must be in an existing folder ({folder.parent})"
            )
        try:
            folder.mkdir()
        except OSError as exc:
            raise ConfigError(
                "FOLDER", str(folder), f"must be a folder we can create ({exc.strerror})"
            ) from None
    files = {
        _target(folder, "scenario.toml", force=force): SCENARIO_TEMPLATE,
        _target(folder, "experiment.toml", force=force): EXPERIMENT_TEMPLATE,
    }
    for file, text in files.items():
        _write_text(file, text)
        typer.echo(f"wrote {file}")
    typer.echo(f"next: deleverage validate {folder / 'scenario.toml'}")


def population(
    scenario: Annotated[str, typer.Argument(help="A scenario TOML file or a built-in name.")],
    out: Annotated[Path, typer.Option(help="Parquet file to write.")],
    market: Annotated[
        str | None, typer.Option(help="The market's symbol (default: its first with positions).")
    ] = None,
    force: Annotated[bool, typer.Option(help="Overwrite an existing file.")] = False,
) -> None:
    """Draw a scenario's population (as `run` does: same seed, same rows) and write it.

    The file is the input of `deleverage heatmap` and of a scenario's population_file.

    Examples:

      deleverage population btc-2025-10-10 --out population.parquet
    """
    from deleverage.cli.position import scenario_population

    check_output_file(out, field="--out")
    if out.suffix.lower() != ".parquet":
        raise ValidationError("--out", str(out), "must end in .parquet")
    if out.exists() and not force:
        raise ConfigError("--out", str(out), "must not exist already (use --force)")
    source = scenario_population(scenario, market, field="SCENARIO")
    atomic_write(out, lambda tmp: source.frame.to_parquet(tmp, index=False), field="--out")
    typer.echo(f"wrote {len(source.frame):,} positions of {source.label} to {out}")
