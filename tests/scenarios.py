"""Small scenarios shared by the report, CLI and browser tests (TOML text)."""

from __future__ import annotations

#: A 20% crash over two minutes on a thin book: liquidations, a cascade and a drained fund in
#: about a second of running.
SMALL_CRASH = """
name = "small-crash"
description = "A 20% crash over two minutes on a thin book, 600 positions"
seed = 11
dt_s = 1.0
duration_s = 300

[[markets]]
symbol = "BTCUSDT"
preset = "binance"
price = { process = "shock", s0 = 60000.0, drop_fraction = 0.2, start_s = 30.0, duration_s = 120.0 }
liquidity = { depth_per_pct = 2.0, half_life_s = 120.0 }
population = { n_positions = 600, long_fraction = 0.8, leverage_median = 25.0, size_min = 0.01 }

[insurance]
fund = 200.0
"""
