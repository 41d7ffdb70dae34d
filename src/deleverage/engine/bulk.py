"""Bulk loading: thousands to millions of accounts, deposits and positions at once.

The columnar fast paths an engine uses to load a population (a venue's book, a simulation's
traders): one journal batch per operation instead of one event per account, the same checks
as the one-by-one operations (all or nothing), and the same effects, so replay rebuilds the
same arrays. :class:`deleverage.engine.exchange.Exchange` exposes them as methods.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from deleverage.engine.adl_index import AdlIndex
from deleverage.engine.events import EventKind, FillReason
from deleverage.engine.state import SYSTEM_KINDS, AccountKind
from deleverage.errors import (
    InsufficientFundsError,
    InsufficientMarginError,
    StateError,
    UnknownEntityError,
    ValidationError,
)
from deleverage.rules import margin as mm
from deleverage.rules.adl_ranking import PnlLeverageRanking, ranking_for
from deleverage.spec import MarginMode
from deleverage.tolerance import GRID_RTOL, MARGIN_ATOL

if TYPE_CHECKING:
    from deleverage.engine.contracts import ContractUnits
    from deleverage.engine.exchange import Exchange
    from deleverage.engine.ledger import MarketRef
    from deleverage.engine.state import MarketState

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


def open_accounts(
    ex: Exchange,
    count: int,
    *,
    kind: AccountKind = AccountKind.TRADER,
    margin_mode: MarginMode = MarginMode.CROSS,
    ts_ns: int | None = None,
) -> IntArray:
    """Open ``count`` accounts at once (columnar journal batch); return their ids."""
    ts = ex._ts(ts_ns)
    if isinstance(count, bool) or not isinstance(count, int | np.integer) or count < 1:
        raise ValidationError("count", count, "must be an int >= 1")
    if not isinstance(kind, AccountKind):
        raise ValidationError("kind", kind, "must be an AccountKind")
    if margin_mode not in (MarginMode.CROSS, MarginMode.ISOLATED):
        raise ValidationError("margin_mode", margin_mode, "must be a MarginMode")
    ex._version += 1
    ex.layout_version += 1
    first = ex._n
    ids = np.arange(first, first + count, dtype=np.int64)
    ex.journal.append_columns(
        EventKind.ACCOUNT_OPENED, ts, account=ids, code=int(kind), market=int(margin_mode)
    )
    capacity = ex._capacity
    while capacity < first + count:
        capacity *= 2
    if capacity != ex._capacity:
        ex._grow(capacity)
    ex._kind[first : first + count] = int(kind)
    ex._default_mode[first : first + count] = int(margin_mode)
    for cols in ex._positions:
        cols.mode[first : first + count] = int(margin_mode)
    ex._n += count
    if kind == AccountKind.INSURANCE:
        for a in ids.tolist():
            ex._register_fund(a, "")
    ex.clock_ns = max(ex.clock_ns, ts)
    return ids


def deposit_many(
    ex: Exchange, accounts: npt.ArrayLike, amounts: npt.ArrayLike, *, ts_ns: int | None = None
) -> None:
    """Deposit into many accounts at once (columnar journal batch); all or nothing."""
    acc = np.asarray(accounts, dtype=np.int64)
    amt = np.broadcast_to(np.asarray(amounts, dtype=np.float64), acc.shape).copy()
    ts = ex._ts(ts_ns)
    if len(acc) == 0:
        return
    if acc.min() < 0 or acc.max() >= ex._n:
        raise UnknownEntityError("accounts", int(acc[(acc < 0) | (acc >= ex._n)][0]))
    _check_array("amounts", amt, positive=True)
    ex.journal.append_columns(EventKind.DEPOSIT, ts, account=acc, amount=amt)
    ex._apply_deposits(acc, amt)
    ex.clock_ns = max(ex.clock_ns, ts)
    if ex.check_invariants:
        ex.assert_conserved()


def open_positions(
    ex: Exchange,
    market: MarketRef,
    accounts: npt.ArrayLike,
    sizes: npt.ArrayLike,
    prices: npt.ArrayLike,
    *,
    leverage: npt.ArrayLike | None = None,
    counterparty: int | None = None,
    ts_ns: int | None = None,
) -> None:
    """Open many positions at once against one counterparty (the book by default).

    The columnar fast path for loading a population: each account must be distinct and flat
    in the market; each pays the taker fee and must meet initial margin afterwards (isolated
    positions are topped up from cash to ``notional / leverage``). ``leverage`` (chosen per
    position, at most the tier maximum) defaults to the tier maximum. Either every position
    opens or none does.
    """
    m = ex.market_id(market)
    ts = ex._ts(ts_ns)
    acc = np.asarray(accounts, dtype=np.int64)
    qty = np.asarray(sizes, dtype=np.float64)
    px = np.asarray(prices, dtype=np.float64)
    cp = ex.liquidity_account if counterparty is None else ex._check_account(counterparty)
    n = len(acc)
    if qty.shape != (n,) or px.shape != (n,):
        raise ValidationError("sizes", qty.shape, f"and prices must have shape ({n},)")
    if n == 0:
        return
    _check_array("sizes", qty, nonzero=True)
    _check_array("prices", px, positive=True)
    if acc.min() < 0 or acc.max() >= ex._n:
        raise UnknownEntityError("accounts", int(acc[(acc < 0) | (acc >= ex._n)][0]))
    if not _distinct(acc, ex._n):
        raise ValidationError("accounts", "duplicates", "must be distinct")
    if np.any(acc == cp):
        raise ValidationError("accounts", cp, "must not include the counterparty")
    state = ex.markets[m]
    if state.mark <= 0:
        raise StateError(f"market {state.spec.symbol} has no mark price yet: set_mark first")
    cols = ex._positions[m]
    if np.any(cols.size[acc] != 0.0):
        bad = int(acc[cols.size[acc] != 0.0][0])
        raise StateError(f"open_positions needs flat accounts; account {bad} holds a position")
    lev = cols.leverage[acc] if leverage is None else _checked_leverage(leverage, qty, state)
    fee = np.abs(qty) * px * state.spec.taker_fee_rate
    cp_fee = np.abs(qty) * px * state.spec.maker_fee_rate
    topup = _isolated_topups(ex, m, acc, qty, px, lev, fee)
    ex._version += 1
    if leverage is not None:
        ex.journal.append_columns(
            EventKind.POSITION_SETTINGS, ts, account=acc, market=m, code=cols.mode[acc],
            price=lev,
        )  # fmt: skip
        cols.leverage[acc] = lev
    moved = topup > 0
    if moved.any():
        ex.journal.append_columns(
            EventKind.MARGIN_MOVED, ts, account=acc[moved], market=m, amount=topup[moved]
        )
        ex._cash[acc[moved]] -= topup[moved]
        cols.isolated_margin[acc[moved]] += topup[moved]
        ex._touch(m, acc[moved])
    buy = qty > 0
    buyers = np.where(buy, acc, cp)
    sellers = np.where(buy, cp, acc)
    abs_qty = np.abs(qty)
    buyer_fees = np.where(buy, fee, cp_fee)
    seller_fees = np.where(buy, cp_fee, fee)
    ex.journal.append_columns(
        EventKind.FILL, ts, market=m, account=buyers, counterparty=sellers, size=abs_qty,
        price=px, fee=buyer_fees, counterparty_fee=seller_fees, code=int(FillReason.TRADE),
    )  # fmt: skip
    ex._apply_fill_columns(m, buyers, sellers, abs_qty, px, buyer_fees, seller_fees)
    ex.clock_ns = max(ex.clock_ns, ts)
    _build_adl_index(ex, m)
    if ex.check_invariants:
        ex.assert_conserved()


def _build_adl_index(ex: Exchange, m: int) -> None:
    """Sort the loaded positions into the market's ADL cells (:mod:`.adl_index`) now, as a
    venue keeps its ADL ranking as positions open, not at the first deleveraging: linear in
    the accounts, so a load costs it once."""
    if not (ex.risk.dense_queue and ex.risk.adl_index):
        return
    if not isinstance(ranking_for(ex.markets[m].spec.adl), PnlLeverageRanking):
        return
    n = ex._n
    cols = ex._positions[m]
    index = ex._adl_index.get(m)
    if index is None:
        index = ex._adl_index[m] = AdlIndex(m)
    index.build(cols.size[:n], cols.entry[:n], cols.isolated_margin[:n], ex._kind[:n])


def engine_units(
    units: ContractUnits, sizes: npt.ArrayLike, prices: npt.ArrayLike
) -> tuple[FloatArray, FloatArray]:
    """Venue sizes (contracts) and prices of an inverse market in the engine's units, checked
    first so that an error names the venue's value."""
    qty = np.asarray(sizes, dtype=np.float64)
    px = np.asarray(prices, dtype=np.float64)
    if qty.shape == px.shape and qty.ndim == 1:
        _check_array("sizes", qty, nonzero=True)
        _check_array("prices", px, positive=True)
    return units.engine_size(qty), units.engine_price(px)


