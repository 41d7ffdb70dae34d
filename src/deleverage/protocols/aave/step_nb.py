"""A step of an Aave market on its narrowed index, up to the keepers, in one compiled call.

After a crash the venue keeps a narrowed health-factor index (§A6 applied twice) and some
accounts stay under ``HF = 1`` for hours, too small to pay a keeper's gas: every step the
oracle moves searches the index, re-flags the accounts, plans their liquidations and asks
§D3's skip bound, about ten NumPy and compiled calls with Python between them.
:func:`narrowed_step_nb` does the venue's own steps in one call, with its kernels and float
operations, so the results are the same bits (tests/unit/protocols/test_aave_step_kernel.py
runs venues with and without it side by side):

1. the outer price-ratio bound (``max(p / ref) / min(p / ref)``, the step's list expression):
   at most the least reference health factor, no account can be under 1; within the narrowed
   index's margin, the inner bound's candidates (the index's head and the changed accounts
   kept aside below it, as ``np.union1d`` gives them) and their exact health factors
   (:func:`~.health_nb.health_rows_nb`, the head's from the index's copies of its rows: read
   one after the other, not gathered from the whole book), under 1 most distressed first,
   ties by account (:func:`~.health_nb.under_rows_nb`'s order); beyond the
   margin the call changes nothing and says so (the venue's Python drops the index);
2. the step's ``_flag``: accounts no longer under 1 forget their flag block, fresh ones take
   the step's block (``since``, in place);
3. the step's plans (:func:`~.plan_nb.plan_rows_nb`) and what §D3's skip bound reads of them
   (:func:`~.plan_nb.best_opportunity_nb`: how many can run, the best incentive at the market
   prices, the oldest flag block).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from numba import njit

from deleverage.protocols.aave.health_nb import health_rows_nb
from deleverage.protocols.aave.plan_nb import best_opportunity_nb, plan_rows_nb

__all__ = ["DROPPED", "narrowed_step_nb", "ratio_bound_nb"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
#: :func:`narrowed_step_nb`'s first result when the outer bound left the narrowed index's
#: margin (nothing changed: the venue's Python drops the index and searches the outer one).
DROPPED = -1


@njit(cache=True)
def ratio_bound_nb(p: FloatArray, ref: FloatArray) -> float:
    """``max_r(p_r / ref_r) / min_r(p_r / ref_r)`` (the step's list expression: the first
    largest and smallest ratio, one division each)."""
    hi = p[0] / ref[0]
    lo = hi
    for r in range(1, p.shape[0]):
        x = p[r] / ref[r]
        if x > hi:
            hi = x
        if x < lo:
            lo = x
    out: float = hi / lo
    return out


@njit(cache=True)
def narrowed_step_nb(
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
    block: int,
) -> tuple[int, IntArray, float, int]:
    """The venue's step on its narrowed index up to the keepers (module docstring): the
    plans that can run (:data:`DROPPED` when the index no longer serves: then nothing
    changed), the accounts under 1 at ``oracle`` in the step's order, the best incentive and
    the oldest flag block of the plans that can run (NaN and -1 when none can).

    ``inner_c`` and ``inner_d`` are the narrowed index's copies of its accounts' rows (in its
    order, as the book holds them now). ``oracle`` and ``market`` are the reserves' oracle and
    market prices (quote reserves 1),
    ``lt_weight`` the thresholds with non-collateral reserves 0, ``plan_constants`` the
    close-factor threshold, the base threshold, the minimum leftover and the default close
    factor; ``since`` (each account's flag block, -1 unflagged) is updated in place as the
    step's ``_flag`` does with ``block``.
    """
    n_r = oracle.shape[0]
    under = np.empty(0, dtype=np.int64)
    under_c = np.empty((0, n_r))
    under_d = np.empty((0, n_r))
    bound = ratio_bound_nb(oracle, ref)
    if not bound <= hf_floor:
        if not bound <= inner_limit:
            return DROPPED, under, np.nan, -1
        inner = ratio_bound_nb(oracle, inner_ref)
        if not inner <= inner_floor:
            k = np.searchsorted(inner_sorted, inner, side="left")
            extra = 0
            for t in range(inner_touched.shape[0]):
                if inner_touched_hf[t] < inner:
                    extra += 1
            if k > 0 or extra > 0:
                weights = np.empty(n_r)
                for r in range(n_r):
                    weights[r] = oracle[r] * lt_weight[r]
                under, under_c, under_d = _under(
                    collateral, debt, inner_order[:k], inner_c[:k], inner_d[:k], inner_touched,
                    inner_touched_hf, inner, extra, weights, oracle,
                )  # fmt: skip
    # The step's _flag (only a change of the flagged set has an effect).
    if flagged.shape[0] or under.shape[0]:
        for a in flagged:
            since[a] = -(since[a] + 2)  # marked: flagged before
        for a in under:
            if since[a] < -1:
                since[a] = -(since[a] + 2)  # flagged before and now: kept
            elif since[a] < 0:
                since[a] = block
        for a in flagged:
            if since[a] < -1:
                since[a] = -1  # flagged before, not now: cleared
    if under.shape[0] == 0:
        return 0, under, np.nan, -1
    # The plans read the accounts' rows as the search left them (copies of the book's values
    # in the accounts' order, just read: the same bits as reading the book).
    plans = plan_rows_nb(
        under_c, under_d, np.arange(under.shape[0]), oracle, threshold, bonus, fee,
        plan_constants[0], plan_constants[1], plan_constants[2], plan_constants[3],
    )  # fmt: skip
    count, best, oldest = best_opportunity_nb(
        plans[5], plans[2], plans[3], plans[4], plans[7], plans[8], market, since, under,
        liquidatable_code,
    )  # fmt: skip
    return count, under, best, oldest


@njit(cache=True)
def _under(
    collateral: FloatArray,
    debt: FloatArray,
    head: IntArray,
    head_c: FloatArray,
    head_d: FloatArray,
    touched: IntArray,
    touched_hf: FloatArray,
    inner: float,
    extra: int,
    weights: FloatArray,
    prices: FloatArray,
) -> tuple[IntArray, FloatArray, FloatArray]:
    """:func:`~.health_nb.under_rows_nb` of ``np.union1d(head, touched[touched_hf < inner])``
    (``extra`` of those): the head's health factors from its rows' copies ``head_c`` and
    ``head_d`` (the same values as the book's, so the same bits), the others' from the book; an
    account in both counts once (its two values are equal). Most distressed first, ties by
    account; with those accounts' collateral and debt rows in that order (row-major copies of
    the values just read)."""
    others = np.empty(extra, dtype=np.int64)
    m = 0
    for t in range(touched.shape[0]):
        if touched_hf[t] < inner:
            others[m] = touched[t]
            m += 1
    head_hf = health_rows_nb(head_c, head_d, np.arange(head.shape[0]), weights, prices)
    others_hf = health_rows_nb(collateral, debt, others, weights, prices)
    below = 0
    for s in range(head.shape[0]):
        if head_hf[s] < 1.0:
            below += 1
    for t in range(extra):
        if others_hf[t] < 1.0:
            below += 1
    accounts = np.empty(below, dtype=np.int64)
    values = np.empty(below)
    source = np.empty(below, dtype=np.int64)  # the row in the head's copies, -1: the book's
    m = 0
    for s in range(head.shape[0]):
        if head_hf[s] < 1.0:
            accounts[m] = head[s]
            values[m] = head_hf[s]
            source[m] = s
            m += 1
    for t in range(extra):
        if others_hf[t] < 1.0:
            accounts[m] = others[t]
            values[m] = others_hf[t]
            source[m] = -1
            m += 1
    by_account = np.argsort(accounts, kind="mergesort")
    kept = np.empty(below, dtype=np.int64)
    m = 0
    for t in range(below):
        if t == 0 or accounts[by_account[t]] != accounts[by_account[t - 1]]:
            kept[m] = by_account[t]
            m += 1
    kept = kept[:m]
    by_health = np.argsort(values[kept], kind="mergesort")
    order = kept[by_health]
    n_r = collateral.shape[1]
    rows_c = np.empty((order.shape[0], n_r))
    rows_d = np.empty((order.shape[0], n_r))
    for t in range(order.shape[0]):
        s = source[order[t]]
        a = accounts[order[t]]
        for r in range(n_r):
            rows_c[t, r] = head_c[s, r] if s >= 0 else collateral[a, r]
            rows_d[t, r] = head_d[s, r] if s >= 0 else debt[a, r]
    return accounts[order], rows_c, rows_d
