"""Exactness check for speed work: the benchmark days' results, compared with the recorded ones.

A change meant only to be faster must leave every result bit for bit as it was. This script
runs the benchmark scenarios (``cascade_day.py``'s isolated and cross days, ``world_day.py``'s
world day) and prints, for each, the liquidations, the cascade rounds, the result hash and each
journal's row count and hash; it then compares them with ``fingerprints.json`` (recorded on
main) and says which differ. It times nothing.

Run: ``.venv/bin/python benchmarks/fingerprints.py [isolated|cross|world|world-quick|all]``
(default ``all``; ``world-quick`` is the 10^5-position, 2-hour world day). ``--record``
rewrites the recorded figures of the days run (only after a change meant to move results,
with the reason in HISTORY.md). The last line printed is one JSON object.

The recorded figures come from the AMD EPYC machine type. The results are meant to be
independent of the CPU (``tests/architecture/test_cpu_independent_*``); a difference on
another CPU is a finding to look into, not noise.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).parent))
from cascade_day import cross_scenario, isolated_scenario
from deleverage.engine.events import Journal
from deleverage.sim.runner import Simulation
from deleverage.sim.warmup import warm_up
from deleverage.world.build import build_world
from deleverage.world.warmup import warm_up_world
from world_day import world_scenario

RECORDED = Path(__file__).with_name("fingerprints.json")
DAYS = ("isolated", "cross", "world", "world-quick")


def table_hash(table: pa.Table) -> str:
    """SHA-256 (first 16 hex digits) over an Arrow table's columns, in order."""
    h = hashlib.sha256()
    for name, column in zip(table.column_names, table.columns, strict=True):
        h.update(name.encode())
        h.update(pd.util.hash_array(column.to_numpy(zero_copy_only=False)).tobytes())
    return h.hexdigest()[:16]


def journal_figures(journal: Journal) -> dict[str, Any]:
    return {"rows": len(journal), "hash": table_hash(journal.to_arrow())}


def engine_day(name: str) -> dict[str, Any]:
    scenario = (
        isolated_scenario(1_000_000, 86_400.0, 0.05)
        if name == "isolated"
        else cross_scenario(100_000, 86_400.0)
    )
    sim = Simulation(scenario)
    result = sim.run()
    return {
        "liquidations": int(result.summary["liquidations"]),
        "cascade_rounds": int(result.summary["cascade_rounds"]),
        "result_hash": result.result_hash[:16],
        "journal": journal_figures(result.journal),
    }


def world_day(quick: bool) -> dict[str, Any]:
    n, duration = (100_000, 7_200.0) if quick else (1_000_000, 86_400.0)
    world = build_world(world_scenario(n, duration))
    result = world.run()
    summary = result.venue_summary()
    return {
        "liquidations": {str(v): int(x) for v, x in summary["liquidations"].items()},
        "rounds": int(world.round_index),
        "quiet_steps": int(world.quiet.skipped),
        "quiet_stretches": int(world.quiet.stretches),
        "result_hash": result.result_hash[:16],
        "venue_summary": table_hash(pa.Table.from_pandas(summary, preserve_index=True)),
        "journals": {name: journal_figures(v.journal()) for name, v in world.venues.items()},
    }


def differences(got: Any, want: Any, path: str = "") -> list[str]:
    """Every leaf where ``got`` and ``want`` differ, as ``path: got != want``."""
    if isinstance(want, dict) and isinstance(got, dict):
        out = []
        for key in sorted(set(want) | set(got)):
            out += differences(got.get(key), want.get(key), f"{path}.{key}" if path else key)
        return out
    return [] if got == want else [f"{path}: {got!r} != recorded {want!r}"]


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("days", nargs="*", default=["all"], choices=[*DAYS, "all"])
    parser.add_argument("--record", action="store_true", help="rewrite the recorded figures")
    args = parser.parse_args()
    days = list(DAYS) if "all" in args.days else args.days
    recorded: dict[str, Any] = json.loads(RECORDED.read_text()) if RECORDED.exists() else {}
    warm_up()
    if any(d.startswith("world") for d in days):
        warm_up_world()
    got: dict[str, Any] = {}
    for day in days:
        started = time.perf_counter()
        got[day] = engine_day(day) if day in ("isolated", "cross") else world_day(day != "world")
        diff = differences(got[day], recorded.get(day, {}))
        verdict = "equal to the recorded figures" if not diff else f"{len(diff)} differences"
        print(f"{day}: {time.perf_counter() - started:.1f} s, {verdict}")
        print(json.dumps(got[day], indent=2))
        for line in diff:
            print(f"  DIFFERS {line}")
    if args.record:
        RECORDED.write_text(json.dumps({**recorded, **got}, indent=2) + "\n")
        print(f"recorded {', '.join(days)} in {RECORDED.name}")
    equal = {day: not differences(got[day], recorded.get(day, {})) for day in days}
    print(json.dumps({"equal": equal, "all_equal": all(equal.values())}))


if __name__ == "__main__":
    main()
