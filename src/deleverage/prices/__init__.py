"""Exogenous price paths: stochastic processes and historical replay.

Generators (:mod:`deleverage.prices.processes`) return float64 price arrays on the grid
``t_k = k dt_s`` seconds, shape ``(n_steps + 1,)`` for one asset and ``(n_steps + 1, n_assets)``
for several, from a :class:`numpy.random.Generator` passed in (same seed, same path). Historical
bars (:mod:`deleverage.prices.historical`) load from CSV or Parquet with line-precise checks, and
replay as a price path at any resolution; real crash windows are bundled.
"""

from __future__ import annotations

from deleverage.prices.historical import (
    BINANCE_KLINE_COLUMNS,
    Gap,
    OhlcvBars,
    bundled_crash,
    bundled_description,
    list_bundled,
    load_ohlcv,
    ohlcv_from_frame,
    to_path,
)
from deleverage.prices.processes import (
    SECONDS_PER_YEAR,
    correlation_factor,
    garch11,
    garch11_omega,
    gbm,
    markov_chain,
    merton_jump_diffusion,
    regime_switching,
    shock_path,
    stationary_distribution,
    time_grid,
    validate_correlation,
    validate_transition_matrix,
)

__all__ = [
    "BINANCE_KLINE_COLUMNS",
    "SECONDS_PER_YEAR",
    "Gap",
    "OhlcvBars",
    "bundled_crash",
    "bundled_description",
    "correlation_factor",
    "garch11",
    "garch11_omega",
    "gbm",
    "list_bundled",
    "load_ohlcv",
    "markov_chain",
    "merton_jump_diffusion",
    "ohlcv_from_frame",
    "regime_switching",
    "shock_path",
    "stationary_distribution",
    "time_grid",
    "to_path",
    "validate_correlation",
    "validate_transition_matrix",
]
