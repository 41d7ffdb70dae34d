"""The compiled planner of a cross round: :class:`~.cross_round.CrossRound`'s decisions for a run
of cross accounts in one call (engine/risk/cross_plan.py drives it).

:func:`cross_plan_nb` walks the accounts in the round's order and does, for each, what
``CrossRound.liquidate`` does in Python: the account's cross pool, its positions in close
order (largest maintenance first), the size to close (full, or one tier down), the step's caps
(none: the planner runs only without caps), the book's fill (linear book or the mark), the fill
and the capped penalty through the ledger's own kernels (:func:`apply_fills_nb`,
:func:`apply_transfers_nb`), the long open interest, the liquidation notice; every operation
the same floating-point operation in the same order as the Python path (Python's ``max`` /
``min`` keep their first argument on a tie, as :func:`_pymax` / :func:`_pymin` do), so the
arrays and rows are bit-identical. Its journal rows, touched accounts, penalties and cap
records come back in columns, in order.

It stops, before changing anything for it, at the first position whose full close the Python
path hands to the per-account path (a fill beyond bankruptcy or a book that cannot absorb it:
the fund, ADL or socialized loss decide), and after an account left flat with a deficit (the
fund covers it): the driver applies the rows so far and resumes the Python path exactly there.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from numba import njit

from deleverage.engine.kernels import apply_fills_nb, apply_transfers_nb

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

#: Most markets the kernel takes (the executed books come back as bits of one int64).
MAX_MARKETS = 62

#: Why the kernel returned.
STOP_NONE = 0  # every account done
STOP_CLOSE = 1  # a full close the per-account path decides (resume at the stop position)
STOP_FLAT = 2  # an account left flat with a deficit (resume at its cover)

#: Liquidation sizes the kernel computes (``MarketSpec.liquidation.kind``).
KIND_FULL = 0
KIND_TIER_DOWN = 1


@njit(cache=True, inline="always")
def _pymax(a: float, b: float) -> float:
    """Python's ``max(a, b)``: ``a`` unless ``b`` is larger."""
    return b if b > a else a


@njit(cache=True, inline="always")
def _pymin(a: float, b: float) -> float:
    """Python's ``min(a, b)``: ``a`` unless ``b`` is smaller."""
    return b if b < a else a


@njit(cache=True)
def _maint_bisect(
    notional: float, floor: FloatArray, mmr: FloatArray, cum: FloatArray, min_margin: float
) -> float:
    """``scans.maintenance_scalar`` (tier by bisection on the floors)."""
    t = max(int(np.searchsorted(floor, notional, side="right")) - 1, 0)
    tiered: float = notional * mmr[t] - cum[t]
    if min_margin > 0.0 and notional > 0.0:
        return _pymax(tiered, min_margin)
    return tiered


@njit(cache=True)
def _maint_scan(
    notional: float, floor: FloatArray, mmr: FloatArray, cum: FloatArray, min_margin: float
) -> float:
    """``support._maintenance`` (tier by a scan down from the top)."""
    t = len(floor) - 1
    while t > 0 and notional < floor[t]:
        t -= 1
    tiered: float = notional * mmr[t] - cum[t]
    if notional > 0.0:
        return _pymax(tiered, min_margin)
    return tiered


@njit(cache=True)
def _cross_pool(
    a: int,
    size: FloatArray,
    entry: FloatArray,
    margin: FloatArray,
    mode: npt.NDArray[np.int8],
    floor: FloatArray,
    mmr: FloatArray,
    cum: FloatArray,
    n_tiers: IntArray,
    market_f: FloatArray,
    cash: FloatArray,
) -> tuple[float, float]:
    """``ExchangeScans.cross_pool``: cross equity and maintenance of row ``a`` (quote)."""
    upnl = 0.0
    maint = 0.0
    for j in range(len(market_f)):
        s = size[j, a]
        if s == 0.0 and margin[j, a] == 0.0:
            continue
        if mode[j, a] == 1:
            continue
        mark = market_f[j, 0]
        t = n_tiers[j]
        upnl += s * (mark - entry[j, a])
        maint += _maint_bisect(abs(s) * mark, floor[j, :t], mmr[j, :t], cum[j, :t], market_f[j, 6])
    return cash[a] + upnl, maint


