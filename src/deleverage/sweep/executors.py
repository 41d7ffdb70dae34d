"""Backends that execute a sweep's runs, and the loop that drives them (:func:`run_sweep`).

Two backends, one interface (:class:`Executor`: ``submit`` tasks, iterate results as they
finish):

- :class:`LocalExecutor`: a :class:`concurrent.futures.ProcessPoolExecutor` on this machine,
  started with the ``spawn`` method (safe with numba and threads, the same on every OS); the
  base scenario travels once per worker (the pool's initializer), not once per task.
  ``workers=0`` runs the tasks in this process, one after the other (debugging, tests).
- :class:`RayExecutor`: Ray tasks on a local Ray instance (``address=None``: ``ray.init`` with
  ``num_cpus=workers``) or on a cluster (``address="host:port"``, ``"ray://host:port"`` or
  ``"auto"``). The base scenario goes into the object store once (``ray.put``) and every task
  receives the reference. Ray is an optional extra, imported only here and only when used.

Every run is :func:`evaluate`: the base scenario with the cell's overrides and the run's seed,
run (and its ``feedback=False`` twin when asked), summarised into one row. An exception in a
run becomes that row's ``error``; the sweep goes on. ``KeyboardInterrupt`` is not caught: the
loop writes the rows it holds and stops, and the next run of the same experiment resumes.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import socket
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

from deleverage.errors import ConfigError, ValidationError
from deleverage.sim.scenario import Scenario
from deleverage.sweep.experiment import (
    DERIVED_METRICS,
    TWIN_METRICS,
    BaseScenario,
    Experiment,
    RunTask,
    derived_metrics,
    world_metrics,
)
from deleverage.sweep.results import ResultStore
from deleverage.world.config import WorldScenario

__all__ = [
    "Executor",
    "LocalExecutor",
    "RayExecutor",
    "SweepProgress",
    "SweepSummary",
    "evaluate",
    "make_executor",
    "run_sweep",
]

Row = dict[str, Any]
#: A hook called with each task just before it runs, in the worker (tests inject failures).
TaskHook = Callable[[RunTask], None]


@dataclass(frozen=True, slots=True)
class EvalSpec:
    """What a worker needs besides the task: metrics, the twin switch, an optional hook."""

    metrics: tuple[str, ...]
    feedback_twin: bool
    hook: TaskHook | None = None
    #: Per-step columns to return as ``row["series"]`` (``{column: array per step}``, the first
    #: market's; ``deleverage run --seeds`` draws its bands from them). Empty for sweeps.
    series: tuple[str, ...] = ()


def _runner(scenario: Scenario) -> Callable[..., Any]:
    """The runner of a scenario: with a ``[proactive]`` block, the one that runs its policies'
    predictor (imported only then: it loads scikit-learn)."""
    if scenario.proactive is None:
        from deleverage.sim.runner import run

        return run
    from deleverage.predict.proactive import run_scenario

    return run_scenario


def evaluate(base: BaseScenario, task: RunTask, spec: EvalSpec) -> Row:
    """Run one (cell, replicate) and return its row (parameters, metrics, error, timings).

    Any exception in building or running the scenario is recorded in ``error`` (``Type:
    message``) with NaN metrics; ``KeyboardInterrupt`` and ``SystemExit`` propagate.
    """
    started, cpu_started = time.perf_counter(), time.process_time()
    row: Row = {
        "cell": task.cell.index,
        "cell_id": task.cell.cell_id,
        "replicate": task.replicate,
        "seed": task.seed,
        **task.cell.values,
        "error": None,
    }
    try:
        if spec.hook is not None:
            spec.hook(task)
        if isinstance(base, WorldScenario):
            _evaluate_world(base, task, spec, row)
            row["run_s"] = time.perf_counter() - started
            row["cpu_s"] = time.process_time() - cpu_started
            return row
        scenario = base.with_overrides({**task.cell.overrides, "seed": task.seed})
        run = _runner(scenario)
        result = run(scenario)
        summary = dict(result.summary)
        twin = run(scenario, feedback=False).summary if spec.feedback_twin else None
        wanted_derived = any(m in DERIVED_METRICS or m in TWIN_METRICS for m in spec.metrics)
        if wanted_derived:
            summary.update(derived_metrics(summary, twin))
        for metric in spec.metrics:
            row[metric] = float(summary[metric])
        if spec.series:
            first = result.steps.groupby("step", sort=True).first()
            row["series"] = {name: first[name].to_numpy() for name in spec.series}
    except Exception as exc:
        row["error"] = f"{type(exc).__name__}: {exc}"
        for metric in spec.metrics:
            row[metric] = math.nan
    row["run_s"] = time.perf_counter() - started
    row["cpu_s"] = time.process_time() - cpu_started
    return row


def _evaluate_world(base: WorldScenario, task: RunTask, spec: EvalSpec, row: Row) -> None:
    from deleverage.world.build import run_world

    scenario = base.with_overrides({**task.cell.overrides, "seed": task.seed})
    metrics = world_metrics(run_world(scenario))
    for metric in spec.metrics:
        row[metric] = float(metrics[metric])


class Executor(Protocol):
    """Runs tasks somewhere; yields rows as they finish (in any order)."""

    workers: int

    def start(self, base: BaseScenario, spec: EvalSpec) -> None: ...

    def run(self, tasks: list[RunTask]) -> Iterator[Row]: ...

    def close(self) -> None: ...


# ---------------------------------------------------------------------------- local
_WORKER_STATE: dict[str, Any] = {}


def _init_worker(base: BaseScenario, spec: EvalSpec) -> None:
    _WORKER_STATE["base"] = base
    _WORKER_STATE["spec"] = spec


def _run_in_worker(task: RunTask) -> Row:
    return evaluate(_WORKER_STATE["base"], task, _WORKER_STATE["spec"])


class LocalExecutor:
    """A spawn-started process pool of ``workers`` processes (0: in this process)."""

    def __init__(self, workers: int | None = None) -> None:
        count = (os.cpu_count() or 1) if workers is None else workers
        if count < 0:
            raise ValidationError("--workers", workers, "must be >= 0 (0 runs in this process)")
        self.workers = count
        self._pool: ProcessPoolExecutor | None = None
        self._base: BaseScenario | None = None
        self._spec: EvalSpec | None = None

    def start(self, base: BaseScenario, spec: EvalSpec) -> None:
        self._base, self._spec = base, spec
        if self.workers > 0:
            self._pool = ProcessPoolExecutor(
                max_workers=self.workers,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_init_worker,
                initargs=(base, spec),
            )

    def run(self, tasks: list[RunTask]) -> Iterator[Row]:
        assert self._base is not None
        assert self._spec is not None
        if self._pool is None:
            for one in tasks:
                yield evaluate(self._base, one, self._spec)
            return
        pending = iter(tasks)
        in_flight: set[Future[Row]] = set()
        limit = 2 * self.workers
        while True:
            while len(in_flight) < limit:
                task = next(pending, None)
                if task is None:
                    break
                in_flight.add(self._pool.submit(_run_in_worker, task))
            if not in_flight:
                return
            done, in_flight = wait(in_flight, return_when=FIRST_COMPLETED)
            for future in done:
                yield future.result()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


# ---------------------------------------------------------------------------- ray
def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ConfigError(
            "--backend",
            "ray",
            "needs Ray, which is not installed: pip install deleverage[ray]",
        ) from None
    return ray


def check_ray_address(address: str, *, timeout_s: float = 3.0) -> None:
    """Fail fast when ``address`` (``host:port`` or ``ray://host:port``) does not answer.

    ``"auto"`` and ``"local"`` are left to Ray.

    Raises
    ------
    ValidationError
        If the address is malformed or nothing listens there.
    """
    if address in ("auto", "local"):
        return
    bare = address.removeprefix("ray://")
    host, sep, port_text = bare.rpartition(":")
    if not sep or not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValidationError("--address", address, "must be host:port, ray://host:port or auto")
    try:
        with socket.create_connection((host.strip("[]"), int(port_text)), timeout=timeout_s):
            pass
    except OSError as exc:
        raise ValidationError(
            "--address", address, f"must be a reachable Ray cluster ({exc.strerror or exc})"
        ) from None


class RayExecutor:
    """Ray tasks: a local instance with ``workers`` CPUs, or the cluster at ``address``."""

    def __init__(self, workers: int | None = None, *, address: str | None = None) -> None:
        if workers is not None and workers < 1:
            raise ValidationError("--workers", workers, "must be >= 1 with the ray backend")
        self.ray = _import_ray()
        if address is not None:
            check_ray_address(address)
        self.address = address
        self.workers = workers or (os.cpu_count() or 1)
        self._started_here = False
        self._base_ref: Any = None
        self._spec_ref: Any = None
        self._remote: Any = None

    def start(self, base: BaseScenario, spec: EvalSpec) -> None:
        ray = self.ray
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {
                "include_dashboard": False,
                "log_to_driver": False,
                "configure_logging": False,
            }
            if self.address is None:
                kwargs["num_cpus"] = self.workers
            else:
                kwargs["address"] = self.address
            try:
                ray.init(**kwargs)
            except (ConnectionError, RuntimeError, TimeoutError) as exc:
                raise ValidationError(
                    "--address", self.address, f"must be a reachable Ray cluster ({exc})"
                ) from None
            self._started_here = True
        if self.address is not None:
            self.workers = max(1, int(ray.cluster_resources().get("CPU", 1)))
        self._base_ref = ray.put(base)
        self._spec_ref = ray.put(spec)
        self._remote = ray.remote(num_cpus=1, max_retries=0)(evaluate)

    def run(self, tasks: list[RunTask]) -> Iterator[Row]:
        ray = self.ray
        pending = iter(tasks)
        in_flight: list[Any] = []
        limit = 2 * self.workers
        while True:
            while len(in_flight) < limit:
                task = next(pending, None)
                if task is None:
                    break
                in_flight.append(self._remote.remote(self._base_ref, task, self._spec_ref))
            if not in_flight:
                return
            done, in_flight = ray.wait(in_flight, num_returns=1)
            for ref in done:
                yield ray.get(ref)

    def close(self) -> None:
        if self._started_here and self.ray.is_initialized():
            self.ray.shutdown()
        self._started_here = False


def make_executor(
    backend: Literal["local", "ray"] | str,
    *,
    workers: int | None = None,
    address: str | None = None,
) -> Executor:
    """The executor for ``backend`` (``"local"`` or ``"ray"``).

    Raises
    ------
    ValidationError
        For an unknown backend, a bad worker count, an address with the local backend, or an
        unreachable Ray address; :class:`ConfigError` when Ray is not installed.
    """
    if backend == "local":
        if address is not None:
            raise ValidationError("--address", address, "goes with --backend ray only")
        return LocalExecutor(workers)
    if backend == "ray":
        return RayExecutor(workers, address=address)
    raise ValidationError("--backend", backend, "must be 'local' or 'ray'")


# ---------------------------------------------------------------------------- the loop
@dataclass(frozen=True, slots=True)
class SweepProgress:
    """Where a sweep stands: cells and runs finished (resumed ones included), of the total."""

    cells_done: int
    cells_total: int
    runs_done: int
    runs_total: int
    errors: int


@dataclass(frozen=True, slots=True)
class SweepSummary:
    """What :func:`run_sweep` did."""

    folder: Path
    runs_total: int
    runs_skipped: int
    runs_done: int
    errors: int
    wall_s: float
    parts_written: int


def run_sweep(
    experiment: Experiment,
    out: str | Path,
    *,
    executor: Executor | None = None,
    progress: Callable[[SweepProgress], None] | None = None,
    flush_rows: int = 32,
    flush_s: float = 5.0,
    hook: TaskHook | None = None,
) -> SweepSummary:
    """Run every (cell, replicate) of ``experiment`` not yet in ``out``; write rows as they
    finish.

    Rows are written as Parquet part files every ``flush_rows`` rows or ``flush_s`` seconds,
    and on the way out (also on ``KeyboardInterrupt``, which is then re-raised). ``hook`` is
    called in the worker before each task (tests use it to fail a cell).

    Raises
    ------
    ConfigError
        If the experiment is invalid against its base scenario (checked before any run), or
        ``out`` holds another experiment's results.
    """
    started = time.perf_counter()
    base = experiment.check()
    store = ResultStore(out, experiment)
    tasks = experiment.tasks()
    done = store.done_keys()
    todo = [t for t in tasks if t.key not in done]
    per_cell_total: dict[str, int] = {}
    per_cell_done: dict[str, int] = {}
    for task in tasks:
        cid = task.cell.cell_id
        per_cell_total[cid] = per_cell_total.get(cid, 0) + 1
        if task.key in done:
            per_cell_done[cid] = per_cell_done.get(cid, 0) + 1
    cells_done = sum(per_cell_done.get(c, 0) == n for c, n in per_cell_total.items())
    runs_done = len(tasks) - len(todo)
    errors = 0
    parts = 0
    buffer: list[Row] = []
    last_flush = time.monotonic()

    def report() -> None:
        if progress is not None:
            progress(SweepProgress(cells_done, len(per_cell_total), runs_done, len(tasks), errors))

    def flush() -> None:
        nonlocal parts, last_flush
        if buffer:
            store.append(buffer)
            buffer.clear()
            parts += 1
        last_flush = time.monotonic()

    executor = executor if executor is not None else LocalExecutor()
    spec = EvalSpec(experiment.metrics, experiment.feedback_twin, hook)
    report()
    try:
        if todo:
            executor.start(base, spec)
            for row in executor.run(todo):
                buffer.append(row)
                runs_done += 1
                errors += row["error"] is not None
                cid = row["cell_id"]
                per_cell_done[cid] = per_cell_done.get(cid, 0) + 1
                if per_cell_done[cid] == per_cell_total[cid]:
                    cells_done += 1
                if len(buffer) >= flush_rows or time.monotonic() - last_flush >= flush_s:
                    flush()
                report()
    finally:
        flush()
        executor.close()
    return SweepSummary(
        folder=Path(out),
        runs_total=len(tasks),
        runs_skipped=len(tasks) - len(todo),
        runs_done=len(todo),
        errors=errors,
        wall_s=time.perf_counter() - started,
        parts_written=parts,
    )
