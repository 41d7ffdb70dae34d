"""The batch path's round in one compiled call (:func:`run_round`): the Python around it.

:meth:`BatchStage._batch_isolated` ranks the isolated positions under maintenance, plans
their liquidation (``_batch_plan``) and settles the plan (:func:`batch_settle.settle_round`),
each step a compiled call with its buffers, gathers and arguments prepared in Python; the
risk step's next round then checks the accounts the round touched
(``RiskEngine._isolated_candidates_among``). :func:`run_round` hands the candidates to
:func:`~deleverage.engine.risk.round_kernel.round_nb`, which does all of it in one call with
the spec's figures prepared once per market (:func:`_fixed`), and keeps what the risk step's
next check would find for it (``BatchStage.round_after``).

Where the kernel stops before settling (an ADL flag, too many rows) or the market's rules are
not the kernel's (open-interest scaled tiers, a socialized loss), it returns None and the
caller takes the separate path from the start; nothing was written. The results are the
separate path's bit for bit (tests/unit/risk/test_batch_round_twin.py, tests/integration/
test_batch_settle_scenarios_twin.py).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import numpy.typing as npt

from deleverage.engine.risk import batch_settle
from deleverage.engine.risk import round_kernel as rk
from deleverage.engine.risk.batch_settle import _HEAD
from deleverage.engine.risk.distress import distress_order
from deleverage.engine.risk.support import _POLICY_CODES
from deleverage.liquidity import ConstantDepthBook, LiquidityModel
from deleverage.rules.adl_ranking import ranking_for
from deleverage.spec import MarketSpec, TierArrays

if TYPE_CHECKING:
    from deleverage.engine.risk.batch import BatchStage
    from deleverage.engine.risk.support import StepReport

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

#: Set False to take the ranking, plan and settlement as separate calls (the twin tests).
FUSED = True
_EMPTY = np.zeros(0)
#: ``round_after`` once bad debt was declared after the kernel's check: not its accounts.
_MOVED = (np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), np.zeros(0))
_NONE = np.zeros(0, dtype=np.int64)
_NO_HEALTH = np.zeros(0)
_CLOSE_KINDS = {
    "full": rk.CLOSE_FULL,
    "tier_down": rk.CLOSE_TIERED,
    "partial": rk.CLOSE_TIERED,
    "fixed_fraction": rk.CLOSE_FRACTION,
}


class RoundFixed(NamedTuple):
    """A market's figures for :func:`~deleverage.engine.risk.round_kernel.round_nb`, valid
    while ``key`` holds (the spec and tiers in force, the fee, book and fund accounts), and
    the kernel's scratch arrays (rounds of up to ``batch_settle.MAX_ROWS`` candidates)."""

    key: tuple[object, ...]
    fund: int  #: the market's insurance account (``pi[I_FUND]``)
    pf: FloatArray
    pi: IntArray
    rates: FloatArray
    fund_ids: IntArray
    scratch_i: IntArray
    scratch_f: FloatArray


def _fixed(stage: BatchStage, m: int) -> RoundFixed | None:
    """The market's figures for the kernel, kept per market until its spec, tiers, accounts
    or funds change; None where the kernel does not follow the market's rules."""
    ex = stage.ex
    state = ex.markets[m]
    spec = state.spec
    funds = ex.funds
    cached = stage.round_fixed.get(m)
    if cached is not None:  # the same objects (specs and tiers by identity), accounts, funds
        held = cached.key
        if (
            held[0] is spec
            and held[1] is state.tiers
            and held[2] == ex.fee_account
            and held[3] == ex.liquidity_account
            and held[4] == ex._market_fund[m]  # ``insurance_account_for(m)``
            and held[5] == tuple(funds)
        ):
            return cached
    key = (spec, state.tiers, ex.fee_account, ex.liquidity_account, ex.insurance_account_for(m),
           tuple(funds))  # fmt: skip
    fixed = _build(spec, state.tiers, key, m)
    if fixed is not None:
        stage.round_fixed[m] = fixed
    return fixed


