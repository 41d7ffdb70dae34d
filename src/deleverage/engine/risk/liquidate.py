"""Stage 2 of the risk step: liquidating one account.

How much to close (the market's liquidation policy), at what price (the book, or a
liquidator at the fillable price), the penalty, the backstop takeover, and handing a
shortfall to stage 1 (:mod:`.shortfall`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

from deleverage.engine.events import (
    Fill,
    FillReason,
    Liquidation,
    MarginMoved,
    Transfer,
    TransferReason,
)
from deleverage.engine.risk import liquidator
from deleverage.engine.risk.cross_round import CrossRound, cross_round_ready
from deleverage.engine.risk.shortfall import ShortfallStage
from deleverage.engine.risk.support import (
    _NS,
    _POLICY_CODES,
    StepReport,
    _Caps,
)
from deleverage.rules import liquidation as liq
from deleverage.rules import margin as mm
from deleverage.rules.adl_ranking import ranking_for
from deleverage.spec import MarginMode

if TYPE_CHECKING:
    pass


class _Filled(NamedTuple):
    """A liquidation fill as :meth:`LiquidationStage._settle_fill` needs it (base, quote)."""

    qty: float
    price: float
    side: int
    fee_rate: float
    pool: float
    equity_after: float
    bankrupt: float
    full: bool


class LiquidationStage(ShortfallStage):
    """Stage 2: liquidating one account."""

    #: Liquidate a round's cross accounts through :class:`~.cross_round.CrossRound` (journal
    #: rows in columns) where the markets' rules allow; False: the per-account path alone (the
    #: reference the twin tests compare against).
    cross_rounds: bool = True
    #: Within those, runs of cross accounts go through the compiled planner
    #: (:mod:`.cross_plan`) where it reproduces the markets' rules; False: ``CrossRound``
    #: account by account (the reference of tests/unit/risk/test_cross_plan_twin.py).
    cross_plan: bool = True
    _cross_round_cache: CrossRound | None = None

    def _cross_round(self) -> CrossRound | None:
        """The round's :class:`CrossRound`, or None where the per-account path must run."""
        if not self.cross_rounds or not cross_round_ready(self):
            return None
        if self._cross_round_cache is None:
            self._cross_round_cache = CrossRound(self)
        return self._cross_round_cache

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
        if self._ramps(m):
            self.liquidation_entered_ns.setdefault((m if isolated else -1, a), ts)
        for j in markets:
            equity, maint = self._pool(a, j if isolated else m, isolated)
            if equity >= maint or caps.market_exhausted:
                break
            spec = ex.markets[j].spec
            policy = spec.liquidation
            if (
                policy.backstop_equity_fraction > 0
                and equity < policy.backstop_equity_fraction * maint
                and self._backstop_open()
                and not self._book_absorbs(a, j, equity)
            ):
                self._backstop(a, j, isolated, ts, report)
                return True
            size = float(ex._positions[j].size[a])
            if size == 0.0 or (policy.kind == "portion" and (a, j) in caps.liquidated):
                continue
            qty = self._size_to_close(a, j, size, equity, maint, isolated)
            qty = caps.clip(a, qty, ex.markets[j].mark)
            if qty <= 0.0:
                continue
            caps.liquidated.add((a, j))
            before = self._target(j, size, equity, maint)[0]
            if policy.execution == "liquidator" and policy.liquidator_fee_rate == 0.0:
                # A fillable price between the oracle and bankruptcy (dYdX v4's rules).
                if liquidator.close_to_liquidator(self, a, j, qty, ts, report, caps=caps) <= 0.0:
                    continue
            else:
                self._close(a, j, qty, isolated, ts, report)
            acted = True
            if policy.ramp_duration_s > 0.0:
                key = (m if isolated else -1, a)
                left, maint_left = self._pool(a, j if isolated else m, isolated)
                after = self._target(j, float(ex._positions[j].size[a]), left, maint_left)[0]
                self.margin_freed[key] = self.margin_freed.get(key, 0.0) + max(0.0, before - after)
            if policy.kind == "fixed_fraction" and qty < abs(size):
                cooldown = int(policy.cooldown_s * _NS)
                self.markets[j].cooldown_until_ns[a] = ts + cooldown
                break
        if not isolated:
            self._settle_flat_cross(a, m, ts, report)
        return acted

    def _recourse(self, a: int, m: int, isolated: bool, equity_after: float) -> float:
        """The loss a full close leaves for the fund: the loss beyond the position's collateral
        (with ``isolated_recourse``, an isolated position's collateral includes its account's
        other cash, into which its negative margin lands)."""
        if equity_after >= 0.0:
            return 0.0
        if not (isolated and self._recourse_allowed(m)):
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

    def _size_to_close(
        self, a: int, m: int, size: float, equity: float, maint: float, isolated: bool
    ) -> float:
        ex = self.ex
        state = ex.markets[m]
        spec = state.spec
        policy = spec.liquidation
        mark = state.mark
        if policy.kind == "portion":  # dYdX: the size does not depend on the equity
            return liq.portion_size(
                size, mark, max_portion=policy.max_position_portion,
                min_notional=policy.min_position_notional, lot=spec.lot_size,
            )  # fmt: skip
        if equity <= 0.0 or policy.kind == "full":
            return abs(size)
        if policy.kind == "fixed_fraction":
            in_cooldown = self.markets[m].cooldown_until_ns.get(a, -1) > ex.clock_ns
            if in_cooldown and policy.cooldown_mode == "full_position":
                return abs(size)
            return liq.fixed_fraction_size(
                size, mark, fraction=policy.fraction, min_notional=policy.fraction_min_notional
            )
        if policy.kind == "tier_down":
            steps = 1 if policy.tier_down_target == "next" else len(state.tiers.floor)
            down = liq.tier_down_size(size, mark, state.tiers, steps=steps)
            down = liq.round_up_to_lot(down, spec.lot_size)
            return min(abs(size), max(down, spec.lot_size))
        notional = abs(size) * mark
        t = int(mm.tier_index(notional, state.tiers))
        if (
            notional * float(state.tiers.mmr[t]) - float(state.tiers.cum[t])
            < state.tiers.min_margin
        ):
            return abs(size)  # on the maintenance floor: closing part of it frees nothing
        # partial: restore target (maintenance + buffer, or initial) over the whole pool
        shortage, rate = self._target(m, size, equity, maint)
        # Each unit closed releases its requirement, less the penalty and the loss of filling
        # away from the mark: known in advance for a liquidator's fillable price; a book's
        # slippage is left to the next round (market fills at the mark here, as Drift sizes).
        price = mark
        fee_rate = spec.liquidation_fee_rate
        if policy.execution == "liquidator" and policy.liquidator_fee_rate > 0.0:
            # Drift: the liquidator takes the position at the oracle less its (ramped) fee.
            side = 1 if size > 0 else -1
            liquidator_fee = self._liquidator_fee(a, m, isolated)
            price = mark * (1.0 - side * liquidator_fee)
            fee_rate = self._insurance_fee_rate(a, m, isolated, size, shortage, rate)
        elif policy.execution == "liquidator":
            price = liquidator.fillable_price(self, a, m)
        qty = liq.size_to_restore(
            size=size, shortage=shortage, mark=mark, requirement_rate=rate, fee_rate=fee_rate,
            fill_price=price, fee_price=mark if policy.fee_basis == "oracle" else None,
        )  # fmt: skip
        qty *= self._ramp_fraction(a, m, isolated, shortage)
        return min(abs(size), liq.round_up_to_lot(qty, spec.lot_size)) if qty > 0 else 0.0

    # ------------------------------------------------------------------ Drift-style terms
    def _target(self, m: int, size: float, equity: float, maint: float) -> tuple[float, float]:
        """The partial target's shortage (quote) and requirement rate for a position of
        ``size`` in a pool with ``equity`` and maintenance ``maint``."""
        state = self.ex.markets[m]
        policy = state.spec.liquidation
        notional = abs(size) * state.mark
        t = int(mm.tier_index(notional, state.tiers))
        if policy.target == "initial":
            rate = float(state.tiers.imr[t]) + state.tiers.initial_fee
            own = float(mm.maintenance_margin(notional, state.tiers))
            return maint - own + notional * rate - equity, rate
        rate = float(state.tiers.mmr[t]) + policy.buffer
        return maint + notional * policy.buffer - equity, rate

    def _ramps(self, m: int) -> bool:
        policy = self.ex.markets[m].spec.liquidation
        return policy.ramp_duration_s > 0.0 or policy.liquidator_fee_max_rate is not None

    def _elapsed_s(self, a: int, m: int, isolated: bool) -> float:
        """Seconds the pool has spent in liquidation (0 when not tracked)."""
        entered = self.liquidation_entered_ns.get((m if isolated else -1, a))
        return 0.0 if entered is None else (self.ex.clock_ns - entered) / _NS

    def _liquidator_fee(self, a: int, m: int, isolated: bool) -> float:
        """The liquidator's fee rate now, ramped by the time in liquidation (Drift)."""
        policy = self.ex.markets[m].spec.liquidation
        top = policy.liquidator_fee_max_rate
        if top is None:
            return policy.liquidator_fee_rate
        return liq.ramped_fee_rate(
            base_rate=policy.liquidator_fee_rate, max_rate=top,
            elapsed_s=self._elapsed_s(a, m, isolated), grace_s=policy.liquidator_fee_grace_s,
            ramp_per_s=policy.liquidator_fee_ramp_per_s,
        )  # fmt: skip

    def _insurance_fee_rate(
        self, a: int, m: int, isolated: bool, size: float, shortage: float, rate: float
    ) -> float:
        """The liquidation (insurance-fund) fee rate: flat, or Drift's, shrinking with the
        shortage attributed to this position (its share of the pool's maintenance)."""
        spec = self.ex.markets[m].spec
        if spec.liquidation.insurance_fee == "flat":
            return spec.liquidation_fee_rate
        share = self._position_equity(a, m, isolated, 1.0)
        return liq.insurance_fee_rate(
            shortage=shortage * share, notional=abs(size) * self.ex.markets[m].mark,
            requirement_rate=rate, liquidator_fee_rate=self._liquidator_fee(a, m, isolated),
            max_rate=spec.liquidation_fee_rate,
        )  # fmt: skip

    def _ramp_fraction(self, a: int, m: int, isolated: bool, shortage: float) -> float:
        """Share of the cover size allowed now by the liquidation time ramp (Drift)."""
        policy = self.ex.markets[m].spec.liquidation
        if policy.ramp_duration_s <= 0.0:
            return 1.0
        return liq.fraction_to_liquidate(
            shortage=shortage,
            margin_freed=self.margin_freed.get((m if isolated else -1, a), 0.0),
            elapsed_s=self._elapsed_s(a, m, isolated), duration_s=policy.ramp_duration_s,
            initial_fraction=policy.ramp_initial_fraction, full_below=policy.ramp_full_below,
        )  # fmt: skip

    def _leave_liquidation(self, m: int) -> None:
        """Forget the ramps of pools of ``m`` back at their target (maintenance + buffer)."""
        ex = self.ex
        for key in [k for k in self.liquidation_entered_ns if k[0] in (m, -1)]:
            j, a = key
            isolated = j >= 0
            sizes = [
                (i, float(c.size[a]))
                for i, c in enumerate(ex._positions)
                if c.size[a] != 0.0 and (i == j if isolated else c.mode[a] == MarginMode.CROSS)
            ]
            if sizes:
                equity, maint = self._pool(a, sizes[0][0], isolated)
                buffer = sum(
                    abs(q) * ex.markets[i].mark * ex.markets[i].spec.liquidation.buffer
                    for i, q in sizes
                )
                if equity < maint + buffer:
                    continue
            self.liquidation_entered_ns.pop(key, None)
            self.margin_freed.pop(key, None)

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
        pool, pool_maint = self._pool(a, m, isolated)
        equity = self._position_equity(a, m, isolated, pool)
        full = qty >= abs(size) * (1 - 1e-12)
        qty = abs(size) if full else qty
        bankrupt = liq.bankruptcy_price(size, mark, equity)
        risk = self.markets[m]
        fee_rate = spec.liquidation_fee_rate
        if spec.liquidation.execution == "liquidator":
            # Drift (a liquidator fee is set; the fillable-price rules go through
            # liquidator.close_to_liquidator): transferred at the oracle less the liquidator's
            # fee, not clamped to the bankruptcy price (a loss beyond it is the shortfall).
            price = mark * (1.0 - side * self._liquidator_fee(a, m, isolated))
            fee_rate = self._insurance_fee_rate(
                a, m, isolated, size, *self._target(m, size, pool, pool_maint)
            )
            filled = qty
            counterparty, reason, book = (
                ex.liquidator_account,
                FillReason.LIQUIDATOR_TAKEOVER,
                False,
            )
        else:
            price, filled = self._quote(risk, -side, qty, mark, ts)
            counterparty, reason, book = ex.liquidity_account, FillReason.LIQUIDATION, True
        equity_after = equity + side * qty * (price - mark)
        exhausted = book and filled < qty * (1 - 1e-12)
        need = self._recourse(a, m, isolated, equity_after)
        beyond = full and (
            need > self._fund_available(m)
            or (need > 0.0 and self._fund_trigger(m, ts))
            or (need > 0.0 and self._over_takeover_cap(m, qty))
        )
        # The fund cannot cover the shortfall (or the book cannot absorb the order): close
        # against opposing traders instead. Socialized loss fills on the book.
        adl_first = (
            full and (beyond or exhausted) and ranking_for(spec.adl).allocation != "socialized"
        )
        if adl_first and self._adl(a, m, isolated, ts, report):
            return
        if adl_first:
            # A budget-driven ADL may have closed part of it, or haircuts paid into its margin.
            size = float(cols.size[a])
            if size == 0.0:
                return
            qty = abs(size)
            pool, _ = self._pool(a, m, isolated)
            equity = self._position_equity(a, m, isolated, pool)
            equity_after = equity
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
        self._settle_fill(
            a, m, isolated, _Filled(qty, price, side, fee_rate, pool, equity_after, bankrupt, full),
            ts, report,
        )  # fmt: skip

    def _settle_fill(
        self, a: int, m: int, isolated: bool, fill: _Filled, ts: int, report: StepReport
    ) -> None:
        """After a liquidation fill: the penalty to the fund (capped so it never makes the
        position bankrupt), the liquidation record with the fill's shortfall, and who pays it
        (the fund, then socialized loss or bad debt; a position left open carries it)."""
        ex = self.ex
        spec = ex.markets[m].spec
        mark = ex.markets[m].mark
        qty, price, side = fill.qty, fill.price, fill.side
        equity_after = fill.equity_after
        fund = ex.insurance_account_for(m)
        still_open = ex._positions[m].size[a] != 0.0
        fee = fill.fee_rate * qty * (mark if spec.liquidation.fee_basis == "oracle" else price)
        pool_after = fill.pool + side * qty * (price - mark)
        penalty = liq.capped_penalty(fee=fee, equity_after_fill=min(equity_after, pool_after))
        if penalty > 0.0:
            ex._emit(
                Transfer(
                    ts_ns=ts, source=a, destination=fund, amount=penalty,
                    reason=int(TransferReason.LIQUIDATION_FEE), market=m if still_open else -1,
                )
            )  # fmt: skip
        due, own, carried = self._due(
            a, m, isolated, still_open, max(0.0, -equity_after), fill.full
        )
        report.liquidations += 1
        report.liquidated_notional += qty * price
        report.penalties += penalty
        ex._emit(
            Liquidation(
                ts_ns=ts, account=a, market=m, size=-side * qty, price=price,
                shortfall=max(0.0, due - carried), penalty=penalty, bankruptcy_price=fill.bankrupt,
                policy=_POLICY_CODES[spec.liquidation.kind],
            )
        )  # fmt: skip
        if isolated and not still_open and due > 1e-9:
            # Closed: the fund, then socialized loss or bad debt, take what the position's
            # collateral did not (without recourse, never the account's other cash).
            fenced = not self._recourse_allowed(m)
            self._cover(a, m, due, ts, report, counted=carried, fenced=fenced)
        elif isolated and still_open:
            # A partial close (a cap, or slippage) left the open position beyond bankruptcy:
            # with recourse the account's cash moves into its margin; the fund pays what it
            # can into it; what is left waits for the position's full close (ADL, or bad
            # debt) and is reported now, once.
            if own > 0.0:
                ex._emit(MarginMoved(ts_ns=ts, account=a, market=m, amount=own))
            if due > 1e-9:
                report.shortfall += due
                paid = self._fund_pays(a, m, due, ts, report, into_position=True)
                if due - paid > 1e-9:
                    self.carried_deficit[a] = self.carried_deficit.get(a, 0.0) + due - paid

    def _due(
        self, a: int, m: int, isolated: bool, still_open: bool, beyond: float, full: bool
    ) -> tuple[float, float, float]:
        """After a liquidation fill: the shortfall due (the loss beyond the position's
        collateral at the fill, quote), the account's cash moved into a still-open isolated
        position (recourse) and the part already reported by earlier fills (carried).

        ``beyond`` is the loss beyond the position's own margin (``-E'`` when negative). A
        cross position's shortfall is its account's deficit once no cross position is left.
        """
        ex = self.ex
        declared = self.declared_bad_debt.get(a, 0.0)
        recourse = self._recourse_allowed(m)
        if not isolated:
            flat = not any(
                cols.size[a] != 0.0 and cols.mode[a] == MarginMode.CROSS for cols in ex._positions
            )
            return (max(0.0, -float(ex._cash[a]) - declared) if flat and full else 0.0), 0.0, 0.0
        if not still_open:
            carried = self.carried_deficit.pop(a, 0.0) if beyond > 0.0 else 0.0
            if recourse:  # the negative margin landed in the account's cash: what is left
                beyond = min(beyond, max(0.0, -float(ex._cash[a]) - declared))
            return beyond, 0.0, carried
        own = min(max(0.0, float(ex._cash[a])), beyond) if recourse else 0.0
        return beyond - own, own, 0.0

    # ------------------------------------------------------------------ backstop
    def _backstop(self, a: int, m: int, isolated: bool, ts: int, report: StepReport) -> None:
        """Hand the position(s) and their margin to the backstop vault at the mark.

        A deficit taken over (equity below zero, a gap) is the vault's loss beyond the margin
        at once: shortfall on the ``backstop_loss`` line. The margin taken over is the basis
        against which the vault's later realized loss in each market is measured.
        """
        ex = self.ex
        vault = ex.backstop_account
        markets = [m] if isolated else self._cross_order(a)
        equity, _ = self._pool(a, m, isolated)
        for j in markets:
            cols = ex._positions[j]
            size = float(cols.size[a])
            if size == 0.0:
                continue
            share = self._position_equity(a, j, isolated, equity)
            self.backstop_basis[j] = self.backstop_basis.get(j, 0.0) + max(share, 0.0)
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
        report.shortfall += max(0.0, -equity)
        report.backstop_loss += max(0.0, -equity)
        report.backstop_takeovers += 1
        report.liquidations += 1

    def backstop_pnl(self) -> float:
        """The backstop vault's PnL: its equity at the marks less the capital put in (quote)."""
        ex = self.ex
        vault = ex.backstop_account
        if ex._cash[vault] == 0.0:  # every risk step: a loop, not ``any`` of a generator
            for cols in ex._positions:
                if cols.size[vault]:
                    break
            else:
                return 0.0 - float(ex._net_deposit[vault]) + 0.0
        return ex.account_margins(vault).total_equity - float(ex._net_deposit[vault])

    def _backstop_open(self) -> bool:
        """Whether the vault takes positions: it has equity, and has lost less than its limit
        (Hyperliquid after JELLY: beyond a loss threshold, ADL instead of the vault)."""
        vault = self.ex.backstop_account
        capital = float(self.ex._net_deposit[vault])
        equity = self.ex.account_margins(vault).total_equity
        limit = capital if self.backstop_max_loss is None else self.backstop_max_loss
        return equity > 0.0 and equity - capital > -limit

    def _backstop_deleverage(self, m: int, ts: int, report: StepReport) -> None:
        """Past its loss limit, the vault's position in ``m`` is deleveraged at the mark."""
        ex = self.ex
        vault = ex.backstop_account
        cols = ex._positions[m]
        if cols.size[vault] == 0.0 or self._backstop_open():
            return
        cash, realized = float(ex._cash[vault]), float(cols.realized_pnl[vault])
        if not self._adl(vault, m, False, ts, report, at_mark=True):
            return
        pnl = float(cols.realized_pnl[vault]) - realized
        loss = max(0.0, -(self.backstop_basis.pop(m, 0.0) + pnl))
        loss -= min(loss, max(0.0, -(cash + pnl)))  # a vault deficit went to the fund's lines
        report.shortfall += loss
        report.backstop_loss += loss
