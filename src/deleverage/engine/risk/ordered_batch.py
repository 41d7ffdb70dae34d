"""The batch path for markets whose ADL follows the insurance fund's drawdown (OKX, Bybit).

A market with ``adl.trigger_fund_drawdown`` sends a bankrupt position to ADL while the fund's
loss over its window is at or past the trigger (:meth:`ShortfallStage._fund_trigger`), a
decision that depends on every penalty and cover paid before it in the step. This path
plans the step's isolated liquidations in the per-account path's order with one compiled pass
(:func:`plan_in_order_nb`) that also replays the fund's ledger (balance, cumulative PnL and
their highs over the window, record by record, as :class:`InsuranceFund` writes them), so it
knows the drawdown at every point where the per-account path would ask for it. It stops
before the first position the per-account path would hand to ADL (the trigger fires, the fund
cannot pay, the takeover cap, a book that cannot fill it) or whose loss would go beyond the
fund; that position and the rest of the pass go through the per-account path
(:meth:`LiquidationStage._liquidate`), in the same order.

The prefix is written as the per-account path writes it, row by row (fill, penalty,
liquidation record, cover) in one journal batch, and its transfers are mirrored in the fund's
ledger one record per transfer, so the journal, the fund's history and the state are the
per-account path's (tests/unit/risk/test_risk_batch_ordered.py).

Covered: isolated positions without recourse (``isolated_recourse`` off), market execution at
the mark or on a constant-depth book, the kinds ``full``, ``partial``, ``fixed_fraction`` and
``tier_down`` (both targets); :meth:`BatchStage._batchable` refuses the rest.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import numpy.typing as npt
from numba import njit

from deleverage.engine.events import EventKind, FillReason, TransferReason
from deleverage.engine.risk.support import (
    _NS,
    _POLICY_CODES,
    FloatArray,
    StepReport,
    _Caps,
    _sizes_to_close,
)
from deleverage.liquidity import ConstantDepthBook, linear_fill_nb

if TYPE_CHECKING:
    from deleverage.engine.insurance_fund import InsuranceFund
    from deleverage.engine.risk.batch import BatchStage

#: ``plan_in_order_nb``'s stop reasons.
DONE, STOP_ADL, STOP_LEDGER = 0, 1, 2


class _Ledger(NamedTuple):
    """The fund's ledger as the drawdown reads it at the step's time: balance, cumulative
    PnL, the highest PnL and balance over the window so far (``-inf``: no record), whether
    any record is in it (quote)."""

    balance: float
    pnl: float
    max_pnl: float
    max_balance: float
    has_records: bool

    def as_tuple(self) -> tuple[float, float, float, float, bool]:
        """The kernel's argument (a plain tuple)."""
        return (self.balance, self.pnl, self.max_pnl, self.max_balance, self.has_records)