def _checked_leverage(leverage: npt.ArrayLike, qty: FloatArray, state: MarketState) -> FloatArray:
    """Per-position leverage, each in [1, the tier maximum at its notional]."""
    n = len(qty)
    lev = np.broadcast_to(np.asarray(leverage, dtype=np.float64), (n,)).copy()
    _check_array("leverage", lev, positive=True)
    tier_max = 1.0 / state.tiers.imr[mm.tier_index(np.abs(qty) * state.mark, state.tiers)]
    over = (lev > tier_max * (1 + GRID_RTOL)) | (lev < 1.0)
    if over.any():
        k = int(np.flatnonzero(over)[0])
        raise ValidationError(
            f"leverage[{k}]",
            float(lev[k]),
            f"must be in [1, {tier_max[k]:g}] (tier maximum)",
        )
    return lev


def _isolated_topups(
    ex: Exchange,
    m: int,
    acc: IntArray,
    qty: FloatArray,
    px: FloatArray,
    lev: FloatArray,
    fee: FloatArray,
) -> FloatArray:
    """Cash each isolated trader moves into its new position's margin (0 for cross and the
    venue's accounts); raise when any account cannot meet initial margin afterwards."""
    state = ex.markets[m]
    cols = ex._positions[m]
    notional = np.abs(qty) * state.mark
    initial = mm.initial_margin(notional, state.tiers, leverage=lev)
    upnl = qty * (state.mark - px)
    margins = ex.margin_state()
    trader = np.isin(ex._kind[acc], [int(k) for k in SYSTEM_KINDS], invert=True)
    iso = cols.mode[acc] == MarginMode.ISOLATED
    available = np.maximum(
        0.0,
        np.minimum(ex._cash[acc], margins["cross_equity"][acc] - margins["cross_initial"][acc]),
    )
    topup = np.where(iso & trader, np.maximum(0.0, initial - (upnl - fee)), 0.0)
    short_iso = iso & trader & (topup > available + MARGIN_ATOL)
    equity_after = margins["cross_equity"][acc] - fee + upnl
    short_cross = (
        (~iso) & trader & (equity_after < margins["cross_initial"][acc] + initial - MARGIN_ATOL)
    )
    bad_mask = short_iso | short_cross
    if bad_mask.any():
        k = int(np.flatnonzero(bad_mask)[0])
        raise InsufficientMarginError(
            f"`accounts` account {int(acc[k])} lacks initial margin for size {qty[k]:g} at "
            f"{px[k]:g} ({int(bad_mask.sum())} of {len(acc)} accounts short)"
        )
    return np.asarray(topup, dtype=np.float64)


