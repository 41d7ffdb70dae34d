"""Benchmark: quiet and liquidating steps of the oracle-pool perpetuals at 200,000 positions.

GMX v2 (one ETH market, 200,000 positions) and Synthetix perps v3 (three markets, 200,000
accounts with one position each), perfect keepers. A *quiet* step moves the price by 0.01%
after a +-0.5% swing has cleared the positions sitting at the price (nothing can be
liquidated: the trigger band / slack bound answers without touching the arrays; Synthetix
accounts flagged in the swing are still being closed window by window); a *liquidating*
step drops the price 3% (GMX: every position is evaluated, ~5% are liquidated, in rounds
while the closes move price impact; Synthetix: every account is evaluated, the eligible ones
flagged and their first window closed). The world issue needs about 100 us per venue per
quiet step. The baseline is the same quiet step with the band / bound invalidated, so that
every position is evaluated.

Run: ``.venv/bin/python benchmarks/pool_perp_step.py`` (``--quick``: 20,000 positions).
The last line printed is a JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _machine import machine_description
from deleverage.protocols.gmx import GmxConfig, build_gmx, gmx_population
from deleverage.protocols.synthetix import (
    SynthetixConfig,
    SynthetixMarketConfig,
    build_synthetix,
    synthetix_population,
)
from deleverage.venues.protocol import PriceInputs, Venue

S = 10**9
PRICES = {"ETH": 2_000.0, "BTC": 60_000.0, "SOL": 100.0}


def _warm(venue: Venue, prices: dict[str, float], *, t0: int) -> None:
    """Swing the prices by +-0.5% so positions sitting at the current price are gone."""
    for k, factor in enumerate((1.0, 0.995, 1.005, 1.0)):
        venue.step({a: PriceInputs(p * factor) for a, p in prices.items()}, ts_ns=(t0 + k) * S)


def _quiet(
    venue: Venue, prices: dict[str, float], *, steps: int, t0: int, full: bool = False
) -> float:
    """Median seconds of a quiet step (prices wiggling by 0.01%); ``full``: the baseline, the
    same step with the band / bound invalidated first, so every position is evaluated."""
    times = []
    for k in range(steps):
        if full:
            venue._dirty = True  # type: ignore[attr-defined]
        wiggle = 1.0 + (1e-4 if k % 2 else -1e-4)
        inputs = {a: PriceInputs(p * wiggle) for a, p in prices.items()}
        start = time.perf_counter()
        venue.step(inputs, ts_ns=(t0 + k) * S)
        times.append(time.perf_counter() - start)
    times.sort()
    return times[len(times) // 2]


def _crash(venue: Venue, prices: dict[str, float], *, t: int) -> tuple[float, int]:
    inputs = {a: PriceInputs(p * 0.97) for a, p in prices.items()}
    start = time.perf_counter()
    step = venue.step(inputs, ts_ns=t * S)
    return time.perf_counter() - start, step.liquidations


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    n = 20_000 if parser.parse_args().quick else 200_000
    print(machine_description())

    gmx_cfg = GmxConfig(
        asset="ETH",
        long_pool_tokens=1e6,
        short_pool_usd=2e9,
        borrowing_rate_per_s=1e-9,
        negative_impact_factor=5e-10,
        positive_impact_factor=2.5e-10,
    )
    gmx = build_gmx(gmx_cfg, gmx_population(n, seed=1, price=2_000.0, leverage=(1.5, 60.0)))
    eth = {"ETH": 2_000.0}
    _warm(gmx, eth, t0=1)
    gmx_quiet = _quiet(gmx, eth, steps=2_001, t0=10)
    gmx_full = _quiet(gmx, eth, steps=21, t0=2_100, full=True)
    gmx_crash, gmx_liq = _crash(gmx, eth, t=3_000)

    syn_cfg = SynthetixConfig(
        markets=(
            SynthetixMarketConfig(asset="ETH", skew_scale=1e6, flag_reward_ratio=0.0001),
            SynthetixMarketConfig(asset="BTC", skew_scale=3e4, flag_reward_ratio=0.0001),
            SynthetixMarketConfig(asset="SOL", skew_scale=5e7, flag_reward_ratio=0.0001),
        )
    )
    syn = build_synthetix(
        syn_cfg, synthetix_population(n, seed=2, config=syn_cfg, prices=PRICES, leverage=(1.5, 40))
    )
    _warm(syn, PRICES, t0=1)
    syn_quiet = _quiet(syn, PRICES, steps=2_001, t0=10)
    syn_full = _quiet(syn, PRICES, steps=21, t0=2_100, full=True)
    syn_crash, syn_liq = _crash(syn, PRICES, t=3_000)

    print(f"positions          : {n:,}")
    print(f"gmx quiet step     : {gmx_quiet * 1e6:9.1f} us  (full pass {gmx_full * 1e3:.1f} ms)")
    print(f"gmx 3% crash step  : {gmx_crash * 1e3:9.1f} ms  ({gmx_liq:,} liquidated)")
    print(f"synthetix quiet    : {syn_quiet * 1e6:9.1f} us  (full pass {syn_full * 1e3:.1f} ms)")
    print(f"synthetix 3% crash : {syn_crash * 1e3:9.1f} ms  ({syn_liq:,} flagged or liquidated)")
    print(
        json.dumps(
            {
                "positions": n,
                "gmx_quiet_us": round(gmx_quiet * 1e6, 1),
                "gmx_full_pass_ms": round(gmx_full * 1e3, 2),
                "gmx_crash_ms": round(gmx_crash * 1e3, 2),
                "gmx_liquidated": gmx_liq,
                "synthetix_quiet_us": round(syn_quiet * 1e6, 1),
                "synthetix_full_pass_ms": round(syn_full * 1e3, 2),
                "synthetix_crash_ms": round(syn_crash * 1e3, 2),
                "synthetix_liquidations": syn_liq,
            }
        )
    )


if __name__ == "__main__":
    main()
