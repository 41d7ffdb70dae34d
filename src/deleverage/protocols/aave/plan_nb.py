"""The venue's ``liquidationCall`` plan, row by row in one compiled pass (§A1-§A6).

:func:`deleverage.protocols.aave.math.liquidation_plan` is the reference: NumPy over arrays, the
contract's steps in order. After a crash the venue plans the same flagged accounts every step
the oracle moves (most of them too small to pay a keeper's gas, §D3), some thirty array
passes over the gathered rows each time. :func:`plan_rows_nb` does the venue's call (the
largest collateral and the largest debt reserve by value, ``debt_to_cover = inf``, the
``LiquidationDataProvider`` amount) for each account in one pass over its row, with the same
float operations in the same order as the reference, so the results are the same bits
(tests/unit/protocols/test_aave_plan_kernel.py compares every field).
"""

from __future__ import annotations

from typing import TypeVar, cast

import numpy as np
import numpy.typing as npt
from numba import njit

__all__ = ["best_opportunity_nb", "plan_rows_nb"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
_F = TypeVar("_F")


def _njit(function: _F) -> _F:
    return cast(_F, njit(cache=True)(function))


@_njit
def plan_rows_nb(
    collateral: FloatArray,
    debt: FloatArray,
    rows: IntArray,
    prices: FloatArray,
    threshold: FloatArray,
    bonus_r: FloatArray,
    fee_r: FloatArray,
    close_factor_hf_threshold: float,
    min_base_max_close_factor_threshold: float,
    min_leftover: float,
    default_close_factor: float,
) -> tuple[
    FloatArray,
    FloatArray,
    FloatArray,
    FloatArray,
    FloatArray,
    npt.NDArray[np.int8],
    FloatArray,
    IntArray,
    IntArray,
]:
    """Health, max debt, repaid, seized, fee, status, deficit (tokens; shape (m, reserves)),
    collateral reserve and debt reserve of each account in ``rows`` (§A1-§A6)."""
    m = rows.shape[0]
    n_r = collateral.shape[1]
    health = np.empty(m)
    max_debt = np.empty(m)
    repaid_out = np.empty(m)
    seized_out = np.empty(m)
    fee_out = np.empty(m)
    status = np.empty(m, dtype=np.int8)
    deficit = np.zeros((m, n_r))
    coll_reserve = np.empty(m, dtype=np.int64)
    debt_reserve = np.empty(m, dtype=np.int64)
    cv = np.empty(n_r)
    for k in range(m):
        i = rows[k]
        # §A1: values at the oracle prices; the reserve choice (first largest, as argmax).
        weighted = 0.0
        total = 0.0
        ci = 0
        di = 0
        for r in range(n_r):
            cv[r] = collateral[i, r] * prices[r] * (1.0 if threshold[r] > 0.0 else 0.0)
            dv = debt[i, r] * prices[r]
            weighted = weighted + cv[r] * threshold[r] if r else cv[r] * threshold[r]
            total = total + dv if r else dv
            if cv[r] > cv[ci]:
                ci = r
            if dv > debt[i, di] * prices[di]:
                di = r
        hf = weighted / total if total > 0.0 else np.inf
        pc = prices[ci]
        pd = prices[di]
        balance = collateral[i, ci]
        owed = debt[i, di]
        bonus = bonus_r[ci]
        fee = fee_r[ci]
        # §A2: close factor.
        coll_value = balance * pc
        debt_value = owed * pd
        capped = (
            coll_value >= min_base_max_close_factor_threshold
            and debt_value >= min_base_max_close_factor_threshold
            and hf > close_factor_hf_threshold
        )
        part = total * default_close_factor
        max_value = part if capped and debt_value > part else debt_value
        most = owed if max_value >= owed * pd else max_value / pd
        cover = min(np.inf, most)
        # §A3-§A4: collateral for the debt, fee.
        wanted = cover * pd / pc * bonus
        if wanted > balance:
            seized = balance
            repaid = balance * pc / pd / bonus
        else:
            seized = wanted
            repaid = cover
        fee_amount = (seized - seized / bonus) * fee
        # §A5: the data provider's adjustment, then the dust rule.
        partial = repaid < owed and seized < balance
        coll_left = (balance - seized) * pc
        debt_left = (owed - repaid) * pd
        short_c = max(0.0, min_leftover - coll_left)
        short_d = max(0.0, min_leftover - debt_left)
        if partial and (short_c > 0.0 or short_d > 0.0):
            if short_c > short_d:
                seized = max(seized - fee_amount - short_c / pc, 0.0)
                repaid = seized * pc / pd / bonus
            else:
                repaid = max(repaid - short_d / pd, 0.0)
                seized = repaid * pd / pc * bonus
            fee_amount = (seized - seized / bonus) * fee
        partial = repaid < owed and seized < balance
        coll_left = (balance - seized) * pc
        debt_left = (owed - repaid) * pd
        dust = partial and (coll_left < min_leftover or debt_left < min_leftover)
        code = 1 if hf >= 1.0 else (2 if dust else 0)
        if code != 0:
            repaid = 0.0
            seized = 0.0
            fee_amount = 0.0
        # §A6: all of the account's collateral seized: its remaining debt is a deficit.
        other = 0.0
        for r in range(n_r):
            other = other + (cv[r] if r != ci else 0.0) if r else (cv[r] if r != ci else 0.0)
        if code == 0 and seized >= balance and other <= 0.0:
            for r in range(n_r):
                deficit[k, r] = debt[i, r]
            deficit[k, di] = max(owed - repaid, 0.0)
        health[k] = hf
        max_debt[k] = most
        repaid_out[k] = repaid
        seized_out[k] = seized
        fee_out[k] = fee_amount
        status[k] = code
        coll_reserve[k] = ci
        debt_reserve[k] = di
    return (
        health,
        max_debt,
        repaid_out,
        seized_out,
        fee_out,
        status,
        deficit,
        coll_reserve,
        debt_reserve,
    )


@_njit
def best_opportunity_nb(
    status: npt.NDArray[np.int8],
    repaid: FloatArray,
    seized: FloatArray,
    fee: FloatArray,
    coll_reserve: IntArray,
    debt_reserve: IntArray,
    market: FloatArray,
    since: IntArray,
    accounts: IntArray,
    liquidatable: int,
) -> tuple[int, float, int]:
    """Of the planned liquidations that can run (``status == liquidatable`` and debt repaid
    ``> 0``): how many, the largest keeper incentive ``(seized - fee) x P_c - repaid x P_d``
    (quote, at the market prices ``market``; NaN if any is NaN, as NumPy's ``max``) and the
    earliest block an account was flagged (``since``): §D3's skip bound reads only these, so
    a step whose pass would act on nothing needs no arrays (-1 and NaN when none can run)."""
    count = 0
    best = -np.inf
    oldest = np.iinfo(np.int64).max
    nan = False
    for k in range(status.shape[0]):
        if status[k] != liquidatable or not repaid[k] > 0.0:
            continue
        count += 1
        need = repaid[k] * market[debt_reserve[k]]
        incentive = (seized[k] - fee[k]) * market[coll_reserve[k]] - need
        if incentive != incentive:
            nan = True
        elif incentive > best:
            best = incentive
        seen = since[accounts[k]]
        if seen < oldest:
            oldest = seen
    if count == 0:
        return 0, np.nan, -1
    return count, np.nan if nan else best, oldest
