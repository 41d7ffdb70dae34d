"""The ledger: the engine's columnar state and the one place it changes.

State is struct-of-arrays (DESIGN.md "One engine, arrays inside"): one float64 array per field,
per market, indexed by account id, so a mark update re-values a million positions with a few
array operations. Only :meth:`Ledger._apply` mutates state (and the columnar appliers it
shares with replay); every caller emits an event through :meth:`Ledger._emit`, so replaying the
journal on a fresh engine rebuilds the same arrays (:mod:`deleverage.engine.replay`).

:class:`Ledger` is the lowest layer of :class:`~deleverage.engine.exchange.Exchange`:
``Ledger`` (state, events, fund ledgers) <- :class:`~deleverage.engine.scans.MarginScans`
(valuation and the margin scans) <- ``Exchange`` (the public operations and views).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import numpy.typing as npt

from deleverage.engine.adl_index import AdlIndex
from deleverage.engine.contracts import ContractUnits
from deleverage.engine.cross_index import CrossIndex
from deleverage.engine.events import (
    NOTICE_KINDS,
    UNSTAKE_REQUEST,
    AccountOpened,
    CollateralListed,
    CollateralMoved,
    CollateralPriced,
    Deposit,
    Event,
    EventKind,
    Fill,
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
from deleverage.engine.fund_records import batch_ref
from deleverage.engine.insurance_fund import DEFAULT_UNSTAKE_COOLDOWN_S, FlowKind, InsuranceFund
from deleverage.engine.kernels import (
    apply_fills_nb,
    apply_transfers_nb,
    distinct_accounts_nb,
)
from deleverage.engine.level_index import LevelIndex
from deleverage.engine.risk import RiskEngine
from deleverage.engine.state import (
    AccountKind,
    MarketState,
    PositionColumns,
)
from deleverage.errors import (
    InvariantError,
    UnknownEntityError,
    ValidationError,
)
from deleverage.rules import margin as mm
from deleverage.spec import MarginMode, MarketSpec, TierArrays

if TYPE_CHECKING:
    from deleverage.engine.exchange import Exchange

#: Latest event time the engine accepts: 2100-01-01T00:00:00Z in ns since the epoch, far
#: below int64's limit, so a clock set from outside can neither overflow the journal's int64
#: column nor freeze the engine at the end of time.
MAX_TS_NS = 4_102_444_800 * 10**9

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
MarketRef = int | str


_COLLATERAL_KINDS = frozenset(
    (EventKind.COLLATERAL_LISTED, EventKind.COLLATERAL_PRICE, EventKind.COLLATERAL_MOVED)
)
_LAYOUT_KINDS = frozenset(
    {EventKind.ACCOUNT_OPENED, EventKind.MARKET_LISTED, EventKind.POSITION_SETTINGS}
)
_PROTOCOL = FlowKind.PROTOCOL_REVENUE
_INFLOW_KINDS = {
    int(TransferReason.TRADING_FEE): FlowKind.FEE_INFLOW,
    int(TransferReason.LIQUIDATION_FEE): FlowKind.LIQUIDATION_PENALTY,
}


#: Transfer batches up to this size find their fund rows by dict lookups (larger: np.isin).
_SMALL_BATCH = 16


class Ledger:
    """Columnar state, the journal and the appliers (see the module docstring)."""

    def _init_state(
        self,
        *,
        check_invariants: bool,
        seed: int = 0,
        fund_settings: tuple[float, float] = (0.0, DEFAULT_UNSTAKE_COOLDOWN_S),
    ) -> None:
        # The ledger is always the base of an Exchange, the type the risk engine drives.
        self.risk = RiskEngine(cast("Exchange", self), seed=seed)
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
        self._seen_flags = np.zeros(0, dtype=np.bool_)  # distinct_accounts_nb's flags
        # Per market: bumped by every change to its positions or isolated margins (not marks).
        self._pos_version: list[int] = []
        # Per market: open interest, the traders' long sizes summed (base units).
        self._long_oi: list[float] = []
        # Sorted zone-price indexes of isolated positions, per (market, level).
        self._level_index: dict[tuple[int, float], LevelIndex] = {}
        # Distance-to-zone bounds of cross accounts, per level.
        self._cross_index: dict[float, CrossIndex] = {}
        # Cells bounding the ADL scores of isolated positions, per market (adl_index.py).
        self._adl_index: dict[int, AdlIndex] = {}
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
        if type(market) is int and 0 <= market < len(self.markets):
            return market  # the common case first: a listed id (what the checks below return)
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
        if type(ts_ns) is int and self.clock_ns <= ts_ns <= MAX_TS_NS:
            return ts_ns  # the common case first: what the checks below return for it
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

    def _emit_mark(self, m: int, ts: int, price: float) -> None:
        """``self._emit(MarkPrice(ts_ns=ts, market=m, price=price))`` without the event
        object: the same journal row (:meth:`Journal.append_mark`) and the same effect
        (:meth:`_apply`'s ``MARK_PRICE`` branch)."""
        self.journal.append_mark(ts, m, price)
        self._version += 1  # a mark is no notice
        if ts > self.clock_ns:
            self.clock_ns = ts
        self.markets[m].mark = price
        if self.markets[m].spec.open_interest_scaling is not None:
            self._refresh_rates(m)

    def open_interest(self, market: MarketRef) -> float:
        """Open interest of ``market``: traders' long positions summed (base units).

        Kept up to date by every fill (the venue's own accounts are not traders). An inverse
        market's is its traders' long contracts (the engine's short side), summed on demand.
        """
        m = self.market_id(market)
        units = self.markets[m].units
        if units.inverse:
            size = self._positions[m].size[: self._n]
            traders = self._kind[: self._n] == AccountKind.TRADER
            return float(units.venue_amount(float(np.sum(np.maximum(-size[traders], 0.0)))))
        return max(self._long_oi[m], 0.0)

    def positions_version(self, market: MarketRef) -> int:
        """Counter bumped by every change to ``market``'s positions or isolated margins."""
        return self._pos_version[self.market_id(market)]

    def _touch(self, m: int, accounts: IntArray | int) -> None:
        """Positions of ``accounts`` in market ``m`` changed (size, entry, margin, mode)."""
        self._pos_version[m] += 1
        if not (self._level_index or self._cross_index or self._adl_index):
            return
        if type(accounts) is np.ndarray and accounts.dtype == np.int64 and accounts.ndim == 1:
            acc = accounts  # the batch paths' columns as they are
        else:
            acc = np.atleast_1d(np.asarray(accounts, dtype=np.int64))
        for (market, _), index in self._level_index.items():
            if market == m:
                index.touch(acc)
        adl = self._adl_index.get(m)
        if adl is not None:
            adl.touch(acc)
        for cross in self._cross_index.values():
            cross.touch(acc)

    def _touch_cash(self, accounts: IntArray | int) -> None:
        """The cash of ``accounts`` changed (cross equity moved)."""
        if self._cross_index:
            acc = np.atleast_1d(np.asarray(accounts, dtype=np.int64))
            for cross in self._cross_index.values():
                cross.touch(acc)

    def _touch_all(self, m: int | None = None, *, margins_only: bool = False) -> None:
        """Every position of market ``m`` (all markets: None) may have changed
        (``margins_only``: only isolated margins moved, as funding moves them)."""
        for k in range(len(self._pos_version)):
            if m is None or k == m:
                self._pos_version[k] += 1
        for (market, _), index in self._level_index.items():
            if m is None or market == m:
                index.invalidate()
        for market, adl in self._adl_index.items():
            if m is None or market == m:
                if margins_only:
                    adl.margins_moved()
                else:
                    adl.invalidate()
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
        elif kind in _COLLATERAL_KINDS:
            # Imported here: posted coins are rare, and the ledger's imports stay as they were.
            from deleverage.engine.collateral import apply_collateral_event

            assert isinstance(event, CollateralListed | CollateralPriced | CollateralMoved)
            apply_collateral_event(self, event)
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
        self.markets.append(
            MarketState(
                id=event.market, spec=spec, tiers=spec.tier_arrays, units=ContractUnits.of(spec)
            )
        )
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
        if len(self._seen_flags) < self._n:  # one flag per account, all False between calls
            self._seen_flags = np.zeros(self._capacity, dtype=np.bool_)
        involved = np.sort(  # np.unique's result, through flags (no sort of every row)
            distinct_accounts_nb(
                np.concatenate([buyers, sellers]).astype(np.int64, copy=False), self._seen_flags
            )
        )
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
        state.tiers = TierArrays(
            floor=base.floor, imr=imr, mmr=base.mmr, cum=base.cum, min_margin=base.min_margin,
            initial_fee=base.initial_fee, whole_position=base.whole_position,
        )  # fmt: skip

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
        reason = int(reasons[0])
        if not np.all(reasons == reason):
            return False
        if reason == TransferReason.INSURANCE_COVER and np.all(sources == sources[0]):
            fund = self.funds.get(int(sources[0]))
            if fund is None or _is_fund(destinations, self.funds).any():
                return False
            fund.cover_many(amounts, ts, destinations)
            return True
        if reason in _INFLOW_KINDS and np.all(destinations == destinations[0]):
            fund = self.funds.get(int(destinations[0]))
            if fund is None or _is_fund(sources, self.funds).any():
                return False
            kind = _INFLOW_KINDS[reason]
            fund.receive_many(amounts, ts, kind=kind, refs=sources)
            return True
        return False

    # ------------------------------------------------------------------ insurance staking
    def _fund_account(self, market: MarketRef | None) -> int:
        return self.insurance_account if market is None else self.insurance_account_for(market)

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
        if market >= 0:
            cols = self._positions[market]
            apply_transfers_nb(
                self._cash, cols.isolated_margin, cols.mode, cols.size, True, sources,
                destinations, amounts,
            )  # fmt: skip
        else:
            dummy = np.zeros(0)
            apply_transfers_nb(
                self._cash, dummy, np.zeros(0, dtype=np.int8), dummy, False, sources,
                destinations, amounts,
            )  # fmt: skip
        self._transfers_applied(market, sources, destinations, amounts, reasons, ts_ns)

    def _transfers_applied(
        self,
        market: int,
        sources: IntArray,
        destinations: IntArray,
        amounts: FloatArray,
        reasons: IntArray,
        ts_ns: int | IntArray,
    ) -> None:
        """The bookkeeping of transfers whose cash has moved (:meth:`_apply_transfer_columns`
        after its kernel; the batch path's settlement moves the cash of a round's groups in
        one kernel, :mod:`deleverage.engine.risk.batch_settle`): the state's versions, the
        touched accounts, the fund's ledger records."""
        self._version += 1
        if market >= 0:
            self._touch(market, np.concatenate([sources, destinations]))
        else:
            self._touch_cash(np.concatenate([sources, destinations]))
        if not self.funds:
            return
        funds = self.funds
        if len(sources) <= _SMALL_BATCH:  # the per-account path: a dict lookup beats np.isin
            pairs = zip(sources.tolist(), destinations.tolist(), strict=True)
            rows = np.array(
                [i for i, (src, dst) in enumerate(pairs) if src in funds or dst in funds],
                dtype=np.int64,
            )
        else:
            rows = np.flatnonzero(_is_fund(sources, funds) | _is_fund(destinations, funds))
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

    def _fund_group_applied(
        self, market: int, fund: int, inflow: bool, sources: IntArray, destinations: IntArray,
        amounts: FloatArray, reasons: IntArray, ts: int, *, checked: bool = False,
        total: float | None = None,
    ) -> None:  # fmt: skip
        """:meth:`_transfers_applied` for transfers of one reason between the fund account
        ``fund`` and positions, in one direction (``inflow``: into the fund), whose cash has
        moved: the batch path's groups (:mod:`deleverage.engine.risk.batch_settle`).

        With a fund ledger at ``fund`` every row is a fund row, so the same calls follow
        without the row selection: several rows whose other sides are no fund accounts make
        one ``receive_many`` or ``cover_many`` (:meth:`_fund_batch`'s), else
        :meth:`_fund_ledger` row by row. ``checked``: the caller knows the other sides are
        no fund accounts and the amounts are > 0 (none NaN): inflows are then summed without
        ``receive_many``'s checks of each amount (:func:`_receive_positive`), and ``total``
        (where given and not NaN) is their ``math.fsum``, found by the caller's kernel."""
        book = self.funds.get(fund)
        if book is None:  # the general selection (rows whose other side is a fund, if any)
            self._transfers_applied(market, sources, destinations, amounts, reasons, ts)
            return
        self._version += 1
        if market >= 0:
            self._touch(market, np.concatenate([sources, destinations]))
        elif self._cross_index:  # what ``_touch_cash`` reads (nothing to touch without)
            self._touch_cash(np.concatenate([sources, destinations]))
        others = sources if inflow else destinations
        if len(others) > 1 and (checked or not _is_fund(others, self.funds).any()):
            kind = _INFLOW_KINDS[int(reasons[0])] if inflow else None
            if kind is not None and checked:
                if total is not None and total == total:  # ``_receive_positive``'s record
                    book.receive_checked(total, ts, kind, batch_ref(others))
                else:
                    _receive_positive(book, amounts, ts, kind, others)
            elif kind is not None:
                book.receive_many(amounts, ts, kind=kind, refs=others)
            else:
                book.cover_many(amounts, ts, others)
            return
        for src, dst, amount, reason in zip(
            sources.tolist(), destinations.tolist(), amounts.tolist(), reasons.tolist(),
            strict=True,
        ):  # fmt: skip
            self._fund_ledger(src, dst, amount, reason, ts)

    def _fund_inflow_applied(
        self, fund: int, ts: int, reason: int, total: float, sources: IntArray,
        destinations: IntArray, lo: int, hi: int,
    ) -> bool:  # fmt: skip
        """:meth:`_fund_group_applied` of a checked inflow group of cash (market ``-1``: no
        position touched) of two or more rows (``sources[lo:hi]`` to ``destinations[lo:hi]``)
        into the fund account ``fund``, all of one ``reason``, whose ``math.fsum`` is
        ``total``: the same version, touched cash and the fund's one record, without the
        general path's branches (the one-call batch round's penalties, once a round). Returns
        False, having done nothing, where that path would take another branch (no fund ledger
        at ``fund``, one row, a reason that is no inflow kind, a NaN total): the caller then
        takes :meth:`_fund_group_applied`."""
        book = self.funds.get(fund)
        kind = _INFLOW_KINDS.get(reason)
        if book is None or kind is None or hi - lo < 2 or total != total:
            return False
        self._version += 1
        if self._cross_index:  # what ``_touch_cash`` reads (nothing to touch without)
            self._touch_cash(np.concatenate([sources[lo:hi], destinations[lo:hi]]))
        book.receive_checked(total, ts, kind, f"{hi - lo} accounts")  # ``batch_ref``'s
        return True

    def _apply_funding(self, market: int, accounts: IntArray, amounts: FloatArray) -> None:
        self._version += 1
        cols = self._positions[market]
        iso = cols.mode[accounts] != MarginMode.CROSS
        np.add.at(cols.isolated_margin, accounts[iso], amounts[iso])
        np.add.at(self._cash, accounts[~iso], amounts[~iso])
        if len(accounts) > 64:
            self._touch_all(market, margins_only=True)
        else:
            self._touch(market, accounts)

    def insurance_account_for(self, market: MarketRef) -> int:
        """The insurance account that backs a market (the shared one unless per-market)."""
        return self._market_fund[self.market_id(market)]


def _is_fund(accounts: IntArray, funds: dict[int, Any]) -> npt.NDArray[np.bool_]:
    """Which ``accounts`` are insurance accounts (``np.isin`` against the few fund accounts,
    as one comparison per fund without its set-up)."""
    out = np.zeros(len(accounts), dtype=np.bool_)
    for f in funds:
        out |= accounts == f
    return out


def _receive_positive(
    book: InsuranceFund, amounts: FloatArray, ts: int, kind: FlowKind, refs: IntArray
) -> None:
    """``book.receive_many(amounts, ts, kind=kind, refs=refs)`` of amounts known to be > 0
    and none NaN (the batch path's penalties): the same record, the exact sum checked instead
    of each amount (an infinite amount makes it infinite: ``receive_many`` then raises)."""
    total = math.fsum(amounts.tolist())
    if not math.isfinite(total):
        book.receive_many(amounts, ts, kind=kind, refs=refs)
        return
    # ``book.receive(total, ...)`` less the checks its arguments pass here: ``kind`` is an
    # inflow kind (``_INFLOW_KINDS``), the total of positive amounts is finite and >= 0.
    book.receive_checked(total, ts, kind, batch_ref(refs))
