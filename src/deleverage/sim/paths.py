"""Exogenous price paths of a scenario's markets (one column per market).

Stochastic markets draw from one generator; GBM and Merton markets move together through the
scenario's correlation matrix (and its common jumps) when one is given. Historical markets
replay their bars. Every column has ``n_steps + 1`` points on the grid ``t_k = k dt_s``.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from deleverage.errors import ConfigError
from deleverage.prices import (
    bundled_crash,
    garch11,
    garch11_omega,
    gbm,
    load_ohlcv,
    merton_jump_diffusion,
    regime_switching,
    shock_path,
    to_path,
)
from deleverage.sim.scenario import (
    MAX_PRICE,
    MIN_PRICE,
    GarchPrice,
    GbmPrice,
    HistoricalPrice,
    MertonPrice,
    RegimePrice,
    Scenario,
    ShockPrice,
)

FloatArray = npt.NDArray[np.float64]

#: Start of the clock for stochastic scenarios (2026-01-01T00:00:00Z, ns since the epoch).
DEFAULT_START_NS = 1_767_225_600_000_000_000


#: What building the paths noticed about the data (gaps in price files), one line each; the
#: runner copies them into :attr:`deleverage.sim.runner.RunResult.warnings`.
def data_warnings(scenario: Scenario) -> list[str]:
    """Gaps in the scenario's price files, one line per gap (file line, missing bars)."""
    out = []
    for i, market in enumerate(scenario.markets):
        price = market.price
        if not isinstance(price, HistoricalPrice):
            continue
        bars = bundled_crash(price.bundled) if price.bundled is not None else None
        if bars is None:
            assert price.file is not None
            bars = load_ohlcv(price.file)
        for gap in bars.gaps:
            out.append(
                f"markets.{i}.price: {bars.source} line {gap.line}: {gap.missing_bars} bar(s) "
                "missing before it (the path interpolates across the gap)"
            )
    return out


def historical_path(price: HistoricalPrice, dt_s: float) -> tuple[FloatArray, int]:
    """The replayed path and its start time (ns since the epoch)."""
    if price.bundled is not None:
        bars = bundled_crash(price.bundled)
    else:
        assert price.file is not None  # the model requires one of the two
        bars = load_ohlcv(price.file)
    path = to_path(bars, dt_s, method=price.method)
    if price.scale_to is not None:
        path = path * (price.scale_to / path[0])
    return path, bars.ts_start_ns


def scenario_paths(scenario: Scenario, rng: np.random.Generator) -> tuple[FloatArray, int]:
    """Exogenous prices ``(n_steps + 1, n_markets)`` and the start time in ns.

    The run's length is ``duration_s / dt_s`` steps, or the shortest historical path when
    ``duration_s`` is not given (longer paths are cut, shorter ones hold their last price).
    """
    dt = scenario.dt_s
    historical: dict[int, FloatArray] = {}
    start_ns = DEFAULT_START_NS
    for i, market in enumerate(scenario.markets):
        if isinstance(market.price, HistoricalPrice):
            path, ts0 = historical_path(market.price, dt)
            historical[i] = path
            start_ns = ts0 if len(historical) == 1 else start_ns
    if scenario.duration_s is not None:
        n_steps = math.floor(scenario.duration_s / dt + 1e-9)
    else:
        n_steps = min(len(p) for p in historical.values()) - 1
    if n_steps < 1:
        raise ConfigError("duration_s", scenario.duration_s, "must cover at least one dt_s step")
    out = np.empty((n_steps + 1, len(scenario.markets)))
    for i, path in historical.items():
        k = min(len(path), n_steps + 1)
        out[:k, i] = path[:k]
        out[k:, i] = path[k - 1]
    # An overflow makes inf, which the range check reports with the market and the step.
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        _joint(scenario, rng, n_steps, out)
        for i, market in enumerate(scenario.markets):
            if i in historical or isinstance(market.price, GbmPrice | MertonPrice):
                continue
            price = market.price
            assert not isinstance(price, GbmPrice | MertonPrice | HistoricalPrice)
            out[:, i] = _single(price, dt, n_steps, rng)
    _check_range(out)
    return out, start_ns


def _check_range(out: FloatArray) -> None:
    """Every price finite and in ``[MIN_PRICE, MAX_PRICE]``: a drift or volatility that sends
    the path outside (overflow, underflow) is a bad scenario, not a crash of the run."""
    with np.errstate(invalid="ignore"):
        bad = ~(np.isfinite(out) & (out >= MIN_PRICE) & (out <= MAX_PRICE))
    if bad.any():
        step, market = (int(k) for k in np.argwhere(bad)[0])
        raise ConfigError(
            f"markets.{market}.price",
            float(out[step, market]),
            f"must keep the price finite and within [{MIN_PRICE:g}, {MAX_PRICE:g}] over the "
            f"run (it leaves at step {step}): lower sigma, mu or the jumps, or shorten the run",
        )


def _joint(scenario: Scenario, rng: np.random.Generator, n_steps: int, out: FloatArray) -> None:
    """GBM and Merton markets, drawn together (correlated when the scenario says so)."""
    idx = [i for i, m in enumerate(scenario.markets) if isinstance(m.price, GbmPrice | MertonPrice)]
    if not idx:
        return
    prices: list[GbmPrice | MertonPrice] = []
    for i in idx:
        p = scenario.markets[i].price
        assert isinstance(p, GbmPrice | MertonPrice)
        prices.append(p)
    corr = None
    if scenario.correlation is not None:
        corr = np.asarray(scenario.correlation, dtype=np.float64)[np.ix_(idx, idx)]
    s0 = np.array([p.s0 for p in prices])
    mu = np.array([p.mu for p in prices])
    sigma = np.array([p.sigma for p in prices])
    jumps = [p for p in prices if isinstance(p, MertonPrice)]
    common = scenario.common_jumps
    beta = np.ones(len(idx)) if common.beta is None else np.asarray(common.beta)[idx]
    if not jumps and common.intensity == 0.0:
        path = gbm(s0, mu, sigma, scenario.dt_s, n_steps, rng, correlation=corr)
    else:

        def field(name: str) -> FloatArray:
            return np.array(
                [getattr(p, name) if isinstance(p, MertonPrice) else 0.0 for p in prices]
            )

        path = merton_jump_diffusion(
            s0, mu, sigma, field("jump_intensity"), field("jump_mean"), field("jump_std"),
            scenario.dt_s, n_steps, rng, correlation=corr,
            common_jump_intensity=common.intensity, common_jump_mean=common.mean * beta,
            common_jump_std=common.std * beta,
        )  # fmt: skip
    out[:, idx] = np.asarray(path).reshape(n_steps + 1, len(idx))


def _single(
    price: GarchPrice | RegimePrice | ShockPrice,
    dt: float,
    n_steps: int,
    rng: np.random.Generator,
) -> FloatArray:
    if isinstance(price, GarchPrice):
        omega = garch11_omega(price.sigma, price.alpha, price.beta, dt)
        return garch11(price.s0, omega, price.alpha, price.beta, dt, n_steps, rng, mu=price.mu)
    if isinstance(price, RegimePrice):
        return regime_switching(price.s0, price.regimes, price.transition, dt, n_steps, rng)
    if isinstance(price, ShockPrice):
        ramp = shock_path(
            price.s0, price.drop_fraction, price.start_s, price.duration_s, dt, n_steps,
            shape=price.shape,
        )  # fmt: skip
        if price.sigma > 0.0:
            ramp = ramp * gbm(1.0, 0.0, price.sigma, dt, n_steps, rng)
        return ramp
    raise AssertionError(f"unexpected price spec {price!r}")
