"""Compile and cache the on-chain protocols' numba kernels at install (with the engine's).

:func:`deleverage.sim.warmup.warm_up` (run at install by ``python -m deleverage.world.warmup``)
calls :func:`warm_up_protocols`: a small Maker collateral type (Dutch auctions) and a small Aave
market through a 25% fall and a flat hour, so the kernels their busy steps call (the Dog's
barks, the Clipper's run, Aave's health, plans and skip bound, its step on the narrowed
index and its walk of quiet steps with accounts under water, the keepers' pass) are compiled
with the argument types of a real run and cached; a later run (``world_day``, a scenario)
loads them instead of compiling (some ten seconds on the 2-core machine type).
"""

from __future__ import annotations

import numpy as np

from deleverage.protocols.aave import AaveConfig, build_aave
from deleverage.protocols.maker import MakerConfig, build_maker, maker_population
from deleverage.protocols.maker.quiet import _sales_quiet_head
from deleverage.venues.protocol import PriceInputs, QuietPath

__all__ = ["warm_up_protocols"]

NS_PER_S = 1_000_000_000


def warm_up_protocols() -> tuple[int, int]:
    """Step the two small venues through the fall; return the liquidations each made (Maker's
    barks, Aave's liquidations), > 0 when its busy path ran."""
    vaults = maker_population(
        300, 1, price=2_000.0, ratio_median=1.7, ratio_sigma=0.3, collateral_median=6.0
    )
    maker = build_maker(MakerConfig(osm_delay_s=60.0), vaults)
    aave = build_aave(
        AaveConfig(population={"accounts": 400, "min_health": 1.005, "health_scale": 0.15}),
        prices={"ETH": 2_000.0},
        seed=1,
    )
    aave._narrow_slack = 0  # narrow after the fall, as a 10^5-account book does (.step_nb)
    price, barks, liquidations = 2_000.0, 0, 0
    for k in range(1, 120):
        price *= 0.97 if k < 10 else 1.0
        prices = {"ETH": PriceInputs(price)}
        barks += maker.step(prices, ts_ns=k * 45 * NS_PER_S).liquidations
        liquidations += aave.step(prices, ts_ns=k * 45 * NS_PER_S).liquidations
    # A world's count of quiet steps with accounts under water (.quiet_nb's walk).
    ts = np.arange(120, 130, dtype=np.int64) * 45 * NS_PER_S
    flat = np.full((ts.size, 1), price)
    aave.quiet_steps(QuietPath(ts, flat, flat.copy()))
    # Maker's count of quiet steps with sales running (.quiet_nb's first action), called
    # directly: whether a sale still runs at the end of this small fall depends on its draws,
    # and a world day reaches it (its sales run for hours).
    _sales_quiet_head(maker, ts, flat[:, 0].copy(), flat[:, 0].copy())
    return barks, liquidations
