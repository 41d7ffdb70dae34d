"""Benchmark: the Maker venue's step at 200,000 vaults, quiet and liquidating.

A population from ``maker_population`` (collateral ratios log-normal around 2.5, ``mat`` 1.5)
at ETH 2,000, Liquidations 2.0 (Dog and Clipper), an immediate oracle so the crash barks at
once. The *quiet* step moves ETH by +-0.05% (no auction running and the highest liquidation
price below the price: a comparison and a return); the *liquidating* step drops ETH 10% at once
(every vault above the new price barked within ``Hole``, keepers assigned, Dutch sales kicked,
journal written); *the step after*, an hour later, runs the sales (keepers' takes). The world
issue's budget is ~100 us per venue per quiet step.

Run: ``.venv/bin/python benchmarks/maker_step.py`` (``--vaults N``). The last line printed is
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
from deleverage.protocols.chain import ChainConfig
from deleverage.protocols.keepers import KeepersConfig, KeeperSpec
from deleverage.protocols.maker import DogConfig, MakerConfig, build_maker, maker_population
from deleverage.venues.protocol import PriceInputs

S = 10**9


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--vaults", type=int, default=200_000)
    parser.add_argument("--quiet-steps", type=int, default=20_000)
    parser.add_argument("--hole", type=float, default=1e9, help="Dog Hole and hole (DAI)")
    args = parser.parse_args()
    config = MakerConfig(
        osm_delay_s=0.0,
        dog=DogConfig(hole_global=args.hole, hole=args.hole),
        keepers=KeepersConfig(keepers=(KeeperSpec(capital=1e12, latency_blocks=0, count=4),)),
        chain=ChainConfig(max_gas_gwei=100.0),  # uncapped, the crash's gas prices out most barks
    )
    warm = build_maker(config, maker_population(100, 2, price=2_000.0))
    warm.step({"ETH": PriceInputs(2_000.0)}, ts_ns=S)
    warm.step({"ETH": PriceInputs(1_000.0)}, ts_ns=2 * S)  # loads the compiled keeper kernel
    venue = build_maker(config, maker_population(args.vaults, 1, price=2_000.0))
    prices = [2_000.0 * (1.0 + 0.0005 * ((-1) ** k)) for k in range(args.quiet_steps)]
    start = time.perf_counter()
    for k, price in enumerate(prices, start=1):
        step = venue.step({"ETH": PriceInputs(price)}, ts_ns=k * S)
        assert step.liquidations == 0
    quiet_us = (time.perf_counter() - start) / args.quiet_steps * 1e6
    ts = (args.quiet_steps + 1) * S
    start = time.perf_counter()
    crash = venue.step({"ETH": PriceInputs(1_800.0)}, ts_ns=ts)
    liquidating_ms = (time.perf_counter() - start) * 1e3
    start = time.perf_counter()
    after = venue.step({"ETH": PriceInputs(1_800.0)}, ts_ns=ts + 3600 * S)
    after_ms = (time.perf_counter() - start) * 1e3
    print(machine_description())
    print(
        f"vaults {args.vaults:,}: quiet step {quiet_us:.1f} us; liquidating step "
        f"{liquidating_ms:.1f} ms ({crash.liquidations:,} barks); the step after "
        f"{after_ms:.1f} ms ({-after.forced_flow['ETH']:,.0f} ETH sold)"
    )
    print(
        json.dumps(
            {
                "benchmark": "maker_step",
                "vaults": args.vaults,
                "quiet_step_us": round(quiet_us, 2),
                "liquidating_step_ms": round(liquidating_ms, 2),
                "barks": crash.liquidations,
                "step_after_ms": round(after_ms, 2),
                "collateral_sold": round(-after.forced_flow["ETH"], 3),
            }
        )
    )


if __name__ == "__main__":
    main()