@njit(cache=True)
def plan_in_order_nb(
    size: FloatArray,
    equity: FloatArray,
    close: FloatArray,
    mark: float,
    book_mid: float,
    fee_rate: float,
    fund_cash: float,
    book_depth: float,
    book_consumed: float,
    book_max_move: float,
    takeover_cap: float,
    ledger: tuple[float, float, float, float, bool],
    ledger_known: bool,
    protocol_share: float,
    trigger: float,
    trigger_stop: float,
    trigger_on: bool,
    qty_out: FloatArray,
    price_out: FloatArray,
    penalty_out: FloatArray,
    due_out: FloatArray,
    paid_out: FloatArray,
) -> tuple[int, int, float, bool]:
    """Plan isolated liquidations in order as :meth:`LiquidationStage._close` makes them
    (no recourse), until the first one the per-account path must make itself.

    For candidate ``i`` (size ``s``, pool equity ``E``, closing ``close[i]``): the order's
    fill is quoted on the book (``book_depth = inf``: at the mark); with ``E' = E + side x q x
    (vwap - mark)`` the loss ``need = max(0, -E')``; a full close goes to ADL when ``need``
    exceeds the fund's cash, or ``need > 0`` and the drawdown trigger is on, or ``need > 0``
    and ``q x mark > takeover_cap x fund``, or the book cannot fill it: the plan stops there
    (``STOP_ADL``). Otherwise the order fills, the penalty ``max(0, min(fee_rate x qty x
    vwap, E'))`` goes to the fund, and a loss ``due = max(0, -E') > 1e-9`` is paid by the fund
    as far as it can (a closed position's unpaid rest stops the plan before it: bad debt).

    The trigger (:meth:`ShortfallStage._fund_trigger`) is evaluated where the per-account
    path evaluates it (a full close with ``0 < need <=`` the fund's cash) on the fund's
    ledger replayed record by record (:meth:`InsuranceFund.receive` with ``protocol_share``,
    :meth:`InsuranceFund.cover` with its depletion rule): ``fraction = max(0, highest PnL -
    PnL) / highest balance``; on while ``fraction >=`` ``trigger`` (``trigger_stop`` once
    on). ``ledger_known`` False: the ledger was not read, the plan stops where it is first
    needed (``STOP_LEDGER``) so the caller reads it and plans again.

    Returns the number of candidates planned, the stop reason (``DONE``, ``STOP_ADL``,
    ``STOP_LEDGER``), the book's consumed depth after them and the trigger's state after
    them. A planned candidate with ``qty_out == 0`` did not fill (an empty book).
    """
    consumed = book_consumed
    fund = fund_cash
    balance, pnl, max_pnl, max_balance, has_records = ledger
    on = trigger_on
    for i in range(len(size)):
        s = size[i]
        side = 1.0 if s > 0.0 else -1.0
        order_side = -1 if s > 0.0 else 1
        q = close[i]
        full = q >= abs(s) * (1.0 - 1e-12)
        if full:
            q = abs(s)
        if np.isinf(book_depth):
            filled, vwap, y1 = q, mark, consumed
        else:
            filled, vwap, _, y1 = linear_fill_nb(
                order_side, q, book_mid, book_depth, consumed, book_max_move
            )
        need = -(equity[i] + side * q * (vwap - mark))
        need = need if need > 0.0 else 0.0
        available = fund if fund > 0.0 else 0.0
        if full and need > 0.0:
            if need > available:
                return i, STOP_ADL, consumed, on
            # The drawdown trigger, evaluated here by the per-account path.
            if not ledger_known:
                return i, STOP_LEDGER, consumed, on
            fraction = 0.0
            if has_records:
                loss = max_pnl - pnl
                loss = loss if loss > 0.0 else 0.0
                fraction = loss / max_balance if max_balance > 0.0 else 0.0
            now_on = fraction >= (trigger_stop if on else trigger)
            if now_on:
                return i, STOP_ADL, consumed, on
            on = now_on
            if q * mark > takeover_cap * available:
                return i, STOP_ADL, consumed, on
        if full and filled < q * (1.0 - 1e-12):
            return i, STOP_ADL, consumed, on  # the book cannot absorb it: ADL first
        if filled <= 0.0:
            qty_out[i] = 0.0
            continue
        full = full and filled >= q * (1.0 - 1e-12)
        qty = abs(s) if full else filled
        equity_after = equity[i] + side * qty * (vwap - mark)
        fee = fee_rate * qty * vwap
        penalty = fee if fee < equity_after else equity_after
        if penalty < 0.0:
            penalty = 0.0
        due = -equity_after if equity_after < 0.0 else 0.0
        paid = 0.0
        if due > 1e-9:  # (a penalty is paid only above bankruptcy: never with a loss)
            paid = due if due < available else available
            if full and due - paid > 1e-12 * max(1.0, due):
                return i, STOP_ADL, consumed, on  # bad debt: the per-account path declares it
        consumed = y1
        qty_out[i] = qty
        price_out[i] = vwap
        penalty_out[i] = penalty
        due_out[i] = due
        paid_out[i] = paid
        if penalty > 0.0:  # InsuranceFund.receive: the holders' part, then the protocol's cut
            fund += penalty
            cut = penalty * protocol_share
            holders = penalty - cut
            if holders > 0.0:
                balance += holders
                pnl += holders
                has_records = True
                max_pnl = pnl if pnl > max_pnl else max_pnl
                max_balance = balance if balance > max_balance else max_balance
            if cut > 0.0:
                balance += cut
                pnl += cut
                has_records = True
                max_pnl = pnl if pnl > max_pnl else max_pnl
                max_balance = balance if balance > max_balance else max_balance
        if paid > 0.0:  # InsuranceFund.cover: paying all but dust of the balance depletes it
            fund -= paid
            take = paid if paid < balance else balance
            if take > 0.0:
                depleted = take >= balance * (1.0 - 1e-12)
                if depleted:
                    take = balance
                balance = 0.0 if depleted else balance - take
                pnl += -take
                has_records = True
                max_pnl = pnl if pnl > max_pnl else max_pnl
                max_balance = balance if balance > max_balance else max_balance
    return len(size), DONE, consumed, on


def window_ledger(fund: InsuranceFund, ts: int) -> _Ledger:
    """The fund's ledger at ``ts`` as :meth:`InsuranceFund.drawdown_over_window` reads it:
    the highs over the window ``[ts - window, ts]`` with the level carried into it from
    before its start, and 0 for the PnL when the window starts before the first record."""
    times = fund._ts
    hi = bisect_right(times, ts)
    lo = bisect_right(times, ts - fund._window_ns)
    start = lo - 1 if lo > 0 else 0
    max_pnl = max(fund._pnl_after[start:hi], default=-math.inf)
    if lo == 0:
        max_pnl = max(max_pnl, 0.0)
    max_balance = max(fund._balance_after[start:hi], default=-math.inf)
    return _Ledger(fund.balance, fund.cumulative_pnl, max_pnl, max_balance, hi > 0)


