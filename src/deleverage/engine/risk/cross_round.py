"""Cross accounts of one liquidation round, with their journal rows in columns.

The per-account path (:meth:`LiquidationStage._liquidate`) emits every fill, penalty and
liquidation notice through the engine's ``_emit``: one event object, one journal row and one
pass of the ledger's generic ``_apply`` each. For cross accounts liquidated on the market
(no backstop, no liquidator execution, no time ramps, full / partial / tier-down sizes) this
path does the same work with the same decisions, in the same order, but

- applies each fill and transfer to the state at once through the ledger's own kernels
  (``apply_fills_nb``, ``apply_transfers_nb``: the same arithmetic, so the arrays are
  bit-identical) and the fund ledger's own mirror (``Ledger._fund_ledger``), without building
  an event object;
- keeps the journal rows in columns and appends them once (``Journal.append_columns`` with a
  kind per row), before any generic code may emit an event of its own, and at the round's end;
- reports the touched accounts (``Ledger._touch``, ``_touch_cash``) and the state version
  bumps at the same flush, before anything can read a cached scan.

Whatever the simple path does not cover (a full close beyond bankruptcy or one the book cannot
absorb: the fund, ADL, socialized loss; a bankrupt account with no position left) is handed to
the per-account path's own methods after a flush, so the journal keeps the per-account order.
``tests/unit/risk/test_cross_round_twin.py`` runs both on random cross books (shortfalls, fund
exhaustion, ADL) and compares journals, arrays and fund records.

Runs of consecutive cross candidates go through the compiled planner (:mod:`.cross_plan`) where
it reproduces the markets' rules (:meth:`CrossRound.liquidate_run`); it hands the account it
cannot finish to :meth:`CrossRound.resume` at the very position it stopped.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from deleverage.engine.events import _NUMPY_DTYPES, EventKind, FillReason, TransferReason
from deleverage.engine.kernels import apply_fills_nb, apply_transfers_nb
from deleverage.engine.risk.cross_plan import CrossPlanner
from deleverage.engine.risk.support import _POLICY_CODES, StepReport, _Caps
from deleverage.rules import liquidation as liq
from deleverage.spec import MarginMode

if TYPE_CHECKING:
    from deleverage.engine.risk.liquidate import LiquidationStage

_CROSS = int(MarginMode.CROSS)
_FILL = int(EventKind.FILL)
_TRANSFER = int(EventKind.TRANSFER)
_LIQUIDATION = int(EventKind.LIQUIDATION)
_FEE = int(TransferReason.LIQUIDATION_FEE)
_BY_BOOK = int(FillReason.LIQUIDATION)
_SIMPLE_KINDS = frozenset({"full", "partial", "tier_down"})
_ROW_FIELDS = (
    "kind", "account", "counterparty", "market", "size", "price", "amount", "fee",
    "counterparty_fee", "code",
)  # fmt: skip


def cross_round_ready(stage: LiquidationStage) -> bool:
    """Whether every listed market's rules are those this path reproduces: liquidation on the
    market (a book or the mark), no backstop takeover, no time ramps or liquidator fee ramps,
    full / partial / tier-down sizes, rates not scaled by open interest."""
    for state in stage.ex.markets:
        spec = state.spec
        policy = spec.liquidation
        if (
            policy.execution != "market"
            or policy.backstop_equity_fraction > 0.0
            or policy.ramp_duration_s > 0.0
            or policy.liquidator_fee_max_rate is not None
            or policy.kind not in _SIMPLE_KINDS
            or spec.open_interest_scaling is not None
        ):
            return False
    return True


class CrossRound:
    """Liquidates cross accounts of one round as :meth:`LiquidationStage._liquidate` does;
    journal rows kept in columns until :meth:`flush`."""

    def __init__(self, stage: LiquidationStage) -> None:
        self.stage = stage
        self.ts = 0
        self._rows: list[tuple[int, int, int, int, float, float, float, float, float, int]] = []
        self._touched: dict[int, list[int]] = {}  # market (-1: cash only) -> accounts, in order
        #: Rows already in columns (the planner's), in order, before ``_rows``.
        self._chunks: list[tuple[npt.NDArray[np.int16], dict[str, npt.NDArray[Any]]]] = []
        self._planner = CrossPlanner(self)
        #: Whether every account of the round so far went through the planner alone.
        self.planned = False
        self._one_i = np.zeros(2, dtype=np.int64)
        self._one_f = np.zeros(4)
        self._buy = np.zeros(1, dtype=np.int64)
        self._sell = np.zeros(1, dtype=np.int64)
        self._qty = np.zeros(1)
        self._price = np.zeros(1)
        self._zero = np.zeros(1)
        self._no_margin = np.zeros(0)
        self._no_mode = np.zeros(0, dtype=np.int8)

    # ------------------------------------------------------------------ one account
    def liquidate(self, a: int, m: int, ts: int, report: StepReport, caps: _Caps) -> bool:
        """:meth:`LiquidationStage._liquidate` of cross account ``a`` (found under maintenance
        in market ``m``). True if acted."""
        self.ts = ts
        equity, maint = self.stage.ex.cross_pool(a)
        if equity >= maint:
            return False
        order = self.stage._cross_order(a)
        return self.resume(a, m, report, caps, order, 0, True, equity, maint, False)

    def liquidate_run(
        self,
        candidates: list[tuple[int, bool]],
        start: int,
        m: int,
        ts: int,
        report: StepReport,
        caps: _Caps,
    ) -> tuple[int, bool]:
        """Liquidate the cross account ``candidates[start]`` and, where the compiled planner
        (:mod:`.cross_plan`) takes the round, the cross accounts right after it: the index of
        the next candidate and whether any acted."""
        planner = self._planner
        if not planner.ready(caps, ts):
            self.planned = False
            return start + 1, self.liquidate(candidates[start][0], m, ts, report, caps)
        end = start
        while end < len(candidates) and not candidates[end][1]:
            end += 1
        accounts = [a for a, _ in candidates[start:end]]
        return end, planner.run(accounts, m, ts, report, caps)

    def begin_round(self) -> None:
        """A new round: :meth:`among` answers for the accounts liquidated from here."""
        self.planned = True

    def among(self, candidates: list[tuple[int, bool]]) -> list[int] | None:
        """After a round: its accounts, if only the compiled planner ran (no stop, no Python
        path, no isolated candidate), so that no other account changed; else None.

        The next round's accounts under maintenance are then among them (the marks have not
        moved; an account outside changed nothing), and only they need a scan.
        """
        if not self.planned or any(isolated for _, isolated in candidates):
            return None
        return [a for a, _ in candidates]

    def resume(
        self,
        a: int,
        m: int,
        report: StepReport,
        caps: _Caps,
        order: list[int],
        start: int,
        fresh: bool,
        equity: float,
        maint: float,
        acted: bool,
    ) -> bool:
        """:meth:`liquidate`'s loop over the account's positions in close ``order`` from
        position ``start`` (``fresh``: ``equity``, ``maint`` are the pool now), then its
        flat-account settlement. True if acted (``acted``: already before ``start``)."""
        stage = self.stage
        ex = stage.ex
        for j in order[start:]:
            if not fresh:
                equity, maint = ex.cross_pool(a)
            if equity >= maint or caps.market_exhausted:
                break
            size = float(ex._positions[j].size[a])
            if size == 0.0:
                continue
            qty = stage._size_to_close(a, j, size, equity, maint, False)
            qty = caps.clip(a, qty, ex.markets[j].mark)
            if qty <= 0.0:
                continue
            caps.liquidated.add((a, j))
            self._close(a, j, qty, equity, report)
            fresh = False
            acted = True
        self._settle_flat(a, m, report)
        return acted

    def _close(self, a: int, m: int, qty: float, pool: float, report: StepReport) -> None:
        """:meth:`LiquidationStage._close` of a cross position on the market (``pool``: the
        account's cross equity now)."""
        stage = self.stage
        ex = stage.ex
        ts = self.ts
        state = ex.markets[m]
        spec = state.spec
        cols = ex._positions[m]
        size = float(cols.size[a])
        side = 1 if size > 0 else -1
        mark = state.mark
        equity = stage._position_equity(a, m, False, pool)
        full = qty >= abs(size) * (1 - 1e-12)
        asked = qty
        qty = abs(size) if full else qty
        risk = stage.markets[m]
        price, filled = stage._quote(risk, -side, qty, mark, ts)
        equity_after = equity + side * qty * (price - mark)
        exhausted = filled < qty * (1 - 1e-12)
        if full and (exhausted or stage._recourse(a, m, False, equity_after) > 0.0):
            # The fund, ADL or socialized loss may take part: the per-account path decides
            # (nothing has changed since it would have read the same state).
            self.flush()
            stage._close(a, m, asked, False, ts, report)
            return
        bankrupt = liq.bankruptcy_price(size, mark, equity)
        price, filled = stage._execute(risk, -side, qty, mark, ts)
        if filled <= 0.0:
            return
        full = full and filled >= qty * (1 - 1e-12)
        qty = abs(size) if full else filled
        equity_after = equity + side * qty * (price - mark)
        counterparty = ex.liquidity_account
        buyer, seller = (counterparty, a) if side > 0 else (a, counterparty)
        self._fill(m, buyer, seller, qty, price)
        # LiquidationStage._settle_fill for a cross position.
        fund = ex.insurance_account_for(m)
        still_open = cols.size[a] != 0.0
        fee_price = mark if spec.liquidation.fee_basis == "oracle" else price
        fee = spec.liquidation_fee_rate * qty * fee_price
        pool_after = pool + side * qty * (price - mark)
        penalty = liq.capped_penalty(fee=fee, equity_after_fill=min(equity_after, pool_after))
        if penalty > 0.0:
            self._transfer(a, fund, penalty, _FEE, m if still_open else -1)
        due = 0.0
        if full and not self._holds_cross(a):
            due = max(0.0, -float(ex._cash[a]) - stage.declared_bad_debt.get(a, 0.0))
        report.liquidations += 1
        report.liquidated_notional += qty * price
        report.penalties += penalty
        self._rows.append(
            (
                _LIQUIDATION, a, -1, m, -side * qty, price, max(0.0, due), penalty, bankrupt,
                _POLICY_CODES[spec.liquidation.kind],
            )
        )  # fmt: skip

    def _holds_cross(self, a: int) -> bool:
        ex = self.stage.ex
        return any(cols.size[a] != 0.0 and cols.mode[a] == _CROSS for cols in ex._positions)

    def _settle_flat(self, a: int, m: int, report: StepReport) -> None:
        """:meth:`ShortfallStage._settle_flat_cross`: a cross account left without cross
        positions and with negative cash is covered by the per-account path."""
        stage = self.stage
        if self._holds_cross(a):
            return
        shortfall = -float(stage.ex._cash[a]) - stage.declared_bad_debt.get(a, 0.0)
        if shortfall > 1e-9:
            self.flush()
            stage._cover(a, m, shortfall, self.ts, report)

    # ------------------------------------------------------------------ effects
    def _fill(self, m: int, buyer: int, seller: int, qty: float, price: float) -> None:
        """``Ledger._apply`` of a liquidation fill (no fees) through its own kernel."""
        ex = self.stage.ex
        ex._version += 2  # the event, then the fill columns (Ledger._apply_fill_columns)
        ex.clock_ns = max(ex.clock_ns, self.ts)
        cols = ex._positions[m]
        kind = ex._kind
        involved = sorted({buyer, seller})
        involved = [b for b in involved if kind[b] == 0]
        long_before = 0.0
        for b in involved:
            long_before += max(float(cols.size[b]), 0.0)
        self._buy[0], self._sell[0], self._qty[0], self._price[0] = buyer, seller, qty, price
        apply_fills_nb(
            cols.size, cols.entry, cols.isolated_margin, cols.mode, cols.realized_pnl, ex._cash,
            ex.fee_account, self._buy, self._sell, self._qty, self._price, self._zero, self._zero,
        )  # fmt: skip
        long_after = 0.0
        for b in involved:
            long_after += max(float(cols.size[b]), 0.0)
        ex._long_oi[m] += long_after - long_before
        self._touch(m, buyer, seller)
        self._rows.append((_FILL, buyer, seller, m, qty, price, 0.0, 0.0, 0.0, _BY_BOOK))

    def _transfer(self, source: int, destination: int, amount: float, reason: int, m: int) -> None:
        """``Ledger._apply`` of one transfer through its own kernel and fund mirror."""
        ex = self.stage.ex
        ex._version += 2  # the event, then the transfer columns
        ex.clock_ns = max(ex.clock_ns, self.ts)
        self._buy[0], self._sell[0], self._qty[0] = source, destination, amount
        if m >= 0:
            cols = ex._positions[m]
            apply_transfers_nb(
                ex._cash, cols.isolated_margin, cols.mode, cols.size, True, self._buy,
                self._sell, self._qty,
            )  # fmt: skip
        else:
            apply_transfers_nb(
                ex._cash, self._no_margin, self._no_mode, self._no_margin, False, self._buy,
                self._sell, self._qty,
            )  # fmt: skip
        self._touch(m, source, destination)
        if source in ex.funds or destination in ex.funds:
            ex._fund_ledger(source, destination, amount, reason, self.ts)
        self._rows.append((_TRANSFER, source, destination, m, 0.0, 0.0, amount, 0.0, 0.0, reason))

    def _touch(self, m: int, first: int, second: int) -> None:
        accounts = self._touched.get(m)
        if accounts is None:
            accounts = self._touched[m] = []
        accounts.append(first)
        accounts.append(second)

    def flush(self) -> None:
        """Report the touched accounts and append the journal rows kept so far (in order)."""
        ex = self.stage.ex
        if self._touched:
            for m, accounts in self._touched.items():
                acc = np.asarray(accounts, dtype=np.int64)
                if m >= 0:
                    ex._touch(m, acc)
                else:
                    ex._touch_cash(acc)
            self._touched = {}
        self.seal()
        if not self._chunks:
            return
        chunks = self._chunks
        self._chunks = []
        if len(chunks) == 1:
            kinds, data = chunks[0]
        else:
            kinds = np.concatenate([c[0] for c in chunks])
            data = {name: np.concatenate([c[1][name] for c in chunks]) for name in _ROW_FIELDS[1:]}
        ex.journal.append_columns(kinds, self.ts, **data)

    def seal(self) -> None:
        """Turn the rows kept as tuples into a chunk of columns (after the chunks before)."""
        if not self._rows:
            return
        rows = self._rows
        self._rows = []
        columns = list(zip(*rows, strict=True))
        kinds: npt.NDArray[np.int16] = np.array(columns[0], dtype=np.int16)
        data: dict[str, npt.NDArray[Any]] = {
            name: np.array(values, dtype=_DTYPES[name])
            for name, values in zip(_ROW_FIELDS[1:], columns[1:], strict=True)
        }
        self._chunks.append((kinds, data))


#: The journal's column dtypes for the rows a round buffers (``seq`` and ``ts_ns`` are stamped
#: by :meth:`Journal.append_columns`).
_DTYPES: dict[str, type] = {
    name: dtype for name, dtype in _NUMPY_DTYPES.items() if name not in ("seq", "ts_ns")
}
