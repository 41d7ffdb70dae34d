"""Benchmark: one risk step at 1,000,000 isolated positions on a venue preset (OKX, Bybit),
~1% liquidated, batch path against the per-account path in the same process.

OKX and Bybit send a bankrupt position to ADL while their insurance fund is 30% below its
8-hour high (``adl.trigger_fund_drawdown``); OKX reduces a position in a high tier to the
first tier in one go (``tier_down_target = "first"``). Their isolated liquidations take the
batch path of ``engine/risk/ordered_batch.py``; this runs the same step through it and through
the per-account path (``RiskEngine._batchable`` forced off) on two identical books and checks
that both end in the same state, journal and fund ledger.

The book: a million isolated positions on the preset's tiers and fees, about 1% of them
highly leveraged longs (some of them large enough for the higher tiers: partial closes), a
constant-depth book, a funded insurance fund; the mark falls 2% in one step.

Run: ``.venv/bin/python benchmarks/venue_step.py`` (``--quick``: 100,000 positions;
``--preset bybit``). The last line printed is a JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _machine import machine_description
from deleverage import Exchange, MarginMode
from deleverage.liquidity import ConstantDepthBook
from deleverage.venues import preset

START, CRASH = 100.0, 98.0
TS = 60 * 1_000_000_000


def build(venue: str, n: int, seed: int) -> Exchange:
    spec = preset(venue)
    tiers = spec.tier_arrays
    rng = np.random.default_rng(seed)
    size = np.where(rng.random(n) < 0.5, 1.0, -1.0) * rng.uniform(0.1, 10, n).round(3)
    hot = rng.random(n) < 0.0102
    size[hot] = rng.uniform(0.1, 10, hot.sum()).round(3)
    big = hot & (rng.random(n) < 0.005)  # into the higher tiers (notional 6M to 25M)
    size[big] = rng.uniform(60_000, 250_000, big.sum()).round(0)
    notional = np.abs(size) * START
    tier = np.searchsorted(tiers.floor, notional, side="right") - 1
    top = 1.0 / tiers.imr[tier]
    leverage = np.minimum(rng.uniform(1.5, 10, n), top)
    leverage[hot] = top[hot] * rng.uniform(0.55, 1.0, hot.sum())
    ex = Exchange()
    ex.list_market(spec)
    ex.set_mark(0, START)
    ex.set_liquidity(0, ConstantDepthBook(depth_per_pct=n * 0.5, half_life_s=60))
    ids = ex.open_accounts(n, margin_mode=MarginMode.ISOLATED)
    ex.deposit_many(ids, notional / leverage * 1.001 + notional * 0.002)
    ex.deposit(ex.insurance_account, n * 100.0)
    ex.open_positions(0, ids, size, np.full(n, START), leverage=leverage)
    return ex


def step(venue: str, n: int, *, batch: bool) -> tuple[float, Exchange]:
    ex = build(venue, n, seed=1)
    if not batch:
        ex.risk._batchable = lambda m: False  # type: ignore[method-assign]
    started = time.perf_counter()
    ex.set_mark(0, CRASH, ts_ns=TS)
    return time.perf_counter() - started, ex


def same(a: Exchange, b: Exchange) -> bool:
    arrays_a, arrays_b = a.state_arrays(), b.state_arrays()
    return (
        a.journal.to_arrow().equals(b.journal.to_arrow())
        and all(np.array_equal(arrays_a[k], arrays_b[k], equal_nan=True) for k in arrays_a)
        and a.insurance_fund(0).history == b.insurance_fund(0).history
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100,000 positions")
    parser.add_argument("--preset", default="okx", choices=["okx", "bybit"])
    args = parser.parse_args()
    n = 100_000 if args.quick else 1_000_000
    print(f"machine: {machine_description()}")
    step(args.preset, 10_000, batch=True)  # compile (or load) the kernels
    step(args.preset, 10_000, batch=False)
    batch_s, ex_b = step(args.preset, n, batch=True)
    report = ex_b.last_step
    reference_s, ex_r = step(args.preset, n, batch=False)
    agree = same(ex_b, ex_r)
    print(
        f"{args.preset}: {n:,} positions: {report.liquidations:,} liquidations, "
        f"{report.adl_rounds:,} ADL rounds, insurance paid {report.insurance_paid:,.0f}"
    )
    print(f"batch path       : {batch_s * 1e3:8.1f} ms")
    print(f"per-account path : {reference_s * 1e3:8.1f} ms  ({reference_s / batch_s:.0f}x)")
    print(f"same journal, state and fund ledger: {agree}")
    print(
        json.dumps(
            {
                "preset": args.preset, "positions": n, "liquidations": report.liquidations,
                "adl_rounds": report.adl_rounds, "batch_seconds": round(batch_s, 4),
                "per_account_seconds": round(reference_s, 4),
                "ratio": round(reference_s / batch_s, 1), "results_agree": agree,
            }
        )
    )  # fmt: skip


if __name__ == "__main__":
    main()
