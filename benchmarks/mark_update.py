"""Benchmark: a mark-price update plus margin-ratio computation at scale.

Cases:
1. 1,000,000 cross positions in one market (Binance-like 4-tier BTCUSDT table);
2. 100,000 cross accounts with 3 positions each (3 markets), one market's mark moving.

Each case times ``Exchange.set_mark`` (the oracle update, which runs the risk step: its scan
computes every account's cross equity, maintenance margin and margin ratio, sends margin calls
and finds accounts below maintenance, none here) and reading the margin ratios it computed
(``Exchange.cross_scan``), median of repeated runs, against the same ratios from a plain
per-account Python loop on the same input (the baseline).

Run: ``.venv/bin/python benchmarks/mark_update.py`` (``--quick`` for a smaller smoke run).
The last line printed is a JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _machine import machine_description
from deleverage import Exchange, MarginTier, MarketSpec

TIERS = (
    MarginTier(notional_floor=0, max_leverage=125, maintenance_rate=0.004),
    MarginTier(notional_floor=50_000, max_leverage=100, maintenance_rate=0.005),
    MarginTier(notional_floor=250_000, max_leverage=50, maintenance_rate=0.01),
    MarginTier(notional_floor=3_000_000, max_leverage=20, maintenance_rate=0.025),
)


def build(n_accounts: int, n_markets: int, seed: int) -> Exchange:
    rng = np.random.default_rng(seed)
    ex = Exchange()
    for m in range(n_markets):
        ex.list_market(MarketSpec(symbol=f"M{m}USDT", tiers=TIERS, lot_size=0.001))
        ex.set_mark(m, 60_000.0)
    ids = ex.open_accounts(n_accounts)
    # Collateral for 5x-30x leverage: the +-1% marks below move margins without liquidating.
    ex.deposit_many(ids, rng.uniform(6_000, 50_000, n_accounts).round(2) * n_markets)
    for m in range(n_markets):
        sizes = (rng.standard_t(3, n_accounts) * 0.2).clip(-3, 3).round(3)
        sizes[sizes == 0] = 0.001
        entries = (60_000 * (1 + rng.normal(0, 0.002, n_accounts))).round(1)
        ex.open_positions(m, ids, sizes, entries)
    return ex


def loop_margin_ratio(ex: Exchange) -> list[float]:
    """The baseline: per account, per position, plain Python arithmetic."""
    n = ex.n_accounts
    cash = ex._cash[:n].tolist()
    markets = []
    for state in ex.markets:
        cols = ex.columns(state.id)
        t = state.tiers
        markets.append(
            (
                cols.size[:n].tolist(), cols.entry[:n].tolist(), state.mark,
                t.floor.tolist(), t.mmr.tolist(), t.cum.tolist(),
            )
        )  # fmt: skip
    ratios = []
    for a in range(n):
        equity = cash[a]
        maintenance = 0.0
        for size, entry, mark, floor, mmr, cum in markets:
            s = size[a]
            if s == 0.0:
                continue
            equity += s * (mark - entry[a])
            notional = abs(s) * mark
            k = len(floor) - 1
            while k > 0 and notional < floor[k]:
                k -= 1
            maintenance += notional * mmr[k] - cum[k]
        ratios.append(maintenance / equity if equity > 0 else float("inf"))
    return ratios


def time_case(ex: Exchange, market: int, repeats: int) -> tuple[float, float, bool]:
    rng = np.random.default_rng(1)
    marks = 60_000.0 * (1 + rng.normal(0, 0.01, repeats + 1))
    # Every account's ratio, as the target asks: the full pass (a quiet mark with the sorted
    # index checks only the accounts it can reach; benchmarks/cascade_day.py times that).
    ex.use_level_index = False
    ex.set_mark(market, float(marks[0]))
    level = ex.markets[market].spec.liquidation.margin_call_ratio
    ex.cross_scan(market, level)  # compile and warm up
    times = []
    for k in range(repeats):
        t0 = time.perf_counter()
        ex.set_mark(market, float(marks[k + 1]))
        ratio = ex.cross_scan(market, level)["ratio"]
        times.append(time.perf_counter() - t0)
    loop_times = []
    for _ in range(3):  # median of three: the loop's time varies with the allocator and GC
        t0 = time.perf_counter()
        baseline = loop_margin_ratio(ex)
        loop_times.append(time.perf_counter() - t0)
    loop_seconds = statistics.median(loop_times)
    same = bool(np.allclose(ratio, np.array(baseline), rtol=1e-9))
    return statistics.median(times), loop_seconds, same


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10x smaller populations")
    parser.add_argument("--repeats", type=int, default=21)
    args = parser.parse_args()
    scale = 10 if args.quick else 1
    print(f"machine: {machine_description()}")

    n1 = 1_000_000 // scale
    ex1 = build(n1, 1, seed=7)
    s1, loop1, same1 = time_case(ex1, 0, args.repeats)
    print(
        f"{n1:,} positions, 1 market : {s1 * 1e3:8.2f} ms per mark update + margin ratios "
        f"(loop {loop1 * 1e3:,.0f} ms, {loop1 / s1:,.0f}x), results agree: {same1}"
    )
    n2 = 100_000 // scale
    ex2 = build(n2, 3, seed=8)
    s2, loop2, same2 = time_case(ex2, 1, args.repeats)
    print(
        f"{n2:,} cross accounts x 3 markets: {s2 * 1e3:8.2f} ms (loop {loop2 * 1e3:,.0f} ms, "
        f"{loop2 / s2:,.0f}x), results agree: {same2}"
    )
    result = {
        "seconds_1e6": round(s1, 5),
        "loop_seconds_1e6": round(loop1, 3),
        "loop_ratio": round(loop1 / s1, 1),
        "seconds_cross_1e5x3": round(s2, 5),
        "loop_ratio_cross": round(loop2 / s2, 1),
        "positions": n1,
        "results_agree": same1 and same2,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
