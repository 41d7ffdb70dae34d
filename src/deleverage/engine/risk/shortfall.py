"""Stage 1 of the risk step: who pays a shortfall, and in what order.

The equity backing a position (its pool), the insurance fund's cover, socialized loss,
declared bad debt, and automated deleveraging against the ranked queue of opposing traders.
The later stages (:mod:`.liquidate`, :mod:`.batch`, :mod:`.step`) build on it.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from deleverage.engine.adl_index import AdlIndex
from deleverage.engine.collateral import cover_deficit, ex_has_collateral
from deleverage.engine.events import (
    AdlRound,
    BadDebt,
    Fill,
    FillReason,
    Transfer,
    TransferReason,
)
from deleverage.engine.kernels import pnl_leverage_queue_nb
from deleverage.engine.report_log import ReportLog
from deleverage.engine.risk import liquidator
from deleverage.engine.risk.adl_queue import DenseQueue, IndexedQueue, pnl_leverage_scores_nb
from deleverage.engine.risk.policy_adl import adl_with_policy
from deleverage.engine.risk.support import (
    FloatArray,
    MarketRisk,
    StepReport,
    _maintenance,
    _Queue,
    _round_metrics,
)
from deleverage.engine.state import AccountKind
from deleverage.rules import adl as adl_math
from deleverage.rules import liquidation as liq
from deleverage.rules import margin as mm
from deleverage.rules.adl_ranking import PnlLeverageRanking, RankingInputs, ranking_for
from deleverage.spec import MarginMode

if TYPE_CHECKING:
    from deleverage.engine.exchange import Exchange


class ShortfallStage:
    """Stage 1: fund, socialized loss, bad debt and ADL."""

    def __init__(self, exchange: Exchange, *, seed: int = 0) -> None:
        self.ex = exchange
        self.markets: list[MarketRisk] = []
        self.rng = np.random.default_rng(seed)
        self.reports = ReportLog()  # list-like: quiet stretches held as runs
        self._queues: dict[tuple[int, int], _Queue] = {}
        self._modes_cache: dict[int, tuple[int, tuple[bool, bool]]] = {}
        self._queue_buffers: tuple[npt.NDArray[np.int64], FloatArray, FloatArray] = (
            np.empty(0, dtype=np.int64),
            np.empty(0),
            np.empty(0),
        )
        #: The queue whose candidates and scores are views of ``_queue_buffers`` (the
        #: buffers are rewritten only once it has left ``_queues``, at the next step).
        self._buffers_user: _Queue | None = None
        #: Whether isolated ``pnl_leverage`` queues are scored into one dense array
        #: (:class:`DenseQueue`); False: the compacting pass (the twin tests' reference).
        self.dense_queue = True
        #: Whether those dense queues are answered from the ADL cells kept across steps
        #: (:mod:`deleverage.engine.adl_index`); False: one dense pass per step.
        self.adl_index = True
        #: Deficit per account already declared as bad debt (quote), so it is declared once.
        self.declared_bad_debt: dict[int, float] = {}
        #: Deficit of open isolated positions left by a partial close, already reported.
        self.carried_deficit: dict[int, float] = {}
        #: The backstop vault's loss limit (quote; None: its whole net capital).
        self.backstop_max_loss: float | None = None
        #: Margin the vault took over with its open position, per market (quote).
        self.backstop_basis: dict[int, float] = {}
        #: Seconds positions spent under maintenance waiting for a liquidator (summed).
        self.under_collateralized_s = 0.0
        self._scratch_flags = np.zeros(0, dtype=np.bool_)
        #: The venue's bad-debt account once found or opened (a scan of account kinds, once).
        self._bad_debt_id: int | None = None
        #: Time ramps (Drift): when each pool entered liquidation (ns) and the margin shortage
        #: freed since (quote), keyed by (market, account) for an isolated position and
        #: (-1, account) for a cross account; dropped when the pool leaves liquidation.
        self.liquidation_entered_ns: dict[tuple[int, int], int] = {}
        self.margin_freed: dict[tuple[int, int], float] = {}
        #: Insurance paid so far per market (quote), held against ``MarketSpec.insurance_cap``.
        self.insurance_paid_by_market: dict[int, float] = {}

    def reserve(self, capacity: int) -> None:
        """Allocate (and touch) the step's working buffers for ``capacity`` accounts.

        Called as the engine grows, so a step never pays for fresh memory pages.
        """
        if len(self._queue_buffers[0]) < capacity:
            idx, score = np.empty(capacity, dtype=np.int64), np.empty(capacity)
            sizes = np.empty(capacity)
            idx.fill(0)  # touch the pages now (np.zeros would map them lazily)
            score.fill(0.0)
            sizes.fill(0.0)
            self._queue_buffers = (idx, score, sizes)

    def add_market(self) -> None:
        self.markets.append(MarketRisk())

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
        return ex.cross_pool(a)

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

    def _isolated(self, a: int, m: int) -> bool:
        return bool(self.ex._positions[m].mode[a] != MarginMode.CROSS)

    def _modes_present(self, m: int) -> tuple[bool, bool]:
        """Whether any trader is isolated / cross in market ``m`` (cached per account layout)."""
        layout = self.ex.layout_version  # four calls a risk step: no key tuple to build
        hit = self._modes_cache.get(m)
        if hit is not None and hit[0] == layout:
            return hit[1]
        n = self.ex.n_accounts
        mode = self.ex._positions[m].mode[:n]
        trader = self.ex._kind[:n] == 0
        present = (bool((mode != 0).any()), bool(((mode == 0) & trader).any()))
        self._modes_cache[m] = (layout, present)
        return present

    def _cross_order(self, a: int) -> list[int]:
        """The markets of ``a``'s cross positions in :func:`~deleverage.rules.liquidation.
        close_order`'s order (largest maintenance first, ties in market order)."""
        ids, maint = self.ex.cross_maintenances(a)
        if len(ids) < 2:
            return ids
        order = liq.close_order(np.array(maint))
        return [ids[k] for k in order.tolist()]

    def _quote(
        self, risk: MarketRisk, side: int, qty: float, mark: float, ts: int
    ) -> tuple[float, float]:
        """VWAP and size a market order would fill, without consuming depth."""
        if risk.liquidity is None:
            return mark, qty
        fill = risk.liquidity.quote(side, qty, risk.book_price(mark), ts)
        return float(fill.vwap), float(fill.size)

    def _execute(
        self, risk: MarketRisk, side: int, qty: float, mark: float, ts: int
    ) -> tuple[float, float]:
        """VWAP and size filled by a market order, consuming depth."""
        if risk.liquidity is None:
            return mark, qty
        fill = risk.liquidity.execute(side, qty, risk.book_price(mark), ts)
        return float(fill.vwap), float(fill.size)

    def _fund_pays(
        self, a: int, m: int, amount: float, ts: int, report: StepReport,
        *, into_position: bool = False,
    ) -> float:  # fmt: skip
        """The fund pays up to ``amount`` to account ``a`` (into its open isolated position with
        ``into_position``); returns what it paid."""
        ex = self.ex
        fund = ex.insurance_account_for(m)
        paid = min(amount, self._fund_available(m))
        if paid > 0.0:
            ex._emit(
                Transfer(
                    ts_ns=ts, source=fund, destination=a, amount=paid,
                    reason=int(TransferReason.INSURANCE_COVER),
                    market=m if into_position else -1,
                )
            )  # fmt: skip
            report.insurance_paid += paid
            self.insurance_paid_by_market[m] = self.insurance_paid_by_market.get(m, 0.0) + paid
        return paid

    def _fund_available(self, m: int) -> float:
        """What the fund can still pay for market ``m``: its cash, within the market's cap."""
        ex = self.ex
        cash = max(0.0, float(ex._cash[ex.insurance_account_for(m)]))
        cap = ex.markets[m].spec.insurance_cap
        if cap is None:
            return cash
        return min(cash, max(0.0, cap - self.insurance_paid_by_market.get(m, 0.0)))

    def _fund_trigger(self, m: int, ts: int) -> bool:
        """Whether ADL takes over shortfalls of ``m`` the fund could still pay: the fund's
        drawdown over its window reached ``adl.trigger_fund_drawdown`` and has not recovered
        below ``adl.trigger_fund_drawdown_stop`` since (Bybit's ADL trigger, with its stop)."""
        policy = self.ex.markets[m].spec.adl
        if policy.trigger_fund_drawdown is None:
            return False
        _, fraction = self.ex.insurance_fund(m).drawdown_over_window(ts)
        risk = self.markets[m]
        stop = policy.trigger_fund_drawdown_stop or policy.trigger_fund_drawdown
        if risk.fund_trigger_on:
            risk.fund_trigger_on = fraction >= stop
        else:
            risk.fund_trigger_on = fraction >= policy.trigger_fund_drawdown
        return risk.fund_trigger_on

    def _over_takeover_cap(self, m: int, qty: float) -> bool:
        """Whether a bankrupt position of ``qty`` is beyond what the fund may take over:
        notional at the mark above ``adl.fund_takeover_max_notional`` times the fund
        (Binance's maximum net notional position)."""
        state = self.ex.markets[m]
        cap = state.spec.adl.fund_takeover_max_notional
        if cap is None:
            return False
        fund = max(0.0, float(self.ex._cash[self.ex.insurance_account_for(m)]))
        return qty * state.mark > cap * fund

    def _fee_pool_pays(self, a: int, m: int, amount: float, ts: int, report: StepReport) -> float:
        """The venue's fee pool (the fee account) pays up to ``amount`` after the fund (Drift's
        internal insurance); reported as insurance paid. Returns what it paid."""
        ex = self.ex
        paid = min(amount, max(0.0, float(ex._cash[ex.fee_account])))
        if paid > 0.0:
            ex._emit(
                Transfer(
                    ts_ns=ts, source=ex.fee_account, destination=a, amount=paid,
                    reason=int(TransferReason.INSURANCE_COVER),
                )
            )  # fmt: skip
            report.insurance_paid += paid
        return paid

    def _cover(
        self, a: int, m: int, shortfall: float, ts: int, report: StepReport,
        *, counted: float = 0.0, fenced: bool = False,
    ) -> None:  # fmt: skip
        """The account's collateral is sold first; then the fund pays what it can; socialized
        loss or bad debt takes the rest.

        ``counted``: part of the shortfall already reported (carried from a partial close).
        ``fenced``: the deficit of a closed isolated position without recourse, so declared
        bad debt must not stay on the account's other cash (see :meth:`_declare_bad_debt`).
        """
        ex = self.ex
        if not fenced and ex_has_collateral(ex):
            # The venue converts the account's collateral first (engine/collateral.py).
            shortfall -= cover_deficit(ex, a, ts)
            if shortfall <= 1e-12:
                return
        report.shortfall += max(0.0, shortfall - counted)
        paid = self._fund_pays(a, m, shortfall, ts, report)
        rest = shortfall - paid
        if rest <= 1e-12 * max(1.0, shortfall):
            return
        if ex.markets[m].spec.adl.fee_pool_pays:
            rest -= self._fee_pool_pays(a, m, rest, ts, report)
            if rest <= 1e-12 * max(1.0, shortfall):
                return
        if ranking_for(ex.markets[m].spec.adl).allocation == "socialized":
            rest -= self._socialize(a, m, rest, ts, report)
        if rest > 1e-12 * max(1.0, shortfall):
            self._declare_bad_debt(a, m, rest, ts, report, fenced=fenced)

    def _declare_bad_debt(
        self, a: int, m: int, amount: float, ts: int, report: StepReport, *, fenced: bool = False
    ) -> None:
        """Record a loss nobody covered, once.

        A cross account keeps it as its negative balance. A closed isolated position without
        recourse (``fenced``) must not take it from the account's other cash: the venue's
        bad-debt account writes it off to the account, so the hole shows there, as that
        account's negative equity (one line of :meth:`Exchange.conservation`).
        """
        report.bad_debt += amount
        if fenced:
            self.ex._emit(
                Transfer(
                    ts_ns=ts, source=self._bad_debt_account(), destination=a, amount=amount,
                    reason=int(TransferReason.BAD_DEBT_WRITE_OFF),
                )
            )  # fmt: skip
        else:
            self.declared_bad_debt[a] = self.declared_bad_debt.get(a, 0.0) + amount
        self.ex._emit(BadDebt(ts_ns=ts, account=a, market=m, amount=amount, text="uncovered"))

    def _bad_debt_account(self) -> int:
        """The venue's bad-debt account, opened the first time a fenced loss needs it."""
        ex = self.ex
        cached = self._bad_debt_id
        if cached is not None and ex._kind[cached] == AccountKind.BAD_DEBT:
            return cached
        found = np.flatnonzero(ex._kind[: ex.n_accounts] == AccountKind.BAD_DEBT)
        if len(found):
            self._bad_debt_id = int(found[0])
        else:
            self._bad_debt_id = ex.open_account(
                kind=AccountKind.BAD_DEBT, label="bad-debt", ts_ns=ex.clock_ns
            )
        return self._bad_debt_id

    def _recourse_allowed(self, m: int) -> bool:
        """Whether isolated positions of market ``m`` may draw on their account's other cash."""
        return self.ex.markets[m].spec.liquidation.isolated_recourse

    def _settle_flat_cross(self, a: int, m: int, ts: int, report: StepReport) -> None:
        """A cross account with no cross positions left and negative cash is bankrupt."""
        ex = self.ex
        if any(cols.size[a] != 0.0 and cols.mode[a] == MarginMode.CROSS for cols in ex._positions):
            return
        shortfall = -float(ex._cash[a]) - self.declared_bad_debt.get(a, 0.0)
        if shortfall > 1e-9:
            self._cover(a, m, shortfall, ts, report)

    # ------------------------------------------------------------------ ADL
    def _adl(
        self, a: int, m: int, isolated: bool, ts: int, report: StepReport, *, at_mark: bool = False
    ) -> bool:
        """Close the bankrupt position against opposing traders. True if fully closed.

        ``at_mark``: at the mark whatever the market's ADL price (the backstop vault's).
        """
        ex = self.ex
        state = ex.markets[m]
        spec = state.spec
        if spec.adl.deleveraging is not None:  # an ADL-laboratory policy decides
            return adl_with_policy(self, a, m, isolated, ts, report)
        cols = ex._positions[m]
        size = float(cols.size[a])
        side = 1 if size > 0 else -1
        if spec.adl.counterparty == "refuse":  # dYdX: skip, never move the price
            liquidator.deleverage_position(self, a, m, abs(size), ts, report)
            return bool(cols.size[a] == 0.0)
        pool, _ = self._pool(a, m, isolated)
        equity = self._position_equity(a, m, isolated, pool)
        bankrupt = liq.bankruptcy_price(size, state.mark, equity)
        price = bankrupt if spec.adl.price == "bankruptcy" and not at_mark else state.mark
        ranking = ranking_for(spec.adl)
        policy = ranking.name
        need = abs(size)
        found = self._adl_allocation(m, -side, need)
        if found is None:
            return False
        idx, take, available, order = found
        sizes_before = cols.size[idx].copy()
        entry_before = cols.entry[idx].copy()
        price = self._solvent_adl_price(m, side, price, idx[take > 0], take[take > 0])
        fills = _fills_closing_exactly(take, available, need)
        for k in np.flatnonzero(fills > 0).tolist():
            b = int(idx[k])
            q = float(fills[k])
            buyer, seller = (b, a) if side > 0 else (a, b)
            ex._emit(
                Fill(
                    ts_ns=ts, market=m, buyer=buyer, seller=seller, size=q, price=price,
                    reason=FillReason.ADL, note=policy,
                )
            )  # fmt: skip
        # What the round had to cover: the position's deficit at the mark (not the slippage
        # of a book fill that did not happen; see rules.deleveraging_metrics).
        minimum = max(0.0, -equity)
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
        # The deficit the counterparties took: the bankrupt side's fills away from the mark.
        adl_loss = max(0.0, min(side * need * (price - state.mark), max(0.0, -equity)))
        carried = self.carried_deficit.pop(a, 0.0)
        report.adl_loss += adl_loss
        report.shortfall += adl_loss - min(carried, adl_loss)
        carried = max(0.0, carried - adl_loss)
        if not isolated:
            self._settle_flat_cross(a, m, ts, report)
        elif cols.size[a] == 0.0:
            equity_after = equity + side * need * (price - state.mark)
            self._settle_closed_isolated(a, m, equity_after, ts, report, counted=carried)
        return True

    def _adl_allocation(
        self, m: int, side: int, need: float
    ) -> tuple[npt.NDArray[np.int64], FloatArray, FloatArray, npt.NDArray[np.intp]] | None:
        """Who the queue of ``side`` deleverages for a bankrupt size ``need`` (base) and how
        much each takes (pro rata, or ranked); None when the queue cannot take it all."""
        ex = self.ex
        spec = ex.markets[m].spec
        cols = ex._positions[m]
        queue = self._queue(m, side)
        if ranking_for(spec.adl).allocation == "pro_rata":
            queue.ensure(len(queue.accounts))
            idx = queue.accounts[np.abs(cols.size[queue.accounts]) > 0]
            available = np.abs(cols.size[idx])
            if available.sum() < need * (1 - 1e-12):
                return None
            take = adl_math.allocate_pro_rata(available, need, spec.lot_size)
            order = np.flatnonzero(take > 0)
        else:
            idx, take = queue.walk(cols.size, need)
            if len(idx) == 0:
                return None
            available = np.abs(cols.size[idx])
            order = np.arange(len(idx))
        if float(take.sum()) < need * (1 - 1e-9):
            return None
        return idx, np.asarray(take, dtype=np.float64), available, order

    def _settle_closed_isolated(
        self, a: int, m: int, equity_after: float, ts: int, report: StepReport,
        *, counted: float = 0.0,
    ) -> None:  # fmt: skip
        """Cover the deficit a closed isolated position left (float dust of an ADL price, a
        mark-price ADL's deficit): from its margin alone, or with recourse what the account's
        cash could not take."""
        if self._recourse_allowed(m):
            owed = -float(self.ex._cash[a]) - self.declared_bad_debt.get(a, 0.0)
            if owed > 1e-9:
                self._cover(a, m, owed, ts, report, counted=counted)
        elif -equity_after > 1e-9:
            self._cover(a, m, -equity_after, ts, report, counted=counted, fenced=True)

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

    def _queue_capacity(self, m: int, side: int, *, bound: float | None = None) -> float:
        """Total size the ADL queue of one market side holds (base units).

        ``bound``: the batch planner's total bankrupt size on the other side, with a margin.
        The planner only asks whether the capacity left still holds each flagged size, so
        every capacity at or above that total takes the same decisions: a dense queue sums
        its candidates only until it reaches ``bound`` (the full sum when it does not).
        """
        queue = self._queue(m, side)
        cols = self.ex._positions[m]
        if isinstance(queue, DenseQueue):
            if bound is not None and queue.version == self.ex.positions_version(m):
                return queue.capacity_at_least(cols.size, bound)
            return queue.capacity_exact(cols.size)
        if queue.capacity is not None and queue.capacity[0] == self.ex.positions_version(m):
            return queue.capacity[1]  # summed as the queue was built, nothing moved since
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
            ranking = ranking_for(state.spec.adl)
            if isinstance(ranking, PnlLeverageRanking) and not self._modes_present(m)[1]:
                # Only isolated traders: candidates and scores in one compiled pass.
                # The step's first queue is written into the reserved buffers and views them
                # (reused across steps: no fresh pages, no copy); a queue built while that
                # one lives gets arrays of its own.
                shared = all(q is not self._buffers_user for q in self._queues.values())
                if self.dense_queue and self.adl_index:
                    queue = self._indexed_queue(m, side)
                    self._queues[key] = queue
                    return queue
                if self.dense_queue:
                    if shared:
                        self.reserve(n)
                        scores = self._queue_buffers[1][:n]
                    else:
                        scores = np.empty(n)
                    count, _ = pnl_leverage_scores_nb(
                        sizes, cols.entry[:n], cols.isolated_margin[:n], ex._kind[:n],
                        state.mark, float(side), scores,
                    )  # fmt: skip
                    queue = DenseQueue(scores, count, ex.positions_version(m))
                    if shared:
                        self._buffers_user = queue
                    self._queues[key] = queue
                    return queue
                if shared:
                    self.reserve(n)
                    buffers = self._queue_buffers
                else:
                    buffers = (np.empty(n, dtype=np.int64), np.empty(n), np.empty(n))
                k = pnl_leverage_queue_nb(
                    sizes, cols.entry[:n], cols.isolated_margin[:n], ex._kind[:n], state.mark,
                    float(side), *buffers,
                )  # fmt: skip
                # The same sum as np.abs(size[candidates]).sum(): same values, same order.
                capacity = (ex.positions_version(m), float(buffers[2][:k].sum()))
                idx, scores = buffers[0][:k], buffers[1][:k]
                if not shared:
                    idx, scores = idx.copy(), scores.copy()
                queue = _Queue(idx, scores=scores, capacity=capacity)
                if shared:
                    self._buffers_user = queue
                self._queues[key] = queue
                return queue
            eligible = (ex._kind[:n] == 0) & (np.sign(sizes) == side)
            if not ranking.takes_losers:
                eligible &= sizes * (state.mark - cols.entry[:n]) > 0.0
            idx = np.flatnonzero(eligible).astype(np.int64)
            walk = ranking.order(len(idx), self.rng)
            if walk is not None:
                queue = _Queue(idx, order=walk)
            else:
                queue = _Queue(idx, scores=self.scores(m, idx))
            self._queues[key] = queue
        return queue

    def _indexed_queue(self, m: int, side: int) -> IndexedQueue:
        """The dense queue of an isolated ``pnl_leverage`` market side, answered from the
        market's ADL cells (built on first use if positions were not loaded in bulk)."""
        ex = self.ex
        n = ex.n_accounts
        cols = ex._positions[m]
        live = (cols.size[:n], cols.entry[:n], cols.isolated_margin[:n], ex._kind[:n])
        index = ex._adl_index.get(m)
        if index is None:
            index = ex._adl_index[m] = AdlIndex(m)
        cells = index.side(side, *live)
        return IndexedQueue(
            cells, live, ex.markets[m].mark, n, ex.positions_version(m),
            check=ex.check_invariants,
        )  # fmt: skip

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
        ranking = ranking_for(spec.adl)
        iso = cols.mode[idx] == MarginMode.ISOLATED
        equity = cols.isolated_margin[idx] + sizes * (mark - entry)
        cross = None if iso.all() else ex.cached_margin_state()  # cross: account figures
        if cross is not None:
            equity = np.where(iso, equity, cross["cross_equity"][idx])
        maint = np.zeros(len(idx))
        if ranking.needs_maintenance:
            maint = mm.maintenance_margin(np.abs(sizes) * mark, state.tiers)
            if cross is not None:
                maint = np.where(iso, maint, cross["cross_maintenance"][idx])
        wallet = np.where(iso, cols.isolated_margin[idx], ex._cash[idx])
        scores = ranking.scores(RankingInputs(sizes, entry, mark, equity, wallet, maint, ~iso))
        if scores is None:  # rankings without a score are shown by the default one
            return adl_math.score_pnl_leverage(sizes, entry, mark, equity=equity)
        return scores

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

    def _ready(self, m: int, accounts: list[int], ts: int) -> list[bool]:
        """Which accounts a liquidator has reached (cooldowns and latency) at ``ts``."""
        risk = self.markets[m]
        cooldown, latency, pending = risk.cooldown_until_ns, risk.latency_ns, risk.pending
        if self.ex.markets[m].spec.liquidation.cooldown_mode == "full_position":
            cooldown = {}  # a cooldown changes how much is closed, not whether (see _size_to_close)
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


def _fills_closing_exactly(take: FloatArray, available: FloatArray, need: float) -> FloatArray:
    """The fills close exactly ``need`` (base): float dust (or a lot's overshoot) comes off the
    last counterparties, a shortfall of dust is added to the last one within its size; a fill
    left at zero is skipped by the caller."""
    fills = take.astype(np.float64).copy()
    positive = np.flatnonzero(fills > 0).tolist()
    excess = float(take.sum()) - need
    for k in reversed(positive):
        if excess <= 0.0:
            break
        cut = min(excess, float(fills[k]))
        fills[k] -= cut
        excess -= cut
    if excess < 0.0 and positive:
        last = positive[-1]
        fills[last] = min(float(fills[last]) - excess, float(available[last]))
    return fills
