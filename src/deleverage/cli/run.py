"""Commands ``deleverage run``, ``deleverage scenarios`` and ``deleverage validate``.

Thin layers over the public API (registered on the typer app of :mod:`deleverage.cli.app`):

- ``run`` loads a scenario (:func:`deleverage.sim.scenario.load_scenario`), runs it with a
  progress bar (:func:`deleverage.sim.runner.run`), runs its ``feedback=False`` twin for the
  cascade amplification, computes the stress metrics
  (:func:`deleverage.analytics.stress.stress_metrics`) and writes the results (Parquet and
  JSON, :meth:`~deleverage.sim.runner.RunResult.save`) and the HTML report
  (:func:`deleverage.analytics.report.write_report`) into one folder;
- ``scenarios`` lists the built-in scenarios;
- ``validate`` lists every problem of a scenario file at once
  (:func:`deleverage.sim.checks.scenario_problems`).

Bad input raises :class:`~deleverage.errors.ValidationError` (a
:class:`~deleverage.errors.ConfigError` for scenarios); :func:`deleverage.cli.app.main` turns it
into exit code 2 with the message. ``run`` writes its folder atomically
(:func:`deleverage._files.atomic_folder`): after a failure or Ctrl-C nothing is left.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from deleverage._files import atomic_folder, read_text
from deleverage.errors import ConfigError

if TYPE_CHECKING:
    from deleverage.analytics.stress import StressMetrics
    from deleverage.analytics.uncertainty import SeedSummary
    from deleverage.sim.runner import RunResult
    from deleverage.sim.scenario import Scenario

__all__ = ["RESULTS_FOLDER", "RUN_FILES", "run", "scenarios", "validate"]

#: Default parent folder of ``deleverage run``'s outputs (``results/<scenario name>/``).
RESULTS_FOLDER = Path("results")
#: What ``run`` writes into its folder: an existing folder holding only these is replaced.
RUN_FILES = frozenset(
    {
        "steps.parquet", "journal.parquet", "scenario.json", "summary.json", "baseline",
        "metrics.json", "losses.parquet", "report.html",
    }
)  # fmt: skip


def _console(*, stderr: bool = False) -> Console:
    console = Console(stderr=stderr)
    if not console.is_terminal:  # logs, pipes and tests: wide enough for the tables
        console = Console(width=130, stderr=stderr)
    return console


def _json_safe(value: Any) -> Any:
    """Non-finite floats as ``None`` (JSON has no NaN), recursively."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


def _run_with_progress(
    scenario: Scenario, progress: Progress, label: str, *, feedback: bool, keep: bool
) -> RunResult:
    task = progress.add_task(label, total=None)

    def update(done: int, total: int) -> None:
        progress.update(task, completed=done, total=total)

    if scenario.proactive is not None:  # with its policies' predictor (loads scikit-learn)
        from deleverage.predict.proactive import run_scenario

        return run_scenario(scenario, feedback=feedback, progress=update, keep_exchange=keep)
    from deleverage.sim import runner

    return runner.run(scenario, feedback=feedback, progress=update, keep_exchange=keep)


def _run_pair(
    scenario: Scenario, *, baseline: bool, quiet: bool
) -> tuple[RunResult, RunResult | None]:
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("steps"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=_console(stderr=True), transient=quiet) as progress:
        result = _run_with_progress(
            scenario, progress, f"{scenario.name} (feedback)", feedback=True, keep=True
        )
        twin = None
        if baseline:
            twin = _run_with_progress(
                scenario, progress, f"{scenario.name} (no feedback)", feedback=False, keep=False
            )
    return result, twin


