"""Compiled kernels of the engine's hot paths (numba), named ``*_nb``.

Each kernel computes what the pure functions of :mod:`deleverage.rules.margin` compute, fused into
one pass over the arrays; tests check kernel and pure functions agree (a differential test).
Kernels take only arrays and scalars and never allocate per element.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from numba import njit

from deleverage.liquidity import linear_fill_nb

FloatArray = npt.NDArray[np.float64]


@njit(cache=True)
def tier_of_nb(notional: float, floor: FloatArray) -> int:
    """Index of the last tier whose floor is at or below ``notional`` (floors increasing).

    Counts the floors passed instead of searching: no data-dependent branch, which matters
    when a million random notionals go through it.
    """
    t = 0
    for j in range(1, len(floor)):
        t += notional >= floor[j]
    return t


@njit(cache=True)
def maintenance_nb(notional: float, mmr_t: float, cum_t: float, min_margin: float) -> float:
    """Tiered maintenance ``notional x mmr[t] - cum[t]``, at least ``min_margin`` for an open
    position (``MarketSpec.min_maintenance_margin``)."""
    m = notional * mmr_t - cum_t
    if notional > 0.0 and m < min_margin:
        return min_margin
    return m


@njit(cache=True)
def accumulate_market_nb(
    size: FloatArray,
    entry: FloatArray,
    isolated_margin: FloatArray,
    mode: npt.NDArray[np.int8],
    leverage: FloatArray,
    mark: float,
    floor: FloatArray,
    imr: FloatArray,
    mmr: FloatArray,
    cum: FloatArray,
    min_margin: float,
    cross_equity: FloatArray,
    cross_maintenance: FloatArray,
    cross_initial: FloatArray,
    total_equity: FloatArray,
    cash: FloatArray,
    first: bool,
    initial_fee: float,
) -> None:
    """Add one market's positions to the per-account margin accumulators, in place.

    For each position: ``upnl = size x (mark - entry)``, ``notional = |size| x mark``,
    maintenance ``notional x mmr[t] - cum[t]`` and initial ``notional x (max(imr[t],
    1/leverage) + initial_fee)`` in its tier ``t``. Cross positions add to the cross
    accumulators; every position adds its unrealized PnL (and isolated margin) to
    ``total_equity``. With ``first`` the accumulators
    are (re)started from the cash (equities) and zero (margins) instead of added to: one pass,
    no separate initialization.
    """
    for i in range(len(size)):
        if first:
            cross_equity[i] = cash[i]
            cross_maintenance[i] = 0.0
            cross_initial[i] = 0.0
            total_equity[i] = cash[i]
        s = size[i]
        if s == 0.0:
            total_equity[i] += isolated_margin[i]
            continue
        upnl = s * (mark - entry[i])
        total_equity[i] += upnl + isolated_margin[i]
        if mode[i] != 0:
            continue
        notional = abs(s) * mark
        t = tier_of_nb(notional, floor)
        rate = imr[t]
        if leverage[i] > 0.0 and 1.0 / leverage[i] > rate:
            rate = 1.0 / leverage[i]
        rate += initial_fee
        cross_equity[i] += upnl
        cross_maintenance[i] += maintenance_nb(notional, mmr[t], cum[t], min_margin)
        cross_initial[i] += notional * rate


@njit(cache=True)
def add_total_equity_nb(
    size: FloatArray,
    entry: FloatArray,
    isolated_margin: FloatArray,
    mark: float,
    total_equity: FloatArray,
) -> None:
    """Add one market's positions to ``total_equity`` in place (quote): ``upnl + isolated
    margin`` for an open position, the isolated margin alone for a flat one.

    :func:`accumulate_market_nb`'s ``total_equity`` alone, with the same float operations in
    the same order (started from the cash by the caller): the run's final equity needs no
    cross margins, and one output array instead of five is fresh memory the day's end does not
    fault in (a 10^6-account day: ~50 ms of its ~2 s).
    """
    for i in range(len(size)):
        s = size[i]
        if s == 0.0:
            total_equity[i] += isolated_margin[i]
            continue
        upnl = s * (mark - entry[i])
        total_equity[i] += upnl + isolated_margin[i]


@njit(cache=True)
def isolated_market_nb(
    size: FloatArray,
    entry: FloatArray,
    isolated_margin: FloatArray,
    mode: npt.NDArray[np.int8],
    mark: float,
    floor: FloatArray,
    mmr: FloatArray,
    cum: FloatArray,
    min_margin: float,
    equity_out: FloatArray,
    maintenance_out: FloatArray,
) -> None:
    """Equity (``isolated margin + upnl``) and maintenance of isolated positions; 0 elsewhere."""
    for i in range(len(size)):
        s = size[i]
        if mode[i] == 0 or s == 0.0:
            equity_out[i] = 0.0
            maintenance_out[i] = 0.0
            continue
        notional = abs(s) * mark
        t = tier_of_nb(notional, floor)
        equity_out[i] = isolated_margin[i] + s * (mark - entry[i])
        maintenance_out[i] = maintenance_nb(notional, mmr[t], cum[t], min_margin)


@njit(cache=True)
def fill_one_nb(
    size: float, entry: float, delta: float, price: float
) -> tuple[float, float, float]:
    """Apply a fill of ``delta`` base units at ``price`` to one position.

    Returns ``(new_size, new_entry, realized_pnl)``: increasing averages the entry by size,
    reducing realizes ``closed x (price - entry)`` signed by the side, crossing zero opens the
    rest at ``price``. A size within 1e-9 (relative) of zero is snapped to flat.
    """
    new_size = size + delta
    if abs(new_size) <= 1e-9 * max(abs(size), abs(delta)):
        new_size = 0.0
    if size == 0.0 or size * delta > 0.0:
        total = abs(size) + abs(delta)
        return new_size, (abs(size) * entry + abs(delta) * price) / total, 0.0
    closed = min(abs(delta), abs(size))
    sign = 1.0 if size > 0.0 else -1.0
    realized = closed * (price - entry) * sign
    if new_size == 0.0:
        return 0.0, 0.0, realized
    if new_size * size > 0.0:
        return new_size, entry, realized
    return new_size, price, realized


@njit(cache=True)
def apply_fills_nb(
    size: FloatArray,
    entry: FloatArray,
    isolated_margin: FloatArray,
    mode: npt.NDArray[np.int8],
    realized_pnl: FloatArray,
    cash: FloatArray,
    fee_account: int,
    buyers: npt.NDArray[np.int64],
    sellers: npt.NDArray[np.int64],
    sizes: FloatArray,
    prices: FloatArray,
    buyer_fees: FloatArray,
    seller_fees: FloatArray,
) -> None:
    """Apply fills in order to one market's position columns and the cash array, in place.

    Each side's realized PnL minus its fee goes to its isolated margin (isolated position) or
    cash (cross); a closed isolated position returns its remaining margin to cash; fees go to
    the fee account.
    """
    for k in range(len(sizes)):
        for side in range(2):
            if side == 0:
                a = buyers[k]
                delta = sizes[k]
                fee = buyer_fees[k]
            else:
                a = sellers[k]
                delta = -sizes[k]
                fee = seller_fees[k]
            new_size, new_entry, realized = fill_one_nb(size[a], entry[a], delta, prices[k])
            size[a] = new_size
            entry[a] = new_entry
            realized_pnl[a] += realized
            cash[fee_account] += fee
            if mode[a] != 0:
                isolated_margin[a] += realized - fee
                if new_size == 0.0:
                    cash[a] += isolated_margin[a]
                    isolated_margin[a] = 0.0
            else:
                cash[a] += realized - fee


@njit(cache=True)
def margin_ratio_nb(equity: FloatArray, maintenance: FloatArray, out: FloatArray) -> None:
    """``maintenance / equity`` (Binance convention): inf where equity <= 0, 0 without risk."""
    for i in range(len(equity)):
        e = equity[i]
        m = maintenance[i]
        if e > 0.0:
            out[i] = m / e
        else:
            out[i] = np.inf


@njit(cache=True)
def plan_isolated_liquidations_nb(
    size: FloatArray,
    equity: FloatArray,
    close: FloatArray,
    cash: FloatArray,
    mark: float,
    book_mid: float,
    fee_rate: float,
    fund_balance: float,
    book_depth: float,
    book_consumed: float,
    book_max_move: float,
    adl_enabled: bool,
    filled_out: FloatArray,
    price_out: FloatArray,
    penalty_out: FloatArray,
    shortfall_out: FloatArray,
    cover_out: FloatArray,
    own_out: FloatArray,
    adl_out: npt.NDArray[np.bool_],
    adl_capacity_long: float,
    adl_capacity_short: float,
    recourse: bool,
    takeover_cap: float,
) -> tuple[float, float]:
    """Plan the liquidation of isolated positions, in order, against a constant-depth book.

    For candidate ``i`` (position ``size[i]``, pool equity ``equity[i]``, closing
    ``close[i]`` base units) a market order of side ``-sign(size)`` walks the book around its
    mid ``book_mid`` (``book_depth`` = D base units per unit relative move, net consumed
    ``book_consumed``; ``book_depth = inf`` fills at the mark):
    ``vwap = book_mid (1 + s (y0 + y1) / (2 D))``. Then

    - equity after the fill ``E' = E + side x filled x (vwap - mark)``;
    - penalty ``max(0, min(fee_rate x filled x vwap, E'))`` goes to the fund (dYdX cap);
    - a full close with ``E' < 0`` leaves the shortfall ``-E'`` (the loss beyond the
      position's isolated margin), which the fund covers as far as it can; with
      ``recourse`` the account's ``cash`` (its other cash, net of bad debt already declared)
      is collateral too: the closed position's negative margin lands in it and the fund
      covers what is still negative;
    - a partial close that leaves the open position at ``E' < 0``: with ``recourse`` the
      account's cash moves into its margin first (``own_out``); the fund covers the rest.

    If a full close would leave the fund more to cover than it holds, or a deficit on a
    position whose notional at the mark exceeds ``takeover_cap`` times the fund (Binance's
    takeover limit; ``inf``: none), or the book cannot absorb the order, ``adl_enabled``
    and the opposing ADL queue still holds the position's size (``adl_capacity_long`` for a
    bankrupt short, ``adl_capacity_short`` for a bankrupt long), the candidate is flagged
    for ADL instead and takes no depth; otherwise it fills on the book like the
    per-account path does when ADL cannot serve it.
    Returns the fund balance and the book's consumed depth afterwards.
    """
    consumed = book_consumed
    fund = fund_balance
    for i in range(len(size)):
        s = size[i]
        side = 1.0 if s > 0.0 else -1.0
        q = close[i]
        full = q >= abs(s) * (1.0 - 1e-12)
        if full:
            q = abs(s)
        if np.isinf(book_depth):
            filled = q
            vwap = mark
            y1 = consumed
        else:  # the constant-depth book's own fill (liquidity.linear_fill)
            filled, vwap, _, y1 = linear_fill_nb(
                -1 if s > 0.0 else 1, q, book_mid, book_depth, consumed, book_max_move
            )
        equity_after = equity[i] + side * filled * (vwap - mark)
        exhausted = filled < q * (1.0 - 1e-12)
        # What the position's collateral cannot take (with recourse, the account's cash too).
        owed = -(cash[i] + equity_after) if recourse else -equity_after
        if owed < 0.0 or equity_after >= 0.0:
            owed = 0.0
        capacity = adl_capacity_short if side > 0.0 else adl_capacity_long
        over_cap = owed > 0.0 and q * mark > takeover_cap * fund
        if (
            adl_enabled
            and full
            and (exhausted or owed > fund or over_cap)
            and capacity >= q * (1.0 - 1e-12)
        ):
            if side > 0.0:
                adl_capacity_short -= q
            else:
                adl_capacity_long -= q
            adl_out[i] = True
            filled_out[i] = 0.0
            continue
        adl_out[i] = False
        consumed = y1
        filled_out[i] = filled
        price_out[i] = vwap
        fee = fee_rate * filled * vwap
        penalty = fee if fee < equity_after else equity_after
        if penalty < 0.0:
            penalty = 0.0
        penalty_out[i] = penalty
        fund += penalty
        shortfall = -equity_after if equity_after < 0.0 else 0.0
        shortfall_out[i] = shortfall
        if full and not exhausted:
            own = 0.0  # the closed position's margin lands in cash: owed is what is left
            due = owed if owed < shortfall else shortfall
        else:
            # still open beyond bankruptcy: the account's cash moves into its margin first
            own = cash[i] if cash[i] > 0.0 and recourse else 0.0
            if own > shortfall:
                own = shortfall
            due = shortfall - own
        own_out[i] = own
        cover = due if due < fund else fund
        if cover < 0.0:
            cover = 0.0
        cover_out[i] = cover
        fund -= cover
    return fund, consumed


@njit(cache=True)
def apply_transfers_nb(
    cash: FloatArray,
    isolated_margin: FloatArray,
    mode: npt.NDArray[np.int8],
    size: FloatArray,
    in_market: bool,
    sources: npt.NDArray[np.int64],
    destinations: npt.NDArray[np.int64],
    amounts: FloatArray,
) -> None:
    """Apply cash transfers in order, in place.

    With ``in_market`` (the transfers name one market, whose columns are given) a side with an
    open isolated position there moves its isolated margin; any other side (cross, or flat)
    moves cash.
    """
    for k in range(len(amounts)):
        a = sources[k]
        if in_market and mode[a] != 0 and size[a] != 0.0:
            isolated_margin[a] -= amounts[k]
        else:
            cash[a] -= amounts[k]
        b = destinations[k]
        if in_market and mode[b] != 0 and size[b] != 0.0:
            isolated_margin[b] += amounts[k]
        else:
            cash[b] += amounts[k]


@njit(cache=True)
def cross_scan_nb(
    size: FloatArray,
    entry: FloatArray,
    mode: npt.NDArray[np.int8],
    kind: npt.NDArray[np.int8],
    mark: float,
    floor: FloatArray,
    mmr: FloatArray,
    cum: FloatArray,
    min_margin: float,
    cash: FloatArray,
    partial_equity: FloatArray,
    partial_maintenance: FloatArray,
    first: bool,
    call_level: float,
    ratio_out: FloatArray,
    below_out: npt.NDArray[np.int64],
    below_equity: FloatArray,
    below_maintenance: FloatArray,
    warn_out: npt.NDArray[np.int64],
) -> tuple[int, int]:
    """The risk step's scan of cross accounts, fused into the pass over the market that moved.

    For every account: cross equity ``E = cash + sum upnl`` and maintenance ``MM = sum mm`` of
    its cross positions (``partial_*`` hold the other markets' sums unless ``first``), then
    ``ratio = MM / E`` (inf when ``E <= 0``) into ``ratio_out``. Traders (``kind == 0``) with a
    cross position in this market go to ``below_out`` (with their ``E`` and ``MM``) when
    ``E < MM`` and to ``warn_out`` when ``call_level <= ratio < 1``. Returns the two counts.
    One read of the columns, one write.
    """
    # Pass 1, branch-free so it vectorizes: every account's ratio.
    for i in range(len(size)):
        s = size[i]
        cross = (s != 0.0) & (mode[i] == 0)
        notional = abs(s) * mark
        t = tier_of_nb(notional, floor)
        base_e = cash[i] if first else partial_equity[i]
        base_m = 0.0 if first else partial_maintenance[i]
        e = base_e + cross * (s * (mark - entry[i]))
        m = base_m + cross * maintenance_nb(notional, mmr[t], cum[t], min_margin)
        ratio_out[i] = m / e if e > 0.0 else np.inf
    # Pass 2: the few at or above the call level, classified (same arithmetic as pass 1).
    n_below = 0
    n_warn = 0
    for i in range(len(size)):
        r = ratio_out[i]
        if r < call_level:
            continue
        s = size[i]
        if s == 0.0 or mode[i] != 0 or kind[i] != 0:
            continue
        notional = abs(s) * mark
        t = tier_of_nb(notional, floor)
        base_e = cash[i] if first else partial_equity[i]
        base_m = 0.0 if first else partial_maintenance[i]
        e = base_e + 1.0 * (s * (mark - entry[i]))
        m = base_m + maintenance_nb(notional, mmr[t], cum[t], min_margin)
        if e < m:
            below_out[n_below] = i
            below_equity[n_below] = e
            below_maintenance[n_below] = m
            n_below += 1
        elif r < 1.0:
            warn_out[n_warn] = i
            n_warn += 1
    return n_below, n_warn


@njit(cache=True)
def cross_partial_nb(
    size: FloatArray,
    entry: FloatArray,
    mode: npt.NDArray[np.int8],
    mark: float,
    floor: FloatArray,
    mmr: FloatArray,
    cum: FloatArray,
    min_margin: float,
    cash: FloatArray,
    equity: FloatArray,
    maintenance: FloatArray,
    first: bool,
) -> None:
    """Accumulate one market's cross equity and maintenance (``first``: start from cash)."""
    for i in range(len(size)):
        if first:
            equity[i] = cash[i]
            maintenance[i] = 0.0
        s = size[i]
        if s != 0.0 and mode[i] == 0:
            notional = abs(s) * mark
            t = tier_of_nb(notional, floor)
            equity[i] += s * (mark - entry[i])
            maintenance[i] += maintenance_nb(notional, mmr[t], cum[t], min_margin)


@njit(cache=True)
def isolated_scan_nb(
    size: FloatArray,
    entry: FloatArray,
    isolated_margin: FloatArray,
    mode: npt.NDArray[np.int8],
    kind: npt.NDArray[np.int8],
    mark: float,
    floor: FloatArray,
    mmr: FloatArray,
    cum: FloatArray,
    min_margin: float,
    call_level: float,
    below_out: npt.NDArray[np.int64],
    below_equity: FloatArray,
    below_maintenance: FloatArray,
    warn_out: npt.NDArray[np.int64],
    warn_ratio: FloatArray,
) -> tuple[int, int]:
    """The risk step's scan of isolated trader positions in one market, in one pass.

    ``E = isolated margin + size x (mark - entry)``, ``MM`` tiered; positions with ``E < MM``
    go to ``below_out`` (with ``E`` and ``MM``), those with ``call_level <= MM / E < 1`` to
    ``warn_out`` (with the ratio). Returns the two counts; nothing is written per account.
    """
    n_below = 0
    n_warn = 0
    for i in range(len(size)):
        s = size[i]
        if s == 0.0 or mode[i] == 0 or kind[i] != 0:
            continue
        notional = abs(s) * mark
        t = tier_of_nb(notional, floor)
        m = maintenance_nb(notional, mmr[t], cum[t], min_margin)
        e = isolated_margin[i] + s * (mark - entry[i])
        if e < m:
            below_out[n_below] = i
            below_equity[n_below] = e
            below_maintenance[n_below] = m
            n_below += 1
        elif e > 0.0 and m / e >= call_level:
            warn_out[n_warn] = i
            warn_ratio[n_warn] = m / e
            n_warn += 1
    return n_below, n_warn


@njit(cache=True, error_model="numpy")  # rows of flat positions divide by 0: masked out
def pnl_leverage_queue_nb(
    size: FloatArray,
    entry: FloatArray,
    isolated_margin: FloatArray,
    kind: npt.NDArray[np.int8],
    mark: float,
    side: float,
    idx_out: npt.NDArray[np.int64],
    score_out: FloatArray,
    abs_size_out: FloatArray,
) -> int:
    """The ADL candidates of one side of a market of isolated positions, with their scores.

    Traders on ``side`` (+1 long, -1 short) in profit, scored as
    :func:`deleverage.rules.adl.score_pnl_leverage` (BitMEX): ``pnl% x effective leverage`` with
    ``pnl% = side x (mark - entry) / entry`` and ``leverage = |size| x mark / equity``
    (infinite for non-positive equity); ``abs_size_out`` gets each candidate's ``|size|``
    (base units: the queue's capacity is their sum, taken in the same order as a gather of
    the candidates' sizes would). Returns the count written to the outputs.
    """
    k = 0
    for i in range(len(size)):
        # Branch-free compaction: write every row, advance only past eligible ones (the signs
        # and profits of a book are random, so branches would mispredict half the time).
        s = size[i]
        move = mark - entry[i]
        upnl = s * move
        eligible = (kind[i] == 0) & (s * side > 0.0) & (upnl > 0.0)
        equity = isolated_margin[i] + upnl
        leverage = abs(s) * mark / equity if equity > 0.0 else np.inf
        idx_out[k] = i
        score_out[k] = side * move / entry[i] * leverage
        abs_size_out[k] = abs(s)
        k += eligible
    return k


@njit(cache=True)
def top_scores_nb(scores: FloatArray, k: int) -> npt.NDArray[np.int64]:
    """Positions of every score at or above the ``k``-th largest, ascending (ties kept whole).

    The same set as ``np.flatnonzero(-scores <= np.partition(-scores, k - 1)[k - 1])``,
    without a pass that copies or sorts all of ``scores``: a strided sample gives a
    threshold that at least ``k`` scores reach (all of them if the guess falls short), one
    pass keeps the scores at or above it, and the ``k``-th largest is found among those.
    ``1 <= k < len(scores)``; a NaN score returns an empty array (the caller falls back).
    """
    n = len(scores)
    stride = max(1, n // 4096)
    sample = -np.sort(-scores[::stride])
    rank = min(len(sample) - 1, (2 * k * len(sample)) // n + 8)
    floor = sample[rank]
    for _attempt in range(2):
        count = 0
        nan = 0
        for i in range(n):  # branch-free: the compiler vectorizes it
            x = scores[i]
            count += x >= floor
            nan += x != x
        if nan:
            return np.zeros(0, dtype=np.int64)
        if count >= k:
            break
        floor = -np.inf  # the sample misled: keep every score
    kept = np.empty(count, dtype=np.int64)
    j = 0
    for i in range(n):
        if scores[i] >= floor:
            kept[j] = i
            j += 1
    values = np.sort(scores[kept])
    kth = values[len(values) - k]
    out = np.empty(count, dtype=np.int64)
    j = 0
    for position in kept:
        if scores[position] >= kth:
            out[j] = position
            j += 1
    return out[:j]


#: Positions per block of :func:`zone_prices_nb` (its scratch rows stay in L1).
ZONE_BLOCK = 256


@njit(cache=True, error_model="numpy")
def zone_prices_nb(
    size: FloatArray,
    entry: FloatArray,
    margin: FloatArray,
    level: float,
    mmr: FloatArray,
    cum: FloatArray,
    out: FloatArray,
) -> None:
    """:func:`deleverage.engine.levels.zone_prices` in one compiled pass (same formula and result).

    ``p_t = -(level (M - s e) + cum_t) / (s (level - sign(s) mmr_t))``; longs take the max over
    tiers, shorts the min; a tier with ``mmr_t >= level`` puts every price in the zone.

    The same operations in the same order per position as a loop over the tiers of each
    position, with the tiers outermost inside blocks of :data:`ZONE_BLOCK` positions: the
    inner loop over a block has no dependence between positions, so it runs on vector
    registers (ten divisions per position at ten tiers: twice as fast at 10^6 positions).
    ``level - sign mmr_t`` is taken once per tier and side (``sign mmr_t`` is exact); the
    running max / min is Python's ``max`` / ``min`` (``p if p > best else best``), NaN kept
    out as there. ``error_model="numpy"``: a closed position (size 0, NaN out) is divided by
    zero in its block without raising."""
    n = len(size)
    n_t = len(mmr)
    for t in range(n_t):
        if level - mmr[t] <= 0.0:  # every open position is in the zone at some price
            for i in range(n):
                s = size[i]
                out[i] = np.nan if s == 0.0 else (np.inf if s > 0.0 else -np.inf)
            return
    d_long = np.empty(n_t)
    d_short = np.empty(n_t)
    for t in range(n_t):
        d_long[t] = level - mmr[t]
        d_short[t] = level - (-mmr[t])
    base = np.empty(ZONE_BLOCK)
    best = np.empty(ZONE_BLOCK)
    for start in range(0, n, ZONE_BLOCK):
        m = min(ZONE_BLOCK, n - start)
        s_blk = size[start : start + m]
        for j in range(m):
            s = s_blk[j]
            base[j] = level * (margin[start + j] - s * entry[start + j])
            best[j] = -np.inf if s > 0.0 else np.inf
        for t in range(n_t):
            c, d_l, d_s = cum[t], d_long[t], d_short[t]
            for j in range(m):
                s = s_blk[j]
                p = -(base[j] + c) / (s * (d_l if s > 0.0 else d_s))
                b = best[j]
                if s > 0.0:
                    best[j] = p if p > b else b
                else:
                    best[j] = p if p < b else b
        for j in range(m):
            out[start + j] = np.nan if s_blk[j] == 0.0 else best[j]


@njit(cache=True)
def unique_accounts_nb(
    accounts: npt.NDArray[np.int64], seen: npt.NDArray[np.bool_]
) -> npt.NDArray[np.int64]:
    """Distinct ``accounts``, ascending (``np.unique``), through a flag per account.

    ``seen`` (one flag per account, all False) is set for the accounts met and cleared again
    before returning, so a caller keeps one for every call: no pass over all accounts.
    """
    found = np.empty(len(accounts), dtype=np.int64)
    k = 0
    for a in accounts:
        if not seen[a]:
            seen[a] = True
            found[k] = a
            k += 1
    for j in range(k):
        seen[found[j]] = False
    return np.sort(found[:k])


@njit(cache=True)
def distinct_accounts_nb(
    accounts: npt.NDArray[np.int64], seen: npt.NDArray[np.bool_]
) -> npt.NDArray[np.int64]:
    """Distinct ``accounts`` in the order first met, through a flag per account (as
    :func:`unique_accounts_nb`, without its sort: NumPy's sort of the result is faster)."""
    found = np.empty(len(accounts), dtype=np.int64)
    k = 0
    for a in accounts:
        if not seen[a]:
            seen[a] = True
            found[k] = a
            k += 1
    for j in range(k):
        seen[found[j]] = False
    return found[:k].copy()
