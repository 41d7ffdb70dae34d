"""Run one scenario with several seeds in parallel (``deleverage run --seeds N``): the sweep
executors run the seeds, :mod:`deleverage.analytics.uncertainty` summarises them."""

from __future__ import annotations

import os

from deleverage.analytics.uncertainty import (
    SEED_METRICS,
    SEED_SERIES,
    SeedSummary,
    summarize_seeds,
)
from deleverage.errors import ValidationError
from deleverage.sim.scenario import Scenario
from deleverage.sweep.executors import EvalSpec, LocalExecutor
from deleverage.sweep.experiment import Cell, RunTask, run_seed


def seed_list(scenario: Scenario, n: int) -> list[int]:
    """The scenario's own seed, then ``n - 1`` more: ``SeedSequence(seed, spawn_key=(1, r))``."""
    if n < 1:
        raise ValidationError("--seeds", n, "must be >= 1")
    more = [run_seed(scenario.seed, "", r, common_random_numbers=True) for r in range(1, n)]
    return [scenario.seed, *more]


def run_seeds(scenario: Scenario, n: int, *, workers: int | None = None) -> SeedSummary:
    """Run ``scenario`` with ``n`` seeds on a :class:`LocalExecutor` of ``workers`` processes
    (default: one per CPU, at most ``n``; 0: in this process) and summarise them."""
    seeds = seed_list(scenario, n)
    cell = Cell(index=0, cell_id="seeds", values={}, overrides={})
    tasks = [RunTask(cell=cell, replicate=r, seed=s) for r, s in enumerate(seeds)]
    count = (os.cpu_count() or 1) if workers is None else workers
    executor = LocalExecutor(workers=min(count, n))
    executor.start(scenario, EvalSpec(SEED_METRICS, False, series=SEED_SERIES))
    try:
        rows = sorted(executor.run(tasks), key=lambda row: row["replicate"])
    finally:
        executor.close()
    return summarize_seeds(rows)
