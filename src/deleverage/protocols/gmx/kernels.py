"""Compiled per-position close costs for the GMX venue's candidates (numba).

:func:`close_costs_nb` computes, for the positions ``idx``, what ``math.close_price_impact_usd``
(capped as ``isPositionLiquidatable`` caps it), ``math.close_improves_balance`` (which picks
the position fee factor) and the venue's borrowing / funding accrual give, in one loop with
the same floating-point operations in the same order, so the results are bit for bit those of
the NumPy functions where the impact needs no ``power`` (exponent 2, or no impact factor:
NumPy's vectorized ``power`` may round differently from libm's ``pow``, so the venue keeps
the NumPy path for other exponents; its ``full_pass`` reference always does, and a
differential test compares the two). One call replaces some twenty small array operations on
a step that evaluates a few hundred candidates (docs/formulas.md §G2, §G3).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from numba import njit

__all__ = ["close_costs_nb"]

F64 = npt.NDArray[np.float64]


@njit(cache=True)
def close_costs_nb(
    idx: npt.NDArray[np.intp],
    is_long: npt.NDArray[np.bool_],
    size_usd: F64,
    borrow_entry: F64,
    fund_entry: F64,
    long_open_interest_usd: float,
    short_open_interest_usd: float,
    positive_factor: float,
    negative_factor: float,
    exponent: float,
    max_impact_factor: float,
    fee_factor_positive: float,
    fee_factor_negative: float,
    cum_borrow: float,
    fund_long: float,
    fund_short: float,
) -> tuple[F64, F64]:
    """Capped close impact (<= 0, USD) and fees (position fee by ``balanceWasImproved`` plus
    borrowing and funding owed at the cumulative factors given, USD) of closing each position
    ``idx`` whole against the open interest given."""
    n = idx.shape[0]
    capped = np.empty(n)
    fees = np.empty(n)
    L, Sh = long_open_interest_usd, short_open_interest_usd
    diff = L - Sh
    d0 = abs(diff)
    no_impact = positive_factor == 0.0 and negative_factor == 0.0
    p0 = d0**exponent
    for k in range(n):
        i = idx[k]
        size = size_usd[i]
        long_ = is_long[i]
        impact = 0.0
        if not no_impact:
            next_diff = (L - size) - Sh if long_ else L - (Sh - size)
            d1 = abs(next_diff)
            improved = d1 < d0
            p1 = d1 * d1 if exponent == 2.0 else d1**exponent
            if (diff <= 0.0) == (next_diff <= 0.0):
                factor = positive_factor if improved else negative_factor
                same = factor * abs(p0 - p1)
                impact = same if improved else -same
            else:
                impact = positive_factor * p0 - negative_factor * p1
        if impact >= 0.0:
            capped[k] = 0.0
        else:
            capped[k] = max(impact, -size * max_impact_factor)
        balance = diff - size if long_ else diff + size
        fee_factor = fee_factor_positive if abs(balance) < d0 else fee_factor_negative
        side_fund = fund_long if long_ else fund_short
        accrued = size * (cum_borrow - borrow_entry[i]) + size * (side_fund - fund_entry[i])
        fees[k] = size * fee_factor + accrued
    return capped, fees