def batch_in_order(
    stage: BatchStage, m: int, ts: int, report: StepReport, caps: _Caps
) -> npt.NDArray[np.int64] | None:
    """Liquidate the isolated positions under maintenance in ``m`` in the per-account path's
    order: the planned prefix as one batch, the rest of the pass account by account.

    Returns the accounts changed when the whole pass was batched (the next rounds check only
    them), else None (the per-account path touched others: rescan).
    """
    found = stage._batch_candidates(m, ts)
    if found is None:
        return np.zeros(0, dtype=np.int64)
    idx, _, maint = found
    ex = stage.ex
    state = ex.markets[m]
    spec = state.spec
    cols = ex._positions[m]
    mark = state.mark
    size = cols.size[idx].copy()
    # The pool as the per-account path computes it (RiskEngine._pool).
    equity = cols.isolated_margin[idx] + size * (mark - cols.entry[idx])
    close = _sizes_to_close(size, equity, maint, mark, spec)
    risk = stage.markets[m]
    book = risk.liquidity
    if book is None:
        depth, consumed, max_move = math.inf, 0.0, 1.0
    else:
        book.recover(ts)
        assert isinstance(book, ConstantDepthBook)
        depth, max_move = book.depth, book.max_move
        consumed = float(book.snapshot()["consumed_depth"])
    fund_account = ex.insurance_account_for(m)
    fund = ex.insurance_fund(m)
    adl = spec.adl
    assert adl.trigger_fund_drawdown is not None
    k = len(idx)
    out = [np.zeros(k) for _ in range(5)]
    cap = adl.fund_takeover_max_notional
    ledger = _Ledger(0.0, 0.0, -math.inf, -math.inf, False)
    known = False
    while True:
        planned, reason, consumed_after, on = plan_in_order_nb(
            size, equity, close, mark, risk.book_price(mark), spec.liquidation_fee_rate,
            float(ex._cash[fund_account]), depth, consumed, max_move,
            math.inf if cap is None else float(cap), ledger.as_tuple(), known, fund.protocol_share,
            float(adl.trigger_fund_drawdown),
            float(adl.trigger_fund_drawdown_stop or adl.trigger_fund_drawdown),
            risk.fund_trigger_on, *out,
        )  # fmt: skip
        if reason != STOP_LEDGER:
            break
        ledger, known = window_ledger(fund, ts), True
    risk.fund_trigger_on = bool(on)
    if book is not None:
        book.restore({"consumed_depth": consumed_after, "ts_ns": ts})
    qty, price, penalty, due, paid = (a[:planned] for a in out)
    _write_prefix(stage, m, ts, report, idx[:planned], size[:planned], equity[:planned],
                  close[:planned], qty, price, penalty, due, paid)  # fmt: skip
    for a in idx[planned:].tolist():
        stage._liquidate(a, m, True, ts, report, caps)
    return None if planned < k else idx