def _build(
    spec: MarketSpec, tiers: TierArrays, key: tuple[object, ...], m: int
) -> RoundFixed | None:
    policy = spec.liquidation
    close_kind = _CLOSE_KINDS.get(policy.kind)
    if (
        close_kind is None
        or spec.open_interest_scaling is not None  # the fills re-derive the tiers in force
        or ranking_for(spec.adl).allocation == "socialized"
    ):
        return None
    initial = policy.kind == "partial" and policy.target == "initial"
    cap = spec.adl.fund_takeover_max_notional
    pf = np.array(
        [
            spec.liquidation_fee_rate, math.inf if cap is None else float(cap),
            float(tiers.initial_fee), float(policy.buffer), float(spec.lot_size),
            float(tiers.min_margin), float(policy.fraction), float(policy.fraction_min_notional),
        ],
        dtype=np.float64,
    )  # fmt: skip
    _, _, fee_account, book_account, fund, fund_ids = key
    pi = np.array(
        [
            close_kind, policy.kind == "tier_down", policy.tier_down_target == "first",
            initial, True, policy.isolated_recourse, fee_account, book_account, fund,
            m, _POLICY_CODES[policy.kind], batch_settle.MAX_ROWS,
        ],
        dtype=np.int64,
    )  # fmt: skip
    rates = tiers.imr if initial else tiers.mmr
    ids = np.array(fund_ids, dtype=np.int64)
    rows = batch_settle.MAX_ROWS
    return RoundFixed(
        key, int(pi[rk.I_FUND]), pf, pi, np.ascontiguousarray(rates, dtype=np.float64), ids,
        np.zeros(rk.S_HEAD + _HEAD + 7 * rows, dtype=np.int64), np.zeros(5 * rows + 10),
    )  # fmt: skip


def run_round(
    stage: BatchStage,
    m: int,
    ts: int,
    report: StepReport,
    below: IntArray,
    equity: FloatArray,
    maint: FloatArray,
) -> IntArray | None:
    """Rank, plan and settle a round of the candidates ``below`` (with their equity and
    maintenance, in scan order) in one kernel call; return the accounts it touched (the
    ranked candidates), or None without having written anything (the caller takes the
    separate path)."""
    stage.round_after = None
    k = len(below)
    if k > batch_settle.MAX_ROWS:
        return None  # the separate batches' round (batch_settle.MAX_ROWS)
    fixed = _fixed(stage, m)
    if fixed is None:
        return None
    ex = stage.ex
    state = ex.markets[m]
    tiers = state.tiers
    risk = stage.markets[m]
    book = risk.liquidity
    if book is None:  # ``book_state``, inlined
        depth, consumed, max_move = math.inf, 0.0, 1.0
    else:
        assert isinstance(book, ConstantDepthBook)  # ``_batchable_rules_of``'s
        if book.ts_ns != ts:  # the risk step recovered it to ``ts`` already (then a no-op)
            book.recover(ts)
        depth, consumed, max_move = book.depth, float(book.consumed_depth), book.max_move
    declared = stage.declared_bad_debt
    carried = stage.carried_deficit
    if declared or carried:
        listed = below.tolist()
        debt = np.array([declared.get(a, 0.0) for a in listed]) if declared else _EMPTY
        carried0 = np.array([carried.get(a, 0.0) for a in listed]) if carried else _EMPTY
    else:
        debt = carried0 = _EMPTY
    cols = ex._positions[m]
    plan_i = np.empty(k, dtype=np.int64)
    mark = state.mark
    si, sf = fixed.scratch_i, fixed.scratch_f
    ranked = False
    mid = mark if book is None or risk.book_mid is None else risk.book_mid  # ``book_price``
    flags = stage._scratch_flags
    if len(flags) < ex._n:
        flags = _scratch(stage, ex._n)
    while True:
        status, consumed_after, kind, ints, floats = rk.round_nb(
            below, equity, maint, ranked, debt, carried0, fixed.pf, fixed.pi, tiers.floor,
            fixed.rates, tiers.mmr, tiers.cum, mark, mid, depth, consumed,
            max_move, fixed.fund_ids, ex._kind, flags, ex._cash,
            cols.isolated_margin, cols.mode, cols.size, cols.entry, cols.realized_pnl, plan_i,
            si, sf,
        )  # fmt: skip
        if status != rk.UNRANKED:
            break
        # Tied or NaN healths: the lexsort's order (``distress_order``), then the same call.
        order = distress_order(below, (equity - maint) / np.maximum(maint, 1e-12))
        below, equity, maint = below[order].astype(np.int64), equity[order], maint[order]
        if len(debt):
            debt = debt[order]
        if len(carried0):
            carried0 = carried0[order]
        ranked = True
    if status != rk.SETTLED:
        return None  # nothing written: the separate path plans and settles the round again
    if book is not None:
        book.restore_consumed(consumed_after, ts)
    counts = si[: rk.S_HEAD + _HEAD].tolist()  # the counts, then the lists' header
    n, n_lists, n_after = counts[rk.S_N], counts[rk.S_LISTS], counts[rk.S_AFTER]
    start = rk.S_HEAD + n_lists
    if n:
        _book(stage, m, ts, report, fixed, n, n_after, kind, ints, floats, si, counts, sf)
    if stage.round_after is None:  # nothing moved since the kernel's check (no bad debt)
        if n_after:
            after = si[start : start + n_after].copy()
            health = sf[3 * n + 5 : 3 * n + 5 + n_after].copy()
            stage.round_after = (plan_i, after, health)
        else:
            stage.round_after = (plan_i, _NONE, _NO_HEALTH)
    return plan_i


