"""World scenarios at the command line: ``run``, ``validate`` and ``heatmap`` dispatch here
when a scenario file says ``kind = "world"`` (or names a built-in world).

- :func:`run_world_command`: the world and its twin with both contagion channels cut (the same
  venues and seeds without contagion), when the scenario has risk layers (``[clearinghouse]``,
  ``[[backstops]]``, ``[risk_oracle]``) its twin without them (``without_layers/``, the same
  shocks), results (Parquet, JSON), liquidation levels, heatmaps,
  criticality and the HTML report (:mod:`deleverage.analytics.world_report`) in one folder,
  written atomically;
- :func:`world_problems`: every problem of a world file at once (``deleverage validate``);
- :func:`world_heatmap`: the heatmaps of every venue and of the world at the start
  (``deleverage heatmap --scenario <world>``).
"""

from __future__ import annotations

import json
import math
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pydantic
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from deleverage._files import atomic_folder, atomic_write, read_text
from deleverage.errors import ConfigError, DeleverageError
from deleverage.sim.problems import validation_problems

__all__ = ["WORLD_FILES", "run_world_command", "world_heatmap", "world_problems"]

#: What a world run writes into its folder (an earlier run's folder holding only these is
#: replaced).
WORLD_FILES = frozenset(
    {
        "assets.parquet", "venues.parquet", "rounds.parquet", "contagion.parquet",
        "summary.json", "levels.parquet", "heatmaps.parquet", "criticality.parquet",
        "report.html", "baseline", "without_layers",
    }
)  # fmt: skip


def run_world_command(
    source: str, *, out: Path | None, results_folder: Path, baseline: bool, as_json: bool
) -> None:
    """Run a world scenario and write its folder (see the module docstring)."""
    import pandas as pd

    from deleverage.analytics.world_report import world_panels, write_world_report
    from deleverage.world import Channels
    from deleverage.world.build import run_world
    from deleverage.world.config import load_world
    from deleverage.world.risk_config import has_risk_layers, without_risk_layers

    scenario = load_world(source)
    final = results_folder / scenario.name if out is None else out
    with atomic_folder(final, field="--out", replaceable=WORLD_FILES) as folder:
        with Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("steps"), TimeElapsedColumn(), console=Console(stderr=True),
            transient=as_json,
        ) as bar:  # fmt: skip
            result = run_world(scenario, progress=_advance(bar, f"{scenario.name} (world)"))
            twin = None
            if baseline:
                twin = run_world(
                    scenario, channels=Channels(prices=False, traders=False),
                    progress=_advance(bar, f"{scenario.name} (no contagion)"),
                )  # fmt: skip
            # The same shocks without the risk layers (clearinghouse, backstops, oracle).
            bare = None
            if has_risk_layers(scenario):
                bare = run_world(
                    without_risk_layers(scenario),
                    progress=_advance(bar, f"{scenario.name} (without risk layers)"),
                )
        written = dict(result.save(folder))
        if twin is not None:
            for name, path in twin.save(folder / "baseline").items():
                written[f"baseline_{name}"] = path
        if bare is not None:
            for name, path in bare.save(folder / "without_layers").items():
                written[f"without_layers_{name}"] = path
        levels = result.extra["levels"]
        frames = [f.assign(venue=v) for v, f in levels.items()]
        written["levels"] = folder / "levels.parquet"
        pd.concat(frames, ignore_index=True).to_parquet(written["levels"], index=False)
        heat, crit = world_panels(result)
        written["heatmaps"] = folder / "heatmaps.parquet"
        heat.to_parquet(written["heatmaps"], index=False)
        written["criticality"] = folder / "criticality.parquet"
        crit.to_parquet(written["criticality"], index=False)
        written["report"] = write_world_report(
            folder / "report.html", result, baseline=twin, without_layers=bare
        )
    files = {name: str(final / Path(path).relative_to(folder)) for name, path in written.items()}
    summary = result.summary()
    if as_json:
        payload = {
            "scenario": scenario.name,
            "kind": "world",
            "out": str(final),
            "result_hash": result.result_hash,
            "wall_s": result.wall_s,
            "summary": summary,
            "baseline_summary": None if twin is None else twin.summary(),
            "without_layers_summary": None if bare is None else bare.summary(),
            "venues": result.venue_summary().reset_index().to_dict(orient="records"),
            "files": files,
        }
        typer.echo(json.dumps(_finite(payload), allow_nan=False, default=str))
        return
    console = Console()
    table = Table(title=f"{scenario.name}: venues")
    shown = result.venue_summary()
    table.add_column("venue")
    for column in ("kind", "liquidations", "liquidated_notional", "insurance_paid",
                   "bad_debt", "from_other_venues"):  # fmt: skip
        table.add_column(column, justify="right")
    for venue, row in shown.iterrows():
        table.add_row(
            str(venue), str(row["kind"]), f"{row['liquidations']:,}",
            f"{row['liquidated_notional']:,.0f}", f"{row['insurance_paid']:,.0f}",
            f"{row['bad_debt']:,.0f}", f"{row['from_other_venues']:,.1f}",
        )  # fmt: skip
    console.print(table)
    if twin is not None:
        console.print(
            f"liquidations {summary['liquidations']:,.0f} (without contagion "
            f"{twin.summary()['liquidations']:,.0f}); caused across venues "
            f"{summary['cross_venue_liquidations']:,.1f}"
        )
    console.print(
        f"run {result.wall_s:.1f} s; result hash {result.result_hash[:16]}; results and report "
        f"in {final}/ (open {files['report']})"
    )


