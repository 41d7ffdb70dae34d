"""Quiet steps of an Aave market with accounts under water that no keeper takes (§A10).

After a crash some accounts stay under ``HF = 1`` for hours: their liquidation does not pay a
keeper's gas (or a dust rule leaves nothing to take), so every step plans them again, finds
no taker and counts a missed opportunity; as the prices move, accounts near 1 cross it
either way (flagged with the step's block, or cleared). Such a step changes only counters and
those flags when:

1. the venue's narrowed index serves it (the outer price-ratio bound within the narrowed
   index's margin; anything else re-sorts or drops the index); the accounts under 1 at the
   step's oracle prices are found as the step finds them (the outer bound first, then the
   inner bound's candidates and their exact health factors, the step's own kernel);
2. no keeper acts: the plans (:func:`~.plan_nb.plan_rows_nb`, the step's own kernel) leave
   none that can run, or §D3's skip bound (:meth:`~deleverage.protocols.keepers.Keepers.
   none_would_act`: the best incentive at the step's market prices against each able
   keeper's gas at the step's gas price, with the keepers' capital after the proceeds due)
   rules every one out, or the keepers' pass (``Keepers.act``) gives no plan a keeper.

:func:`flagged_quiet_nb` walks a path with the step's own arithmetic (the same kernels and the
same float operations), keeping the flagged set and the flag blocks as the steps would, and
returns the first step it cannot count quiet, with each step's count of plans that could run
(the missed opportunities the step adds), whether the step consults the keepers (then it
settles their proceeds due), how many accounts were flagged before it (its time under water)
and the walk's state after it (flag blocks, flagged accounts, plans' prices): a walk of a
longer path with the same first steps goes on from there (``start``) instead of walking them
again.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from numba import njit

from deleverage.protocols.aave.plan_nb import best_opportunity_nb, plan_rows_nb
from deleverage.protocols.aave.step_nb import ratio_bound_nb

__all__ = ["flagged_quiet_nb"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


@njit(cache=True)
def _health(
    collateral: FloatArray, debt: FloatArray, i: int, weights: FloatArray, prices: FloatArray
) -> float:
    # health_rows_nb's value for one row, without its output array (the same operations).
    weighted = collateral[i, 0] * weights[0]
    owed = debt[i, 0] * prices[0]
    for r in range(1, collateral.shape[1]):
        weighted = weighted + collateral[i, r] * weights[r]
        owed = owed + debt[i, r] * prices[r]
    out: float = weighted / owed if owed > 0.0 else np.inf
    return out


@njit(cache=True)
def flagged_quiet_nb(
    collateral: FloatArray,
    debt: FloatArray,
    lt_weight: FloatArray,
    threshold: FloatArray,
    bonus: FloatArray,
    fee: FloatArray,
    plan_constants: FloatArray,
    liquidatable_code: int,
    oracle: FloatArray,
    market: FloatArray,
    memo: FloatArray,
    memo_valid: bool,
    ref: FloatArray,
    hf_floor: float,
    inner_ref: FloatArray,
    inner_limit: float,
    inner_floor: float,
    inner_sorted: FloatArray,
    inner_order: IntArray,
    inner_c: FloatArray,
    inner_d: FloatArray,
    inner_touched: IntArray,
    inner_touched_hf: FloatArray,
    flagged: IntArray,
    since: IntArray,
    blocks: IntArray,
    gas_price_gwei: FloatArray,
    natives: FloatArray,
    gwei: float,
    starts: IntArray,
    capitals: FloatArray,
    latency: IntArray,
    gas_units: FloatArray,
    min_profit: FloatArray,
    depth: FloatArray,
    start: int,
    n_ok: IntArray,
    consults: BoolArray,
    sizes: IntArray,
) -> tuple[int, IntArray, IntArray, FloatArray, bool]:
    """The first step of the path from step ``start`` on that is not quiet (module
    docstring; ``len(oracle)`` when all are), with, written into ``n_ok``, ``consults`` and
    ``sizes`` at each step walked, its count of plans that could run, whether it consults the
    keepers and how many accounts were flagged before it; then the walk's state: the
    accounts' flag blocks (``since``, a copy), the flagged accounts, the prices of the plans
    in memory and whether they are of the state (``memo``, ``memo_valid``): after the whole
    path when all its steps are quiet (then a walk of a longer path with the same first
    steps goes on from step ``len(oracle)`` with that state: the same results as walking it
    from step 0), else within the step that is not.

    Per step ``j``: the reserves' oracle prices ``oracle[j]`` (quote reserves 1) and market
    prices ``market[j]``, the block, the chain's gas and native prices; ``flagged``, ``since``,
    ``memo`` and ``memo_valid`` the state before step ``start`` (at step 0: the venue's
    flagged accounts, flag blocks and plans in memory, ``memo_valid`` whether those are of
    its state now). ``lt_weight`` is the
    reserves' thresholds with non-collateral ones 0, ``plan_constants`` the close-factor
    threshold, the base threshold, the minimum leftover and the default close factor. The
    keepers' capital is ``capitals[s]`` from step ``starts[s]`` on. ``inner_c`` and
    ``inner_d`` are the narrowed index's copies of its accounts' rows, in its order.
    """
    n = oracle.shape[0]
    n_r = oracle.shape[1]
    accounts = collateral.shape[0]
    since = since.copy()
    current = flagged.copy()
    counted = np.zeros(accounts, dtype=np.bool_)
    keepers = gas_units.shape[0]
    gas_q = np.empty(keepers)
    weights = np.empty(n_r)
    last = memo.copy()
    valid = memo_valid
    seg = 0
    cap = inner_order.shape[0] + inner_touched.shape[0]
    found = np.empty(cap, dtype=np.int64)
    for j in range(start, n):
        p = oracle[j]
        n_ok[j] = 0
        consults[j] = False
        sizes[j] = current.shape[0]
        hit = valid
        if hit:
            for r in range(n_r):
                if p[r] != last[r]:
                    hit = False
                    break
        if not hit:  # the step's _liquidatable on the narrowed index (no index change)
            m = 0
            bound = ratio_bound_nb(p, ref)
            if not bound <= hf_floor:
                if not bound <= inner_limit:
                    return j, since, current, last, valid  # the index would be dropped
                inner = ratio_bound_nb(p, inner_ref)
                if not inner <= inner_floor:
                    k = np.searchsorted(inner_sorted, inner, side="left")
                    for r in range(n_r):
                        weights[r] = p[r] * lt_weight[r]
                    for s in range(k + inner_touched.shape[0]):
                        if s < k:
                            a = inner_order[s]
                        else:
                            t = s - k
                            if not inner_touched_hf[t] < inner:
                                continue
                            a = inner_touched[t]
                        if counted[a]:
                            continue
                        if s < k:  # the index's copy of the account's rows
                            hf = _health(inner_c, inner_d, s, weights, p)
                        else:
                            hf = _health(collateral, debt, a, weights, p)
                        if hf < 1.0:
                            counted[a] = True
                            found[m] = a
                            m += 1
            # The step's _flag: cleared accounts forget their block, fresh ones take this one.
            block = blocks[j]
            for a in current:
                if not counted[a]:
                    since[a] = -1
            current = found[:m].copy()
            for a in current:
                counted[a] = False
                if since[a] < 0:
                    since[a] = block
            for r in range(n_r):
                last[r] = p[r]
            valid = True
        if current.shape[0] == 0:
            continue
        # The step's _liquidate: the plans, then §D3's skip bound.
        plans = plan_rows_nb(
            collateral, debt, current, p, threshold, bonus, fee, plan_constants[0],
            plan_constants[1], plan_constants[2], plan_constants[3],
        )  # fmt: skip
        count, best, oldest = best_opportunity_nb(
            plans[5], plans[2], plans[3], plans[4], plans[7], plans[8], market[j], since,
            current, liquidatable_code,
        )  # fmt: skip
        n_ok[j] = count
        if count == 0:
            continue
        if not np.isfinite(best):
            return j, since, current, last, valid  # the keepers' pass would raise on NaN
        while seg + 1 < starts.shape[0] and starts[seg + 1] <= j:
            seg += 1
        capital = capitals[seg]
        waited = blocks[j] - oldest
        per_unit = gas_price_gwei[j] * gwei * natives[j]  # gas_cost_quote's order
        for q in range(keepers):
            gas_q[q] = gas_units[q] * per_unit
        bound_acts = False
        for q in range(keepers):
            g = gas_q[q]
            if latency[q] <= waited and capital[q] >= g and best - g > min_profit[q]:
                bound_acts = True
                break
        if bound_acts and _someone_wins(
            plans, current, market[j], depth, since, blocks[j], capital, gas_q, latency,
            min_profit, liquidatable_code,
        ):  # fmt: skip
            return j, since, current, last, valid
        consults[j] = True  # the skip bound (or the keepers' pass, won by nobody) ran
    return n, since, current, last, valid


@njit(cache=True)
def _someone_wins(
    plans: tuple[
        FloatArray,
        FloatArray,
        FloatArray,
        FloatArray,
        FloatArray,
        npt.NDArray[np.int8],
        FloatArray,
        IntArray,
        IntArray,
    ],
    accounts: IntArray,
    market: FloatArray,
    depth: FloatArray,
    since: IntArray,
    block: int,
    capital: FloatArray,
    gas: FloatArray,
    latency: IntArray,
    min_profit: FloatArray,
    liquidatable_code: int,
) -> bool:
    """Whether the keepers' pass of the venue's ``_liquidate`` (``Keepers.act`` over the plans
    that can run) gives some plan a keeper: until a first win no capital moves, so that is
    whether some plan ``k`` and keeper ``q`` pass the assignment's three tests (§D3), with the
    venue's need, incentive and expected slippage (``sale_slippage_quote``, 0 for an
    unlimited depth) in its float operations."""
    status, repaid, seized, fee = plans[5], plans[2], plans[3], plans[4]
    coll_reserve, debt_reserve = plans[7], plans[8]
    for k in range(status.shape[0]):
        if status[k] != liquidatable_code or not repaid[k] > 0.0:
            continue
        ci = coll_reserve[k]
        received = seized[k] - fee[k]
        need = repaid[k] * market[debt_reserve[k]]
        pc = market[ci]
        incentive = received * pc - need
        slip = 0.0
        if np.isfinite(depth[ci]):
            vwap = pc * (1.0 + (0.0 + 0.5 * -1.0 * received) / depth[ci])  # linear_vwap
            slip = received * (pc - vwap)
        waited = block - since[accounts[k]]
        for q in range(gas.shape[0]):
            if latency[q] > waited:
                continue
            if capital[q] < need + gas[q]:
                continue
            if incentive - gas[q] - slip > min_profit[q]:
                return True
    return False
