"""The engine side of proactive margin and predictive deleveraging (rules in
:mod:`deleverage.rules.proactive`).

The engine holds one :class:`ProactiveState` per market that has a policy; the caller reports
its prediction with :meth:`~deleverage.engine.exchange.Exchange.report_risk` (the engine never
imports a model). What the state does is journalled so that a replay rebuilds it:

- the announcement and a cancellation are ``MarginNotice`` notices to each affected account
  (an account whose margin ratio times the multiplier reaches the market's margin-call level);
- the raise and its lifting are ``RiskParamsChanged`` effects (the scaled spec, then the base
  spec), applied at the first report or mark at or after the end of the grace period;
- a reduction is an ordinary ``Fill`` (reason ``PREDICTIVE``) of the account against the
  book's makers at the book's price for that size, consuming the book's depth like any market
  order, the account paying the taker fee.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import numpy as np
import numpy.typing as npt

from deleverage.engine.events import FillReason, MarginNotice, RiskParamsChanged
from deleverage.engine.state import AccountKind
from deleverage.rules.dynamic import scale_spec
from deleverage.rules.proactive import (
    PredictiveDeleveraging,
    ProactiveMargin,
    positions_to_reduce,
)
from deleverage.spec import MarginMode, MarketSpec

if TYPE_CHECKING:
    from deleverage.engine.exchange import Exchange

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
_NS = 1_000_000_000
ANNOUNCED, CANCELLED = 1, 2


@dataclass
class ProactiveCounts:
    """What the policies did so far in one market."""

    announcements: int = 0
    notices: int = 0
    cancellations: int = 0
    raises: int = 0
    lifts: int = 0
    reductions: int = 0
    reduced_notional: float = 0.0
    reduced_accounts: set[int] = field(default_factory=set)


class ProactiveState:
    """Proactive margin and predictive deleveraging of one market (module docstring)."""

    def __init__(
        self,
        ex: Exchange,
        m: int,
        *,
        margin: ProactiveMargin | None,
        deleveraging: PredictiveDeleveraging | None,
    ) -> None:
        self.ex = ex
        self.m = m
        self.margin = margin
        self.deleveraging = deleveraging
        self.base_spec: MarketSpec = ex.markets[m].spec
        self.phase: Literal["idle", "pending", "raised"] = "idle"
        self.effective_ns = 0
        self.below_since_ns: int | None = None
        self.notified = np.zeros(0, dtype=np.int64)
        self.cooldown_until_ns: dict[int, int] = {}
        self.counts = ProactiveCounts()

    # ---------------------------------------------------------------- margin
    def report(
        self, ts: int, probability: float, accounts: IntArray, account_p: FloatArray
    ) -> None:
        """Advance the margin state on a reported cascade probability, then deleverage."""
        policy = self.margin
        if policy is not None:
            if self.phase == "idle" and probability >= policy.level:
                self._announce(ts, probability)
            elif self.phase == "pending" and probability < policy.release_level:
                self._notify(self.notified, ts, probability, CANCELLED)
                self.phase = "idle"
                self.counts.cancellations += 1
            elif self.phase == "raised":
                if probability >= policy.release_level:
                    self.below_since_ns = None
                else:
                    if self.below_since_ns is None:
                        self.below_since_ns = ts
                    if ts - self.below_since_ns >= int(policy.hold_s * _NS):
                        self._set_spec(ts, self.base_spec)
                        self.phase = "idle"
                        self.counts.lifts += 1
            self.on_mark(ts)
        rule = self.deleveraging
        if rule is not None and probability >= rule.level and len(accounts):
            self._deleverage(ts, accounts, account_p, rule)

    def on_mark(self, ts: int) -> None:
        """Apply an announced raise whose grace period is over."""
        if self.phase == "pending" and ts >= self.effective_ns and self.margin is not None:
            self._set_spec(ts, scale_spec(self.base_spec, self.margin.multiplier))
            self.phase = "raised"
            self.below_since_ns = None
            self.counts.raises += 1

    def _announce(self, ts: int, probability: float) -> None:
        assert self.margin is not None
        ids, ratio = self._open_positions()
        level = self.ex.markets[self.m].spec.liquidation.margin_call_ratio
        self.notified = ids[ratio * self.margin.multiplier >= level]
        self._notify(self.notified, ts, probability, ANNOUNCED)
        self.phase = "pending"
        self.effective_ns = ts + int(self.margin.grace_s * _NS)
        self.counts.announcements += 1

    def _notify(self, accounts: IntArray, ts: int, probability: float, action: int) -> None:
        assert self.margin is not None
        events = [
            MarginNotice(
                ts_ns=ts,
                account=int(a),
                market=self.m,
                action=action,
                probability=probability,
                multiplier=self.margin.multiplier,
                grace_s=self.margin.grace_s,
            )
            for a in accounts
        ]
        if events:
            self.ex._emit_all(events)
        self.counts.notices += len(events)

    def _set_spec(self, ts: int, spec: MarketSpec) -> None:
        self.ex._emit(RiskParamsChanged(ts_ns=ts, market=self.m, spec_json=spec.to_json()))

    def _open_positions(self) -> tuple[IntArray, FloatArray]:
        """Trader accounts with an open position, and each one's margin ratio (MM / equity)."""
        ex = self.ex
        n = ex.n_accounts
        cols = ex.columns(self.m)
        kinds = ex.state_arrays()["kind"]
        ids = np.flatnonzero((cols.size[:n] != 0.0) & (kinds == AccountKind.TRADER))
        return ids.astype(np.int64), self._ratios(ids.astype(np.int64))

    def _ratios(self, ids: IntArray) -> FloatArray:
        ex = self.ex
        isolated = ex.columns(self.m).mode[ids] == MarginMode.ISOLATED
        iso = ex.isolated_state(self.m)["margin_ratio"]
        cross = ex.cached_margin_state()["cross_margin_ratio"]
        return np.where(isolated, iso[ids], cross[ids]).astype(np.float64)

    # ---------------------------------------------------------------- deleveraging
    def _deleverage(
        self, ts: int, accounts: IntArray, account_p: FloatArray, rule: PredictiveDeleveraging
    ) -> None:
        ex = self.ex
        if ex.risk.halted(self.m):
            return
        size = ex.columns(self.m).size[accounts]
        open_ = size != 0.0
        accounts, account_p = accounts[open_], account_p[open_]
        cooling = np.array([self.cooldown_until_ns.get(int(a), -1) > ts for a in accounts])
        chosen = positions_to_reduce(
            account_p, self._ratios(accounts), account_level=rule.account_level,
            cooling=cooling.astype(bool) if len(accounts) else np.zeros(0, dtype=bool),
        )  # fmt: skip
        spec = ex.markets[self.m].spec
        risk = ex.risk.markets[self.m]
        order = np.argsort(-account_p[chosen], kind="stable")  # most likely first
        for a in accounts[chosen][order]:
            a = int(a)
            held = float(ex.columns(self.m).size[a])
            qty = math.floor(abs(held) * rule.fraction / spec.lot_size + 1e-9) * spec.lot_size
            if qty <= 0.0:
                continue
            side = 1 if held > 0 else -1
            mark = ex.markets[self.m].mark
            price, filled = ex.risk._execute(risk, -side, qty, mark, ts)
            filled = math.floor(filled / spec.lot_size + 1e-9) * spec.lot_size
            price = round(price / spec.tick_size) * spec.tick_size
            if filled <= 0.0 or price <= 0.0:
                continue
            maker = ex.liquidity_account
            buyer, seller = (maker, a) if side > 0 else (a, maker)
            ex.trade(
                self.m, buyer=buyer, seller=seller, size=filled, price=price,
                taker="seller" if side > 0 else "buyer", ts_ns=ts, reason=FillReason.PREDICTIVE,
            )  # fmt: skip
            self.cooldown_until_ns[a] = ts + int(rule.cooldown_s * _NS)
            self.counts.reductions += 1
            self.counts.reduced_notional += filled * price
            self.counts.reduced_accounts.add(a)
