"""Compile and cache every kernel a run can call, the world's included, at install.

``python -m deleverage.world.warmup`` (the Makefile's install steps) runs
:func:`deleverage.sim.warmup.warm_up` (the engine's and the protocols' kernels) and then
:func:`warm_up_world`: a small world of the kinds of ``benchmarks/world_day.py`` (two
order-book perps with their own books, a GMX v2 pool, a Maker collateral type with Dutch
auctions, an Aave market) through a crash and a quiet stretch, so the world's own kernels
(its quiet stretches' prefix and decay paths) and the venues' busy paths are compiled with the
argument types of a real world and cached. Without it the first world run after an install
compiled them inside its timing (seconds on the 2-core machine type). The simulator's warm-up
cannot run a world: ``sim`` sits below ``world`` in the layers.
"""

from __future__ import annotations

import time
from typing import Any

from deleverage.world.build import build_world
from deleverage.world.config import WorldScenario

__all__ = ["warm_up_world", "warm_up_world_scenario"]


def _perp(name: str, preset: str, n: int) -> dict[str, Any]:
    population = {
        "n_positions": n, "isolated_fraction": 0.9, "long_fraction": 0.6,
        "leverage_median": 12.0, "size_min": 0.002,
    }  # fmt: skip
    return {
        "name": name, "kind": "perp", "assets": ["BTC"],
        "config": {"preset": preset, "mark_from": "book", "insurance_fund": n * 20.0,
                   "population": population},
        "links": {"BTC": {"liquidity": {"depth_per_pct": n * 0.0005, "half_life_s": 300.0}}},
    }  # fmt: skip


def warm_up_world_scenario(n: int = 4_000, duration_s: float = 10_800.0) -> WorldScenario:
    """A world of ``n`` positions over ``duration_s`` seconds: a 10% crash of both assets
    from a quarter of the way in, over a sixth of the time, then a quiet rest."""

    def asset(name: str, s0: float, depth: float) -> dict[str, Any]:
        price = {
            "process": "shock", "s0": s0, "drop_fraction": 0.10, "start_s": duration_s / 4,
            "duration_s": duration_s / 6, "sigma": 0.3,
        }  # fmt: skip
        liquidity = {"depth_per_pct": depth, "half_life_s": 300.0}
        arbitrage = {"capital": 1e9, "latency_s": 2.0, "cost": 0.0005}
        return {"name": name, "price": price, "liquidity": liquidity, "arbitrage": arbitrage}

    part = n // 5
    reserves = [
        {"name": "WBTC", "asset": "BTC", "decimals": 8, "ltv": 0.73,
         "liquidation_threshold": 0.78, "liquidation_bonus": 1.05, "protocol_fee": 0.1,
         "sale_depth_per_pct": 50.0},
        {"name": "WETH", "asset": "ETH", "decimals": 18, "ltv": 0.8,
         "liquidation_threshold": 0.83, "liquidation_bonus": 1.05, "protocol_fee": 0.1,
         "sale_depth_per_pct": 1000.0},
        {"name": "USDC", "decimals": 6, "ltv": 0.75, "liquidation_threshold": 0.78,
         "liquidation_bonus": 1.045, "protocol_fee": 0.1},
    ]  # fmt: skip
    gmx_population = {
        "positions": part, "mean_size_usd": 10_000.0, "leverage_low": 2.0,
        "leverage_high": 30.0, "long_fraction": 0.6, "entry_dispersion": 0.005,
    }  # fmt: skip
    venues = [
        _perp("binance", "binance", part),
        _perp("okx", "okx", part),
        {"name": "gmx", "kind": "gmx", "assets": ["BTC"], "config": {"market": {
            "asset": "BTC", "long_pool_tokens": part * 0.5, "short_pool_usd": part * 30_000.0,
            "population": gmx_population}}},
        {"name": "maker", "kind": "maker", "assets": ["ETH"], "config": {
            "market": {"asset": "ETH", "design": "dutch", "chain": {"max_gas_gwei": 300.0}},
            "population": {"n_vaults": part, "collateral_median": 5.0, "ratio_median": 1.8,
                           "ratio_sigma": 0.3}}},
        {"name": "aave", "kind": "aave", "assets": ["BTC", "ETH"], "config": {
            "accounts": 2 * part, "market": {"native_asset": "ETH",
                                         "chain": {"max_gas_gwei": 300.0},
                                         "reserves": reserves}}},
    ]  # fmt: skip
    return WorldScenario.from_mapping(
        {
            "kind": "world",
            "name": "warm-up-world",
            "seed": 5,
            "duration_s": duration_s,
            "assets": [asset("BTC", 60_000.0, n * 0.002), asset("ETH", 3_000.0, n * 0.04)],
            "venues": venues,
            "wallets": {"interval_s": 60.0},
        }
    )


def warm_up_world() -> dict[str, int]:
    """Run :func:`warm_up_world_scenario`; return each venue's liquidations (> 0 where its
    busy path ran)."""
    result = build_world(warm_up_world_scenario()).run()
    summary = result.venue_summary()
    return {str(venue): int(row["liquidations"]) for venue, row in summary.iterrows()}


if __name__ == "__main__":
    from deleverage._kernel_cache import KERNEL_CACHE, prune_kernel_caches
    from deleverage.sim.warmup import warm_up

    for folder in prune_kernel_caches():
        print(f"removed the kernel cache of other sources: {folder}")
    started = time.perf_counter()
    warm_up()
    warm_up_world()
    where = KERNEL_CACHE or "NUMBA_CACHE_DIR"
    print(f"numba kernels compiled and cached in {time.perf_counter() - started:.1f} s ({where})")
