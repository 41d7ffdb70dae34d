"""The engine: columnar state of accounts and positions, and the one place it changes.

State is struct-of-arrays (DESIGN.md "One engine, arrays inside"): one float64 array per field,
per market, indexed by account id, so a mark update re-values a million positions with a few
array operations. Public operations validate their input completely, then emit events; only
:meth:`Exchange._apply` mutates state, and replaying the journal through it on a fresh engine
rebuilds the same arrays (:meth:`Exchange.replay`, :meth:`Exchange.state_hash`).

Accounts hold quote cash. A position is isolated (its own margin, ``isolated_margin``) or cross
(backed by the account's cash). Money is conserved (DESIGN.md "Money must add up")::

    sum(cash) + sum(isolated margin) + sum(unrealized PnL) == net deposits

over every account, the venue's own accounts (fees, insurance, the outside liquidity) included,
since every fill has two sides. :meth:`Exchange.conservation` reports each line of it.
"""

from __future__ import annotations

import copy
import hashlib
import math
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd

from deleverage import bulk
from deleverage import margin as mm
from deleverage.cross_index import CrossIndex
from deleverage.errors import (
    HaltedError,
    InsufficientFundsError,
    InsufficientMarginError,
    InvariantError,
    StateError,
    UnknownEntityError,
    ValidationError,
)
from deleverage.events import (
    NOTICE_KINDS,
    UNSTAKE_CANCEL,
    UNSTAKE_REQUEST,
    AccountOpened,
    Deposit,
    Event,
    EventKind,
    Fill,
    FillReason,
    FundingPayment,
    InsuranceAction,
    Journal,
    MarginMoved,
    MarketListed,
    MarkPrice,
    PositionSettings,
    RiskParamsChanged,
    Transfer,
    TransferReason,
    Withdrawal,
)
from deleverage.insurance import DRIFT_UNSTAKE_COOLDOWN_S, FlowKind, InsuranceFund
from deleverage.kernels import (
    accumulate_market_nb,
    apply_fills_nb,
    apply_transfers_nb,
    cross_partial_nb,
    cross_scan_nb,
    fill_one_nb,
    isolated_market_nb,
    isolated_scan_nb,
    margin_ratio_nb,
)
from deleverage.level_index import LevelIndex
from deleverage.spec import MarginMode, MarketSpec, TierArrays, check_finite, check_finite_positive
from deleverage.state import (
    SYSTEM_KINDS,
    AccountKind,
    AccountMargins,
    Conservation,
    MarketState,
    PositionColumns,
    PositionView,
)
from deleverage.tolerance import GRID_RTOL, MARGIN_ATOL

if TYPE_CHECKING:
    from deleverage.dynamic import RiskParameterPolicy
    from deleverage.risk import Book

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
MarketRef = int | str
Side = Literal["buyer", "seller"]

#: Latest event time the engine accepts: 2100-01-01T00:00:00Z in ns since the epoch, far
#: below int64's limit, so a clock set from outside can neither overflow the journal's int64
#: column nor freeze the engine at the end of time.
MAX_TS_NS = 4_102_444_800 * 10**9

_MARGIN_STATE_KEYS = (
    "cross_equity",
    "cross_maintenance",
    "cross_initial",
    "total_equity",
    "cross_margin_ratio",
)
_LAYOUT_KINDS = frozenset(
    {EventKind.ACCOUNT_OPENED, EventKind.MARKET_LISTED, EventKind.POSITION_SETTINGS}
)
_PROTOCOL = FlowKind.PROTOCOL_REVENUE
_INFLOW_KINDS = {
    int(TransferReason.TRADING_FEE): FlowKind.FEE_INFLOW,
    int(TransferReason.LIQUIDATION_FEE): FlowKind.LIQUIDATION_PENALTY,
}


