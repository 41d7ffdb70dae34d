"""Perpetual funding rates.

A perpetual has no expiry; funding payments between longs and shorts keep its price near the
index. Each period every position receives ``-size x mark x rate`` (the engine's
:meth:`deleverage.exchange.Exchange.settle_funding`). The rate comes from a constant, this
premium rule, or a venue's published history.

Binance USD-M ("Introduction to Binance Futures Funding Rates"):

    F = P + clamp(I - P, -0.05%, +0.05%)

with ``P`` the premium index, ``(mark - index) / index`` here (Binance averages impact-price
premiums over the period), and ``I`` the interest rate, 0.01% per 8-hour period; the result is
capped at ``cap`` either way when given.
"""

from __future__ import annotations

import math

from deleverage.errors import ValidationError

#: Binance's interest rate per 8-hour funding period (0.03% a day).
BINANCE_INTEREST_RATE = 0.0001

#: Binance's clamp on ``I - P``.
BINANCE_CLAMP = 0.0005


def premium_funding_rate(
    mark: float,
    index: float,
    *,
    interest_rate: float = BINANCE_INTEREST_RATE,
    clamp: float = BINANCE_CLAMP,
    cap: float | None = None,
) -> float:
    """Funding rate of one period from the premium of the mark over the index.

    ``F = P + clamp(I - P, -clamp, clamp)``, ``P = (mark - index) / index``, then capped to
    ``[-cap, cap]`` when ``cap`` is given.

    Examples
    --------
    At parity the rate is the interest rate; 1% above the index it is the premium less the
    clamp:

    >>> premium_funding_rate(100.0, 100.0)
    0.0001
    >>> round(premium_funding_rate(101.0, 100.0), 10)
    0.0095
    """
    for name, value in (("mark", mark), ("index", index)):
        if not math.isfinite(value) or value <= 0:
            raise ValidationError(name, value, "must be a finite number > 0")
    if not math.isfinite(clamp) or clamp < 0:
        raise ValidationError("clamp", clamp, "must be a finite number >= 0")
    premium = (mark - index) / index
    rate = premium + min(max(interest_rate - premium, -clamp), clamp)
    if cap is not None:
        if not math.isfinite(cap) or cap <= 0:
            raise ValidationError("cap", cap, "must be a finite number > 0")
        rate = min(max(rate, -cap), cap)
    return rate
