"""Commands ``deleverage sweep`` and ``deleverage sweep-report``.

Thin layers over :mod:`deleverage.sweep` (registered on the typer app of
:mod:`deleverage.cli.app`). Bad input (an invalid experiment, an unknown parameter path, an
unreachable Ray address) raises a :class:`~deleverage.errors.DeleverageError` before any run
starts; :func:`deleverage.cli.app.main` turns it into exit code 2 with the message. Ctrl-C stops
the sweep after writing the finished rows (exit 130); running the same command again resumes.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

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

from deleverage._files import check_output_folder

if TYPE_CHECKING:
    from deleverage.sim.scenario import Scenario
    from deleverage.sweep import Experiment
    from deleverage.world.config import WorldScenario

__all__ = ["sweep", "sweep_report_command"]


def _console() -> Console:
    console = Console()
    if not console.is_terminal:
        console = Console(width=130)
    return console


def sweep(
    experiment: Annotated[Path, typer.Argument(help="Experiment TOML file.")],
    backend: Annotated[str, typer.Option(help="local (process pool) or ray.")] = "local",
    address: Annotated[
        str | None,
        typer.Option(help="Ray cluster to join (host:port, ray://host:port, auto)."),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(help="Worker processes (local; 0 runs in this process) or Ray CPUs."),
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="Results folder (default: sweep-<experiment name>).")
    ] = None,
) -> None:
    """Run a parameter sweep / Monte Carlo experiment; rows go to Parquet as runs finish.

    Re-running the same command skips the (cell, seed) rows already in the folder.
    Example: deleverage sweep experiments/vol.toml --workers 2 --out results/vol
    """
    from deleverage.sweep import load_experiment, make_executor, run_sweep
    from deleverage.sweep.executors import SweepProgress

    console = _console()
    exp = load_experiment(experiment)
    _check_cells(exp, exp.check())
    folder = out if out is not None else Path(f"sweep-{exp.name}")
    check_output_folder(folder, field="--out")
    fresh = not folder.exists()
    executor = make_executor(backend, workers=workers, address=address)
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("cells, {task.fields[runs]} runs, {task.fields[errors]} failed"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=False) as bar:
        task_id = bar.add_task(exp.name, total=None, runs="0/0", errors=0)

        def on_progress(p: SweepProgress) -> None:
            bar.update(
                task_id,
                total=p.cells_total,
                completed=p.cells_done,
                runs=f"{p.runs_done}/{p.runs_total}",
                errors=p.errors,
            )

        try:
            summary = run_sweep(exp, folder, executor=executor, progress=on_progress)
        except KeyboardInterrupt:
            if fresh and _discard_if_empty(folder):
                console.print("[yellow]interrupted[/yellow] before any run finished")
            else:
                console.print(
                    f"[yellow]interrupted[/yellow]: finished rows are in {folder}; run the "
                    f"same command again to resume"
                )
            raise SystemExit(130) from None
        except BaseException:
            if fresh:
                _discard_if_empty(folder)
            raise
    console.print(
        f"{summary.runs_done} runs done, {summary.runs_skipped} already in {folder}, "
        f"{summary.errors} failed, {summary.wall_s:.1f} s ({executor.workers} workers, "
        f"{backend})"
    )
    if summary.runs_done and summary.errors == summary.runs_done:
        console.print("[red]error:[/red] every run failed: see the `error` column of the results")
        raise SystemExit(1)


#: Designs up to this many cells have every cell's scenario built before the first run.
CELLS_CHECKED = 5_000


def _check_cells(exp: Experiment, base: Scenario | WorldScenario) -> None:
    """Exit 2 before any run if no cell gives a valid scenario (each run would fail on its
    input); a design where only some cells are invalid runs, those cells failing alone."""
    from deleverage.errors import ConfigError, DeleverageError

    cells = exp.cells()
    if len(cells) > CELLS_CHECKED:
        return
    first: DeleverageError | None = None
    for cell in cells:
        try:
            base.with_overrides(dict(cell.overrides))
        except DeleverageError as exc:
            first = first or exc
        else:
            return
    if first is not None:
        raise ConfigError(
            "parameters",
            dict(cells[0].values),
            f"must give at least one cell a valid scenario (every cell fails; the first: {first})",
        )


def _discard_if_empty(folder: Path) -> bool:
    """Remove a folder this command created if no row reached it; return whether it did."""
    if folder.is_dir() and not any(folder.glob("part-*.parquet")):
        shutil.rmtree(folder, ignore_errors=True)
        return True
    return False


def sweep_report_command(
    results: Annotated[Path, typer.Argument(help="A results folder written by sweep.")],
    out: Annotated[
        Path | None, typer.Option(help="HTML file to write (default: RESULTS/report.html).")
    ] = None,
) -> None:
    """Write one self-contained HTML page: bad debt vs volatility per policy, ADL frequency vs
    insurance fund, a bad-debt heatmap, with 95% intervals across seeds.

    Example: deleverage sweep-report results/vol
    """
    from deleverage.sweep import sweep_report

    path = sweep_report(results, out)
    _console().print(f"report written to {path}")
