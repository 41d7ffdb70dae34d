"""The compiled planner's driver: a run of a round's cross accounts in one compiled call.

:class:`CrossPlanner` hands :func:`~.cross_plan_nb.cross_plan_nb` the accounts (in the round's
order), the rows of every account the call can change (the run's, the liquidity, fee and fund
accounts: gathered from the markets' columns into 2D arrays, written back after), the tiers,
books and rules, and applies what comes back exactly as
:class:`~.cross_round.CrossRound` would have: the journal rows (kept as a chunk of columns in
the round's buffer, in order), the touched accounts, the fund ledger's records of the
penalties (one ``Ledger._fund_ledger`` each, in order), the state version and clock, the
books' consumed depth, the long open interest, the step's report and caps. Where the kernel
stops (a full close the per-account path decides, or a flat account's deficit for the fund) it
resumes ``CrossRound.resume`` at that very position, then calls the kernel again on the
accounts after it.

The planner takes a round only where it reproduces every rule: full or tier-down sizes, a
linear book (:class:`~deleverage.liquidity.ConstantDepthBook`) or fills at the mark, no caps
on the step, market ids equal to their index (``CrossRound``'s other conditions:
:func:`~.cross_round.cross_round_ready`). Elsewhere ``CrossRound`` runs account by account.
``tests/unit/risk/test_cross_plan_twin.py`` compares the two on random cross books.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from deleverage.engine.events import EventKind, FillReason, TransferReason
from deleverage.engine.risk.cross_plan_nb import (
    KIND_FULL,
    KIND_TIER_DOWN,
    MAX_MARKETS,
    STOP_NONE,
    cross_plan_nb,
    gather_rows_nb,
    scatter_rows_nb,
)
from deleverage.engine.risk.support import _POLICY_CODES, StepReport, _Caps
from deleverage.liquidity.books import ConstantDepthBook

if TYPE_CHECKING:
    from deleverage.engine.risk.cross_round import CrossRound

_KINDS = {"full": KIND_FULL, "tier_down": KIND_TIER_DOWN}
_TRANSFER = int(EventKind.TRANSFER)
_FEE = int(TransferReason.LIQUIDATION_FEE)
_CODES = np.array(
    [
        int(EventKind.FILL), _TRANSFER, int(EventKind.LIQUIDATION), int(FillReason.LIQUIDATION),
        _FEE,
    ],
    dtype=np.int64,
)  # fmt: skip


class CrossPlanner:
    """Runs :func:`cross_plan_nb` for a :class:`CrossRound` and applies its results."""

    def __init__(self, lean: CrossRound) -> None:
        self.lean = lean
        self._stop = np.zeros(11, dtype=np.int64)
        self._stop_f = np.zeros(2)
        self._totals = np.zeros(4)
        self._key: tuple[Any, ...] = ()
        self._static: tuple[Any, ...] = ()

    def ready(self, caps: _Caps, ts: int) -> bool:
        """Whether the planner reproduces this round's rules (see the module's docstring)."""
        stage = self.lean.stage
        if not stage.cross_plan or caps.per_account is not None or caps.per_market is not None:
            return False
        ex = stage.ex
        if len(ex.markets) > MAX_MARKETS:
            return False
        for j, state in enumerate(ex.markets):
            if state.id != j or state.spec.liquidation.kind not in _KINDS:
                return False
            book = stage.markets[j].liquidity
            if book is not None and (type(book) is not ConstantDepthBook or book.ts_ns > ts):
                return False
        return True

    def _statics(self) -> tuple[Any, ...]:
        """The markets' tier tables (padded rows and counts) and rules as the kernel takes them
        (rebuilt when a spec or tier table changes; the objects are kept, so no id in the key
        is reused while it is cached)."""
        ex = self.lean.stage.ex
        key = tuple((id(state.spec), id(state.tiers)) for state in ex.markets)
        if key == self._key:
            return self._static
        n_markets = len(ex.markets)
        n_tiers = np.array([len(state.tiers.floor) for state in ex.markets], dtype=np.int64)
        width = int(n_tiers.max()) if n_markets else 0
        floor, mmr, cum = (np.zeros((n_markets, width)) for _ in range(3))
        market_i = np.zeros((n_markets, 6), dtype=np.int64)
        for j, state in enumerate(ex.markets):
            t = int(n_tiers[j])
            floor[j, :t], mmr[j, :t], cum[j, :t] = (
                state.tiers.floor,
                state.tiers.mmr,
                state.tiers.cum,
            )
            policy = state.spec.liquidation
            steps = 1 if policy.tier_down_target == "next" else t
            market_i[j] = (
                _KINDS[policy.kind], steps, 0, 1 if policy.fee_basis == "oracle" else 0, -1,
                _POLICY_CODES[policy.kind],
            )  # fmt: skip
        alive = [(state.spec, state.tiers) for state in ex.markets]
        self._static = (floor, mmr, cum, n_tiers, market_i, alive)
        self._key = key
        return self._static

    def run(self, accounts: list[int], m: int, ts: int, report: StepReport, caps: _Caps) -> bool:
        """Liquidate ``accounts`` (a run of the round's cross candidates, in order) as
        ``CrossRound.liquidate`` one after another would. True if any acted."""
        lean = self.lean
        stage = lean.stage
        ex = stage.ex
        lean.ts = ts
        n_markets = len(ex.markets)
        acted = False
        start = 0
        declared_map = stage.declared_bad_debt
        while start < len(accounts):
            # (read at each call: the Python path after a stop may change books, arrays, specs)
            floor, mmr, cum, n_tiers = self._statics()[:4]
            market_f, market_i, consumed = self._markets(ts)
            batch = np.asarray(accounts[start:], dtype=np.int64)
            k = len(batch)
            # Every account the call can change: the run's, the counterparty, fee and funds
            # (their rows gathered from the columns in one compiled call, written back after).
            others = np.empty(2 + n_markets, dtype=np.int64)
            others[0], others[1] = ex.liquidity_account, ex.fee_account
            others[2:] = market_i[:, 4]
            columns = self._columns()
            gid, rows_of, size, entry, margin, mode, realized, cash, kind = gather_rows_nb(
                batch, others, *columns, ex._cash, ex._kind
            )
            market_i[:, 4] = gid.searchsorted(market_i[:, 4])
            fee_row, counterparty_row = gid.searchsorted(
                [ex.fee_account, ex.liquidity_account]
            ).tolist()
            if declared_map:
                declared = np.array([declared_map.get(a, 0.0) for a in accounts[start:]])
            else:  # no bad debt declared yet
                declared = np.zeros(k)
            long_oi = np.array(ex._long_oi, dtype=np.float64)
            totals = self._totals
            totals[:] = (0.0, report.liquidated_notional, report.penalties, caps.used_market)
            row_i = np.empty((3 * n_markets * k, 5), dtype=np.int64)
            row_f = np.empty((3 * n_markets * k, 5))
            touch = np.empty((4 * n_markets * k, 2), dtype=np.int64)
            clip_i = np.empty((n_markets * k, 3), dtype=np.int64)
            clip_f = np.empty(n_markets * k)
            order = np.zeros(n_markets, dtype=np.int64)
            stop = self._stop
            cross_plan_nb(
                rows_of, declared, gid, size, entry, margin, mode, realized, cash, kind,
                floor, mmr, cum, n_tiers, fee_row, counterparty_row, _CODES, market_f,
                market_i, consumed, long_oi, totals, row_i, row_f, touch, clip_i, clip_f, stop,
                self._stop_f, order,
            )  # fmt: skip
            # The rows back into the state (the same values where nothing changed).
            sizes, entries, margins, _, realized_cols = columns
            scatter_rows_nb(
                gid, size, entry, margin, realized, cash, sizes, entries, margins,
                realized_cols, ex._cash,
            )  # fmt: skip
            reason, done, rows, touches, clips = stop[:5].tolist()
            self._apply(ts, report, caps, totals, long_oi, row_i[:rows], row_f[:rows])
            self._touch(touch[:touches])
            self._caps(caps, clip_i[:clips], clip_f[:clips])
            executed = int(stop[9])
            for j in range(n_markets):
                if executed >> j & 1:
                    book = stage.markets[j].liquidity
                    assert isinstance(book, ConstantDepthBook)
                    book._consumed, book._ts_ns = float(consumed[j]), ts
            acted = acted or bool(stop[10])
            if reason == STOP_NONE:
                break
            # The Python path takes over at the stop, exactly where the kernel left off.
            lean.planned = False  # it may change other accounts (ADL, the fund's cover)
            a = accounts[start + done]
            p, fresh, was_acted, n_order = stop[5:9].tolist()
            equity, maint = float(self._stop_f[0]), float(self._stop_f[1])
            close_order = order[:n_order].tolist()
            acted = (
                lean.resume(a, m, report, caps, close_order, p, bool(fresh), equity, maint,
                            bool(was_acted))
                or acted
            )  # fmt: skip
            lean.flush()
            start += done + 1
        return acted

    def _columns(
        self,
    ) -> tuple[
        tuple[npt.NDArray[np.float64], ...], tuple[npt.NDArray[np.float64], ...],
        tuple[npt.NDArray[np.float64], ...], tuple[npt.NDArray[np.int8], ...],
        tuple[npt.NDArray[np.float64], ...],
    ]:  # fmt: skip
        """Every market's size, entry, isolated margin, mode and realized PnL columns (whole
        arrays, by account), taken again at each call: a growing ledger replaces them."""
        cols = self.lean.stage.ex._positions
        return (
            tuple(c.size for c in cols), tuple(c.entry for c in cols),
            tuple(c.isolated_margin for c in cols), tuple(c.mode for c in cols),
            tuple(c.realized_pnl for c in cols),
        )  # fmt: skip

    def _markets(
        self, ts: int
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64], npt.NDArray[np.float64]]:
        """Per market now: (mark, book mid, depth D, max move, lot, liquidation fee rate,
        min margin), the static integers with the book flag and the fund account set, the
        books' consumed depth."""
        stage = self.lean.stage
        ex = stage.ex
        n_markets = len(ex.markets)
        market_f = np.zeros((n_markets, 7))
        market_i = self._statics()[4].copy()
        consumed = np.zeros(n_markets)
        for j, state in enumerate(ex.markets):
            risk = stage.markets[j]
            book = risk.liquidity
            spec = state.spec
            mark = state.mark
            mid, depth, max_move = mark, 0.0, 0.0
            if book is not None:
                assert isinstance(book, ConstantDepthBook)
                mid = risk.book_price(mark)
                depth, max_move = book.depth, book.max_move
                consumed[j] = book._consumed_at(ts)[0]
                market_i[j, 2] = 1
            market_i[j, 4] = ex.insurance_account_for(j)
            market_f[j] = (
                mark, mid, depth, max_move, spec.lot_size, spec.liquidation_fee_rate,
                state.tiers.min_margin,
            )  # fmt: skip
        return market_f, market_i, consumed

    def _apply(
        self,
        ts: int,
        report: StepReport,
        caps: _Caps,
        totals: npt.NDArray[np.float64],
        long_oi: npt.NDArray[np.float64],
        row_i: npt.NDArray[np.int64],
        row_f: npt.NDArray[np.float64],
    ) -> None:
        """Rows into the round's buffer (in order), the fund ledger, report, caps, versions."""
        lean = self.lean
        ex = lean.stage.ex
        report.liquidations += int(totals[0])
        report.liquidated_notional = float(totals[1])
        report.penalties = float(totals[2])
        caps.used_market = float(totals[3])
        for j, value in enumerate(long_oi.tolist()):
            ex._long_oi[j] = value
        n = len(row_i)
        if n == 0:
            return
        ex._version += 2 * n - 2 * int(np.count_nonzero(row_i[:, 0] == _CODES[2]))
        ex.clock_ns = max(ex.clock_ns, ts)
        lean.seal()
        lean._chunks.append(
            (
                row_i[:, 0].astype(np.int16),
                {
                    "account": row_i[:, 1].copy(), "counterparty": row_i[:, 2].copy(),
                    "market": row_i[:, 3].astype(np.int32), "size": row_f[:, 0].copy(),
                    "price": row_f[:, 1].copy(), "amount": row_f[:, 2].copy(),
                    "fee": row_f[:, 3].copy(), "counterparty_fee": row_f[:, 4].copy(),
                    "code": row_i[:, 4].astype(np.int32),
                },
            )
        )  # fmt: skip
        funds = ex.funds
        transfers = np.flatnonzero(row_i[:, 0] == _TRANSFER)
        if len(transfers):
            sources = row_i[transfers, 1].tolist()
            destinations = row_i[transfers, 2].tolist()
            amounts = row_f[transfers, 2].tolist()
            for source, destination, amount in zip(sources, destinations, amounts, strict=True):
                if source in funds or destination in funds:
                    ex._fund_ledger(source, destination, amount, _FEE, ts)

    def _touch(self, touch: npt.NDArray[np.int64]) -> None:
        """The touched (market, account) pairs into the round's buffer, in order."""
        touched = self.lean._touched
        for market, account in touch.tolist():
            accounts = touched.get(market)
            if accounts is None:
                accounts = touched[market] = []
            accounts.append(account)

    @staticmethod
    def _caps(caps: _Caps, clip_i: npt.NDArray[np.int64], clip_f: npt.NDArray[np.float64]) -> None:
        """``_Caps.clip``'s records (notional per account) and the liquidated pairs."""
        used = caps.used_account
        for (a, j, liquidated), notional in zip(clip_i.tolist(), clip_f.tolist(), strict=True):
            used[a] = used.get(a, 0.0) + notional
            if liquidated:
                caps.liquidated.add((a, j))
