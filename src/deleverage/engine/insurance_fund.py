"""The insurance fund: its own ledger, with staking.

An insurance fund takes in revenue (trading fees, liquidation penalties) and pays out the
shortfall of liquidations that fill beyond the bankruptcy price. What it cannot pay is the
engine's to take to the backstop or to ADL. This module keeps the fund's ledger; the engine
mirrors :attr:`InsuranceFund.balance` in the insurance account's cash and decides whether it
holds one fund per market or one shared fund (the class does not care).

Ownership is kept in *shares*, as in Drift's insurance fund staking
(https://docs.drift.trade/insurance-fund/insurance-fund-staking, program
``drift-labs/protocol-v2``, ``controller/insurance.rs``):

- every holder, the protocol included, owns shares; ``share price = balance / total shares``
  and a holder's value is ``shares x share price``, so the values always add up to the balance;
- a stake of ``amount`` mints ``amount x total_shares / balance`` shares (price 1 for the very
  first deposit), so it does not change the price;
- a revenue inflow is split: ``protocol_share`` of it buys new shares for the protocol, the rest
  is added to the balance without new shares, raising the price for every holder pro rata
  (Drift's worked example: a $30 settlement, half to the protocol, the other $15 shared 10:5 by
  holders of $10,000 and $5,000);
- a loss (a covered shortfall) lowers the balance and so the price: stakers bear it pro rata;
- unstaking is a request in shares, then a cooldown (13 days at Drift), then the withdrawal,
  paid at ``min(value at request, value now)``: a loss during the cooldown is the unstaker's,
  a gain is forgone and stays with the remaining holders. Cancelling a request also forfeits
  the gain since the request (Drift ``calculate_if_shares_lost``).

Every flow is an immutable :class:`FundRecord` in :attr:`InsuranceFund.history`, so
``balance == sum(record.amount)``. The 8-hour drawdown rule of Bybit's ADL alert
(https://bybit-exchange.github.io/docs/v5/market/adl-alert) is evaluated from that history by
:meth:`InsuranceFund.drawdown_over_window` and :meth:`InsuranceFund.drawdown_alert`.

Money and shares are float64. The ledger adds up to a relative 1e-9 or better for amounts in the
normal float range; subnormal amounts (below about 1e-308 quote) keep no relative precision.

Formulas, sources and worked examples: docs/formulas.md, "Insurance fund".
"""

from __future__ import annotations

import importlib
import math
from bisect import bisect_right
from collections.abc import Mapping
from typing import Any, Self

import numpy as np

from deleverage.engine.fund_records import (
    COVER_KINDS,
    DEFAULT_DRAWDOWN_ALERT_FRACTION,
    DEFAULT_DRAWDOWN_WINDOW_S,
    DEFAULT_UNSTAKE_COOLDOWN_S,
    NS_PER_S,
    PNL_KINDS,
    RECEIVE_KINDS,
    Amounts,
    FlowKind,
    FundRecord,
    Ref,
    Refs,
    StakerId,
    UnstakeRequest,
    as_ts,
    batch_ref,
    check_positive,
    check_staker_id,
    flow_kind,
)
from deleverage.engine.fund_snapshot import fund_snapshot, restore_fund
from deleverage.errors import (
    CooldownError,
    InsufficientFundsError,
    InvariantError,
    StateError,
    UnknownEntityError,
    ValidationError,
)
from deleverage.rules.insurance import (
    _check_nonnegative,
    _kept_on_cancel,
    _mint,
    shares_for_deposit,
    shares_forfeited_on_cancel,
    unstake_payout,
    value_of_shares,
)
from deleverage.tolerance import CONSERVATION_RTOL

__all__ = [
    "DEFAULT_DRAWDOWN_ALERT_FRACTION",
    "DEFAULT_DRAWDOWN_WINDOW_S",
    "DEFAULT_UNSTAKE_COOLDOWN_S",
    "FlowKind",
    "FundRecord",
    "InsuranceFund",
    "Ref",
    "StakerId",
    "UnstakeRequest",
    "shares_for_deposit",
    "shares_forfeited_on_cancel",
    "unstake_payout",
    "value_of_shares",
]

