"""Quiet stretches: marks at which the risk step can do nothing, applied in one bulk call.

A mark is *quiet* when no isolated position and no cross account of any market can be at the
margin-call level or under maintenance, no account is called or waiting for a liquidator, and
nothing else the step runs has state that moves with the mark (circuit breaker, dynamic
margin, open-interest scaling, proactive margin, posted collateral, the backstop vault's
positions; inverse markets are left to the step-by-step path). The risk step
at a quiet mark only records the mark: a ``MARK_PRICE`` event, the market's mark, an empty
:class:`~deleverage.engine.risk.support.StepReport` and the book's resilience clock.

:func:`quiet_bands` says whether the engine is in such a state and returns the price bands
that keep it there (docs/formulas.md §20):

- isolated positions: the highest zone price of a long and the lowest of a short at the call
  level, from the sorted zone-price index (:meth:`.LevelIndex.band`); a mark strictly inside
  the band (with the index's ``ZONE_RTOL`` slack) has no candidate;
- cross accounts: the distance bound of :mod:`deleverage.engine.cross_index`: an account whose
  ``q = (level E - MM) / K`` exceeds the largest relative move of any mark since its ``E`` and
  ``MM`` were computed cannot be in the zone. The index gives ``q`` at its build marks; the
  accounts touched since are bounded afresh at the current marks.

:func:`advance_quiet` then applies a stretch of quiet marks (all markets, step by step, in the
order the step-by-step run would) with one journal append, and leaves the engine exactly as
the step-by-step run leaves it (a twin test compares journals and result hashes).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
from numba import njit

from deleverage.engine.cross_index import CROSS_SLACK, MAX_MOVE
from deleverage.engine.quiet_cache import cached_prices, closed, open_slots
from deleverage.engine.quiet_calls import CallWindow, append_stretch_events, call_window
from deleverage.engine.quiet_cross import CrossCalls, CrossStretch, cross_setup
from deleverage.engine.report_log import QuietRun, ReportLog

if TYPE_CHECKING:
    from deleverage.engine.cross_index import CrossIndex
    from deleverage.engine.exchange import Exchange
    from deleverage.engine.level_index import LevelIndex
    from deleverage.spec import TierArrays

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
#: No account touched since the index's last refresh (:func:`_open_slots`).
_NO_FLAGS = np.zeros(0, dtype=np.bool_)
#: The called entries of bands with none (read, never written).
_NO_CALLED = (np.zeros(0, np.int64), np.zeros(0, np.bool_), np.zeros(0), np.zeros(0))


@njit(cache=True)
def first_clean_nb(acc: IntArray, flag: npt.NDArray[np.bool_], start: int) -> int:
    """First position ``i >= start`` of ``acc`` whose account is not flagged (``len`` if none)."""
    i = start
    while i < len(acc) and flag[acc[i]]:
        i += 1
    return i


@njit(cache=True)
def called_open_nb(size: FloatArray, mode: npt.NDArray[np.int8], called: IntArray) -> bool:
    """Whether every ``called`` account holds an open isolated position (size not 0, mode not
    cross: 0) in the market of the columns ``size`` and ``mode``."""
    i = 0
    while i < len(called) and size[called[i]] != 0.0 and mode[called[i]] != 0:
        i += 1
    return i == len(called)


@dataclass(frozen=True)
class QuietBands:
    """Price bands inside which every market's next marks are quiet (one entry per market).

    ``long_max`` / ``short_min``: the isolated band (quote/base; ``-inf`` / ``+inf`` when a
    side has no position). ``p0_index``, ``q_index``: the cross index's build marks and its
    smallest ``q``; ``p0_dirty``, ``q_dirty``: the current marks and the smallest ``q`` of the
    accounts touched since the build (``inf`` when none). ``called_*``: the isolated
    positions already called (one entry each, markets in order, each market's in the order of
    its called set): market, side (long), zone price at the call level and liquidation price.
    """

    long_max: FloatArray
    short_min: FloatArray
    p0_index: FloatArray
    q_index: float
    p0_dirty: FloatArray
    q_dirty: float
    called_market: IntArray
    called_long: npt.NDArray[np.bool_]
    called_zone: FloatArray
    called_liq: FloatArray
    #: The window of uncalled positions of the market whose calls the stretch makes itself
    #: (:mod:`deleverage.engine.quiet_calls`); its band above is the window's far edge.
    calls: CallWindow | None = None
    #: The cross side of the stretch when it makes the cross calls itself
    #: (:mod:`deleverage.engine.quiet_cross`; ``q_index`` and ``q_dirty`` are then ``inf``).
    cross: CrossStretch | None = None


def quiet_bands(
    ex: Exchange, window: int | tuple[int, int] = 0, cross_calls: bool = False
) -> QuietBands | None:
    """The bands that keep every market quiet, or None when the engine is not in a quiet state
    (see the module docstring for what must hold). ``window`` (not 0): the first isolated
    market gets a :class:`CallWindow` of that many uncalled positions a side (or longs and
    shorts) instead of its band (marks that only call positions stay quiet). ``cross_calls``:
    where the cross bound fails (and no isolated position is called or to be called), the
    bands carry a :class:`.CrossStretch` instead (the stretch makes the cross calls itself,
    :mod:`deleverage.engine.quiet_cross`) and no cross bound."""
    from deleverage.engine.collateral import ex_has_collateral

    if ex.check_invariants or not ex.use_level_index or ex_has_collateral(ex):
        return None
    risk = ex.risk
    if risk.liquidation_entered_ns or (not cross_calls and _cross_blocked(ex)):
        return None
    n_m = len(ex.markets)
    vault = ex.backstop_account
    long_max = np.full(n_m, -np.inf)
    short_min = np.full(n_m, np.inf)
    cross_levels: set[float] = set()
    called_parts: list[tuple[IntArray, npt.NDArray[np.bool_], FloatArray, FloatArray]] = []
    calls: CallWindow | None = None
    for m, state in enumerate(ex.markets):
        spec = state.spec
        r = risk.markets[m]
        if (
            state.mark <= 0.0
            or state.units.inverse  # the bands and marks here are in the venue's units
            or r.proactive is not None  # proactive margin moves with every mark
            or spec.circuit_breaker is not None
            or r.dynamic is not None
            or spec.open_interest_scaling is not None
            or state.tiers.min_margin != 0.0
            or r.pending
            or ex._positions[m].size[vault] != 0.0
        ):
            return None
        level = spec.liquidation.margin_call_ratio
        iso, cross = risk._modes_present(m)
        if iso:
            index = ex._level_index.get((m, min(float(level), 1.0)))
            if index is None or not index.valid:
                return None
            cols = ex._positions[m]
            called = r.called_isolated
            if len(called) and not state.tiers.continuous:
                return None  # a step schedule's zone is not one half-line: no "certainly in"
            slot = None
            if len(called):
                slot = _open_slots(ex, m, index, state.tiers, called)
                if slot is None and not called_open_nb(cols.size, cols.mode, called):
                    return None  # liquidated or moved to cross since called: before any band
                if closed(slot):
                    return None
            if window and calls is None and state.tiers.continuous:
                calls = call_window(ex, m, index, called, window)
                if calls is None:
                    return None
                long_max[m], short_min[m] = calls.long_max, calls.short_min
            else:
                long_max[m], short_min[m] = index.band(
                    cols.size, cols.entry, cols.isolated_margin, state.tiers, cols.mode,
                    ex._kind, exclude=np.sort(called),
                )  # fmt: skip
            if len(called):
                part = _called_prices(ex, m, called, index, slot)
                if part is None:
                    return None
                called_parts.append(part)
            if not long_max[m] < short_min[m]:
                return None
        elif len(r.called_isolated):
            return None
        if cross:
            if state.tiers.whole_position:
                return None  # the touched and called accounts' bounds below have no step cap
            cross_levels.add(min(float(level), 1.0))
    marks = np.array([st.mark for st in ex.markets], dtype=np.float64)
    if len(called_parts) == 1:  # one market's: its arrays as they are (read, never written)
        c_market, c_long, c_zone, c_liq = called_parts[0]
    elif called_parts:
        c_market, c_long, c_zone, c_liq = (
            np.concatenate([p[i] for p in called_parts]) for i in range(4)
        )
    else:
        c_market, c_long, c_zone, c_liq = _NO_CALLED
    if not cross_levels:
        return QuietBands(
            long_max, short_min, marks, math.inf, marks, math.inf, c_market, c_long, c_zone, c_liq,
            calls,
        )  # fmt: skip
    if len(cross_levels) > 1:
        return None
    (level,) = cross_levels
    cindex = ex._cross_index.get(level)
    if cindex is None or not cindex.valid or len(cindex.p0) != n_m or np.any(cindex.p0 <= 0.0):
        return None
    cindex.merge_touched()  # what CrossIndex.split does first
    bound = _cross_bound(ex, cindex, level, marks)
    if bound is not None:
        return QuietBands(
            long_max, short_min, cindex.p0.copy(), bound[0], marks, bound[1], c_market, c_long,
            c_zone, c_liq, calls,
        )  # fmt: skip
    if not cross_calls or len(c_market) or calls is not None:
        return None
    setup = cross_setup(ex, cindex, marks)
    if setup is None:
        return None
    return QuietBands(
        long_max, short_min, marks, math.inf, marks, math.inf, c_market, c_long, c_zone, c_liq,
        None, setup,
    )  # fmt: skip


def _cross_bound(
    ex: Exchange, cindex: CrossIndex, level: float, marks: FloatArray
) -> tuple[float, float] | None:
    """``q_index`` and ``q_dirty`` of :class:`QuietBands` (both positive), or None when the
    cross accounts are not certainly quiet at ``marks``: an uncalled account within reach of
    its stale bound, an account called in one market and not another it holds, or a touched
    or called account whose bound is used up."""
    n = ex.n_accounts
    every_called = np.concatenate([r.called_cross for r in ex.risk.markets])
    skip, q_index = _first_uncalled_q(ex, cindex, every_called)
    # The cheapest test first (after a crash an uncalled account in the zone fails it at most
    # marks); every test must pass, so the order does not change the answer.
    if not q_index > 0.0:
        return None
    called = np.unique(every_called)
    if len(called) and not _called_everywhere(ex, called):
        return None
    dirty = cindex._dirty[cindex._dirty < n]
    q_dirty = min(
        _dirty_bound(ex, dirty[~skip[dirty]], level, marks), _called_bound(ex, called, level, marks)
    )
    if not q_dirty > 0.0:
        return None
    return q_index, q_dirty


def _first_uncalled_q(
    ex: Exchange, cindex: CrossIndex, every_called: IntArray
) -> tuple[npt.NDArray[np.bool_], float]:
    """Flags of the called cross accounts (any market) and the smallest ``q`` of the cross
    index among the accounts not called (``inf`` when none)."""
    n = ex.n_accounts
    skip = np.zeros(max(n, 1), dtype=np.bool_)
    skip[every_called[every_called < n]] = True  # bounded below as called accounts
    first = first_clean_nb(cindex.acc, skip, 0)
    return skip, float(cindex.q[first]) if first < len(cindex.q) else math.inf


def _cross_blocked(ex: Exchange) -> bool:
    """Whether :func:`quiet_bands`' cross test will fail on an uncalled account of the cross
    index within reach (``q <= 0``), checked before the per-market work (after a crash it
    fails at most marks). Only when the test would be reached with this index: one cross
    level, its index valid over every market at priced marks; the answer is then the same."""
    risk = ex.risk
    levels = {
        min(float(state.spec.liquidation.margin_call_ratio), 1.0)
        for m, state in enumerate(ex.markets)
        if risk._modes_present(m)[1]
    }
    if len(levels) != 1:
        return False
    cindex = ex._cross_index.get(levels.pop())
    if (
        cindex is None
        or not cindex.valid
        or len(cindex.p0) != len(ex.markets)
        or np.any(cindex.p0 <= 0.0)
    ):
        return False
    every_called = np.concatenate([r.called_cross for r in risk.markets])
    return not _first_uncalled_q(ex, cindex, every_called)[1] > 0.0


def _open_slots(
    ex: Exchange, m: int, index: LevelIndex, tiers: TierArrays, called: IntArray
) -> IntArray | None:
    """:func:`.quiet_cache.open_slots` of market ``index``'s called accounts: the positions
    that can keep their prices from the last try, read no column (they are open); the
    accounts touched since the index's last refresh are flagged for it in the risk step's
    scratch flags (reset before returning). ``m``: the index's market."""
    cols = ex._positions[m]
    if not index._touched:
        return open_slots(index, tiers, called, cols.size, cols.mode, _NO_FLAGS)
    touched = index._touched
    flags = ex.risk._flags(ex.n_accounts)
    for acc in touched:
        flags[acc] = True
    try:
        return open_slots(index, tiers, called, cols.size, cols.mode, flags)
    finally:
        for acc in touched:
            flags[acc] = False


