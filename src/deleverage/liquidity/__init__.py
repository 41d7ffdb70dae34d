"""Liquidity models: what a market order pays, how far it moves the price, how the book recovers.

A forced order (a liquidation) does not fill at the mark price: it walks the order book, level
after level, and each unit fills at a worse price than the one before. This module models the
outside liquidity a venue's forced orders hit.

**One state variable.** Every model here is a *supply curve in net consumed depth*. Let ``x`` be
the depth consumed so far, in base units, signed: ``x > 0`` after net buying (asks taken),
``x < 0`` after net selling. The book's shape gives the relative displacement ``G(x)`` of the
price (``G(0) = 0``, ``G`` non-decreasing), and a market order of side ``s`` (``+1`` buy, ``-1``
sell) and size ``q`` fills its units at ``p(y) = mid (1 + touch_s + G(y))`` for ``y`` from
``x`` to ``x + s q``, where ``mid`` is the *exogenous* (unimpacted) mid price and ``touch_s``
is the half-spread on that side (zero for the analytic models). Hence

    vwap = mid (1 + touch_s + (1 / (s q)) ∫_x^{x + s q} G(y) dy),   impact = G(x).

This is the Obizhaeva-Wang (2013) limit-order-book model with the general shape of Alfonsi,
Fruth & Schied (2010), both sides joined into one curve: the book shifts with the price, so a
buy after a sell walks back up the displaced region, and a round trip at one instant costs the
spread and nothing more. ``price_impact`` is ``G(x)``: the simulator moves the mark by it,
``mark = exogenous price x (1 + impact)``.

**Resilience.** Consumed depth refills toward the base book exponentially (Obizhaeva-Wang's
resilience, Alfonsi-Fruth-Schied's "volume impact" recovery):
``x(t + dt) = x(t) exp(-ln 2 dt / half_life_s)``. After one half-life half the consumed depth
remains; for the linear book that is half the impact, for the power law ``2^-delta`` of it.

**Models.**

- :class:`ConstantDepthBook`: ``depth_per_pct`` base units per 1 % of price, so
  ``G(x) = x / D`` with ``D = 100 depth_per_pct`` and ``vwap = mid (1 + (x + s q / 2) / D)``.
- :class:`PowerLawImpact`: ``G(x) = sign(x) Y sigma (|x| / V)^delta``, the square-root law of
  market impact for ``delta = 0.5`` (Tóth et al. 2011; Donier & Bonart 2015 for Bitcoin).
- :class:`L2Book`: explicit price levels per side, walked level by level; loads from CSV,
  Parquet, a DataFrame, or a Binance ``bookDepth`` snapshot
  (:meth:`L2Book.from_binance_book_depth`).
  Levels are stored relative to the snapshot's mid, so a quote at another mid scales them.

All three implement :class:`LiquidityModel`. The analytic models also expose pure functions:
vectorized formulas (:func:`linear_vwap`, :func:`linear_size_for_price_move`,
:func:`power_law_impact`, :func:`power_law_vwap`, :func:`power_law_size_for_price_move`) and
scalar fill kernels with compiled twins for the cascade's hot loop (:func:`linear_fill`,
:data:`linear_fill_nb`, :func:`power_law_fill`, :data:`power_law_fill_nb`).

Formulas, sources and worked examples: docs/formulas.md, section "Liquidity".
"""

from __future__ import annotations

from deleverage.liquidity.books import (
    ConstantDepthBook,
    PowerLawImpact,
)
from deleverage.liquidity.depth_files import (
    bundled_book_depth_sample,
    read_binance_book_depth,
)
from deleverage.liquidity.l2 import (
    L2Book,
)
from deleverage.liquidity.model import (
    BUY,
    LN2,
    NS_PER_S,
    SELL,
    ArrayLike,
    BandPlacement,
    Exhaustion,
    Fill,
    FloatArray,
    LiquidityModel,
    LiquidityState,
    decay_factor,
    linear_fill,
    linear_fill_nb,
    linear_last_price,
    linear_size_for_price_move,
    linear_vwap,
    power_law_fill,
    power_law_fill_nb,
    power_law_impact,
    power_law_size_for_price_move,
    power_law_vwap,
)

__all__ = [
    "BUY",
    "LN2",
    "NS_PER_S",
    "SELL",
    "ArrayLike",
    "BandPlacement",
    "ConstantDepthBook",
    "Exhaustion",
    "Fill",
    "FloatArray",
    "L2Book",
    "LiquidityModel",
    "LiquidityState",
    "PowerLawImpact",
    "bundled_book_depth_sample",
    "decay_factor",
    "linear_fill",
    "linear_fill_nb",
    "linear_last_price",
    "linear_size_for_price_move",
    "linear_vwap",
    "power_law_fill",
    "power_law_fill_nb",
    "power_law_impact",
    "power_law_size_for_price_move",
    "power_law_vwap",
    "read_binance_book_depth",
]
