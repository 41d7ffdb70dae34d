"""Benchmark: the Aave v3.3 venue's step at 200,000 accounts, quiet and liquidating.

A population from ``aave_population`` (WETH and USDC reserves, health factors from 1.03) at
ETH 2,000. The *quiet* step moves ETH by +-0.002% (calm, so gas stays near its base fee): the
health factors' floor proves no account can be under 1 and the step returns. The
*liquidating* step drops ETH 6% at once (a full pass over every account, about 5,000
liquidations planned, keepers assigned, state and journal written); the step after re-sorts
the health factors once the liquidated accounts outgrow the side list. The world issue's
budget is ~100 us per venue per quiet step.

Run: ``.venv/bin/python benchmarks/aave_step.py`` (``--accounts N``). The last line printed is
a JSON object with the figures.
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
from deleverage.protocols.aave.config import AaveConfig, aave_population
from deleverage.protocols.aave.venue import build_aave
from deleverage.protocols.keepers import KeepersConfig, KeeperSpec
from deleverage.venues.protocol import PriceInputs

S = 10**9


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--accounts", type=int, default=200_000)
    parser.add_argument("--quiet-steps", type=int, default=20_000)
    args = parser.parse_args()
    config = AaveConfig(
        keepers=KeepersConfig(keepers=(KeeperSpec(capital=1e12, latency_blocks=0, count=4),))
    )
    warm = build_aave(
        config,
        aave_population(config, 100, seed=2, prices={"ETH": 2_000.0}),
        prices={"ETH": 2_000.0},
    )
    warm.step({"ETH": PriceInputs(1_000.0)}, ts_ns=0)  # loads the compiled keeper kernel
    population = aave_population(config, args.accounts, seed=1, prices={"ETH": 2_000.0})
    venue = build_aave(config, population, prices={"ETH": 2_000.0})
    venue.step({"ETH": PriceInputs(2_000.0)}, ts_ns=0)  # the first full pass
    prices = [2_000.0 * (1.0 + 0.00002 * ((-1) ** k)) for k in range(args.quiet_steps)]
    start = time.perf_counter()
    for k, price in enumerate(prices, start=1):
        step = venue.step({"ETH": PriceInputs(price)}, ts_ns=k * S)
        assert step.liquidations == 0
    quiet_us = (time.perf_counter() - start) / args.quiet_steps * 1e6
    # Baseline: the same quiet steps as a full NumPy scan of every health factor each step.
    base_steps = max(1, args.quiet_steps // 100)
    start = time.perf_counter()
    for price in prices[:base_steps]:
        p = np.array([price, 1.0])
        weights = p * np.array([r.liquidation_threshold for r in config.reserves])
        hf = (population.collateral @ weights) / (population.debt @ p)
        assert not (hf < 1.0).any()
    scan_us = (time.perf_counter() - start) / base_steps * 1e6
    ts = (args.quiet_steps + 1) * S
    start = time.perf_counter()
    crash = venue.step({"ETH": PriceInputs(1_880.0)}, ts_ns=ts)
    liquidating_ms = (time.perf_counter() - start) * 1e3
    start = time.perf_counter()
    after = venue.step({"ETH": PriceInputs(1_880.5)}, ts_ns=ts + S)
    after_ms = (time.perf_counter() - start) * 1e3
    print(machine_description())
    print(
        f"quiet step vs a full NumPy scan of every health factor: {scan_us:.0f} us "
        f"({scan_us / quiet_us:.0f}x)"
    )
    print(
        f"accounts {args.accounts:,}: quiet step {quiet_us:.1f} us; liquidating step "
        f"{liquidating_ms:.1f} ms ({crash.liquidations:,} liquidations); the step after "
        f"{after_ms:.2f} ms ({after.liquidations} liquidations)"
    )
    print(
        json.dumps(
            {
                "benchmark": "aave_step",
                "accounts": args.accounts,
                "quiet_step_us": round(quiet_us, 2),
                "full_scan_step_us": round(scan_us, 1),
                "quiet_speedup": round(scan_us / quiet_us, 1),
                "liquidating_step_ms": round(liquidating_ms, 2),
                "liquidations": crash.liquidations,
                "step_after_liquidations_ms": round(after_ms, 3),
            }
        )
    )


if __name__ == "__main__":
    main()