def _book(
    stage: BatchStage, m: int, ts: int, report: StepReport, fixed: RoundFixed, n: int,
    n_after: int, kind: npt.NDArray[np.int16], ints: IntArray, floats: FloatArray,
    si: IntArray, counts: list[int], sf: FloatArray,
) -> None:  # fmt: skip
    """The bookkeeping of a settled round of ``n`` fills (``batch_settle.settle_round``'s
    after its kernel, and ``_batch_isolated``'s bad debt): the ledger's versions, open
    interest and touched accounts, the journal batch, the fund's records, then
    :func:`batch_settle.settle_tail` (the report's totals, cooldowns and carried deficits,
    what closed positions still owe after the fund). ``si``, ``counts`` and ``sf``: the
    kernel's scratch (``round_nb``'s layout), its counts and header as a list. The market
    has no open-interest scaling (:func:`_build`), so ``Ledger._refresh_rates`` would change
    nothing and is not called."""
    ex = stage.ex
    head = counts[rk.S_HEAD :]
    n_lists = counts[rk.S_LISTS]
    filled = rk.S_HEAD + n_lists + n_after  # the fills' accounts, then their counterparties
    sums = 3 * n + 5 + n_after  # the groups' ``math.fsum``s
    figures = sf[2 * n : 2 * n + 5].tolist()  # open interest, then the totals
    totals = sf[sums : sums + 5].tolist()
    ex._version += 1
    ex._long_oi[m] += figures[0]
    # ``ints[:2, :n].ravel()``: the fills' accounts, then counterparties (a copy: the scratch
    # is the next round's)
    ex._touch(m, si[filled : filled + 2 * n].copy())
    ex.journal.append_round(kind, ts, ints, floats)
    lo, hi = n + head[1], n + head[2]
    if not (  # the common round: only the penalties paid from cash (group 1), no fund's row
        head[0] == head[1] and hi == n + head[5] and not head[6] and hi - lo > 1
        and ex._fund_inflow_applied(fixed.fund, ts, batch_settle._FEE, totals[1], ints[0],
                                    ints[1], lo, hi)
    ):  # fmt: skip
        batch_settle.apply_groups(
            ex, m, fixed.fund, ts, n, head, ints[0], ints[1], floats[2], ints[3], totals
        )
    owing = batch_settle.settle_tail(
        stage, m, ts, report, n, ints[0], len(kind) - n, si[rk.S_HEAD :], head, sf, figures
    )
    if len(owing):  # ``_batch_isolated``'s bad debt (no socialized loss on this path)
        accounts = ints[0][len(kind) - n :]  # the liquidation records' accounts
        rest = sf[:n]
        short = sf[2 * n + 5 : 3 * n + 5]
        fenced = not ex.markets[m].spec.liquidation.isolated_recourse
        for j in owing.tolist():
            a, amount = int(accounts[j]), float(rest[j])
            if amount > 1e-12 * max(1.0, float(short[j])):
                stage._declare_bad_debt(a, m, amount, ts, report, fenced=fenced)
                stage.round_after = _MOVED  # the round's accounts moved after its check


def book_state(book: LiquidityModel | None, ts: int) -> tuple[float, float, float]:
    """The batch path's view of a market's book after its recovery to ``ts`` (which it
    applies): depth (base per unit of relative move), consumed depth and largest move; no
    book fills everything at the mark (``inf``, 0, 1). The path takes a
    :class:`ConstantDepthBook` or none (``_batchable_rules_of``)."""
    if book is None:
        return math.inf, 0.0, 1.0
    assert isinstance(book, ConstantDepthBook)
    if book.ts_ns != ts:  # the risk step recovered it to ``ts`` already (then a no-op)
        book.recover(ts)
    return book.depth, float(book.consumed_depth), book.max_move


def _scratch(stage: BatchStage, n: int) -> npt.NDArray[np.bool_]:
    """The risk step's scratch flags (``RiskEngine._flags``: at least ``n``, all False)."""
    if len(stage._scratch_flags) < n:
        stage._scratch_flags = np.zeros(max(n, 2 * len(stage._scratch_flags)), dtype=np.bool_)
    return stage._scratch_flags
