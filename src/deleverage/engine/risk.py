"""The risk step: what happens on each mark update.

DESIGN.md's flow, per market and mark price::

    mark -> circuit breaker -> dynamic margin -> margin calls
         -> accounts below maintenance (isolated positions in the market; cross accounts
            exposed to it), most distressed first, within per-step caps
         -> how much to close (full, partial to a target, fixed fraction, tier down)
         -> backstop takeover (equity below a fraction of maintenance and the book cannot
            absorb the position above its bankruptcy price), or
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

import contextlib
import gc
import json
import math
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from deleverage.engine.events import (
    AdlRound,
    BadDebt,
    CircuitBreaker,
    EventKind,
    Fill,
    FillReason,
    Liquidation,
    MarginCall,
    MarginMoved,
    RiskParamsChanged,
    Transfer,
    TransferReason,
)
from deleverage.engine.kernels import pnl_leverage_queue_nb
from deleverage.errors import ValidationError
from deleverage.liquidity import ConstantDepthBook, LiquidityModel
from deleverage.rules import adl as adl_math
from deleverage.rules import liquidation as liq
from deleverage.rules import margin as mm
from deleverage.rules.dynamic import RiskParameterPolicy, scale_spec
from deleverage.spec import MarginMode, MarketSpec, TierArrays

if TYPE_CHECKING:
    from deleverage.engine.exchange import Exchange

FloatArray = npt.NDArray[np.float64]

_POLICY_CODES = {"full": 0, "partial": 1, "fixed_fraction": 2, "tier_down": 3}
_NS = 1_000_000_000
_MAX_ROUNDS = 8  # liquidation passes per step over accounts still below maintenance


Book = LiquidityModel


@dataclass
class MarketRisk:
    """Runtime risk state of one market (not part of the ledger)."""

    liquidity: Book | None = None
    breaker_halted: bool = False
    breaker_since_ns: int = 0
    marks: deque[tuple[int, float]] = field(default_factory=deque)
    cooldown_until_ns: dict[int, int] = field(default_factory=dict)
    #: Accounts margin-called and still in the warning zone (any order).
    called_isolated: npt.NDArray[np.int64] = field(
        default_factory=lambda: np.zeros(0, dtype=np.int64)
    )
    called_cross: npt.NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    dynamic: RiskParameterPolicy | None = None
    base_spec: MarketSpec | None = None
    multiplier: float = 1.0
    history: deque[tuple[int, float]] = field(default_factory=deque)
    #: Liquidator response time (ns) and the notional they can take per step (quote).
    latency_ns: int = 0
    capital_per_step: float = math.inf
    mark_interval_ns: int = 0
    #: Notional the liquidators used at time ``capital_ts`` (every re-mark at one time shares
    #: the step's capital).
    capital_used: float = 0.0
    capital_ts: int = -1
    #: Positions found under maintenance and waiting for a liquidator: account -> first seen.
    pending: dict[int, int] = field(default_factory=dict)


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
        self._queues: dict[tuple[int, int], _Queue] = {}
        self._modes_cache: dict[int, tuple[tuple[int, int], tuple[bool, bool]]] = {}
        self._queue_buffers: tuple[npt.NDArray[np.int64], FloatArray] = (
            np.empty(0, dtype=np.int64),
            np.empty(0),
        )
        #: Deficit per account already declared as bad debt (quote), so it is declared once.
        self.declared_bad_debt: dict[int, float] = {}
        #: Deficit of open isolated positions left by a partial close, already reported.
        self.carried_deficit: dict[int, float] = {}
        #: Seconds positions spent under maintenance waiting for a liquidator (summed).
        self.under_collateralized_s = 0.0
        self._scratch_flags = np.zeros(0, dtype=np.bool_)

    def reserve(self, capacity: int) -> None:
        """Allocate (and touch) the step's working buffers for ``capacity`` accounts.

        Called as the engine grows, so a step never pays for fresh memory pages.
        """
        if len(self._queue_buffers[0]) < capacity:
            idx, score = np.empty(capacity, dtype=np.int64), np.empty(capacity)
            idx.fill(0)  # touch the pages now (np.zeros would map them lazily)
            score.fill(0.0)
            self._queue_buffers = (idx, score)

    def add_market(self) -> None:
        self.markets.append(MarketRisk())

    def set_liquidators(
        self,
        market: int,
        *,
        latency_s: float = 0.0,
        capital_per_step: float = math.inf,
        mark_interval_s: float = 0.0,
    ) -> None:
        """Model the liquidators of ``market``: response time and capital per step.

        A position found under maintenance waits ``latency_s`` seconds (a matcher's
        milliseconds, a chain's block times) before it is liquidated, even beyond
        bankruptcy; liquidators take at most ``capital_per_step`` notional (quote) per mark
        time (the re-marks of a cascade at one time share it).
        Time spent waiting is summed in :attr:`under_collateralized_s`. A latency shorter
        than ``mark_interval_s`` (the oracle's interval: a matcher's milliseconds against
        one-second marks) acts before the next mark: the position is liquidated at the mark
        that found it and the latency is counted as its time under water.
        """
        if (
            isinstance(market, bool)
            or not isinstance(market, int)
            or not (0 <= market < len(self.markets))
        ):
            raise ValidationError(
                "market", market, f"must be a listed market id in [0, {len(self.markets)})"
            )
        if not (math.isfinite(latency_s) and latency_s >= 0):
            raise ValidationError("latency_s", latency_s, "must be a finite number >= 0")
        if not capital_per_step > 0:
            raise ValidationError("capital_per_step", capital_per_step, "must be > 0")
        risk = self.markets[market]
        if not (math.isfinite(mark_interval_s) and mark_interval_s >= 0):
            raise ValidationError(
                "mark_interval_s", mark_interval_s, "must be a finite number >= 0"
            )
        risk.latency_ns = round(latency_s * _NS)
        risk.capital_per_step = float(capital_per_step)
        risk.mark_interval_ns = round(mark_interval_s * _NS)

    def pending_count(self, market: int) -> int:
        """Positions of ``market`` under maintenance still waiting for a liquidator."""
        return len(self.markets[market].pending)

    def _ready(self, m: int, accounts: list[int], ts: int) -> list[bool]:
        """Which accounts a liquidator has reached (cooldowns and latency) at ``ts``."""
        risk = self.markets[m]
        cooldown, latency, pending = risk.cooldown_until_ns, risk.latency_ns, risk.pending
        # A liquidator faster than the marks acts before the next one: it was found ``latency``
        # ago, within the interval the marks do not see.
        seen = latency if latency < risk.mark_interval_ns else 0
        out = []
        for a in accounts:
            ok = cooldown.get(a, -1) <= ts if cooldown else True
            if latency and ok:
                first = pending.setdefault(a, ts - seen)
                ok = ts - first >= latency
            out.append(ok)
        return out

    def _settle_pending(self, m: int, ts: int) -> None:
        """Drop waiting positions that were liquidated or recovered; add up their wait."""
        risk = self.markets[m]
        if not risk.pending:
            return
        done = []
        for a, first in risk.pending.items():
            isolated = self._isolated(a, m)
            equity, maint = self._pool(a, m, isolated)
            if self.ex._positions[m].size[a] == 0.0 or equity >= maint:
                done.append(a)
                self.under_collateralized_s += (ts - first) / _NS
        for a in done:
            del risk.pending[a]

    # ------------------------------------------------------------------ entry point
    def on_mark(self, m: int, ts: int) -> StepReport:
        """Run the risk step of market ``m`` after its mark was set at ``ts``.

        The cyclic garbage collector is paused for the step: the step allocates many small
        records and no cycles, and a full collection over a large process would otherwise
        cost more than the step (measured in benchmarks/liquidation_step.py).
        """
        with _gc_paused():
            return self._on_mark(m, ts)

    def _on_mark(self, m: int, ts: int) -> StepReport:
        report = StepReport(market=m, ts_ns=ts)
        self._queues.clear()
        ex = self.ex
        state = ex.markets[m]
        risk = self.markets[m]
        if self._circuit_breaker(m, ts, state.mark, state.spec):
            report.halted = True
            self.reports.append(report)
            return report
        if risk.liquidity is not None:
            risk.liquidity.recover(ts)
        self._dynamic_margin(m, ts, state.mark)
        report.margin_calls = self._margin_calls(m, ts)
        if risk.capital_ts != ts:
            risk.capital_ts, risk.capital_used = ts, 0.0
        caps = _Caps(state.spec, risk.capital_per_step - risk.capital_used)
        touched: npt.NDArray[np.int64] | None = None
        rounds = _MAX_ROUNDS
        if self._batchable(m) and self._modes_present(m)[0]:
            touched = self._batch_isolated(m, ts, report, caps)
            rounds -= 1  # the batch pass is a round of its own
        for _ in range(rounds):
            candidates = self._candidates(m, among=touched)
            touched = None
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
        risk.capital_used += caps.used_market
        self._settle_pending(m, ts)
        self.reports.append(report)
        return report

    # ------------------------------------------------------------------ batch fast path
    def _batchable(self, m: int) -> bool:
        """Whether isolated liquidations in ``m`` can take the compiled batch path.

        It covers market execution on no book (fills at the mark) or a constant-depth book,
        without backstop, per-step caps or socialized loss, in steps where no cross account
        of the market is under maintenance; everything else takes the per-account path.
        """
        spec = self.ex.markets[m].spec
        policy = spec.liquidation
        book = self.markets[m].liquidity
        if math.isfinite(self.markets[m].capital_per_step):
            return False  # liquidator capital caps the step: the per-account path clips
        if not (
            policy.execution == "market"
            and policy.backstop_equity_fraction == 0.0
            and policy.max_notional_per_account_step is None
            and policy.max_notional_per_market_step is None
            and spec.adl.ranking != "socialized_loss"  # charges others between fills
            and (book is None or type(book) is ConstantDepthBook)
        ):
            return False
        # Cross accounts under maintenance in this market too: the per-account path orders
        # everyone by distress (the batch would serve every isolated position first).
        if self._modes_present(m)[1]:
            scan = self.ex.cross_scan(m, policy.margin_call_ratio)
            if len(scan["below"]):
                return False
        return True

    def _batch_isolated(
        self, m: int, ts: int, report: StepReport, caps: _Caps
    ) -> npt.NDArray[np.int64] | None:
        """Liquidate every isolated position below maintenance in ``m`` with array operations.

        The same rules as :meth:`_close`, planned by a compiled kernel in the same order
        (most distressed first); positions the fund cannot carry are left to the per-account
        path, which sends them to ADL.
        """
        from deleverage.engine.kernels import plan_isolated_liquidations_nb

        ex = self.ex
        state = ex.markets[m]
        spec = state.spec
        policy = spec.liquidation
        cols = ex._positions[m]
        if not self._modes_present(m)[0]:
            return None  # no isolated position in this market
        iscan = ex.isolated_scan(m, policy.margin_call_ratio)
        below = iscan["below"]
        equity = iscan["below_equity"]
        maint = iscan["below_maintenance"]
        risk = self.markets[m]
        if risk.cooldown_until_ns or risk.latency_ns:
            free = np.array(self._ready(m, below.tolist(), ts), dtype=np.bool_)
            if len(free):
                below, equity, maint = below[free], equity[free], maint[free]
        if len(below) == 0:
            return np.zeros(0, dtype=np.int64)
        health = (equity - maint) / np.maximum(maint, 1e-12)
        order = np.lexsort((below, health))
        idx = below[order].astype(np.int64)
        equity, maint = equity[order], maint[order]
        size = cols.size[idx].copy()
        close = _sizes_to_close(size, equity, maint, state.mark, spec)
        book = risk.liquidity
        if book is None:
            depth, consumed, max_move = math.inf, 0.0, 1.0
        else:
            book.recover(ts)
            assert isinstance(book, ConstantDepthBook)
            depth = book.depth
            consumed = float(book.snapshot()["consumed_depth"])
            max_move = book.max_move
        k = len(idx)
        filled, price, penalty = np.zeros(k), np.zeros(k), np.zeros(k)
        shortfall, cover, own = np.zeros(k), np.zeros(k), np.zeros(k)
        to_adl = np.zeros(k, dtype=np.bool_)
        fund = ex.insurance_account_for(m)
        adl_enabled = spec.adl.ranking != "socialized_loss"
        declared = self.declared_bad_debt
        cash_before = ex._cash[idx] + (
            np.array([declared.get(a, 0.0) for a in idx.tolist()]) if declared else 0.0
        )

        def plan(capacity_long: float, capacity_short: float) -> float:
            _, consumed_after = plan_isolated_liquidations_nb(
                size, equity, close, cash_before, state.mark, spec.liquidation_fee_rate,
                float(ex._cash[fund]), depth, consumed, max_move, adl_enabled, filled, price,
                penalty, shortfall, cover, own, to_adl, capacity_long, capacity_short,
            )  # fmt: skip
            return float(consumed_after)

        consumed_after = plan(math.inf, math.inf)
        if to_adl.any():
            # Some positions need ADL: plan again knowing how much each queue can take, so a
            # position the queue cannot serve fills on the book in its turn (per-account order).
            flagged_sides = set(np.sign(size[to_adl]).tolist())
            capacity = {
                s: (self._queue_capacity(m, -int(s)) if s in flagged_sides else math.inf)
                for s in (1.0, -1.0)
            }
            consumed_after = plan(capacity[-1.0], capacity[1.0])
        if book is not None:
            book.restore({"consumed_depth": consumed_after, "ts_ns": ts})
        done = filled > 0.0
        accounts = idx[done]
        qty, px = filled[done], price[done]
        side = np.sign(size[done])
        buyers = np.where(side > 0, ex.liquidity_account, accounts).astype(np.int64)
        sellers = np.where(side > 0, accounts, ex.liquidity_account).astype(np.int64)
        zeros = np.zeros(len(accounts))
        if len(accounts):
            ex.journal.append_columns(
                EventKind.FILL, ts, market=m, account=buyers, counterparty=sellers, size=qty,
                price=px, fee=zeros, counterparty_fee=zeros, code=int(FillReason.LIQUIDATION),
            )  # fmt: skip
            ex._apply_fill_columns(m, buyers, sellers, qty, px, zeros, zeros)
        pen, short, cov, mine = penalty[done], shortfall[done], cover[done], own[done]
        still_open = cols.size[accounts] != 0.0
        reason_fee = int(TransferReason.LIQUIDATION_FEE)
        # Penalties of positions still open come out of their isolated margin (market m) ...
        sel = still_open & (pen > 0.0)
        self._batch_transfers(m, accounts[sel], fund, pen[sel], reason_fee, ts, outgoing=True)
        # ... those of closed positions out of cash; then the insurance covers of the closed
        # positions that went beyond bankruptcy (a closed position pays a penalty or is
        # covered, never both: the penalty is capped by the equity left).
        closed_pen = ~still_open & (pen > 0.0)
        self._batch_transfers(-1, accounts[closed_pen], fund, pen[closed_pen], reason_fee, ts,
                              outgoing=True)  # fmt: skip
        covered = ~still_open & (cov > 0.0)
        self._batch_transfers(
            -1, accounts[covered], fund, cov[covered], int(TransferReason.INSURANCE_COVER), ts,
            outgoing=False,
        )  # fmt: skip
        # Open positions left beyond bankruptcy: the account's cash into the margin, then the
        # fund into the position (as the per-account path does).
        moved = still_open & (mine > 0.0)
        if moved.any():
            ex.journal.append_columns(
                EventKind.MARGIN_MOVED, ts, account=accounts[moved], market=m, amount=mine[moved]
            )
            ex._cash[accounts[moved]] -= mine[moved]
            cols.isolated_margin[accounts[moved]] += mine[moved]
            ex._touch(m, accounts[moved])
            ex._version += 1
        open_cover = still_open & (cov > 0.0)
        self._batch_transfers(
            m, accounts[open_cover], fund, cov[open_cover],
            int(TransferReason.INSURANCE_COVER), ts, outgoing=False,
        )  # fmt: skip
        if len(accounts):
            bankrupt = np.maximum(0.0, state.mark - equity[done] / size[done])
            ex.journal.append_columns(
                EventKind.LIQUIDATION, ts, account=accounts, market=m, size=-side * qty, price=px,
                amount=short, fee=pen, counterparty_fee=bankrupt,
                code=_POLICY_CODES[policy.kind],
            )  # fmt: skip
        report.liquidations += len(accounts)
        report.liquidated_notional += float(np.sum(qty * px))
        report.penalties += float(pen.sum())
        report.insurance_paid += float(cov.sum())
        if policy.kind == "fixed_fraction":
            partial = still_open & (qty < np.abs(size[done]))
            until = ts + int(policy.cooldown_s * _NS)
            for a in accounts[partial].tolist():
                risk.cooldown_until_ns[a] = until
        # What is still owed after the account's own cash and the fund: its negative cash.
        closed_now = ~still_open
        owed_now = np.zeros(len(accounts))
        if closed_now.any():
            debt = np.array([declared.get(a, 0.0) for a in accounts.tolist()]) if declared else 0.0
            owed_now = np.where(closed_now, np.maximum(0.0, -ex._cash[accounts] - debt), 0.0)
        rest = np.where(still_open, 0.0, np.minimum(owed_now, short))
        carried = self.carried_deficit
        counted = np.zeros(len(accounts))
        if carried:  # closed positions settle what earlier partial closes carried
            counted = np.array(
                [
                    0.0 if is_open else carried.pop(a, 0.0)
                    for a, is_open in zip(accounts.tolist(), still_open.tolist(), strict=True)
                ]
            )
        closed_due = np.maximum(cov + rest - counted, 0.0)
        report.shortfall += float(np.sum(np.where(still_open, short - mine, closed_due)))
        # Open positions: what neither their account's cash nor the fund paid is carried to
        # their full close (ADL, or bad debt then), reported now.
        left = np.where(still_open, short - mine - cov, 0.0)
        for a, amount in zip(
            accounts[left > 1e-9].tolist(), left[left > 1e-9].tolist(), strict=True
        ):
            carried[a] = carried.get(a, 0.0) + amount
        for j in np.flatnonzero(rest > 1e-9).tolist():
            a, amount = int(accounts[j]), float(rest[j])
            if spec.adl.ranking == "socialized_loss":
                amount -= self._socialize(a, m, amount, ts, report)
            if amount > 1e-12 * max(1.0, float(short[j])):
                self._declare_bad_debt(a, m, amount, ts, report)
        pending = idx[to_adl]
        touched = [idx]
        if len(pending) and spec.adl.ranking not in ("pro_rata", "socialized_loss"):
            pending, counterparties = self._batch_adl(m, pending, ts, report)
            touched.append(counterparties)
        for a in pending.tolist():
            self._liquidate(a, m, True, ts, report, caps)
        if len(pending) or spec.adl.ranking == "socialized_loss":
            return None  # the per-account path or a socialized loss touched others: rescan
        return np.concatenate(touched)

    def _batch_adl(
        self, m: int, accounts: npt.NDArray[np.int64], ts: int, report: StepReport
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        """ADL of many isolated bankrupt positions at once, against the ranked queues.

        Walking the queue account after account takes, for each bankrupt position, the next
        stretch of the queue's cumulative size; merging the cumulative needs with the queue's
        cumulative sizes gives every (bankrupt, counterparty, size) fill at once. Returns the
        accounts the queue could not serve (left to the per-account path) and the
        counterparties it deleveraged.
        """
        ex = self.ex
        state = ex.markets[m]
        spec = state.spec
        cols = ex._positions[m]
        mark = state.mark
        leftover: list[npt.NDArray[np.int64]] = []
        touched: list[npt.NDArray[np.int64]] = []
        policy = spec.adl.ranking
        for side in (1.0, -1.0):
            group = accounts[np.sign(cols.size[accounts]) == side]
            if len(group) == 0:
                continue
            size = cols.size[group].copy()
            equity = cols.isolated_margin[group] + size * (mark - cols.entry[group])
            bankrupt = np.maximum(0.0, mark - equity / size)
            price = bankrupt if spec.adl.price == "bankruptcy" else np.full(len(group), mark)
            queue = self._queue(m, -int(side))
            q_acc = queue.covering(cols.size, float(np.abs(cols.size[group]).sum()))
            q_avail = np.abs(cols.size[q_acc])
            q_acc, q_avail = q_acc[q_avail > 0], q_avail[q_avail > 0]
            need = np.abs(size)
            cum_need = np.cumsum(need)
            cum_av = np.cumsum(q_avail)
            total = float(cum_av[-1]) if len(cum_av) else 0.0
            served = cum_need <= total * (1 + 1e-12)
            leftover.append(group[~served])
            if not served.any():
                continue
            group, size, equity, price, need = (
                group[served],
                size[served],
                equity[served],
                price[served],
                need[served],
            )
            cum_need = cum_need[served]
            # A need may exceed what the queue holds by float dust (0.1 + 0.2 vs 0.3): end
            # where the queue ends, and let the position's size snap the dust to flat.
            end = min(float(cum_need[-1]), total)
            cum_need = np.minimum(cum_need, end)
            breaks = np.union1d(cum_need, cum_av[cum_av < end])
            starts = np.concatenate(([0.0], breaks[:-1]))
            lengths = breaks - starts
            keep = lengths > 0
            mids = (starts + lengths / 2)[keep]
            lengths = lengths[keep]
            i = np.minimum(np.searchsorted(cum_need, mids, side="right"), len(group) - 1)
            j = np.minimum(np.searchsorted(cum_av, mids, side="right"), len(q_acc) - 1)
            bankrupts, counterparties = group[i], q_acc[j]
            touched.append(counterparties)
            # No counterparty pays more against the mark than its own equity (see
            # _solvent_adl_price): a counterparty serving several rounds spreads its equity
            # over all it takes (E_j / total taken), and each round's adverse move is capped
            # by its weakest counterparty.
            adverse = side * (price - mark)
            if (adverse > 0.0).any():
                cp_equity = np.maximum(
                    cols.isolated_margin[counterparties]
                    + cols.size[counterparties] * (mark - cols.entry[counterparties]),
                    0.0,
                )
                _, slot = np.unique(counterparties, return_inverse=True)
                taken = np.bincount(slot, weights=lengths)[slot]
                bounds_f = np.searchsorted(i, np.arange(len(group)))
                room = np.minimum.reduceat(cp_equity / taken, bounds_f) * (1.0 - 1e-9)
                price = np.where(adverse > 0.0, mark + side * np.minimum(adverse, room), price)
            fill_price = price[i]
            entry_before = cols.entry[counterparties].copy()
            size_before = cols.size[counterparties].copy()
            buyers = np.where(side > 0, counterparties, bankrupts).astype(np.int64)
            sellers = np.where(side > 0, bankrupts, counterparties).astype(np.int64)
            zeros = np.zeros(len(lengths))
            ex.journal.append_columns(
                EventKind.FILL, ts, market=m, account=buyers, counterparty=sellers,
                size=lengths, price=fill_price, fee=zeros, counterparty_fee=zeros,
                code=int(FillReason.ADL), text=np.full(len(lengths), policy),
            )  # fmt: skip
            ex._apply_fill_columns(m, buyers, sellers, lengths, fill_price, zeros, zeros)
            while queue.head < len(queue.accounts) and cols.size[queue.accounts[queue.head]] == 0:
                queue.head += 1
            # One notice per bankrupt position, with the round's metrics.
            fund_cash = max(0.0, float(ex._cash[ex.insurance_account_for(m)]))
            bounds = np.searchsorted(i, np.arange(len(group) + 1))
            book = self.markets[m].liquidity
            book_price = _linear_quotes(book, -side, need, mark)
            book_short = np.maximum(0.0, -(equity + side * need * (book_price - mark)))
            minimum = np.maximum(0.0, book_short - fund_cash)
            profits, notionals, texts = _round_metrics_many(
                size_before, entry_before, lengths, bounds, mark, price, minimum, policy
            )
            ex.journal.append_columns(
                EventKind.ADL_ROUND, ts, account=group, market=m, size=-size, price=price,
                amount=profits, text=texts,
            )  # fmt: skip
            report.adl_rounds += len(group)
            report.adl_notional += float(notionals.sum())
            for a in group[ex._cash[group] < -1e-9].tolist():
                owed = -float(ex._cash[a]) - self.declared_bad_debt.get(a, 0.0)
                if owed > 1e-9:  # not what was declared bad debt before
                    self._cover(a, m, owed, ts, report)
        empty = np.zeros(0, dtype=np.int64)
        return (
            np.concatenate(leftover) if leftover else empty,
            np.concatenate(touched) if touched else empty,
        )

    def _batch_transfers(
        self, m: int, accounts: npt.NDArray[np.int64], fund: int, amounts: FloatArray,
        reason: int, ts: int, *, outgoing: bool,
    ) -> None:  # fmt: skip
        if len(accounts) == 0:
            return
        ex = self.ex
        funds = np.full(len(accounts), fund, dtype=np.int64)
        src, dst = (accounts, funds) if outgoing else (funds, accounts)
        reasons = np.full(len(accounts), reason, dtype=np.int64)
        ex.journal.append_columns(
            EventKind.TRANSFER, ts, account=src, counterparty=dst, amount=amounts, code=reasons,
            market=m,
        )  # fmt: skip
        ex._apply_transfer_columns(m, src, dst, amounts, reasons, ts)

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

    def _dynamic_margin(self, m: int, ts: int, mark: float) -> None:
        risk = self.markets[m]
        if risk.dynamic is None or risk.base_spec is None:
            return
        risk.history.append((ts, mark))
        horizon = ts - int(risk.dynamic.window_s * _NS)
        while risk.history and risk.history[0][0] < horizon:
            risk.history.popleft()
        ex = self.ex
        cols = ex._positions[m]
        n = ex.n_accounts
        traders = ex._kind[:n] == 0
        open_interest = float(np.sum(np.maximum(cols.size[:n][traders], 0.0))) * mark
        k = risk.dynamic.multiplier(ts, list(risk.history), open_interest)
        if not math.isclose(k, risk.multiplier, rel_tol=1e-12):
            risk.multiplier = k
            ex._emit(
                RiskParamsChanged(
                    ts_ns=ts, market=m, spec_json=scale_spec(risk.base_spec, k).to_json()
                )
            )

    def halted(self, m: int) -> bool:
        """Whether market ``m`` is halted by its circuit breaker."""
        return self.markets[m].breaker_halted

    def _modes_present(self, m: int) -> tuple[bool, bool]:
        """Whether any trader is isolated / cross in market ``m`` (cached per account layout)."""
        key = (m, self.ex.layout_version)
        hit = self._modes_cache.get(m)
        if hit is not None and hit[0] == key:
            return hit[1]
        n = self.ex.n_accounts
        mode = self.ex._positions[m].mode[:n]
        trader = self.ex._kind[:n] == 0
        present = (bool((mode != 0).any()), bool(((mode == 0) & trader).any()))
        self._modes_cache[m] = (key, present)
        return present

    def _margin_calls(self, m: int, ts: int) -> int:
        """Warn accounts whose ratio ``MM / E`` reached the call level, once per episode.

        An account is called when it enters the warning zone and leaves the called set when
        its ratio falls back below the level (an isolated position: when it is neither in the
        warning zone nor under maintenance). The isolated side works on the scan's sets
        (array operations), so a step costs the accounts in the zone, not the called history.
        """
        ex = self.ex
        risk = self.markets[m]
        level = ex.markets[m].spec.liquidation.margin_call_ratio
        any_isolated, any_cross = self._modes_present(m)
        new_acc: list[npt.NDArray[np.int64]] = []
        new_ratio: list[FloatArray] = []
        if any_isolated:
            iscan = ex.isolated_scan(m, level)
            if len(iscan["warn"]) or len(risk.called_isolated):  # else: the quiet step
                risk.called_isolated, fresh = self._calls(risk.called_isolated, iscan)
                new_acc.append(iscan["warn"][fresh])
                new_ratio.append(iscan["warn_ratio"][fresh])
        elif len(risk.called_isolated):
            risk.called_isolated = np.zeros(0, dtype=np.int64)
        if any_cross:
            scan = ex.cross_scan(m, level)
            risk.called_cross, fresh = self._calls(risk.called_cross, scan)
            new_acc.append(scan["warn"][fresh].astype(np.int64))
            new_ratio.append(np.asarray(scan["warn_ratio"][fresh], dtype=np.float64))
        elif len(risk.called_cross):
            risk.called_cross = np.zeros(0, dtype=np.int64)
        if not new_acc:
            return 0
        accounts = np.concatenate(new_acc) if len(new_acc) > 1 else new_acc[0]
        ratios = np.concatenate(new_ratio)
        order = np.argsort(accounts, kind="stable")
        if len(accounts) == 1:
            a, r = int(accounts[0]), float(ratios[0])
            ex._emit(MarginCall(ts_ns=ts, account=a, market=m, ratio=r))
        elif len(accounts):
            ex.journal.append_columns(
                EventKind.MARGIN_CALL, ts, account=accounts[order], market=m, amount=ratios[order]
            )
        return len(accounts)

    def _calls(
        self, called: npt.NDArray[np.int64], scan: dict[str, Any]
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_]]:
        """Update a called set from a scan; return it and which ``scan["warn"]`` are new.

        An account leaves the called set once it is neither in the warning zone nor under
        maintenance (its ratio fell back below the level); one in the zone and not called is
        new. Flag arrays keep the step's cost to the accounts in the zone.
        """
        warn, below = scan["warn"], scan["below"]
        flag = self._flags(self.ex.n_accounts)
        if len(called):
            flag[warn] = True
            flag[below] = True
            called = called[flag[called]]
            flag[warn] = False
            flag[below] = False
            flag[called] = True
        fresh: npt.NDArray[np.bool_] = ~flag[warn]
        flag[called] = False
        if fresh.any():
            called = np.concatenate([called, warn[fresh].astype(np.int64)])
        return called, fresh

    def _flags(self, n: int) -> npt.NDArray[np.bool_]:
        """A scratch boolean array of at least ``n`` entries, all False (callers reset it)."""
        if len(self._scratch_flags) < n:
            self._scratch_flags = np.zeros(max(n, 2 * len(self._scratch_flags)), dtype=np.bool_)
        return self._scratch_flags

    # ------------------------------------------------------------------ candidates
    def _candidates(
        self, m: int, *, among: npt.NDArray[np.int64] | None = None
    ) -> list[tuple[int, bool]]:
        """Accounts below maintenance exposed to market ``m``, most distressed first.

        ``among``: the accounts the batch path just changed, when nothing else can have moved
        (no cross trader in the market): only they are checked, not the whole book.
        """
        ex = self.ex
        any_isolated, any_cross = self._modes_present(m)
        if among is not None and not any_cross:
            return self._isolated_candidates_among(m, among)
        out: list[tuple[float, int, bool]] = []
        risk = self.markets[m]
        level = ex.markets[m].spec.liquidation.margin_call_ratio
        if any_isolated:
            out += _below(ex.isolated_scan(m, level), isolated=True)
        if any_cross:
            out += _below(ex.cross_scan(m, level), isolated=False)
        now = ex.clock_ns
        if risk.cooldown_until_ns or risk.latency_ns:
            ready = self._ready(m, [c[1] for c in out], now)
            out = [c for c, ok in zip(out, ready, strict=True) if ok]
        out.sort()
        return [(a, isolated) for _, a, isolated in out]

    def _isolated_candidates_among(
        self, m: int, accounts: npt.NDArray[np.int64]
    ) -> list[tuple[int, bool]]:
        if len(accounts) == 0:
            return []
        ex = self.ex
        state = ex.markets[m]
        cols = ex._positions[m]
        a = np.unique(accounts)
        size = cols.size[a]
        equity = cols.isolated_margin[a] + size * (state.mark - cols.entry[a])
        maint = mm.maintenance_margin(np.abs(size) * state.mark, state.tiers)
        below = (size != 0.0) & (cols.mode[a] != 0) & (ex._kind[a] == 0) & (equity < maint)
        now = ex.clock_ns
        accs = a[below].tolist()
        ready = self._ready(m, accs, now)
        out = [
            (_health(e, mt), acc, True)
            for acc, e, mt, ok in zip(
                accs, equity[below].tolist(), maint[below].tolist(), ready, strict=True
            )
            if ok
        ]
        out.sort()
        return [(acc, True) for _, acc, _ in out]

    # ------------------------------------------------------------------ one account
    def _pool(self, a: int, m: int, isolated: bool) -> tuple[float, float]:
        """Equity backing the position and the maintenance it must cover (quote)."""
        ex = self.ex
        if isolated:
            cols = ex._positions[m]
            state = ex.markets[m]
            size = float(cols.size[a])
            equity = float(cols.isolated_margin[a]) + size * (state.mark - float(cols.entry[a]))
            return equity, _maintenance(abs(size) * state.mark, state.tiers)
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
                and not self._book_absorbs(a, j, equity)
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

    def _position_equity(self, a: int, m: int, isolated: bool, pool: float) -> float:
        """Equity backing one position: the isolated pool, or the position's share of the
        cross pool in proportion to its maintenance margin (so several positions of a
        bankrupt cross account each take their part of the deficit to their bankruptcy price).
        """
        if isolated:
            return pool
        ex = self.ex
        own = total = 0.0
        for state, cols in zip(ex.markets, ex._positions, strict=True):
            size = float(cols.size[a])
            if size == 0.0 or cols.mode[a] != MarginMode.CROSS:
                continue
            maint = _maintenance(abs(size) * state.mark, state.tiers)
            total += maint
            if state.id == m:
                own = maint
        if total <= 0.0:
            return pool
        return pool * own / total

    def _recourse(self, a: int, isolated: bool, equity_after: float) -> float:
        """The loss a full close leaves for the fund: for an isolated position, what its
        account's cash cannot take (its negative margin lands in that cash)."""
        if equity_after >= 0.0:
            return 0.0
        if not isolated:
            return -equity_after
        cash = float(self.ex._cash[a]) + self.declared_bad_debt.get(a, 0.0)
        return max(0.0, -(cash + equity_after))

    def _book_absorbs(self, a: int, m: int, pool: float) -> bool:
        """Whether the book fills the whole position at or better than its bankruptcy price."""
        ex = self.ex
        size = float(ex._positions[m].size[a])
        if size == 0.0:
            return True
        side = 1 if size > 0 else -1
        mark = ex.markets[m].mark
        price, filled = self._quote(self.markets[m], -side, abs(size), mark, ex.clock_ns)
        return filled >= abs(size) * (1 - 1e-12) and pool + side * abs(size) * (price - mark) >= 0

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
            down = liq.round_up_to_lot(liq.tier_down_size(size, mark, state.tiers), spec.lot_size)
            return min(abs(size), max(down, spec.lot_size))
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
        # Each unit closed releases its requirement, less the penalty and the loss of filling
        # away from the mark: known in advance for a liquidator's fillable price; a book's
        # slippage is left to the next round (market fills at the mark here, as Drift sizes).
        price = mark
        if policy.execution == "liquidator":
            side = 1 if size > 0 else -1
            pool_share = self._position_equity(a, m, isolated, equity)
            price = liq.fillable_price(
                side=side, oracle_price=mark,
                bankruptcy=liq.bankruptcy_price(size, mark, pool_share),
                maintenance_fraction=float(state.tiers.mmr[t]),
                spread_to_maintenance_ratio=policy.spread_to_maintenance_ratio,
            )  # fmt: skip
        qty = liq.size_to_restore(
            size=size, shortage=shortage, mark=mark, requirement_rate=rate,
            fee_rate=spec.liquidation_fee_rate, fill_price=price,
        )  # fmt: skip
        return min(abs(size), liq.round_up_to_lot(qty, spec.lot_size)) if qty > 0 else 0.0

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
        pool, _ = self._pool(a, m, isolated)
        equity = self._position_equity(a, m, isolated, pool)
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
        beyond = full and self._recourse(a, isolated, equity_after) > ex._cash[fund]
        # The fund cannot cover the shortfall (or the book cannot absorb the order): close
        # against opposing traders instead. Socialized loss fills on the book.
        adl_first = full and (beyond or exhausted) and spec.adl.ranking != "socialized_loss"
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
        pool_after = pool + side * qty * (price - mark)
        penalty = liq.capped_penalty(fee=fee, equity_after_fill=min(equity_after, pool_after))
        if penalty > 0.0:
            ex._emit(
                Transfer(
                    ts_ns=ts, source=a, destination=fund, amount=penalty,
                    reason=int(TransferReason.LIQUIDATION_FEE), market=m if still_open else -1,
                )
            )  # fmt: skip
        shortfall = max(0.0, -equity_after) if (full or isolated) else 0.0
        report.liquidations += 1
        report.liquidated_notional += qty * price
        report.penalties += penalty
        ex._emit(
            Liquidation(
                ts_ns=ts, account=a, market=m, size=-side * qty, price=price, shortfall=shortfall,
                penalty=penalty, bankruptcy_price=bankrupt,
                policy=_POLICY_CODES[spec.liquidation.kind],
            )
        )  # fmt: skip
        if isolated and shortfall > 0.0 and not still_open:
            # The account's own cash took the loss first (the closed position's negative
            # margin went to it); what is still negative goes to the fund, then bad debt.
            owed = max(0.0, -float(ex._cash[a]) - self.declared_bad_debt.get(a, 0.0))
            carried = self.carried_deficit.pop(a, 0.0)
            if owed > 1e-9:
                self._cover(a, m, min(shortfall, owed), ts, report, counted=carried)
        elif isolated and shortfall > 0.0:
            # A partial close (a cap, or slippage) left the open position beyond bankruptcy:
            # the account's cash moves into its margin, the fund pays what it can into it;
            # what is left waits for the position's full close (ADL, or bad debt) and is
            # reported now, once.
            own = min(max(0.0, float(ex._cash[a])), shortfall)
            if own > 0.0:
                ex._emit(MarginMoved(ts_ns=ts, account=a, market=m, amount=own))
            due = shortfall - own
            if due > 1e-9:
                report.shortfall += due
                paid = self._fund_pays(a, m, due, ts, report, into_position=True)
                if due - paid > 1e-9:
                    self.carried_deficit[a] = self.carried_deficit.get(a, 0.0) + due - paid

    def _settle_flat_cross(self, a: int, m: int, ts: int, report: StepReport) -> None:
        """A cross account with no cross positions left and negative cash is bankrupt."""
        ex = self.ex
        if any(cols.size[a] != 0.0 and cols.mode[a] == MarginMode.CROSS for cols in ex._positions):
            return
        shortfall = -float(ex._cash[a]) - self.declared_bad_debt.get(a, 0.0)
        if shortfall > 1e-9:
            self._cover(a, m, shortfall, ts, report)

    def _fund_pays(
        self, a: int, m: int, amount: float, ts: int, report: StepReport,
        *, into_position: bool = False,
    ) -> float:  # fmt: skip
        """The fund pays up to ``amount`` to account ``a`` (into its open isolated position with
        ``into_position``); returns what it paid."""
        ex = self.ex
        fund = ex.insurance_account_for(m)
        paid = min(amount, max(0.0, float(ex._cash[fund])))
        if paid > 0.0:
            ex._emit(
                Transfer(
                    ts_ns=ts, source=fund, destination=a, amount=paid,
                    reason=int(TransferReason.INSURANCE_COVER),
                    market=m if into_position else -1,
                )
            )  # fmt: skip
            report.insurance_paid += paid
        return paid

    def _cover(
        self, a: int, m: int, shortfall: float, ts: int, report: StepReport,
        *, counted: float = 0.0,
    ) -> None:  # fmt: skip
        """The fund pays what it can; socialized loss or bad debt takes the rest.

        ``counted``: part of the shortfall already reported (carried from a partial close).
        """
        ex = self.ex
        report.shortfall += max(0.0, shortfall - counted)
        paid = self._fund_pays(a, m, shortfall, ts, report)
        rest = shortfall - paid
        if rest <= 1e-12 * max(1.0, shortfall):
            return
        if ex.markets[m].spec.adl.ranking == "socialized_loss":
            rest -= self._socialize(a, m, rest, ts, report)
        if rest > 1e-12 * max(1.0, shortfall):
            self._declare_bad_debt(a, m, rest, ts, report)

    def _declare_bad_debt(self, a: int, m: int, amount: float, ts: int, report: StepReport) -> None:
        """Record a loss nobody covered; it stays as the account's negative balance, once."""
        self.declared_bad_debt[a] = self.declared_bad_debt.get(a, 0.0) + amount
        report.bad_debt += amount
        self.ex._emit(BadDebt(ts_ns=ts, account=a, market=m, amount=amount, text="uncovered"))

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
        size = float(cols.size[a])
        side = 1 if size > 0 else -1
        pool, _ = self._pool(a, m, isolated)
        equity = self._position_equity(a, m, isolated, pool)
        bankrupt = liq.bankruptcy_price(size, state.mark, equity)
        price = bankrupt if spec.adl.price == "bankruptcy" else state.mark
        policy = spec.adl.ranking
        queue = self._queue(m, -side)
        need = abs(size)
        if policy == "pro_rata":
            queue.ensure(len(queue.accounts))
            idx = queue.accounts[np.abs(cols.size[queue.accounts]) > 0]
            available = np.abs(cols.size[idx])
            if available.sum() < need * (1 - 1e-12):
                return False
            take = adl_math.allocate_pro_rata(available, need, spec.lot_size)
            order = np.flatnonzero(take > 0)
        else:
            idx, take = queue.walk(cols.size, need)
            if len(idx) == 0:
                return False
            available = np.abs(cols.size[idx])
            order = np.arange(len(idx))
        closed = float(take.sum())
        if closed < need * (1 - 1e-9):
            return False
        sizes_before = cols.size[idx].copy()
        entry_before = cols.entry[idx].copy()
        price = self._solvent_adl_price(m, side, price, idx[take > 0], take[take > 0])
        # The fills close exactly ``need``: float dust (or a lot's overshoot) comes off the
        # last counterparties; a fill left empty is skipped.
        fills = take.astype(np.float64).copy()
        positive = np.flatnonzero(fills > 0).tolist()
        excess = closed - need
        for k in reversed(positive):
            if excess <= 0.0:
                break
            cut = min(excess, float(fills[k]))
            fills[k] -= cut
            excess -= cut
        if excess < 0.0 and positive:
            last = positive[-1]
            fills[last] = min(float(fills[last]) - excess, float(available[last]))
        for k in positive:
            b = int(idx[k])
            q = float(fills[k])
            if q <= 0.0:
                continue
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
        stats = _round_metrics(
            sizes_before[order], entry_before[order], take[order], state.mark, price, minimum
        )
        metrics = {"policy": policy, "counterparties": int((take > 0).sum())}
        metrics.update(stats._asdict())
        ex._emit(
            AdlRound(
                ts_ns=ts, account=a, market=m, size=-size, price=price, amount=stats.profit_taken,
                text=json.dumps(metrics),
            )
        )  # fmt: skip
        report.adl_rounds += 1
        report.adl_notional += stats.notional_closed
        self.carried_deficit.pop(a, None)
        if not isolated:
            self._settle_flat_cross(a, m, ts, report)
        elif cols.size[a] == 0.0:
            owed = -float(ex._cash[a]) - self.declared_bad_debt.get(a, 0.0)
            if owed > 1e-9:  # float dust of the ADL price, or a mark-price ADL's deficit
                self._cover(a, m, owed, ts, report)
        return True

    def _solvent_adl_price(
        self, m: int, side: int, price: float, accounts: npt.NDArray[np.int64], sizes: FloatArray
    ) -> float:
        """The ADL price, moved toward the mark just enough that no counterparty goes bankrupt.

        At the bankruptcy price of a position already beyond bankruptcy (a gap through it)
        the counterparties pay the deficit: ``|price - mark|`` per unit against the mark. That
        is the rule, but never beyond what the weakest of them can pay from its own equity
        ``E_j / q_j``; the rest of the deficit is left to the fund and bad debt.
        """
        mark = self.ex.markets[m].mark
        adverse = side * (price - mark)  # > 0: counterparties pay against the mark
        if adverse <= 0.0 or len(accounts) == 0:
            return price
        equity = np.array([self._pool(int(b), m, self._isolated(int(b), m))[0] for b in accounts])
        # (1 - 1e-9): rounding must not tip the weakest counterparty below zero.
        room = float(np.min(np.maximum(equity, 0.0) / sizes)) * (1.0 - 1e-9)
        return mark + side * min(adverse, room)

    def _isolated(self, a: int, m: int) -> bool:
        return bool(self.ex._positions[m].mode[a] != MarginMode.CROSS)

    def _queue_capacity(self, m: int, side: int) -> float:
        """Total size the ADL queue of one market side holds (base units)."""
        queue = self._queue(m, side)
        cols = self.ex._positions[m]
        return float(np.abs(cols.size[queue.candidates]).sum())

    def _queue(self, m: int, side: int) -> _Queue:
        """The ADL queue of one market side, ranked once per step (venues rank periodically).

        Ranked lazily: only as much of the queue as the step's ADL rounds reach is sorted.
        """
        key = (m, side)
        queue = self._queues.get(key)
        if queue is None:
            ex = self.ex
            state = ex.markets[m]
            cols = ex._positions[m]
            n = ex.n_accounts
            sizes = cols.size[:n]
            policy = state.spec.adl.ranking
            if policy == "pnl_leverage" and not self._modes_present(m)[1]:
                # Only isolated traders: candidates and scores in one compiled pass.
                self.reserve(n)  # reused across steps: no fresh pages
                idx_buf, score_buf = self._queue_buffers
                k = pnl_leverage_queue_nb(
                    sizes, cols.entry[:n], cols.isolated_margin[:n], ex._kind[:n], state.mark,
                    float(side), idx_buf, score_buf,
                )  # fmt: skip
                queue = _Queue(idx_buf[:k].copy(), scores=score_buf[:k].copy())
                self._queues[key] = queue
                return queue
            eligible = (ex._kind[:n] == 0) & (np.sign(sizes) == side)
            if policy != "random_start":
                eligible &= sizes * (state.mark - cols.entry[:n]) > 0.0
            idx = np.flatnonzero(eligible).astype(np.int64)
            if policy == "pro_rata":
                queue = _Queue(idx, order=np.arange(len(idx)))
            elif policy == "random_start":
                queue = _Queue(idx, order=adl_math.random_start_order(len(idx), self.rng))
            else:
                queue = _Queue(idx, scores=self.scores(m, idx))
            self._queues[key] = queue
        return queue

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
        policy = spec.adl.ranking
        iso = cols.mode[idx] == MarginMode.ISOLATED
        equity = cols.isolated_margin[idx] + sizes * (mark - entry)
        cross = None if iso.all() else ex.cached_margin_state()  # cross: account figures
        if cross is not None:
            equity = np.where(iso, equity, cross["cross_equity"][idx])
        if policy in ("binance", "risk_score"):
            maint = mm.maintenance_margin(np.abs(sizes) * mark, state.tiers)
            if cross is not None:
                maint = np.where(iso, maint, cross["cross_maintenance"][idx])
            if policy == "binance":
                wallet = np.where(iso, cols.isolated_margin[idx], ex._cash[idx])
                return adl_math.score_binance(
                    sizes, entry, mark, wallet_balance=wallet, maintenance=maint
                )
            return adl_math.score_risk_score(
                sizes, mark, equity=equity, maintenance=maint, weights=spec.adl.weights
            )
        if policy == "hyperliquid":
            return adl_math.score_hyperliquid(sizes, entry, mark, account_value=equity)
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


class _Queue:
    """Accounts in deleveraging order, consumed from the head as ADL rounds take them.

    With scores, the order is built lazily: :meth:`ensure` sorts the top of the queue (all
    accounts scoring at or above the k-th best, so ties are never split) and grows it on
    demand; the prefix equals that of a full :func:`deleverage.rules.adl.rank`.
    """

    def __init__(
        self,
        idx: npt.NDArray[np.int64],
        *,
        scores: FloatArray | None = None,
        order: npt.NDArray[np.intp] | None = None,
    ) -> None:
        self._idx = idx
        self.candidates = idx  # every queued account, ranked or not yet
        self._scores = scores
        self.complete = order is not None or len(idx) == 0
        self.accounts = idx[order] if order is not None else np.zeros(0, dtype=np.int64)
        self.head = 0

    def ensure(self, count: int) -> None:
        """Rank at least ``count`` accounts (or all of them)."""
        if self.complete or count <= len(self.accounts):
            return
        assert self._scores is not None
        n = len(self._idx)
        k = min(n, max(count, 2 * len(self.accounts), 1024))
        if k >= n:
            sel = np.arange(n)
        else:
            threshold = np.partition(-self._scores, k - 1)[k - 1]
            sel = np.flatnonzero(-self._scores <= threshold)
        order = adl_math.rank(self._scores[sel], self._idx[sel])
        self.accounts = self._idx[sel][order]
        self.complete = len(sel) == n

    def covering(self, size: FloatArray, need: float) -> npt.NDArray[np.int64]:
        """Ranked accounts from the head whose sizes add up to at least ``need`` (or all)."""
        count = 64
        if not self.complete and len(self._idx):
            # First guess from the average candidate size (a strided sample): one partial
            # sort, rarely two.
            stride = max(1, len(self._idx) // 4096)
            mean = float(np.abs(size[self._idx[::stride]]).mean())
            count = max(count, int(1.5 * need / mean) + 64) if mean > 0 else count
        while True:
            self.ensure(self.head + count)
            tail = self.accounts[self.head :]
            if self.complete or np.abs(size[tail]).sum() >= need:
                return tail
            count *= 4

    def walk(self, size: FloatArray, need: float) -> tuple[npt.NDArray[np.int64], FloatArray]:
        """Accounts and sizes to close, in order, to cover ``need``; empty if not enough."""
        candidates = self.covering(size, need)
        taken: list[int] = []
        amounts: list[float] = []
        left = need
        for a in candidates.tolist():
            if left <= 0.0:
                break
            available = abs(float(size[a]))
            if available > 0.0:
                q = min(available, left)
                taken.append(a)
                amounts.append(q)
                left -= q
        if left > need * 1e-12:
            return np.zeros(0, dtype=np.int64), np.zeros(0)
        # Positions wholly taken are done; the head moves past them.
        done = set(taken[:-1])
        while self.head < len(self.accounts) and (
            int(self.accounts[self.head]) in done or size[self.accounts[self.head]] == 0.0
        ):
            self.head += 1
        return np.array(taken, dtype=np.int64), np.array(amounts)


class _Caps:
    """Per-step liquidation caps (dYdX block limits, Synthetix window cap), in notional."""

    def __init__(self, spec: MarketSpec, capital: float = math.inf) -> None:
        self.per_account = spec.liquidation.max_notional_per_account_step
        self.per_market = spec.liquidation.max_notional_per_market_step
        if math.isfinite(capital):
            self.per_market = max(0.0, min(capital, self.per_market or math.inf))
        self.lot_size = spec.lot_size
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
        if qty <= 1e-9 * max(room / price, 1.0) and qty < self.lot_size:
            qty = 0.0  # float remainder of a used-up cap, not a fill
        notional = qty * price
        self.used_market += notional
        self.used_account[a] = self.used_account.get(a, 0.0) + notional
        return qty


def _sizes_to_close(
    size: FloatArray, equity: FloatArray, maintenance: FloatArray, mark: float, spec: MarketSpec
) -> FloatArray:
    """Vectorized :meth:`RiskEngine._size_to_close` for isolated positions (base units)."""
    policy = spec.liquidation
    tiers = spec.tier_arrays
    abs_size = np.abs(size)
    notional = abs_size * mark
    if policy.kind == "full":
        close = abs_size.copy()
    elif policy.kind == "fixed_fraction":
        close = np.where(
            notional > policy.fraction_min_notional, abs_size * policy.fraction, abs_size
        )
    elif policy.kind == "tier_down":
        t = mm.tier_index(notional, tiers)
        target = tiers.floor[t] * (1.0 - 1e-9) / mark
        down = np.ceil((abs_size - target) / spec.lot_size - 1e-9) * spec.lot_size
        close = np.where(t <= 0, abs_size, np.maximum(down, spec.lot_size))
    else:
        t = mm.tier_index(notional, tiers)
        if policy.target == "initial":
            rate = tiers.imr[t]
            requirement = notional * rate
        else:
            rate = tiers.mmr[t] + policy.buffer
            requirement = maintenance + notional * policy.buffer
        shortage = requirement - equity
        release = mark * (rate - spec.liquidation_fee_rate)
        with np.errstate(divide="ignore", invalid="ignore"):
            raw = np.where(release > 0, shortage / release, abs_size)
        lots = np.ceil(raw / spec.lot_size - 1e-9) * spec.lot_size
        close = np.where(shortage <= 0, 0.0, np.minimum(abs_size, lots))
    return np.where(equity <= 0.0, abs_size, np.minimum(close, abs_size))


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _maintenance(notional: float, tiers: TierArrays) -> float:
    """Scalar :func:`deleverage.rules.margin.maintenance_margin` (the per-account path's hot spot)."""
    floor = tiers.floor
    t = len(floor) - 1
    while t > 0 and notional < floor[t]:
        t -= 1
    return float(notional * tiers.mmr[t] - tiers.cum[t])


def _linear_quotes(
    book: LiquidityModel | None, order_side: float, sizes: FloatArray, mark: float
) -> FloatArray:
    """VWAP of a market order of each size on the book's current state, without filling.

    The constant-depth book's closed form (:func:`deleverage.liquidity.linear_fill`) applied to
    every size at once; no book fills at the mark.
    """
    if book is None:
        return np.full(len(sizes), mark)
    assert isinstance(book, ConstantDepthBook)
    depth = book.depth
    y0 = order_side * float(book.snapshot()["consumed_depth"])
    room = max(book.max_move * depth - y0, 0.0)
    filled = np.minimum(sizes, room)
    y1 = y0 + filled
    return mark * (1.0 + order_side * (y0 + y1) / (2.0 * depth))


def _round_metrics_many(
    size: FloatArray,
    entry: FloatArray,
    closed: FloatArray,
    bounds: npt.NDArray[np.intp],
    mark: float,
    price: FloatArray,
    shortfall: FloatArray,
    policy: str,
) -> tuple[FloatArray, FloatArray, Callable[[], list[str]]]:
    """:func:`_round_metrics` for many rounds at once; fills of round ``r`` are
    ``bounds[r]:bounds[r + 1]`` (queue order). Returns profit, notional and a function
    formatting the JSON texts (called when the journal is read)."""
    rounds = len(bounds) - 1
    starts = bounds[:-1]
    fill_round = np.repeat(np.arange(rounds), np.diff(bounds))
    side = np.sign(size)
    unit = np.maximum(side * (mark - entry), 0.0)
    profit_f = closed * unit
    notional_f = closed * price[fill_round]
    haircut_f = closed * side * (mark - price[fill_round])
    profit = np.add.reduceat(profit_f, starts)
    notional = np.add.reduceat(notional_f, starts)
    haircut = np.add.reduceat(haircut_f, starts)
    cum_profit = np.cumsum(profit_f)
    cum_notional = np.cumsum(notional_f)
    base_profit = np.where(starts > 0, cum_profit[np.maximum(starts - 1, 0)], 0.0)
    base_notional = np.where(starts > 0, cum_notional[np.maximum(starts - 1, 0)], 0.0)
    k = np.searchsorted(cum_profit, base_profit + shortfall, side="left")
    covered = (k < bounds[1:]) & (shortfall > 0)
    kk = np.minimum(k, len(profit_f) - 1)
    before = np.where(k > starts, cum_profit[np.maximum(kk - 1, 0)] - base_profit, 0.0)
    before_notional = np.where(k > starts, cum_notional[np.maximum(kk - 1, 0)] - base_notional, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        part = np.minimum((shortfall - before) / unit[kk], closed[kk])
        ratio = np.where(shortfall > 0, profit / shortfall, np.where(profit > 0, np.inf, 1.0))
    required = np.where(
        shortfall <= 0, 0.0, np.where(covered, before_notional + part * price, notional)
    )
    columns = list(
        zip(
            np.diff(bounds).tolist(), notional.tolist(), profit.tolist(), shortfall.tolist(),
            ratio.tolist(), required.tolist(), haircut.tolist(), strict=True,
        )
    )  # fmt: skip
    name = json.dumps(policy)[1:-1]
    finite = bool(np.isfinite(ratio).all() and np.isfinite(required).all())
    return profit, notional, lambda: _metric_texts(columns, name, finite)


def _metric_texts(columns: list[tuple[Any, ...]], name: str, finite: bool) -> list[str]:
    """The ADL round metrics as JSON texts (formatted only when the journal is read)."""
    rows = list(columns)
    if finite:
        # All finite (the usual case): floats print as JSON does, via repr, without a call each.
        texts = [
            f'{{"policy": "{name}", "counterparties": {c}, "notional_closed": {n!r}, '
            f'"profit_taken": {p!r}, "shortfall": {sh!r}, "excess_profit": {p - sh!r}, '
            f'"profit_ratio": {r!r}, "notional_required": {q!r}, "haircut_vs_mark": {h!r}}}'
            for c, n, p, sh, r, q, h in rows
        ]
    else:
        template = (
            '{{"policy": "{}", "counterparties": {}, "notional_closed": {}, "profit_taken": {}, '
            '"shortfall": {}, "excess_profit": {}, "profit_ratio": {}, "notional_required": {}, '
            '"haircut_vs_mark": {}}}'
        )
        texts = [
            template.format(name, c, _js(n), _js(p), _js(sh), _js(p - sh), _js(r), _js(q), _js(h))
            for c, n, p, sh, r, q, h in rows
        ]
    return texts


def _js(x: float) -> str:
    """A float as JSON writes it (``json.dumps``): repr, with Infinity and NaN tokens."""
    if x != x:
        return "NaN"
    if x in (math.inf, -math.inf):
        return "Infinity" if x > 0 else "-Infinity"
    return repr(x)


def _round_metrics(
    size: FloatArray,
    entry: FloatArray,
    closed: FloatArray,
    mark: float,
    price: float,
    shortfall: float,
) -> adl_math.AdlRoundMetrics:
    """Scalar-loop :func:`deleverage.rules.adl.adl_round_metrics` for the few positions of a round.

    Same definitions, in queue order; a differential test checks both agree.
    """
    sides = [1.0 if v > 0 else -1.0 if v < 0 else 0.0 for v in size.tolist()]
    q = closed.tolist()
    unit = [max(sd * (mark - e), 0.0) for sd, e in zip(sides, entry.tolist(), strict=True)]
    profits = [qi * u for qi, u in zip(q, unit, strict=True)]
    notionals = [qi * price for qi in q]
    profit = math.fsum(profits)
    notional = math.fsum(notionals)
    haircut = math.fsum(qi * sd * (mark - price) for qi, sd in zip(q, sides, strict=True))
    if shortfall == 0:
        ratio = math.inf if profit > 0 else 1.0
        required = 0.0
    else:
        ratio = profit / shortfall
        required = notional
        running = 0.0
        for k, p in enumerate(profits):
            before = running
            running += p  # np.cumsum adds left to right, as here
            if running >= shortfall:
                part = min((shortfall - before) / unit[k], q[k])
                required = math.fsum(notionals[:k]) + part * price
                break
    return adl_math.AdlRoundMetrics(
        notional_closed=notional,
        profit_taken=profit,
        shortfall=shortfall,
        excess_profit=profit - shortfall,
        profit_ratio=ratio,
        notional_required=required,
        haircut_vs_mark=haircut,
    )


def _below(scan: dict[str, Any], *, isolated: bool) -> list[tuple[float, int, bool]]:
    """(health, account, isolated) of a scan's accounts under maintenance."""
    return [
        (_health(e, mt), a, isolated)
        for a, e, mt in zip(
            scan["below"].tolist(), scan["below_equity"].tolist(),
            scan["below_maintenance"].tolist(), strict=True,
        )
    ]  # fmt: skip


def _health(equity: float, maintenance: float) -> float:
    return float(equity - maintenance) / max(float(maintenance), 1e-12)