@njit(cache=True)
def cross_plan_nb(
    accounts: IntArray,
    declared: FloatArray,
    gid: IntArray,
    size2: FloatArray,
    entry2: FloatArray,
    margin2: FloatArray,
    mode2: npt.NDArray[np.int8],
    realized2: FloatArray,
    cash: FloatArray,
    kind: npt.NDArray[np.int8],
    floor2: FloatArray,
    mmr2: FloatArray,
    cum2: FloatArray,
    n_tiers: IntArray,
    fee_account: int,
    counterparty: int,
    codes: IntArray,
    market_f: FloatArray,
    market_i: IntArray,
    consumed: FloatArray,
    long_oi: FloatArray,
    totals: FloatArray,
    row_i: IntArray,
    row_f: FloatArray,
    touch: IntArray,
    clip_i: IntArray,
    clip_f: FloatArray,
    stop: IntArray,
    stop_f: FloatArray,
    order_out: IntArray,
) -> None:
    """Liquidate ``accounts`` (cross, found under maintenance) in order as ``CrossRound`` does.

    The state comes as rows gathered by the driver: ``size2[j, i]``, ``entry2``, ``margin2``
    (isolated), ``mode2``, ``realized2`` of market ``j`` and ``cash[i]``, ``kind[i]`` of the
    accounts ``gid[i]`` (sorted global ids: every account the call can change); ``accounts``,
    ``fee_account``, ``counterparty`` and the funds are row indices, the rows written out name
    global ids. ``floor2[j, :n_tiers[j]]``, ``mmr2``, ``cum2``: market ``j``'s tiers. Per market
    ``j``: ``market_f[j] = (mark, book mid, book depth D, max move, lot, fee rate,
    min margin)``, ``market_i[j] = (kind code, tier steps, has a book, fee on the oracle,
    fund row, policy code)``; ``consumed[j]`` the book's consumed depth now (updated in
    place by executions). ``declared[k]``: bad debt already declared for ``accounts[k]``.
    ``long_oi`` (per market) and ``totals`` (liquidations, notional, penalties, capital used)
    are updated in place, as the Python path adds them.

    ``codes``: the journal's (fill, transfer, liquidation) kinds, the fill's and the
    penalty's reason codes. Out: rows ``row_i[r] = (kind, account, counterparty, market,
    code)``, ``row_f[r] = (size, price, amount, fee, counterparty fee)``; touches
    ``touch[t] = (market or -1, account)``; cap records ``clip_i[c] = (account, market,
    liquidated)``, ``clip_f[c] = notional``; ``stop = (reason, accounts done, rows, touches,
    clips, close position, fresh, acted, order length, executed-books bit mask, whether an
    account before the stop acted)``, ``stop_f =
    (equity, maintenance)`` of the stop; ``order_out``: the stop account's close order.
    """
    n_markets = len(market_f)
    buy = np.zeros(1, dtype=np.int64)
    sell = np.zeros(1, dtype=np.int64)
    qty1 = np.zeros(1)
    price1 = np.zeros(1)
    zero1 = np.zeros(1)
    no_margin = np.zeros(0)
    no_mode = np.zeros(0, dtype=np.int8)
    order = np.zeros(n_markets, dtype=np.int64)
    om = np.zeros(n_markets)
    r = 0
    t_n = 0
    c_n = 0
    executed = 0
    reason = STOP_NONE
    any_acted = False
    done = 0
    stop_p = 0
    stop_fresh = 0
    stop_acted = 0
    stop_len = 0
    stop_eq = 0.0
    stop_mm = 0.0
    for k in range(len(accounts)):
        a = accounts[k]
        equity, maint = _cross_pool(
            a, size2, entry2, margin2, mode2, floor2, mmr2, cum2, n_tiers, market_f, cash
        )  # fmt: skip
        if equity >= maint:
            done = k + 1
            continue
        # LiquidationStage._cross_order: largest maintenance first, ties in market order
        n_order = 0
        for j in range(n_markets):
            size = size2[j, a]
            if size != 0.0 and mode2[j, a] == 0:
                mark = market_f[j, 0]
                t = n_tiers[j]
                value = _maint_bisect(
                    abs(size) * mark, floor2[j, :t], mmr2[j, :t], cum2[j, :t], market_f[j, 6]
                )
                # stable insertion by -maintenance (np.argsort(-m, kind="stable"))
                pos = n_order
                while pos > 0 and -value < -om[pos - 1]:
                    om[pos] = om[pos - 1]
                    order[pos] = order[pos - 1]
                    pos -= 1
                om[pos] = value
                order[pos] = j
                n_order += 1
        acted = False
        fresh = True
        p = 0
        stopped = False
        while p < n_order:
            j = order[p]
            if not fresh:
                equity, maint = _cross_pool(
                    a, size2, entry2, margin2, mode2, floor2, mmr2, cum2, n_tiers, market_f, cash
                )  # fmt: skip
            if equity >= maint:
                break
            size = size2[j, a]
            if size == 0.0:
                p += 1
                continue
            mark = market_f[j, 0]
            lot = market_f[j, 4]
            # LiquidationStage._size_to_close
            if equity <= 0.0 or market_i[j, 0] == KIND_FULL:
                qty = abs(size)
            else:
                floor = floor2[j, : n_tiers[j]]
                t = np.searchsorted(floor, abs(size) * mark, side="right") - 1
                if t <= 0:
                    down = abs(size)
                else:
                    steps = market_i[j, 1]
                    target = floor[max(1, t - steps + 1)] * (1.0 - 1e-9)
                    down = _pymax(0.0, abs(size) - target / mark)
                down = np.ceil(down / lot - 1e-9) * lot
                qty = _pymin(abs(size), _pymax(down, lot))
            # _Caps.clip without caps: only a remainder below one lot is dropped
            if qty < lot:
                qty = 0.0
            side = 1 if size > 0 else -1
            pos_equity = equity
            full = False
            close = qty
            price = mark
            filled = qty
            x1 = 0.0
            if qty > 0.0:
                # CrossRound._close up to its hand-over test (nothing changes before it)
                own = 0.0
                total = 0.0
                for i in range(n_markets):
                    s_i = size2[i, a]
                    if s_i == 0.0 or mode2[i, a] != 0:
                        continue
                    t = n_tiers[i]
                    value = _maint_scan(
                        abs(s_i) * market_f[i, 0], floor2[i, :t], mmr2[i, :t], cum2[i, :t],
                        market_f[i, 6],
                    )  # fmt: skip
                    total += value
                    if i == j:
                        own = value
                pos_equity = equity if total <= 0.0 else equity * own / total
                full = qty >= abs(size) * (1 - 1e-12)
                close = abs(size) if full else qty
                if market_i[j, 2] == 1:
                    # linear_fill of a sell (-side) on the book: quote == execute here
                    o_side = -side
                    depth = market_f[j, 2]
                    y0 = o_side * consumed[j]
                    cap = market_f[j, 3] * depth
                    room = cap - y0
                    if room <= 0.0:
                        filled = 0.0
                        y1 = y0
                    elif close < room:
                        filled = close
                        y1 = y0 + close
                    else:
                        filled = room
                        y1 = cap
                    mid = market_f[j, 1]
                    price = mid * (1.0 + o_side * (y0 + y1) / (2.0 * depth))
                    x1 = o_side * y1
                else:
                    price = mark
                    filled = close
                    x1 = 0.0
                equity_after = pos_equity + side * close * (price - mark)
                exhausted = filled < close * (1 - 1e-12)
                if full and (exhausted or equity_after < 0.0):
                    reason = STOP_CLOSE
                    stop_p = p
                    stop_fresh = 1 if fresh else 0
                    stop_acted = 1 if acted else 0
                    stop_len = n_order
                    stop_eq = equity
                    stop_mm = maint
                    stopped = True
                    break
            notional = qty * mark
            totals[3] += notional
            clip_i[c_n, 0] = gid[a]
            clip_i[c_n, 1] = j
            clip_i[c_n, 2] = 1 if qty > 0.0 else 0
            clip_f[c_n] = notional
            c_n += 1
            if qty <= 0.0:
                p += 1
                continue
            bankrupt = _pymax(0.0, mark - pos_equity / size)
            if market_i[j, 2] == 1:
                consumed[j] = x1
                executed |= 1 << j
            fresh = False
            acted = True
            if filled <= 0.0:
                p += 1
                continue
            full = full and filled >= close * (1 - 1e-12)
            close = abs(size) if full else filled
            equity_after = pos_equity + side * close * (price - mark)
            if side > 0:
                buyer, seller = counterparty, a
            else:
                buyer, seller = a, counterparty
            # CrossRound._fill: Ledger._apply of the fill, the long open interest
            lo = buyer if buyer < seller else seller
            hi = seller if buyer < seller else buyer
            col = size2[j]
            long_before = 0.0
            if kind[lo] == 0:
                long_before += _pymax(col[lo], 0.0)
            if hi != lo and kind[hi] == 0:
                long_before += _pymax(col[hi], 0.0)
            buy[0] = buyer
            sell[0] = seller
            qty1[0] = close
            price1[0] = price
            apply_fills_nb(
                col, entry2[j], margin2[j], mode2[j], realized2[j], cash, fee_account,
                buy, sell, qty1, price1, zero1, zero1,
            )  # fmt: skip
            long_after = 0.0
            if kind[lo] == 0:
                long_after += _pymax(col[lo], 0.0)
            if hi != lo and kind[hi] == 0:
                long_after += _pymax(col[hi], 0.0)
            long_oi[j] += long_after - long_before
            touch[t_n, 0] = j
            touch[t_n, 1] = gid[buyer]
            touch[t_n + 1, 0] = j
            touch[t_n + 1, 1] = gid[seller]
            t_n += 2
            row_i[r, 0] = codes[0]
            row_i[r, 1] = gid[buyer]
            row_i[r, 2] = gid[seller]
            row_i[r, 3] = j
            row_i[r, 4] = codes[3]
            row_f[r, 0] = close
            row_f[r, 1] = price
            row_f[r, 2] = 0.0
            row_f[r, 3] = 0.0
            row_f[r, 4] = 0.0
            r += 1
            # LiquidationStage._settle_fill of a cross position
            fund = market_i[j, 4]
            still_open = col[a] != 0.0
            fee_price = mark if market_i[j, 3] == 1 else price
            fee = market_f[j, 5] * close * fee_price
            pool_after = equity + side * close * (price - mark)
            penalty = _pymax(0.0, _pymin(fee, _pymin(equity_after, pool_after)))
            if penalty > 0.0:
                buy[0] = a
                sell[0] = fund
                qty1[0] = penalty
                if still_open:
                    apply_transfers_nb(
                        cash, margin2[j], mode2[j], col, True, buy, sell, qty1
                    )  # fmt: skip
                    tm = j
                else:
                    apply_transfers_nb(
                        cash, no_margin, no_mode, no_margin, False, buy, sell, qty1
                    )  # fmt: skip
                    tm = -1
                touch[t_n, 0] = tm
                touch[t_n, 1] = gid[a]
                touch[t_n + 1, 0] = tm
                touch[t_n + 1, 1] = gid[fund]
                t_n += 2
                row_i[r, 0] = codes[1]
                row_i[r, 1] = gid[a]
                row_i[r, 2] = gid[fund]
                row_i[r, 3] = tm
                row_i[r, 4] = codes[4]
                row_f[r, 0] = 0.0
                row_f[r, 1] = 0.0
                row_f[r, 2] = penalty
                row_f[r, 3] = 0.0
                row_f[r, 4] = 0.0
                r += 1
            due = 0.0
            if full:
                holds = False
                for i in range(n_markets):
                    if size2[i, a] != 0.0 and mode2[i, a] == 0:
                        holds = True
                if not holds:
                    due = _pymax(0.0, -cash[a] - declared[k])
            totals[0] += 1.0
            totals[1] += close * price
            totals[2] += penalty
            row_i[r, 0] = codes[2]
            row_i[r, 1] = gid[a]
            row_i[r, 2] = -1
            row_i[r, 3] = j
            row_i[r, 4] = market_i[j, 5]
            row_f[r, 0] = -side * close
            row_f[r, 1] = price
            row_f[r, 2] = _pymax(0.0, due)
            row_f[r, 3] = penalty
            row_f[r, 4] = bankrupt
            r += 1
            p += 1
        if stopped:
            for q in range(n_order):
                order_out[q] = order[q]
            break
        # CrossRound._settle_flat: a flat account with a deficit goes to the fund (Python)
        holds = False
        for i in range(n_markets):
            if size2[i, a] != 0.0 and mode2[i, a] == 0:
                holds = True
        if not holds and -cash[a] - declared[k] > 1e-9:
            reason = STOP_FLAT
            stop_p = n_order
            stop_acted = 1 if acted else 0
            stop_len = n_order
            for q in range(n_order):
                order_out[q] = order[q]
            break
        done = k + 1
        any_acted = any_acted or acted
    stop[0] = reason
    stop[1] = done
    stop[2] = r
    stop[3] = t_n
    stop[4] = c_n
    stop[5] = stop_p
    stop[6] = stop_fresh
    stop[7] = stop_acted
    stop[8] = stop_len
    stop[9] = executed
    stop[10] = 1 if any_acted else 0
    stop_f[0] = stop_eq
    stop_f[1] = stop_mm


