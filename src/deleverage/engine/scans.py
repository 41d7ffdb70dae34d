"""Valuation and margin scans: who is under maintenance, or at the margin-call level.

The middle layer of :class:`~deleverage.engine.exchange.Exchange`. Account margins, the
per-version cached margin state, the cross scan (cross accounts' equity and maintenance summed
over every market, narrowed by the distance-to-zone bound of :mod:`.cross_index`) and the
isolated scan (narrowed by the sorted zone-price index of :mod:`.level_index`); both evaluate
their candidates with the same compiled kernels as the full pass, so results are equal
(``check_invariants`` compares them on every scan). Also the conservation report.
"""

from __future__ import annotations

import hashlib
from bisect import bisect_right
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from deleverage.engine.collateral import ex_has_collateral, ledger_of
from deleverage.engine.cross_index import CROSS_SLACK, CrossIndex, CrossSplit
from deleverage.engine.cross_kernels import (
    anchor_nb,
    bounded_scan_nb,
    cross_subset_scan_nb,
    cross_terms_nb,
)
from deleverage.engine.cross_step import BoundedScan
from deleverage.engine.kernels import (
    accumulate_market_nb,
    cross_partial_nb,
    cross_scan_nb,
    isolated_market_nb,
    isolated_scan_nb,
    margin_ratio_nb,
)
from deleverage.engine.ledger import FloatArray, IntArray, Ledger, MarketRef
from deleverage.engine.state import (
    AccountKind,
    AccountMargins,
    Conservation,
    PositionView,
)
from deleverage.engine.zone_calls import (
    ZoneTracker,
    ask_tracker,
    full_scan,
    indexed_scan,
    tracker_at,
)
from deleverage.errors import (
    InvariantError,
)
from deleverage.rules import margin as mm
from deleverage.spec import MarginMode, TierArrays

_MARGIN_STATE_KEYS = (
    "cross_equity",
    "cross_maintenance",
    "cross_initial",
    "total_equity",
    "cross_margin_ratio",
)