def _advance(bar: Progress, description: str) -> Callable[[int, int], None]:
    task = bar.add_task(description, total=None)

    def update(done: int, total: int) -> None:
        bar.update(task, completed=done, total=total)

    return update


def _finite(value: Any) -> Any:
    """``value`` with non-finite floats as None (JSON has no NaN)."""
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def world_problems(path: Path) -> list[str]:
    """Every problem of a world file, one line each (empty when valid)."""
    import numpy as np

    from deleverage.spec import collect_problems
    from deleverage.world.build import asset_paths
    from deleverage.world.config import WorldScenario

    try:
        data = tomllib.loads(read_text(path, field="scenario", what="TOML file"))
    except tomllib.TOMLDecodeError as exc:
        return [f"toml: must be valid TOML ({exc})"]
    try:
        with collect_problems():
            scenario = WorldScenario.model_validate(data)
    except pydantic.ValidationError as exc:
        return validation_problems(exc)
    except ConfigError as exc:
        return [str(exc)]
    try:
        asset_paths(scenario, np.random.default_rng(0))
    except (DeleverageError, ValueError, OSError) as exc:
        return [f"assets: {exc}"]
    return []


def world_heatmap(source: str, *, bucket: float, as_json: bool, html: Path | None) -> None:
    """Print (or write) the liquidation heatmaps of every venue of a world at its start."""

    from deleverage.analytics.world_views import world_heatmaps
    from deleverage.errors import ValidationError
    from deleverage.world.build import build_world
    from deleverage.world.config import load_world

    if not (math.isfinite(bucket) and bucket > 0):
        raise ValidationError("--bucket", bucket, "must be a finite number > 0")
    world = build_world(load_world(source))
    levels = {name: venue.liquidation_levels() for name, venue in world.venues.items()}
    frames = {
        asset: world_heatmaps(levels, asset=asset, price=market.price, bucket_width=bucket)
        for asset, market in world.markets.items()
    }
    if html is not None:
        from deleverage.analytics.world_report import _heatmap_figure

        parts = [
            _heatmap_figure(frame).to_html(full_html=False, include_plotlyjs=i == 0)
            for i, frame in enumerate(frames.values())
        ]
        page = "<html><body>" + "".join(parts) + "</body></html>"
        atomic_write(html, lambda tmp: tmp.write_text(page, encoding="utf-8"), field="--html")
    if as_json:
        payload: dict[str, Any] = {
            asset: frame.groupby(["venue", "side"])["notional"].sum().unstack(fill_value=0.0)
            .to_dict(orient="index")
            for asset, frame in frames.items()
        }  # fmt: skip
        typer.echo(json.dumps({"kind": "world", "heatmaps": payload, "bucket": bucket}))
        return
    console = Console()
    for asset, frame in frames.items():
        table = Table(title=f"{asset}: liquidation notional by venue (bucket {bucket:g})")
        table.add_column("venue")
        table.add_column("long (below)", justify="right")
        table.add_column("short (above)", justify="right")
        table.add_column("largest long bucket", justify="right")
        for venue, rows in frame.groupby("venue", sort=False):
            longs = rows[rows["side"] == "long"]
            shorts = rows[rows["side"] == "short"]
            top = (
                longs.loc[longs["notional"].idxmax(), "bucket_low"] if len(longs) else float("nan")
            )
            table.add_row(str(venue), f"{longs['notional'].sum():,.0f}",
                          f"{shorts['notional'].sum():,.0f}", f"{top:,.0f}")  # fmt: skip
        console.print(table)