@njit(cache=True)
def gather_rows_nb(
    batch: IntArray,
    others: IntArray,
    sizes: tuple[FloatArray, ...],
    entries: tuple[FloatArray, ...],
    margins: tuple[FloatArray, ...],
    modes: tuple[npt.NDArray[np.int8], ...],
    realized: tuple[FloatArray, ...],
    cash: FloatArray,
    kind: npt.NDArray[np.int8],
) -> tuple[
    IntArray, IntArray, FloatArray, FloatArray, FloatArray, npt.NDArray[np.int8], FloatArray,
    FloatArray, npt.NDArray[np.int8],
]:  # fmt: skip
    """The rows :func:`cross_plan_nb` takes: ``gid``, the sorted distinct ids of ``batch`` and
    ``others`` (the liquidity, fee and fund accounts); ``rows_of``, each of ``batch``'s row in
    ``gid``; then market by market (``[j, i]`` for ``gid[i]``) the sizes, entries, isolated
    margins, modes and realized PnL, and the cash and kinds, copied from the columns."""
    gid = np.unique(np.concatenate((batch, others)))
    rows_of = np.searchsorted(gid, batch)
    n_m, k = len(sizes), len(gid)
    size = np.empty((n_m, k))
    entry = np.empty((n_m, k))
    margin = np.empty((n_m, k))
    mode = np.empty((n_m, k), dtype=np.int8)
    real = np.empty((n_m, k))
    for j in range(n_m):
        for i in range(k):
            a = gid[i]
            size[j, i] = sizes[j][a]
            entry[j, i] = entries[j][a]
            margin[j, i] = margins[j][a]
            mode[j, i] = modes[j][a]
            real[j, i] = realized[j][a]
    cash_g = np.empty(k)
    kind_g = np.empty(k, dtype=np.int8)
    for i in range(k):
        cash_g[i] = cash[gid[i]]
        kind_g[i] = kind[gid[i]]
    return gid, rows_of, size, entry, margin, mode, real, cash_g, kind_g


@njit(cache=True)
def scatter_rows_nb(
    gid: IntArray,
    size: FloatArray,
    entry: FloatArray,
    margin: FloatArray,
    real: FloatArray,
    cash_g: FloatArray,
    sizes: tuple[FloatArray, ...],
    entries: tuple[FloatArray, ...],
    margins: tuple[FloatArray, ...],
    realized: tuple[FloatArray, ...],
    cash: FloatArray,
) -> None:
    """The rows of :func:`gather_rows_nb` (as :func:`cross_plan_nb` left them) back into the
    columns: sizes, entries, isolated margins, realized PnL and cash of the accounts ``gid``
    (the modes are not changed)."""
    for j in range(len(sizes)):
        for i in range(len(gid)):
            a = gid[i]
            sizes[j][a] = size[j, i]
            entries[j][a] = entry[j, i]
            margins[j][a] = margin[j, i]
            realized[j][a] = real[j, i]
    for i in range(len(gid)):
        cash[gid[i]] = cash_g[i]
