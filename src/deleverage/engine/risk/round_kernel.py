"""A batch liquidation round in one compiled call: rank, plan, settle, re-check.

The batch path (:meth:`BatchStage._batch_isolated`) took a round of isolated liquidations
through five compiled calls and the Python between them: the candidates ranked by distress
(:func:`~deleverage.engine.risk.distress.ranked_candidates_nb`), their sizes to close
(:func:`~deleverage.engine.risk.step_kernels.close_sizes_nb`), the plan
(:func:`~deleverage.engine.kernels.plan_isolated_liquidations_nb`), the settlement
(:func:`~deleverage.engine.risk.batch_settle.settle_money_nb`) and, in the risk step's next
round, the check of the accounts the round touched
(:func:`~deleverage.engine.risk.step_kernels.isolated_below_among_nb`). On a cascade day a
round liquidates ~55 positions and the Python around those calls (gathers, buffers, the
dispatch of ~90 arguments, ~20 returned arrays) cost more than the kernels.
:func:`round_nb` calls the same kernels in the same order on the same arrays, so every
figure is theirs bit for bit; it stops before the settlement (touching no state) where the
separate path must take over: candidates whose healths tie or are NaN (the lexsort's order),
a position flagged for ADL (the plan again with the queues' capacity), more rows than
``max_rows`` (the separate batches).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from numba import njit

from deleverage.engine.kernels import plan_isolated_liquidations_nb
from deleverage.engine.risk.batch_settle import settle_money_nb
from deleverage.engine.risk.exact_sum import fsum_nb
from deleverage.engine.risk.prefetch import prefetch
from deleverage.engine.risk.step_kernels import (
    _np_minimum,
    close_sizes_nb,
    isolated_below_among_nb,
)

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

#: :func:`round_nb`'s outcomes: settled; stopped before the plan (ties or NaN among the
#: healths: the caller ranks); stopped after the plan (a position flagged for ADL, or more
#: positions filled than ``max_rows``: the caller plans and settles the separate way).
SETTLED, UNRANKED, ADL_FLAGGED, TOO_MANY = 0, 1, 2, 3
#: ``close_kind``: how the sizes to close are found (``_sizes_to_close``' branches).
CLOSE_FULL, CLOSE_TIERED, CLOSE_FRACTION = 0, 1, 2
#: Rows of the plan's working array: the ranked candidates' equity, maintenance and size,
#: then the plan's six rows (filled, price, penalty, shortfall, cover, own).
EQUITY, MAINT, SIZE, PLANNED = 0, 1, 2, 3
#: ``scratch_i``'s first entries: the rows filled, the length of settle_money_nb's lists
#: (which follow from ``S_HEAD``, then the accounts still under maintenance).
S_N, S_LISTS, S_AFTER, S_HEAD = 0, 1, 2, 3
#: Entries of ``pf`` (floats fixed by the market's spec) and ``pi`` (integers).
(F_FEE, F_TAKEOVER, F_FEE_IN, F_BUFFER, F_LOT, F_MIN_MARGIN, F_FRACTION, F_FRACTION_MIN) = range(8)
(I_CLOSE, I_TIER_DOWN, I_FIRST, I_INITIAL, I_ADL, I_RECOURSE, I_FEE_ACC, I_BOOK_ACC, I_FUND,
 I_MARKET, I_POLICY, I_MAX_ROWS) = range(12)  # fmt: skip


@njit(cache=True)
def _close_sizes(
    size: FloatArray,
    equity: FloatArray,
    maint: FloatArray,
    mark: float,
    pf: FloatArray,
    pi: IntArray,
    floor: FloatArray,
    rates: FloatArray,
) -> FloatArray:
    """``_sizes_to_close_fast``: ``|size|`` for a ``full`` policy, :func:`close_sizes_nb` for
    a ``tier_down`` or ``partial`` one, ``_sizes_to_close``' ``fixed_fraction`` expressions
    element by element (``np.where`` picks, ``np.minimum``'s tie and NaN rule)."""
    kind = pi[I_CLOSE]
    if kind == CLOSE_TIERED:
        return close_sizes_nb(
            size, equity, maint, mark, floor, rates, pf[F_FEE_IN], pi[I_TIER_DOWN] != 0,
            pi[I_FIRST] != 0, pi[I_INITIAL] != 0, pf[F_BUFFER], pf[F_FEE], pf[F_LOT],
        )  # fmt: skip
    out = np.empty(len(size))
    for i in range(len(size)):
        abs_size = abs(size[i])
        if kind == CLOSE_FULL:
            out[i] = abs_size
            continue
        notional = abs_size * mark
        close = abs_size * pf[F_FRACTION] if notional > pf[F_FRACTION_MIN] else abs_size
        out[i] = abs_size if equity[i] <= 0.0 else _np_minimum(close, abs_size)
    return out


@njit(cache=True)
def _stopped(
    status: int, consumed: float
) -> tuple[int, float, npt.NDArray[np.int16], IntArray, FloatArray]:
    """:func:`round_nb`'s result when it stops before settling: no rows."""
    return (
        status, consumed, np.zeros(0, dtype=np.int16), np.zeros((4, 0), dtype=np.int64),
        np.zeros((5, 0)),
    )  # fmt: skip


@njit(cache=True)
def round_nb(
    below: IntArray,
    equity_in: FloatArray,
    maint_in: FloatArray,
    ranked: bool,
    debt_in: FloatArray,
    carried_in: FloatArray,
    pf: FloatArray,
    pi: IntArray,
    floor: FloatArray,
    rates: FloatArray,
    mmr: FloatArray,
    cum: FloatArray,
    mark: float,
    book_mid: float,
    depth: float,
    consumed: float,
    max_move: float,
    fund_ids: IntArray,
    kinds: npt.NDArray[np.int8],
    flags: npt.NDArray[np.bool_],
    cash: FloatArray,
    isolated_margin: FloatArray,
    mode: npt.NDArray[np.int8],
    size: FloatArray,
    entry: FloatArray,
    realized_pnl: FloatArray,
    plan_i: IntArray,
    scratch_i: IntArray,
    scratch_f: FloatArray,
) -> tuple[int, float, npt.NDArray[np.int16], IntArray, FloatArray]:
    """One batch round of market ``pi[I_MARKET]`` (module docstring).

    Inputs: the isolated positions under maintenance that a liquidator has reached
    (``below`` with their equity and maintenance; ``ranked``: already in distress order, else
    ranked here when no two healths tie and none is NaN), the bad debt declared and the
    deficits carried per candidate (empty for none), the spec's figures (``pf``, ``pi``), the
    tiers in force (``rates``: the initial rates for an ``initial`` target, else the
    maintenance rates), the mark and the book (``depth = inf``: fills at the mark), the fund
    accounts, the state's columns, a scratch flag per account (all False, left so), the
    caller's buffer for the ranked accounts (``plan_i``, ``len(below)``) and its scratch
    arrays (``scratch_i`` at least ``S_HEAD + 11 + 7 len(below)`` long, ``scratch_f``
    ``5 len(below) + 10``).

    Returns the outcome (``SETTLED`` ...), the book's consumed depth after the plan and, when
    settled, the round's journal rows (``settle_money_nb``'s kinds, ints and floats; none
    otherwise). Settled, ``scratch_i`` holds the rows filled ``n`` (``S_N``), the length of
    ``settle_money_nb``'s index lists (``S_LISTS``) and the count of the round's accounts
    still under maintenance (``S_AFTER``), then from ``S_HEAD`` those lists, those
    accounts (ascending, as ``isolated_below_among_nb`` finds them after the settlement)
    and the ``2 n`` accounts of the fills' rows (``ints[0, :n]``, then ``ints[1, :n]``);
    ``scratch_f`` its per-position figures (``2 n + 5``), the shortfall of each position
    filled (``n``), the health of those still under maintenance, then the ``math.fsum`` of
    each of the five groups' amounts (:func:`~deleverage.engine.risk.exact_sum.fsum_nb`;
    NaN where not finite).
    """
    k = len(below)
    for i in range(k):  # the candidates' rows, cold in the day: ask for all lines at once
        a = below[i]
        prefetch(size, a)
        prefetch(cash, a)
        prefetch(isolated_margin, a)
        prefetch(entry, a)
        prefetch(realized_pnl, a)
        prefetch(mode, a)
        prefetch(kinds, a)
        prefetch(flags, a)
    plan_f = np.zeros((PLANNED + 6, k))
    to_adl = np.zeros(k, dtype=np.bool_)
    equity = plan_f[EQUITY]
    maint = plan_f[MAINT]
    if ranked:
        order = np.arange(k)
    else:  # ``ranked_candidates_nb``'s health and sort
        health = np.empty(k)
        for i in range(k):
            m = maint_in[i]
            floor_m = m if (m != m or m > 1e-12) else 1e-12  # np.maximum(m, 1e-12)
            health[i] = (equity_in[i] - m) / floor_m
            if health[i] != health[i]:
                return _stopped(UNRANKED, consumed)
        order = np.argsort(health)
        for i in range(1, k):
            if health[order[i]] == health[order[i - 1]]:
                return _stopped(UNRANKED, consumed)
    for i in range(k):
        plan_i[i] = below[order[i]]
        equity[i] = equity_in[order[i]]
        maint[i] = maint_in[order[i]]
    size_p = plan_f[SIZE]
    cash_before = np.empty(k)
    debt = np.empty(len(debt_in))
    carried = np.empty(len(carried_in))
    for i in range(k):
        a = plan_i[i]
        size_p[i] = size[a]
        if len(debt_in):  # ``cash[idx] + debt``, as ``cash[idx] + 0.0`` without
            debt[i] = debt_in[order[i]]
            cash_before[i] = cash[a] + debt[i]
        else:
            cash_before[i] = cash[a] + 0.0
        if len(carried_in):
            carried[i] = carried_in[order[i]]
    close = _close_sizes(size_p, equity, maint, mark, pf, pi, floor, rates)
    planned = plan_f[PLANNED:]
    _, consumed_after = plan_isolated_liquidations_nb(
        size_p, equity, close, cash_before, mark, book_mid, pf[F_FEE], cash[pi[I_FUND]], depth,
        consumed, max_move, pi[I_ADL] != 0, planned[0], planned[1], planned[2], planned[3],
        planned[4], planned[5], to_adl, np.inf, np.inf, pi[I_RECOURSE] != 0, pf[F_TAKEOVER],
    )  # fmt: skip
    done = np.empty(k, dtype=np.bool_)
    n_done = 0
    for i in range(k):
        if to_adl[i]:
            return _stopped(ADL_FLAGGED, consumed_after)
        done[i] = planned[0][i] > 0.0
        n_done += done[i]
    if n_done > pi[I_MAX_ROWS]:
        return _stopped(TOO_MANY, consumed_after)
    accounts, r_kind, ints, floats, lists, rows_f = settle_money_nb(
        plan_i, done, size_p, equity, planned, carried, debt, kinds, fund_ids, cash,
        isolated_margin, mode, size, entry, realized_pnl, pi[I_FEE_ACC], pi[I_BOOK_ACC],
        pi[I_FUND], pi[I_MARKET], pi[I_POLICY], mark, pi[I_RECOURSE] != 0,
    )  # fmt: skip
    after, health = isolated_below_among_nb(
        plan_i, flags, size, entry, isolated_margin, mode, kinds, mark, floor, mmr, cum,
        pf[F_MIN_MARGIN],
    )  # fmt: skip
    # The bookkeeping's figures into the caller's scratch (a returned array costs ~1 us to
    # box): counts, settle_money_nb's lists, the accounts still under maintenance, the
    # accounts the fills touched (contiguous: ``ints[:2, :n].ravel()`` copies in ~1-3 us);
    # its per-position figures, the shortfall of each position filled, their health, the
    # groups' sums (the fund's records without a Python ``math.fsum``).
    n = len(accounts)
    n_lists = len(lists)
    n_after = len(after)
    scratch_i[S_N], scratch_i[S_LISTS], scratch_i[S_AFTER] = n, n_lists, n_after
    scratch_i[S_HEAD : S_HEAD + n_lists] = lists
    scratch_i[S_HEAD + n_lists : S_HEAD + n_lists + n_after] = after
    filled = S_HEAD + n_lists + n_after  # the fills' accounts, then their counterparties
    scratch_i[filled : filled + n] = ints[0, :n]
    scratch_i[filled + n : filled + 2 * n] = ints[1, :n]
    scratch_f[: 2 * n + 5] = rows_f
    j = 0
    for i in range(k):
        if done[i]:
            scratch_f[2 * n + 5 + j] = planned[3][i]  # the shortfall
            j += 1
    scratch_f[3 * n + 5 : 3 * n + 5 + n_after] = health
    amounts = floats[2]
    sums = 3 * n + 5 + n_after
    for g in range(5):  # ``math.fsum`` of each group's amounts (NaN: not finite)
        lo, hi = n + lists[g], n + lists[g + 1]
        scratch_f[sums + g] = fsum_nb(amounts, lo, hi) if hi > lo else 0.0
    return SETTLED, consumed_after, r_kind, ints, floats
