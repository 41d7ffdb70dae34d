"""Benchmark: one risk step at 1,000,000 isolated positions, ~1% liquidated, ~0.1% to ADL.

A population of a million isolated positions in one market (BTC-like, 0.5% maintenance), of
which about 1% are highly leveraged longs; the mark falls 2% in one step. The liquidations
fill on a constant-depth book; the insurance fund is sized so that roughly a tenth of the
bankrupt positions exhaust it and go to ADL against the ranked queue of profitable shorts.

The baseline is a plain per-account Python reference of the same step (scan every account,
liquidate in the same order on the same book, pay penalties and covers, rank the queue and
deleverage): the loop a straightforward implementation would run. Both must agree on the
counts and the money moved.

What is timed: the one ``set_mark`` of the crash (``seconds_1e6``; ``cpu_seconds_1e6`` is the
same interval in this thread's CPU time): the mark event, margin calls, the indexed isolated
scan, the batch plan, the fills, penalties and covers, the ADL queue (the dirty positions taken
into the ADL cells and scored, the cells read) and its fills, the re-check. Not timed, as on a
live venue where it happens as positions open: loading the book (``open_positions``, which
also sorts the positions into the ADL cells), the quiet mark before the crash (it sorts the
zone-price index) and the warm-ups (every kernel of the step compiled or loaded from the
cache): a small exchange, and one of 10^5 positions whose round, like the big step's, closes
more than ``batch_settle.MAX_ROWS`` positions.

Run: ``.venv/bin/python benchmarks/liquidation_step.py`` (``--quick``: 100,000 positions).
The last line printed is a JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _machine import machine_description
from deleverage import Exchange, MarginMode, MarketSpec
from deleverage.engine.risk import batch_settle
from deleverage.liquidity import ConstantDepthBook

MAINTENANCE = 0.005
FEE = 0.005
START, CRASH = 100.0, 98.0


def population(n: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    leverage = rng.uniform(1.5, 20, n)
    hot = rng.random(n) < 0.0102
    leverage[hot] = rng.uniform(40, 100, hot.sum())
    size = np.where(rng.random(n) < 0.5, 1.0, -1.0) * rng.uniform(0.1, 10, n).round(3)
    size[hot] = np.abs(size[hot])
    cash = np.abs(size) * START / leverage + np.abs(size) * START * 0.0006
    return {"size": size, "leverage": leverage, "cash": cash}


def build(n: int, fund: float, seed: int) -> Exchange:
    pop = population(n, seed)
    spec = MarketSpec.from_mapping(
        {
            "symbol": "BTCUSDT",
            "lot_size": 0.001,
            "tiers": [{"notional_floor": 0, "max_leverage": 100, "maintenance_rate": MAINTENANCE}],
            "liquidation_fee_rate": FEE,
        }
    )
    ex = Exchange()
    ex.list_market(spec)
    ex.set_mark(0, START)
    ex.set_liquidity(0, ConstantDepthBook(depth_per_pct=n * 0.5, half_life_s=60))
    ids = ex.open_accounts(n, margin_mode=MarginMode.ISOLATED)
    ex.deposit_many(ids, pop["cash"])
    ex.deposit(ex.insurance_account, fund)
    ex.open_positions(0, ids, pop["size"], np.full(n, START), leverage=pop["leverage"])
    return ex


def loop_reference(ex: Exchange) -> dict[str, float]:
    """The per-account Python step: same rules, one account at a time."""
    n = ex.n_accounts
    cols = ex.columns(0)
    size = cols.size[:n].tolist()
    entry = cols.entry[:n].tolist()
    margin = cols.isolated_margin[:n].tolist()
    kind = ex._kind[:n].tolist()
    fund = float(ex._cash[ex.insurance_account])
    mark = CRASH
    depth = float(ex.risk.markets[0].liquidity.depth)  # type: ignore[union-attr]
    consumed = 0.0
    below = []
    for a in range(n):
        s = size[a]
        if kind[a] != 0 or s == 0.0:
            continue
        equity = margin[a] + s * (mark - entry[a])
        maint = abs(s) * mark * MAINTENANCE
        if equity < maint:
            below.append(((equity - maint) / maint, a, equity))
    below.sort()
    liquidated = adl = 0
    penalties = covers = 0.0
    bankrupt = []
    for _, a, equity in below:
        s = size[a]
        side = 1.0 if s > 0 else -1.0
        q = abs(s)
        y0 = -side * consumed
        y1 = y0 + q
        vwap = mark * (1.0 - side * (y0 + y1) / (2.0 * depth))
        after = equity + side * q * (vwap - mark)
        # Isolated margin isolates (no recourse to the account's other cash, the spec's
        # default): the closed position's negative margin is owed to the fund in full.
        owed = max(0.0, -after)
        if owed > fund:
            bankrupt.append((a, s, equity))
            continue
        consumed = -side * y1
        penalty = max(0.0, min(FEE * q * vwap, after))
        fund += penalty
        penalties += penalty
        if owed > 0.0:
            cover = min(owed, fund)
            fund -= cover
            covers += cover
        liquidated += 1
    if bankrupt:
        # Rank the opposite side's profitable positions (BitMEX PnL x leverage) and walk it.
        side = 1.0 if bankrupt[0][1] > 0 else -1.0
        queue = []
        for b in range(n):
            sb = size[b]
            if kind[b] != 0 or sb * side >= 0:
                continue
            pnl = sb * (mark - entry[b])
            if pnl <= 0.0:
                continue
            equity_b = margin[b] + pnl
            pnl_pct = (1.0 if sb > 0 else -1.0) * (mark - entry[b]) / entry[b]
            lev = abs(sb) * mark / equity_b if equity_b > 0 else math.inf
            queue.append((-(pnl_pct * lev), b))
        queue.sort()
        head = 0
        available = [abs(size[b]) for _, b in queue]
        for _, s, _ in bankrupt:
            need = abs(s)
            while need > 1e-12 and head < len(queue):
                take = min(need, available[head])
                available[head] -= take
                need -= take
                if available[head] <= 1e-12:
                    head += 1
            adl += 1
    return {"liquidated": liquidated + adl, "adl": adl, "penalties": penalties, "covers": covers}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100,000 positions")
    args = parser.parse_args()
    n = 100_000 if args.quick else 1_000_000
    fund = 27.0 * n / 1000.0
    print(f"machine: {machine_description()}")
    ex = build(n, fund, seed=11)
    # Compile (or load from the cache) every kernel of the step outside the timing: a small
    # exchange whose fund is a tenth of the big one's share, so that its step reaches ADL too
    # (with the big one's share it did not, and the ADL queue's kernels loaded in the timing).
    warm = build(5000, fund * 5000 / n / 10, seed=12)
    warm.set_mark(0, CRASH, ts_ns=10**9)
    assert warm.last_step.adl_rounds > 0, "the warm-up step must reach ADL"
    # The big step also issues margin calls (positions entering the warning zone): the small
    # exchange falls further until it issues some, so their kernel is loaded here too.
    for k in range(1, 100):
        warm.set_mark(0, CRASH * (1 - 0.001 * k), ts_ns=10**9 + k * 10**8)
        if warm.last_step.margin_calls:
            break
    assert warm.last_step.margin_calls > 0, "the warm-up must issue a margin call"
    # A round closing more than batch_settle.MAX_ROWS positions takes the separate batches
    # (their kernels, e.g. apply_transfers_nb, ~3.4 ms to load): the big step's round does, so a
    # second warm-up's round does too (~1% of 10^5 positions).
    big = build(100_000, fund * 100_000 / n, seed=13)
    big.set_mark(0, CRASH, ts_ns=10**9)
    assert big.last_step.liquidations > batch_settle.MAX_ROWS, "the warm-up must close > MAX_ROWS"
    # A quiet mark first, as on a live venue: it sorts the zone-price index the step then uses
    # (built once, kept up to date by the engine; its cost is in cascade_day.py's figures).
    ex.set_mark(0, START, ts_ns=10**9 // 2)
    t0 = time.perf_counter()
    loop = loop_reference(ex)
    loop_seconds = time.perf_counter() - t0
    t0, c0 = time.perf_counter(), time.thread_time()
    ex.set_mark(0, CRASH, ts_ns=10**9)
    seconds = time.perf_counter() - t0
    cpu_seconds = time.thread_time() - c0  # this thread's CPU: what a busy machine adds is out
    report = ex.last_step
    engine = {
        "liquidated": report.liquidations + report.adl_rounds,
        "adl": report.adl_rounds,
        "penalties": report.penalties,
        "covers": report.insurance_paid,
    }
    agree = (
        engine["liquidated"] == loop["liquidated"]
        and engine["adl"] == loop["adl"]
        and math.isclose(engine["covers"], loop["covers"], rel_tol=1e-9, abs_tol=1e-6)
    )
    print(
        f"{n:,} positions: {engine['liquidated']:,} liquidated ({engine['liquidated'] / n:.2%}), "
        f"{engine['adl']:,} to ADL ({engine['adl'] / n:.3%})"
    )
    print(f"engine step : {seconds * 1e3:9.1f} ms  (CPU {cpu_seconds * 1e3:.1f} ms)")
    print(f"python loop : {loop_seconds * 1e3:9.1f} ms  ({loop_seconds / seconds:,.0f}x)")
    print(f"same liquidations, ADL rounds and insurance covers: {agree}")
    print(f"money conserved: {ex.conservation().holds}")
    print(f"engine {engine}\nloop   {loop}")
    result = {
        "seconds_1e6": round(seconds, 4),
        "cpu_seconds_1e6": round(cpu_seconds, 4),
        "loop_seconds": round(loop_seconds, 3),
        "loop_ratio": round(loop_seconds / seconds, 1),
        "positions": n,
        "liquidated": engine["liquidated"],
        "adl_rounds": engine["adl"],
        "results_agree": agree,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
