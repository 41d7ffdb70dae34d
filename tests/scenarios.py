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

#: A world of two small perp venues on one BTC shock, 100 traders on both (2 minutes).
SMALL_WORLD = """
kind = "world"
name = "small-world"
seed = 3
dt_s = 1.0
duration_s = 120

[[assets]]
name = "BTC"
price = { process = "shock", s0 = 100000.0, drop_fraction = 0.06, start_s = 10, duration_s = 60 }
liquidity = { depth_per_pct = 10.0, half_life_s = 120.0 }

[[venues]]
name = "cex"
kind = "perp"
assets = ["BTC"]
links = { BTC = { liquidity = { depth_per_pct = 5.0 } } }

[venues.config]
preset = "binance"
mark_from = "book"
insurance_fund = 5000.0
population = { n_positions = 600, leverage_median = 20.0, long_fraction = 0.8 }

[[venues]]
name = "dex"
kind = "perp"
assets = ["BTC"]

[venues.config]
preset = "hyperliquid"
population = { n_positions = 400, leverage_median = 10.0, isolated_fraction = 0.2 }

[[shared_traders]]
venues = ["cex", "dex"]
count = 100

[wallets]
interval_s = 10.0
"""

#: A world of every venue kind on one ETH shock (10% over a minute): an order-book perp venue,
#: a GMX v2 pool, a Synthetix perps v3 deployment, an Aave v3.3 market and a Maker collateral
#: type with Dutch auctions (4 minutes).
DEFI_WORLD = """
kind = "world"
name = "defi-world"
description = "Every venue kind on one ETH shock"
seed = 7
dt_s = 1.0
duration_s = 240

[[assets]]
name = "ETH"
price = { process = "shock", s0 = 4000.0, drop_fraction = 0.1, start_s = 10, duration_s = 60 }
liquidity = { depth_per_pct = 500.0, half_life_s = 300.0 }

[[venues]]
name = "cex"
kind = "perp"
assets = ["ETH"]
links = { ETH = { liquidity = { depth_per_pct = 30.0 } } }

[venues.config]
preset = "hyperliquid"
mark_from = "book"
insurance_fund = 5000.0
population = { n_positions = 400, leverage_median = 20.0, long_fraction = 0.8 }

[[venues]]
name = "gmx"
kind = "gmx"
assets = ["ETH"]

[venues.config.market]
long_pool_tokens = 5000.0
short_pool_usd = 2e7
population = { positions = 400, leverage_low = 5.0, leverage_high = 40.0, entry_dispersion = 0.0 }

[[venues]]
name = "snx"
kind = "synthetix"
assets = ["ETH"]

[[venues.config.market.markets]]
asset = "ETH"
skew_scale = 1e6

[venues.config.market.population]
accounts = 400
leverage_low = 5.0
leverage_high = 25.0
entry_dispersion = 0.0

[[venues]]
name = "aave"
kind = "aave"
assets = ["ETH"]

[venues.config]
accounts = 400
min_health = 1.01
health_scale = 0.2

[[venues]]
name = "maker"
kind = "maker"
assets = ["ETH"]

[venues.config.market]
design = "dutch"
osm_delay_s = 0.0
clipper = { buf = 1.05, step_s = 10.0, cut = 0.98 }

[venues.config.population]
n_vaults = 400
collateral_median = 2.0
ratio_median = 1.8
ratio_sigma = 0.15
"""
