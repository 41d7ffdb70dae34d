"""``deleverage run`` for CDP scenarios (``kind = "cdp"``, e.g. the built-in black-thursday).

:func:`run_cdp_command` is what :func:`deleverage.cli.run.run` dispatches to when the scenario
says ``kind = "cdp"``: it runs every liquidation design on the same path, vaults and keepers
(:func:`deleverage.sim.cdp_runner.run_cdp`), writes the results (steps.parquet, sales.parquet,
journal-<design>.parquet, summary.json, scenario.json) and the side-by-side HTML report
(:func:`deleverage.analytics.cdp_report.write_cdp_report`) into one folder, atomically, and
prints the outcome table (or one JSON object with ``--json``).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from deleverage._files import atomic_folder

__all__ = ["run_cdp_command"]


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    return value


def run_cdp_command(
    scenario: str, *, out: Path | None, as_json: bool, results_folder: Path
) -> None:
    """Run a CDP scenario, write its results and report, print the outcome."""
    from deleverage.analytics.cdp_report import cdp_outcome_rows, write_cdp_report
    from deleverage.sim.cdp_runner import CDP_FILES, load_cdp_scenario, run_cdp

    chosen = load_cdp_scenario(scenario)
    final = results_folder / chosen.name if out is None else out
    with atomic_folder(final, field="--out", replaceable=CDP_FILES) as folder:
        result = run_cdp(chosen)
        written = dict(result.save(folder))
        written["report"] = write_cdp_report(folder / "report.html", result)
    files = {name: str(final / Path(path).relative_to(folder)) for name, path in written.items()}
    if as_json:
        payload = {
            "scenario": chosen.name,
            "kind": "cdp",
            "out": str(final),
            "result_hash": result.result_hash,
            "wall_s": result.wall_s,
            "designs": result.summaries,
            "files": files,
        }
        typer.echo(json.dumps(_json_safe(payload), allow_nan=False))
        return
    console = Console() if Console().is_terminal else Console(width=130)
    table = Table(title=f"{chosen.name}: liquidation designs side by side")
    table.add_column("")
    for design in result.summaries:
        table.add_column(design, justify="right")
    for label, values in cdp_outcome_rows(result):
        table.add_row(label, *values.values())
    console.print(table)
    console.print(
        f"run {result.wall_s:.1f} s; result hash {result.result_hash[:16]}; results and report "
        f"in {final}/ (open {files['report']})"
    )
