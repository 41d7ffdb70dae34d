"""The risk step: what happens on each mark update.

DESIGN.md's flow, per market and mark price::

    mark -> circuit breaker -> dynamic margin -> margin calls
         -> accounts below maintenance (isolated positions in the market; cross accounts
            exposed to it), most distressed first, within per-step caps
         -> how much to close (full, partial to a target, fixed fraction, tier down)
         -> backstop takeover (equity below a fraction of maintenance), or
            execution on the liquidity model / to the liquidator at the fillable price
         -> penalty to the insurance fund, capped so it never makes the account bankrupt
         -> fill beyond the bankruptcy price: the fund covers the shortfall; if it cannot,
            the position goes to ADL at the bankruptcy price instead (ranked queue,
            pro-rata), or the loss is socialized; what is left is recorded as bad debt.

Every effect is an event emitted through the engine, so replay reproduces it. The pool of a
position is the equity that backs it: the isolated margin plus unrealized PnL for an isolated
position, the account's cross equity for a cross position.
"""

from __future__ import annotations

import json
import math
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import numpy.typing as npt

from deleverage import adl as adl_math
from deleverage import liquidation as liq
from deleverage import margin as mm
from deleverage.events import (
    AdlRound,
    BadDebt,
    CircuitBreaker,
    Fill,
    FillReason,
    Liquidation,
    MarginCall,
    Transfer,
    TransferReason,
)
from deleverage.spec import MarginMode, MarketSpec

if TYPE_CHECKING:
    from deleverage.exchange import Exchange

FloatArray = npt.NDArray[np.float64]

_POLICY_CODES = {"full": 0, "partial": 1, "fixed_fraction": 2, "tier_down": 3}
_NS = 1_000_000_000
_MAX_ROUNDS = 8  # liquidation passes per step over accounts still below maintenance


class Book(Protocol):
    """What the risk step needs of a liquidity model (see :mod:`deleverage.liquidity`)."""

    def quote(self, side: int, size: float, mid: float, ts_ns: int) -> Any: ...

    def execute(self, side: int, size: float, mid: float, ts_ns: int) -> Any: ...


@dataclass
class MarketRisk:
    """Runtime risk state of one market (not part of the ledger)."""

    liquidity: Book | None = None
    breaker_halted: bool = False
    breaker_since_ns: int = 0
    marks: deque[tuple[int, float]] = field(default_factory=deque)
    cooldown_until_ns: dict[int, int] = field(default_factory=dict)
    margin_called: set[int] = field(default_factory=set)


@dataclass
class StepReport:
    """What one risk step did (quote amounts, base sizes)."""

    market: int
    ts_ns: int
    liquidations: int = 0
    liquidated_notional: float = 0.0
    penalties: float = 0.0
    shortfall: float = 0.0
    insurance_paid: float = 0.0
    adl_rounds: int = 0
    adl_notional: float = 0.0
    socialized_loss: float = 0.0
    backstop_takeovers: int = 0
    bad_debt: float = 0.0
    margin_calls: int = 0
    halted: bool = False


