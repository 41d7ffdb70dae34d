"""The batch path's settlement of a round in one compiled pass and one journal batch.

After the planner (:meth:`BatchStage._batch_plan`) the batch path wrote a round as five to
seven journal batches and as many ledger calls, each a dozen small NumPy operations: the
fills, the penalties of positions left open (out of their isolated margin), the penalties
of closed positions (out of cash), the fund's covers of closed positions, the account's cash
moved into open positions left beyond bankruptcy, the fund's covers of those, then the
liquidation records. On a cascade day a round liquidates ~55 positions and those operations
cost more than the liquidations. Here (:func:`settle_round`):

- :func:`settle_money_nb` takes the plan as it is (the positions that fill selected inside),
  finds the traders the fills involve, applies the fills
  (:func:`deleverage.engine.kernels.apply_fills_nb`, as :meth:`Ledger._apply_fill_columns`),
  then the transfers and margin moves in the same order with the same arithmetic
  (``apply_transfers_nb``'s per-row rule), and writes every journal row of the round (fills,
  transfers, margin moves, liquidation records) as columns, with the records' figures
  (``_batch_records``: what is due, what closed positions still owe, what open ones carry)
  and the round's sums (open interest, the step report's totals) taken as ``np.sum`` takes
  them (:func:`~deleverage.engine.risk.numpy_sum.numpy_sum_nb`); it returns six arrays
  (each returned array costs ~1 us to box);
- one :meth:`Journal.append_owned_columns` call with one kind per row keeps them (not
  copied), in the order the separate batches had; the ledger's bookkeeping after each group
  (versions, touched accounts, the fund's ledger records) is called per group as before, a
  group's penalties summed into the fund without ``receive_many``'s per-amount checks when
  no fund account filled (the kernel's amounts are > 0 and none NaN).

The result is the separate path's, bit for bit: the same journal rows, state and fund
records (tests/unit/risk/test_batch_settle_twin.py compares the two on random books,
tests/integration/test_batch_settle_scenarios_twin.py on the built-in scenarios; NumPy's
``maximum``/``minimum`` return the second operand on ties, which the kernel copies so that
signed zeros match too).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
from numba import njit

from deleverage.engine.events import EventKind, FillReason, TransferReason
from deleverage.engine.kernels import apply_fills_nb
from deleverage.engine.risk.numpy_sum import numpy_sum_nb
from deleverage.engine.risk.support import _NS, _POLICY_CODES

if TYPE_CHECKING:
    from deleverage.engine.exchange import Exchange
    from deleverage.engine.risk.batch import BatchStage, _BatchPlan
    from deleverage.engine.risk.support import StepReport

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

#: Set False to take the separate batches (the twin tests compare the two paths).
ENABLED = True
#: Rounds closing more positions than this take the separate batches: the kernel saves a
#: round's fixed cost (~80 us CPU on the cascade day's rounds of ~55 liquidations) but costs
#: more per row than the NumPy batches (the 10^6-position step of benchmarks/
#: liquidation_step.py, 10,114 liquidations in one round: 7.2-8.2 ms with it, 5.9 ms without).
MAX_ROWS = 512

_FILL = int(EventKind.FILL)
_TRANSFER = int(EventKind.TRANSFER)
_MOVED = int(EventKind.MARGIN_MOVED)
_LIQUIDATION = int(EventKind.LIQUIDATION)
_FEE = int(TransferReason.LIQUIDATION_FEE)
_COVER = int(TransferReason.INSURANCE_COVER)
_FILL_CODE = int(FillReason.LIQUIDATION)
#: The kernel's index lists' header: the groups' bounds (6), whether a fund account filled,
#: the lengths of the four lists (partial closes, closed positions, owing, carrying).
_HEAD = 11
_NO_INDEX = np.zeros(0, dtype=np.int64)


@njit(cache=True)
def _np_max(a: float, b: float) -> float:
    """``np.maximum(a, b)`` for one pair: NaN propagates, a tie returns ``b``."""
    if a != a:
        return a
    return a if a > b else b


@njit(cache=True)
def _np_min(a: float, b: float) -> float:
    """``np.minimum(a, b)`` for one pair: NaN propagates, a tie returns ``b``."""
    if a != a:
        return a
    return a if a < b else b


@njit(cache=True)
def _sign(x: float) -> float:
    """``np.sign`` of one value."""
    if x > 0.0:
        return 1.0
    if x < 0.0:
        return -1.0
    return x  # 0.0, -0.0 or NaN, as np.sign


@njit(cache=True)
def _transfer(
    cash: FloatArray,
    isolated_margin: FloatArray,
    mode: npt.NDArray[np.int8],
    size: FloatArray,
    in_market: bool,
    a: int,
    b: int,
    amount: float,
) -> None:
    """One row of :func:`~deleverage.engine.kernels.apply_transfers_nb`."""
    if in_market and mode[a] != 0 and size[a] != 0.0:
        isolated_margin[a] -= amount
    else:
        cash[a] -= amount
    if in_market and mode[b] != 0 and size[b] != 0.0:
        isolated_margin[b] += amount
    else:
        cash[b] += amount


@njit(cache=True)
def settle_money_nb(
    idx: IntArray,
    done: npt.NDArray[np.bool_],
    size_p: FloatArray,
    equity_p: FloatArray,
    planned: FloatArray,
    carried_p: FloatArray,
    debt_p: FloatArray,
    kinds: npt.NDArray[np.int8],
    fund_ids: IntArray,
    cash: FloatArray,
    isolated_margin: FloatArray,
    mode: npt.NDArray[np.int8],
    size: FloatArray,
    entry: FloatArray,
    realized_pnl: FloatArray,
    fee_account: int,
    liquidity_account: int,
    fund: int,
    market: int,
    policy_code: int,
    mark: float,
    recourse: bool,
) -> tuple[
    IntArray, npt.NDArray[np.int16], IntArray, FloatArray, IntArray, FloatArray
]:  # fmt: skip
    """Settle a planned round: its fills, then its money.

    Inputs: the plan's accounts and which of them fill (``done``); per planned position its
    size and equity before and (``planned``, six rows) the size filled, fill price, penalty,
    shortfall, the fund's cover and the account's cash moved in; what earlier partial closes carried
    (``carried_p``) and the declared bad debt (``debt_p``), per planned position or empty for
    none; the accounts' kinds and the fund accounts; the state's columns; the fee account, the
    book's account, the market's fund, the market and the policy's code.

    For the positions that fill (in plan order) it applies the fills against the book's
    account without fees (:func:`~deleverage.engine.kernels.apply_fills_nb`, as
    ``BatchStage._batch_fills``), then in order: penalties of open positions (market
    ``market``), penalties of closed positions (cash), covers of closed positions (cash),
    cash moved into open positions, covers of open positions (market); as
    ``BatchStage._batch_money`` does.

    Returns (few arrays: each array a compiled function returns costs ~1 us to box) the
    accounts filled (``n``); the journal rows of the round (``n`` fills, the groups' rows,
    ``n`` liquidation records): their kinds, ``ints`` (account, counterparty, market, code)
    and ``floats`` (size, price, amount, fee, counterparty fee; a record's amount is what is
    due); ``lists``: the five groups' first rows within the transfer rows, then their end
    (group ``g`` is rows ``n + lists[g]`` to ``n + lists[g + 1]``), whether a filled account
    is a fund account, then the lengths and the positions (indices into the accounts filled)
    of four lists: partial closes (still open, filled less than their size), closed
    positions, closed positions that still owe more than 1e-9 after the fund, open positions
    that carry more than 1e-9; and ``per_position``: what each closed one still owes after
    the fund (``rest``, ``n``), what each open one carries (``left``, ``n``), then the
    change of the market's long open interest (the traders the fills involve, long sizes
    after less before: ``np.sum`` of each, as :meth:`Ledger._apply_fill_columns`), the
    notional liquidated, the penalties, the covers and the shortfall due (``np.sum`` of each:
    :func:`numpy_sum_nb`).
    """
    filled_p, price_p, penalty_p, shortfall_p, cover_p, own_p = (
        planned[0],
        planned[1],
        planned[2],
        planned[3],
        planned[4],
        planned[5],
    )
    n = 0
    for i in range(len(idx)):
        n += done[i]
    accounts = np.empty(n, dtype=np.int64)
    size0 = np.empty(n)
    filled = np.empty(n)
    price = np.empty(n)
    j = 0
    for i in range(len(idx)):
        if done[i]:
            accounts[j], size0[j], filled[j], price[j] = idx[i], size_p[i], filled_p[i], price_p[i]
            j += 1
    # The traders the fills involve (``Ledger._apply_fill_columns``): distinct, ascending.
    pool = np.empty(n + 1, dtype=np.int64)
    pool[:n] = accounts
    pool[n] = liquidity_account
    pool.sort()
    involved = np.empty(n + 1, dtype=np.int64)
    k = 0
    for i in range(n + 1):
        if (i == 0 or pool[i] != pool[i - 1]) and kinds[pool[i]] == 0:
            involved[k] = pool[i]
            k += 1
    long_before = np.empty(k)
    for i in range(k):
        long_before[i] = _np_max(size[involved[i]], 0.0)
    buyers = np.empty(n, dtype=np.int64)
    sellers = np.empty(n, dtype=np.int64)
    for j in range(n):
        if _sign(size0[j]) > 0:  # the book's account buys a long's close
            buyers[j], sellers[j] = liquidity_account, accounts[j]
        else:
            buyers[j], sellers[j] = accounts[j], liquidity_account
    no_fee = np.zeros(n)
    apply_fills_nb(
        size, entry, isolated_margin, mode, realized_pnl, cash, fee_account, buyers, sellers,
        filled, price, no_fee, no_fee,
    )  # fmt: skip
    long_after = np.empty(k)
    for i in range(k):
        long_after[i] = _np_max(size[involved[i]], 0.0)
    rows_f = np.zeros(2 * n + 5)  # rest, left, figures
    figures = rows_f[2 * n :]
    before = numpy_sum_nb(long_before)
    figures[0] = numpy_sum_nb(long_after) - before
    notional = np.empty(n)
    for j in range(n):
        notional[j] = filled[j] * price[j]
    figures[1] = numpy_sum_nb(notional)
    still_open = np.empty(n, dtype=np.bool_)
    any_fund = 0
    for j in range(n):
        still_open[j] = size[accounts[j]] != 0.0
        for f in fund_ids:
            if accounts[j] == f:
                any_fund = 1
    penalty = np.empty(n)
    shortfall = np.empty(n)
    cover = np.empty(n)
    own = np.empty(n)
    equity0 = np.empty(n)
    carried0 = np.zeros(n)
    debt = np.zeros(n)
    j = 0
    for i in range(len(idx)):
        if done[i]:
            penalty[j], shortfall[j], cover[j] = penalty_p[i], shortfall_p[i], cover_p[i]
            own[j], equity0[j] = own_p[i], equity_p[i]
            if len(carried_p):
                carried0[j] = carried_p[i]
            if len(debt_p):
                debt[j] = debt_p[i]
            j += 1
    figures[2] = numpy_sum_nb(penalty)
    figures[3] = numpy_sum_nb(cover)
    groups = np.zeros(5, dtype=np.int64)
    for j in range(n):
        if still_open[j]:
            groups[0] += penalty[j] > 0.0
            groups[3] += own[j] > 0.0
            groups[4] += cover[j] > 0.0
        else:
            groups[1] += penalty[j] > 0.0
            groups[2] += cover[j] > 0.0
    bounds = np.zeros(6, dtype=np.int64)
    for g in range(5):
        bounds[g + 1] = bounds[g] + groups[g]
    rows = 2 * n + bounds[5]
    r_kind = np.empty(rows, dtype=np.int16)
    ints = np.full((4, rows), -1, dtype=np.int64)
    acc, cpty, mkt, code = ints[0], ints[1], ints[2], ints[3]
    code[:] = 0
    floats = np.zeros((5, rows))
    r_size, r_price, r_amount, r_fee, r_cpfee = (
        floats[0],
        floats[1],
        floats[2],
        floats[3],
        floats[4],
    )
    for j in range(n):  # the fills' rows
        r_kind[j] = _FILL
        acc[j], cpty[j] = buyers[j], sellers[j]
        mkt[j] = market
        r_size[j] = filled[j]
        r_price[j] = price[j]
        code[j] = _FILL_CODE
    # The money, group by group in the separate path's order.
    for g in range(5):
        r = n + bounds[g]
        for j in range(n):
            a = accounts[j]
            if g <= 1:
                amount = penalty[j]
            elif g == 3:
                amount = own[j]
            else:
                amount = cover[j]
            if amount <= 0.0 or amount != amount or still_open[j] != (g == 0 or g >= 3):
                continue
            r_amount[r] = amount
            if g == 3:  # the account's cash into the position's margin
                r_kind[r] = _MOVED
                acc[r] = a
                mkt[r] = market
                cash[a] -= amount
                isolated_margin[a] += amount
            else:
                r_kind[r] = _TRANSFER
                in_market = g == 0 or g == 4
                mkt[r] = market if in_market else -1
                if g <= 1:  # a penalty: account -> fund
                    acc[r], cpty[r], code[r] = a, fund, _FEE
                    _transfer(cash, isolated_margin, mode, size, in_market, a, fund, amount)
                else:  # a cover: fund -> account
                    acc[r], cpty[r], code[r] = fund, a, _COVER
                    _transfer(cash, isolated_margin, mode, size, in_market, fund, a, amount)
            r += 1
    # The records (``BatchStage._batch_records``' arithmetic, element by element).
    due = np.empty(n)
    rest = rows_f[:n]
    left = rows_f[n : 2 * n]
    r0 = n + bounds[5]
    for j in range(n):
        short, cov, mine = shortfall[j], cover[j], own[j]
        if still_open[j]:
            rest[j] = 0.0
            due[j] = short - mine
            left[j] = short - mine - cov
        else:
            if recourse:
                owed = _np_max(0.0, -cash[accounts[j]] - debt[j])
            else:
                owed = _np_max(0.0, short - cov)
            rest[j] = _np_min(owed, short)
            due[j] = _np_max(cov + rest[j] - carried0[j], 0.0)
            left[j] = 0.0
        r = r0 + j
        side = _sign(size0[j])
        r_kind[r] = _LIQUIDATION
        acc[r] = accounts[j]
        mkt[r] = market
        r_size[r] = -side * filled[j]
        r_price[r] = price[j]
        r_amount[r] = due[j]
        r_fee[r] = penalty[j]
        r_cpfee[r] = _np_max(0.0, mark - equity0[j] / size0[j])
        code[r] = policy_code
    figures[4] = numpy_sum_nb(due)
    # The positions that the caller's bookkeeping reads, as index lists after a header.
    lists = np.zeros(_HEAD + 4 * n, dtype=np.int64)
    lists[:6] = bounds
    lists[6] = any_fund
    at = _HEAD
    for which in range(4):
        start = at
        for j in range(n):
            if which == 0:
                keep = still_open[j] and filled[j] < abs(size0[j])  # partial closes
            elif which == 1:
                keep = not still_open[j]
            elif which == 2:
                keep = rest[j] > 1e-9
            else:
                keep = left[j] > 1e-9
            if keep:
                lists[at] = j
                at += 1
        lists[7 + which] = at - start
    return accounts, r_kind, ints, floats, lists[:at], rows_f


_EMPTY = np.zeros(0)
#: The groups' markets (a market's positions, or -1 for cash), in the kernel's order.
_GROUP_MARKET = (True, False, False, True, True)


def apply_groups(
    ex: Exchange, m: int, fund: int, ts: int, n: int, head: list[int],
    acc: IntArray, cpty: IntArray, r_amount: FloatArray, code: IntArray,
    totals: list[float] | None = None,
) -> None:  # fmt: skip
    """The ledger's bookkeeping of a settled round's transfer groups, in order, as each
    group's own batch would have done it: the rows after the ``n`` fills, group ``g`` at
    ``n + head[g] .. n + head[g + 1]`` (group 3: accounts touched only; the others: a fund
    group of market ``m``'s positions or of cash, :data:`_GROUP_MARKET`). ``head[6]``: whether
    any fund was involved (none: the records are checked). ``totals``: each group's
    ``math.fsum`` of its amounts where the one-call round found it (NaN: not finite), so
    that a checked inflow is recorded without summing again."""
    no_funds = not head[6]
    for g in range(5):
        lo, hi = n + head[g], n + head[g + 1]
        if lo == hi:
            continue
        if g == 3:
            ex._touch(m, acc[lo:hi])
            ex._version += 1
            continue
        ex._fund_group_applied(
            m if _GROUP_MARKET[g] else -1, fund, g <= 1, acc[lo:hi], cpty[lo:hi],
            r_amount[lo:hi], code[lo:hi], ts, checked=no_funds,
            total=None if totals is None else totals[g],
        )  # fmt: skip


def settle_round(
    stage: BatchStage,
    m: int,
    ts: int,
    report: StepReport,
    plan: _BatchPlan,
    done: npt.NDArray[np.bool_],
) -> tuple[IntArray, FloatArray, IntArray]:
    """``_batch_fills``, ``_batch_money`` and ``_batch_records`` of a planned round in one
    kernel and one journal batch (module docstring); returns the accounts filled, what closed
    positions still owe after the fund (as ``_batch_records`` does) and which of them owe
    more than 1e-9 (their positions)."""
    ex = stage.ex
    state = ex.markets[m]
    spec = state.spec
    cols = ex._positions[m]
    declared = stage.declared_bad_debt
    carried = stage.carried_deficit
    if declared or carried:
        planned = plan.idx.tolist()
        debt = np.array([declared.get(a, 0.0) for a in planned]) if declared else _EMPTY
        carried0 = np.array([carried.get(a, 0.0) for a in planned]) if carried else _EMPTY
    else:
        debt = carried0 = _EMPTY
    fund = ex.insurance_account_for(m)
    funds = ex.funds
    fund_ids = np.fromiter(funds, dtype=np.int64, count=len(funds))
    accounts, kind, ints, floats, lists, per_position = settle_money_nb(
        plan.idx, done, plan.size, plan.equity, plan.planned, carried0, debt, ex._kind,
        fund_ids, ex._cash, cols.isolated_margin, cols.mode, cols.size, cols.entry,
        cols.realized_pnl, ex.fee_account, ex.liquidity_account, fund, m,
        _POLICY_CODES[spec.liquidation.kind], state.mark, spec.liquidation.isolated_recourse,
    )  # fmt: skip
    n = len(accounts)
    acc, cpty, mkt, code = ints
    r_amount = floats[2]
    head = lists[:_HEAD].tolist()
    if n:  # the fills' bookkeeping (``Ledger._apply_fill_columns`` after its kernel)
        ex._version += 1
        ex._long_oi[m] += float(per_position[2 * n])
        ex._touch(m, np.concatenate([acc[:n], cpty[:n]]))
        ex._refresh_rates(m)
        ex.journal.append_owned_columns(
            kind, ts, account=acc, counterparty=cpty, market=mkt, size=floats[0],
            price=floats[1], amount=r_amount, fee=floats[3], counterparty_fee=floats[4],
            code=code,
        )  # fmt: skip
    apply_groups(ex, m, fund, ts, n, head, acc, cpty, r_amount, code)
    owing = settle_tail(stage, m, ts, report, n, accounts, 0, lists, head, per_position)
    return accounts, per_position[:n], owing


def settle_tail(
    stage: BatchStage, m: int, ts: int, report: StepReport, n: int, rows: IntArray,
    first: int, lists: IntArray, head: list[int], per_position: FloatArray,
    figures: list[float] | None = None,
) -> IntArray:  # fmt: skip
    """What follows a settled round's ledger bookkeeping, for :func:`settle_round` and the
    one-call round (``batch_round._book``): the report's totals (``per_position[2n + 1 :
    2n + 5]``), the cooldowns of partial closes (a ``fixed_fraction`` policy), the carried
    deficits that closed positions settle (popped) and those open positions carry (added);
    returns which of the ``n`` liquidated accounts (``rows[first : first + n]``, read only
    where needed) still owe after the fund (indices).
    ``lists``: the kernel's header ``head`` (its first :data:`_HEAD` entries as a list), then
    the partial closes, the closed, the owing and the carrying (indices into ``accounts``).
    ``figures``: ``per_position[2n : 2n + 5]`` as a list where the caller has it."""
    if figures is None:
        figures = per_position[2 * n : 2 * n + 5].tolist()
    _, notional, penalties, covers, shortfall = figures
    report.liquidations += n
    report.liquidated_notional += notional
    report.penalties += penalties
    report.insurance_paid += covers
    report.shortfall += shortfall
    carried = stage.carried_deficit
    if not (head[7] or head[9] or head[10] or carried):
        return _NO_INDEX  # no partial close, nothing owed, carried or to carry
    # The index lists after the header: partial closes, closed, owing, carrying.
    accounts = rows[first : first + n]
    ends = [_HEAD, _HEAD + head[7]]
    for length in head[8:]:
        ends.append(ends[-1] + length)
    spec = stage.ex.markets[m].spec
    if head[7] and spec.liquidation.kind == "fixed_fraction":
        until = ts + int(spec.liquidation.cooldown_s * _NS)
        risk = stage.markets[m]
        for a in accounts[lists[ends[0] : ends[1]]].tolist():
            risk.cooldown_until_ns[a] = until
    if carried:  # closed positions settle what earlier partial closes carried
        for a in accounts[lists[ends[1] : ends[2]]].tolist():
            carried.pop(a, None)
    if head[10]:
        keep = lists[ends[3] : ends[4]]
        left = per_position[n : 2 * n]
        for a, amount in zip(accounts[keep].tolist(), left[keep].tolist(), strict=True):
            carried[a] = carried.get(a, 0.0) + amount
    return lists[ends[2] : ends[3]]
