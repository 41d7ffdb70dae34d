"""GMX's compiled quiet count and accrual (``protocols/gmx/quiet_nb.py``) against the Python
walk they replaced (kept here as the reference: the venue's own functions step by step), on
markets of every kind (a long token priced apart or not, ADL, the traders' PnL cap, borrowing
and funding, keepers on a chain) after busy steps, on paths that end by each test: the same
count, and after taking the counted steps the same state to the bit and the same next steps."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pytest

from deleverage.protocols.chain import Chain, ChainConfig
from deleverage.protocols.gmx import GmxConfig, GmxVenue, gmx_population
from deleverage.protocols.gmx import quiet as gq
from deleverage.protocols.gmx.venue import _BAND_RTOL
from deleverage.protocols.keepers import Keepers, KeepersConfig, KeeperSpec
from deleverage.protocols.oracle_pool import oracle_band
from deleverage.venues.protocol import PriceInputs, QuietPath

S = 10**9
T0 = 1_000 * S


def _reference_count(venue: GmxVenue, path: QuietPath) -> int:
    """The Python walk ``quiet_steps`` was before it was compiled (the same tests, the venue's
    own methods, on local copies of the accruals)."""
    if venue._full_pass or venue._dirty:
        return 0
    cfg = venue._cfg
    rate = cfg.borrowing_rate_per_s
    rates = venue._funding_rates()
    cum_borrow, cum_fund, last = venue._cum_borrow, venue._cum_fund.copy(), venue._last_ts
    lo, hi = venue._lo * (1.0 + _BAND_RTOL), venue._hi * (1.0 - _BAND_RTOL)
    saved = venue._q_min, venue._q_max
    assets = venue.assets
    try:
        for j, t in enumerate(path.ts_ns.tolist()):
            p_min, mid, p_max, q_min, q_max = gq._bands(venue, path.inputs(j, assets))
            venue._q_min, venue._q_max = q_min, q_max
            if last:
                dt = (t - last) * 1e-9
                cum_borrow += rate * dt
                cum_fund += rates * dt
            last = t
            if (
                cum_borrow > venue._band_cum
                or bool((cum_fund > venue._band_fund).any())
                or venue._cap_binds(p_min, p_max)
            ):
                return j
            slack = venue._q_slack(q_min, venue._band_q)
            edge = slack + venue._q_slack(q_min, venue._edge_q)
            if not (lo + edge < mid < hi - edge) or venue._adl_due(p_min, p_max):
                return j
        return len(path.ts_ns)
    finally:
        venue._q_min, venue._q_max = saved


def _reference_advance(venue: GmxVenue, path: QuietPath) -> None:
    """The Python replay ``advance_quiet`` was: each step's early return in turn."""
    cfg = venue._cfg
    assets = venue.assets
    chain = venue._keepers.chain
    for j, t in enumerate(path.ts_ns.tolist()):
        inputs = path.inputs(j, assets)
        _, mid, _, venue._q_min, venue._q_max = gq._bands(venue, inputs)
        if venue._last_ts:
            dt = (t - venue._last_ts) * 1e-9
            venue._cum_borrow += cfg.borrowing_rate_per_s * dt
            venue._cum_fund += venue._funding_rates() * dt
        venue._last_ts = t
        venue._mid = mid
        if chain is None or t >= chain.ts_ns:
            venue._keepers.advance(t, inputs)
        venue._quiet()


