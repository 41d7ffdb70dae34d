"""Compile and cache the numba kernels once, so that no run pays the first call's compilation.

Every kernel is ``@njit(cache=True)``: numba writes its machine code next to the module (or to
``NUMBA_CACHE_DIR``, or a user cache when the package folder is read-only) on the first call
and later processes load it. :func:`warm_up` makes that first call happen at install time
(the Makefile's install steps run ``python -m deleverage.world.warmup``, which calls it and then
warms the world's kernels: :mod:`deleverage.world.warmup`) by running a small run with
isolated and cross positions, liquidations and quiet stretches. benchmarks/cascade_day.py
measures a fresh process with an empty cache and with a filled one (``cold_seconds``,
``warm_seconds``).
"""

from __future__ import annotations

import time

from deleverage.protocols.warmup import warm_up_protocols
from deleverage.sim.scenario import Scenario

#: The warm-up's markets: symbol, price, smallest position and book depth (base units per 1%).
MARKETS = (
    ("BTCUSDT", 60_000.0, 0.002, 2.0),
    ("ETHUSDT", 3_000.0, 0.04, 40.0),
    ("SOLUSDT", 150.0, 0.8, 800.0),
)


def warm_up_scenario(
    n_markets: int = 2, isolated_fraction: float = 0.5, duration_s: float = 600.0
) -> Scenario:
    """``n_markets`` markets of 2,000 positions each (``isolated_fraction`` of them isolated,
    the rest cross), a 15% crash at two minutes, then quiet marks to ``duration_s``."""

    def market(symbol: str, s0: float, size_min: float, depth: float) -> dict[str, object]:
        return {
            "symbol": symbol,
            "preset": "binance",
            "preset_symbol": "BTCUSDT",
            "price": {
                "process": "shock", "s0": s0, "drop_fraction": 0.15, "start_s": 120.0,
                "duration_s": 60.0, "sigma": 0.3,
            },
            "liquidity": {"depth_per_pct": depth, "half_life_s": 60.0},
            "population": {
                "n_positions": 2_000, "isolated_fraction": isolated_fraction,
                "leverage_median": 20.0, "size_min": size_min,
            },
        }  # fmt: skip

    return Scenario.from_mapping(
        {
            "name": "warm-up",
            "seed": 3,
            "duration_s": duration_s,
            "multi_market_accounts": n_markets > 1,
            "markets": [market(*spec) for spec in MARKETS[:n_markets]],
            "insurance": {"fund": 1_000.0},
        }
    )


def warm_up() -> float:
    """Run :func:`warm_up_scenario` with and without quiet stretches, its one-market isolated
    and three-market cross forms and :func:`~deleverage.protocols.warmup.warm_up_protocols`;
    return the seconds. The cross kernels take a market's columns as tuples, so numba compiles
    them once per number of markets: the two- and three-market runs cache those counts."""
    from deleverage.sim.runner import run

    started = time.perf_counter()
    scenario = warm_up_scenario()
    run(scenario)
    run(scenario, quiet=False)
    run(warm_up_scenario(1, isolated_fraction=1.0))  # the isolated-only batch path's kernels
    run(warm_up_scenario(3, isolated_fraction=0.0, duration_s=1_800.0))  # cross stretches
    warm_up_protocols()  # the on-chain protocols' kernels (Maker, Aave, keepers)
    _warm_up_fallbacks()
    warm_up_adl_index()
    return time.perf_counter() - started