class Exchange:
    """A perpetual-futures venue: markets, accounts, positions, margin and the event journal.

    Parameters
    ----------
    check_invariants
        Verify money conservation after every public operation (slower; for tests).

    Examples
    --------
    >>> from deleverage import Exchange, MarketSpec
    >>> ex = Exchange()
    >>> btc = ex.list_market(MarketSpec.simple("BTCUSDT", max_leverage=20))
    >>> alice = ex.open_account()
    >>> ex.deposit(alice, 1_000.0)
    >>> ex.set_mark("BTCUSDT", 60_000.0)
    >>> book = ex.liquidity_account
    >>> fill = ex.trade("BTCUSDT", buyer=alice, seller=book, size=0.1, price=60_000.0)
    >>> fill.buyer_fee  # taker: 0.05% of 6,000
    3.0
    >>> round(ex.account_margins(alice).cross_initial, 2)
    300.0
    """

    def __init__(
        self,
        *,
        check_invariants: bool = False,
        insurance: Literal["shared", "per_market"] = "shared",
        insurance_protocol_share: float = 0.0,
        unstake_cooldown_s: float = DRIFT_UNSTAKE_COOLDOWN_S,
        seed: int = 0,
    ) -> None:
        if insurance not in ("shared", "per_market"):
            raise ValidationError("insurance", insurance, "must be 'shared' or 'per_market'")
        self._init_state(
            check_invariants=check_invariants,
            seed=seed,
            fund_settings=(insurance_protocol_share, unstake_cooldown_s),
        )
        self.insurance_mode = insurance
        self.fee_account = self.open_account(kind=AccountKind.FEE, label="fees")
        self.liquidity_account = self.open_account(kind=AccountKind.LIQUIDITY, label="book")
        self.insurance_account = self.open_account(kind=AccountKind.INSURANCE, label="insurance")
        self.backstop_account = self.open_account(kind=AccountKind.BACKSTOP, label="backstop")
        self.liquidator_account = self.open_account(kind=AccountKind.LIQUIDATOR, label="liquidator")

    def _init_state(
        self,
        *,
        check_invariants: bool,
        seed: int = 0,
        fund_settings: tuple[float, float] = (0.0, DRIFT_UNSTAKE_COOLDOWN_S),
    ) -> None:
        from deleverage.risk import RiskEngine

        self.risk = RiskEngine(self, seed=seed)
        self.funds: dict[int, InsuranceFund] = {}
        self._fund_settings = fund_settings
        self._market_fund: list[int] = []
        self.insurance_mode = "shared"
        self.journal = Journal()
        self.check_invariants = check_invariants
        self.markets: list[MarketState] = []
        self._market_ids: dict[str, int] = {}
        self._capacity = 16
        self._n = 0
        self._cash = np.zeros(self._capacity)
        self._net_deposit = np.zeros(self._capacity)
        self._kind = np.zeros(self._capacity, dtype=np.int8)
        self._default_mode = np.zeros(self._capacity, dtype=np.int8)
        self._labels: dict[int, str] = {}  # only non-empty labels: no million-entry list
        self._positions: list[PositionColumns] = []
        self.net_deposits = 0.0
        self.clock_ns = 0
        # State version, bumped by every change; keys the per-version caches of valuations.
        self._version = 0
        # Bumped when accounts, markets or margin modes change (not by trading or marks).
        self.layout_version = 0
        self._cache: dict[tuple[Any, ...], tuple[int, Any]] = {}
        self._buffers: dict[str, FloatArray] = {}
        self._scan_buffers: dict[str, npt.NDArray[Any]] = {}
        # Per market: bumped by every change to its positions or isolated margins (not marks).
        self._pos_version: list[int] = []
        # Per market: open interest, the traders' long sizes summed (base units).
        self._long_oi: list[float] = []
        # Sorted zone-price indexes of isolated positions, per (market, level).
        self._level_index: dict[tuple[int, float], LevelIndex] = {}
        # Distance-to-zone bounds of cross accounts, per level.
        self._cross_index: dict[float, CrossIndex] = {}
        #: Use the sorted zone-price index for the isolated scan (the full pass otherwise).
        self.use_level_index = True
        self.fee_account = 0
        self.liquidity_account = 1
        self.insurance_account = 2
        self.backstop_account = 3
        self.liquidator_account = 4

    # ------------------------------------------------------------------ lookups
    @property
    def n_accounts(self) -> int:
        """Number of accounts, the venue's own included."""
        return self._n

    def market_id(self, market: MarketRef) -> int:
        """The integer id of a market given by id or symbol."""
        if isinstance(market, str):
            if market not in self._market_ids:
                known = ", ".join(sorted(self._market_ids)) or "none listed"
                raise UnknownEntityError("market", market, known)
            return self._market_ids[market]
        if isinstance(market, bool) or not isinstance(market, int | np.integer):
            raise ValidationError("market", market, "must be a market id (int) or symbol (str)")
        if not 0 <= int(market) < len(self.markets):
            raise UnknownEntityError("market", market, f"ids 0..{len(self.markets) - 1}")
        return int(market)

    def market(self, market: MarketRef) -> MarketState:
        """The :class:`MarketState` of a market."""
        return self.markets[self.market_id(market)]

    def _check_account(self, account: int, field: str = "account") -> int:
        if isinstance(account, bool) or not isinstance(account, int | np.integer):
            raise ValidationError(field, account, "must be an account id (int)")
        if not 0 <= int(account) < self._n:
            raise UnknownEntityError(field, account, f"ids 0..{self._n - 1}")
        return int(account)

    def account_kind(self, account: int) -> AccountKind:
        """The :class:`AccountKind` of an account."""
        return AccountKind(int(self._kind[self._check_account(account)]))

    def columns(self, market: MarketRef) -> PositionColumns:
        """The position columns of a market (read-only by convention; arrays have capacity)."""
        return self._positions[self.market_id(market)]

    def _ts(self, ts_ns: int | None) -> int:
        if ts_ns is None:
            return self.clock_ns
        if isinstance(ts_ns, bool) or not isinstance(ts_ns, int | np.integer):
            raise ValidationError("ts_ns", ts_ns, "must be an int (nanoseconds)")
        if ts_ns < self.clock_ns:
            raise ValidationError(
                "ts_ns", ts_ns, f"must not go backwards (engine clock is {self.clock_ns})"
            )
        if ts_ns > MAX_TS_NS:
            raise ValidationError(
                "ts_ns", ts_ns, f"must be at most {MAX_TS_NS} (2100-01-01T00:00:00Z in ns)"
            )
        return int(ts_ns)

    # ------------------------------------------------------------------ emitting
    def _emit(self, event: Event) -> Event:
        self.journal.append_unstamped(event)
        self._apply(event)
        return event

    def _emit_all(self, events: Iterable[Event]) -> list[Event]:
        done = []
        for event in events:
            done.append(self.journal.append(event))
            self._apply(event)
        if self.check_invariants:
            self.assert_conserved()
        return done

    def open_interest(self, market: MarketRef) -> float:
        """Open interest of ``market``: traders' long positions summed (base units).

        Kept up to date by every fill (the venue's own accounts are not traders).
        """
        return max(self._long_oi[self.market_id(market)], 0.0)

    def positions_version(self, market: MarketRef) -> int:
        """Counter bumped by every change to ``market``'s positions or isolated margins."""
        return self._pos_version[self.market_id(market)]

    def _touch(self, m: int, accounts: IntArray | int) -> None:
        """Positions of ``accounts`` in market ``m`` changed (size, entry, margin, mode)."""
        self._pos_version[m] += 1
        if not (self._level_index or self._cross_index):
            return
        acc = np.atleast_1d(np.asarray(accounts, dtype=np.int64))
        for (market, _), index in self._level_index.items():
            if market == m:
                index.touch(acc)
        for cross in self._cross_index.values():
            cross.touch(acc)

    def _touch_cash(self, accounts: IntArray | int) -> None:
        """The cash of ``accounts`` changed (cross equity moved)."""
        if self._cross_index:
            acc = np.atleast_1d(np.asarray(accounts, dtype=np.int64))
            for cross in self._cross_index.values():
                cross.touch(acc)

    def _touch_all(self, m: int | None = None) -> None:
        """Every position of market ``m`` (all markets: None) may have changed."""
        for k in range(len(self._pos_version)):
            if m is None or k == m:
                self._pos_version[k] += 1
        for (market, _), index in self._level_index.items():
            if m is None or market == m:
                index.invalidate()
        for cross in self._cross_index.values():
            cross.invalidate()

    def _apply(self, event: Event) -> None:
        """Apply one event's effect to the state. The only place state changes."""
        kind = event.kind
        if kind not in NOTICE_KINDS:  # notices change nothing: cached valuations stay valid
            self._version += 1
        if kind in _LAYOUT_KINDS:
            self.layout_version += 1
        self.clock_ns = max(self.clock_ns, event.ts_ns)
        if kind is EventKind.FILL:
            assert isinstance(event, Fill)
            self._apply_fill(event)
        elif kind is EventKind.MARK_PRICE:
            assert isinstance(event, MarkPrice)
            self.markets[event.market].mark = event.price
            self._refresh_rates(event.market)
        elif kind is EventKind.TRANSFER:
            assert isinstance(event, Transfer)
            self._apply_transfer(event)
        elif kind is EventKind.INSURANCE:
            assert isinstance(event, InsuranceAction)
            fund = self.funds[event.fund_account]
            if event.action == UNSTAKE_REQUEST:
                fund.request_unstake(event.staker, event.shares, event.ts_ns)
            else:
                fund.cancel_unstake(event.staker, event.ts_ns)
        elif kind is EventKind.DEPOSIT:
            assert isinstance(event, Deposit)
            if event.account in self.funds:
                self.funds[event.account].receive(
                    event.amount, event.ts_ns, kind=FlowKind.PROTOCOL_REVENUE, ref=event.account
                )
            self._cash[event.account] += event.amount
            self._touch_cash(event.account)
            self._net_deposit[event.account] += event.amount
            self.net_deposits += event.amount
        elif kind is EventKind.WITHDRAWAL:
            assert isinstance(event, Withdrawal)
            self._cash[event.account] -= event.amount
            self._touch_cash(event.account)
            self._net_deposit[event.account] -= event.amount
            self.net_deposits -= event.amount
        elif kind is EventKind.MARGIN_MOVED:
            assert isinstance(event, MarginMoved)
            self._cash[event.account] -= event.amount
            self._positions[event.market].isolated_margin[event.account] += event.amount
            self._touch(event.market, event.account)
        elif kind is EventKind.FUNDING:
            assert isinstance(event, FundingPayment)
            self._apply_funding(
                event.market, np.array([event.account], dtype=np.int64), np.array([event.amount])
            )
        elif kind is EventKind.POSITION_SETTINGS:
            assert isinstance(event, PositionSettings)
            cols = self._positions[event.market]
            cols.mode[event.account] = event.margin_mode
            cols.leverage[event.account] = event.leverage
            self._touch(event.market, event.account)
        elif kind is EventKind.ACCOUNT_OPENED:
            assert isinstance(event, AccountOpened)
            self._apply_account_opened(event)
        elif kind is EventKind.MARKET_LISTED:
            assert isinstance(event, MarketListed)
            self._apply_market_listed(event)
        elif kind is EventKind.RISK_PARAMS:
            assert isinstance(event, RiskParamsChanged)
            spec = MarketSpec.from_json(event.spec_json)
            state = self.markets[event.market]
            state.spec, state.tiers = spec, spec.tier_arrays
            self._refresh_rates(event.market)
            self._touch_all(event.market)
        # Notices (liquidation summaries, margin calls, ...) change nothing.

    def _apply_account_opened(self, event: AccountOpened) -> None:
        a = event.account
        if a != self._n:
            raise InvariantError(
                f"account ids must be opened in order: expected {self._n}, got {a}"
            )
        if self._n == self._capacity:
            self._grow(self._capacity * 2)
        self._kind[a] = event.account_kind
        self._default_mode[a] = event.margin_mode
        for cols in self._positions:
            cols.mode[a] = event.margin_mode
        if event.label:
            self._labels[a] = event.label
        self._n += 1
        if event.account_kind == AccountKind.INSURANCE:
            self._register_fund(a, event.label)

    def _register_fund(self, a: int, label: str) -> None:
        """Give insurance account ``a`` its fund ledger (and its market, for per-market funds)."""
        share, cooldown = self._fund_settings
        self.funds[a] = InsuranceFund(
            label or f"insurance-{a}", protocol_share=share, unstake_cooldown_s=cooldown
        )
        if label.startswith("insurance:"):
            symbol = label.removeprefix("insurance:")
            self._market_fund[self._market_ids[symbol]] = a

    def _grow(self, capacity: int) -> None:
        for name in ("_cash", "_net_deposit", "_kind", "_default_mode"):
            old = getattr(self, name)
            new = np.zeros(capacity, dtype=old.dtype)
            new[: len(old)] = old
            setattr(self, name, new)
        for cols in self._positions:
            cols.grow(capacity)
        self._capacity = capacity
        self.risk.reserve(capacity)

    def _apply_market_listed(self, event: MarketListed) -> None:
        spec = MarketSpec.from_json(event.spec_json)
        if event.market != len(self.markets):
            raise InvariantError(f"market ids must be listed in order, got {event.market}")
        self.markets.append(MarketState(id=event.market, spec=spec, tiers=spec.tier_arrays))
        self._market_ids[spec.symbol] = event.market
        self._market_fund.append(self.insurance_account)
        self.risk.add_market()
        cols = PositionColumns(self._capacity)
        cols.mode[: self._n] = self._default_mode[: self._n]
        self._positions.append(cols)
        self._pos_version.append(0)
        for cross in self._cross_index.values():
            cross.invalidate()
        self._long_oi.append(0.0)

    def _apply_fill(self, fill: Fill) -> None:
        self._apply_fill_columns(
            fill.market,
            np.array([fill.buyer], dtype=np.int64),
            np.array([fill.seller], dtype=np.int64),
            np.array([fill.size]),
            np.array([fill.price]),
            np.array([fill.buyer_fee]),
            np.array([fill.seller_fee]),
        )

    def _apply_fill_columns(
        self,
        market: int,
        buyers: IntArray,
        sellers: IntArray,
        sizes: FloatArray,
        prices: FloatArray,
        buyer_fees: FloatArray,
        seller_fees: FloatArray,
    ) -> None:
        self._version += 1
        cols = self._positions[market]
        involved = _unique_accounts(np.concatenate([buyers, sellers]), self._n)
        involved = involved[self._kind[involved] == 0]
        long_before = float(np.sum(np.maximum(cols.size[involved], 0.0)))
        apply_fills_nb(
            cols.size, cols.entry, cols.isolated_margin, cols.mode, cols.realized_pnl,
            self._cash, self.fee_account, buyers, sellers, sizes, prices, buyer_fees, seller_fees,
        )  # fmt: skip
        self._long_oi[market] += float(np.sum(np.maximum(cols.size[involved], 0.0))) - long_before
        self._touch(market, np.concatenate([buyers, sellers]))
        self._refresh_rates(market)

    def _refresh_rates(self, m: int) -> None:
        """Re-derive the rates in force of an OI-scaled market (after fills, marks, specs)."""
        state = self.markets[m]
        scaling = state.spec.open_interest_scaling
        if scaling is None:
            return
        size = self._positions[m].size[: self._n]
        state.open_interest = float(np.sum(np.maximum(size, 0.0)))
        base = state.spec.tier_arrays
        imr = mm.oi_scaled_initial_rate(
            base.imr,
            state.open_interest * state.mark,
            lower_cap=scaling.lower_cap,
            upper_cap=scaling.upper_cap,
        )
        state.tiers = TierArrays(floor=base.floor, imr=imr, mmr=base.mmr, cum=base.cum)

    def _fund_ledger(
        self, source: int, destination: int, amount: float, reason: int, ts: int
    ) -> None:
        """Mirror a transfer into or out of an insurance account in its fund's ledger."""
        fund = self.funds.get(destination)
        if fund is not None:
            if reason == TransferReason.STAKE:
                fund.stake(source, amount, ts, available_cash=math.inf)
            else:
                fund.receive(amount, ts, kind=_INFLOW_KINDS.get(reason, _PROTOCOL), ref=source)
        fund = self.funds.get(source)
        if fund is not None:
            if reason == TransferReason.UNSTAKE:
                paid = fund.unstake(destination, ts)
                if not math.isclose(paid, amount, rel_tol=1e-12, abs_tol=1e-9):
                    raise InvariantError(f"unstake paid {paid}, transfer says {amount}")
            elif reason == TransferReason.INSURANCE_COVER:
                fund.cover(amount, ts, ref=destination)
            else:
                fund.cover(amount, ts, ref=destination, kind=FlowKind.LOSS)

    def _fund_batch(
        self,
        sources: IntArray,
        destinations: IntArray,
        amounts: FloatArray,
        reasons: IntArray,
        ts: int,
    ) -> bool:
        """Mirror a batch of same-reason transfers with one fund as one ledger record.

        Many covers paid by one fund, or many penalties (or fees) into one fund, at one time:
        the fund's batch entry points. Returns False when the batch is not of that shape.
        """
        funds = list(self.funds)
        reason = int(reasons[0])
        if not np.all(reasons == reason):
            return False
        if reason == TransferReason.INSURANCE_COVER and np.all(sources == sources[0]):
            fund = self.funds.get(int(sources[0]))
            if fund is None or np.isin(destinations, funds).any():
                return False
            fund.cover_many(amounts.tolist(), ts, destinations.tolist())
            return True
        if reason in _INFLOW_KINDS and np.all(destinations == destinations[0]):
            fund = self.funds.get(int(destinations[0]))
            if fund is None or np.isin(sources, funds).any():
                return False
            kind = _INFLOW_KINDS[reason]
            fund.receive_many(amounts.tolist(), ts, kind=kind, refs=sources.tolist())
            return True
        return False

    # ------------------------------------------------------------------ insurance staking
    def _fund_account(self, market: MarketRef | None) -> int:
        return self.insurance_account if market is None else self.insurance_account_for(market)

    def stake(
        self, account: int, amount: float, *, market: MarketRef | None = None,
        ts_ns: int | None = None,
    ) -> float:  # fmt: skip
        """Stake cash from an account into an insurance fund; return the shares minted.

        The stake must not exceed the account's withdrawable cash. Stakers earn the fund's
        penalty and fee inflows (less the protocol's share) and bear its losses pro rata.
        """
        a = self._check_account(account)
        value = check_finite_positive("amount", amount)
        ts = self._ts(ts_ns)
        fund_account = self._fund_account(market)
        fund = self.funds[fund_account]
        available = self.account_margins(a).withdrawable
        preview = copy.deepcopy(fund)
        shares = preview.stake(a, value, ts, available_cash=available)  # raises, nothing applied
        self._emit_all(
            [
                Transfer(
                    ts_ns=ts, source=a, destination=fund_account, amount=value,
                    reason=int(TransferReason.STAKE),
                )
            ]
        )  # fmt: skip
        return shares

    def request_unstake(
        self, account: int, shares: float, *, market: MarketRef | None = None,
        ts_ns: int | None = None,
    ) -> float:  # fmt: skip
        """Ask to unstake shares, starting the cooldown; return their value now (quote)."""
        a = self._check_account(account)
        ts = self._ts(ts_ns)
        fund_account = self._fund_account(market)
        value = copy.deepcopy(self.funds[fund_account]).request_unstake(a, shares, ts)
        self._emit_all(
            [
                InsuranceAction(
                    ts_ns=ts,
                    staker=a,
                    fund_account=fund_account,
                    action=UNSTAKE_REQUEST,
                    shares=float(shares),
                )
            ]
        )
        return value

    def cancel_unstake(
        self, account: int, *, market: MarketRef | None = None, ts_ns: int | None = None
    ) -> None:
        """Cancel a pending unstake request (a gain since the request is forfeited)."""
        a = self._check_account(account)
        ts = self._ts(ts_ns)
        fund_account = self._fund_account(market)
        copy.deepcopy(self.funds[fund_account]).cancel_unstake(a, ts)
        self._emit_all(
            [InsuranceAction(ts_ns=ts, staker=a, fund_account=fund_account, action=UNSTAKE_CANCEL)]
        )

    def unstake(
        self, account: int, *, market: MarketRef | None = None, ts_ns: int | None = None
    ) -> float:
        """Withdraw requested shares after the cooldown into the account's cash; return it."""
        a = self._check_account(account)
        ts = self._ts(ts_ns)
        fund_account = self._fund_account(market)
        paid = copy.deepcopy(self.funds[fund_account]).unstake(a, ts)  # raises CooldownError
        self._emit_all(
            [
                Transfer(
                    ts_ns=ts, source=fund_account, destination=a, amount=paid,
                    reason=int(TransferReason.UNSTAKE),
                )
            ]
        )  # fmt: skip
        return paid

    def _apply_transfer(self, transfer: Transfer) -> None:
        self._apply_transfer_columns(
            transfer.market,
            np.array([transfer.source], dtype=np.int64),
            np.array([transfer.destination], dtype=np.int64),
            np.array([transfer.amount]),
            np.array([transfer.reason], dtype=np.int64),
            transfer.ts_ns,
        )

    def _apply_transfer_columns(
        self,
        market: int,
        sources: IntArray,
        destinations: IntArray,
        amounts: FloatArray,
        reasons: IntArray,
        ts_ns: int | IntArray,
    ) -> None:
        """Apply transfers in order (one market, or -1 for cash only) and mirror fund flows."""
        self._version += 1
        if market >= 0:
            cols = self._positions[market]
            apply_transfers_nb(
                self._cash, cols.isolated_margin, cols.mode, cols.size, True, sources,
                destinations, amounts,
            )  # fmt: skip
            self._touch(market, np.concatenate([sources, destinations]))
        else:
            dummy = np.zeros(0)
            apply_transfers_nb(
                self._cash, dummy, np.zeros(0, dtype=np.int8), dummy, False, sources,
                destinations, amounts,
            )  # fmt: skip
            self._touch_cash(np.concatenate([sources, destinations]))
        if not self.funds:
            return
        touches = np.isin(sources, list(self.funds)) | np.isin(destinations, list(self.funds))
        rows = np.flatnonzero(touches)
        if (
            len(rows) > 1
            and np.ndim(ts_ns) == 0
            and self._fund_batch(
                sources[rows], destinations[rows], amounts[rows], reasons[rows], int(ts_ns)
            )
        ):
            return
        ts_all = np.broadcast_to(np.asarray(ts_ns, dtype=np.int64), amounts.shape)[rows].tolist()
        for src, dst, amount, reason, ts in zip(
            sources[rows].tolist(), destinations[rows].tolist(), amounts[rows].tolist(),
            reasons[rows].tolist(), ts_all, strict=True,
        ):  # fmt: skip
            self._fund_ledger(src, dst, amount, reason, ts)

    # ------------------------------------------------------------------ setup
    def open_account(
        self,
        *,
        kind: AccountKind = AccountKind.TRADER,
        label: str = "",
        margin_mode: MarginMode = MarginMode.CROSS,
        ts_ns: int | None = None,
    ) -> int:
        """Open an account and return its id.

        ``margin_mode`` is the default mode of its positions (changeable per market while flat
        with :meth:`set_margin_mode`).
        """
        ts = self._ts(ts_ns)
        if not isinstance(kind, AccountKind):
            raise ValidationError("kind", kind, "must be an AccountKind")
        if margin_mode not in (MarginMode.CROSS, MarginMode.ISOLATED):
            raise ValidationError("margin_mode", margin_mode, "must be a MarginMode")
        event = AccountOpened(
            ts_ns=ts, account=self._n, account_kind=int(kind), margin_mode=int(margin_mode),
            label=label,
        )  # fmt: skip
        self._emit_all([event])
        return self._n - 1

    def open_accounts(
        self,
        count: int,
        *,
        kind: AccountKind = AccountKind.TRADER,
        margin_mode: MarginMode = MarginMode.CROSS,
        ts_ns: int | None = None,
    ) -> IntArray:
        """Open ``count`` accounts at once; return their ids (see :mod:`deleverage.bulk`)."""
        return bulk.open_accounts(self, count, kind=kind, margin_mode=margin_mode, ts_ns=ts_ns)

    def list_market(self, spec: MarketSpec, *, ts_ns: int | None = None) -> int:
        """List a market and return its id; its mark must be set before trading."""
        ts = self._ts(ts_ns)
        if not isinstance(spec, MarketSpec):
            raise ValidationError("spec", type(spec).__name__, "must be a MarketSpec")
        if spec.symbol in self._market_ids:
            raise ValidationError("spec.symbol", spec.symbol, "must not be listed already")
        m = len(self.markets)
        events: list[Event] = [MarketListed(ts_ns=ts, market=m, spec_json=spec.to_json())]
        if self.insurance_mode == "per_market":
            events.append(
                AccountOpened(
                    ts_ns=ts, account=self._n, account_kind=int(AccountKind.INSURANCE),
                    label=f"insurance:{spec.symbol}",
                )
            )  # fmt: skip
        self._emit_all(events)
        return m

    def insurance_account_for(self, market: MarketRef) -> int:
        """The insurance account that backs a market (the shared one unless per-market)."""
        return self._market_fund[self.market_id(market)]

    def insurance_fund(self, market: MarketRef | None = None) -> InsuranceFund:
        """The :class:`InsuranceFund` ledger backing a market (default: the shared fund)."""
        account = self.insurance_account if market is None else self.insurance_account_for(market)
        return self.funds[account]

    def set_dynamic_margin(self, market: MarketRef, policy: RiskParameterPolicy | None) -> None:
        """Scale a market's margin rates on every mark by ``policy`` (None switches it off).

        The market's current spec is the base that the multiplier scales; each change of the
        multiplier is a ``RiskParamsChanged`` event.
        """
        m = self.market_id(market)
        risk = self.risk.markets[m]
        if policy is None:
            risk.dynamic, risk.base_spec = None, None
            return
        if not callable(getattr(policy, "multiplier", None)):
            raise ValidationError("policy", type(policy).__name__, "must have a multiplier()")
        risk.dynamic, risk.base_spec = policy, self.markets[m].spec
        risk.multiplier = 1.0
        risk.history.clear()

    def adl_queue(self, market: MarketRef, side: int) -> pd.DataFrame:
        """The ADL queue of one market side: account, rank (1 = first), score, indicator (1-5).

        ``side`` is +1 for longs, -1 for shorts. Every open trader position on that side is
        ranked by the market's ADL score (``random_start`` and ``pro_rata`` markets show the
        ``pnl_leverage`` order, their queue being random or simultaneous); 5 lights mark the top
        fifth of the queue, as venues display it.
        """
        from deleverage import adl as adl_math

        m = self.market_id(market)
        if side not in (1, -1):
            raise ValidationError("side", side, "must be +1 (longs) or -1 (shorts)")
        cols = self._positions[m]
        n = self._n
        idx = np.flatnonzero(
            (self._kind[:n] == AccountKind.TRADER) & (np.sign(cols.size[:n]) == side)
        )
        scores = self.risk.scores(m, idx) if len(idx) else np.zeros(0)
        return adl_math.queue_frame(idx, scores, sizes=cols.size[idx])

    def set_liquidity(self, market: MarketRef, model: Book | None) -> None:
        """Set the liquidity model that liquidation orders in a market execute against.

        ``None`` fills liquidations at the mark (infinite depth).
        """
        self.risk.markets[self.market_id(market)].liquidity = model

    def update_market_spec(
        self, market: MarketRef, spec: MarketSpec, *, ts_ns: int | None = None
    ) -> None:
        """Replace a market's risk parameters (dynamic margin); the symbol must not change."""
        m = self.market_id(market)
        ts = self._ts(ts_ns)
        if spec.symbol != self.markets[m].spec.symbol:
            raise ValidationError("spec.symbol", spec.symbol, "must keep the market's symbol")
        self._emit_all([RiskParamsChanged(ts_ns=ts, market=m, spec_json=spec.to_json())])

    # ------------------------------------------------------------------ cash
    def deposit(self, account: int, amount: float, *, ts_ns: int | None = None) -> None:
        """Deposit quote cash into an account."""
        a = self._check_account(account)
        value = check_finite_positive("amount", amount)
        ts = self._ts(ts_ns)
        self._emit_all([Deposit(ts_ns=ts, account=a, amount=value)])

    def deposit_many(
        self, accounts: npt.ArrayLike, amounts: npt.ArrayLike, *, ts_ns: int | None = None
    ) -> None:
        """Deposit into many accounts at once, all or nothing (see :mod:`deleverage.bulk`)."""
        bulk.deposit_many(self, accounts, amounts, ts_ns=ts_ns)

    def _apply_deposits(self, accounts: IntArray, amounts: FloatArray) -> None:
        self._version += 1
        np.add.at(self._cash, accounts, amounts)
        self._touch_cash(accounts)
        np.add.at(self._net_deposit, accounts, amounts)
        for value in amounts.tolist():  # same order of float additions as one by one
            self.net_deposits += value

    def withdraw(self, account: int, amount: float, *, ts_ns: int | None = None) -> None:
        """Withdraw quote cash; refused beyond :attr:`AccountMargins.withdrawable`."""
        a = self._check_account(account)
        value = check_finite_positive("amount", amount)
        ts = self._ts(ts_ns)
        if a in self.funds:
            raise StateError(f"account {a} is an insurance fund: its cash leaves by unstaking")
        allowed = self.account_margins(a).withdrawable
        if value > allowed + MARGIN_ATOL:
            raise InsufficientFundsError(
                f"`amount` must not exceed the withdrawable {allowed:.8f} "
                f"(cash and free collateral above initial margin) of account {a}, was {value}"
            )
        self._emit_all([Withdrawal(ts_ns=ts, account=a, amount=value)])

    def set_mark(self, market: MarketRef, price: float, *, ts_ns: int | None = None) -> None:
        """Set a market's mark price (the oracle update)."""
        m = self.market_id(market)
        value = check_finite_positive("price", price)
        ts = self._ts(ts_ns)
        self._emit(MarkPrice(ts_ns=ts, market=m, price=value))
        self.last_step = self.risk.on_mark(m, ts)
        if self.check_invariants:
            self.assert_conserved()

    # ------------------------------------------------------------------ position settings
    def settle_funding(
        self, market: MarketRef, rate: float, *, ts_ns: int | None = None
    ) -> FloatArray:
        """Settle one funding period at the current mark; return each account's payment.

        Every open position receives ``-size x mark x rate`` (quote): with a positive rate longs
        pay shorts. The payments sum to zero across accounts (every position has a counterparty,
        the book's makers included). An isolated position's payment moves its margin, a cross
        one its account's cash. The risk step then runs at the same mark, so an account that
        funding pushes under maintenance is liquidated at once.
        """
        m = self.market_id(market)
        value = check_finite("rate", rate)
        if abs(value) >= 1.0:
            raise ValidationError("rate", rate, "must be a fraction with |rate| < 1")
        ts = self._ts(ts_ns)
        state = self.markets[m]
        if state.mark <= 0:
            raise StateError(f"market {state.spec.symbol} has no mark price yet: set_mark first")
        n = self._n
        size = self._positions[m].size[:n]
        accounts = np.flatnonzero(size != 0.0).astype(np.int64)
        payments = -size[accounts] * state.mark * value
        if len(accounts):
            self.journal.append_columns(
                EventKind.FUNDING, ts, account=accounts, market=m, amount=payments, price=value,
                size=state.mark,
            )  # fmt: skip
            self._apply_funding(m, accounts, payments)
        self.clock_ns = max(self.clock_ns, ts)
        self.last_step = self.risk.on_mark(m, ts)
        if self.check_invariants:
            self.assert_conserved()
        out = np.zeros(n)
        out[accounts] = payments
        return out

    def _apply_funding(self, market: int, accounts: IntArray, amounts: FloatArray) -> None:
        self._version += 1
        cols = self._positions[market]
        iso = cols.mode[accounts] != MarginMode.CROSS
        np.add.at(cols.isolated_margin, accounts[iso], amounts[iso])
        np.add.at(self._cash, accounts[~iso], amounts[~iso])
        if len(accounts) > 64:
            self._touch_all(market)
        else:
            self._touch(market, accounts)

    def set_margin_mode(
        self, account: int, market: MarketRef, mode: MarginMode, *, ts_ns: int | None = None
    ) -> None:
        """Set a position's margin mode; only while the position is flat."""
        a = self._check_account(account)
        m = self.market_id(market)
        ts = self._ts(ts_ns)
        if mode not in (MarginMode.CROSS, MarginMode.ISOLATED):
            raise ValidationError("mode", mode, "must be a MarginMode")
        cols = self._positions[m]
        if cols.size[a] != 0.0:
            raise StateError(
                f"`mode` can change only while the position is flat; account {a} holds "
                f"{cols.size[a]} in {self.markets[m].spec.symbol}"
            )
        event = PositionSettings(
            ts_ns=ts, account=a, market=m, margin_mode=int(mode), leverage=float(cols.leverage[a])
        )
        self._emit_all([event])

    def set_leverage(
        self, account: int, market: MarketRef, leverage: float, *, ts_ns: int | None = None
    ) -> None:
        """Choose a position's leverage (initial margin rate ``1 / leverage``).

        Must be at least 1 and at most the tier maximum for the position's notional; lowering
        leverage on an open position requires the margin to cover the new initial margin.
        """
        a = self._check_account(account)
        m = self.market_id(market)
        lev = check_finite_positive("leverage", leverage)
        ts = self._ts(ts_ns)
        state = self.markets[m]
        cols = self._positions[m]
        notional = abs(float(cols.size[a])) * state.mark
        tier_max = 1.0 / float(state.tiers.imr[mm.tier_index(notional, state.tiers)])
        if not 1.0 <= lev <= tier_max * (1 + GRID_RTOL):
            raise ValidationError(
                "leverage", leverage, f"must be in [1, {tier_max:g}] (tier maximum for notional)"
            )
        event = PositionSettings(
            ts_ns=ts, account=a, market=m, margin_mode=int(cols.mode[a]), leverage=lev
        )
        old = float(cols.leverage[a])
        cols.leverage[a] = lev
        try:
            self._check_position_margin(a, m, field="leverage")
        finally:
            cols.leverage[a] = old
        self._emit_all([event])

    def add_isolated_margin(
        self, account: int, market: MarketRef, amount: float, *, ts_ns: int | None = None
    ) -> None:
        """Move cash into an isolated position's margin."""
        a = self._check_account(account)
        m = self.market_id(market)
        value = check_finite_positive("amount", amount)
        ts = self._ts(ts_ns)
        cols = self._positions[m]
        if cols.mode[a] != MarginMode.ISOLATED or cols.size[a] == 0.0:
            raise StateError(f"account {a} has no open isolated position in market {m}")
        allowed = self.account_margins(a).withdrawable
        if value > allowed + MARGIN_ATOL:
            raise InsufficientFundsError(
                f"`amount` must not exceed the account's available cash {allowed:.8f}, was {value}"
            )
        self._emit_all([MarginMoved(ts_ns=ts, account=a, market=m, amount=value)])

    def remove_isolated_margin(
        self, account: int, market: MarketRef, amount: float, *, ts_ns: int | None = None
    ) -> None:
        """Move margin out of an isolated position; it must stay at or above initial margin."""
        a = self._check_account(account)
        m = self.market_id(market)
        value = check_finite_positive("amount", amount)
        ts = self._ts(ts_ns)
        cols = self._positions[m]
        if cols.mode[a] != MarginMode.ISOLATED or cols.size[a] == 0.0:
            raise StateError(f"account {a} has no open isolated position in market {m}")
        state = self.markets[m]
        equity = cols.isolated_margin[a] + cols.size[a] * (state.mark - cols.entry[a])
        initial = float(
            mm.initial_margin(
                abs(cols.size[a]) * state.mark, state.tiers, leverage=cols.leverage[a]
            )
        )
        allowed = max(0.0, min(float(cols.isolated_margin[a]), float(equity) - initial))
        if value > allowed + MARGIN_ATOL:
            raise InsufficientMarginError(
                f"`amount` must not exceed {allowed:.8f}, the isolated margin above initial "
                f"margin {initial:.8f}, was {value}"
            )
        self._emit_all([MarginMoved(ts_ns=ts, account=a, market=m, amount=-value)])

    # ------------------------------------------------------------------ trading
    def trade(
        self,
        market: MarketRef,
        *,
        buyer: int,
        seller: int,
        size: float,
        price: float,
        taker: Side | None = "buyer",
        ts_ns: int | None = None,
    ) -> Fill:
        """Trade ``size`` base units at ``price`` between two accounts, charging fees.

        The taker pays ``taker_fee_rate`` and the maker ``maker_fee_rate`` of the notional
        (``taker=None``: both pay the maker rate). Opening or increasing a position requires
        initial margin afterwards; reducing never does. An isolated position is topped up to its
        initial margin from the account's cash. Either side failing a check rejects the trade
        whole, with the state unchanged.
        """
        m = self.market_id(market)
        b = self._check_account(buyer, "buyer")
        s = self._check_account(seller, "seller")
        if b == s:
            raise ValidationError("seller", seller, "must differ from the buyer")
        qty = check_finite_positive("size", size)
        px = check_finite_positive("price", price)
        if taker not in ("buyer", "seller", None):
            raise ValidationError("taker", taker, "must be 'buyer', 'seller' or None")
        ts = self._ts(ts_ns)
        state = self.markets[m]
        if state.mark <= 0:
            raise StateError(f"market {state.spec.symbol} has no mark price yet: set_mark first")
        breaker = state.spec.circuit_breaker
        if breaker is not None and breaker.halt_trading and self.risk.halted(m):
            raise HaltedError(f"market {state.spec.symbol} is halted by its circuit breaker")
        _check_grid("size", qty, state.spec.lot_size)
        _check_grid("price", px, state.spec.tick_size)
        notional = qty * px
        maker_fee = notional * state.spec.maker_fee_rate
        taker_fee = notional * state.spec.taker_fee_rate
        buyer_fee = taker_fee if taker == "buyer" else maker_fee
        seller_fee = taker_fee if taker == "seller" else maker_fee
        events: list[Event] = []
        for account, delta, fee, field in (
            (b, qty, buyer_fee, "buyer"),
            (s, -qty, seller_fee, "seller"),
        ):
            events.extend(self._plan_side(account, m, delta, px, fee, ts, field))
        fill = Fill(
            ts_ns=ts, market=m, buyer=b, seller=s, size=qty, price=px,
            buyer_fee=buyer_fee, seller_fee=seller_fee, reason=FillReason.TRADE,
        )  # fmt: skip
        events.append(fill)
        done = self._emit_all(events)
        result = done[-1]
        assert isinstance(result, Fill)
        return result

    def open_positions(
        self,
        market: MarketRef,
        accounts: npt.ArrayLike,
        sizes: npt.ArrayLike,
        prices: npt.ArrayLike,
        *,
        leverage: npt.ArrayLike | None = None,
        counterparty: int | None = None,
        ts_ns: int | None = None,
    ) -> None:
        """Open many positions at once, all or nothing (:func:`deleverage.bulk.open_positions`)."""
        bulk.open_positions(
            self, market, accounts, sizes, prices, leverage=leverage, counterparty=counterparty,
            ts_ns=ts_ns,
        )  # fmt: skip

    def _plan_side(
        self, a: int, m: int, delta: float, price: float, fee: float, ts: int, field: str
    ) -> list[Event]:
        """Check one side of a fill; return the margin top-up it needs (maybe none)."""
        if AccountKind(int(self._kind[a])) in SYSTEM_KINDS:
            return []
        state = self.markets[m]
        cols = self._positions[m]
        old = float(cols.size[a])
        new_size, new_entry, realized = fill_one_nb(old, float(cols.entry[a]), delta, price)
        if abs(new_size) <= abs(old) and new_size * old >= 0:
            return []  # reducing never needs margin
        mark = state.mark
        notional = abs(new_size) * mark
        initial = float(mm.initial_margin(notional, state.tiers, leverage=cols.leverage[a]))
        upnl_new = new_size * (mark - new_entry)
        margins = self.account_margins(a)
        if cols.mode[a] == MarginMode.ISOLATED:
            iso_after = float(cols.isolated_margin[a]) + realized - fee
            topup = max(0.0, initial - (iso_after + upnl_new))
            available = margins.withdrawable
            if topup > available + MARGIN_ATOL:
                raise InsufficientMarginError(
                    f"`{field}` account {a} needs {topup:.8f} quote of isolated initial margin "
                    f"for a position of {new_size:g} but has {available:.8f} available"
                )
            return [MarginMoved(ts_ns=ts, account=a, market=m, amount=topup)] if topup > 0 else []
        upnl_old = old * (mark - float(cols.entry[a]))
        old_initial = float(
            mm.initial_margin(abs(old) * mark, state.tiers, leverage=cols.leverage[a])
        )
        equity_after = margins.cross_equity + realized - fee + upnl_new - upnl_old
        initial_after = margins.cross_initial - old_initial + initial
        if equity_after < initial_after - MARGIN_ATOL:
            raise InsufficientMarginError(
                f"`{field}` account {a} would have cross equity {equity_after:.8f} below its "
                f"initial margin {initial_after:.8f} after the trade"
            )
        return []

    def _check_position_margin(self, a: int, m: int, *, field: str) -> None:
        if AccountKind(int(self._kind[a])) in SYSTEM_KINDS:
            return
        cols = self._positions[m]
        if cols.size[a] == 0.0:
            return
        state = self.markets[m]
        if cols.mode[a] == MarginMode.ISOLATED:
            equity = float(cols.isolated_margin[a] + cols.size[a] * (state.mark - cols.entry[a]))
            initial = float(
                mm.initial_margin(
                    abs(cols.size[a]) * state.mark, state.tiers, leverage=cols.leverage[a]
                )
            )
            if equity < initial - MARGIN_ATOL:
                raise InsufficientMarginError(
                    f"`{field}` would leave account {a}'s isolated equity {equity:.8f} below "
                    f"initial margin {initial:.8f}"
                )
            return
        margins = self.account_margins(a)
        if margins.free_collateral < -MARGIN_ATOL:
            raise InsufficientMarginError(
                f"`{field}` would leave account {a}'s cross equity {margins.cross_equity:.8f} "
                f"below initial margin {margins.cross_initial:.8f}"
            )

    def transfer(
        self,
        source: int,
        destination: int,
        amount: float,
        *,
        reason: TransferReason,
        market: int = -1,
        ts_ns: int | None = None,
    ) -> Event:
        """Move cash between accounts (engine-internal flows: penalties, insurance, ADL)."""
        ts = self._ts(ts_ns)
        event = Transfer(
            ts_ns=ts, source=source, destination=destination, amount=amount, reason=int(reason),
            market=market,
        )  # fmt: skip
        return self._emit_all([event])[0]

    # ------------------------------------------------------------------ valuation
    def mark_prices(self) -> FloatArray:
        """Current mark of every market, by market id."""
        return np.array([s.mark for s in self.markets], dtype=np.float64)

    def account_margins(self, account: int) -> AccountMargins:
        """Margin figures of one account at current marks."""
        a = self._check_account(account)
        cash = float(self._cash[a])
        cross_upnl = cross_initial = cross_maint = iso = iso_upnl = 0.0
        for state, cols in zip(self.markets, self._positions, strict=True):
            size = float(cols.size[a])
            if size == 0.0 and cols.isolated_margin[a] == 0.0:
                continue
            upnl = size * (state.mark - float(cols.entry[a]))
            notional = abs(size) * state.mark
            if cols.mode[a] == MarginMode.ISOLATED:
                iso += float(cols.isolated_margin[a])
                iso_upnl += upnl
                continue
            cross_upnl += upnl
            cross_initial += float(
                mm.initial_margin(notional, state.tiers, leverage=cols.leverage[a])
            )
            cross_maint += float(mm.maintenance_margin(notional, state.tiers))
        return AccountMargins(
            cash=cash,
            cross_equity=cash + cross_upnl,
            cross_initial=cross_initial,
            cross_maintenance=cross_maint,
            isolated_margin=iso,
            total_equity=cash + iso + cross_upnl + iso_upnl,
        )

    def valuation(self, market: MarketRef) -> dict[str, FloatArray]:
        """Per-account figures in one market at its mark, as arrays over all accounts.

        Keys: ``upnl``, ``notional``, ``maintenance``, ``initial`` (quote).
        """
        m = self.market_id(market)
        state = self.markets[m]
        cols = self._positions[m]
        n = self._n
        size = cols.size[:n]
        notional = np.abs(size) * state.mark
        return {
            "upnl": size * (state.mark - cols.entry[:n]),
            "notional": notional,
            "maintenance": mm.maintenance_margin(notional, state.tiers),
            "initial": mm.initial_margin(notional, state.tiers, leverage=cols.leverage[:n]),
        }

    def margin_state(self) -> dict[str, FloatArray]:
        """Vectorized margin state of every account at current marks.

        Keys (arrays over account ids): ``cross_equity``, ``cross_maintenance``,
        ``cross_initial``, ``total_equity``, ``cross_margin_ratio`` (maintenance / equity).
        Isolated positions are reported per market by :meth:`isolated_state`.
        """
        out = {name: np.empty(self._n) for name in _MARGIN_STATE_KEYS}
        self._margin_state_into(out)
        return out

    def _margin_state_into(self, out: dict[str, FloatArray]) -> None:
        n = self._n
        cash = self._cash[:n]
        ce, cm = out["cross_equity"][:n], out["cross_maintenance"][:n]
        ci, te = out["cross_initial"][:n], out["total_equity"][:n]
        if not self.markets:
            ce[:], cm[:], ci[:], te[:] = cash, 0.0, 0.0, cash
        for k, (state, cols) in enumerate(zip(self.markets, self._positions, strict=True)):
            t = state.tiers
            accumulate_market_nb(
                cols.size[:n], cols.entry[:n], cols.isolated_margin[:n], cols.mode[:n],
                cols.leverage[:n], state.mark, t.floor, t.imr, t.mmr, t.cum, ce, cm, ci, te,
                cash, k == 0,
            )  # fmt: skip
        margin_ratio_nb(ce, cm, out["cross_margin_ratio"][:n])

    def _cached(self, key: tuple[Any, ...], compute: Callable[[], Any]) -> Any:
        """``compute()``, remembered until the state version changes."""
        hit = self._cache.get(key)
        if hit is not None and hit[0] == self._version:
            return hit[1]
        value = compute()
        self._cache[key] = (self._version, value)
        return value

    def cached_margin_state(self) -> dict[str, FloatArray]:
        """:meth:`margin_state`, computed once per state version into reused buffers.

        The arrays are read-only views that the next state change overwrites: read them, do
        not keep them (:meth:`margin_state` returns fresh arrays).
        """

        def compute() -> dict[str, FloatArray]:
            buffers = self._buffers
            if len(buffers.get("cross_equity", ())) < self._n:
                buffers = {name: np.empty(self._capacity) for name in _MARGIN_STATE_KEYS}
                self._buffers = buffers
            self._margin_state_into(buffers)
            value = {name: arr[: self._n].view() for name, arr in buffers.items()}
            for arr in value.values():
                arr.flags.writeable = False
            return value

        cached: dict[str, FloatArray] = self._cached(("margin",), compute)
        return cached

    def cross_scan(self, market: MarketRef, call_level: float) -> dict[str, Any]:
        """The risk step's scan of cross accounts after ``market``'s mark moved.

        Returns ``below`` with ``below_equity`` and ``below_maintenance`` (traders with a
        cross position in the market under maintenance) and ``warn`` with ``warn_ratio``
        (those at or above ``call_level``). Cached per version. A full pass also returns
        ``ratio`` (maintenance / cross equity of every account, a read-only view valid until
        the next change); while only marks change, a bounded pass re-checks just the accounts
        the moves can have reached (:mod:`deleverage.cross_index`) and has no ``ratio``.
        """
        m = self.market_id(market)
        scan: dict[str, Any] = self._cached(
            ("scan", m, call_level), lambda: self._cross_scan(m, call_level)
        )
        return scan

    def _cross_scan(self, m: int, call_level: float) -> dict[str, Any]:
        if not self.use_level_index:
            return self._cross_scan_full(m, call_level)
        key = min(float(call_level), 1.0)
        index = self._cross_index.get(key)
        if index is None:
            index = self._cross_index[key] = CrossIndex(call_level)
        cand = index.candidates(self.mark_prices())
        if cand is not None:
            result = self._cross_scan_subset(m, call_level, cand)
            if self.check_invariants:
                self._check_cross_scan(m, call_level, result)
            return result
        result = self._cross_scan_full(m, call_level)
        n = self._n
        margins = self.cached_margin_state()
        index.build(
            self.mark_prices(), [c.size[:n] for c in self._positions],
            [c.mode[:n] for c in self._positions], [st.tiers for st in self.markets],
            margins["cross_equity"], margins["cross_maintenance"], self._kind[:n] == 0,
        )  # fmt: skip
        return result

    def _sum_other_markets(
        self, m: int, sel: IntArray | slice, cash: FloatArray, equity: FloatArray,
        maint: FloatArray,
    ) -> bool:  # fmt: skip
        """Cross equity and maintenance of the rows ``sel`` over every market but ``m`` (the
        scan kernel adds ``m`` last); return whether nothing was summed (``first``)."""
        first = True
        for state, cols in zip(self.markets, self._positions, strict=True):
            if state.id == m:
                continue
            t = state.tiers
            cross_partial_nb(
                cols.size[sel], cols.entry[sel], cols.mode[sel], state.mark, t.floor, t.mmr,
                t.cum, cash, equity, maint, first,
            )  # fmt: skip
            first = False
        return first

    def _cross_scan_subset(self, m: int, call_level: float, acc: IntArray) -> dict[str, Any]:
        """:meth:`_cross_scan_full` over the accounts ``acc`` only (same kernels, same result)."""
        k = len(acc)
        if k == 0:
            return _empty_scan()
        cash = self._cash[acc]
        equity, maint = np.empty(k), np.empty(k)
        first = self._sum_other_markets(m, acc, cash, equity, maint)
        state, cols, t = self.markets[m], self._positions[m], self.markets[m].tiers
        ratio = np.empty(k)
        below, below_e, below_m = np.empty(k, dtype=np.int64), np.empty(k), np.empty(k)
        warn = np.empty(k, dtype=np.int64)
        n_below, n_warn = cross_scan_nb(
            cols.size[acc], cols.entry[acc], cols.mode[acc], self._kind[acc], state.mark,
            t.floor, t.mmr, t.cum, cash, equity, maint, first, call_level, ratio, below, below_e,
            below_m, warn,
        )  # fmt: skip
        return {
            "below": acc[below[:n_below]],
            "below_equity": below_e[:n_below],
            "below_maintenance": below_m[:n_below],
            "warn": acc[warn[:n_warn]],
            "warn_ratio": ratio[warn[:n_warn]],
        }

    def _check_cross_scan(self, m: int, call_level: float, result: dict[str, Any]) -> None:
        """The bounded scan must equal the full pass (``check_invariants`` mode)."""
        full = self._cross_scan_full(m, call_level)
        for name, value in result.items():
            if not np.array_equal(value, full[name]):
                raise InvariantError(
                    f"bounded cross scan of market {m} differs from the full pass in `{name}`"
                )

    def _cross_scan_full(self, m: int, call_level: float) -> dict[str, Any]:
        n = self._n
        buffers = self._scan_buffers
        if len(buffers.get("ratio", ())) < n:
            buffers = {name: np.empty(self._capacity) for name in ("ratio", "equity", "maint")}
            buffers["below"] = np.empty(self._capacity, dtype=np.int64)
            buffers["below_e"] = np.empty(self._capacity)
            buffers["below_m"] = np.empty(self._capacity)
            buffers["warn"] = np.empty(self._capacity, dtype=np.int64)
            self._scan_buffers = buffers
        cash = self._cash[:n]
        equity, maint = buffers["equity"][:n], buffers["maint"][:n]
        first = self._sum_other_markets(m, slice(0, n), cash, equity, maint)
        state, cols, t = self.markets[m], self._positions[m], self.markets[m].tiers
        ratio = buffers["ratio"][:n]
        n_below, n_warn = cross_scan_nb(
            cols.size[:n], cols.entry[:n], cols.mode[:n], self._kind[:n], state.mark, t.floor,
            t.mmr, t.cum, cash, equity, maint, first, call_level, ratio, buffers["below"],
            buffers["below_e"], buffers["below_m"], buffers["warn"],
        )  # fmt: skip
        view = ratio.view()
        view.flags.writeable = False
        return {
            "ratio": view,
            "below": buffers["below"][:n_below].copy(),
            "below_equity": buffers["below_e"][:n_below].copy(),
            "below_maintenance": buffers["below_m"][:n_below].copy(),
            "warn": buffers["warn"][:n_warn].copy(),
            "warn_ratio": ratio[buffers["warn"][:n_warn]].copy(),
        }

    def isolated_scan(self, market: MarketRef, call_level: float) -> dict[str, Any]:
        """The risk step's scan of isolated trader positions in ``market``.

        Returns ``below`` with ``below_equity`` and ``below_maintenance`` (positions under
        maintenance) and ``warn`` with ``warn_ratio`` (maintenance / equity at or above
        ``call_level``). One pass over the columns, cached per state version.
        """
        m = self.market_id(market)
        scan: dict[str, Any] = self._cached(
            ("iscan", m, call_level), lambda: self._isolated_scan(m, call_level)
        )
        return scan

    def _isolated_scan(self, m: int, call_level: float) -> dict[str, Any]:
        n = self._n
        buffers = self._scan_buffers
        if len(buffers.get("i_below", ())) < n:
            for name in ("i_below", "i_warn"):
                buffers[name] = np.empty(self._capacity, dtype=np.int64)
            for name in ("i_below_e", "i_below_m", "i_warn_r"):
                buffers[name] = np.empty(self._capacity)
        state, cols, t = self.markets[m], self._positions[m], self.markets[m].tiers
        if self.use_level_index:
            result = self._indexed_isolated_scan(m, call_level)
            if self.check_invariants:
                self._check_indexed_scan(m, call_level, result)
            return result
        n_below, n_warn = isolated_scan_nb(
            cols.size[:n], cols.entry[:n], cols.isolated_margin[:n], cols.mode[:n],
            self._kind[:n], state.mark, t.floor, t.mmr, t.cum, call_level,
            buffers["i_below"], buffers["i_below_e"], buffers["i_below_m"], buffers["i_warn"],
            buffers["i_warn_r"],
        )  # fmt: skip
        return {
            "below": buffers["i_below"][:n_below].copy(),
            "below_equity": buffers["i_below_e"][:n_below].copy(),
            "below_maintenance": buffers["i_below_m"][:n_below].copy(),
            "warn": buffers["i_warn"][:n_warn].copy(),
            "warn_ratio": buffers["i_warn_r"][:n_warn].copy(),
        }

    def _indexed_isolated_scan(self, m: int, call_level: float) -> dict[str, Any]:
        """:meth:`_isolated_scan` over the candidates of the zone-price index only."""
        n = self._n
        state, cols, t = self.markets[m], self._positions[m], self.markets[m].tiers
        key = (m, min(float(call_level), 1.0))
        index = self._level_index.get(key)
        if index is None:
            index = self._level_index[key] = LevelIndex(call_level)
        if not index.valid:
            index.rebuild(
                cols.size[:n], cols.entry[:n], cols.isolated_margin[:n], cols.mode[:n],
                self._kind[:n], t,
            )  # fmt: skip
        cand = index.candidates(state.mark, cols.size, cols.entry, cols.isolated_margin, t)
        k = len(cand)
        if k == 0:
            return _empty_scan()
        below, below_e, below_m = np.empty(k, dtype=np.int64), np.empty(k), np.empty(k)
        warn, warn_r = np.empty(k, dtype=np.int64), np.empty(k)
        n_below, n_warn = isolated_scan_nb(
            cols.size[cand], cols.entry[cand], cols.isolated_margin[cand], cols.mode[cand],
            self._kind[cand], state.mark, t.floor, t.mmr, t.cum, call_level, below, below_e,
            below_m, warn, warn_r,
        )  # fmt: skip
        return {
            "below": cand[below[:n_below]],
            "below_equity": below_e[:n_below],
            "below_maintenance": below_m[:n_below],
            "warn": cand[warn[:n_warn]],
            "warn_ratio": warn_r[:n_warn],
        }

    def _check_indexed_scan(self, m: int, call_level: float, result: dict[str, Any]) -> None:
        """The indexed scan must equal the full pass (``check_invariants`` mode)."""
        self.use_level_index = False
        try:
            full = self._isolated_scan(m, call_level)
        finally:
            self.use_level_index = True
        for name, value in full.items():
            if not np.array_equal(value, result[name]):
                raise InvariantError(
                    f"indexed isolated scan of market {m} differs from the full pass in `{name}`"
                )

    def isolated_state(self, market: MarketRef) -> dict[str, FloatArray]:
        """Equity, maintenance and margin ratio of isolated positions in one market."""
        m = self.market_id(market)
        state = self.markets[m]
        cols = self._positions[m]
        n = self._n
        equity = np.zeros(n)
        maint = np.zeros(n)
        t = state.tiers
        isolated_market_nb(
            cols.size[:n], cols.entry[:n], cols.isolated_margin[:n], cols.mode[:n], state.mark,
            t.floor, t.mmr, t.cum, equity, maint,
        )  # fmt: skip
        return {"equity": equity, "maintenance": maint, "margin_ratio": _ratio(equity, maint)}

    def conservation(self) -> Conservation:
        """The money-conservation equation's lines (see module docstring)."""
        n = self._n
        upnl = 0.0
        iso = 0.0
        for state, cols in zip(self.markets, self._positions, strict=True):
            upnl += float(np.sum(cols.size[:n] * (state.mark - cols.entry[:n])))
            iso += float(np.sum(cols.isolated_margin[:n]))
        traders = self._kind[:n] == AccountKind.TRADER
        total = self.margin_state()["total_equity"]
        negative = float(-np.sum(np.minimum(total[traders], 0.0))) + 0.0
        return Conservation(
            cash=float(np.sum(self._cash[:n])),
            isolated_margin=iso,
            unrealized_pnl=upnl,
            net_deposits=self.net_deposits,
            negative_equity=negative,
        )

    def assert_conserved(self) -> None:
        """Raise :class:`InvariantError` if money is not conserved."""
        c = self.conservation()
        if not c.holds:
            raise InvariantError(
                f"money not conserved: cash {c.cash} + isolated {c.isolated_margin} + upnl "
                f"{c.unrealized_pnl} - net deposits {c.net_deposits} = {c.error}"
            )

    # ------------------------------------------------------------------ tables and views
    def margin_table(self, *, include_system: bool = False) -> pd.DataFrame:
        """One row per open position: size, entry, mark, PnL, margins, margin ratio."""
        n = self._n
        frames = []
        ms = self.margin_state()
        for m, (state, cols) in enumerate(zip(self.markets, self._positions, strict=True)):
            size = cols.size[:n]
            keep = size != 0
            if not include_system:
                keep &= self._kind[:n] == AccountKind.TRADER
            idx = np.flatnonzero(keep)
            if len(idx) == 0:
                continue
            v = self.valuation(m)
            iso = cols.mode[idx] == MarginMode.ISOLATED
            equity = np.where(
                iso, cols.isolated_margin[idx] + v["upnl"][idx], ms["cross_equity"][idx]
            )
            maint = np.where(iso, v["maintenance"][idx], ms["cross_maintenance"][idx])
            frames.append(
                pd.DataFrame(
                    {
                        "account": idx,
                        "market": state.spec.symbol,
                        "mode": np.where(iso, "isolated", "cross"),
                        "size": size[idx],
                        "entry_price": cols.entry[idx],
                        "mark_price": state.mark,
                        "notional": v["notional"][idx],
                        "unrealized_pnl": v["upnl"][idx],
                        "initial_margin": v["initial"][idx],
                        "maintenance_margin": v["maintenance"][idx],
                        "equity": equity,
                        "margin_ratio": mm.margin_ratio(equity, maint),
                    }
                )
            )
        if not frames:
            return pd.DataFrame(
                columns=[
                    "account", "market", "mode", "size", "entry_price", "mark_price", "notional",
                    "unrealized_pnl", "initial_margin", "maintenance_margin", "equity",
                    "margin_ratio",
                ]
            )  # fmt: skip
        return pd.concat(frames, ignore_index=True)

    def position(self, account: int, market: MarketRef) -> PositionView:
        """A read-only view of one position."""
        return PositionView(self, self._check_account(account), self.market_id(market))

    def label(self, account: int) -> str:
        """The label an account was opened with ("" if none)."""
        return self._labels.get(self._check_account(account), "")

    def cash(self, account: int) -> float:
        """An account's cross cash balance (quote)."""
        return float(self._cash[self._check_account(account)])

    # ------------------------------------------------------------------ state and replay
    def state_arrays(self) -> dict[str, npt.NDArray[np.generic]]:
        """Every state array, trimmed to the open accounts (for equality checks)."""
        n = self._n
        out: dict[str, npt.NDArray[np.generic]] = {
            "cash": self._cash[:n],
            "net_deposit": self._net_deposit[:n],
            "kind": self._kind[:n],
            "default_mode": self._default_mode[:n],
            "marks": self.mark_prices(),
        }
        for m, cols in enumerate(self._positions):
            for name, arr in cols.arrays(n).items():
                out[f"{m}.{name}"] = arr
        return out

    def state_hash(self) -> str:
        """SHA-256 of every state array and market spec: equal states, equal hashes."""
        h = hashlib.sha256()
        for name, arr in sorted(self.state_arrays().items()):
            h.update(name.encode())
            h.update(np.ascontiguousarray(arr).tobytes())
        for state in self.markets:
            h.update(state.spec.to_json().encode())
        h.update(repr((self.net_deposits, self.clock_ns)).encode())
        return h.hexdigest()

    @classmethod
    def replay(cls, journal: Journal, *, check_invariants: bool = False) -> Exchange:
        """Rebuild an engine by applying every event of a journal to a fresh state.

        See :mod:`deleverage.replay`: the rebuilt arrays are bit-identical.
        """
        from deleverage.replay import replay

        return replay(cls, journal, check_invariants=check_invariants)

    def events(self) -> Iterator[Event]:
        """Iterate over the journal's typed events."""
        return iter(self.journal)