def _called_prices(
    ex: Exchange, m: int, called: IntArray, index: LevelIndex, slot: IntArray | None = None
) -> tuple[IntArray, npt.NDArray[np.bool_], FloatArray, FloatArray] | None:
    """Market, side, zone price at the ``index``'s level and liquidation price of the called
    isolated positions of ``m`` (in the called set's order; unchanged positions keep their
    prices from the last try: :mod:`deleverage.engine.quiet_cache`; ``slot``: those
    :func:`_open_slots` found), each an open isolated position (:func:`called_open_nb`);
    None when one has an unbounded zone."""
    cols = ex._positions[m]
    tiers = ex.markets[m].tiers
    if index._touched:
        index._refresh_dirty(cols.size, cols.entry, cols.isolated_margin, tiers)
    got = cached_prices(index, tiers, called, cols.size, cols.entry, cols.isolated_margin, slot)
    if got is None:
        return None
    long, zone, liq = got
    return np.full(len(called), m, dtype=np.int64), long, zone, liq


@njit(cache=True)
def called_step_nb(
    marks: FloatArray,
    market: IntArray,
    long: npt.NDArray[np.bool_],
    zone: FloatArray,
    liq: FloatArray,
    dropped: npt.NDArray[np.bool_],
    out: npt.NDArray[np.bool_],
    zone_rtol: float,
) -> bool:
    """One step of the called isolated positions at ``marks``; False when it is not quiet.

    A called position stays called while it is in the zone (a long at or below its zone
    price) and leaves the called set once out of it (the step drops it silently). The step is
    quiet when every position still called is certainly in the zone and above maintenance, or
    certainly out of the zone (it is dropped: ``out``), and every dropped one is certainly out
    (back in, it would be called again). Certainly: beyond the index's relative slack.
    """
    for i in range(len(market)):
        p = marks[market[i]]
        lo = p * (1.0 - zone_rtol)
        hi = p * (1.0 + zone_rtol)
        if long[i]:
            inside = hi < zone[i]
            outside = lo > zone[i]
            safe = lo > liq[i]
        else:
            inside = lo > zone[i]
            outside = hi < zone[i]
            safe = hi < liq[i]
        if dropped[i]:
            if not outside:
                return False
            out[i] = True
        elif outside:
            out[i] = True
        elif inside and safe:
            out[i] = False
        else:
            return False
    return True


