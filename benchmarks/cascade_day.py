"""Benchmark: one day of one-second marks at 10^6 isolated positions, with a crash and feedback.

The runner (``deleverage.sim.runner``) steps the one engine through 86,400 marks of a Binance
BTCUSDT market holding 1,000,000 isolated positions (seeded population, median leverage 12);
the exogenous price moves all day with 30% annual volatility (every mark differs) and at 10:00
falls 5% over 30 minutes, the liquidations push the mark through a
constant-depth book (feedback on) and cascade. Reported: the end-to-end seconds (population,
loading and the run), the share of positions liquidated (at least 10%), peak resident memory.

The baseline is the straightforward simulator of the same day: every step a full NumPy scan of
every position (equity, tiered maintenance, below-maintenance mask), liquidations at the mark,
the same impact model and cascade rounds. It runs 200 quiet steps and the whole crash (the rest
of the day would take minutes); its day is estimated as the crash's seconds plus the quiet
seconds per step times the quiet steps, and ``baseline_ratio`` is that estimate over the
engine's run (the ratio of seconds per step over the day).

The bare kernel is the floor: one compiled loop over the same day (numba, the population's
longs only, their liquidation prices computed and sorted once, full liquidation, the same
linear impact with resilience; no fees, fund, ADL, journal or per-step frame), timed with its
setup (prices and sort). ``kernel_ratio`` is the engine's run over the bare kernel's (target
<= 5). Both sides are timed warm: the bare kernel is called once before its timing, and the
process first runs the install's warm-up (:func:`deleverage.sim.warmup.warm_up`), which calls
every kernel the isolated and the cross day call (``warm_up_seconds``, not in any figure), so no
day's figure includes loading machine code from numba's cache (the cold start is measured on its
own, below).

Cold start: the same small run (10^4 positions, ten minutes) in two fresh processes sharing
an empty numba cache directory: the first compiles every kernel and writes the cache
(``cold_seconds``), the second loads it (``warm_seconds``).

A second run holds 100,000 cross-margin accounts with positions in three correlated markets
(BTC, ETH, SOL-like; all on Binance BTCUSDT tiers) through the same day with a 7% crash:
``cross_seconds``.

Run: ``.venv/bin/python benchmarks/cascade_day.py`` (``--quick``: 10^5 positions, a 2-hour day).
The last line printed is a JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from numba import njit

sys.path.insert(0, str(Path(__file__).parent))
from _machine import machine_description
from deleverage.sim.runner import Simulation
from deleverage.sim.scenario import Scenario
from deleverage.sim.warmup import warm_up

CRASH_START_S = 36_000.0
CRASH_LENGTH_S = 1_800.0


def isolated_scenario(n: int, duration_s: float, drop: float) -> Scenario:
    return Scenario.from_mapping(
        {
            "name": "cascade-day",
            "seed": 1,
            "duration_s": duration_s,
            "markets": [
                {
                    "symbol": "BTCUSDT",
                    "preset": "binance",
                    "price": {
                        "process": "shock",
                        "s0": 60_000.0,
                        "drop_fraction": drop,
                        "start_s": min(CRASH_START_S, duration_s * 0.4),
                        "duration_s": CRASH_LENGTH_S,
                        "sigma": 0.3,
                    },
                    "liquidity": {"depth_per_pct": n * 0.0005, "half_life_s": 300.0},
                    "population": {
                        "n_positions": n,
                        "isolated_fraction": 1.0,
                        "long_fraction": 0.6,
                        "leverage_median": 12.0,
                        "size_min": 0.002,
                    },
                }
            ],
            "insurance": {"fund": n * 20.0},
        }
    )


def cross_scenario(n: int, duration_s: float) -> Scenario:
    def market(symbol: str, s0: float, size_min: float, depth: float) -> dict[str, object]:
        return {
            "symbol": symbol,
            "preset": "binance",
            "preset_symbol": "BTCUSDT",
            "price": {
                "process": "shock",
                "s0": s0,
                "drop_fraction": 0.07,
                "start_s": min(CRASH_START_S, duration_s * 0.4),
                "duration_s": CRASH_LENGTH_S,
                "sigma": 0.3,
            },
            "liquidity": {"depth_per_pct": depth, "half_life_s": 300.0},
            "population": {
                "n_positions": n,
                "isolated_fraction": 0.0,
                "long_fraction": 0.7,
                "leverage_median": 12.0,
                "size_min": size_min,
            },
        }

    return Scenario.from_mapping(
        {
            "name": "cascade-day-cross",
            "seed": 2,
            "duration_s": duration_s,
            "multi_market_accounts": True,
            "markets": [
                market("BTCUSDT", 60_000.0, 0.002, n * 0.001),
                market("ETHUSDT", 3_000.0, 0.04, n * 0.02),
                market("SOLUSDT", 150.0, 0.8, n * 0.4),
            ],
            "insurance": {"fund": n * 50.0},
        }
    )


def baseline(sim: Simulation, steps: range) -> tuple[float, int]:
    """The full-scan simulator over ``steps`` (continuing from where the last call stopped):
    seconds and liquidations.

    Same population (the engine's columns before the run), same exogenous path, same impact
    model (``x / D`` per unit sold, half-life decay) and cascade rounds; no fees, fund or ADL.
    """
    ex = sim.ex
    n = ex.n_accounts
    cols = ex.columns(0)
    trader = (ex._kind[:n] == 0) & (cols.mode[:n] != 0)
    # The positions live in the engine's own columns: this loop closes them there directly.
    size = cols.size[:n]
    size[~trader] = 0.0
    entry = cols.entry[:n]
    margin = cols.isolated_margin[:n]
    tiers = ex.market(0).tiers
    book = sim.books[0]
    assert book is not None
    depth = 100.0 * book.depth_per_pct
    decay = 0.5 ** (sim.scenario.dt_s / book.half_life_s)
    path = sim.paths[:, 0]
    impact = getattr(sim, "baseline_impact", 0.0)
    liquidated = 0
    started = time.perf_counter()
    for k in steps:
        impact *= decay
        for _ in range(sim.scenario.max_cascade_rounds):
            mark = path[k] * (1.0 + impact)
            notional = np.abs(size) * mark
            t = np.searchsorted(tiers.floor, notional, side="right") - 1
            maintenance = notional * tiers.mmr[t] - tiers.cum[t]
            equity = margin + size * (mark - entry)
            below = (size != 0.0) & (equity < maintenance)
            if not below.any():
                break
            liquidated += int(below.sum())
            sold = float(size[below].sum())
            size[below] = 0.0
            impact -= sold / depth
    sim.baseline_impact = impact  # type: ignore[attr-defined]
    return time.perf_counter() - started, liquidated


@njit(cache=True)
def bare_day_nb(
    path: np.ndarray, liq: np.ndarray, size: np.ndarray, depth: float, decay: float,
    max_rounds: int,
) -> tuple[int, float]:  # fmt: skip
    """The bare sorted-levels day: longs' liquidation prices descending, full liquidation at
    the mark, impact ``-sold / depth`` decaying by ``decay`` a step. Returns the liquidations
    and the lowest mark."""
    head = 0
    impact = 0.0
    low = np.inf
    n = len(liq)
    for k in range(len(path)):
        impact *= decay
        for _ in range(max_rounds):
            mark = path[k] * (1.0 + impact)
            sold = 0.0
            while head < n and liq[head] >= mark:
                sold += size[head]
                head += 1
            if sold == 0.0:
                break
            impact -= sold / depth
        low = min(low, path[k] * (1.0 + impact))
    return head, low


def bare_kernel(sim: Simulation) -> tuple[float, float, int]:
    """Seconds of :func:`bare_day_nb` over ``sim``'s day with its setup (liquidation prices
    and their sort) and of the loop alone, and the liquidations (warm: compiled first on a
    two-step path)."""
    from deleverage.engine.levels import zone_prices_compiled

    bare_day_nb(np.ones(2), np.zeros(1), np.ones(1), 1.0, 0.5, 2)  # compile (or load)
    started = time.perf_counter()
    ex = sim.ex
    n = ex.n_accounts
    cols = ex.columns(0)
    long = (ex._kind[:n] == 0) & (cols.mode[:n] != 0) & (cols.size[:n] > 0)
    liq = zone_prices_compiled(
        cols.size[:n][long], cols.entry[:n][long], cols.isolated_margin[:n][long], 1.0,
        ex.market(0).tiers,
    )  # fmt: skip
    order = np.argsort(-liq, kind="stable")
    liq, size = np.ascontiguousarray(liq[order]), np.ascontiguousarray(cols.size[:n][long][order])
    book = sim.books[0]
    assert book is not None
    depth = 100.0 * book.depth_per_pct
    decay = 0.5 ** (sim.scenario.dt_s / book.half_life_s)
    path = np.ascontiguousarray(sim.paths[:, 0])
    rounds = sim.scenario.max_cascade_rounds
    loop_started = time.perf_counter()
    liquidated, _ = bare_day_nb(path, liq, size, depth, decay, rounds)
    done = time.perf_counter()
    return done - started, done - loop_started, int(liquidated)


COLD_SCRIPT = """
import sys, time
started = time.perf_counter()
sys.path.insert(0, {bench!r})
from cascade_day import isolated_scenario
from deleverage.sim.runner import Simulation
Simulation(isolated_scenario(10_000, 600.0, 0.05)).run()
print(time.perf_counter() - started)
"""


def cold_and_warm() -> tuple[float, float]:
    """Seconds of the same small run (imports included) in two fresh processes sharing an empty
    numba cache directory: the first compiles and writes the cache, the second reads it."""
    script = COLD_SCRIPT.format(bench=str(Path(__file__).parent))
    out = []
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "NUMBA_CACHE_DIR": cache}
        for _ in range(2):
            done = subprocess.run(
                [sys.executable, "-c", script], env=env, capture_output=True, text=True,
                check=True,
            )  # fmt: skip
            out.append(float(done.stdout.strip().splitlines()[-1]))
    return out[0], out[1]


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10^5 positions, a 2-hour day")
    args = parser.parse_args()
    n, day, n_cross = (100_000, 7_200.0, 10_000) if args.quick else (1_000_000, 86_400.0, 100_000)
    print(f"machine: {machine_description()}")
    warm_up_s = warm_up()

    started = time.perf_counter()
    sim = Simulation(isolated_scenario(n, day, 0.05))
    setup_s = time.perf_counter() - started
    crash_step = int(min(CRASH_START_S, day * 0.4))
    run_started = time.perf_counter()
    result = sim.run()
    run_s = time.perf_counter() - run_started
    seconds = setup_s + run_s
    rss = peak_rss_mb()
    liquidated_share = result.summary["liquidations"] / n
    conserved = sim.ex.conservation().holds
    skipped = sim.quiet.skipped if sim.quiet is not None else 0
    del sim

    bare_sim = Simulation(isolated_scenario(n, day, 0.05))  # same seed: the same book
    bare_s, bare_loop_s, bare_liq = bare_kernel(bare_sim)
    del bare_sim
    kernel_ratio = run_s / bare_s

    base_sim = Simulation(isolated_scenario(n, day, 0.05))  # same seed: the same book
    quiet = range(crash_step - 200, crash_step)
    crash = range(crash_step, crash_step + int(CRASH_LENGTH_S))
    quiet_s, _ = baseline(base_sim, quiet)
    crash_s, base_liq = baseline(base_sim, crash)
    del base_sim
    n_steps = len(result.steps)
    base_day_s = crash_s + quiet_s / len(quiet) * (n_steps - len(crash))
    ratio = base_day_s / run_s

    cross_started = time.perf_counter()
    cross = Simulation(cross_scenario(n_cross, day))
    cross_result = cross.run()
    cross_s = time.perf_counter() - cross_started
    cold_s, warm_s = cold_and_warm()

    s = result.summary
    print(f"in-process warm-up (every kernel of both days loaded first): {warm_up_s:.2f} s")
    print(f"isolated: {n:,} positions, {len(result.steps) - 1:,} one-second marks, feedback on")
    print(f"  setup (population, load) {setup_s:.2f} s, run {run_s:.2f} s, total {seconds:.2f} s")
    print(
        f"  liquidated {int(s['liquidations']):,} ({liquidated_share:.1%}), cascade rounds "
        f"{int(s['cascade_rounds']):,}, mark drawdown {s['max_drawdown_mark']:.2%} vs exogenous "
        f"{s['max_drawdown_exogenous']:.2%}; money conserved: {conserved}"
    )
    print(f"  peak resident memory {rss:,.0f} MB")
    print(
        f"  quiet stretches: {skipped:,} of {len(result.steps) - 1:,} steps applied in bulk; "
        f"bare compiled kernel of the same day {bare_s:.3f} s with its sort (the loop "
        f"{bare_loop_s:.4f} s; {bare_liq:,} long liquidations): kernel_ratio {kernel_ratio:.1f}"
    )
    print(
        f"baseline (full NumPy scan per step): {quiet_s / len(quiet) * 1e3:.2f} ms per quiet "
        f"step, {crash_s:.1f} s for the {len(crash)} crash steps ({base_liq:,} liquidations); "
        f"its day ~{base_day_s:,.0f} s vs the engine's {run_s:.2f} s: {ratio:,.0f}x"
    )
    cs = cross_result.summary
    print(
        f"cross: {n_cross:,} accounts x 3 markets over the day: {cross_s:.2f} s "
        f"({int(cs['liquidations']):,} liquidations, {int(cs['cascade_rounds']):,} cascade rounds)"
    )
    print(
        f"cold start (10^4 positions, 600 marks, fresh process): {cold_s:.2f} s with an empty "
        f"numba cache, {warm_s:.2f} s with it"
    )
    print(
        json.dumps(
            {
                "seconds": round(seconds, 2),
                "run_seconds": round(run_s, 2),
                "baseline_ratio": round(ratio, 1),
                "peak_rss_mb": round(rss, 1),
                "cross_seconds": round(cross_s, 2),
                "positions": n,
                "marks": len(result.steps) - 1,
                "liquidated_share": round(liquidated_share, 4),
                "kernel_seconds": round(bare_s, 4),
                "kernel_loop_seconds": round(bare_loop_s, 5),
                "kernel_ratio": round(kernel_ratio, 1),
                "quiet_steps": skipped,
                "cold_seconds": round(cold_s, 2),
                "warm_seconds": round(warm_s, 2),
                "warm_up_seconds": round(warm_up_s, 2),
            }
        )
    )


if __name__ == "__main__":
    main()
