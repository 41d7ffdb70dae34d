"""The engine: columnar state of accounts and positions, and the one place it changes.

State is struct-of-arrays (DESIGN.md "One engine, arrays inside"): one float64 array per field,
per market, indexed by account id, so a mark update re-values a million positions with a few
array operations. Public operations validate their input completely, then emit events; only
:meth:`Exchange._apply` mutates state, and replaying the journal through it on a fresh engine
rebuilds the same arrays (:meth:`Exchange.replay`, :meth:`Exchange.state_hash`).

Accounts hold cash in the exchange's one settlement currency: quote for linear markets, the
coin of its inverse markets (:attr:`Exchange.settlement_asset`; an inverse market is held in
the engine's linear units, :mod:`deleverage.engine.contracts`). A position is isolated (its
own margin, ``isolated_margin``) or cross (backed by the account's cash). Money is conserved
(DESIGN.md "Money must add up")::

    sum(cash) + sum(isolated margin) + sum(unrealized PnL) == net deposits

over every account, the venue's own accounts (fees, insurance, the outside liquidity) included,
since every fill has two sides. :meth:`Exchange.conservation` reports each line of it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import TYPE_CHECKING, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd

from deleverage.engine import bulk
from deleverage.engine.collateral import ex_has_collateral, quote_balance
from deleverage.engine.events import (
    AccountOpened,
    Deposit,
    Event,
    EventKind,
    Fill,
    FillReason,
    Journal,
    MarginMoved,
    MarketListed,
    PositionSettings,
    RiskParamsChanged,
    Transfer,
    TransferReason,
    Withdrawal,
)
from deleverage.engine.insurance_fund import DEFAULT_UNSTAKE_COOLDOWN_S, InsuranceFund
from deleverage.engine.kernels import add_total_equity_nb, fill_one_nb
from deleverage.engine.ledger import MAX_TS_NS, FloatArray, IntArray, MarketRef
from deleverage.engine.quiet_mark import QuietMarks
from deleverage.engine.staking import StakingOperations
from deleverage.engine.state import (
    SYSTEM_KINDS,
    AccountKind,
    AccountMargins,
    Conservation,
    MarketState,
    PositionColumns,
    PositionView,
)
from deleverage.errors import (
    HaltedError,
    InsufficientFundsError,
    InsufficientMarginError,
    StateError,
    ValidationError,
)
from deleverage.rules import margin as mm
from deleverage.spec import MarginMode, MarketSpec, check_finite, check_finite_positive
from deleverage.tolerance import GRID_RTOL, MARGIN_ATOL

_INF = float("inf")

if TYPE_CHECKING:
    from deleverage.engine.risk import Book
    from deleverage.rules.dynamic import RiskParameterPolicy
    from deleverage.rules.proactive import PredictiveDeleveraging, ProactiveMargin

Side = Literal["buyer", "seller"]


class Exchange(StakingOperations):
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
        unstake_cooldown_s: float = DEFAULT_UNSTAKE_COOLDOWN_S,
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

    _quiet_marks: QuietMarks | None = None

    @property
    def quiet_marks(self) -> QuietMarks:
        """The single-mark quiet fast path of :meth:`set_mark` (its ``enabled`` switch)."""
        if self._quiet_marks is None:  # also for engines rebuilt by replay
            self._quiet_marks = QuietMarks(self)
        return self._quiet_marks

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
        """Open ``count`` accounts at once; return their ids (see :mod:`deleverage.engine.bulk`)."""
        return bulk.open_accounts(self, count, kind=kind, margin_mode=margin_mode, ts_ns=ts_ns)

    def list_market(self, spec: MarketSpec, *, ts_ns: int | None = None) -> int:
        """List a market and return its id; its mark must be set before trading.

        An exchange's cash is in one currency, so every market it lists settles in the same
        asset: all linear (quote), or all inverse on one ``settlement_asset`` (a venue's
        USD-margined and coin-margined wallets are two exchanges, as Binance USDⓈ-M and
        COIN-M are two wallets).
        """
        ts = self._ts(ts_ns)
        if not isinstance(spec, MarketSpec):
            raise ValidationError("spec", type(spec).__name__, "must be a MarketSpec")
        if spec.symbol in self._market_ids:
            raise ValidationError("spec.symbol", spec.symbol, "must not be listed already")
        if self.markets and spec.settlement_asset != self.settlement_asset:
            have = self.settlement_asset or "quote (linear markets)"
            raise ValidationError(
                "spec.settlement_asset",
                spec.settlement_asset or "quote (linear)",
                f"must be the exchange's settlement currency {have}: an exchange's cash is in "
                "one currency, so cross margin never mixes currencies (list markets settled in "
                "another asset on their own Exchange)",
            )
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

    @property
    def settlement_asset(self) -> str | None:
        """The coin the exchange's cash is in (its inverse markets' ``settlement_asset``), or
        ``None`` for quote (linear markets, or nothing listed yet)."""
        return self.markets[0].spec.settlement_asset if self.markets else None

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

    def set_proactive_policy(
        self,
        market: MarketRef,
        *,
        margin: ProactiveMargin | None = None,
        deleveraging: PredictiveDeleveraging | None = None,
    ) -> None:
        """Act on reported predictions (:meth:`report_risk`) in a market: raise margin after a
        notice and grace period, reduce the positions most likely to be liquidated
        (:mod:`deleverage.rules.proactive`). Both None switch it off; the market's current
        spec is the base the raise scales. Not with dynamic margin on the same market.
        """
        from deleverage.engine.risk.proactive import ProactiveState

        m = self.market_id(market)
        risk = self.risk.markets[m]
        if margin is not None and risk.dynamic is not None:
            raise ValidationError("margin", "proactive", "cannot be combined with dynamic margin")
        if margin is None and deleveraging is None:
            risk.proactive = None
            return
        risk.proactive = ProactiveState(self, m, margin=margin, deleveraging=deleveraging)

    def report_risk(
        self,
        market: MarketRef,
        cascade_probability: float,
        *,
        accounts: npt.ArrayLike = (),
        probabilities: npt.ArrayLike = (),
        ts_ns: int | None = None,
    ) -> None:
        """Report a prediction to the market's proactive policy (:meth:`set_proactive_policy`).

        ``cascade_probability`` drives proactive margin; ``accounts`` and their predicted
        probabilities of liquidation pick whom predictive deleveraging reduces.

        Raises
        ------
        ValidationError
            If a probability is outside ``[0, 1]``, the arrays differ in length, an account is
            unknown, or the market has no proactive policy.
        """
        m = self.market_id(market)
        state = self.risk.markets[m].proactive
        if state is None:
            raise ValidationError("market", market, "has no proactive policy (set one first)")
        p = float(cascade_probability)
        if not 0.0 <= p <= 1.0:
            raise ValidationError("cascade_probability", cascade_probability, "must be in [0, 1]")
        ids = np.asarray(accounts, dtype=np.int64).reshape(-1)
        probs = np.asarray(probabilities, dtype=np.float64).reshape(-1)
        if len(ids) != len(probs):
            raise ValidationError("probabilities", len(probs), f"must match accounts ({len(ids)})")
        if len(probs) and not np.all((probs >= 0.0) & (probs <= 1.0)):
            raise ValidationError("probabilities", float(probs.min()), "must be in [0, 1]")
        if len(ids) and (ids.min() < 0 or ids.max() >= self._n):
            raise ValidationError("accounts", int(ids.max()), f"must be < {self._n}")
        state.report(self._ts(ts_ns), p, ids, probs)

    def adl_queue(self, market: MarketRef, side: int) -> pd.DataFrame:
        """The ADL queue of one market side: account, rank (1 = first), score, indicator (1-5).

        ``side`` is +1 for longs, -1 for shorts. Every open trader position on that side is
        ranked by the market's ADL score (``random_start`` and ``pro_rata`` markets show the
        ``pnl_leverage`` order, their queue being random or simultaneous); 5 lights mark the top
        fifth of the queue, as venues display it. Sizes are in the market's units (contracts
        for an inverse market, whose venue longs are the engine's shorts).
        """
        from deleverage.rules import adl as adl_math

        m = self.market_id(market)
        if side not in (1, -1):
            raise ValidationError("side", side, "must be +1 (longs) or -1 (shorts)")
        cols = self._positions[m]
        units = self.markets[m].units
        engine_side = -side if units.inverse else side
        n = self._n
        idx = np.flatnonzero(
            (self._kind[:n] == AccountKind.TRADER) & (np.sign(cols.size[:n]) == engine_side)
        )
        scores = self.risk.scores(m, idx) if len(idx) else np.zeros(0)
        return adl_math.queue_frame(idx, scores, sizes=units.venue_size(cols.size[idx]))

    def total_equity(self) -> FloatArray:
        """Every account's total equity at the current marks (quote, by account id), a fresh
        array: its cash plus, in each market, its isolated margin and unrealized PnL.

        ``margin_state()["total_equity"]`` bit for bit (the same operations in the same order,
        :func:`~deleverage.engine.kernels.add_total_equity_nb`) without the four cross arrays:
        a run's final equity over 10^6 accounts faults in one array instead of six.
        """
        n = self._n
        out = self._cash[:n].copy()
        for state, cols in zip(self.markets, self._positions, strict=True):
            add_total_equity_nb(cols.size[:n], cols.entry[:n], cols.isolated_margin[:n],
                                state.mark, out)  # fmt: skip
        return out

    def set_liquidity(self, market: MarketRef, model: Book | None) -> None:
        """Set the liquidity model that liquidation orders in a market execute against.

        ``None`` fills liquidations at the mark (infinite depth).
        """
        self.risk.markets[self.market_id(market)].liquidity = model

    def set_book_mid(self, market: MarketRef, price: float | None) -> None:
        """Set the mid of the venue's own book, where liquidation orders walk from.

        The mark (:meth:`set_mark`) decides who is liquidated; the book's mid decides the
        fills. ``None`` (the default) puts the book's mid at the mark.

        Raises
        ------
        ValidationError
            If ``price`` is not a finite number > 0.
        """
        m = self.market_id(market)
        if price is not None:
            if type(price) is not float or not 0.0 < price < _INF:  # NaN fails the test too
                price = check_finite_positive("price", price)  # the check, and its error
            if self.markets[m].units.inverse:  # ``units.engine_price`` inlined
                price = 1.0 / price
        self.risk.markets[m].book_mid = price

    def update_market_spec(
        self, market: MarketRef, spec: MarketSpec, *, ts_ns: int | None = None
    ) -> None:
        """Replace a market's risk parameters (dynamic margin); the symbol must not change."""
        m = self.market_id(market)
        ts = self._ts(ts_ns)
        old = self.markets[m].spec
        if spec.symbol != old.symbol:
            raise ValidationError("spec.symbol", spec.symbol, "must keep the market's symbol")
        for name in ("contract_type", "contract_value", "settlement_asset"):
            if getattr(spec, name) != getattr(old, name):
                raise ValidationError(
                    f"spec.{name}", getattr(spec, name), f"must keep the market's {name}"
                )
        self._emit_all([RiskParamsChanged(ts_ns=ts, market=m, spec_json=spec.to_json())])

    # ------------------------------------------------------------------ cash
    def deposit(self, account: int, amount: float, *, ts_ns: int | None = None) -> None:
        """Deposit cash (in the settlement currency) into an account."""
        a = self._check_account(account)
        value = check_finite_positive("amount", amount)
        ts = self._ts(ts_ns)
        self._emit_all([Deposit(ts_ns=ts, account=a, amount=value)])

    def deposit_many(
        self, accounts: npt.ArrayLike, amounts: npt.ArrayLike, *, ts_ns: int | None = None
    ) -> None:
        """Deposit into many accounts at once, all or nothing (see
        :mod:`deleverage.engine.bulk`)."""
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
        if ex_has_collateral(self):  # collateral credit is margin, not cash to withdraw
            allowed = min(allowed, quote_balance(self, a))
        if value > allowed + MARGIN_ATOL:
            raise InsufficientFundsError(
                f"`amount` must not exceed the withdrawable {allowed:.8f} "
                f"(cash and free collateral above initial margin) of account {a}, was {value}"
            )
        self._emit_all([Withdrawal(ts_ns=ts, account=a, amount=value)])

    def set_mark(self, market: MarketRef, price: float, *, ts_ns: int | None = None) -> None:
        """Set a market's mark price (the oracle update), quote per base."""
        m = self.market_id(market)
        # A float in (0, inf) passes at the cost of one comparison (every cascade round of a
        # run sets a mark); anything else gets the full check and its error.
        if type(price) is not float or not 0.0 < price < _INF:  # NaN fails the test too
            price = check_finite_positive("price", price)
        value = 1.0 / price if self.markets[m].units.inverse else price  # ``engine_price``
        ts = self._ts(ts_ns)
        version = self._version
        self._emit_mark(m, ts, value)  # ``_emit(MarkPrice(...))`` without the event object
        # A quiet mark takes the single-mark fast path (engine/quiet_mark.py), else the step.
        marks = self._quiet_marks
        quiet = (self.quiet_marks if marks is None else marks).step(m, ts, version)
        self.last_step = quiet if quiet is not None else self.risk.on_mark(m, ts)
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
        funding pushes under maintenance is liquidated at once. An inverse market's payment
        is ``-contracts x contract_value / mark x rate`` coin (the engine's size is short USD,
        so the engine applies ``-rate``).
        """
        m = self.market_id(market)
        value = check_finite("rate", rate)
        if abs(value) >= 1.0:
            raise ValidationError("rate", rate, "must be a fraction with |rate| < 1")
        if self.markets[m].units.inverse:
            value = -value
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
        if ex_has_collateral(self):  # collateral credit is margin, not cash to withdraw
            allowed = min(allowed, quote_balance(self, a))
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
        reason: FillReason = FillReason.TRADE,
    ) -> Fill:
        """Trade ``size`` base units at ``price`` between two accounts, charging fees.

        The taker pays ``taker_fee_rate`` and the maker ``maker_fee_rate`` of the notional
        (``taker=None``: both pay the maker rate). Opening or increasing a position requires
        initial margin afterwards; reducing never does. An isolated position is topped up to its
        initial margin from the account's cash. Either side failing a check rejects the trade
        whole, with the state unchanged. In an inverse market ``size`` is in contracts, fees
        and margins in the coin; the returned fill is in the venue's units (the journal holds
        the engine's, :mod:`deleverage.engine.contracts`). ``reason`` labels the fill in the
        journal (the engine's predictive deleveraging trades with ``FillReason.PREDICTIVE``).
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
        units = state.units
        fields = ("buyer", "seller")
        if units.inverse:  # a venue buyer is short USD on 1 / price: the engine's seller
            b, s, fields = s, b, ("seller", "buyer")
            taker = "seller" if taker == "buyer" else ("buyer" if taker == "seller" else None)
            qty, px = units.engine_amount(qty), units.engine_price(px)
        notional = qty * px
        maker_fee = notional * state.spec.maker_fee_rate
        taker_fee = notional * state.spec.taker_fee_rate
        buyer_fee = taker_fee if taker == "buyer" else maker_fee
        seller_fee = taker_fee if taker == "seller" else maker_fee
        events: list[Event] = []
        for account, delta, fee, field in (
            (b, qty, buyer_fee, fields[0]),
            (s, -qty, seller_fee, fields[1]),
        ):
            events.extend(self._plan_side(account, m, delta, px, fee, ts, field))
        fill = Fill(
            ts_ns=ts, market=m, buyer=b, seller=s, size=qty, price=px,
            buyer_fee=buyer_fee, seller_fee=seller_fee, reason=reason,
        )  # fmt: skip
        events.append(fill)
        done = self._emit_all(events)
        result = done[-1]
        assert isinstance(result, Fill)
        if units.inverse:
            return dataclasses.replace(
                result, buyer=result.seller, seller=result.buyer, size=float(size),
                price=float(price), buyer_fee=result.seller_fee, seller_fee=result.buyer_fee,
            )  # fmt: skip
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
        """Open many positions at once, all or nothing (:func:`.bulk.open_positions`).

        ``sizes`` (signed, long > 0) and ``prices`` are in the market's units (contracts and
        quote per base for an inverse market).
        """
        units = self.markets[self.market_id(market)].units
        if units.inverse:
            sizes, prices = bulk.engine_units(units, sizes, prices)
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

    @classmethod
    def replay(cls, journal: Journal, *, check_invariants: bool = False) -> Exchange:
        """Rebuild an engine by applying every event of a journal to a fresh state.

        See :mod:`deleverage.engine.replay`: the rebuilt arrays are bit-identical.
        """
        from deleverage.engine.replay import replay

        return replay(cls, journal, check_invariants=check_invariants)

    def events(self) -> Iterator[Event]:
        """Iterate over the journal's typed events."""
        return iter(self.journal)


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