def _market(rng: np.random.Generator) -> GmxVenue:
    separate = bool(rng.integers(2))
    cfg = GmxConfig(
        asset="SOL" if separate else "ETH",
        long_token_asset="WETH" if separate else None,
        long_pool_tokens=float(rng.choice([300.0, 3_000.0, 1e6])),
        short_pool_usd=float(rng.choice([5e5, 5e6, 5e7])),
        oracle_half_spread=float(rng.choice([0.0, 0.0005])),
        positive_impact_factor=float(rng.choice([0.0, 2.5e-10])),
        negative_impact_factor=float(rng.choice([0.0, 5e-10])),
        borrowing_rate_per_s=float(rng.choice([0.0, 1e-8, 1e-6])),
        funding_factor=float(rng.choice([0.0, 5e-8, 1e-5])),
        adl_enabled=bool(rng.integers(2)),
        max_pnl_factor_for_adl=0.3,
        min_pnl_factor_after_adl=0.2,
        max_pnl_factor_for_traders=float(rng.choice([0.25, 0.9])),
        execution_fee_usd=50.0,
    )
    price = 100.0 if separate else 2_000.0
    pop = gmx_population(
        int(rng.integers(1, 300)), seed=int(rng.integers(2**16)), price=price,
        leverage=(1.5, float(rng.uniform(2.0, 80.0))), entry_dispersion=0.005,
    )  # fmt: skip
    if separate:  # long-token collateral in WETH at 2,000
        pop = pop._replace(
            collateral_amount=np.where(
                pop.collateral_is_long_token, pop.collateral_amount * price / 2_000.0,
                pop.collateral_amount,
            )
        )  # fmt: skip
    if rng.integers(2):
        return GmxVenue(cfg, pop)
    spec = KeeperSpec(capital=1e6, latency_blocks=int(rng.integers(3)), gas_units=20_000.0)
    chain = Chain(ChainConfig(block_time_s=12.0), seed=int(rng.integers(100)))
    keepers = Keepers(KeepersConfig(keepers=(spec,)))
    return GmxVenue(cfg, pop, keepers=keepers, chain=chain, native_asset=cfg.long_token_asset
                    or cfg.asset)  # fmt: skip


def _prices(venue: GmxVenue, p: float, q: float) -> dict[str, PriceInputs]:
    out = {venue._cfg.asset: PriceInputs(p)}
    if len(venue.assets) > 1:
        out[venue.assets[1]] = PriceInputs(q)
    return out


def _path(venue: GmxVenue, rng: np.random.Generator, p: float, q: float, t: int) -> QuietPath:
    n = int(rng.integers(1, 400))
    scale = float(rng.choice([1e-5, 1e-4, 1e-3, 1e-2]))
    gaps = rng.choice([1, 1, 1, 5, 60, 3_600], size=n)
    ts = t + S * np.cumsum(gaps).astype(np.int64)
    index = p * np.cumprod(1.0 + scale * rng.standard_normal(n))
    long_index = q * np.cumprod(1.0 + scale * rng.standard_normal(n))
    prices = np.column_stack([index, long_index][: len(venue.assets)])
    return QuietPath(ts, prices, prices * (1.0 + 1e-4 * rng.standard_normal(prices.shape)))


def _state(venue: GmxVenue) -> tuple[Any, ...]:
    chain = venue._keepers.chain
    return (
        venue._cum_borrow, venue._cum_fund.tolist(), venue._last_ts, venue._mid, venue._q_min,
        venue._q_max, venue._seen.tolist(), venue._bad_idx.tolist(), list(venue._adl_seen),
        venue.solvency(), venue.pool_amounts(),
        None if chain is None else (chain.ts_ns, chain.block, chain.gas_price_gwei,
                                    chain.variance_per_s, chain.native_price),
    )  # fmt: skip


def _walk(seed: int) -> dict[str, int]:
    """Busy steps and quiet paths on one market: the compiled count and replay against the
    reference at each path; return how the counts ended (and by which test)."""
    rng = np.random.default_rng(seed)
    venue = _market(rng)
    separate = len(venue.assets) > 1
    p, q, t = (100.0, 2_000.0, T0) if separate else (2_000.0, 2_000.0, T0)
    ends: dict[str, int] = {}
    for _ in range(12):
        # a few busy steps (moves that liquidate, ADL, rebuild the band), then a path
        for _ in range(int(rng.integers(1, 4))):
            p *= float(np.exp(rng.normal(0.0, 0.02)))
            q *= float(np.exp(rng.normal(0.0, 0.01)))
            t += int(rng.integers(1, 600)) * S
            venue.step(_prices(venue, p, q), ts_ns=t)
        path = _path(venue, rng, p, q, t)
        before = _state(venue)
        # Act
        n = venue.quiet_steps(path)
        # Assert: the same count; counting changed nothing
        assert n == _reference_count(venue, path)
        assert _state(venue) == before
        end = "all" if n == len(path.ts_ns) else "dirty" if venue._dirty else _exit(venue, path, n)
        ends[end] = ends.get(end, 0) + 1
        if n:  # the counted steps taken both ways: the same state, the same next step
            twin = copy.deepcopy(venue)
            venue.advance_quiet(path.head(n))
            _reference_advance(twin, path.head(n))
            assert _state(venue) == _state(twin)
            t = int(path.ts_ns[n - 1]) + S
            p = float(path.index_prices[n - 1, 0]) * float(np.exp(rng.normal(0.0, 0.02)))
            q = float(path.index_prices[n - 1, -1])
            assert venue.step(_prices(venue, p, q), ts_ns=t) == twin.step(
                _prices(twin, p, q), ts_ns=t
            )
            assert _state(venue) == _state(twin)
            assert venue.journal().to_arrow().equals(twin.journal().to_arrow())
    return ends


