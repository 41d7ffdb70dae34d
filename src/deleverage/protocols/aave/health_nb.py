"""Health factors of some accounts, gathered and computed in one compiled pass (§A1, §A6).

The venue's quiet-step bound leaves a few candidate accounts whose health factor it must
compute exactly at the prices now; NumPy would gather their collateral and debt rows (from
column-major arrays) and then combine columns, five passes over fresh arrays. This kernel
reads each account's row once. It does the same float operations in the same order as the
venue's column-by-column NumPy form (``sum_r c_r w_r`` and ``sum_r d_r p_r`` left to right,
then ``W / D``, ``inf`` without debt), so both give the same bits (tests/unit/protocols/
test_aave_health_kernel.py). :func:`under_rows_nb` also keeps those under 1 and sorts them as
the venue does (most distressed first, ties by account), the step's whole search of the
candidates in one call.
"""

from __future__ import annotations

from typing import TypeVar, cast

import numpy as np
import numpy.typing as npt
from numba import njit

__all__ = ["health_rows_nb", "under_rows_nb"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
_F = TypeVar("_F")


def _njit(function: _F) -> _F:
    return cast(_F, njit(cache=True)(function))


@_njit
def health_rows_nb(
    collateral: FloatArray,
    debt: FloatArray,
    rows: IntArray,
    weights: FloatArray,
    prices: FloatArray,
) -> FloatArray:
    """``HF = sum_r c_r w_r / sum_r d_r p_r`` of each account in ``rows`` (``inf`` without
    debt); ``w_r = p_r x LT_r`` (0 for reserves that are not collateral), quote."""
    m = rows.shape[0]
    columns = collateral.shape[1]
    out = np.empty(m, dtype=np.float64)
    for k in range(m):
        i = rows[k]
        weighted = collateral[i, 0] * weights[0]
        owed = debt[i, 0] * prices[0]
        for r in range(1, columns):
            weighted = weighted + collateral[i, r] * weights[r]
            owed = owed + debt[i, r] * prices[r]
        out[k] = weighted / owed if owed > 0.0 else np.inf
    return out


@_njit
def under_rows_nb(
    collateral: FloatArray,
    debt: FloatArray,
    rows: IntArray,
    weights: FloatArray,
    prices: FloatArray,
) -> IntArray:
    """The accounts of ``rows`` with ``HF < 1`` (:func:`health_rows_nb`'s values), most
    distressed first, ties by account: the venue's ``_under`` of those health factors (a
    stable sort by account, then a stable sort by health factor, is NumPy's ``lexsort`` of
    the two keys)."""
    hf = health_rows_nb(collateral, debt, rows, weights, prices)
    below = np.flatnonzero(hf < 1.0)
    accounts = rows[below]
    values = hf[below]
    by_account = np.argsort(accounts, kind="mergesort")
    by_health = np.argsort(values[by_account], kind="mergesort")
    return accounts[by_account[by_health]]
