"""Stage 3 of the risk step: the compiled batch path for isolated positions.

The same rules as :mod:`.liquidate`, planned for every isolated position under maintenance by
one kernel in distress order; the fills and transfers are written as columnar journal batches
and flagged positions are deleveraged together.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import numpy.typing as npt

from deleverage.engine import kernels
from deleverage.engine.events import (
    EventKind,
    FillReason,
    TransferReason,
)
from deleverage.engine.risk import batch_round, batch_settle
from deleverage.engine.risk.adl_batch_kernels import capped_prices_nb, match_needs_nb
from deleverage.engine.risk.distress import distress_order as distress_order
from deleverage.engine.risk.distress import ranked_candidates_nb
from deleverage.engine.risk.liquidate import LiquidationStage
from deleverage.engine.risk.ordered_batch import batch_in_order
from deleverage.engine.risk.step_kernels import close_sizes_nb
from deleverage.engine.risk.support import (
    _NS,
    _POLICY_CODES,
    FloatArray,
    StepReport,
    _Caps,
    _round_metrics_many,
    _sizes_to_close,
)
from deleverage.liquidity import ConstantDepthBook
from deleverage.rules.adl_ranking import ranking_for
from deleverage.spec import MarketSpec, TierArrays

if TYPE_CHECKING:
    from deleverage.engine.exchange import Exchange

#: Margin over the bankrupt sizes that a partial sum of a queue's capacity must reach for the
#: planner to take every decision it would take with the full sum (see ``_queue_capacity``).
_BOUND = 1.0 + 4e-6
#: Most candidates ranked by :func:`ranked_candidates_nb`: it saves a round's dozen NumPy
#: calls (55 candidates: 6 us against 25-55 us), but Numba's sort costs more per element than
#: NumPy's (500 candidates: 54 us against 32 us; 10,114: 3.0 ms against 0.7 ms).
_RANKED_MAX = 200


class _BatchPlan(NamedTuple):
    """The compiled planner's output for the positions it saw (arrays of one length, in
    distress order): account, size and equity before, and per position the size filled, its
    price, the penalty, the shortfall, the fund's cover, the account's cash moved into the
    position, and whether it waits for ADL."""

    idx: npt.NDArray[np.int64]
    size: FloatArray
    equity: FloatArray
    filled: FloatArray
    price: FloatArray
    penalty: FloatArray
    shortfall: FloatArray
    cover: FloatArray
    own: FloatArray
    to_adl: npt.NDArray[np.bool_]
    #: ``filled`` to ``own`` as the rows of one array (the settlement kernel reads it whole).
    planned: FloatArray


_RoundAfter = tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], FloatArray]


class BatchStage(LiquidationStage):
    """Stage 3: the batch path for isolated positions."""

    def __init__(self, exchange: Exchange, *, seed: int = 0) -> None:
        super().__init__(exchange, seed=seed)
        #: Per market, the spec's figures for the one-call round (:mod:`.batch_round`).
        self.round_fixed: dict[int, batch_round.RoundFixed] = {}
        #: The last one-call round's accounts and those of them still under maintenance with
        #: their health, as the next round's check would find them (taken by that check).
        self.round_after: _RoundAfter | None = None
        #: Per market, :meth:`_batchable`'s answer from the rules (with the spec, book kind
        #: and whether liquidator capital is capped that gave it).
        self._batchable_rules: dict[int, tuple[MarketSpec, type, bool, bool]] = {}

    # ------------------------------------------------------------------ batch fast path
    def _batchable(self, m: int) -> bool:
        """Whether isolated liquidations in ``m`` can take the compiled batch path.

        It covers market execution on no book (fills at the mark) or a constant-depth book,
        without backstop, per-step caps or socialized loss, in steps where no cross account
        of the market is under maintenance; everything else takes the per-account path. A
        market whose ADL follows the fund's drawdown takes :mod:`.ordered_batch` (without
        recourse to the account's other cash or time ramps: ``_in_order_covers``).
        """
        spec = self.ex.markets[m].spec
        book = self.markets[m].liquidity
        capped = math.isfinite(self.markets[m].capital_per_step)
        cached = self._batchable_rules.get(m)
        if cached is None or not (  # the rules' part, once per spec and book kind
            cached[0] is spec and cached[1] is type(book) and cached[2] == capped
        ):
            cached = self._batchable_rules[m] = (spec, type(book), capped,
                                                 self._batchable_rules_of(m))  # fmt: skip
        if not cached[3]:
            return False
        # Cross accounts under maintenance in this market too: the per-account path orders
        # everyone by distress (the batch would serve every isolated position first).
        if self._modes_present(m)[1]:
            scan = self.ex.cross_scan(m, spec.liquidation.margin_call_ratio)
            if len(scan["below"]):
                return False
        return True

    def _batchable_rules_of(self, m: int) -> bool:
        """The part of :meth:`_batchable` that the market's rules and book kind decide."""
        spec = self.ex.markets[m].spec
        policy = spec.liquidation
        book = self.markets[m].liquidity
        if math.isfinite(self.markets[m].capital_per_step):
            return False  # liquidator capital caps the step: the per-account path clips
        return (
            policy.execution == "market"
            and policy.kind != "portion"
            and policy.max_insurance_loss_per_account_step is None
            and policy.backstop_equity_fraction == 0.0
            and policy.max_notional_per_account_step is None
            and policy.max_notional_per_market_step is None
            and ranking_for(spec.adl).allocation != "socialized"  # charges others between fills
            and spec.insurance_cap is None  # the per-account path holds the cap
            and (spec.adl.trigger_fund_drawdown is None or _in_order_covers(spec))
            and policy.cooldown_mode == "skip"
            and policy.fee_basis == "fill"
            and spec.min_maintenance_margin == 0.0  # partial sizes assume tiered margin
            and (book is None or type(book) is ConstantDepthBook)
        )

    def _batch_isolated(
        self, m: int, ts: int, report: StepReport, caps: _Caps
    ) -> npt.NDArray[np.int64] | None:
        """Liquidate every isolated position below maintenance in ``m`` with array operations.

        The same rules as :meth:`_close`, planned by a compiled kernel in the same order
        (most distressed first); positions the fund cannot carry are left to the per-account
        path, which sends them to ADL.
        """
        if not self._modes_present(m)[0]:
            return None  # no isolated position in this market
        if self.ex.markets[m].spec.adl.trigger_fund_drawdown is not None:
            return batch_in_order(self, m, ts, report, caps)
        found = self._batch_found(m, ts)
        if found is None:
            return np.zeros(0, dtype=np.int64)
        if batch_settle.ENABLED and batch_round.FUSED:
            # the whole round in one kernel call where it applies (batch_round's docstring)
            settled = batch_round.run_round(self, m, ts, report, *found)
            if settled is not None:
                return settled
        return self._batch_separate(m, ts, report, caps, found)

    def _batch_separate(
        self, m: int, ts: int, report: StepReport, caps: _Caps,
        found: tuple[npt.NDArray[np.int64], FloatArray, FloatArray],
    ) -> npt.NDArray[np.int64] | None:  # fmt: skip
        """:meth:`_batch_isolated` of ``found`` (:meth:`_batch_found`'s candidates) where the
        one-call round did not settle it: the plan, the settlement, bad debt and ADL as
        separate calls."""
        plan = self._batch_plan(m, ts, *self._ranked(*found))
        done = plan.filled > 0.0
        if batch_settle.ENABLED and int(np.count_nonzero(done)) <= batch_settle.MAX_ROWS:
            # the same rows and state in one kernel and one batch (small rounds: its docstring)
            accounts, rest, owing = batch_settle.settle_round(self, m, ts, report, plan, done)
        else:
            accounts = plan.idx[done]
            still_open = self._batch_fills(m, ts, accounts, plan.filled[done],
                                           plan.price[done], np.sign(plan.size[done]))  # fmt: skip
            self._batch_money(m, ts, report, plan, done, still_open)
            rest = self._batch_records(m, ts, report, plan, done, still_open)
            owing = np.flatnonzero(rest > 1e-9)
        spec = self.ex.markets[m].spec
        for j in owing.tolist():
            a, amount = int(accounts[j]), float(rest[j])
            if ranking_for(spec.adl).allocation == "socialized":
                amount -= self._socialize(a, m, amount, ts, report)
            if amount > 1e-12 * max(1.0, float(plan.shortfall[done][j])):
                self._declare_bad_debt(
                    a, m, amount, ts, report, fenced=not spec.liquidation.isolated_recourse
                )
        pending = plan.idx[plan.to_adl]
        touched = [plan.idx]
        if (
            len(pending)
            and ranking_for(spec.adl).allocation == "ranked"
            and spec.adl.deleveraging is None
        ):
            pending, counterparties = self._batch_adl(m, pending, ts, report)
            touched.append(counterparties)
        for a in pending.tolist():
            self._liquidate(a, m, True, ts, report, caps)
        if len(pending) or ranking_for(spec.adl).allocation == "socialized":
            return None  # the per-account path or a socialized loss touched others: rescan
        return touched[0] if len(touched) == 1 else np.concatenate(touched)

    def _batch_candidates(
        self, m: int, ts: int
    ) -> tuple[npt.NDArray[np.int64], FloatArray, FloatArray] | None:
        """Isolated positions under maintenance that a liquidator has reached, most
        distressed first (health, then account id), with their equity and maintenance."""
        found = self._batch_found(m, ts)
        return None if found is None else self._ranked(*found)

    def _batch_found(
        self, m: int, ts: int
    ) -> tuple[npt.NDArray[np.int64], FloatArray, FloatArray] | None:
        """Isolated positions under maintenance that a liquidator has reached (in the scan's
        order), with their equity and maintenance; None for none."""
        ex = self.ex
        iscan = ex.isolated_scan(m, ex.markets[m].spec.liquidation.margin_call_ratio)
        below = iscan["below"]
        equity = iscan["below_equity"]
        maint = iscan["below_maintenance"]
        risk = self.markets[m]
        if risk.cooldown_until_ns or risk.latency_ns:
            free = np.array(self._ready(m, below.tolist(), ts), dtype=np.bool_)
            if len(free):
                below, equity, maint = below[free], equity[free], maint[free]
        if len(below) == 0:
            return None
        return below, equity, maint

    @staticmethod
    def _ranked(
        below: npt.NDArray[np.int64], equity: FloatArray, maint: FloatArray
    ) -> tuple[npt.NDArray[np.int64], FloatArray, FloatArray]:
        """The candidates in distress order (health, then account id)."""
        if len(below) <= _RANKED_MAX:
            ranked, ranked_eq, ranked_maint, distinct = ranked_candidates_nb(below, equity, maint)
            if distinct:  # no tie, no NaN: the order by health is the distress order
                return ranked, ranked_eq, ranked_maint
        health = (equity - maint) / np.maximum(maint, 1e-12)
        order = distress_order(below, health)
        return below[order].astype(np.int64), equity[order], maint[order]

    def _batch_plan(
        self,
        m: int,
        ts: int,
        idx: npt.NDArray[np.int64],
        equity: FloatArray,
        maint: FloatArray,
    ) -> _BatchPlan:
        """Plan every liquidation with the compiled kernel (again with the ADL queues'
        capacity when some position needs ADL and its queue holds less than the bound) and
        consume the book's depth."""
        ex = self.ex
        state = ex.markets[m]
        spec = state.spec
        size = ex._positions[m].size[idx]  # a copy (indexed by an array)
        # The tiers in force are the spec's table unless open interest scales them.
        tiers = state.tiers if spec.open_interest_scaling is None else None
        close = _sizes_to_close_fast(size, equity, maint, state.mark, spec, tiers)
        book = self.markets[m].liquidity
        depth, consumed, max_move = batch_round.book_state(book, ts)
        k = len(idx)
        planned = np.zeros((6, k))
        filled, price, penalty, shortfall, cover, own = planned
        plan = _BatchPlan(
            idx, size, equity, filled, price, penalty, shortfall, cover, own,
            np.zeros(k, dtype=np.bool_), planned,
        )  # fmt: skip
        fund = ex.insurance_account_for(m)
        adl_enabled = ranking_for(spec.adl).allocation != "socialized"
        declared = self.declared_bad_debt
        cash_before = ex._cash[idx] + (
            np.array([declared.get(a, 0.0) for a in idx.tolist()]) if declared else 0.0
        )

        def run(capacity_long: float, capacity_short: float) -> float:
            _, consumed_after = kernels.plan_isolated_liquidations_nb(
                size, equity, close, cash_before, state.mark,
                self.markets[m].book_price(state.mark), spec.liquidation_fee_rate,
                float(ex._cash[fund]), depth, consumed, max_move, adl_enabled, plan.filled,
                plan.price, plan.penalty, plan.shortfall, plan.cover, plan.own, plan.to_adl,
                capacity_long, capacity_short, spec.liquidation.isolated_recourse,
                _takeover_cap(spec),
            )  # fmt: skip
            return float(consumed_after)

        consumed_after = run(math.inf, math.inf)
        if np.count_nonzero(plan.to_adl):
            # Some positions need ADL: plan again knowing how much each queue can take, so a
            # position the queue cannot serve fills on the book in its turn (per-account order).
            flagged_sides = set(np.sign(size[plan.to_adl]).tolist())
            # The most a queue can be asked for: the full sizes of every planned position on
            # the side it serves (only full closes are flagged), with a margin for float dust.
            bound = {
                s: float(np.abs(size[np.sign(size) == s]).sum()) * _BOUND for s in flagged_sides
            }
            capacity = {
                s: self._queue_capacity(m, -int(s), bound=bound[s]) if s in bound else math.inf
                for s in (1.0, -1.0)
            }
            # A queue holding the bound takes every flag the first run set (its capacity never
            # falls short), and capacity enters nothing else: the second run would repeat the
            # first bit for bit, so it runs only when some flagged side's queue is shorter.
            if any(capacity[s] < bound[s] for s in bound):
                consumed_after = run(capacity[-1.0], capacity[1.0])
        if book is not None:
            book.restore({"consumed_depth": consumed_after, "ts_ns": ts})
        return plan

    def _batch_fills(
        self,
        m: int,
        ts: int,
        accounts: npt.NDArray[np.int64],
        qty: FloatArray,
        px: FloatArray,
        side: FloatArray,
    ) -> npt.NDArray[np.bool_]:
        """Write the planned fills against the book as one journal batch; return which
        positions are still open after them."""
        ex = self.ex
        buyers = np.where(side > 0, ex.liquidity_account, accounts).astype(np.int64)
        sellers = np.where(side > 0, accounts, ex.liquidity_account).astype(np.int64)
        zeros = np.zeros(len(accounts))
        if len(accounts):
            ex.journal.append_columns(
                EventKind.FILL, ts, market=m, account=buyers, counterparty=sellers, size=qty,
                price=px, fee=zeros, counterparty_fee=zeros, code=int(FillReason.LIQUIDATION),
            )  # fmt: skip
            ex._apply_fill_columns(m, buyers, sellers, qty, px, zeros, zeros)
        return np.asarray(ex._positions[m].size[accounts] != 0.0)

    def _batch_money(
        self,
        m: int,
        ts: int,
        report: StepReport,
        plan: _BatchPlan,
        done: npt.NDArray[np.bool_],
        still_open: npt.NDArray[np.bool_],
    ) -> None:
        """Penalties to the fund, the fund's covers, the account's cash moved into a position
        left open beyond bankruptcy; the report's totals and the partial-close cooldowns."""
        ex = self.ex
        spec = ex.markets[m].spec
        fund = ex.insurance_account_for(m)
        accounts = plan.idx[done]
        pen, cov, mine = plan.penalty[done], plan.cover[done], plan.own[done]
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
            cols = ex._positions[m]
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
        qty, px = plan.filled[done], plan.price[done]
        report.liquidations += len(accounts)
        report.liquidated_notional += float(np.sum(qty * px))
        report.penalties += float(pen.sum())
        report.insurance_paid += float(cov.sum())
        if spec.liquidation.kind == "fixed_fraction":
            partial = still_open & (qty < np.abs(plan.size[done]))
            until = ts + int(spec.liquidation.cooldown_s * _NS)
            risk = self.markets[m]
            for a in accounts[partial].tolist():
                risk.cooldown_until_ns[a] = until

    def _batch_records(
        self,
        m: int,
        ts: int,
        report: StepReport,
        plan: _BatchPlan,
        done: npt.NDArray[np.bool_],
        still_open: npt.NDArray[np.bool_],
    ) -> FloatArray:
        """The liquidation records with each fill's shortfall (one definition, docs/formulas.md
        "Shortfall"), deficits carried by positions left open; return what closed positions
        still owe after the fund (for socialized loss or bad debt)."""
        ex = self.ex
        state = ex.markets[m]
        recourse = state.spec.liquidation.isolated_recourse
        accounts = plan.idx[done]
        short, cov, mine = plan.shortfall[done], plan.cover[done], plan.own[done]
        declared = self.declared_bad_debt
        # What is still owed after the fund: beyond the isolated margin and the cover, or
        # with recourse the account's negative cash.
        closed_now = ~still_open
        owed_now = np.zeros(len(accounts))
        if closed_now.any() and recourse:
            debt = np.array([declared.get(a, 0.0) for a in accounts.tolist()]) if declared else 0.0
            owed_now = np.where(closed_now, np.maximum(0.0, -ex._cash[accounts] - debt), 0.0)
        elif closed_now.any():
            owed_now = np.where(closed_now, np.maximum(0.0, short - cov), 0.0)
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
        due = np.where(still_open, short - mine, closed_due)
        report.shortfall += float(np.sum(due))
        if len(accounts):
            side = np.sign(plan.size[done])
            bankrupt = np.maximum(0.0, state.mark - plan.equity[done] / plan.size[done])
            ex.journal.append_columns(
                EventKind.LIQUIDATION, ts, account=accounts, market=m,
                size=-side * plan.filled[done], price=plan.price[done], amount=due,
                fee=plan.penalty[done], counterparty_fee=bankrupt,
                code=_POLICY_CODES[state.spec.liquidation.kind],
            )  # fmt: skip
        # Open positions: what neither their account's cash nor the fund paid is carried to
        # their full close (ADL, or bad debt then), reported now.
        left = np.where(still_open, short - mine - cov, 0.0)
        for a, amount in zip(
            accounts[left > 1e-9].tolist(), left[left > 1e-9].tolist(), strict=True
        ):
            carried[a] = carried.get(a, 0.0) + amount
        return np.asarray(rest, dtype=np.float64)

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
        cols = self.ex._positions[m]
        leftover: list[npt.NDArray[np.int64]] = []
        touched: list[npt.NDArray[np.int64]] = []
        for side in (1.0, -1.0):
            group = accounts[np.sign(cols.size[accounts]) == side]
            if len(group) == 0:
                continue
            unserved, counterparties = self._batch_adl_side(m, side, group, ts, report)
            leftover.append(unserved)
            touched.append(counterparties)
        empty = np.zeros(0, dtype=np.int64)
        return (
            np.concatenate(leftover) if leftover else empty,
            np.concatenate(touched) if touched else empty,
        )

    def _batch_adl_side(
        self, m: int, side: float, group: npt.NDArray[np.int64], ts: int, report: StepReport
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        """ADL of the bankrupt positions of one side; return the unserved and the
        counterparties."""
        ex = self.ex
        state = ex.markets[m]
        spec = state.spec
        cols = ex._positions[m]
        mark = state.mark
        size = cols.size[group].copy()
        equity = cols.isolated_margin[group] + size * (mark - cols.entry[group])
        bankrupt = np.maximum(0.0, mark - equity / size)
        price = bankrupt if spec.adl.price == "bankruptcy" else np.full(len(group), mark)
        queue = self._queue(m, -int(side))
        q_acc = queue.covering(cols.size, float(np.abs(cols.size[group]).sum()))
        q_avail = np.abs(cols.size[q_acc])
        q_acc, q_avail = q_acc[q_avail > 0], q_avail[q_avail > 0]
        cum_av = np.cumsum(q_avail)
        total = float(cum_av[-1]) if len(cum_av) else 0.0
        cum_need = np.cumsum(np.abs(size))
        served = cum_need <= total * (1 + 1e-12)
        if not served.any():
            return group[~served], np.zeros(0, dtype=np.int64)
        unserved = group[~served]
        group, size, equity, price = group[served], size[served], equity[served], price[served]
        i, j, lengths = match_needs_nb(cum_need[served], cum_av, total, len(q_acc))
        bankrupts, counterparties = group[i], q_acc[j]
        price = self._capped_adl_prices(m, side, price, i, j, counterparties, lengths, len(q_acc))
        entry_before = cols.entry[counterparties].copy()
        size_before = cols.size[counterparties].copy()
        buyers = np.where(side > 0, counterparties, bankrupts).astype(np.int64)
        sellers = np.where(side > 0, bankrupts, counterparties).astype(np.int64)
        zeros = np.zeros(len(lengths))
        fill_price = price[i]
        ex.journal.append_columns(
            EventKind.FILL, ts, market=m, account=buyers, counterparty=sellers,
            size=lengths, price=fill_price, fee=zeros, counterparty_fee=zeros,
            code=int(FillReason.ADL), text=np.full(len(lengths), spec.adl.ranking),
        )  # fmt: skip
        ex._apply_fill_columns(m, buyers, sellers, lengths, fill_price, zeros, zeros)
        queue.skip_flat(cols.size)
        # One notice per bankrupt position, with the round's metrics.
        bounds = np.searchsorted(i, np.arange(len(group) + 1))
        minimum = np.maximum(0.0, -equity)  # the deficit at the mark, as the per-account path
        profits, notionals, texts = _round_metrics_many(
            size_before, entry_before, lengths, bounds, mark, price, minimum, spec.adl.ranking
        )
        ex.journal.append_columns(
            EventKind.ADL_ROUND, ts, account=group, market=m, size=-size, price=price,
            amount=profits, text=texts,
        )  # fmt: skip
        report.adl_rounds += len(group)
        report.adl_notional += float(notionals.sum())
        self._settle_adl_deficits(m, side, group, equity, np.abs(size), price, ts, report)
        return unserved, counterparties

    def _capped_adl_prices(
        self,
        m: int,
        side: float,
        price: FloatArray,
        i: npt.NDArray[np.intp],
        j: npt.NDArray[np.intp],
        counterparties: npt.NDArray[np.int64],
        lengths: FloatArray,
        n_queue: int,
    ) -> FloatArray:
        """No counterparty pays more against the mark than its own equity (see
        :meth:`_solvent_adl_price`): a counterparty serving several rounds spreads its equity
        over all it takes (E_j / total taken), and each round's adverse move is capped by its
        weakest counterparty."""
        cols = self.ex._positions[m]
        mark = self.ex.markets[m].mark
        adverse = side * (price - mark)
        if not (adverse > 0.0).any():
            return price
        cp_equity = np.maximum(
            cols.isolated_margin[counterparties]
            + cols.size[counterparties] * (mark - cols.entry[counterparties]),
            0.0,
        )
        return capped_prices_nb(price, i, j, lengths, cp_equity, n_queue, mark, side)

    def _settle_adl_deficits(
        self,
        m: int,
        side: float,
        group: npt.NDArray[np.int64],
        equity: FloatArray,
        need: FloatArray,
        price: FloatArray,
        ts: int,
        report: StepReport,
    ) -> None:
        """The deficit the counterparties took (fills away from the mark), and what is left
        for the fund (float dust, or a mark-price or price-capped ADL's deficit)."""
        ex = self.ex
        mark = ex.markets[m].mark
        lost = np.maximum(0.0, np.minimum(side * need * (price - mark), -equity))
        report.adl_loss += float(lost.sum())
        report.shortfall += float(lost.sum())
        if ex.markets[m].spec.liquidation.isolated_recourse:
            for a in group[ex._cash[group] < -1e-9].tolist():
                owed = -float(ex._cash[a]) - self.declared_bad_debt.get(a, 0.0)
                if owed > 1e-9:  # not what was declared bad debt before
                    self._cover(a, m, owed, ts, report)
        else:
            after = equity + side * need * (price - mark)
            for k in np.flatnonzero(after < -1e-9).tolist():
                self._cover(int(group[k]), m, -float(after[k]), ts, report, fenced=True)

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


def _sizes_to_close_fast(
    size: FloatArray,
    equity: FloatArray,
    maintenance: FloatArray,
    mark: float,
    spec: MarketSpec,
    tiers: TierArrays | None,
) -> FloatArray:
    """:func:`_sizes_to_close`, a ``tier_down`` or ``partial`` policy's in one compiled pass
    (:func:`close_sizes_nb`, the same figures bit for bit: tests/unit/risk/
    test_close_sizes_twin.py), a ``full`` one's as ``|size|`` (the same array: tests/unit/
    risk/test_batch_settle_twin.py)."""
    policy = spec.liquidation
    if policy.kind == "full":
        # ``_sizes_to_close``'s ``where(equity <= 0, |size|, minimum(|size|, |size|))``: the
        # same array, as ``minimum(x, x)`` is ``x`` (NaN included) and ``|size|`` has no -0.0
        return np.abs(size)
    if policy.kind not in ("tier_down", "partial") or tiers is None:
        return _sizes_to_close(size, equity, maintenance, mark, spec, tiers)
    initial = policy.target == "initial"
    return close_sizes_nb(
        size, equity, maintenance, float(mark), tiers.floor, tiers.imr if initial else tiers.mmr,
        float(tiers.initial_fee), policy.kind == "tier_down", policy.tier_down_target == "first",
        initial, float(policy.buffer), float(spec.liquidation_fee_rate), float(spec.lot_size),
    )  # fmt: skip


def _in_order_covers(spec: MarketSpec) -> bool:
    """Whether :mod:`.ordered_batch` reproduces the market's rules: no recourse to the
    account's other cash, no liquidation time ramps (Drift's)."""
    policy = spec.liquidation
    return (
        not policy.isolated_recourse
        and policy.ramp_duration_s == 0.0
        and policy.liquidator_fee_max_rate is None
    )


def _takeover_cap(spec: MarketSpec) -> float:
    """The kernel's takeover limit: ``adl.fund_takeover_max_notional``, ``inf`` for none."""
    cap = spec.adl.fund_takeover_max_notional
    return math.inf if cap is None else float(cap)