def warm_up_adl_index() -> int:
    """A crash that exhausts the insurance fund on a book of isolated traders, so that ADL
    ranks the profitable side from the market's ADL cells (``engine/adl_index.py``, the
    indexed queue of ``pnl_leverage`` rankings) and the batch path's ADL matching runs; then a
    book change and a second crash (the cells' dense view after changes). None of the
    simulator's warm-up runs reaches ADL, so without this a user's first run that does would
    compile these kernels inside it. Returns the ADL rounds (> 0)."""
    import numpy as np

    from deleverage.engine.exchange import Exchange
    from deleverage.liquidity import ConstantDepthBook
    from deleverage.spec import MarginMode, MarketSpec

    rng = np.random.default_rng(5)
    n, price = 3_000, 100.0
    leverage = rng.uniform(1.5, 20.0, n)
    hot = rng.random(n) < 0.02  # longs at 40-100x: bankrupt after a 2% fall
    leverage[hot] = rng.uniform(40.0, 100.0, int(hot.sum()))
    size = np.where(rng.random(n) < 0.5, 1.0, -1.0) * rng.uniform(0.1, 10.0, n).round(3)
    size[hot] = np.abs(size[hot])
    cash = np.abs(size) * price * (1.0 / leverage + 0.0006)  # initial margin and the fee
    spec = MarketSpec.from_mapping(
        {
            "symbol": "BTCUSDT", "lot_size": 0.001, "liquidation_fee_rate": 0.005,
            "tiers": [{"notional_floor": 0, "max_leverage": 100, "maintenance_rate": 0.005}],
        }
    )  # fmt: skip
    ex = Exchange()
    ex.list_market(spec)
    ex.set_mark(0, price)
    ex.set_liquidity(0, ConstantDepthBook(depth_per_pct=n * 0.5, half_life_s=60.0))
    ids = ex.open_accounts(n, margin_mode=MarginMode.ISOLATED)
    ex.deposit_many(ids, cash)
    ex.deposit(ex.insurance_account, 1.0)  # exhausted by the first bankrupt fill
    ex.open_positions(0, ids, size, np.full(n, price), leverage=leverage)
    ex.set_mark(0, price * 0.98, ts_ns=10**9)
    assert ex.last_step is not None
    rounds = ex.last_step.adl_rounds
    more = ex.open_accounts(50, margin_mode=MarginMode.ISOLATED)
    ex.deposit_many(more, np.full(50, 50.0))
    ex.open_positions(0, more, np.full(50, 2.0), np.full(50, 98.0), leverage=np.full(50, 60.0))
    ex.set_mark(0, price * 0.965, ts_ns=2 * 10**9)
    return rounds + ex.last_step.adl_rounds


def _warm_up_fallbacks() -> None:
    """Kernels no warm-up run reaches, called once on empty arrays of the types the engine
    passes (nothing is evaluated): the zone tracker's separate call update (taken where the
    scan was cached before the margin calls, instead of the fused ``refresh_calls_nb``), the
    per-account checks and plans a cascade round falls back to where its one-call round stops
    early (a 10^6-position crash day reaches them), the three-market cross anchor of a scan
    with near accounts, and the portable math and product loops the
    runs did not call (:mod:`deleverage.portable_math`, :mod:`deleverage.portable_linalg`),
    and the quiet stretches' hand-over of their calls' prices (:mod:`.quiet_cache`)."""
    import numpy as np

    from deleverage import portable_linalg, portable_math
    from deleverage.engine.cross_kernels import anchor_nb
    from deleverage.engine.kernels import plan_isolated_liquidations_nb
    from deleverage.engine.quiet_cache import stretch_kept_nb
    from deleverage.engine.risk.step_kernels import close_sizes_nb, isolated_below_among_nb
    from deleverage.engine.zone_kernels import calls_apply_nb

    portable_math.warm_up()
    portable_linalg.warm_up()
    accounts = np.zeros(1, dtype=np.int64)
    flags = np.zeros(1, dtype=np.bool_)
    one = np.ones(1)
    calls_apply_nb(
        accounts[:0], accounts, np.zeros(1, dtype=np.int8), flags, flags.copy(), one, one, one,
        1.0, np.zeros(1), np.full(1, 0.01), np.zeros(1), 0.0, 0.5,
    )  # fmt: skip
    none = np.zeros(0)
    codes = np.zeros(0, dtype=np.int8)
    isolated_below_among_nb(
        accounts[:0], flags, none, none, none, codes, codes, 1.0, one, one, one, 0.0
    )
    close_sizes_nb(none, none, none, 1.0, one, one, 0.0, True, False, False, 0.0, 0.0, 0.0)
    plan_isolated_liquidations_nb(
        none, none, none, none, 1.0, 1.0, 0.0, 0.0, 1.0, 0.0, 1.0, True, none, none, none, none,
        none, none, flags[:0], 0.0, 0.0, False, np.inf,
    )  # fmt: skip
    # A stretch's called prices handed to the cache (its first call after a warm-up run).
    stretch_kept_nb(0, 0, accounts[:0], flags[:0], none, none, flags[:0], flags[:0], flags)
    three = (one, one, one)
    anchor_nb(
        accounts[:0], np.zeros((0, 3)), np.zeros((0, 3)), np.zeros((0, 3), dtype=np.int8), none,
        np.ones(3), three, three, three, np.zeros(3), 1.0, 0.0, 0,
    )  # fmt: skip


if __name__ == "__main__":
    from deleverage._kernel_cache import KERNEL_CACHE, prune_kernel_caches

    for folder in prune_kernel_caches():
        print(f"removed the kernel cache of other sources: {folder}")
    where = KERNEL_CACHE or "NUMBA_CACHE_DIR"
    print(f"numba kernels compiled and cached in {warm_up():.1f} s ({where})")