def run(
    scenario: Annotated[
        str | None,
        typer.Argument(
            help="A scenario TOML file or a built-in name (deleverage scenarios); "
            "default: the built-in btc-2025-10-10."
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(help="Output folder (default: results/<scenario name>/)."),
    ] = None,
    no_baseline: Annotated[
        bool,
        typer.Option(
            "--no-baseline",
            help="Skip the feedback=False twin run (no cascade amplification against it).",
        ),
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the summary and metrics as one JSON object.")
    ] = False,
    seeds: Annotated[
        int,
        typer.Option(
            "--seeds",
            min=1,
            help="Also run the scenario with this many seeds (its own first) in parallel: "
            "5-95% bands and the fund-loss VaR / expected shortfall in the report.",
        ),
    ] = 1,
    workers: Annotated[
        int | None,
        typer.Option(min=0, help="Processes for --seeds (default: one per CPU; 0: this one)."),
    ] = None,
) -> None:
    """Run a scenario: progress bar, summary table, results (Parquet) and an HTML report.

    Writes into the output folder: steps.parquet, journal.parquet,
    scenario.json and summary.json (the run); baseline/ (its feedback=False
    twin); metrics.json, losses.parquet and report.html.

    Examples:

      deleverage run                      # the default scenario, btc-2025-10-10

      deleverage run adl-exhaustion --out /tmp/adl

      deleverage run my-scenario.toml --no-baseline --json

      deleverage run --seeds 20 --workers 2   # bands and fund-loss VaR / ES across seeds
    """
    from deleverage.sim.cdp_runner import is_cdp_scenario

    if scenario is not None and is_cdp_scenario(scenario):  # kind = "cdp": cli/cdp.py
        from deleverage.cli.cdp import run_cdp_command

        if seeds > 1:
            raise ConfigError("--seeds", seeds, 'must be 1 for a CDP scenario (kind = "cdp")')
        run_cdp_command(scenario, out=out, as_json=as_json, results_folder=RESULTS_FOLDER)
        return
    from deleverage.analytics.report import write_report
    from deleverage.analytics.stress import run_account_losses, stress_metrics, verdict
    from deleverage.sim.builtin import DEFAULT_SCENARIO
    from deleverage.sim.scenario import check_resources, load_scenario
    from deleverage.world.config import scenario_kind

    if scenario is not None and scenario_kind(scenario) == "world":  # a multi-venue world
        from deleverage.cli.world import run_world_command

        if seeds > 1:
            raise ConfigError("--seeds", seeds, "must be 1 for a world scenario (not supported)")
        run_world_command(
            scenario, out=out, results_folder=RESULTS_FOLDER, baseline=not no_baseline,
            as_json=as_json,
        )  # fmt: skip
        return
    chosen = load_scenario(DEFAULT_SCENARIO if scenario is None else scenario)
    check_resources(chosen)
    final = RESULTS_FOLDER / chosen.name if out is None else out
    with atomic_folder(final, field="--out", replaceable=RUN_FILES) as folder:
        result, baseline = _run_pair(chosen, baseline=not no_baseline, quiet=as_json)
        spread = None
        if seeds > 1:
            from deleverage.sweep.seeds import run_seeds

            spread = run_seeds(chosen, seeds, workers=workers)
        losses = run_account_losses(result)
        metrics = stress_metrics(result, baseline, losses=losses)
        survives, text = verdict(metrics)
        written = dict(result.save(folder))
        if baseline is not None:
            for name, path in baseline.save(folder / "baseline").items():
                written[f"baseline_{name}"] = path
        saved_metrics = metrics.to_dict()
        if spread is not None:
            saved_metrics["seeds"] = spread.to_dict()
        written["metrics"] = folder / "metrics.json"
        written["metrics"].write_text(json.dumps(_json_safe(saved_metrics), indent=2))
        written["losses"] = folder / "losses.parquet"
        losses.to_parquet(written["losses"], index=False)
        written["report"] = write_report(
            folder / "report.html", result, baseline, metrics=metrics, losses=losses, seeds=spread
        )
    files = {name: str(final / Path(path).relative_to(folder)) for name, path in written.items()}
    if as_json:
        payload = {
            "scenario": chosen.name,
            "out": str(final),
            "result_hash": result.result_hash,
            "wall_s": result.wall_s,
            "survives": survives,
            "verdict": text,
            "summary": result.summary,
            "baseline_summary": None if baseline is None else baseline.summary,
            "metrics": saved_metrics,
            "warnings": result.warnings,
            "files": files,
        }
        typer.echo(json.dumps(_json_safe(payload), allow_nan=False))
        return
    _print_run(
        chosen.name, result, baseline, metrics, final=final, report=files["report"], spread=spread
    )


def _print_run(
    name: str,
    result: RunResult,
    baseline: RunResult | None,
    metrics: StressMetrics,
    *,
    final: Path,
    report: str,
    spread: SeedSummary | None = None,
) -> None:
    from deleverage.analytics.stress import metrics_table, verdict

    survives, text = verdict(metrics)
    console = _console()
    for warning in result.warnings:
        _console(stderr=True).print(f"[yellow]warning:[/yellow] {warning}", markup=True)
    table = Table(title=f"{name}: stress metrics")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for label, value in metrics_table(metrics):
        table.add_row(label, value)
    console.print(table)
    color = "green" if survives else "yellow" if metrics.bad_debt <= 0 else "red"
    console.print(f"[{color}]{text}[/{color}]")
    if spread is not None:
        console.print(
            f"across {len(spread.seeds)} seeds: fund loss VaR {spread.level:.0%} "
            f"{spread.fund_loss_var:,.0f}, expected shortfall {spread.fund_loss_es:,.0f}; "
            f"bad debt p95 {spread.spread().loc['bad_debt', 0.95]:,.0f}"
        )
    twin = "" if baseline is None else f", baseline {baseline.wall_s:.1f} s"
    console.print(
        f"run {result.wall_s:.1f} s{twin}; result hash {result.result_hash[:16]}; "
        f"results and report in {final}/ (open {report})"
    )


def scenarios(
    as_json: Annotated[
        bool, typer.Option("--json", help="Print a JSON list of {name, description}.")
    ] = False,
) -> None:
    """List the built-in scenarios with their one-line description.

    Examples:

      deleverage scenarios

      deleverage scenarios --json
    """
    from deleverage.sim.builtin import DEFAULT_SCENARIO, builtin_descriptions
    from deleverage.world.builtin import world_builtin_descriptions

    described = {**builtin_descriptions(), **world_builtin_descriptions()}
    if as_json:
        rows = [{"name": name, "description": text} for name, text in described.items()]
        typer.echo(json.dumps(rows))
        return
    table = Table(title="Built-in scenarios (deleverage run NAME)")
    table.add_column("name", no_wrap=True)
    table.add_column("description")
    for name, text in described.items():
        shown = f"{name} (default)" if name == DEFAULT_SCENARIO else name
        table.add_row(shown, text)
    _console().print(table)


def validate(
    scenario: Annotated[str, typer.Argument(help="A scenario TOML file or a built-in name.")],
) -> None:
    """Check a scenario file and print every problem at once (exit 2 if any, else "ok").

    Each problem is one line: field, rule and the value it had.

    Examples:

      deleverage validate my-scenario.toml

      deleverage validate gbm-stress
    """
    from deleverage.sim.builtin import builtin_names, builtin_path
    from deleverage.sim.checks import scenario_problems
    from deleverage.world.builtin import world_builtin_names, world_builtin_path
    from deleverage.world.config import scenario_kind

    path = Path(scenario)
    if not path.exists() and scenario in builtin_names():
        path = builtin_path(scenario)
    if not path.exists() and scenario in world_builtin_names():
        path = world_builtin_path(scenario)
    if not path.exists() and not path.is_symlink():
        names = ", ".join(builtin_names())
        raise ConfigError(
            "scenario", scenario, f"must be an existing TOML file or a built-in scenario ({names})"
        )
    read_text(path, field="scenario", what="TOML file")  # a FIFO, binary or non-UTF-8 file
    if scenario_kind(path) == "world":
        from deleverage.cli.world import world_problems

        problems = world_problems(path)
    else:
        problems = scenario_problems(path)
    if problems:
        console = _console()
        console.print(f"[red]{len(problems)} problem(s) in {path}:[/red]")
        for problem in problems:
            console.print(f"  {problem}", markup=False, highlight=False)
        raise ConfigError("scenario", str(path), f"has {len(problems)} problem(s), listed above")
    typer.echo("ok")