def _check_array(
    field: str, values: FloatArray, *, positive: bool = False, nonzero: bool = False
) -> None:
    bad = ~np.isfinite(values)
    if positive:
        bad |= values <= 0
    if nonzero:
        bad |= values == 0
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        rule = "must be finite and > 0" if positive else "must be finite and non-zero"
        raise ValidationError(f"{field}[{k}]", float(values[k]), rule)


def add_isolated_margin_many(
    ex: Exchange,
    market: MarketRef,
    accounts: npt.ArrayLike,
    amounts: npt.ArrayLike,
    *,
    ts_ns: int | None = None,
) -> None:
    """Move cash into many isolated positions' margin at once (columnar); all or nothing.

    Each account must hold an isolated position in ``market`` and the cash to move.
    """
    m = ex.market_id(market)
    acc = np.asarray(accounts, dtype=np.int64)
    amt = np.broadcast_to(np.asarray(amounts, dtype=np.float64), acc.shape).copy()
    ts = ex._ts(ts_ns)
    if len(acc) == 0:
        return
    if acc.min() < 0 or acc.max() >= ex._n:
        raise UnknownEntityError("accounts", int(acc[(acc < 0) | (acc >= ex._n)][0]))
    if not _distinct(acc, ex._n):
        raise ValidationError("accounts", "duplicates", "must be distinct")
    _check_array("amounts", amt, positive=True)
    cols = ex._positions[m]
    bad = (cols.mode[acc] != MarginMode.ISOLATED) | (cols.size[acc] == 0.0)
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        raise StateError(f"account {int(acc[k])} has no isolated position in market {m}")
    short = amt > ex._cash[acc] + MARGIN_ATOL
    if short.any():
        k = int(np.flatnonzero(short)[0])
        raise InsufficientFundsError(
            f"`amounts[{k}]` {amt[k]} exceeds the cash {float(ex._cash[acc[k]])} of account "
            f"{int(acc[k])}"
        )
    ex.journal.append_columns(EventKind.MARGIN_MOVED, ts, account=acc, market=m, amount=amt)
    ex._version += 1
    ex._cash[acc] -= amt
    cols.isolated_margin[acc] += amt
    ex._touch(m, acc)
    ex.clock_ns = max(ex.clock_ns, ts)


def _distinct(accounts: IntArray, n: int) -> bool:
    """Whether the account ids (all in ``[0, n)``) are distinct: O(n), no sort."""
    seen = np.zeros(n, dtype=np.bool_)
    seen[accounts] = True
    return int(np.count_nonzero(seen)) == len(accounts)