def _cross_terms(
    ex: Exchange, acc: IntArray, marks: FloatArray, level: float
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    """Cross equity ``E``, maintenance ``MM``, ``K`` at ``level`` and ``K`` at 1 (§14) of the
    accounts ``acc`` at ``marks`` (:meth:`.MarginScans.cross_terms`)."""
    return ex.cross_terms(acc, marks, level)


def _dirty_bound(ex: Exchange, acc: IntArray, level: float, marks: FloatArray) -> float:
    """Smallest ``q = (level E - MM) / K`` of the cross traders ``acc`` at the current marks,
    shrunk by :data:`CROSS_SLACK` (``inf`` when none has a cross position; ``-inf`` when one is
    in the zone already)."""
    if len(acc) == 0:
        return math.inf
    equity, maint, k, _ = _cross_terms(ex, acc, marks, level)
    has = (ex._kind[acc] == 0) & (k > 0.0)
    if not has.any():
        return math.inf
    buffer = level * equity[has] - maint[has]
    slack = CROSS_SLACK * (level * np.abs(equity[has]) + maint[has])
    q = (buffer - slack) / k[has]
    return float(q.min())


def _called_everywhere(ex: Exchange, called: IntArray) -> bool:
    """Whether each called cross account is called in every market it holds a cross position
    in (else a step of another market would call it: not quiet)."""
    if len(called) == 0:
        return True
    flag = np.zeros(int(called.max()) + 1, dtype=np.bool_)
    for m, cols in enumerate(ex._positions):
        holds = (cols.size[called] != 0.0) & (cols.mode[called] == 0)
        mine = ex.risk.markets[m].called_cross
        mine = mine[mine < len(flag)]
        flag[mine] = True
        ok = bool(np.all(flag[called[holds]]))
        flag[mine] = False
        if not ok:
            return False
    return True


def _called_bound(ex: Exchange, called: IntArray, level: float, marks: FloatArray) -> float:
    """Smallest relative move of the marks that can take a called cross account out of the
    zone (``MM - level E`` used up, at ``K``) or under maintenance (``E - MM``, at ``K`` of
    level 1), shrunk by :data:`CROSS_SLACK` (``inf`` when none; ``-inf`` when one is out of
    the zone or under maintenance already): within it the account stays called, unliquidated."""
    if len(called) == 0:
        return math.inf
    equity, maint, k_level, k_one = _cross_terms(ex, called, marks, level)
    if np.any(k_level <= 0.0) or np.any(ex._kind[called] != 0):
        return -math.inf
    slack = CROSS_SLACK * (level * np.abs(equity) + maint)
    inside = (maint - level * equity - slack) / k_level
    above = (equity - maint - slack) / k_one
    return float(min(inside.min(), above.min()))


@njit(cache=True)
def quiet_mark_nb(
    marks: FloatArray,
    long_max: FloatArray,
    short_min: FloatArray,
    p0_index: FloatArray,
    q_index: float,
    p0_dirty: FloatArray,
    q_dirty: float,
    zone_rtol: float,
) -> bool:
    """Whether the marks of every market (one each) are quiet given the bands (see
    :class:`QuietBands`): the isolated band with the index's slack, and the cross bounds with
    the cross index's own test (``move (1 + 1e-9) + 1e-12 < q``, moves below ``MAX_MOVE``)."""
    move_i = 0.0
    move_d = 0.0
    for m in range(len(marks)):
        p = marks[m]
        if not (math.isfinite(p) and p > 0.0):
            return False
        if not (p * (1.0 - zone_rtol) > long_max[m] and p * (1.0 + zone_rtol) < short_min[m]):
            return False
        move_i = max(move_i, abs(p / p0_index[m] - 1.0))
        move_d = max(move_d, abs(p / p0_dirty[m] - 1.0))
    if q_index != math.inf and (
        move_i >= MAX_MOVE or not (move_i * (1.0 + 1e-9) + 1e-12 < q_index)
    ):
        return False
    return not (
        q_dirty != math.inf
        and (move_d >= MAX_MOVE or not (move_d * (1.0 + 1e-9) + 1e-12 < q_dirty))
    )


def advance_quiet(
    ex: Exchange,
    marks: FloatArray,
    ts_ns: IntArray,
    book_mids: FloatArray | None = None,
    dropped: npt.NDArray[np.bool_] | None = None,
    calls: tuple[int, IntArray, IntArray, FloatArray] | None = None,
    cross: CrossCalls | None = None,
) -> None:
    """Apply ``L`` quiet steps of every market: ``marks[j, m]`` at ``ts_ns[j]`` (markets in
    order within a step, as the step-by-step run sets them), ``book_mids[j, m]`` the book mid
    set before each mark (NaN: not set). The caller has checked the marks with
    :func:`quiet_bands` and :func:`quiet_mark_nb`; the effects are those of ``L x markets``
    calls of :meth:`.Exchange.set_mark` at quiet marks. ``dropped`` (one per entry of the
    bands' ``called_*``, then one per call made in the stretch): the called positions that
    left the zone during the stretch. ``calls``: the market, steps (``j``, ascending),
    accounts (ascending within a step) and ratios of the margin calls the stretch made
    (:mod:`deleverage.engine.quiet_calls`). ``cross``: the cross calls the stretch made and
    the called cross sets after it (:mod:`deleverage.engine.quiet_cross`; not with ``calls``).
    """

    steps, n_m = marks.shape
    if steps == 0:
        return
    ts = np.asarray(ts_ns, dtype=np.int64)
    count = steps * n_m
    if calls is not None and len(calls[1]):
        call_m, call_step, call_acc, call_ratio = calls
        append_stretch_events(ex.journal, marks, ts, call_m, call_step, call_acc, call_ratio)
        per_step = np.bincount(call_step, minlength=steps)
    elif cross is not None and len(cross.step):
        append_stretch_events(
            ex.journal, marks, ts, cross.market, cross.step, cross.acc, cross.ratio
        )
        calls = None
    else:
        calls = None
        append_stretch_events(ex.journal, marks, ts)
    ex._version += count
    last_ts = int(ts[-1])
    ex.clock_ns = max(ex.clock_ns, last_ts)
    risk = ex.risk
    risk._queues.clear()
    pnl = risk.backstop_pnl()
    if calls is not None:
        stepped = np.flatnonzero(per_step)
        at = stepped * n_m + calls[0]
        made = per_step[stepped]
    elif cross is not None:
        per_report = np.bincount(cross.step * n_m + cross.market, minlength=count)
        at = np.flatnonzero(per_report)
        made = per_report[at]
        for m in range(n_m):
            risk.markets[m].called_cross = cross.called[m]
    else:
        at = made = np.zeros(0, dtype=np.int64)
    run = QuietRun(ts.copy(), n_m, pnl, at.astype(np.int64), made.astype(np.int64))
    log = risk.reports
    if isinstance(log, ReportLog):
        log.add_run(run)
        last = run.report(len(run) - 1)  # log.last(): the run is the log's last chunk
    else:  # a plain list (set by a caller): the reports themselves
        log.extend(run.reports())
        last = log[-1]
    for m in range(n_m):
        ex.markets[m].mark = float(marks[-1, m])
        r = risk.markets[m]
        if book_mids is not None and not math.isnan(book_mids[-1, m]):
            r.book_mid = float(book_mids[-1, m])
        if r.liquidity is not None:
            r.liquidity.recover(last_ts)
        r.capital_ts, r.capital_used = last_ts, 0.0
    if dropped is None and calls is not None:  # nothing dropped: the calls join the sets
        n_old = sum(len(r.called_isolated) for r in risk.markets)
        dropped = np.zeros(n_old + len(calls[2]), dtype=np.bool_)
    if dropped is not None and (dropped.any() or calls is not None):
        start = 0
        for m in range(n_m):
            r = risk.markets[m]
            count_m = len(r.called_isolated)
            r.called_isolated = r.called_isolated[~dropped[start : start + count_m]]
            start += count_m
        if calls is not None:
            r = risk.markets[calls[0]]
            new = calls[2][~dropped[start : start + len(calls[2])]]
            r.called_isolated = np.concatenate([r.called_isolated, new.astype(np.int64)])
    ex.last_step = last