# --------------------------------------------------------------------------------------------
# The fund


class InsuranceFund:
    """The ledger of one insurance fund, with staking and a drawdown alert.

    Parameters
    ----------
    name
        A label (a market symbol, or a pool name for a shared fund).
    protocol_share
        Fraction in ``[0, 1]`` of each fee or liquidation-penalty inflow that buys shares for
        the protocol; the rest accrues to all holders through the share price (Drift: "each
        revenue settlement is split between Insurance Fund Stakers and a protocol-owned
        portion", half in their example).
    unstake_cooldown_s
        Seconds between an unstake request and the withdrawal (Drift: 13 days,
        :data:`DEFAULT_UNSTAKE_COOLDOWN_S`).
    drawdown_window_s
        Window of the drawdown alert (Bybit: 8 hours).
    drawdown_alert_fraction
        Drawdown, as a fraction of the window's maximum balance, at or beyond which the alert
        fires (Bybit ``insurancePnlRatio`` -0.3, so 0.3).
    drawdown_min_balance
        The alert only applies while the balance is above this (Bybit ``adlTriggerThreshold``;
        their worked example uses 1, their API example 10000).

    Notes
    -----
    Invariants, checked by :meth:`check_invariants`: ``balance == sum of history amounts``;
    ``sum of stakers' values + protocol value == balance``; shares outstanding if and only if
    the balance is positive. When a cover takes the whole balance every share is worthless and
    is cancelled, pending unstake requests lapse, and the next inflow starts afresh at price 1.

    Timestamps must not go backwards from one recorded operation to the next. No method applies
    part of a change: a call that raises leaves the fund as it was.

    Examples
    --------
    Drift's worked example (docs.drift.trade, "Insurance Fund Staking"):

    >>> fund = InsuranceFund("USDC", protocol_share=0.5, unstake_cooldown_s=13 * 86400)
    >>> fund.stake("others", 5_000.0, 0, available_cash=5_000.0)
    5000.0
    >>> fund.stake("you", 10_000.0, 0, available_cash=10_000.0)
    10000.0
    >>> fund.receive(30.0, 3_600 * 10**9, kind="fee_inflow")
    >>> round(fund.staker_value("you"), 9), round(fund.staker_value("others"), 9)
    (10010.0, 5005.0)
    >>> round(fund.protocol_value, 9)
    15.0
    """

    def __init__(
        self,
        name: str,
        *,
        protocol_share: float,
        unstake_cooldown_s: float,
        drawdown_window_s: float = DEFAULT_DRAWDOWN_WINDOW_S,
        drawdown_alert_fraction: float = DEFAULT_DRAWDOWN_ALERT_FRACTION,
        drawdown_min_balance: float = 0.0,
    ) -> None:
        if not isinstance(name, str) or not name:
            raise ValidationError("name", name, "must be a non-empty string")
        _check_nonnegative("protocol_share", protocol_share)
        if protocol_share > 1.0:
            raise ValidationError("protocol_share", protocol_share, "must be in [0, 1]")
        _check_nonnegative("unstake_cooldown_s", unstake_cooldown_s)
        _check_nonnegative("drawdown_window_s", drawdown_window_s)
        if drawdown_window_s == 0.0:
            raise ValidationError("drawdown_window_s", drawdown_window_s, "must be > 0")
        _check_nonnegative("drawdown_alert_fraction", drawdown_alert_fraction)
        if not 0.0 < drawdown_alert_fraction <= 1.0:
            raise ValidationError(
                "drawdown_alert_fraction", drawdown_alert_fraction, "must be in (0, 1]"
            )
        _check_nonnegative("drawdown_min_balance", drawdown_min_balance)
        self.name = name
        self.protocol_share = float(protocol_share)
        self.unstake_cooldown_s = float(unstake_cooldown_s)
        self.drawdown_window_s = float(drawdown_window_s)
        self.drawdown_alert_fraction = float(drawdown_alert_fraction)
        self.drawdown_min_balance = float(drawdown_min_balance)
        self._cooldown_ns = round(self.unstake_cooldown_s * NS_PER_S)
        self._window_ns = round(self.drawdown_window_s * NS_PER_S)
        self._balance = 0.0
        self._total_shares = 0.0
        self._protocol_shares = 0.0
        self._shares: dict[StakerId, float] = {}
        self._requests: dict[StakerId, UnstakeRequest] = {}
        self._history: list[FundRecord] = []
        # Columns of the history kept for the drawdown window (bisect on time).
        self._ts: list[int] = []
        self._pnl_after: list[float] = []
        self._balance_after: list[float] = []
        self._pnl = 0.0

    def __repr__(self) -> str:
        return (
            f"InsuranceFund({self.name!r}, balance={self._balance!r}, "
            f"total_shares={self._total_shares!r}, stakers={len(self._shares)})"
        )

    # ---------------------------------------------------------------------------- views

    @property
    def balance(self) -> float:
        """Fund balance in quote."""
        return self._balance

    @property
    def total_shares(self) -> float:
        """Shares outstanding, the protocol's included."""
        return self._total_shares

    @property
    def share_price(self) -> float:
        """``balance / total_shares`` in quote per share; 1 while no shares exist."""
        if self._total_shares == 0.0:
            return 1.0
        return self._balance / self._total_shares

    @property
    def protocol_shares(self) -> float:
        """Shares owned by the protocol."""
        return self._protocol_shares

    @property
    def protocol_value(self) -> float:
        """Quote value of the protocol's shares."""
        return self._value(self._protocol_shares)

    @property
    def stakers(self) -> tuple[StakerId, ...]:
        """Stakers holding shares, in the order they first staked."""
        return tuple(self._shares)

    @property
    def history(self) -> tuple[FundRecord, ...]:
        """Every record, oldest first."""
        return tuple(self._history)

    @property
    def cumulative_pnl(self) -> float:
        """Sum of the fund's PnL records (everything but staking flows), quote."""
        return self._pnl

    def staker_shares(self, staker_id: StakerId) -> float:
        """Shares held by a staker (0 for a staker without shares)."""
        return self._shares.get(staker_id, 0.0)

    def staker_value(self, staker_id: StakerId) -> float:
        """``shares x share price``: the staker's part of the balance, pending request included.

        These values and :attr:`protocol_value` add up to the balance. What an unstake would
        pay can be less: see :meth:`withdrawable_value`.
        """
        return self._value(self._shares.get(staker_id, 0.0))

    def withdrawable_value(self, staker_id: StakerId) -> float:
        """Value net of gains forfeited by a pending request.

        ``(shares - requested) x price + min(request value, requested x price)`` (Drift SDK
        ``unstakeSharesToAmountWithOpenRequest``).
        """
        shares = self._shares.get(staker_id, 0.0)
        request = self._requests.get(staker_id)
        if request is None:
            return self._value(shares)
        free = self._value(max(shares - request.shares, 0.0))
        return free + min(request.value, self._value(request.shares))

    def pending_unstake(self, staker_id: StakerId) -> UnstakeRequest | None:
        """The staker's pending unstake request, if any."""
        return self._requests.get(staker_id)

    def history_frame(self) -> Any:
        """The history as a pandas DataFrame, one row per record, columns of :class:`FundRecord`.

        ``kind`` holds the kind's name (``"fee_inflow"``, ...).
        """
        pd: Any = importlib.import_module("pandas")  # typed Any: the project has no pandas stubs
        records = self._history
        return pd.DataFrame(
            {
                "ts_ns": pd.Series([r.ts_ns for r in records], dtype="int64"),
                "kind": pd.Series([r.kind.value for r in records], dtype=object),
                "amount": pd.Series([r.amount for r in records], dtype="float64"),
                "balance_after": pd.Series([r.balance_after for r in records], dtype="float64"),
                "ref": pd.Series([r.ref for r in records], dtype=object),
                "shares": pd.Series([r.shares for r in records], dtype="float64"),
            }
        )

    # ---------------------------------------------------------------------------- flows

    def receive(
        self,
        amount: float,
        ts_ns: int,
        *,
        kind: FlowKind | str = FlowKind.FEE_INFLOW,
        ref: Ref = None,
    ) -> None:
        """Take in revenue.

        For ``fee_inflow`` and ``liquidation_penalty`` (both feed Drift's revenue pool), with
        ``p = protocol_share``::

            balance += (1 - p) x amount                 # raises the price for every holder
            protocol_shares += p x amount x total_shares / balance
            balance += p x amount                       # at that new price

        so the holders (the protocol included) share ``(1 - p) x amount`` pro rata and the
        protocol's new shares are worth exactly ``p x amount``. ``protocol_revenue`` is the
        protocol's own money (its seed capital, say) and buys protocol shares in full. Two
        records are written for a split inflow: the holders' part under ``kind``, then the
        protocol's cut as ``protocol_revenue``. A zero amount records nothing.

        Raises
        ------
        ValidationError
            A negative or non-finite amount, a kind that is not an inflow, or a timestamp
            before the last record.
        """
        flow = flow_kind(kind, RECEIVE_KINDS, "kind")
        _check_nonnegative("amount", amount)
        self.receive_checked(float(amount), ts_ns, flow, ref)

    def receive_checked(self, amount: float, ts_ns: int, flow: FlowKind, ref: Ref) -> None:
        """:meth:`receive` of an amount and kind known to pass its checks (a float >= 0, an
        inflow kind): the engine's batch path, which sums its penalties first. The time is
        still checked."""
        ts = self._check_ts(ts_ns)
        if amount == 0.0:
            return
        protocol_cut = amount if flow is FlowKind.PROTOCOL_REVENUE else amount * self.protocol_share
        holders_part = amount - protocol_cut
        if holders_part > 0.0:
            balance = self._balance + holders_part
            self._balance = balance
            if self._total_shares == 0.0:
                self._protocol_shares = self._total_shares = balance
            # ``_append``'s record and ``_push``'s lists, inlined (the batch path's record of
            # a round's penalties, once a round): an inflow kind is a profit-and-loss kind
            self._pnl += holders_part
            self._history.append(FundRecord(ts, flow, holders_part, balance, ref, 0.0))
            self._ts.append(ts)
            self._pnl_after.append(self._pnl)
            self._balance_after.append(balance)
        if protocol_cut > 0.0:
            minted = _mint(protocol_cut, self._total_shares, self._balance)
            self._protocol_shares += minted
            self._total_shares += minted
            self._balance += protocol_cut
            self._append(ts, FlowKind.PROTOCOL_REVENUE, protocol_cut, ref, minted)

    def receive_many(
        self, amounts: Amounts, ts_ns: int, *, kind: FlowKind | str, refs: Refs
    ) -> None:
        """:meth:`receive` many inflows of one kind at one time, as one inflow of their sum.

        The ledger gets one record (its ``ref`` names how many accounts paid; the engine's
        journal keeps each transfer): the engine's batch path for thousands of liquidation
        penalties in one step. The protocol's cut applies to the sum.
        """
        values = np.asarray(amounts, dtype=np.float64)
        bad = ~np.isfinite(values) | (values < 0.0)
        if bad.any():
            k = int(np.flatnonzero(bad)[0])
            raise ValidationError(f"amounts[{k}]", float(values[k]), "must be finite and >= 0")
        if len(amounts) != len(refs):
            raise ValidationError("refs", len(refs), f"must have {len(amounts)} entries")
        total = math.fsum(values.tolist())
        if total == 0.0:
            return
        self.receive(total, ts_ns, kind=kind, ref=batch_ref(refs))

    def cover(
        self,
        shortfall: float,
        ts_ns: int,
        *,
        ref: Ref = None,
        kind: FlowKind | str = FlowKind.COVER_SHORTFALL,
    ) -> float:
        """Pay up to the balance towards a shortfall; return what was paid.

        ``paid = min(shortfall, balance)``; the remaining ``shortfall - paid`` is the engine's
        to take to the backstop or ADL. The payment lowers the share price, so stakers and the
        protocol bear it pro rata. Paying the whole balance cancels every share (all are
        worthless) and lets pending unstake requests lapse. ``kind="loss"`` records a write-down
        that is not a liquidation shortfall.

        Raises
        ------
        ValidationError
            A negative or non-finite shortfall, a kind other than ``cover_shortfall`` or
            ``loss``, or a timestamp before the last record.
        """
        flow = flow_kind(kind, COVER_KINDS, "kind")
        _check_nonnegative("shortfall", shortfall)
        ts = self._check_ts(ts_ns)
        return self._cover_one(float(shortfall), ts, ref, flow)

    def cover_many(self, shortfalls: Amounts, ts_ns: int, refs: Refs) -> list[float]:
        """Cover many shortfalls at one time, in order; return what each was paid.

        Each is paid ``min(shortfall, what is left)`` as one-by-one :meth:`cover` calls would,
        but the ledger gets one ``cover_shortfall`` record for the batch (its ``ref`` names how
        many accounts; the engine's journal keeps each account's transfer). This is the
        engine's batch path for thousands of liquidations in one step.
        """
        values = np.asarray(shortfalls, dtype=np.float64)
        bad = ~np.isfinite(values) | (values < 0.0)
        if bad.any():
            k = int(np.flatnonzero(bad)[0])
            raise ValidationError(f"shortfalls[{k}]", float(values[k]), "must be finite and >= 0")
        if len(shortfalls) != len(refs):
            raise ValidationError("refs", len(refs), f"must have {len(shortfalls)} entries")
        ts = self._check_ts(ts_ns)
        # Paid in order until the balance runs out: the running total capped at the balance.
        capped = np.minimum(np.cumsum(values), max(self._balance, 0.0))
        paid = np.diff(capped, prepend=0.0)
        result: list[float] = paid.tolist()
        total = math.fsum(result)
        if total > 0.0:
            self._cover_one(total, ts, batch_ref(refs), FlowKind.COVER_SHORTFALL)
        return result

    def _cover_one(self, shortfall: float, ts: int, ref: Ref, flow: FlowKind) -> float:
        paid = min(shortfall, self._balance)
        if paid <= 0.0:
            return 0.0
        # Paying all but float dust of the balance depletes the fund: a batch of covers summed
        # and the same covers one by one (a replay) must agree on it.
        depleted = paid >= self._balance * (1.0 - 1e-12)
        if depleted:
            paid = self._balance
        self._balance = 0.0 if depleted else self._balance - paid
        if depleted or self._balance <= 0.0:
            self._wipe_shares()
        self._append(ts, flow, -paid, ref, 0.0)
        return paid

    # ---------------------------------------------------------------------------- staking

    def stake(
        self, staker_id: StakerId, amount: float, ts_ns: int, *, available_cash: float
    ) -> float:
        """Deposit ``amount`` for ``staker_id``; return the shares minted.

        ``shares = amount x total_shares / balance`` (:func:`shares_for_deposit`). The engine
        passes the staker's free cash as ``available_cash`` and moves the cash itself after
        this call succeeds.

        Raises
        ------
        InsufficientFundsError
            ``amount > available_cash``.
        StateError
            The staker has a pending unstake request (Drift: "withdraw request in progress").
        ValidationError
            A non-positive or non-finite amount, a bad staker id or timestamp.
        """
        check_staker_id(staker_id)
        check_positive("amount", amount)
        _check_nonnegative("available_cash", available_cash, allow_inf=True)
        ts = self._check_ts(ts_ns)
        if staker_id in self._requests:
            raise StateError(
                f"fund {self.name!r}: staker {staker_id!r} has a pending unstake request; "
                "cancel it or wait for the withdrawal before staking again"
            )
        if amount > available_cash:
            raise InsufficientFundsError(
                f"fund {self.name!r}: stake of {amount!r} by staker {staker_id!r} exceeds "
                f"its available cash {available_cash!r}"
            )
        amount = float(amount)
        minted = _mint(amount, self._total_shares, self._balance)
        self._shares[staker_id] = self._shares.get(staker_id, 0.0) + minted
        self._total_shares += minted
        self._balance += amount
        self._append(ts, FlowKind.STAKE, amount, staker_id, minted)
        return minted

    def request_unstake(self, staker_id: StakerId, shares: float, ts_ns: int) -> float:
        """Ask to unstake ``shares``; start the cooldown; return their value now.

        The value now is remembered: the withdrawal pays at most that. Until then the shares
        stay in the fund and bear its losses (Drift: "the staked amount ... is liable for user
        deficit resolution"). One request per staker at a time.

        Raises
        ------
        UnknownEntityError
            The staker holds no shares.
        StateError
            A request is already pending.
        ValidationError
            Non-positive shares, more shares than the staker holds, or a bad timestamp.
        """
        held = self._held(staker_id)
        check_positive("shares", shares)
        ts = self._check_ts(ts_ns)
        if shares > held:
            raise ValidationError("shares", shares, f"must be <= the staker's {held!r} shares")
        if staker_id in self._requests:
            raise StateError(
                f"fund {self.name!r}: staker {staker_id!r} already has a pending unstake request"
            )
        shares = float(shares)
        value = self._value(shares)
        self._requests[staker_id] = UnstakeRequest(shares, value, ts)
        self._append(ts, FlowKind.UNSTAKE_REQUEST, 0.0, staker_id, shares)
        return value

    def cancel_unstake(self, staker_id: StakerId, ts_ns: int) -> float:
        """Cancel the pending request; return the shares forfeited.

        A gain of the requested shares since the request is forfeited to the other holders
        (:func:`shares_forfeited_on_cancel`); a loss stays with the staker.

        Raises
        ------
        UnknownEntityError
            The staker holds no shares.
        StateError
            No request is pending.
        ValidationError
            A bad timestamp.
        """
        self._held(staker_id)
        ts = self._check_ts(ts_ns)
        request = self._pending(staker_id)
        held = self._shares[staker_id]
        free = held - request.shares
        # The other shares, summed holder by holder: ``T - n`` from the running total would lose
        # every digit when nearly all shares are requested.
        others = math.fsum(
            [self._protocol_shares, free, *(s for k, s in self._shares.items() if k != staker_id)]
        )
        kept, to_protocol = _kept_on_cancel(request.shares, request.value, others, self._balance)
        del self._requests[staker_id]
        lost = request.shares - kept
        if lost > 0.0:
            self._shares[staker_id] = free + kept
            self._protocol_shares += to_protocol
            self._total_shares = self._sum_shares()
        self._append(ts, FlowKind.UNSTAKE_CANCEL, 0.0, staker_id, -lost)
        return lost

    def unstake(self, staker_id: StakerId, ts_ns: int) -> float:
        """Withdraw the requested shares after the cooldown; return the amount paid.

        ``paid = min(value at request, requested shares x share price)``
        (:func:`unstake_payout`). The engine credits ``paid`` to the staker's cash.

        Raises
        ------
        UnknownEntityError
            The staker holds no shares.
        StateError
            No request is pending.
        CooldownError
            The cooldown has not elapsed; the message gives the time left.
        ValidationError
            A bad timestamp.
        """
        self._held(staker_id)
        ts = self._check_ts(ts_ns)
        request = self._pending(staker_id)
        elapsed_ns = ts - request.ts_ns
        if elapsed_ns < self._cooldown_ns:
            left_s = (self._cooldown_ns - elapsed_ns) / NS_PER_S
            raise CooldownError(
                f"fund {self.name!r}: unstake of staker {staker_id!r} is in cooldown, "
                f"{left_s:.3f} s left (requested at ts_ns={request.ts_ns}, "
                f"cooldown {self.unstake_cooldown_s:.3f} s)"
            )
        paid = min(request.value, self._value(request.shares), self._balance)
        del self._requests[staker_id]
        remaining = self._shares[staker_id] - request.shares
        if remaining > 0.0:
            self._shares[staker_id] = remaining
        else:
            del self._shares[staker_id]
        self._total_shares = self._sum_shares()
        self._balance -= paid
        if self._balance <= 0.0:
            self._balance = 0.0
            self._wipe_shares()
        elif self._total_shares <= 0.0:
            # The last holder left a forgone gain behind: the protocol owns it.
            self._shares.clear()
            self._protocol_shares = self._total_shares = self._balance
        self._append(ts, FlowKind.UNSTAKE, -paid, staker_id, -request.shares)
        return paid

    # ---------------------------------------------------------------------------- drawdown

    def drawdown_over_window(self, ts_ns: int) -> tuple[float, float]:
        """The fund's loss over the window ending at ``ts_ns``, in quote and as a fraction.

        Bybit (ADL alert, "Contract PnL drawdown"): ``pnlRatio = (current PnL - 8h max PnL) /
        8h max balance``. Here PnL is the fund's cumulative PnL (every record but the staking
        flows), so ``loss = max PnL over [ts - window, ts] - PnL at ts`` (``>= 0``) and
        ``fraction = loss / max balance over the window`` (0 when that is 0). The levels
        carried into the window from before its start count. Only records at or before
        ``ts_ns`` are used, so past times can be queried.
        """
        ts = as_ts(ts_ns)
        hi = bisect_right(self._ts, ts)
        if hi == 0:
            return 0.0, 0.0
        lo = bisect_right(self._ts, ts - self._window_ns)
        start = lo - 1 if lo > 0 else 0
        max_pnl = max(self._pnl_after[start:hi])
        max_balance = max(self._balance_after[start:hi])
        if lo == 0:  # the window starts before the first record: the empty fund counts
            max_pnl = max(max_pnl, 0.0)
        loss = max(max_pnl - self._pnl_after[hi - 1], 0.0)
        fraction = loss / max_balance if max_balance > 0.0 else 0.0
        return loss, fraction

    def drawdown_alert(self, ts_ns: int) -> bool:
        """Bybit's PnL-drawdown ADL trigger, evaluated at ``ts_ns``.

        True when ``balance > drawdown_min_balance`` (Bybit ``adlTriggerThreshold``) and the
        window's drawdown fraction is at least ``drawdown_alert_fraction`` (Bybit
        ``insurancePnlRatio``, -0.3). Bybit states the rule with a strict ``<`` but its second
        worked example triggers at exactly -30%; this follows the example (``>=``). The other
        Bybit trigger, a balance at or below zero, is :attr:`depleted`.
        """
        ts = as_ts(ts_ns)
        hi = bisect_right(self._ts, ts)
        if hi == 0:
            return False
        _, fraction = self.drawdown_over_window(ts)
        return (
            self._balance_after[hi - 1] > self.drawdown_min_balance
            and fraction >= self.drawdown_alert_fraction
        )

    @property
    def depleted(self) -> bool:
        """True when the balance is 0 (Bybit's "insurance pool balance <= 0" ADL trigger)."""
        return self._balance <= 0.0

    # ---------------------------------------------------------------------------- snapshots

    def snapshot(self) -> dict[str, Any]:
        """The full state as plain JSON-compatible data; :meth:`from_snapshot` restores it."""
        return fund_snapshot(self)

    @classmethod
    def from_snapshot(cls, data: Mapping[str, Any]) -> Self:
        """Rebuild a fund from :meth:`snapshot` output (:func:`engine.fund_snapshot.restore_fund`).

        Raises
        ------
        ValidationError
            A missing key, another snapshot version, or a malformed entry.
        """
        return restore_fund(cls, data)

    # ---------------------------------------------------------------------------- invariants

    def check_invariants(self, rtol: float = CONSERVATION_RTOL) -> None:
        """Raise :class:`InvariantError` unless the ledger adds up (up to ``rtol``).

        Checks: ``balance >= 0``; ``balance == sum of history amounts``; total shares equal the
        protocol's plus the stakers'; the holders' values add up to the balance; shares exist
        exactly when the balance is positive; requests do not exceed the staker's shares.
        """
        scale = math.fsum(abs(r.amount) for r in self._history) + abs(self._balance)
        atol = rtol * max(scale, 1.0)
        if self._balance < 0.0:
            raise InvariantError(f"fund {self.name!r}: negative balance {self._balance!r}")
        flows = math.fsum(r.amount for r in self._history)
        if abs(flows - self._balance) > atol:
            raise InvariantError(
                f"fund {self.name!r}: balance {self._balance!r} != sum of history {flows!r}"
            )
        held = math.fsum([self._protocol_shares, *self._shares.values()])
        if abs(held - self._total_shares) > rtol * max(self._total_shares, 1.0):
            raise InvariantError(
                f"fund {self.name!r}: total shares {self._total_shares!r} != held {held!r}"
            )
        values = math.fsum(self._value(s) for s in [self._protocol_shares, *self._shares.values()])
        if abs(values - self._balance) > atol:
            raise InvariantError(
                f"fund {self.name!r}: holders' values {values!r} != balance {self._balance!r}"
            )
        if (self._total_shares > 0.0) != (self._balance > 0.0):
            raise InvariantError(
                f"fund {self.name!r}: shares {self._total_shares!r} with balance {self._balance!r}"
            )
        for sid, request in self._requests.items():
            if request.shares > self._shares.get(sid, 0.0) * (1.0 + rtol):
                raise InvariantError(
                    f"fund {self.name!r}: staker {sid!r} requested {request.shares!r} shares, "
                    f"holds {self._shares.get(sid, 0.0)!r}"
                )

    # ---------------------------------------------------------------------------- private

    def _sum_shares(self) -> float:
        return math.fsum([self._protocol_shares, *self._shares.values()])

    def _value(self, shares: float) -> float:
        if self._total_shares == 0.0:
            return 0.0
        return shares * self._balance / self._total_shares

    def _held(self, staker_id: StakerId) -> float:
        check_staker_id(staker_id)
        held = self._shares.get(staker_id)
        if held is None:
            known = ", ".join(repr(s) for s in self._shares) or "none"
            raise UnknownEntityError("staker", staker_id, known)
        return held

    def _pending(self, staker_id: StakerId) -> UnstakeRequest:
        request = self._requests.get(staker_id)
        if request is None:
            raise StateError(
                f"fund {self.name!r}: staker {staker_id!r} has no pending unstake request"
            )
        return request

    def _check_ts(self, ts_ns: int) -> int:
        ts = as_ts(ts_ns)
        if self._ts and ts < self._ts[-1]:
            raise ValidationError(
                "ts_ns", ts, f"must not precede the last record (ts_ns={self._ts[-1]})"
            )
        return ts

    def _wipe_shares(self) -> None:
        self._total_shares = 0.0
        self._protocol_shares = 0.0
        self._shares.clear()
        self._requests.clear()

    def _append(self, ts: int, kind: FlowKind, amount: float, ref: Ref, shares: float) -> None:
        self._push(FundRecord(ts, kind, amount, self._balance, ref, shares))

    def _push(self, record: FundRecord) -> None:
        if record.kind in PNL_KINDS:
            self._pnl += record.amount
        self._history.append(record)
        self._ts.append(record.ts_ns)
        self._pnl_after.append(self._pnl)
        self._balance_after.append(record.balance_after)
