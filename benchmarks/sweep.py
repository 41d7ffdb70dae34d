"""Benchmark: a 200-run sweep on 1 and 2 workers, local process pool and Ray.

The experiment: the built-in ``adl-exhaustion`` scenario cut to 5,000 positions and 1,800
one-second steps (a 900 s crash ramp; about 1 s a run on this machine type), a grid of 10 crash
sizes x 5 insurance fund sizes, 4 seeds per cell: 200 runs. Each backend runs it on 1 worker and
on 2, into a fresh results folder each time.

Figures:

- runs per second of each (backend, workers) and the speed-up of 2 workers over 1 (target:
  >= 1.7x on 2 cores);
- the share of worker time the runs actually had a CPU (``sum cpu_s / (wall x workers)``): on a
  machine shared with other work, a low share (and a 1-minute load average above the worker
  count) explains a speed-up below the target;
- the per-task overhead fraction ``(wall x workers - sum of run times) / runs / mean run time``:
  the time a worker slot spent on anything but running scenarios (transport, scheduling,
  writing results, the pool's start), per run, relative to a run. Ray is started before the
  clock (``ray.init`` is not a per-task cost); target: < 10% for 1 s runs.

Run: ``.venv/bin/python benchmarks/sweep.py`` (several minutes; ``--quick`` for a 16-run smoke run
of 0.1 s runs). The last line printed is a JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from _machine import machine_description
from deleverage.sweep import Experiment, LocalExecutor, RayExecutor, read_results, run_sweep


def experiment(*, quick: bool) -> Experiment:
    positions, steps = (1_000, 300) if quick else (5_000, 1_800)
    drops = [0.1, 0.3] if quick else [round(0.03 * (i + 1), 2) for i in range(10)]
    funds = [1e3, 1e5] if quick else [1e2, 1e3, 1e4, 1e5, 1e6]
    data: dict[str, Any] = {
        "name": "bench-sweep",
        "seed": 2026,
        "base": "adl-exhaustion",
        "overrides": {
            "markets.0.population.n_positions": positions,
            "duration_s": steps,
            "markets.0.price.start_s": 30.0,
            "markets.0.price.duration_s": steps / 2,
        },
        "seeds_per_cell": 4,
        "metrics": ["bad_debt", "adl_rounds", "liquidated_notional", "insurance_fund_min"],
        "parameters": {
            "drop": {"path": "markets.0.price.drop_fraction", "values": drops},
            "fund": {"path": "insurance.fund", "values": funds},
        },
    }
    return Experiment.from_mapping(data)


def measure(exp: Experiment, backend: str, workers: int, root: Path) -> dict[str, float]:
    out = root / f"{backend}-{workers}"
    load_before = os.getloadavg()[0]
    executor: LocalExecutor | RayExecutor
    if backend == "ray":
        import ray

        ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)
        executor = RayExecutor(workers)
    else:
        executor = LocalExecutor(workers)
    try:
        started = time.perf_counter()
        summary = run_sweep(exp, out, executor=executor)
        wall = time.perf_counter() - started
    finally:
        if backend == "ray":
            ray.shutdown()
    frame = read_results(out)
    runs = len(frame)
    busy = float(frame["run_s"].sum())
    mean_run = busy / runs
    overhead = (wall * workers - busy) / runs / mean_run
    cpu = float(frame["cpu_s"].sum())
    return {
        "runs": float(runs),
        "errors": float(summary.errors),
        "wall_s": wall,
        "runs_per_s": runs / wall,
        "mean_run_s": mean_run,
        "overhead_fraction": overhead,
        "mean_cpu_s": cpu / runs,
        "cpu_share": cpu / (wall * workers),
        "load_before": load_before,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="16 short runs, a smoke test")
    args = parser.parse_args()
    exp = experiment(quick=args.quick)
    print(f"machine: {machine_description()}")
    print(f"experiment: {len(exp.tasks())} runs ({len(exp.cells())} cells x "
          f"{exp.seeds_per_cell} seeds)")  # fmt: skip
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for backend in ("local", "ray"):
            for workers in (1, 2):
                r = measure(exp, backend, workers, Path(tmp))
                results[f"{backend}_{workers}"] = r
                print(
                    f"{backend:5s} {workers} worker(s): {r['runs']:.0f} runs in {r['wall_s']:.1f} s"
                    f" = {r['runs_per_s']:.2f} runs/s, mean run {r['mean_run_s']:.3f} s, "
                    f"overhead {r['overhead_fraction']:.1%} of a run per task, "
                    f"{r['errors']:.0f} failed; runs got a CPU {r['cpu_share']:.0%} of the "
                    f"time (1-min load average before: {r['load_before']:.2f})"
                )
    speedup = results["local_2"]["runs_per_s"] / results["local_1"]["runs_per_s"]
    ray_speedup = results["ray_2"]["runs_per_s"] / results["ray_1"]["runs_per_s"]
    print(f"speed-up of 2 workers over 1: local {speedup:.2f}x, ray {ray_speedup:.2f}x")
    figures = {
        "benchmark": "sweep",
        "quick": args.quick,
        "machine": machine_description(),
        "runs": int(results["local_1"]["runs"]),
        "mean_run_s": round(results["local_1"]["mean_run_s"], 4),
        **{f"{k}_runs_per_s": round(v["runs_per_s"], 4) for k, v in results.items()},
        "speedup_2_workers": round(speedup, 3),
        "ray_speedup_2_workers": round(ray_speedup, 3),
        "local_overhead_fraction": round(results["local_1"]["overhead_fraction"], 4),
        "ray_overhead_fraction": round(results["ray_1"]["overhead_fraction"], 4),
        **{f"{k}_cpu_share": round(v["cpu_share"], 3) for k, v in results.items()},
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
