"""Each venue's quiet steps (``QuietVenue.quiet_steps`` / ``advance_quiet``, world/quiet.py)
against stepping one step at a time, on random populations and price paths: every step counted
quiet liquidates and forces nothing when stepped, counting changes nothing, and a twin that
took the counted steps in bulk returns the same steps afterwards (a crash included) with the
same journal and solvency lines."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import numpy as np
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from deleverage import Exchange
from deleverage.engine.venue import PerpVenue
from deleverage.protocols.aave import AaveConfig, build_aave
from deleverage.protocols.chain import Chain, ChainConfig
from deleverage.protocols.gmx import GmxConfig, GmxVenue, gmx_population
from deleverage.protocols.keepers import Keepers, KeepersConfig, KeeperSpec
from deleverage.protocols.maker import MakerConfig, MakerPopulation, build_maker
from deleverage.sim.population import PopulationSpec, generate_population
from deleverage.venues import preset
from deleverage.venues.protocol import PriceInputs, QuietPath, quiet_steps_of

S = 10**9
T0 = 1_000 * S
Factory = Callable[[int], Any]


def _perp(seed: int) -> PerpVenue:
    spec = preset("binance", "BTC")
    ex = Exchange(seed=seed)
    ex.list_market(spec, ts_ns=0)
    ex.set_mark(0, 2_000.0, ts_ns=0)
    ex.deposit(ex.insurance_account, 1e5, ts_ns=0)
    pop = generate_population(
        PopulationSpec(n_positions=300, leverage_median=20.0, leverage_sigma=0.5,
                       isolated_fraction=0.6),
        spec, reference_price=2_000.0, rng=np.random.default_rng(seed),
    )  # fmt: skip
    pop.load_into(ex, 0, ts_ns=0)
    return PerpVenue(ex, name="perp", assets={"ETH": 0})


def _gmx(seed: int) -> GmxVenue:
    cfg = GmxConfig(
        asset="ETH", long_pool_tokens=3_000.0, short_pool_usd=5e6, borrowing_rate_per_s=1e-7,
        funding_factor=5e-8, oracle_half_spread=0.0005, adl_enabled=True,
        max_pnl_factor_for_adl=0.3, min_pnl_factor_after_adl=0.2, execution_fee_usd=50.0,
    )  # fmt: skip
    pop = gmx_population(200, seed=seed, price=2_000.0, leverage=(2.0, 40.0))
    if seed % 2:  # perfect keepers (a world's default)
        return GmxVenue(cfg, pop)
    spec = KeeperSpec(capital=1e6, latency_blocks=seed % 3, gas_units=20_000.0)
    chain = Chain(ChainConfig(block_time_s=12.0), seed=seed)
    keepers = Keepers(KeepersConfig(keepers=(spec,)))
    return GmxVenue(cfg, pop, keepers=keepers, chain=chain, native_asset="ETH")


def _aave(seed: int) -> Any:
    config = AaveConfig(
        population={"accounts": 300, "min_health": 1.005, "health_scale": 0.15,
                    "collateral_median": 3_000.0},
    )  # fmt: skip
    return build_aave(config, prices={"ETH": 2_000.0}, seed=seed)


def _maker(seed: int) -> Any:
    rng = np.random.default_rng(seed)
    ink = rng.uniform(1.0, 50.0, 60)
    ratio = rng.uniform(1.52, 3.0, 60)
    config = MakerConfig(osm_delay_s=float(rng.choice([0.0, 600.0, 3_600.0])))
    return build_maker(config, MakerPopulation(ink=ink, art=ink * 2_000.0 / ratio))


VENUES: dict[str, Factory] = {"perp": _perp, "gmx": _gmx, "aave": _aave, "maker": _maker}

_MOVES = st.lists(
    st.tuples(
        st.one_of(st.floats(-3e-4, 3e-4), st.floats(-0.02, 0.02)),  # log move of the price
        st.floats(-2e-3, 2e-3),  # the book's own dislocation
        st.integers(1, 90),  # seconds to the step
    ),
    min_size=2,
    max_size=80,
)


def _path(moves: list[tuple[float, float, int]], crash: float) -> QuietPath:
    p, t = 2_000.0, T0
    ts, index, book = [], [], []
    for j, (move, d, dt) in enumerate(moves):
        p *= float(np.exp(move - (crash if j == len(moves) // 2 else 0.0)))
        t += dt * S
        ts.append(t)
        index.append([p])
        book.append([p * (1.0 + d)])
    return QuietPath(np.array(ts, dtype=np.int64), np.array(index), np.array(book))


def _journal(venue: Any) -> pa.Table:
    return venue.journal().to_arrow()


@settings(max_examples=25, deadline=None)
@given(
    kind=st.sampled_from(sorted(VENUES)),
    seed=st.integers(0, 1_000),
    moves=_MOVES,
    crash=st.sampled_from([0.0, 0.0, 0.05, 0.2]),
)
def test_quiet_steps_taken_in_bulk_equal_stepping_them(
    kind: str, seed: int, moves: list[tuple[float, float, int]], crash: float
) -> None:
    # Arrange: two equal venues after one step at the start price
    bulk, loop = VENUES[kind](seed), VENUES[kind](seed)
    first = {a: PriceInputs(2_000.0, 2_000.0, 2_000.0) for a in bulk.assets}
    assert bulk.step(first, ts_ns=T0) == loop.step(first, ts_ns=T0)
    path = _path(moves, crash)
    rows = len(bulk.journal())
    # Act
    n = quiet_steps_of(bulk, path)
    # Assert: counting changed nothing; every counted step is a no-op when stepped
    assert quiet_steps_of(bulk, path) == n
    assert len(bulk.journal()) == rows
    for j in range(n):
        step = loop.step(path.inputs(j, loop.assets), ts_ns=int(path.ts_ns[j]))
        assert step.liquidations == 0
        assert all(v == 0.0 for v in step.forced_flow.values())
    if n:
        bulk.advance_quiet(path.head(n))
    assert _journal(bulk).equals(_journal(loop))
    assert bulk.solvency() == loop.solvency()
    for j in range(n, len(path.ts_ns)):  # the rest, the crash included, from either state
        inputs = path.inputs(j, bulk.assets)
        assert bulk.step(inputs, ts_ns=int(path.ts_ns[j])) == loop.step(
            inputs, ts_ns=int(path.ts_ns[j])
        )
    assert _journal(bulk).equals(_journal(loop))
    assert bulk.solvency() == loop.solvency()


@settings(max_examples=10, deadline=None)
@given(kind=st.sampled_from(sorted(VENUES)), seed=st.integers(0, 1_000))
def test_a_still_price_is_quiet_for_every_venue_kind(kind: str, seed: int) -> None:
    # Arrange: the price the venue stepped on, held for a minute
    venue = VENUES[kind](seed)
    first = {a: PriceInputs(2_000.0, 2_000.0, 2_000.0) for a in venue.assets}
    venue.step(first, ts_ns=T0)
    venue.step(first, ts_ns=T0 + S)  # (what the first step left liquidatable is gone)
    ts = T0 + S * np.arange(2, 62, dtype=np.int64)
    still = np.full((60, 1), 2_000.0)
    before = copy.deepcopy(venue.solvency())
    # Act
    n = quiet_steps_of(venue, QuietPath(ts, still, still))
    # Assert (GMX's and Maker's funding and auction clocks may end it; never at once)
    assert n >= 2 or kind in ("gmx", "maker")
    assert venue.solvency() == before


class _Plain:
    """A venue without the quiet methods."""

    name = "plain"
    assets = ("ETH",)


def test_a_venue_without_quiet_methods_cannot_skip() -> None:
    path = QuietPath(np.array([1], dtype=np.int64), np.ones((1, 1)), np.ones((1, 1)))
    assert quiet_steps_of(_Plain(), path) == 0