class MarginScans(Ledger):
    """Valuation and the margin scans (see the module docstring)."""

    # ------------------------------------------------------------------ valuation
    def mark_prices(self) -> FloatArray:
        """Current mark of every market, by market id."""
        return np.array([s.mark for s in self.markets], dtype=np.float64)

    def valuation(self, market: MarketRef) -> dict[str, FloatArray]:
        """Per-account figures in one market at its mark, as arrays over all accounts.

        Keys: ``upnl``, ``notional``, ``maintenance``, ``initial`` (quote).
        """
        m = self.market_id(market)
        state = self.markets[m]
        cols = self._positions[m]
        n = self._n
        size = cols.size[:n]
        notional = np.abs(size) * state.mark
        return {
            "upnl": size * (state.mark - cols.entry[:n]),
            "notional": notional,
            "maintenance": mm.maintenance_margin(notional, state.tiers),
            "initial": mm.initial_margin(notional, state.tiers, leverage=cols.leverage[:n]),
        }

    def margin_state(self) -> dict[str, FloatArray]:
        """Vectorized margin state of every account at current marks.

        Keys (arrays over account ids): ``cross_equity``, ``cross_maintenance``,
        ``cross_initial``, ``total_equity``, ``cross_margin_ratio`` (maintenance / equity).
        Isolated positions are reported per market by :meth:`isolated_state`.
        """
        out = {name: np.empty(self._n) for name in _MARGIN_STATE_KEYS}
        self._margin_state_into(out)
        return out

    def _margin_state_into(self, out: dict[str, FloatArray]) -> None:
        n = self._n
        cash = self._cash[:n]
        ce, cm = out["cross_equity"][:n], out["cross_maintenance"][:n]
        ci, te = out["cross_initial"][:n], out["total_equity"][:n]
        if not self.markets:
            ce[:], cm[:], ci[:], te[:] = cash, 0.0, 0.0, cash
        for k, (state, cols) in enumerate(zip(self.markets, self._positions, strict=True)):
            t = state.tiers
            accumulate_market_nb(
                cols.size[:n], cols.entry[:n], cols.isolated_margin[:n], cols.mode[:n],
                cols.leverage[:n], state.mark, t.floor, t.imr, t.mmr, t.cum, t.min_margin, ce, cm,
                ci, te, cash, k == 0, t.initial_fee,
            )  # fmt: skip
        margin_ratio_nb(ce, cm, out["cross_margin_ratio"][:n])

    def _cached(self, key: tuple[Any, ...], compute: Callable[[], Any]) -> Any:
        """``compute()``, remembered until the state version changes."""
        hit = self._cache.get(key)
        if hit is not None and hit[0] == self._version:
            return hit[1]
        value = compute()
        self._cache[key] = (self._version, value)
        return value

    def cached_margin_state(self) -> dict[str, FloatArray]:
        """:meth:`margin_state`, computed once per state version into reused buffers.

        The arrays are read-only views that the next state change overwrites: read them, do
        not keep them (:meth:`margin_state` returns fresh arrays).
        """

        def compute() -> dict[str, FloatArray]:
            buffers = self._buffers
            if len(buffers.get("cross_equity", ())) < self._n:
                buffers = {name: np.empty(self._capacity) for name in _MARGIN_STATE_KEYS}
                self._buffers = buffers
            self._margin_state_into(buffers)
            value = {name: arr[: self._n].view() for name, arr in buffers.items()}
            for arr in value.values():
                arr.flags.writeable = False
            return value

        cached: dict[str, FloatArray] = self._cached(("margin",), compute)
        return cached

    def cross_scan(self, market: MarketRef, call_level: float) -> dict[str, Any]:
        """The risk step's scan of cross accounts after ``market``'s mark moved.

        Returns ``below`` with ``below_equity`` and ``below_maintenance`` (traders with a
        cross position in the market under maintenance) and ``warn`` with ``warn_ratio``
        (those at or above ``call_level``). Cached per version. A full pass also returns
        ``ratio`` (maintenance / cross equity of every account, a read-only view valid until
        the next change); while only marks change, a bounded pass re-checks just the accounts
        the moves can have reached (:mod:`deleverage.engine.cross_index`) and has no ``ratio``.
        """
        m = self.market_id(market)
        hit = self._cache.get(("scan", m, call_level))  # _cached's test, without a closure
        if hit is not None and hit[0] == self._version:
            return hit[1]  # type: ignore[no-any-return]
        scan: dict[str, Any] = self._cached(
            ("scan", m, call_level), lambda: self._cross_scan(m, call_level)
        )
        return scan

    def _cross_scan(self, m: int, call_level: float) -> dict[str, Any]:
        if not self.use_level_index:
            return self._cross_scan_full(m, call_level)
        key = min(float(call_level), 1.0)
        index = self._cross_index.get(key)
        if index is None:
            index = self._cross_index[key] = CrossIndex(call_level)
        marks = self.mark_prices()
        split = index.split(marks)
        if split is not None:
            result = self._cross_scan_split(m, call_level, split, marks)
            if self.check_invariants:
                self._check_cross_scan(m, call_level, result)
            if split.reanchor:  # the next scans evaluate fewer accounts
                self._reanchor(index, marks)
            return result
        result = self._cross_scan_full(m, call_level)
        n = self._n
        tiers = [st.tiers for st in self.markets]
        slopes: list[FloatArray] | None = None
        if any(t.whole_position for t in tiers):  # slopes with step caps: CrossIndex.build's
            margins = self.cached_margin_state()
            equity, maint = margins["cross_equity"], margins["cross_maintenance"]
        else:  # the margin state's E and MM and the slopes, one compiled pass
            equity, maint, *slopes = self.cross_terms(np.arange(n), marks, index.level)
        index.build(
            marks, [c.size[:n] for c in self._positions], [c.mode[:n] for c in self._positions],
            tiers, equity, maint, self._kind[:n] == 0, slopes,
        )  # fmt: skip
        return result

    def _reanchor(self, index: CrossIndex, marks: FloatArray) -> None:
        """Re-take ``index``'s anchor at ``marks`` (the current marks) from its near columns."""
        cols = index.near_columns(*self._cross_columns(), self._cash, self.check_invariants)
        floors, mmrs, cums, min_margins = self._cross_static()[1]
        anchor = anchor_nb(
            index.near, *cols, marks, floors, mmrs, cums, min_margins, index.level, CROSS_SLACK,
            index.near_sorted,
        )  # fmt: skip
        index.take_anchor(marks, *anchor)

    def _sum_other_markets(
        self, m: int, sel: IntArray | slice, cash: FloatArray, equity: FloatArray,
        maint: FloatArray,
    ) -> bool:  # fmt: skip
        """Cross equity and maintenance of the rows ``sel`` over every market but ``m`` (the
        scan kernel adds ``m`` last); return whether nothing was summed (``first``)."""
        first = True
        for state, cols in zip(self.markets, self._positions, strict=True):
            if state.id == m:
                continue
            t = state.tiers
            cross_partial_nb(
                cols.size[sel], cols.entry[sel], cols.mode[sel], state.mark, t.floor, t.mmr,
                t.cum, t.min_margin, cash, equity, maint, first,
            )  # fmt: skip
            first = False
        return first

    def _cross_scan_subset(self, m: int, call_level: float, acc: IntArray) -> dict[str, Any]:
        """:meth:`_cross_scan_full` over the accounts ``acc`` only (same arithmetic, same
        result: :func:`.cross_kernels.cross_subset_scan_nb`)."""
        k = len(acc)
        if k == 0:
            return _empty_scan()
        ratio = np.empty(k)
        below, below_e, below_m = np.empty(k, dtype=np.int64), np.empty(k), np.empty(k)
        warn = np.empty(k, dtype=np.int64)
        sizes, entries, modes = self._cross_columns()
        marks, floors, mmrs, cums, min_margins = self._cross_tiers()
        n_below, n_warn = cross_subset_scan_nb(
            acc, m, sizes, entries, modes, self._kind, self._cash, marks, floors, mmrs, cums,
            min_margins, call_level, ratio, below, below_e, below_m, warn,
        )  # fmt: skip
        return {
            "below": acc[below[:n_below]],
            "below_equity": below_e[:n_below],
            "below_maintenance": below_m[:n_below],
            "warn": acc[warn[:n_warn]],
            "warn_ratio": ratio[warn[:n_warn]],
        }

    def _cross_scan_split(
        self, m: int, call_level: float, split: CrossSplit, marks: FloatArray
    ) -> dict[str, Any]:
        """The bounded scan with the second bound (:meth:`.CrossIndex.split`) at ``marks`` (the
        current ones): ``split.evaluate`` evaluated as :meth:`_cross_scan_subset` does, those the
        second bound keeps in the zone added to ``warn``. ``warn_ratio`` (all of ``warn``) is
        computed on first access; :meth:`cross_warn_ratios` computes only those a caller needs."""
        (sizes, entries, modes), (floors, mmrs, cums, min_margins) = self._cross_static()
        below, below_e, below_m, warn, ev_warn, ev_ratio = bounded_scan_nb(
            split.evaluate, m, sizes, entries, modes, self._kind, self._cash, marks, floors, mmrs,
            cums, min_margins, call_level, split.in_acc[m], split.in_q[m], split.threshold,
            split.dirty, split.flag,
        )  # fmt: skip
        result = BoundedScan(self, m, call_level)
        result.update(below=below, below_equity=below_e, below_maintenance=below_m, warn=warn)
        result.evaluated = (ev_warn, ev_ratio)
        return result

    def cross_terms(
        self, acc: IntArray, marks: FloatArray, level: float
    ) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
        """Cross equity ``E``, maintenance ``MM``, ``K`` at ``level`` and ``K`` at 1
        (docs/formulas.md §14) of the accounts ``acc`` at ``marks`` (one compiled pass:
        :func:`.cross_kernels.cross_terms_nb`)."""
        k = len(acc)
        equity, maint, k_level, k_one = np.empty(k), np.empty(k), np.empty(k), np.empty(k)
        sizes, entries, modes = self._cross_columns()
        _, floors, mmrs, cums, min_margins = self._cross_tiers()
        cross_terms_nb(
            np.ascontiguousarray(acc, dtype=np.int64), sizes, entries, modes, self._cash,
            np.ascontiguousarray(marks, dtype=np.float64), floors, mmrs, cums, min_margins,
            float(level), equity, maint, k_level, k_one,
        )  # fmt: skip
        return equity, maint, k_level, k_one

    def cross_warn_ratios(
        self, m: int, call_level: float, scan: dict[str, Any], pick: npt.NDArray[np.bool_]
    ) -> FloatArray:
        """``scan["warn_ratio"][pick]`` of a :meth:`cross_scan` of market ``m`` at the current
        state, computing only those ratios when the scan has not (the same kernel, the same
        figures)."""
        if "warn_ratio" in scan:
            return np.asarray(scan["warn_ratio"][pick], dtype=np.float64)
        if not np.count_nonzero(pick):  # (cheaper than pick.any())
            return np.zeros(0)
        acc = np.asarray(scan["warn"], dtype=np.int64)[pick]
        if isinstance(scan, BoundedScan) and scan._version == self._version and scan.evaluated:
            ev_acc, ev_ratio = scan.evaluated  # the warned accounts the scan evaluated
            at = ev_acc.searchsorted(acc)  # (int64 ids: equal bytes, equal ids; cheap)
            if at[-1] < len(ev_acc) and ev_acc[at].tobytes() == acc.tobytes():
                return np.asarray(ev_ratio[at], dtype=np.float64)  # the same kernel's figures
        return self._warn_ratios(m, call_level, acc)

    def _warn_ratios(self, m: int, call_level: float, acc: IntArray) -> FloatArray:
        """``MM / E`` of the accounts ``acc`` (ascending) after market ``m``'s mark, as the scans
        compute it (:func:`.cross_kernels.cross_subset_scan_nb`)."""
        k = len(acc)
        ratio = np.empty(k)
        if k == 0:
            return ratio
        sizes, entries, modes = self._cross_columns()
        marks, floors, mmrs, cums, min_margins = self._cross_tiers()
        scratch_i = np.empty(k, dtype=np.int64)
        scratch_f = np.empty(k)
        cross_subset_scan_nb(
            np.ascontiguousarray(acc, dtype=np.int64), m, sizes, entries, modes, self._kind,
            self._cash, marks, floors, mmrs, cums, min_margins, call_level, ratio, scratch_i,
            scratch_f, np.empty(k), np.empty(k, dtype=np.int64),
        )  # fmt: skip
        return ratio

    def _cross_columns(
        self,
    ) -> tuple[tuple[FloatArray, ...], tuple[FloatArray, ...], tuple[npt.NDArray[np.int8], ...]]:
        """Every market's size, entry and mode columns (whole arrays, indexed by account)."""
        columns: tuple[
            tuple[FloatArray, ...], tuple[FloatArray, ...], tuple[npt.NDArray[np.int8], ...]
        ] = self._cross_static()[0]
        return columns

    def _cross_tiers(
        self,
    ) -> tuple[FloatArray, tuple[FloatArray, ...], tuple[FloatArray, ...], tuple[FloatArray, ...],
               FloatArray]:  # fmt: skip
        """Marks, tier floors, maintenance rates, deductions and floors of every market."""
        floors, mmrs, cums, min_margins = self._cross_static()[1]
        marks = np.array([st.mark for st in self.markets], dtype=np.float64)
        return marks, floors, mmrs, cums, min_margins

    def _cross_static(self) -> tuple[Any, Any]:
        """The columns of :meth:`_cross_columns` and the tier arrays of :meth:`_cross_tiers`,
        built again only when they can have been replaced: the columns when the capacity grows
        or a market is listed (``Ledger._grow``, ``_apply_market_listed``), a market's tiers
        when its ``TierArrays`` object is replaced (risk parameters, open-interest scaling)."""
        states = self.markets
        hit = getattr(self, "_cross_static_cache", None)
        if (
            hit is not None
            and hit[0] == self._capacity
            and len(hit[1]) == len(states)
            and all(t is st.tiers for t, st in zip(hit[1], states, strict=True))
        ):
            return hit[2], hit[3]
        cols = self._positions
        columns = (
            tuple(c.size for c in cols),
            tuple(c.entry for c in cols),
            tuple(c.mode for c in cols),
        )
        tiers = (
            tuple(st.tiers.floor for st in states),
            tuple(st.tiers.mmr for st in states),
            tuple(st.tiers.cum for st in states),
            np.array([st.tiers.min_margin for st in states], dtype=np.float64),
        )
        self._cross_static_cache = (
            self._capacity, [st.tiers for st in states], columns, tiers,
        )  # fmt: skip
        return columns, tiers

    def _check_cross_scan(self, m: int, call_level: float, result: dict[str, Any]) -> None:
        """The bounded scan must equal the full pass (``check_invariants`` mode)."""
        full = self._cross_scan_full(m, call_level)
        _ = result["warn_ratio"]  # a bounded scan computes it on first access
        for name, value in result.items():
            if not np.array_equal(value, full[name]):
                raise InvariantError(
                    f"bounded cross scan of market {m} differs from the full pass in `{name}`"
                )

    def _cross_scan_full(self, m: int, call_level: float) -> dict[str, Any]:
        n = self._n
        buffers = self._scan_buffers
        if len(buffers.get("ratio", ())) < n:
            buffers = {name: np.empty(self._capacity) for name in ("ratio", "equity", "maint")}
            buffers["below"] = np.empty(self._capacity, dtype=np.int64)
            buffers["below_e"] = np.empty(self._capacity)
            buffers["below_m"] = np.empty(self._capacity)
            buffers["warn"] = np.empty(self._capacity, dtype=np.int64)
            self._scan_buffers = buffers
        cash = self._cash[:n]
        equity, maint = buffers["equity"][:n], buffers["maint"][:n]
        first = self._sum_other_markets(m, slice(0, n), cash, equity, maint)
        state, cols, t = self.markets[m], self._positions[m], self.markets[m].tiers
        ratio = buffers["ratio"][:n]
        n_below, n_warn = cross_scan_nb(
            cols.size[:n], cols.entry[:n], cols.mode[:n], self._kind[:n], state.mark, t.floor,
            t.mmr, t.cum, t.min_margin, cash, equity, maint, first, call_level, ratio,
            buffers["below"], buffers["below_e"], buffers["below_m"], buffers["warn"],
        )  # fmt: skip
        view = ratio.view()
        view.flags.writeable = False
        return {
            "ratio": view,
            "below": buffers["below"][:n_below].copy(),
            "below_equity": buffers["below_e"][:n_below].copy(),
            "below_maintenance": buffers["below_m"][:n_below].copy(),
            "warn": buffers["warn"][:n_warn].copy(),
            "warn_ratio": ratio[buffers["warn"][:n_warn]].copy(),
        }

    def isolated_scan(self, market: MarketRef, call_level: float) -> dict[str, Any]:
        """The risk step's scan of isolated trader positions in ``market``.

        Returns ``below`` with ``below_equity`` and ``below_maintenance`` (positions under
        maintenance) and ``warn`` with ``warn_ratio`` (maintenance / equity at or above
        ``call_level``). One pass over the columns, cached per state version.
        """
        m = self.market_id(market)
        scan: dict[str, Any] = self._cached(
            ("iscan", m, call_level), lambda: self._isolated_scan(m, call_level)
        )
        return scan

    def _isolated_scan(self, m: int, call_level: float) -> dict[str, Any]:
        n = self._n
        buffers = self._scan_buffers
        if len(buffers.get("i_below", ())) < n:
            for name in ("i_below", "i_warn"):
                buffers[name] = np.empty(self._capacity, dtype=np.int64)
            for name in ("i_below_e", "i_below_m", "i_warn_r"):
                buffers[name] = np.empty(self._capacity)
        state, cols, t = self.markets[m], self._positions[m], self.markets[m].tiers
        if self.use_level_index:  # any schedule: levels.index_zone_prices
            result = self._indexed_isolated_scan(m, call_level)
            if self.check_invariants:
                self._check_indexed_scan(m, call_level, result)
            return result
        n_below, n_warn = isolated_scan_nb(
            cols.size[:n], cols.entry[:n], cols.isolated_margin[:n], cols.mode[:n],
            self._kind[:n], state.mark, t.floor, t.mmr, t.cum, t.min_margin, call_level,
            buffers["i_below"], buffers["i_below_e"], buffers["i_below_m"], buffers["i_warn"],
            buffers["i_warn_r"],
        )  # fmt: skip
        return {
            "below": buffers["i_below"][:n_below].copy(),
            "below_equity": buffers["i_below_e"][:n_below].copy(),
            "below_maintenance": buffers["i_below_m"][:n_below].copy(),
            "warn": buffers["i_warn"][:n_warn].copy(),
            "warn_ratio": buffers["i_warn_r"][:n_warn].copy(),
        }

    def _indexed_isolated_scan(self, m: int, call_level: float) -> dict[str, Any]:
        """:meth:`_isolated_scan` over the candidates of the zone-price index only, from the
        statuses of :mod:`.zone_calls` where they apply (the positions that can have changed)."""
        return indexed_scan(self, m, call_level)

    def isolated_tracker(self, m: int, call_level: float) -> ZoneTracker | None:
        """The statuses of market ``m``'s isolated positions when they hold for the current
        state at ``call_level`` (:func:`.zone_calls.tracker_at`), else None."""
        return tracker_at(self, m, call_level)

    def ask_zone_calls(self, m: int, called: npt.NDArray[np.int64]) -> ZoneTracker | None:
        """Market ``m``'s tracker asked to update ``called`` in its next step, or None
        (:func:`.zone_calls.ask_tracker`)."""
        return ask_tracker(self, m, called)

    def isolated_scan_full(self, m: int, call_level: float) -> dict[str, Any]:
        """The isolated scan by the full pass over every position (no index)."""
        return full_scan(self, m, call_level)

    def _check_indexed_scan(self, m: int, call_level: float, result: dict[str, Any]) -> None:
        """The indexed scan must equal the full pass (``check_invariants`` mode)."""
        self.use_level_index = False
        try:
            full = self._isolated_scan(m, call_level)
        finally:
            self.use_level_index = True
        for name, value in full.items():
            if not np.array_equal(value, result[name]):
                raise InvariantError(
                    f"indexed isolated scan of market {m} differs from the full pass in `{name}`"
                )

    def isolated_state(self, market: MarketRef) -> dict[str, FloatArray]:
        """Equity, maintenance and margin ratio of isolated positions in one market."""
        m = self.market_id(market)
        state = self.markets[m]
        cols = self._positions[m]
        n = self._n
        equity = np.zeros(n)
        maint = np.zeros(n)
        t = state.tiers
        isolated_market_nb(
            cols.size[:n], cols.entry[:n], cols.isolated_margin[:n], cols.mode[:n], state.mark,
            t.floor, t.mmr, t.cum, t.min_margin, equity, maint,
        )  # fmt: skip
        return {"equity": equity, "maintenance": maint, "margin_ratio": _ratio(equity, maint)}

    def cross_pool(self, account: int) -> tuple[float, float]:
        """Cross equity and cross maintenance (quote) of one account at current marks: the
        pool a cross position draws on.

        The same figures, bit for bit, as :meth:`account_margins`' ``cross_equity`` and
        ``cross_maintenance`` (same terms, same order; the tier found by bisection on the
        floors as :func:`~deleverage.rules.margin.tier_index` finds it), without the initial
        margin and the isolated figures the liquidation path does not read.
        """
        a = account
        cross_upnl = cross_maint = 0.0
        for state, cols in zip(self.markets, self._positions, strict=True):
            size = float(cols.size[a])
            if size == 0.0 and cols.isolated_margin[a] == 0.0:
                continue
            if cols.mode[a] == _ISOLATED:
                continue
            mark = state.mark
            cross_upnl += size * (mark - float(cols.entry[a]))
            cross_maint += maintenance_scalar(abs(size) * mark, state.tiers)
        return float(self._cash[a]) + cross_upnl, cross_maint

    def cross_maintenances(self, account: int) -> tuple[list[int], list[float]]:
        """The markets in which ``account`` holds a cross position (in market order) and each
        position's maintenance margin (quote; :func:`maintenance_scalar`)."""
        a = account
        ids: list[int] = []
        maint: list[float] = []
        for state, cols in zip(self.markets, self._positions, strict=True):
            size = float(cols.size[a])
            if size != 0.0 and cols.mode[a] == _CROSS:
                ids.append(state.id)
                maint.append(maintenance_scalar(abs(size) * state.mark, state.tiers))
        return ids, maint

    def account_margins(self, account: int) -> AccountMargins:
        """Margin figures of one account at current marks."""
        a = self._check_account(account)
        cash = float(self._cash[a])
        cross_upnl = cross_initial = cross_maint = iso = iso_upnl = 0.0
        for state, cols in zip(self.markets, self._positions, strict=True):
            size = float(cols.size[a])
            if size == 0.0 and cols.isolated_margin[a] == 0.0:
                continue
            upnl = size * (state.mark - float(cols.entry[a]))
            notional = abs(size) * state.mark
            if cols.mode[a] == MarginMode.ISOLATED:
                iso += float(cols.isolated_margin[a])
                iso_upnl += upnl
                continue
            cross_upnl += upnl
            cross_initial += float(
                mm.initial_margin(notional, state.tiers, leverage=cols.leverage[a])
            )
            cross_maint += float(mm.maintenance_margin(notional, state.tiers))
        return AccountMargins(
            cash=cash,
            cross_equity=cash + cross_upnl,
            cross_initial=cross_initial,
            cross_maintenance=cross_maint,
            isolated_margin=iso,
            total_equity=cash + iso + cross_upnl + iso_upnl,
        )

    def conservation(self) -> Conservation:
        """The money-conservation equation's lines (see module docstring)."""
        n = self._n
        upnl = 0.0
        iso = 0.0
        for state, cols in zip(self.markets, self._positions, strict=True):
            upnl += float(np.sum(cols.size[:n] * (state.mark - cols.entry[:n])))
            iso += float(np.sum(cols.isolated_margin[:n]))
        total = self.margin_state()["total_equity"]
        kinds = self._kind[:n]

        def below(kind: AccountKind) -> float:
            return float(-np.sum(np.minimum(total[kinds == kind], 0.0))) + 0.0

        return Conservation(
            cash=float(np.sum(self._cash[:n])),
            isolated_margin=iso,
            unrealized_pnl=upnl,
            net_deposits=self.net_deposits,
            negative_equity=below(AccountKind.TRADER),
            negative_equity_liquidity=below(AccountKind.LIQUIDITY),
            negative_equity_insurance=below(AccountKind.INSURANCE),
            negative_equity_fees=below(AccountKind.FEE),
            negative_equity_backstop=below(AccountKind.BACKSTOP),
            negative_equity_liquidator=below(AccountKind.LIQUIDATOR),
            negative_equity_bad_debt=below(AccountKind.BAD_DEBT),
        )

    def assert_conserved(self) -> None:
        """Raise :class:`InvariantError` if money is not conserved."""
        c = self.conservation()
        if not c.holds:
            raise InvariantError(
                f"money not conserved: cash {c.cash} + isolated {c.isolated_margin} + upnl "
                f"{c.unrealized_pnl} - net deposits {c.net_deposits} = {c.error}"
            )

    # ------------------------------------------------------------------ tables and views
    def margin_table(self, *, include_system: bool = False) -> pd.DataFrame:
        """One row per open position: size, entry, mark, PnL, margins, margin ratio."""
        n = self._n
        frames = []
        ms = self.margin_state()
        for m, (state, cols) in enumerate(zip(self.markets, self._positions, strict=True)):
            size = cols.size[:n]
            keep = size != 0
            if not include_system:
                keep &= self._kind[:n] == AccountKind.TRADER
            idx = np.flatnonzero(keep)
            if len(idx) == 0:
                continue
            v = self.valuation(m)
            iso = cols.mode[idx] == MarginMode.ISOLATED
            equity = np.where(
                iso, cols.isolated_margin[idx] + v["upnl"][idx], ms["cross_equity"][idx]
            )
            maint = np.where(iso, v["maintenance"][idx], ms["cross_maintenance"][idx])
            frames.append(
                pd.DataFrame(
                    {
                        "account": idx,
                        "market": state.spec.symbol,
                        "mode": np.where(iso, "isolated", "cross"),
                        "size": state.units.venue_size(size[idx]),
                        "entry_price": state.units.venue_price(cols.entry[idx]),
                        "mark_price": state.mark_price,
                        "notional": v["notional"][idx],
                        "unrealized_pnl": v["upnl"][idx],
                        "initial_margin": v["initial"][idx],
                        "maintenance_margin": v["maintenance"][idx],
                        "equity": equity,
                        "margin_ratio": mm.margin_ratio(equity, maint),
                    }
                )
            )
        if not frames:
            return pd.DataFrame(
                columns=[
                    "account", "market", "mode", "size", "entry_price", "mark_price", "notional",
                    "unrealized_pnl", "initial_margin", "maintenance_margin", "equity",
                    "margin_ratio",
                ]
            )  # fmt: skip
        return pd.concat(frames, ignore_index=True)

    def position(self, account: int, market: MarketRef) -> PositionView:
        """A read-only view of one position."""
        return PositionView(self, self._check_account(account), self.market_id(market))

    def label(self, account: int) -> str:
        """The label an account was opened with ("" if none)."""
        return self._labels.get(self._check_account(account), "")

    def cash(self, account: int) -> float:
        """An account's cross cash balance (quote)."""
        return float(self._cash[self._check_account(account)])

    # ------------------------------------------------------------------ state and replay
    def state_arrays(self) -> dict[str, npt.NDArray[np.generic]]:
        """Every state array, trimmed to the open accounts (for equality checks)."""
        n = self._n
        out: dict[str, npt.NDArray[np.generic]] = {
            "cash": self._cash[:n],
            "net_deposit": self._net_deposit[:n],
            "kind": self._kind[:n],
            "default_mode": self._default_mode[:n],
            "marks": self.mark_prices(),
        }
        for m, cols in enumerate(self._positions):
            for name, arr in cols.arrays(n).items():
                out[f"{m}.{name}"] = arr
        if ex_has_collateral(self):
            out.update(ledger_of(self).state_arrays(n))
        return out

    def state_hash(self) -> str:
        """SHA-256 of every state array and market spec: equal states, equal hashes."""
        h = hashlib.sha256()
        for name, arr in sorted(self.state_arrays().items()):
            h.update(name.encode())
            h.update(np.ascontiguousarray(arr).tobytes())
        for state in self.markets:
            h.update(state.spec.to_json().encode())
        h.update(repr((self.net_deposits, self.clock_ns)).encode())
        return h.hexdigest()

    def liquidation_prices(
        self, market: MarketRef, accounts: IntArray
    ) -> tuple[FloatArray, FloatArray]:
        """Liquidation and bankruptcy prices (quote per base) of ``accounts``' positions.

        For an inverse market the engine's prices on ``1 / price`` are returned as the
        venue's (``rules.inverse.liquidation_price`` with ``mm_basis="mark"`` and
        ``rules.inverse.bankruptcy_price``); ``inf`` where a short cannot be liquidated.

        Isolated: :func:`~deleverage.rules.margin.liquidation_price_isolated` and
        :func:`~deleverage.rules.margin.bankruptcy_price`; cross: the account's other cross
        positions held at their marks (:func:`~deleverage.rules.margin.liquidation_price_cross`,
        :func:`~deleverage.rules.margin.bankruptcy_price_cross`). NaN for a flat position; 0 where
        a long cannot be liquidated (or go bankrupt).
        """
        m = self.market_id(market)
        state = self.markets[m]
        cols = self.columns(m)
        size = cols.size[accounts]
        entry = cols.entry[accounts]
        liq = np.full(len(accounts), np.nan)
        bankrupt = np.full(len(accounts), np.nan)
        iso = cols.mode[accounts] == MarginMode.ISOLATED
        if iso.any():
            margin = cols.isolated_margin[accounts][iso]
            liq[iso] = mm.liquidation_price_isolated(size[iso], entry[iso], margin, state.tiers)
            bankrupt[iso] = mm.bankruptcy_price(size[iso], entry[iso], margin)
        cross = ~iso
        if cross.any():
            ids = accounts[cross]
            value = self.valuation(m)
            ms = self.cached_margin_state()
            cash = self._cash[ids].astype(np.float64)
            own_upnl = value["upnl"][ids]
            other_upnl = ms["cross_equity"][ids] - cash - own_upnl
            other_mm = ms["cross_maintenance"][ids] - value["maintenance"][ids]
            liq[cross] = mm.liquidation_price_cross(
                size[cross], entry[cross], wallet_balance=cash, tiers=state.tiers,
                other_maintenance=other_mm, other_unrealized_pnl=other_upnl,
            )  # fmt: skip
            bankrupt[cross] = mm.bankruptcy_price_cross(
                size[cross], entry[cross], wallet_balance=cash, other_unrealized_pnl=other_upnl
            )
        return state.units.venue_price(liq), state.units.venue_price(bankrupt)


