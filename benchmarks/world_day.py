"""Benchmark: a world of five venues holding 10^6 positions through a day of one-second marks.

Two assets (BTC, and ETH for the lending market's second collateral and its gas token) move
all day with 30% annual volatility; at 10:00 both fall 5% over 30 minutes. Five venues share
their markets (``deleverage.world``): two order-book perp venues with their own books linked to
the shared market by arbitrageurs (Binance and BitMEX presets, 300,000 isolated positions
each), two more perp venues marked to the oracle (Binance and BitMEX tables, 150,000 each) and
an Aave v3.3 lending market (100,000 borrowers, WBTC and WETH collateral, keepers on a chain).
Every round every venue steps on the shared prices and its forced flow moves them.

The issue asks for an oracle-pool perp (GMX v2 / Synthetix) and a CDP (Maker) among the five:
their builders live on branches this one does not merge (defi-pools, defi-maker), so the two
oracle-marked perp venues stand in for them; registering their kinds is one entry each in
``deleverage.world.kinds``. Binance and BitMEX are the presets whose liquidations the engine
runs on its compiled batch path; ``--mixed`` takes Bybit, dYdX v4 and OKX instead (their
fund-drawdown triggers, caps and liquidator execution take the engine's per-account path) and
maps 2,000 traders with cross accounts on both order-book venues (the trader channel).

Reported: setup (paths, populations, loading) and run seconds, CPU seconds (the machine is
shared), liquidations per venue, peak resident memory. Run:
``.venv/bin/python benchmarks/world_day.py`` (``--quick``: 10^5 positions, a 2-hour day). The
last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from _machine import machine_description
from deleverage.world.build import build_world
from deleverage.world.config import WorldScenario

CRASH_START_S = 36_000.0
CRASH_LENGTH_S = 1_800.0


def _asset(name: str, s0: float, depth: float, duration_s: float) -> dict[str, Any]:
    return {
        "name": name,
        "price": {
            "process": "shock", "s0": s0, "drop_fraction": 0.05,
            "start_s": min(CRASH_START_S, duration_s * 0.4), "duration_s": CRASH_LENGTH_S,
            "sigma": 0.3,
        },
        "liquidity": {"depth_per_pct": depth, "half_life_s": 300.0},
        "arbitrage": {"capital": 1e9, "latency_s": 2.0, "cost": 0.0005},
    }  # fmt: skip


def _perp(
    name: str, preset: str, n: int, *, book: bool, seed_fund: float, cross: float
) -> dict[str, Any]:
    venue: dict[str, Any] = {
        "name": name,
        "kind": "perp",
        "assets": ["BTC"],
        "config": {
            "preset": preset,
            "mark_from": "book" if book else "oracle",
            "insurance_fund": seed_fund,
            "population": {
                "n_positions": n, "isolated_fraction": 1.0 - cross, "long_fraction": 0.6,
                "leverage_median": 12.0, "size_min": 0.002,
            },
        },
    }  # fmt: skip
    if book:
        venue["links"] = {"BTC": {"liquidity": {"depth_per_pct": n * 0.0005, "half_life_s": 300.0}}}
    return venue


#: The four perp venues: name, preset, own book linked to the shared market (else oracle-marked).
DEFAULT_PERPS = (
    ("binance", "binance", True),
    ("bitmex", "bitmex", True),
    ("oracle-perp", "binance", False),
    ("cdp-standin", "bitmex", False),
)
#: ``--mixed``: presets whose liquidations take the engine's per-account path (Bybit and OKX
#: with their fund-drawdown triggers and caps, dYdX v4's liquidator execution), and traders
#: on both order-book venues (cross accounts: the trader channel).
MIXED_PERPS = (
    ("binance", "binance", True),
    ("bybit", "bybit", True),
    ("dydx", "dydx_v4", False),
    ("okx", "okx", False),
)


def world_scenario(n: int, duration_s: float, *, mixed: bool = False) -> WorldScenario:
    big, mid, lend = int(n * 0.3), int(n * 0.15), n - 2 * int(n * 0.3) - 2 * int(n * 0.15)
    perps = MIXED_PERPS if mixed else DEFAULT_PERPS
    cross = 0.01 if mixed else 0.0
    sizes = (big, big, mid, mid)
    venues = [
        _perp(name, preset, size, book=book, seed_fund=size * 20.0, cross=cross if book else 0.0)
        for (name, preset, book), size in zip(perps, sizes, strict=True)
    ]
    shared = (
        [{"venues": [perps[0][0], perps[1][0]], "count": min(2_000, big // 200)}] if mixed else []
    )
    return WorldScenario.from_mapping(
        {
            "kind": "world",
            "name": "world-day",
            "seed": 5,
            "duration_s": duration_s,
            "assets": [
                _asset("BTC", 60_000.0, n * 0.002, duration_s),
                _asset("ETH", 3_000.0, n * 0.04, duration_s),
            ],
            "venues": [
                *venues,
                {
                    "name": "aave",
                    "kind": "aave",
                    "assets": ["BTC", "ETH"],
                    "config": {
                        "accounts": lend,
                        "market": {
                            "native_asset": "ETH",
                            "chain": {"max_gas_gwei": 300.0},
                            "reserves": [
                                {
                                    "name": "WBTC",
                                    "asset": "BTC",
                                    "decimals": 8,
                                    "ltv": 0.73,
                                    "liquidation_threshold": 0.78,
                                    "liquidation_bonus": 1.05,
                                    "protocol_fee": 0.1,
                                    "sale_depth_per_pct": 50.0,
                                },
                                {
                                    "name": "WETH",
                                    "asset": "ETH",
                                    "decimals": 18,
                                    "ltv": 0.8,
                                    "liquidation_threshold": 0.83,
                                    "liquidation_bonus": 1.05,
                                    "protocol_fee": 0.1,
                                    "sale_depth_per_pct": 1000.0,
                                },
                                {
                                    "name": "USDC",
                                    "decimals": 6,
                                    "ltv": 0.75,
                                    "liquidation_threshold": 0.78,
                                    "liquidation_bonus": 1.045,
                                    "protocol_fee": 0.1,
                                },
                            ],
                        },
                    },
                },
            ],
            "shared_traders": shared,
            "wallets": {"interval_s": 60.0},
        }
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10^5 positions, a 2-hour day")
    parser.add_argument(
        "--mixed", action="store_true",
        help="Bybit, dYdX v4 and OKX presets (the engine's per-account path) and shared traders",
    )  # fmt: skip
    args = parser.parse_args()
    n, duration = (100_000, 7_200.0) if args.quick else (1_000_000, 86_400.0)
    print(f"machine: {machine_description()}")
    started = time.perf_counter()
    world = build_world(world_scenario(n, duration, mixed=args.mixed))
    setup = time.perf_counter() - started
    result = world.run()
    total = time.perf_counter() - started
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu = usage.ru_utime + usage.ru_stime
    summary = result.venue_summary()
    positions = n
    peak_mb = usage.ru_maxrss / 1024.0
    kinds = ", ".join(f"{v} {k}" for v, k in result.kinds.items())
    print(
        f"world: {len(world.venues)} venues ({kinds}), "
        f"{positions:,} positions, {world.n_steps:,} one-second marks, "
        f"{world.round_index:,} rounds"
    )
    print(f"  setup (paths, populations, loading) {setup:.2f} s, run {result.wall_s:.2f} s, "
          f"total {total:.2f} s (CPU {cpu:.2f} s: the machine is shared)")  # fmt: skip
    for venue, row in summary.iterrows():
        print(f"  {venue:8s} liquidations {int(row['liquidations']):>8,}  notional "
              f"{row['liquidated_notional']:>16,.0f}  from other venues "
              f"{row['from_other_venues']:>9,.1f}")  # fmt: skip
    print(f"  peak resident memory {peak_mb:,.0f} MB")
    print(
        json.dumps(
            {
                "seconds": round(total, 2),
                "run_seconds": round(result.wall_s, 2),
                "setup_seconds": round(setup, 2),
                "cpu_seconds": round(cpu, 2),
                "venues": len(world.venues),
                "positions": positions,
                "marks": world.n_steps,
                "rounds": world.round_index,
                "liquidations": int(summary["liquidations"].sum()),
                "peak_rss_mb": round(peak_mb, 1),
                "mixed": args.mixed,
                "missing_kinds": ["oracle-pool perp (gmx/synthetix)", "cdp (maker)"],
            }
        )
    )


if __name__ == "__main__":
    main()
