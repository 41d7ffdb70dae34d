"""Small worlds for the world's tests: perp venues built on the engine with drawn books."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.typing as npt
import pytest

from deleverage import Exchange
from deleverage.engine.venue import PerpVenue
from deleverage.sim.population import PopulationSpec, generate_population
from deleverage.venues import preset
from deleverage.world import PerpCollateral, WorldVenue

START_NS = 1_767_225_600_000_000_000
PerpFactory = Callable[..., tuple[WorldVenue, npt.NDArray[np.int64]]]


def build_perp(
    name: str,
    *,
    venue: str = "binance",
    n: int = 2000,
    leverage: float = 10.0,
    long_fraction: float = 0.5,
    isolated_fraction: float = 0.5,
    seed: int = 0,
    fund: float = 1e5,
    price: float = 100_000.0,
) -> tuple[WorldVenue, npt.NDArray[np.int64]]:
    spec = preset(venue, "BTC")
    ex = Exchange(seed=seed)
    ex.list_market(spec, ts_ns=START_NS)
    ex.set_mark(0, price, ts_ns=START_NS)
    if fund:
        ex.deposit(ex.insurance_account, fund, ts_ns=START_NS)
    pop = generate_population(
        PopulationSpec(
            n_positions=n, leverage_median=leverage, leverage_sigma=0.3,
            long_fraction=long_fraction, isolated_fraction=isolated_fraction,
        ),
        spec, reference_price=price, rng=np.random.default_rng(seed),
    )  # fmt: skip
    ids = pop.load_into(ex, 0, ts_ns=START_NS)
    entry = WorldVenue(
        PerpVenue(ex, name=name, assets={"BTC": 0}), collateral=PerpCollateral(ex), kind="perp"
    )
    return entry, ids


@pytest.fixture
def make_perp() -> PerpFactory:
    return build_perp