_ISOLATED = int(MarginMode.ISOLATED)
_CROSS = int(MarginMode.CROSS)
_TIER_LISTS: dict[int, tuple[TierArrays, list[float], list[float], list[float]]] = {}


def _tier_lists(tiers: TierArrays) -> tuple[list[float], list[float], list[float]]:
    """A tier table's floors, maintenance rates and deductions as Python floats (remembered
    per table object: scalar arithmetic on them is the arrays' arithmetic, without NumPy's
    per-scalar overhead)."""
    hit = _TIER_LISTS.get(id(tiers))
    if hit is None or hit[0] is not tiers:
        if len(_TIER_LISTS) > 256:
            _TIER_LISTS.clear()
        hit = (tiers, tiers.floor.tolist(), tiers.mmr.tolist(), tiers.cum.tolist())
        _TIER_LISTS[id(tiers)] = hit
    return hit[1], hit[2], hit[3]


def maintenance_scalar(notional: float, tiers: TierArrays) -> float:
    """:func:`deleverage.rules.margin.maintenance_margin` of one notional (quote), bit for bit
    (the tier by bisection on the floors as ``tier_index`` finds it, the same two operations,
    the same floor for an open position), without NumPy's per-call overhead."""
    floor, mmr, cum = _tier_lists(tiers)
    t = max(bisect_right(floor, notional) - 1, 0)
    tiered = notional * mmr[t] - cum[t]
    if tiers.min_margin > 0.0 and notional > 0.0:
        return max(tiered, tiers.min_margin)
    return tiered


def _empty_scan() -> dict[str, Any]:
    """A scan that found nobody under maintenance or at the call level."""
    empty_i, empty_f = np.zeros(0, dtype=np.int64), np.zeros(0)
    return {
        "below": empty_i, "below_equity": empty_f, "below_maintenance": empty_f,
        "warn": empty_i, "warn_ratio": empty_f,
    }  # fmt: skip


def _ratio(equity: FloatArray, maintenance: FloatArray) -> FloatArray:
    out = np.empty_like(equity)
    margin_ratio_nb(equity, maintenance, out)
    return out
