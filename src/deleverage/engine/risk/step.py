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

import gc
import math
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from deleverage.engine.cross_step import cross_calls
from deleverage.engine.events import (
    CircuitBreaker,
    EventKind,
    MarginCall,
    RiskParamsChanged,
)
from deleverage.engine.risk import batch_round, batch_settle, liquidator
from deleverage.engine.risk.batch import BatchStage, distress_order
from deleverage.engine.risk.step_kernels import calls_update_nb, isolated_below_among_nb
from deleverage.engine.risk.support import (
    _MAX_ROUNDS,
    _NS,
    FloatArray,
    MarketRisk,
    StepReport,
    _below,
    _Caps,
)
from deleverage.engine.zone_calls import tracked_calls
from deleverage.errors import InvariantError, ValidationError
from deleverage.rules.dynamic import scale_spec
from deleverage.spec import MarketSpec

if TYPE_CHECKING:
    pass

#: Whether a step with nothing under maintenance ends after the margin calls (its rounds
#: would find no candidate); the twin test switches it off to compare.
NONE_BELOW_ENDS = True
#: Whether a step in a market of isolated traders alone takes :meth:`RiskEngine.
#: _isolated_step` (its batch round without the general rounds' layers); the twin test
#: switches it off.
FAST_ROUND = True
#: Whether the margin calls take :func:`.zone_calls.tracked_calls` (the common isolated case
#: in one pass) before :meth:`RiskEngine._isolated_calls`; the twin test switches it off.
TRACKED_CALLS = True


