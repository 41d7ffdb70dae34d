"""Where the cascade day's CPU goes: stretches, marks stepped one by one, rounds, liquidations.

Runs ``benchmarks/cascade_day.py``'s isolated day (10^6 positions, 86,400 marks; ``--quick``:
10^5 positions, two hours) once with process-CPU timers around the runner's and the engine's
parts (wrapped methods: the run's results, hash included, are those of an unwrapped run; the
timers add a few microseconds a call). Prints:

- the quiet stretches' tries (``QuietStretches.advance``): bands, the compiled walk, applying;
- the marks stepped one by one (``Simulation._step_market``): the runner's own cost per mark
  and its risk steps (``set_mark``: the first mark and every cascade round's re-mark);
- each risk step split into margin calls (the indexed isolated scan and the called sets), the
  batch liquidation path and the rest, and a least-squares fit of each part's CPU per step
  against the step's liquidations and warned positions (a fixed cost per round, a cost per
  liquidation, a cost per position in the warning zone).

Run: ``.venv/bin/python benchmarks/cascade_split.py``. The last line is a JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from cascade_day import isolated_scenario
from deleverage.engine.exchange import Exchange
from deleverage.engine.level_index import LevelIndex
from deleverage.engine.risk import batch_round
from deleverage.engine.risk.batch import BatchStage
from deleverage.engine.risk.step import RiskEngine
from deleverage.sim import quiet as sim_quiet
from deleverage.sim.quiet import QuietStretches
from deleverage.sim.runner import Simulation

clock = time.process_time
seconds: defaultdict[str, float] = defaultdict(float)
calls: Counter[str] = Counter()
steps: list[tuple[float, float, float, int, int]] = []  # total, calls, batch, liquidations, warn
current: dict[str, float] = {}


def timed(owner: Any, name: str, key: str) -> None:
    """Replace ``owner.name`` by a wrapper adding its CPU seconds to ``seconds[key]``."""
    original: Callable[..., Any] = getattr(owner, name)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = clock()
        try:
            return original(*args, **kwargs)
        finally:
            spent = clock() - started
            seconds[key] += spent
            calls[key] += 1
            if key in current:
                current[key] += spent

    setattr(owner, name, wrapper)


def per_step(owner: Any, name: str) -> None:
    """Record each risk step's CPU, its margin calls' and batch path's, and its liquidations."""
    original: Callable[..., Any] = getattr(owner, name)

    def wrapper(self: Any, m: int, ts: int) -> Any:
        current.clear()
        current.update({"margin calls": 0.0, "batch path": 0.0, "warn": 0.0})
        started = clock()
        report = original(self, m, ts)
        total = clock() - started
        steps.append(
            (total, current["margin calls"], current["batch path"], report.liquidations,
             int(current["warn"]))
        )  # fmt: skip
        return report

    setattr(owner, name, wrapper)


def count_warned() -> None:
    original = LevelIndex.scan

    def wrapper(self: LevelIndex, *args: Any, **kwargs: Any) -> Any:
        out = original(self, *args, **kwargs)
        if "warn" in current:
            current["warn"] = float(len(out[3]))
        return out

    LevelIndex.scan = wrapper  # type: ignore[method-assign]


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10^5 positions, a 2-hour day")
    args = parser.parse_args()
    n, day = (100_000, 7_200.0) if args.quick else (1_000_000, 86_400.0)
    count_warned()
    timed(RiskEngine, "_margin_calls", "margin calls")
    timed(batch_round, "run_round", "batch path")  # the one-call round, either caller
    timed(BatchStage, "_batch_separate", "batch path")  # the rounds it does not settle
    per_step(RiskEngine, "_on_mark")
    timed(QuietStretches, "advance", "stretch tries")
    timed(sim_quiet, "quiet_bands", "  bands (quiet_bands)")
    timed(sim_quiet, "quiet_path_nb", "  compiled walk (quiet_path_nb)")
    timed(QuietStretches, "_apply", "  applying (journal, reports, books)")
    timed(Simulation, "_step_market", "marks stepped one by one")
    timed(Exchange, "set_mark", "  their risk steps (set_mark)")
    sim = Simulation(isolated_scenario(n, day, 0.05))
    started = clock()
    result = sim.run()
    run_cpu = clock() - started
    print(
        f"run {run_cpu:.2f} s CPU; {int(result.summary['liquidations']):,} liquidations, "
        f"{int(result.summary['cascade_rounds']):,} cascade rounds, hash {result.result_hash[:16]}"
    )
    for key in ("stretch tries", "  bands (quiet_bands)", "  compiled walk (quiet_path_nb)",
                "  applying (journal, reports, books)", "marks stepped one by one",
                "  their risk steps (set_mark)"):  # fmt: skip
        each = 1e6 * seconds[key] / max(calls[key], 1)
        print(f"{key:<40} {seconds[key]:6.2f} s {calls[key]:7,} calls {each:8.1f} us each")
    marks = calls["marks stepped one by one"]
    runner = seconds["marks stepped one by one"] - seconds["  their risk steps (set_mark)"]
    rest = run_cpu - seconds["marks stepped one by one"] - seconds["stretch tries"]
    print(f"the runner's own cost per mark stepped {1e6 * runner / max(marks, 1):.1f} us; "
          f"the rest of run() {rest:.2f} s")  # fmt: skip
    a = np.array(steps, dtype=np.float64)
    total, margin, batch = a[:, 0].sum(), a[:, 1].sum(), a[:, 2].sum()
    print(f"risk steps {len(a):,}: {total:.2f} s; margin calls {margin:.2f} s, batch path "
          f"{batch:.2f} s, the rest {total - margin - batch:.2f} s")  # fmt: skip
    design = np.column_stack([np.ones(len(a)), a[:, 3], a[:, 4]])
    fits = {}
    for name, column in (("risk step", 0), ("margin calls", 1), ("batch path", 2)):
        fixed, per_liq, per_warn = np.linalg.lstsq(design, a[:, column], rcond=None)[0]
        fits[name] = (1e6 * fixed, 1e6 * per_liq, 1e6 * per_warn)
        print(f"  {name:<13} ~ {1e6 * fixed:6.1f} us + {1e6 * per_liq:5.2f} us per liquidation "
              f"+ {1e6 * per_warn:6.3f} us per warned position")  # fmt: skip
    print(
        f"mean liquidations per liquidating step {a[a[:, 3] > 0, 3].mean():.1f}, mean warned "
        f"positions per scan {a[:, 4].mean():,.0f}"
    )
    print(
        json.dumps(
            {
                "run_cpu_seconds": round(run_cpu, 2),
                "stretch_seconds": round(seconds["stretch tries"], 3),
                "stepped_marks": marks,
                "runner_us_per_mark": round(1e6 * runner / max(marks, 1), 1),
                "risk_steps": len(a),
                "risk_step_seconds": round(total, 3),
                "margin_call_seconds": round(margin, 3),
                "batch_seconds": round(batch, 3),
                "round_fixed_us": round(fits["risk step"][0], 1),
                "per_liquidation_us": round(fits["risk step"][1], 2),
                "per_warned_us": round(fits["risk step"][2], 4),
                "result_hash": result.result_hash,
            }
        )
    )


if __name__ == "__main__":
    main()
