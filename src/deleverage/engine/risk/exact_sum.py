"""Python's ``math.fsum`` in compiled code, bit for bit (:func:`fsum_nb`).

``math.fsum`` returns the correctly rounded sum of its values: CPython's ``math_fsum``
(Modules/mathmodule.c) keeps the exact sum as a list of non-overlapping partials (Shewchuk's
``msum``: each value added to every partial with the two-sum error kept), then adds the
partials from the largest down while the sum stays exact, and fixes the half-even rounding
across partials (``fsum([1e-16, 1, 1e16])``). :func:`fsum_nb` does the same steps in the same
order on finite values. Where ``math.fsum`` would not return a finite float from finite
values alone (an infinite or NaN value, an intermediate overflow), it returns NaN and the
caller takes the Python path, which then does what it always did.

The batch round (``round_kernel.round_nb``) sums each group of the fund's rows with it, so the
fund's record of the group (``Ledger._fund_group_applied``) gets ``math.fsum``'s figure
without the Python list and sum (tests/unit/risk/test_exact_sum.py compares the two).
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
from numba import njit

FloatArray = npt.NDArray[np.float64]


@njit(cache=True)
def fsum_nb(values: FloatArray, lo: int, hi: int) -> float:
    """``math.fsum(values[lo:hi])`` of finite values, the same float; NaN where ``math.fsum``
    would return a non-finite sum or raise (a non-finite value, an intermediate overflow)."""
    partials = np.empty(hi - lo + 1)
    n = 0
    for k in range(lo, hi):
        x = values[k]
        if not math.isfinite(x):
            return math.nan
        i = 0
        for j in range(n):  # add x to every partial, keeping the exact errors
            y = partials[j]
            if abs(x) < abs(y):
                x, y = y, x
            high = x + y
            lo_part = y - (high - x)
            if lo_part != 0.0:
                partials[i] = lo_part
                i += 1
            x = high
        n = i
        if x != 0.0:
            if not math.isfinite(x):
                return math.nan  # ``math.fsum``: "intermediate overflow in fsum"
            partials[n] = x
            n += 1
    high = 0.0
    if n > 0:  # the partials from the top while the sum is exact
        n -= 1
        high = partials[n]
        lo_part = 0.0
        while n > 0:
            x = high
            n -= 1
            y = partials[n]
            high = x + y
            lo_part = y - (high - x)
            if lo_part != 0.0:
                break
        # half-even rounding across partials (CPython's fix-up after the loop)
        if n > 0 and (
            (lo_part < 0.0 and partials[n - 1] < 0.0) or (lo_part > 0.0 and partials[n - 1] > 0.0)
        ):
            y = lo_part * 2.0
            x = high + y
            if y == x - high:
                high = x
    return float(high)