class RiskEngine(BatchStage):
    """Runs the liquidation / insurance / ADL step of an :class:`Exchange` on mark updates."""

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

    def set_backstop(self, *, max_loss: float | None = None) -> None:
        """Limit the backstop vault's loss (quote): once the vault has lost ``max_loss``
        (None: its whole net capital, what was deposited into ``Exchange.backstop_account``),
        it takes over no more positions and its own positions are deleveraged at the mark
        against the ranked queue; liquidations go to the book, the fund and ADL instead.

        Hyperliquid after the JELLY incident (26 March 2025): the liquidator vault got a
        capped capital and "ADL will be triggered if the Liquidator loses above a certain
        threshold" (docs/formulas.md, "Backstop takeover"). The vault's capital is its cash:
        deposit it with ``ex.deposit(ex.backstop_account, amount)``; without capital it takes
        nothing over.
        """
        if max_loss is not None and not (
            isinstance(max_loss, int | float)
            and not isinstance(max_loss, bool)
            and math.isfinite(max_loss)
            and max_loss > 0
        ):
            raise ValidationError("max_loss", max_loss, "must be a finite number > 0, or None")
        self.backstop_max_loss = None if max_loss is None else float(max_loss)

    def pending_count(self, market: int) -> int:
        """Positions of ``market`` under maintenance still waiting for a liquidator."""
        return len(self.markets[market].pending)

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
        enabled = gc.isenabled()  # not a context manager: its enter and exit cost ~3 us a step
        gc.disable()
        try:
            return self._on_mark(m, ts)
        finally:
            if enabled:
                gc.enable()

    def _on_mark(self, m: int, ts: int) -> StepReport:
        report = StepReport(m, ts)
        self._queues.clear()
        ex = self.ex
        state = ex.markets[m]
        spec = state.spec
        risk = self.markets[m]
        # Each stage's own guard first (what the stage would check and return on), so that a
        # market without the feature pays no call for it.
        if spec.circuit_breaker is not None and self._circuit_breaker(m, ts, state.mark, spec):
            report.halted = True
            self.reports.append(report)
            return report
        if risk.liquidity is not None:
            risk.liquidity.recover(ts)
        if risk.dynamic is not None:
            self._dynamic_margin(m, ts, state.mark)
        if risk.proactive is not None:
            risk.proactive.on_mark(ts)
        report.margin_calls = self._margin_calls(m, ts)
        if self.liquidation_entered_ns:
            self._leave_liquidation(m)
        if risk.capital_ts != ts:
            risk.capital_ts, risk.capital_used = ts, 0.0
        vault_open = ex._positions[m].size[ex.backstop_account] != 0.0  # a vault position
        modes = self._modes_present(m)
        if (
            FAST_ROUND
            and modes[0]
            and not (modes[1] or vault_open or ex.check_invariants)
            and state.spec is spec  # no dynamic margin moved it in this step
        ):
            return self._isolated_step(m, ts, report, spec, risk)
        if NONE_BELOW_ENDS and not vault_open and self._none_below(m, spec, modes):
            # Nothing under maintenance (most marks: the calls were the whole step): the
            # rounds below would find no candidate and change nothing.
            self.round_after = None  # what the first round's candidate check would clear
            return self._step_end(m, ts, report)
        caps = _Caps(spec, risk.capital_per_step - risk.capital_used)
        if vault_open:
            self._backstop_deleverage(m, ts, report)
            modes = self._modes_present(m)  # for the account layout it left
        touched: npt.NDArray[np.int64] | None = None
        rounds = _MAX_ROUNDS
        layout = ex.layout_version  # ``modes`` holds while the account layout does
        if self._batchable(m) and modes[0]:
            touched = self._batch_isolated(m, ts, report, caps)
            rounds -= 1  # the batch pass is a round of its own
        return self._rounds(m, ts, report, spec, caps, touched, rounds, modes, layout)

    def _isolated_step(
        self, m: int, ts: int, report: StepReport, spec: MarketSpec, risk: MarketRisk
    ) -> StepReport:
        """:meth:`_on_mark` after the margin calls in a market of isolated traders alone, no
        backstop vault position and no invariant checks (the isolated day's every marked
        step): the scan read once, and a batchable round whose accounts all left maintenance
        (``round_after``: the next round's check, done in its kernel) ends the step without
        the general rounds' layers (``_none_below``, ``_Caps``, ``_batch_isolated``,
        ``_batch_found``, ``_candidates``). The same calls in the same order otherwise
        (the twin: ``FAST_ROUND = False``, tests/unit/risk/test_isolated_step_twin.py)."""
        ex = self.ex
        level = spec.liquidation.margin_call_ratio
        hit = ex._cache.get(("iscan", m, level))  # what the margin calls just scanned
        scan = hit[1] if hit is not None and hit[0] == ex._version else None
        if scan is None:
            scan = ex.isolated_scan(m, level)
        below = scan["below"]
        if NONE_BELOW_ENDS and not len(below):
            self.round_after = None  # what the first round's candidate check would clear
            return self._step_end(m, ts, report)
        modes = (True, False)
        layout = ex.layout_version
        if not (
            NONE_BELOW_ENDS  # else the twin's general path
            and batch_settle.ENABLED
            and batch_round.FUSED
            and not (risk.cooldown_until_ns or risk.latency_ns)  # ``_batch_found``'s filter
            and spec.adl.trigger_fund_drawdown is None  # not ``batch_in_order``
            and self._batchable(m)
        ):
            caps = _Caps(spec, risk.capital_per_step - risk.capital_used)
            touched: npt.NDArray[np.int64] | None = None
            rounds = _MAX_ROUNDS
            if self._batchable(m):
                touched = self._batch_isolated(m, ts, report, caps)
                rounds -= 1
            return self._rounds(m, ts, report, spec, caps, touched, rounds, modes, layout)
        # ``_batch_isolated`` of the scan's candidates (none held back: ``_batch_found``'s)
        touched = batch_round.run_round(
            self, m, ts, report, below, scan["below_equity"], scan["below_maintenance"]
        )
        if touched is None:  # not the one-call round's: the separate plan and settlement
            caps = _Caps(spec, risk.capital_per_step - risk.capital_used)
            found = (below, scan["below_equity"], scan["below_maintenance"])
            touched = self._batch_separate(m, ts, report, caps, found)
            return self._rounds(m, ts, report, spec, caps, touched, _MAX_ROUNDS - 1, modes, layout)
        after = self.round_after
        if after is not None and after[0] is touched and not len(after[1]):
            # the next round's check: none of the round's accounts is under maintenance
            self.round_after = None
            return self._step_end(m, ts, report)
        caps = _Caps(spec, risk.capital_per_step - risk.capital_used)
        return self._rounds(m, ts, report, spec, caps, touched, _MAX_ROUNDS - 1, modes, layout)

    def _rounds(
        self, m: int, ts: int, report: StepReport, spec: MarketSpec, caps: _Caps,
        touched: npt.NDArray[np.int64] | None, rounds: int, modes: tuple[bool, bool],
        layout: int,
    ) -> StepReport:  # fmt: skip
        """The risk step's liquidation rounds after the batch pass (``touched``: its accounts,
        or None), at most ``rounds``; ``modes`` hold while the account layout is ``layout``;
        ``spec``: the market's at the step's start."""
        ex = self.ex
        risk = self.markets[m]
        policy = spec.liquidation
        one_pass = policy.max_liquidations_per_step is not None
        cross_among: list[int] | None = None  # a planned round's accounts (CrossRound.among)
        for _ in range(rounds):
            candidates = self._candidates(
                m, among=touched, cross_among=cross_among,
                modes=modes if ex.layout_version == layout else None,
            )  # fmt: skip
            complete = not (risk.cooldown_until_ns or risk.latency_ns)  # none held back
            touched = None
            if len(candidates) == 0:
                break
            if one_pass or policy.order != "health":
                candidates = self._block_order(m, candidates)
            progressed = False
            lean = self._cross_round()  # cross accounts with their rows in columns (or None)
            if lean is not None:
                lean.begin_round()
            k = 0
            while k < len(candidates) and not caps.market_exhausted:
                a, isolated = candidates[k]
                if lean is not None and not isolated:  # this and (planned) the next cross ones
                    k, acted = lean.liquidate_run(candidates, k, m, ts, report, caps)
                else:
                    if lean is not None:
                        lean.flush()
                    acted = self._liquidate(a, m, isolated, ts, report, caps)
                    k += 1
                progressed = progressed or acted
            if lean is not None:
                lean.flush()
                if complete and not one_pass and policy.order == "health":
                    cross_among = lean.among(candidates)
            if not progressed or caps.market_exhausted or one_pass:
                break
        risk.capital_used += caps.used_market
        return self._step_end(m, ts, report)

    def _step_end(self, m: int, ts: int, report: StepReport) -> StepReport:
        """The step's last part: the waiting positions settled, the vault's PnL, the report."""
        if self.markets[m].pending:
            self._settle_pending(m, ts)
        report.backstop_pnl = self.backstop_pnl()
        self.reports.append(report)
        return report

    def _none_below(self, m: int, spec: MarketSpec, modes: tuple[bool, bool]) -> bool:
        """Whether no position of market ``m`` is under maintenance at this state: the
        isolated and cross scans' ``below`` (cached for the state version: the margin calls
        just took them) are empty, so the step's liquidation rounds (the batch path, the
        candidates) would find nothing. A cross scan is read only where cross traders are
        (``modes``: :meth:`_modes_present`'s answer; ``spec``: the market's)."""
        ex = self.ex
        level = spec.liquidation.margin_call_ratio
        any_isolated, any_cross = modes
        if any_isolated:
            # ``ex.isolated_scan(m, level)``'s cache hit read here (as ``zone_calls`` reads it):
            # the margin calls scanned this state, or their tracker stored its scan.
            hit = ex._cache.get(("iscan", m, level))
            scan = hit[1] if hit is not None and hit[0] == ex._version else None
            if len((ex.isolated_scan(m, level) if scan is None else scan)["below"]):
                return False
        return not (any_cross and len(ex.cross_scan(m, level)["below"]))

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
            # A policy that moves more than the margin rates says how (``spec_for``).
            spec_for = getattr(risk.dynamic, "spec_for", None)
            spec = spec_for(risk.base_spec, k) if spec_for is not None else None
            if spec is None:
                spec = scale_spec(risk.base_spec, k)
            ex._emit(RiskParamsChanged(ts_ns=ts, market=m, spec_json=spec.to_json()))

    def halted(self, m: int) -> bool:
        """Whether market ``m`` is halted by its circuit breaker."""
        return self.markets[m].breaker_halted

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
            called = risk.called_isolated
            fast = (
                tracked_calls(ex, m, level, called)
                if TRACKED_CALLS and called.dtype == np.int64 else None
            )  # fmt: skip
            if fast is not None and not any_cross:  # the common case: straight to the journal
                risk.called_isolated, accounts, ratios = fast
                return self._emit_calls(m, ts, accounts, ratios)
            risk.called_isolated, acc, ratio = (
                fast if fast is not None else self._isolated_calls(m, level)
            )
            new_acc.append(acc)
            new_ratio.append(ratio)
        elif len(risk.called_isolated):
            risk.called_isolated = np.zeros(0, dtype=np.int64)
        if any_cross:
            fused = cross_calls(ex, m, level, risk.called_cross, self._flags(ex.n_accounts))
            if fused is not None:  # the bounded scan and the calls in one compiled call
                risk.called_cross = fused[0]
                new_acc.append(fused[1])
                new_ratio.append(fused[2])
            else:
                scan = ex.cross_scan(m, level)
                risk.called_cross, fresh = self._calls(risk.called_cross, scan)
                new_acc.append(scan["warn"][fresh].astype(np.int64))
                new_ratio.append(ex.cross_warn_ratios(m, level, scan, fresh))  # the fresh ones
        elif len(risk.called_cross):
            risk.called_cross = np.zeros(0, dtype=np.int64)
        if not new_acc:
            return 0
        accounts = np.concatenate(new_acc) if len(new_acc) > 1 else new_acc[0]
        if len(accounts) == 0:
            return 0  # most marks: nothing to sort or write
        ratios = np.concatenate(new_ratio) if len(new_ratio) > 1 else new_ratio[0]
        if any_cross and len(accounts) > 1:
            # the isolated scan's accounts alone are in account order already
            order = np.argsort(accounts, kind="stable")
            accounts, ratios = accounts[order], ratios[order]
        return self._emit_calls(m, ts, accounts, ratios)

    def _emit_calls(
        self, m: int, ts: int, accounts: npt.NDArray[np.int64], ratios: FloatArray
    ) -> int:
        """Journal the margin calls of market ``m`` at ``ts`` (``accounts`` ascending, their
        ratios): one ``MarginCall`` event, or a batch of rows; how many."""
        n = len(accounts)
        if n == 1:
            a, r = int(accounts[0]), float(ratios[0])
            self.ex._emit(MarginCall(ts_ns=ts, account=a, market=m, ratio=r))
        elif n:
            self.ex.journal.append_columns(
                EventKind.MARGIN_CALL, ts, account=accounts, market=m, amount=ratios
            )
        return n

    def _isolated_calls(
        self, m: int, level: float
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], FloatArray]:
        """The isolated called set of market ``m`` after this mark, the accounts called now
        (ascending) and their ratios: from the statuses of :mod:`deleverage.engine.zone_calls`
        (the accounts whose status changed; a called set another path replaced is adopted)
        when they hold for the current state, else from the scan's sets (:meth:`_calls`),
        which they then follow. ``check_invariants`` compares the two."""
        ex = self.ex
        risk = self.markets[m]
        called = risk.called_isolated  # not np.asarray(..., dtype): a new view of a kernel's array
        if called.dtype != np.int64:
            called = called.astype(np.int64)
        asked = ex.ask_zone_calls(m, called)  # the tracker's next step updates the set too
        try:
            iscan = ex.isolated_scan(m, level)
        finally:
            if asked is not None:
                asked.ask = None
        tracker = ex.isolated_tracker(m, level)
        if tracker is None or not tracker.calls_synced:
            new, fresh = self._calls(called, iscan)
            if tracker is not None:
                tracker.sync_calls(new)
            return new, iscan["warn"][fresh], iscan["warn_ratio"][fresh]
        cols, tiers = ex._positions[m], ex.markets[m].tiers  # calls() adopts a replaced set
        out = tracker.calls(called, ex.markets[m].mark, cols, tiers)
        if ex.check_invariants:
            full = ex.isolated_scan_full(m, level)
            new, fresh = self._calls(called, full)
            want = (new, full["warn"][fresh], full["warn_ratio"][fresh])
            if not all(np.array_equal(a, b) for a, b in zip(out, want, strict=True)):
                raise InvariantError(f"tracked margin calls of market {m} differ from the scan's")
        return out

    def _calls(
        self, called: npt.NDArray[np.int64], scan: dict[str, Any]
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_]]:
        """Update a called set from a scan; return it and which ``scan["warn"]`` are new.

        An account leaves the called set once it is neither in the warning zone nor under
        maintenance (its ratio fell back below the level); one in the zone and not called is
        new. Flag arrays keep the step's cost to the accounts in the zone.
        """
        warn = np.asarray(scan["warn"], dtype=np.int64)
        below = np.asarray(scan["below"], dtype=np.int64)
        flag = self._flags(self.ex.n_accounts)
        return calls_update_nb(np.asarray(called, dtype=np.int64), warn, below, flag)

    def _flags(self, n: int) -> npt.NDArray[np.bool_]:
        """A scratch boolean array of at least ``n`` entries, all False (callers reset it)."""
        if len(self._scratch_flags) < n:
            self._scratch_flags = np.zeros(max(n, 2 * len(self._scratch_flags)), dtype=np.bool_)
        return self._scratch_flags

    # ------------------------------------------------------------------ candidates
    def _candidates(
        self,
        m: int,
        *,
        among: npt.NDArray[np.int64] | None = None,
        cross_among: list[int] | None = None,
        modes: tuple[bool, bool] | None = None,
    ) -> list[tuple[int, bool]]:
        """Accounts below maintenance exposed to market ``m``, most distressed first.

        ``among``: the accounts the batch path just changed, when nothing else can have moved
        (no cross trader in the market): only they are checked, not the whole book.
        ``cross_among``: the accounts of the round the compiled planner just ran alone (every
        account under maintenance, none other changed: :meth:`CrossRound.among`): only they
        are scanned (``_cross_scan_subset``, the full pass's arithmetic), when no isolated
        trader is in the market. ``modes``: :meth:`_modes_present`'s answer where the caller
        holds it for the current account layout.
        """
        ex = self.ex
        any_isolated, any_cross = self._modes_present(m) if modes is None else modes
        if among is not None and not any_cross:
            return self._isolated_candidates_among(m, among)
        out: list[tuple[float, int, bool]] = []
        risk = self.markets[m]
        level = ex.markets[m].spec.liquidation.margin_call_ratio
        if any_isolated:
            out += _below(ex.isolated_scan(m, level), isolated=True)
        if any_cross and cross_among is not None and not any_isolated:
            acc = np.array(cross_among, dtype=np.int64)
            out += _below(ex._cross_scan_subset(m, level, acc), isolated=False)
            if ex.check_invariants:
                full = sorted(_below(ex.cross_scan(m, level), isolated=False))
                if sorted(out) != full:
                    raise InvariantError("a planned round's candidates differ from the scan's")
        elif any_cross:
            out += _below(ex.cross_scan(m, level), isolated=False)
        now = ex.clock_ns
        if risk.cooldown_until_ns or risk.latency_ns:
            ready = self._ready(m, [c[1] for c in out], now)
            out = [c for c, ok in zip(out, ready, strict=True) if ok]
        out.sort()
        return [(a, isolated) for _, a, isolated in out]

    def _block_order(self, m: int, candidates: list[tuple[int, bool]]) -> list[tuple[int, bool]]:
        """dYdX v4's pass over liquidatable subaccounts (``LiquidateSubaccountsAgainstOrderbook``):
        at most ``max_liquidations_per_step`` of them, in account order from a pseudo-random
        start, then sorted by ``order`` (``SortLiquidationOrders``)."""
        policy = self.ex.markets[m].spec.liquidation
        limit = policy.max_liquidations_per_step
        if limit is not None and len(candidates) > limit:
            by_id = sorted(candidates)
            start = int(self.rng.integers(len(by_id)))
            candidates = [by_id[(start + k) % len(by_id)] for k in range(limit)]
        if policy.order == "fillable_price":
            candidates = sorted(candidates, key=lambda c: self._fillable_key(m, c[0]))
        return candidates

    def _fillable_key(self, m: int, a: int) -> tuple[float, float, int]:
        """``SortLiquidationOrders``' key: the fillable price's relative distance from the
        oracle and the oracle notional, both descending, then the account id."""
        state = self.ex.markets[m]
        size = float(self.ex._positions[m].size[a])
        if size == 0.0:
            return (0.0, 0.0, a)
        gap = abs(liquidator.fillable_price(self, a, m) - state.mark) / state.mark
        return (-gap, -abs(size) * state.mark, a)

    def _isolated_candidates_among(
        self, m: int, accounts: npt.NDArray[np.int64]
    ) -> list[tuple[int, bool]]:
        """The isolated positions of ``accounts`` under maintenance that a liquidator has
        reached, most distressed first (health, then account id): one compiled pass
        (``isolated_below_among_nb``), the liquidator's readiness only where cooldowns or a
        latency apply (as :meth:`_ready` would find every one ready otherwise)."""
        after, self.round_after = self.round_after, None
        if len(accounts) == 0:
            return []
        ex = self.ex
        state = ex.markets[m]
        if after is not None and after[0] is accounts and not ex.check_invariants:
            below, health = after[1], after[2]  # the one-call round's own check (batch_round)
        else:
            cols = ex._positions[m]
            tiers = state.tiers
            below, health = isolated_below_among_nb(
                np.asarray(accounts, dtype=np.int64), self._flags(ex.n_accounts), cols.size,
                cols.entry, cols.isolated_margin, cols.mode, ex._kind, state.mark, tiers.floor,
                tiers.mmr, tiers.cum, float(tiers.min_margin),
            )  # fmt: skip
            if (
                after is not None
                and after[0] is accounts
                and not (
                    np.array_equal(after[1], below)
                    and np.array_equal(after[2], health, equal_nan=True)
                )
            ):
                raise InvariantError("the batch round's check of its accounts differs")
        if len(below) == 0:
            return []
        risk = self.markets[m]
        if risk.cooldown_until_ns or risk.latency_ns:
            ready = np.array(self._ready(m, below.tolist(), ex.clock_ns), dtype=np.bool_)
            below, health = below[ready], health[ready]
        order = distress_order(below, health)
        return [(a, True) for a in below[order].tolist()]