class RiskEngine:
    """Runs the liquidation / insurance / ADL step of an :class:`Exchange` on mark updates."""

    def __init__(self, exchange: Exchange, *, seed: int = 0) -> None:
        self.ex = exchange
        self.markets: list[MarketRisk] = []
        self.rng = np.random.default_rng(seed)
        self.reports: list[StepReport] = []

    def add_market(self) -> None:
        self.markets.append(MarketRisk())

    # ------------------------------------------------------------------ entry point
    def on_mark(self, m: int, ts: int) -> StepReport:
        """Run the risk step of market ``m`` after its mark was set at ``ts``."""
        report = StepReport(market=m, ts_ns=ts)
        ex = self.ex
        state = ex.markets[m]
        risk = self.markets[m]
        if self._circuit_breaker(m, ts, state.mark, state.spec):
            report.halted = True
            self.reports.append(report)
            return report
        if risk.liquidity is not None and hasattr(risk.liquidity, "recover"):
            risk.liquidity.recover(ts)
        report.margin_calls = self._margin_calls(m, ts)
        caps = _Caps(state.spec)
        for _ in range(_MAX_ROUNDS):
            candidates = self._candidates(m)
            if len(candidates) == 0:
                break
            progressed = False
            for a, isolated in candidates:
                if caps.market_exhausted:
                    break
                if self._liquidate(a, m, isolated, ts, report, caps):
                    progressed = True
            if not progressed or caps.market_exhausted:
                break
        self.reports.append(report)
        return report

    # ------------------------------------------------------------------ breaker & calls
    def _circuit_breaker(self, m: int, ts: int, mark: float, spec: MarketSpec) -> bool:
        policy = spec.circuit_breaker
        risk = self.markets[m]
        if policy is None:
            return False
        window_ns = int(policy.window_s * _NS)
        if risk.breaker_halted:
            if ts - risk.breaker_since_ns >= int(policy.cooldown_s * _NS):
                risk.breaker_halted = False
                risk.marks.clear()
                risk.marks.append((ts, mark))
                self.ex._emit(CircuitBreaker(ts_ns=ts, market=m, halted=0, text="cooldown over"))
                return False
            return True
        while risk.marks and risk.marks[0][0] < ts - window_ns:
            risk.marks.popleft()
        move = max((abs(mark / p - 1.0) for _, p in risk.marks), default=0.0)
        risk.marks.append((ts, mark))
        if move > policy.threshold:
            risk.breaker_halted = True
            risk.breaker_since_ns = ts
            note = f"mark moved {move:.4%} within {policy.window_s:g}s"
            self.ex._emit(CircuitBreaker(ts_ns=ts, market=m, halted=1, move=move, text=note))
            return True
        return False

    def halted(self, m: int) -> bool:
        """Whether market ``m`` is halted by its circuit breaker."""
        return self.markets[m].breaker_halted

    def _margin_calls(self, m: int, ts: int) -> int:
        ex = self.ex
        ratio_level = ex.markets[m].spec.liquidation.margin_call_ratio
        n = ex.n_accounts
        traders = ex._kind[:n] == 0
        cols = ex._positions[m]
        exposed = traders & (cols.size[:n] != 0.0)
        iso = exposed & (cols.mode[:n] == MarginMode.ISOLATED)
        cross = exposed & ~iso
        ratio = np.full(n, 0.0)
        if iso.any():
            ratio = np.where(iso, ex.isolated_state(m)["margin_ratio"], ratio)
        if cross.any():
            ratio = np.where(cross, ex.margin_state()["cross_margin_ratio"], ratio)
        warn = np.flatnonzero((ratio >= ratio_level) & (ratio < 1.0))
        called = self.markets[m].margin_called
        count = 0
        for a in warn.tolist():
            if a not in called:
                called.add(a)
                ex._emit(MarginCall(ts_ns=ts, account=a, market=m, ratio=float(ratio[a])))
                count += 1
        if called:
            calm = {a for a in called if ratio[a] < ratio_level}
            called -= calm
        return count

    # ------------------------------------------------------------------ candidates
    def _candidates(self, m: int) -> list[tuple[int, bool]]:
        """Accounts below maintenance exposed to market ``m``, most distressed first."""
        ex = self.ex
        n = ex.n_accounts
        cols = ex._positions[m]
        traders = ex._kind[:n] == 0
        exposed = traders & (cols.size[:n] != 0.0)
        iso = exposed & (cols.mode[:n] == MarginMode.ISOLATED)
        cross = exposed & ~iso
        out: list[tuple[float, int, bool]] = []
        risk = self.markets[m]
        if iso.any():
            st = ex.isolated_state(m)
            below = np.flatnonzero(iso & (st["equity"] < st["maintenance"]))
            out += [
                (_health(st["equity"][a], st["maintenance"][a]), a, True) for a in below.tolist()
            ]
        if cross.any():
            ms = ex.margin_state()
            below = np.flatnonzero(cross & (ms["cross_equity"] < ms["cross_maintenance"]))
            out += [
                (_health(ms["cross_equity"][a], ms["cross_maintenance"][a]), a, False)
                for a in below.tolist()
            ]
        now = ex.clock_ns
        out = [c for c in out if risk.cooldown_until_ns.get(c[1], -1) <= now]
        out.sort()
        return [(a, isolated) for _, a, isolated in out]

    # ------------------------------------------------------------------ one account
    def _pool(self, a: int, m: int, isolated: bool) -> tuple[float, float]:
        """Equity backing the position and the maintenance it must cover (quote)."""
        ex = self.ex
        if isolated:
            cols = ex._positions[m]
            state = ex.markets[m]
            size = float(cols.size[a])
            equity = float(cols.isolated_margin[a]) + size * (state.mark - float(cols.entry[a]))
            maint = float(mm.maintenance_margin(abs(size) * state.mark, state.tiers))
            return equity, maint
        margins = ex.account_margins(a)
        return margins.cross_equity, margins.cross_maintenance

    def _liquidate(
        self, a: int, m: int, isolated: bool, ts: int, report: StepReport, caps: _Caps
    ) -> bool:
        """Liquidate one account (one isolated position, or a cross account). True if acted."""
        ex = self.ex
        equity, maint = self._pool(a, m, isolated)
        if equity >= maint:
            return False
        markets = [m] if isolated else self._cross_order(a)
        acted = False
        for j in markets:
            equity, maint = self._pool(a, j if isolated else m, isolated)
            if equity >= maint or caps.market_exhausted:
                break
            spec = ex.markets[j].spec
            policy = spec.liquidation
            if (
                policy.backstop_equity_fraction > 0
                and equity < policy.backstop_equity_fraction * maint
            ):
                self._backstop(a, j, isolated, ts, report)
                return True
            size = float(ex._positions[j].size[a])
            if size == 0.0:
                continue
            qty = self._size_to_close(a, j, size, equity, maint, isolated)
            qty = caps.clip(a, qty, ex.markets[j].mark)
            if qty <= 0.0:
                continue
            self._close(a, j, qty, isolated, ts, report)
            acted = True
            if policy.kind == "fixed_fraction" and qty < abs(size):
                cooldown = int(policy.cooldown_s * _NS)
                self.markets[j].cooldown_until_ns[a] = ts + cooldown
                break
        if not isolated:
            self._settle_flat_cross(a, m, ts, report)
        return acted

    def _cross_order(self, a: int) -> list[int]:
        ex = self.ex
        ids, maint = [], []
        for state, cols in zip(ex.markets, ex._positions, strict=True):
            if cols.size[a] != 0.0 and cols.mode[a] == MarginMode.CROSS:
                ids.append(state.id)
                maint.append(
                    float(mm.maintenance_margin(abs(cols.size[a]) * state.mark, state.tiers))
                )
        order = liq.close_order(np.array(maint))
        return [ids[k] for k in order.tolist()]

    def _size_to_close(
        self, a: int, m: int, size: float, equity: float, maint: float, isolated: bool
    ) -> float:
        ex = self.ex
        state = ex.markets[m]
        spec = state.spec
        policy = spec.liquidation
        mark = state.mark
        if equity <= 0.0 or policy.kind == "full":
            return abs(size)
        if policy.kind == "fixed_fraction":
            return liq.fixed_fraction_size(
                size, mark, fraction=policy.fraction, min_notional=policy.fraction_min_notional
            )
        if policy.kind == "tier_down":
            return max(liq.tier_down_size(size, mark, state.tiers), spec.lot_size)
        # partial: restore target (maintenance + buffer, or initial) over the whole pool
        notional = abs(size) * mark
        t = int(mm.tier_index(notional, state.tiers))
        if policy.target == "initial":
            rate = float(state.tiers.imr[t])
            requirement = (
                maint - float(mm.maintenance_margin(notional, state.tiers)) + notional * rate
            )
        else:
            rate = float(state.tiers.mmr[t]) + policy.buffer
            requirement = maint + notional * policy.buffer
        shortage = requirement - equity
        release = mark * (rate - spec.liquidation_fee_rate)
        if shortage <= 0.0:
            return 0.0
        if release <= 0.0:
            return abs(size)
        qty = min(abs(size), shortage / release)
        lots = math.ceil(qty / spec.lot_size - 1e-9) * spec.lot_size
        return min(abs(size), lots)

    # ------------------------------------------------------------------ execution
    def _close(
        self, a: int, m: int, qty: float, isolated: bool, ts: int, report: StepReport
    ) -> None:
        """Close ``qty`` of account ``a``'s position in market ``m`` (the heart of the step)."""
        ex = self.ex
        state = ex.markets[m]
        spec = state.spec
        cols = ex._positions[m]
        size = float(cols.size[a])
        side = 1 if size > 0 else -1
        mark = state.mark
        equity, _ = self._pool(a, m, isolated)
        full = qty >= abs(size) * (1 - 1e-12)
        qty = abs(size) if full else qty
        bankrupt = liq.bankruptcy_price(size, mark, equity)
        risk = self.markets[m]
        if spec.liquidation.execution == "liquidator":
            t = int(mm.tier_index(abs(size) * mark, state.tiers))
            price = liq.fillable_price(
                side=side, oracle_price=mark, bankruptcy=bankrupt,
                maintenance_fraction=float(state.tiers.mmr[t]),
                spread_to_maintenance_ratio=spec.liquidation.spread_to_maintenance_ratio,
            )  # fmt: skip
            counterparty, reason, book = (
                ex.liquidator_account,
                FillReason.LIQUIDATOR_TAKEOVER,
                False,
            )
        else:
            price, filled = self._quote(risk, -side, qty, mark, ts)
            counterparty, reason, book = ex.liquidity_account, FillReason.LIQUIDATION, True
        equity_after = equity + side * qty * (price - mark)
        fund = ex.insurance_account_for(m)
        exhausted = book and filled < qty * (1 - 1e-12)
        beyond = full and equity_after < 0.0 and ex._cash[fund] < -equity_after
        # The fund cannot cover the shortfall (or the book cannot absorb the order): close
        # against opposing traders instead. Socialized loss fills on the book.
        adl_first = (beyond or exhausted) and spec.adl.ranking != "socialized_loss"
        if adl_first and self._adl(a, m, isolated, ts, report):
            return
        if book:
            price, filled = self._execute(risk, -side, qty, mark, ts)
            if filled <= 0.0:
                return
            full = full and filled >= qty * (1 - 1e-12)
            qty = abs(size) if full else filled
            equity_after = equity + side * qty * (price - mark)
        buyer, seller = (counterparty, a) if side > 0 else (a, counterparty)
        ex._emit(
            Fill(
                ts_ns=ts, market=m, buyer=buyer, seller=seller, size=qty, price=price, reason=reason
            )
        )
        still_open = cols.size[a] != 0.0
        fee = spec.liquidation_fee_rate * qty * price
        penalty = liq.capped_penalty(fee=fee, equity_after_fill=equity_after)
        if penalty > 0.0:
            ex._emit(
                Transfer(
                    ts_ns=ts, source=a, destination=fund, amount=penalty,
                    reason=int(TransferReason.LIQUIDATION_FEE), market=m if still_open else -1,
                )
            )  # fmt: skip
        shortfall = max(0.0, -equity_after) if full else 0.0
        report.liquidations += 1
        report.liquidated_notional += qty * price
        report.penalties += penalty
        detail = {"bankruptcy_price": bankrupt, "mark": mark, "policy": spec.liquidation.kind}
        ex._emit(
            Liquidation(
                ts_ns=ts, account=a, market=m, size=-side * qty, price=price, shortfall=shortfall,
                penalty=penalty, policy=_POLICY_CODES[spec.liquidation.kind],
                text=json.dumps(detail),
            )
        )  # fmt: skip
        if isolated and shortfall > 0.0:
            self._cover(a, m, shortfall, ts, report)

    def _settle_flat_cross(self, a: int, m: int, ts: int, report: StepReport) -> None:
        """A cross account with no cross positions left and negative cash is bankrupt."""
        ex = self.ex
        if any(cols.size[a] != 0.0 and cols.mode[a] == MarginMode.CROSS for cols in ex._positions):
            return
        shortfall = -float(ex._cash[a])
        if shortfall > 0.0:
            self._cover(a, m, shortfall, ts, report)

    def _cover(self, a: int, m: int, shortfall: float, ts: int, report: StepReport) -> None:
        """The fund pays what it can; socialized loss or bad debt takes the rest."""
        ex = self.ex
        fund = ex.insurance_account_for(m)
        report.shortfall += shortfall
        paid = min(shortfall, max(0.0, float(ex._cash[fund])))
        if paid > 0.0:
            ex._emit(
                Transfer(
                    ts_ns=ts, source=fund, destination=a, amount=paid,
                    reason=int(TransferReason.INSURANCE_COVER),
                )
            )  # fmt: skip
            report.insurance_paid += paid
        rest = shortfall - paid
        if rest <= 1e-12 * max(1.0, shortfall):
            return
        if ex.markets[m].spec.adl.ranking == "socialized_loss":
            rest -= self._socialize(a, m, rest, ts, report)
        if rest > 1e-12 * max(1.0, shortfall):
            report.bad_debt += rest
            ex._emit(BadDebt(ts_ns=ts, account=a, market=m, amount=rest, text="uncovered"))

    def _quote(
        self, risk: MarketRisk, side: int, qty: float, mark: float, ts: int
    ) -> tuple[float, float]:
        """VWAP and size a market order would fill, without consuming depth."""
        if risk.liquidity is None:
            return mark, qty
        fill = risk.liquidity.quote(side, qty, mark, ts)
        return float(fill.vwap), float(fill.size)

    def _execute(
        self, risk: MarketRisk, side: int, qty: float, mark: float, ts: int
    ) -> tuple[float, float]:
        """VWAP and size filled by a market order, consuming depth."""
        if risk.liquidity is None:
            return mark, qty
        fill = risk.liquidity.execute(side, qty, mark, ts)
        return float(fill.vwap), float(fill.size)

    # ------------------------------------------------------------------ backstop
    def _backstop(self, a: int, m: int, isolated: bool, ts: int, report: StepReport) -> None:
        """Hand the position(s) and their margin to the backstop vault at the mark."""
        ex = self.ex
        vault = ex.backstop_account
        markets = [m] if isolated else self._cross_order(a)
        equity, _ = self._pool(a, m, isolated)
        for j in markets:
            cols = ex._positions[j]
            size = float(cols.size[a])
            if size == 0.0:
                continue
            mark = ex.markets[j].mark
            buyer, seller = (vault, a) if size > 0 else (a, vault)
            ex._emit(
                Fill(
                    ts_ns=ts, market=j, buyer=buyer, seller=seller, size=abs(size), price=mark,
                    reason=FillReason.BACKSTOP,
                )
            )  # fmt: skip
            report.liquidated_notional += abs(size) * mark
        if equity != 0.0:
            src, dst = (a, vault) if equity > 0 else (vault, a)
            ex._emit(
                Transfer(
                    ts_ns=ts, source=src, destination=dst, amount=abs(equity),
                    reason=int(TransferReason.BACKSTOP_MARGIN),
                )
            )  # fmt: skip
        report.backstop_takeovers += 1
        report.liquidations += 1

    # ------------------------------------------------------------------ ADL
    def _adl(self, a: int, m: int, isolated: bool, ts: int, report: StepReport) -> bool:
        """Close the bankrupt position against opposing traders. True if fully closed."""
        ex = self.ex
        state = ex.markets[m]
        spec = state.spec
        cols = ex._positions[m]
        n = ex.n_accounts
        size = float(cols.size[a])
        side = 1 if size > 0 else -1
        equity, _ = self._pool(a, m, isolated)
        bankrupt = liq.bankruptcy_price(size, state.mark, equity)
        price = bankrupt if spec.adl.price == "bankruptcy" else state.mark
        sizes = cols.size[:n]
        upnl = sizes * (state.mark - cols.entry[:n])
        eligible = (ex._kind[:n] == 0) & (np.sign(sizes) == -side)
        eligible[a] = False
        policy = spec.adl.ranking
        if policy != "random_start":
            eligible &= upnl > 0.0
        idx = np.flatnonzero(eligible)
        if len(idx) == 0:
            return False
        available = np.abs(sizes[idx])
        need = abs(size)
        if available.sum() < need * (1 - 1e-12):
            return False
        sizes_before = sizes[idx].copy()
        entry_before = cols.entry[idx].copy()
        order = np.arange(len(idx))
        if policy == "pro_rata":
            take = adl_math.allocate_pro_rata(available, need, spec.lot_size)
        else:
            order = self.queue_order(m, idx)
            take = adl_math.allocate_ranked(order, available, need)
        closed = float(take.sum())
        if closed < need * (1 - 1e-9):
            return False
        for k in np.flatnonzero(take > 0).tolist():
            b = int(idx[k])
            q = float(take[k])
            if k == int(np.flatnonzero(take > 0)[-1]):
                q += need - closed  # absorb float dust so the bankrupt position closes exactly
                q = min(q, float(available[k]))
            buyer, seller = (b, a) if side > 0 else (a, b)
            ex._emit(
                Fill(
                    ts_ns=ts, market=m, buyer=buyer, seller=seller, size=q, price=price,
                    reason=FillReason.ADL, note=policy,
                )
            )  # fmt: skip
        # What solvency required: the shortfall a book fill would have left, net of the fund.
        book_price, _ = self._quote(self.markets[m], -side, need, state.mark, ts)
        book_shortfall = max(0.0, -(equity + side * need * (book_price - state.mark)))
        fund_cash = max(0.0, float(ex._cash[ex.insurance_account_for(m)]))
        minimum = max(0.0, book_shortfall - fund_cash)
        order_taken = np.flatnonzero(take > 0) if policy == "pro_rata" else order
        stats = adl_math.adl_round_metrics(
            sizes_before[order_taken],
            entry_before[order_taken],
            take[order_taken],
            mark_price=state.mark,
            execution_price=price,
            shortfall=minimum,
        )
        metrics = {"policy": policy, "counterparties": int((take > 0).sum())}
        metrics.update({k: float(v) for k, v in stats._asdict().items()})
        ex._emit(
            AdlRound(
                ts_ns=ts, account=a, market=m, size=-size, price=price, amount=stats.profit_taken,
                text=json.dumps(metrics),
            )
        )  # fmt: skip
        report.adl_rounds += 1
        report.adl_notional += stats.notional_closed
        if not isolated:
            self._settle_flat_cross(a, m, ts, report)
        elif cols.size[a] == 0.0 and ex._cash[a] < -1e-9:
            self._cover(a, m, -float(ex._cash[a]), ts, report)
        return True

    def queue_order(self, m: int, idx: npt.NDArray[np.intp]) -> npt.NDArray[np.intp]:
        """Order (positions into ``idx``) in which the ADL policy deleverages candidates."""
        ex = self.ex
        state = ex.markets[m]
        spec = state.spec
        policy = spec.adl.ranking
        if policy == "random_start":
            return adl_math.random_start_order(len(idx), self.rng)
        scores = self.scores(m, idx)
        return adl_math.rank(scores, idx)

    def scores(self, m: int, idx: npt.NDArray[np.intp]) -> FloatArray:
        """ADL scores of accounts ``idx`` in market ``m`` (higher: deleveraged first).

        ``random_start`` and ``pro_rata`` have no score of their own; the queue view ranks
        them by the market's default (``pnl_leverage``).
        """
        ex = self.ex
        state = ex.markets[m]
        spec = state.spec
        cols = ex._positions[m]
        sizes = cols.size[idx]
        entry = cols.entry[idx]
        mark = state.mark
        notional = np.abs(sizes) * mark
        upnl = sizes * (mark - entry)
        iso = cols.mode[idx] == MarginMode.ISOLATED
        ms = ex.margin_state()
        wallet = np.where(iso, cols.isolated_margin[idx], ex._cash[idx])
        equity = np.where(iso, cols.isolated_margin[idx] + upnl, ms["cross_equity"][idx])
        maint = np.where(
            iso, mm.maintenance_margin(notional, state.tiers), ms["cross_maintenance"][idx]
        )
        policy = spec.adl.ranking
        if policy == "binance":
            return adl_math.score_binance(
                sizes, entry, mark, wallet_balance=wallet, maintenance=maint
            )
        if policy == "hyperliquid":
            return adl_math.score_hyperliquid(sizes, entry, mark, account_value=equity)
        if policy == "risk_score":
            return adl_math.score_risk_score(
                sizes, mark, equity=equity, maintenance=maint, weights=spec.adl.weights
            )
        return adl_math.score_pnl_leverage(sizes, entry, mark, equity=equity)

    def _socialize(self, a: int, m: int, loss: float, ts: int, report: StepReport) -> float:
        """Charge ``loss`` across profitable positions (or open interest); return charged."""
        ex = self.ex
        state = ex.markets[m]
        cols = ex._positions[m]
        n = ex.n_accounts
        sizes = cols.size[:n]
        traders = ex._kind[:n] == 0
        traders[a] = False
        basis = state.spec.adl.socialize_over
        if basis == "profit":
            weight = np.where(traders, np.maximum(sizes * (state.mark - cols.entry[:n]), 0.0), 0.0)
        else:
            weight = np.where(traders, np.abs(sizes) * state.mark, 0.0)
        if weight.sum() <= 0.0:
            return 0.0
        charges = adl_math.allocate_socialized_loss(loss, weight, basis)
        for b in np.flatnonzero(charges > 0).tolist():
            ex._emit(
                Transfer(
                    ts_ns=ts, source=b, destination=a, amount=float(charges[b]),
                    reason=int(TransferReason.SOCIALIZED_LOSS), market=m,
                )
            )  # fmt: skip
        charged = float(charges.sum())
        report.socialized_loss += charged
        return charged


class _Caps:
    """Per-step liquidation caps (dYdX block limits, Synthetix window cap), in notional."""

    def __init__(self, spec: MarketSpec) -> None:
        self.per_account = spec.liquidation.max_notional_per_account_step
        self.per_market = spec.liquidation.max_notional_per_market_step
        self.used_market = 0.0
        self.used_account: dict[int, float] = {}

    @property
    def market_exhausted(self) -> bool:
        return self.per_market is not None and self.used_market >= self.per_market

    def clip(self, a: int, qty: float, price: float) -> float:
        room = math.inf
        if self.per_account is not None:
            room = self.per_account - self.used_account.get(a, 0.0)
        if self.per_market is not None:
            room = min(room, self.per_market - self.used_market)
        qty = max(0.0, min(qty, room / price))
        notional = qty * price
        self.used_market += notional
        self.used_account[a] = self.used_account.get(a, 0.0) + notional
        return qty


def fund_of(ex: Exchange, m: int) -> int:
    return ex.insurance_account_for(m)


def _health(equity: float, maintenance: float) -> float:
    return float(equity - maintenance) / max(float(maintenance), 1e-12)
