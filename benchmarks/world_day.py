"""Benchmark: a world of five venues holding 10^6 positions through a day of one-second marks.

Two assets (BTC, and ETH: the lending market's second collateral, the CDP's collateral and the
chains' gas token) move all day with 30% annual volatility; at 10:00 both fall 5% over 30
minutes. Five venues of the four kinds the issue names share their markets
(``deleverage.world``): two order-book perp venues with their own books linked to the shared
market by arbitrageurs (Binance and OKX presets, 300,000 isolated positions each), a GMX v2
oracle-pool perp on BTC (150,000 positions, the pool the counterparty, its hedgers trading the
shared BTC market), an Aave v3.3 lending market (100,000 borrowers, WBTC and WETH collateral,
keepers on a chain) and a Maker ETH collateral type with Dutch auctions (150,000 vaults, the
one-hour OSM, keepers on a chain). Every round every venue steps on the shared prices and its
forced flow moves them.

``--standins`` replaces the GMX pool and the Maker vaults with two oracle-marked perp venues
(Binance and OKX tables). Both venues' isolated liquidations take the engine's batch path
(OKX's, with its fund drawdown trigger and tier-down target, the ordered one of
``engine/risk/ordered_batch.py``); BitMEX's XBTUSD is inverse, which worlds refuse
(populations are drawn in quote units);
``--mixed`` takes Binance and dYdX v4 for the order-book venues instead (1% cross accounts)
and maps 2,000 traders with cross accounts on both (the trader channel). ``--profile PATH``
writes a cProfile of the run to PATH; ``--loop`` steps every second (the world's quiet
stretches, ``world/quiet.py``, not taken in bulk).

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


#: The order-book venues: name, preset (both with their own books linked to the market).
BOOK_PERPS = (("binance", "binance"), ("okx", "okx"))
#: ``--mixed``: presets whose liquidations take the engine's per-account path.
MIXED_PERPS = (("binance", "binance"), ("dydx", "dydx_v4"))
#: ``--standins``: oracle-marked perp venues in place of the pool perp and the CDP.
STANDINS = (("oracle-perp", "binance"), ("cdp-standin", "okx"))

_AAVE_RESERVES = [
    {"name": "WBTC", "asset": "BTC", "decimals": 8, "ltv": 0.73, "liquidation_threshold": 0.78,
     "liquidation_bonus": 1.05, "protocol_fee": 0.1, "sale_depth_per_pct": 50.0},
    {"name": "WETH", "asset": "ETH", "decimals": 18, "ltv": 0.8, "liquidation_threshold": 0.83,
     "liquidation_bonus": 1.05, "protocol_fee": 0.1, "sale_depth_per_pct": 1000.0},
    {"name": "USDC", "decimals": 6, "ltv": 0.75, "liquidation_threshold": 0.78,
     "liquidation_bonus": 1.045, "protocol_fee": 0.1},
]  # fmt: skip


def _gmx(n: int) -> dict[str, Any]:
    """A GMX v2 BTC market backed by BTC and USD, pool sized to its open interest."""
    return {
        "name": "gmx", "kind": "gmx", "assets": ["BTC"],
        "config": {"market": {
            "asset": "BTC", "long_pool_tokens": max(n, 1) * 0.5, "short_pool_usd": n * 30_000.0,
            "population": {"positions": n, "mean_size_usd": 10_000.0, "leverage_low": 2.0,
                           "leverage_high": 30.0, "long_fraction": 0.6,
                           "entry_dispersion": 0.005},
        }},
    }  # fmt: skip


def _maker(n: int) -> dict[str, Any]:
    """A Maker ETH collateral type (Dutch auctions, the one-hour OSM, keepers on a chain)."""
    return {
        "name": "maker", "kind": "maker", "assets": ["ETH"],
        "config": {
            "market": {"asset": "ETH", "design": "dutch", "chain": {"max_gas_gwei": 300.0}},
            "population": {"n_vaults": max(n, 1), "collateral_median": 5.0,
                           "ratio_median": 2.2, "ratio_sigma": 0.3},
        },
    }  # fmt: skip


def world_scenario(
    n: int, duration_s: float, *, mixed: bool = False, standins: bool = False
) -> WorldScenario:
    big, mid, lend = int(n * 0.3), int(n * 0.15), n - 2 * int(n * 0.3) - 2 * int(n * 0.15)
    books = MIXED_PERPS if mixed else BOOK_PERPS
    cross = 0.01 if mixed else 0.0
    venues = [
        _perp(name, preset, big, book=True, seed_fund=big * 20.0, cross=cross)
        for name, preset in books
    ]
    if standins:
        venues += [
            _perp(name, preset, mid, book=False, seed_fund=mid * 20.0, cross=0.0)
            for name, preset in STANDINS
        ]
    else:
        venues += [_gmx(mid), _maker(mid)]
    aave = {
        "name": "aave", "kind": "aave", "assets": ["BTC", "ETH"],
        "config": {"accounts": lend, "market": {
            "native_asset": "ETH", "chain": {"max_gas_gwei": 300.0}, "reserves": _AAVE_RESERVES,
        }},
    }  # fmt: skip
    shared = (
        [{"venues": [books[0][0], books[1][0]], "count": min(2_000, big // 200)}] if mixed else []
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
            "venues": [*venues, aave],
            "shared_traders": shared,
            "wallets": {"interval_s": 60.0},
        }
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10^5 positions, a 2-hour day")
    parser.add_argument(
        "--mixed", action="store_true",
        help="Binance and dYdX v4 order-book venues (1% cross accounts), 2,000 shared traders",
    )  # fmt: skip
    parser.add_argument(
        "--standins", action="store_true",
        help="two oracle-marked perp venues in place of the GMX pool and the Maker vaults",
    )  # fmt: skip
    parser.add_argument("--profile", type=Path, help="write a cProfile of the run here")
    parser.add_argument(
        "--loop", action="store_true",
        help="step every second (no quiet stretches taken in bulk: world/quiet.py off)",
    )  # fmt: skip
    args = parser.parse_args()
    n, duration = (100_000, 7_200.0) if args.quick else (1_000_000, 86_400.0)
    print(f"machine: {machine_description()}")
    started = time.perf_counter()
    world = build_world(world_scenario(n, duration, mixed=args.mixed, standins=args.standins))
    world.quiet.enabled = not args.loop
    setup = time.perf_counter() - started
    if args.profile is not None:
        import cProfile

        profiler = cProfile.Profile()
        result = profiler.runcall(world.run)
        profiler.dump_stats(str(args.profile))
    else:
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
              f"{row['from_other_venues']:>9,.1f}  bad debt {row['bad_debt']:>12,.0f}")  # fmt: skip
    quiet = {
        name: (ex.quiet_marks.fast, ex.quiet_marks.full)
        for name, venue in world.venues.items()
        if (ex := getattr(venue, "exchange", None)) is not None
    }
    print("  engine quiet marks (fast path, bands missed): "
          + ", ".join(f"{v} {f:,}/{m:,}" for v, (f, m) in quiet.items()))  # fmt: skip
    skips = world.quiet
    print(f"  world quiet stretches: {skips.skipped:,} steps in {skips.stretches:,} "
          f"stretches (tries stopped by: {skips.blocked})")  # fmt: skip
    print(f"  peak resident memory {peak_mb:,.0f} MB")
    print(
        json.dumps(
            {
                "seconds": round(total, 2),
                "run_seconds": round(result.wall_s, 2),
                "setup_seconds": round(setup, 2),
                "cpu_seconds": round(cpu, 2),
                "venues": len(world.venues),
                "kinds": sorted(set(result.kinds.values())),
                "positions": positions,
                "marks": world.n_steps,
                "rounds": world.round_index,
                "liquidations": int(summary["liquidations"].sum()),
                "peak_rss_mb": round(peak_mb, 1),
                "quiet_marks": sum(f for f, _ in quiet.values()),
                "world_quiet_steps": world.quiet.skipped,
                "mixed": args.mixed,
                "standins": args.standins,
                "loop": args.loop,
            }
        )
    )


if __name__ == "__main__":
    main()
