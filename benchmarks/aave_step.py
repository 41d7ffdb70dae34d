"""Benchmark: the Aave v3.3 venue's step at 200,000 accounts, quiet and liquidating.

A population from ``aave_population`` (WETH and USDC reserves, health factors from 1.03) at
ETH 2,000. The *quiet* step moves ETH by +-0.05% (the bound on health factors proves no account
can be under 1: two binary searches and a return); the *liquidating* step drops ETH 6% at
once (a full pass over every account, a few thousand liquidations planned, keepers assigned,
state and journal written). The world issue's budget is ~100 us per venue per quiet step.

Run: ``.venv/bin/python benchmarks/aave_step.py`` (``--accounts N``). The last line printed is
a JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

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
    prices = [2_000.0 * (1.0 + 0.0005 * ((-1) ** k)) for k in range(args.quiet_steps)]
    start = time.perf_counter()
    for k, price in enumerate(prices, start=1):
        step = venue.step({"ETH": PriceInputs(price)}, ts_ns=k * S)
        assert step.liquidations == 0
    quiet_us = (time.perf_counter() - start) / args.quiet_steps * 1e6
    ts = (args.quiet_steps + 1) * S
    start = time.perf_counter()
    crash = venue.step({"ETH": PriceInputs(1_880.0)}, ts_ns=ts)
    liquidating_ms = (time.perf_counter() - start) * 1e3
    start = time.perf_counter()
    after = venue.step({"ETH": PriceInputs(1_880.5)}, ts_ns=ts + S)
    after_ms = (time.perf_counter() - start) * 1e3
    print(machine_description())
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
                "liquidating_step_ms": round(liquidating_ms, 2),
                "liquidations": crash.liquidations,
                "step_after_liquidations_ms": round(after_ms, 3),
            }
        )
    )


if __name__ == "__main__":
    main()
