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

A second run holds 100,000 cross-margin accounts with positions in three correlated markets
(BTC, ETH, SOL-like; all on Binance BTCUSDT tiers) through the same day with a 7% crash:
``cross_seconds``.

Run: ``.venv/bin/python benchmarks/cascade_day.py`` (``--quick``: 10^5 positions, a 2-hour day).
The last line printed is a JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _machine import machine_description
from deleverage.sim.runner import Simulation
from deleverage.sim.scenario import Scenario

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


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10^5 positions, a 2-hour day")
    args = parser.parse_args()
    n, day, n_cross = (100_000, 7_200.0, 10_000) if args.quick else (1_000_000, 86_400.0, 100_000)
    print(f"machine: {machine_description()}")

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
    del sim

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

    s = result.summary
    print(f"isolated: {n:,} positions, {len(result.steps) - 1:,} one-second marks, feedback on")
    print(f"  setup (population, load) {setup_s:.2f} s, run {run_s:.2f} s, total {seconds:.2f} s")
    print(
        f"  liquidated {int(s['liquidations']):,} ({liquidated_share:.1%}), cascade rounds "
        f"{int(s['cascade_rounds']):,}, mark drawdown {s['max_drawdown_mark']:.2%} vs exogenous "
        f"{s['max_drawdown_exogenous']:.2%}; money conserved: {conserved}"
    )
    print(f"  peak resident memory {rss:,.0f} MB")
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
            }
        )
    )


if __name__ == "__main__":
    main()