def _empty_scan() -> dict[str, Any]:
    """A scan that found nobody under maintenance or at the call level."""
    empty_i, empty_f = np.zeros(0, dtype=np.int64), np.zeros(0)
    return {
        "below": empty_i, "below_equity": empty_f, "below_maintenance": empty_f,
        "warn": empty_i, "warn_ratio": empty_f,
    }  # fmt: skip


def _unique_accounts(accounts: IntArray, n: int) -> IntArray:
    """Distinct account ids, ascending (a flag pass for large batches, a sort for small)."""
    if len(accounts) < 4096:
        return np.unique(accounts)
    seen = np.zeros(n, dtype=np.bool_)
    seen[accounts] = True
    return np.flatnonzero(seen).astype(np.int64)


def _ratio(equity: FloatArray, maintenance: FloatArray) -> FloatArray:
    out = np.empty_like(equity)
    margin_ratio_nb(equity, maintenance, out)
    return out


def _check_grid(field: str, value: float, step: float) -> None:
    # Within GRID_RTOL of a whole number of steps, measured in steps (not relative to the
    # count, which would let a large price stray by many ticks).
    ratio = value / step
    if abs(ratio - round(ratio)) > GRID_RTOL:
        raise ValidationError(field, value, f"must be a multiple of {step:g}")


__all__ = [
    "MAX_TS_NS",
    "AccountKind",
    "AccountMargins",
    "Conservation",
    "Exchange",
    "MarketState",
    "PositionColumns",
    "PositionView",
    "check_finite",
]