@pytest.mark.parametrize("seeds", [range(0, 12), range(12, 24), range(24, 36)])
def test_the_compiled_count_and_replay_equal_the_python_walk(seeds: range) -> None:
    ends: dict[str, int] = {}
    for seed in seeds:
        for end, count in _walk(seed).items():
            ends[end] = ends.get(end, 0) + count
    print(ends)
    # the walks end by the band, by the accrual's look-ahead and by running out of path (so
    # a test broken in the kernel is seen)
    assert {"all", "band", "accrual"} <= set(ends), ends


def _exit(venue: GmxVenue, path: QuietPath, j: int) -> str:
    """Which test ends the walk at step ``j`` (the reference's order)."""
    rates = venue._funding_rates()
    cum, fund, last = venue._cum_borrow, venue._cum_fund.copy(), venue._last_ts
    for t in path.ts_ns[: j + 1].tolist():
        if last:
            dt = (t - last) * 1e-9
            cum += venue._cfg.borrowing_rate_per_s * dt
            fund += rates * dt
        last = t
    if cum > venue._band_cum or bool((fund > venue._band_fund).any()):
        return "accrual"
    p_min, _, p_max = oracle_band(
        PriceInputs(float(path.index_prices[j, 0])), venue._cfg.oracle_half_spread
    )
    saved = venue._q_min
    try:
        venue._q_min = float(path.index_prices[j, -1]) * (1.0 - venue._cfg.oracle_half_spread)
        if not len(venue.assets) > 1:
            venue._q_min = p_min
        if venue._cap_binds(p_min, p_max):
            return "cap"
        if venue._adl_due(p_min, p_max):
            return "adl"
    finally:
        venue._q_min = saved
    return "band"


@pytest.mark.parametrize("separate", [False, True])
def test_a_rise_ends_the_count_where_adl_becomes_due(separate: bool) -> None:
    # Arrange: low leverage (a wide band), a small pool and a PnL cap above ADL's factor
    cfg = GmxConfig(
        asset="SOL" if separate else "ETH", long_token_asset="WETH" if separate else None,
        long_pool_tokens=50.0, short_pool_usd=2e5, adl_enabled=True,
        max_pnl_factor_for_adl=0.3, min_pnl_factor_after_adl=0.2,
        max_pnl_factor_for_traders=0.9, execution_fee_usd=1.0,
    )  # fmt: skip
    price = 100.0 if separate else 2_000.0
    pop = gmx_population(100, seed=4, price=price, leverage=(1.1, 1.5), long_fraction=1.0)
    venue = GmxVenue(cfg, pop)
    venue.step(_prices(venue, price, 2_000.0), ts_ns=T0)
    ts = T0 + S * np.arange(1, 2_001, dtype=np.int64)
    index = price * np.linspace(1.0, 3.0, 2_000)
    prices = np.column_stack([index, np.full(2_000, 2_000.0)][: len(venue.assets)])
    path = QuietPath(ts, prices, prices)
    # Act
    n = venue.quiet_steps(path)
    # Assert: ADL ends it, in the middle of the path, as the reference finds
    assert 0 < n < 2_000
    assert n == _reference_count(venue, path)
    assert _exit(venue, path, n) == "adl"
