"""A small correlated world for tests/architecture/test_cpu_independent_linalg.py: prints
the hashes of what BLAS used to compute (run in a subprocess under one OpenBLAS core type).

Two correlated GBM assets (the paths' ``w @ L^T``), a perp venue and Aave (its population's
valuation, its liquidations' deficit, its liquidation levels), a three-asset correlated path,
a regime chain drawn from its stationary distribution, and tiered collateral.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd

from deleverage.prices import gbm, markov_chain
from deleverage.rules.collateral import CollateralAsset, CollateralTier, collateral_value
from deleverage.world.build import build_world
from deleverage.world.config import WorldScenario

RESERVES = [
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
]
SCENARIO = {
    "kind": "world",
    "name": "blas",
    "seed": 3,
    "duration_s": 900.0,
    "correlation": [[1.0, 0.8], [0.8, 1.0]],
    "assets": [
        {
            "name": "BTC",
            "price": {"process": "gbm", "s0": 60000.0, "sigma": 6.0},
            "liquidity": {"depth_per_pct": 50.0, "half_life_s": 300.0},
        },
        {
            "name": "ETH",
            "price": {"process": "gbm", "s0": 3000.0, "sigma": 7.0},
            "liquidity": {"depth_per_pct": 1000.0, "half_life_s": 300.0},
        },
    ],
    "venues": [
        {
            "name": "cex",
            "kind": "perp",
            "assets": ["BTC"],
            "config": {
                "preset": "binance",
                "population": {"n_positions": 3000, "leverage_median": 20.0, "long_fraction": 0.6},
            },
        },
        {
            "name": "aave",
            "kind": "aave",
            "assets": ["BTC", "ETH"],
            "config": {"accounts": 20000, "market": {"native_asset": "ETH", "reserves": RESERVES}},
        },
    ],
}


def digest(x: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(x).tobytes()).hexdigest()[:16]


def frame_digest(f: pd.DataFrame) -> str:
    rows = pd.util.hash_pandas_object(f, index=False).to_numpy()
    return hashlib.sha256(rows.tobytes()).hexdigest()[:16]


def main() -> None:
    c3 = [[1.0, 0.7, 0.4], [0.7, 1.0, 0.5], [0.4, 0.5, 1.0]]
    path = gbm([1.0, 2.0, 3.0], 0.1, 0.8, 1.0, 50_000, np.random.default_rng(1), correlation=c3)
    print("gbm", digest(path))
    chain = [[0.9, 0.07, 0.03], [0.2, 0.7, 0.1], [0.05, 0.15, 0.8]]
    print("chain", digest(markov_chain(chain, 1000, np.random.default_rng(2))))
    tiers = [
        CollateralTier(floor=0, rate=0.97),
        CollateralTier(floor=1e4, rate=0.91),
        CollateralTier(floor=1e5, rate=0.73),
    ]
    asset = CollateralAsset(symbol="X", basis="value", tiers=tiers)
    held = np.random.default_rng(3).random(10_000) * 3e3
    print("collateral", digest(collateral_value(asset, held, 61.37)))
    world = build_world(WorldScenario.from_mapping(SCENARIO))
    result = world.run()
    print("world", result.result_hash, result.venue_summary()["liquidations"].to_dict())
    for name, venue in world.venues.items():
        print("journal", name, frame_digest(venue.journal().to_frame()))
    print("levels", frame_digest(world.venues["aave"].liquidation_levels()))


if __name__ == "__main__":
    main()
