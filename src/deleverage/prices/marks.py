"""Mark prices the way venues compute them, as pure functions of their inputs.

A venue sees three prices of one market:

- the **index** (or oracle) price: the price of the rest of the market, a weighted median of
  outside sources (spot venues, other perps); a replayed history is the index;
- the venue's own **book** price: its order book's mid (and last trade), which the venue's own
  forced flow moves;
- the **mark** price: what margin, liquidations and unrealized PnL use. Each venue combines the
  first two by its own rule, so that one venue's book cannot liquidate its traders by itself.

The rules (docs/formulas.md, "Index, book and mark"):

- Binance (and the CEX perps that copy it): ``mark = median(P1, P2, last)`` with
  ``P1 = index (1 + f tau)`` (the last funding rate ``f`` times the fraction ``tau`` of the
  funding interval left) and ``P2 = index + MA(mid - index)`` (a 30-minute moving average of the
  basis sampled every minute) (:func:`binance_mark`);
- Hyperliquid: ``mark = median(oracle + EMA_150s(mid - oracle), book mid, external perps)``
  (:func:`hyperliquid_mark`);
- oracle marks (dYdX v4, Drift, GMX, Synthetix): ``mark = oracle`` (:func:`oracle_mark`);
- ``book``: the venue's last price, ``mark = book mid`` (the simulator's earlier model).

Every function takes and returns quote-per-base prices (floats) and raises
:class:`~deleverage.errors.ValidationError` naming the input on a non-finite or non-positive
price.
"""

from __future__ import annotations

import math
from typing import Literal

from deleverage.errors import ValidationError

#: Mark rules the simulator knows; ``venue`` in a scenario picks one from the preset's name.
MarkRule = Literal["book", "binance", "hyperliquid", "oracle"]
MARK_RULES: tuple[MarkRule, ...] = ("book", "binance", "hyperliquid", "oracle")

#: Mark rule of each venue preset (presets not listed use ``book``).
VENUE_MARK_RULES: dict[str, MarkRule] = {
    "binance": "binance",
    "bybit": "binance",
    "okx": "binance",
    "bitmex": "binance",
    "hyperliquid": "hyperliquid",
    "dydx_v4": "oracle",
    "drift": "oracle",
    "gmx": "oracle",
    "gmx_v2": "oracle",
    "synthetix": "oracle",
}

#: Binance's basis moving average: 30 one-minute samples.
BINANCE_BASIS_WINDOW_S = 1800.0
BINANCE_BASIS_SAMPLE_S = 60.0
#: Hyperliquid's EMA of (mid - oracle), seconds.
HYPERLIQUID_EMA_S = 150.0


def _price(field: str, value: float) -> float:
    v = float(value)
    if not (math.isfinite(v) and v > 0.0):
        raise ValidationError(field, value, "must be a finite price > 0")
    return v


def _finite(field: str, value: float) -> float:
    v = float(value)
    if not math.isfinite(v):
        raise ValidationError(field, value, "must be a finite number")
    return v


def median3(a: float, b: float, c: float) -> float:
    """The middle one of three numbers.

    >>> median3(3.0, 1.0, 2.0)
    2.0
    """
    return max(min(a, b), min(max(a, b), c))


def funding_basis_price(
    index_price: float, funding_rate: float, time_left_fraction: float
) -> float:
    """Binance's ``Price 1 = index (1 + f tau)``.

    Parameters
    ----------
    index_price
        Index, quote/base (> 0).
    funding_rate
        Last funding rate, fraction per interval.
    time_left_fraction
        ``tau``: time until the next funding over the funding interval, in ``[0, 1]``.

    >>> funding_basis_price(100.0, 0.001, 0.5)
    100.05
    """
    x = _price("index_price", index_price)
    f = _finite("funding_rate", funding_rate)
    tau = _finite("time_left_fraction", time_left_fraction)
    if not 0.0 <= tau <= 1.0:
        raise ValidationError("time_left_fraction", time_left_fraction, "must be in [0, 1]")
    return x * (1.0 + f * tau)


def binance_mark(
    *,
    last_price: float,
    index_price: float,
    basis_average: float,
    funding_rate: float,
    time_left_fraction: float,
) -> float:
    """Binance USDⓈ-M mark: ``median(index (1 + f tau), index + MA(basis), last price)``.

    Parameters
    ----------
    last_price
        The venue's last traded price (its book), quote/base.
    index_price
        Index price, quote/base.
    basis_average
        Moving average of ``(bid1 + ask1) / 2 - index`` (quote/base; 30 one-minute samples).
    funding_rate, time_left_fraction
        See :func:`funding_basis_price`.

    Examples
    --------
    The book fell 5% under an index of 100 and the basis average is -1: the mark is
    ``median(100, 99, 95) = 99``, not the book's 95.

    >>> binance_mark(last_price=95.0, index_price=100.0, basis_average=-1.0,
    ...              funding_rate=0.0, time_left_fraction=0.5)
    99.0
    """
    last = _price("last_price", last_price)
    x = _price("index_price", index_price)
    basis = _finite("basis_average", basis_average)
    p1 = funding_basis_price(x, funding_rate, time_left_fraction)
    return median3(p1, max(x + basis, 1e-12), last)


def hyperliquid_mark(
    *,
    oracle_price: float,
    basis_ema: float,
    book_mid: float,
    external_perp: float,
) -> float:
    """Hyperliquid mark: ``median(oracle + EMA(mid - oracle), book mid, external perps)``.

    Parameters
    ----------
    oracle_price
        Hyperliquid's oracle (a weighted median of spot venues), quote/base.
    basis_ema
        150-second EMA of ``mid - oracle``, quote/base.
    book_mid
        Hyperliquid's own mid (the median of best bid, best ask and last trade).
    external_perp
        Weighted median of other venues' perp mids (the rest of the market).

    >>> hyperliquid_mark(oracle_price=100.0, basis_ema=-2.0, book_mid=90.0, external_perp=100.0)
    98.0
    """
    oracle = _price("oracle_price", oracle_price)
    ema = _finite("basis_ema", basis_ema)
    mid = _price("book_mid", book_mid)
    external = _price("external_perp", external_perp)
    return median3(max(oracle + ema, 1e-12), mid, external)


def oracle_mark(*, oracle_price: float) -> float:
    """Oracle mark (dYdX v4, Drift, GMX, Synthetix): the mark is the oracle price.

    >>> oracle_mark(oracle_price=101.5)
    101.5
    """
    return _price("oracle_price", oracle_price)


def ema_step(previous: float, sample: float, dt_s: float, time_constant_s: float) -> float:
    """One step of a continuous-time EMA: ``e + (1 - exp(-dt / T)) (sample - e)``.

    >>> round(ema_step(0.0, 1.0, 150.0, 150.0), 6)
    0.632121
    """
    if not (dt_s >= 0.0 and time_constant_s > 0.0):
        raise ValidationError("dt_s", dt_s, "must be >= 0 with a time constant > 0")
    weight = -math.expm1(-dt_s / time_constant_s)
    return previous + weight * (sample - previous)


def venue_mark_rule(preset: str | None) -> MarkRule:
    """The mark rule of a venue preset (``book`` for a market given by its own spec)."""
    if preset is None:
        return "book"
    return VENUE_MARK_RULES.get(preset, "book")