def _write_prefix(
    stage: BatchStage,
    m: int,
    ts: int,
    report: StepReport,
    idx: npt.NDArray[np.int64],
    size: FloatArray,
    equity: FloatArray,
    close: FloatArray,
    qty: FloatArray,
    price: FloatArray,
    penalty: FloatArray,
    due: FloatArray,
    paid: FloatArray,
) -> None:
    """Write the planned liquidations as the per-account path writes them, in its order:
    per position its fill, penalty, liquidation record and the fund's cover, one journal
    batch; then apply the fills and the transfers (mirrored in the fund's ledger one record
    per transfer), and add to the report and the carried deficits in the same order."""
    done = qty > 0.0
    if not done.any():
        return
    ex = stage.ex
    spec = ex.markets[m].spec
    mark = ex.markets[m].mark
    fund = ex.insurance_account_for(m)
    accounts, size, equity = idx[done], size[done], equity[done]
    requested = close[done]
    qty, price, penalty, due, paid = qty[done], price[done], penalty[done], due[done], paid[done]
    side = np.sign(size)
    still_open = qty < np.abs(size)
    # What earlier partial closes carried is settled by a close with a loss beyond its margin.
    carried = np.zeros(len(accounts))
    if stage.carried_deficit:
        pops = ~still_open & (due > 0.0)
        for j in np.flatnonzero(pops).tolist():
            carried[j] = stage.carried_deficit.pop(int(accounts[j]), 0.0)
    shortfall = np.maximum(0.0, due - carried)
    bankrupt = np.maximum(0.0, mark - equity / size)
    has_pen, has_paid = penalty > 0.0, paid > 0.0
    rows = 2 + has_pen.astype(np.int64) + has_paid.astype(np.int64)
    first = np.concatenate(([0], np.cumsum(rows)[:-1]))
    n = int(rows.sum())
    kind = np.full(n, int(EventKind.TRANSFER), dtype=np.int16)
    account = np.empty(n, dtype=np.int64)
    counterparty = np.full(n, -1, dtype=np.int64)
    market = np.full(n, m, dtype=np.int64)
    qsize, px, amount, fee, cfee = (np.zeros(n) for _ in range(5))
    code = np.empty(n, dtype=np.int64)
    buyers = np.where(side > 0, ex.liquidity_account, accounts).astype(np.int64)
    sellers = np.where(side > 0, accounts, ex.liquidity_account).astype(np.int64)
    # The fill.
    kind[first] = int(EventKind.FILL)
    account[first], counterparty[first] = buyers, sellers
    qsize[first], px[first], code[first] = qty, price, int(FillReason.LIQUIDATION)
    # The penalty to the fund: from the margin of a position still open, else from cash.
    pen_row = first[has_pen] + 1
    account[pen_row], counterparty[pen_row] = accounts[has_pen], fund
    amount[pen_row], code[pen_row] = penalty[has_pen], int(TransferReason.LIQUIDATION_FEE)
    market[pen_row] = np.where(still_open[has_pen], m, -1)
    # The liquidation record.
    liq_row = first + 1 + has_pen
    kind[liq_row] = int(EventKind.LIQUIDATION)
    account[liq_row], counterparty[liq_row] = accounts, -1
    qsize[liq_row], px[liq_row], amount[liq_row] = -side * qty, price, shortfall
    fee[liq_row], cfee[liq_row] = penalty, bankrupt
    code[liq_row] = _POLICY_CODES[spec.liquidation.kind]
    # The fund's cover: into the cash of a closed position, the margin of an open one.
    cover_row = liq_row[has_paid] + 1
    account[cover_row], counterparty[cover_row] = fund, accounts[has_paid]
    amount[cover_row], code[cover_row] = paid[has_paid], int(TransferReason.INSURANCE_COVER)
    market[cover_row] = np.where(still_open[has_paid], m, -1)
    ex.journal.append_columns(
        kind, ts, account=account, counterparty=counterparty, market=market, size=qsize,
        price=px, amount=amount, fee=fee, counterparty_fee=cfee, code=code,
    )  # fmt: skip
    zeros = np.zeros(len(accounts))
    ex._apply_fill_columns(m, buyers, sellers, qty, price, zeros, zeros)
    moves = np.sort(np.concatenate((pen_row, cover_row)))
    if len(moves):
        # One time per row: the fund's ledger gets one record per transfer, as one by one.
        ex._apply_transfer_columns(
            m, account[moves], counterparty[moves], amount[moves], code[moves],
            np.full(len(moves), ts, dtype=np.int64),
        )  # fmt: skip
    _report(stage, m, ts, report, accounts, qty, price, penalty, due, paid, carried, still_open)
    if spec.liquidation.kind == "fixed_fraction":
        until = ts + int(spec.liquidation.cooldown_s * _NS)
        cooldown = stage.markets[m].cooldown_until_ns
        for a in accounts[requested < np.abs(size)].tolist():
            cooldown[a] = until


def _report(
    stage: BatchStage,
    m: int,
    ts: int,
    report: StepReport,
    accounts: npt.NDArray[np.int64],
    qty: FloatArray,
    price: FloatArray,
    penalty: FloatArray,
    due: FloatArray,
    paid: FloatArray,
    carried: FloatArray,
    still_open: npt.NDArray[np.bool_],
) -> None:
    """The report's totals and the fund's paid total, added one position after the other
    as the per-account path adds them; the deficits left on open positions carried."""
    report.liquidations += len(accounts)
    notional, penalties = report.liquidated_notional, report.penalties
    for value in (qty * price).tolist():
        notional += value
    for value in penalty.tolist():
        penalties += value
    report.liquidated_notional, report.penalties = notional, penalties
    owing = np.flatnonzero(due > 1e-9)
    if len(owing) == 0:
        return
    shortfall, insured = report.shortfall, report.insurance_paid
    by_market = stage.insurance_paid_by_market.get(m, 0.0)
    carried_deficit = stage.carried_deficit
    for j in owing.tolist():
        d, p = float(due[j]), float(paid[j])
        shortfall += d if still_open[j] else max(0.0, d - float(carried[j]))
        if p > 0.0:
            insured += p
            by_market += p
        if still_open[j] and d - p > 1e-9:
            a = int(accounts[j])
            carried_deficit[a] = carried_deficit.get(a, 0.0) + d - p
    report.shortfall, report.insurance_paid = shortfall, insured
    if by_market:
        stage.insurance_paid_by_market[m] = by_market
