"""Quiet stretches of a run: one compiled call finds the next step at which anything happens.

From step ``k`` the kernel :func:`quiet_path_nb` walks the path ahead (exogenous prices, index
and oracle) and advances each market's venue state exactly as the step-by-step run would: the
dislocation decays (``d <- d decay``, the book's resilience and the arbitrage speed), the
arbitrageurs' capital grows by its inflow while they have a dislocation to look at, and the
mark follows the venue's rule (``book``, ``oracle``, or ``binance`` with the basis average
of the samples so far). It stops before the first step at which something happens:

- a mark leaves the quiet bands of the engine (:func:`deleverage.engine.quiet.quiet_bands`:
  an isolated zone price or a cross account's distance bound; the rebalancers' trigger prices);
- the arbitrageurs would trade (a dislocation they saw beyond their cost, capital left);
- funding is due, or a Binance basis sample is taken.

The runner then applies the stretch in bulk (:func:`deleverage.engine.quiet.advance_quiet`,
its rows of the per-step frame in array writes) and runs the step that stopped it normally.
Runs whose markets have hedgers, posted collateral, changing depth, a Hyperliquid mark, or a
book with consumed depth left take no stretch at that point (the step-by-step path).
:func:`quiet_path` is the plain-Python reference of the kernel.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
from numba import njit

from deleverage.engine.level_index import ZONE_RTOL
from deleverage.engine.quiet import QuietBands, advance_quiet, quiet_bands, quiet_mark_nb
from deleverage.engine.quiet_cache import keep_stretch_prices
from deleverage.engine.quiet_calls import (
    WINDOW,
    WINDOW_MAX,
    WINDOW_MIN,
    entrants_step_nb,
    recalls_bounds_step_nb,
)
from deleverage.engine.quiet_cross import CROSS_STOPS, CrossCalls, CrossStretch, cross_stretch
from deleverage.engine.quiet_cross import STOP_END as CROSS_END
from deleverage.engine.quiet_probe import liquidates_first
from deleverage.sim.quiet_near import (
    NEAR_REL,
    WIDE,
    called_bounds_nb,
    called_certain_nb,
    near_among_nb,
    near_split_nb,
)

if TYPE_CHECKING:
    from deleverage.engine.exchange import Exchange
    from deleverage.sim.runner import Simulation

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

RULE_BOOK, RULE_ORACLE, RULE_BINANCE = 0, 1, 2
_RULES = {"book": RULE_BOOK, "oracle": RULE_ORACLE, "binance": RULE_BINANCE}
_NS = 1_000_000_000
#: Why a stretch ended (``stop[0]`` of :func:`quiet_path_nb`).
STOP_END, STOP_FUNDING, STOP_ARBITRAGE, STOP_PRICE, STOP_BAND, STOP_CALLED, STOP_ENTRANT = range(7)
STOP_REASONS = ("end", "funding or basis sample", "arbitrage", "price", "band", "called", "entrant")
#: Steps a stretch making cross calls looks ahead: at first (and after a cut), at most.
HORIZON_MIN, HORIZON_MAX = 256, 65536


@njit(cache=True)
def venue_mark_nb(
    rule: int,
    x: float,
    idx: float,
    orc: float,
    dm: float,
    t: float,
    next_funding: float,
    interval: float,
    rate: float,
    basis_avg: float,
) -> tuple[float, bool]:
    """The mark of one market at one step of a stretch (:func:`quiet_path_nb`): exogenous
    price ``x``, index ``idx``, oracle ``orc``, dislocation ``dm`` (after the step's decay),
    time ``t`` (s) and the funding and basis state; False when the Binance rule has no
    price (the stretch stops there)."""
    book = max(x * (1.0 + dm), 1e-12)
    if rule == RULE_BOOK:
        return book, True
    if rule == RULE_ORACLE:
        return orc, True
    if not (math.isfinite(idx) and idx > 0.0 and math.isfinite(book)):
        return math.nan, False
    left = (next_funding - t) / interval
    tau = min(max(left, 0.0), 1.0)
    p1 = idx * (1.0 + rate * tau)
    p2 = max(idx + basis_avg, 1e-12)
    return max(min(p1, p2), min(max(p1, p2), book)), True


@njit(cache=True)
def _sort_staged_nb(
    got: int,
    src: IntArray,
    acc: IntArray,
    ratio: FloatArray,
    tmp_i: IntArray,
    tmp_f: FloatArray,
) -> None:
    """Order the first ``got`` staged calls by account (a stable sort: the order of
    ``np.argsort(kind="mergesort")``), permuted through the scratch ``tmp_*`` (no new arrays
    but the order; a run already in order is left as it is)."""
    for q in range(1, got):
        if acc[q] < acc[q - 1]:
            break
    else:
        return
    order = np.argsort(acc[:got], kind="mergesort")
    for q in range(got):
        tmp_i[q] = src[order[q]]
    src[:got] = tmp_i[:got]
    for q in range(got):
        tmp_i[q] = acc[order[q]]
    acc[:got] = tmp_i[:got]
    for q in range(got):
        tmp_f[q] = ratio[order[q]]
    ratio[:got] = tmp_f[:got]


@njit(cache=True)
def quiet_path_nb(
    k0: int,
    k_end: int,
    dt: float,
    x: FloatArray,
    index: FloatArray,
    oracle: FloatArray,
    rule: IntArray,
    d: FloatArray,
    decay: FloatArray,
    capital: FloatArray,
    inflow: FloatArray,
    inc: FloatArray,
    cost: FloatArray,
    lag: IntArray,
    hist: FloatArray,
    next_funding: FloatArray,
    interval: FloatArray,
    rate: FloatArray,
    basis_avg: FloatArray,
    next_sample: FloatArray,
    long_max: FloatArray,
    short_min: FloatArray,
    p0_index: FloatArray,
    q_index: float,
    p0_dirty: FloatArray,
    q_dirty: float,
    called_market: IntArray,
    called_long: npt.NDArray[np.bool_],
    called_zone: FloatArray,
    called_liq: FloatArray,
    dropped: npt.NDArray[np.bool_],
    out_mark: FloatArray,
    out_d: FloatArray,
    out_cap: FloatArray,
    call_m: int,
    w_ptr: IntArray,
    w_n_long: int,
    w_acc: IntArray,
    w_zone: FloatArray,
    w_liq: FloatArray,
    w_long: npt.NDArray[np.bool_],
    c_size: FloatArray,
    c_entry: FloatArray,
    c_margin: FloatArray,
    c_floor: FloatArray,
    c_mmr: FloatArray,
    c_cum: FloatArray,
    c_min_margin: float,
    call_level: float,
    n_called: IntArray,
    called_acc: IntArray,
    ev_step: IntArray,
    ev_acc: IntArray,
    ev_ratio: FloatArray,
    n_ev: IntArray,
    stop: IntArray,
    near_rel: float,
) -> int:
    """Advance steps ``k0 .. k_end - 1`` while they are quiet; return how many were.

    ``x``, ``index``, ``oracle``: ``[step, market]`` paths; per market: the mark ``rule``,
    dislocation ``d``, ``decay`` per step, the arbitrageurs' ``capital``, ``inflow`` per second
    and ``inc`` per step, ``cost``, ``lag`` (steps) and ``hist`` (``[market, lag + steps]``:
    the dislocations they saw, oldest first), the next funding time (s), its ``interval``
    (s), the last funding ``rate``, the Binance ``basis_avg`` and the next sample time (s);
    then the engine's bands and called positions (:class:`QuietBands`). ``d``, ``capital``,
    ``hist`` and ``dropped`` (called positions that left the zone) are updated in place for
    the quiet steps; ``out_*[j, m]`` hold step ``k0 + j``'s mark, dislocation and capital.

    Margin calls of market ``call_m`` (-1: none) are made here (:mod:`.engine.quiet_calls`):
    the window of uncalled positions (``w_*``, next long and short at ``w_ptr``), the
    market's columns and tiers (``c_*``) and call level; the called arrays have room for the
    window after their first ``n_called[0]`` entries, the calls made go to ``ev_*`` (step
    ``j``, account, ratio; ``n_ev[0]`` of them) and join the called entries. ``stop[0]``
    says why the stretch ended (:data:`STOP_REASONS`; 0: the path's end). A step that is not
    certain for every called entry tests only those near the marks (:mod:`.sim.quiet_near`,
    windows of relative half-width ``near_rel``).
    """
    stop[0] = 0
    n_m = len(d)
    marks = np.empty(n_m)
    new_dropped = np.empty(len(dropped), dtype=np.bool_)
    bounds = np.empty((n_m, 6))  # the near entries' bounds (called_bounds_nb), or looser
    new_bounds = np.empty((n_m, 6))  # a step's bounds from its new states (recalls_bounds_step_nb)
    near = np.empty(len(called_market), dtype=np.int64)  # the called entries near the marks
    changed = np.empty(len(called_market), dtype=np.int64)  # near entries a step changes
    n_changed = np.zeros(1, dtype=np.int64)
    n_near = 0
    split_at = 0  # the near count at the last split
    win_lo = np.full(n_m, np.inf)  # each market's window of marks (none yet)
    win_hi = np.full(n_m, -np.inf)
    wide_rel = near_rel * WIDE  # the wide windows the near ones are split inside
    mid = np.empty(len(called_market), dtype=np.int64)  # the entries near the wide windows
    n_mid = 0
    mid_at = 0  # the mid count at the last wide split
    wide_lo = np.full(n_m, np.inf)
    wide_hi = np.full(n_m, -np.inf)
    w_called = np.zeros(len(w_acc), dtype=np.bool_)
    room = len(called_market)
    stage_src = np.empty(room, dtype=np.int64)
    stage_acc = np.empty(room, dtype=np.int64)
    stage_ratio = np.empty(room)
    tmp_i = np.empty(room, dtype=np.int64)  # scratch of the staged calls' sort
    tmp_f = np.empty(room)
    new_d = np.empty(n_m)
    new_cap = np.empty(n_m)
    for k in range(k0, k_end):
        j = k - k0
        t = float(k) * dt
        for m in range(n_m):
            if t + 1e-9 >= next_funding[m] or t + 1e-9 >= next_sample[m]:
                stop[0] = STOP_FUNDING
                return j
        for m in range(n_m):
            dm = d[m] * decay[m]
            cap = capital[m]
            if (cap > 0.0 or inflow[m] > 0.0) and dm != 0.0:
                cap = cap + inc[m]
                seen = hist[m, j] if lag[m] > 0 else dm
                if dm * seen > 0.0 and min(abs(dm), abs(seen)) - cost[m] > 0.0 and cap > 0.0:
                    stop[0] = STOP_ARBITRAGE
                    return j  # the arbitrageurs trade at this step
            mark, priced = venue_mark_nb(
                rule[m], x[k, m], index[k, m], oracle[k, m], dm, t, next_funding[m],
                interval[m], rate[m], basis_avg[m],
            )  # fmt: skip
            if not priced:
                stop[0] = STOP_PRICE
                return j
            marks[m] = mark
            new_d[m] = dm
            new_cap[m] = cap
        nc = n_called[0]
        if not quiet_mark_nb(
            marks, long_max, short_min, p0_index, q_index, p0_dirty, q_dirty, ZONE_RTOL
        ):
            stop[0] = STOP_BAND
            return j
        got = 0
        moved = False
        for m in range(n_m):
            moved = moved or not (win_lo[m] <= marks[m] <= win_hi[m])
        grown = n_near > 2 * split_at + 64
        if moved:  # split the called entries afresh around the marks now
            escaped = False
            for m in range(n_m):
                win_lo[m] = marks[m] * (1.0 - near_rel)
                win_hi[m] = marks[m] * (1.0 + near_rel)
                escaped = escaped or not (wide_lo[m] <= win_lo[m] and win_hi[m] <= wide_hi[m])
            if escaped:  # the wide windows first, over every entry (quiet_near)
                for m in range(n_m):
                    wide_lo[m] = marks[m] * (1.0 - wide_rel)
                    wide_hi[m] = marks[m] * (1.0 + wide_rel)
                n_mid = near_split_nb(
                    nc, called_market, called_long, called_zone, called_liq, dropped, wide_lo,
                    wide_hi, ZONE_RTOL, mid,
                )  # fmt: skip
                mid_at = n_mid
            elif n_mid > 2 * mid_at + 64:  # grown by calls: the same wide windows over its own
                n_mid = near_among_nb(
                    mid, n_mid, called_market, called_long, called_zone, called_liq, dropped,
                    wide_lo, wide_hi, ZONE_RTOL, mid,
                )  # fmt: skip
                mid_at = n_mid
            among, n_among = mid, n_mid
        else:  # grown by calls only: the same windows over the near entries (quiet_near)
            among, n_among = near, n_near
        if moved or grown:
            n_near = near_among_nb(
                among, n_among, called_market, called_long, called_zone, called_liq, dropped,
                win_lo, win_hi, ZONE_RTOL, near,
            )  # fmt: skip
            split_at = n_near
            called_bounds_nb(
                near, 0, n_near, called_market, called_long, called_zone, called_liq, dropped,
                bounds,
            )  # fmt: skip
        certain = called_certain_nb(marks, bounds, ZONE_RTOL)
        if certain and call_m >= 0:  # every called entry stays as it is: no recall to make
            got = entrants_step_nb(
                marks[call_m], w_ptr, w_n_long, w_acc, w_zone, w_called, c_size, c_entry,
                c_margin, c_floor, c_mmr, c_cum, c_min_margin, call_level, ZONE_RTOL, 0,
                stage_src[: room - nc], stage_acc, stage_ratio,
            )  # fmt: skip
            if got < 0:
                stop[0] = STOP_ENTRANT
                return j
        elif not certain:  # the near entries one by one (call_m -1: called_step_nb's test)
            got = recalls_bounds_step_nb(
                marks, near, n_near, called_market, called_long, called_zone, called_liq,
                called_acc, dropped, new_dropped, call_m, c_size, c_entry, c_margin, c_floor,
                c_mmr, c_cum, c_min_margin, call_level, ZONE_RTOL, stage_src, stage_acc,
                stage_ratio, new_bounds, changed, n_changed,
            )  # fmt: skip
            if got < 0 or got > room - nc:
                stop[0] = STOP_CALLED
                return j
        if not certain and call_m >= 0:
            got = entrants_step_nb(
                marks[call_m], w_ptr, w_n_long, w_acc, w_zone, w_called, c_size, c_entry,
                c_margin, c_floor, c_mmr, c_cum, c_min_margin, call_level, ZONE_RTOL, got,
                stage_src[: room - nc], stage_acc, stage_ratio,
            )  # fmt: skip
            if got < 0:
                stop[0] = STOP_ENTRANT
                return j
        if not certain:  # the near entries' new states (bounded in the recalls' pass)
            for t in range(n_changed[0]):
                dropped[changed[t]] = new_dropped[changed[t]]
            bounds, new_bounds = new_bounds, bounds
        if got > 1:  # the risk step writes a step's calls by account
            _sort_staged_nb(got, stage_src, stage_acc, stage_ratio, tmp_i, tmp_f)
        e0 = n_ev[0]
        for q in range(got):
            src = stage_src[q]
            at = nc + q
            if src >= 0:  # called again: a new entry, the old one is gone
                called_long[at] = called_long[src]
                called_zone[at] = called_zone[src]
                called_liq[at] = called_liq[src]
                called_market[src] = -1
            else:
                i = -1 - src
                called_long[at] = w_long[i]
                called_zone[at] = w_zone[i]
                called_liq[at] = w_liq[i]
                w_called[i] = True
            called_market[at] = call_m
            called_acc[at] = stage_acc[q]
            dropped[at] = False
            near[n_near + q] = at  # a new entry is near until the next split
            mid[n_mid + q] = at
            ev_step[e0 + q] = j
            ev_acc[e0 + q] = stage_acc[q]
            ev_ratio[e0 + q] = stage_ratio[q]
        n_ev[0] = e0 + got
        if got:  # the new entries widen the bounds
            called_bounds_nb(
                near, n_near, n_near + got, called_market, called_long, called_zone, called_liq,
                dropped, bounds,
            )  # fmt: skip
            n_near += got
            n_mid += got
        n_called[0] = nc + got
        if call_m >= 0:  # the first long and short not called
            while w_ptr[0] < w_n_long and w_called[w_ptr[0]]:
                w_ptr[0] += 1
            while w_ptr[1] < len(w_acc) and w_called[w_ptr[1]]:
                w_ptr[1] += 1
        for m in range(n_m):
            d[m] = new_d[m]
            capital[m] = new_cap[m]
            if lag[m] > 0:
                hist[m, lag[m] + j] = new_d[m]
            out_mark[j, m] = marks[m]
            out_d[j, m] = new_d[m]
            out_cap[j, m] = new_cap[m]
    return k_end - k0


def quiet_path(*args: Any) -> int:
    """:func:`quiet_path_nb` run as plain Python (the reference of the differential test)."""
    return int(quiet_path_nb.py_func(*args))


class QuietStretches:
    """The runner's side of quiet stretches for one :class:`Simulation` (module docstring)."""

    def __init__(self, sim: Simulation) -> None:
        self.sim = sim
        self.skipped = 0  # steps applied in bulk
        self.stretches = 0
        n_m = len(sim.scenario.markets)
        self.rule = np.array([_RULES.get(str(v.rule), -1) for v in sim.venue], dtype=np.int64)
        self.enabled = (
            not sim.ex.check_invariants
            and bool(np.all(self.rule >= 0))
            and not sim.collateral.coins
            and all(legs is None for legs in sim.agents.spot_legs)
            and not any(depth.changes for depth in sim.depth)
        )
        self.x = np.ascontiguousarray(sim.paths, dtype=np.float64)
        self.index = np.ascontiguousarray(
            np.column_stack([o.index_price for o in sim.oracles]), dtype=np.float64
        ).reshape(len(sim.paths), n_m)
        self.oracle = np.ascontiguousarray(
            np.column_stack([o.oracle_price for o in sim.oracles]), dtype=np.float64
        ).reshape(len(sim.paths), n_m)
        self.interval = np.array([interval for interval, _ in sim._funding], dtype=np.float64)
        #: Uncalled positions a stretch may call itself, longs and shorts.
        self.window = (WINDOW, WINDOW)
        #: Half-width of the windows of marks the called entries are split for (quiet_near).
        self.near_rel = NEAR_REL
        self.calls = 0  # margin calls made inside stretches
        self.stop = np.zeros(1, dtype=np.int64)
        self.stops = [0] * len(STOP_REASONS)  # stretches (tried) ended per reason
        #: Steps a stretch that makes cross calls looks ahead at most (its path is cut there,
        #: the next stretch goes on); cross calls made, stretches ended per cross reason.
        self.horizon = HORIZON_MIN
        self.cross_calls = 0
        self.cross_stops = [0] * len(CROSS_STOPS)
        #: Whether a try first asks if its first step liquidates (quiet_probe); tries not
        #: made for that.
        self.probe = True
        self.probed = 0

    def _bands(self) -> QuietBands | None:
        bands = quiet_bands(self.sim.ex, window=self.window, cross_calls=True)
        if bands is None:
            return None
        for m, reb in enumerate(self.sim.agents.rebalancers):
            if reb is None or len(reb.accounts) == 0:
                continue
            lo, hi = _trigger_band(reb)
            bands.long_max[m] = max(bands.long_max[m], lo)
            bands.short_min[m] = min(bands.short_min[m], hi)
            if not bands.long_max[m] < bands.short_min[m]:
                return None
        return bands

    def advance(
        self,
        k: int,
        *,
        decay: FloatArray,
        next_funding: list[float],
        cols: dict[str, FloatArray],
        totals: tuple[FloatArray, FloatArray, FloatArray, FloatArray],
    ) -> int:
        """Apply the quiet steps from ``k`` on in bulk; return how many (0: run step ``k``)."""
        sim = self.sim
        n = sim.n_steps + 1
        if not self.enabled or k == 0 or k >= n:
            return 0
        for book in sim.books:
            if book is not None and getattr(book, "consumed_depth", None) != 0.0:
                return 0
        n_m = len(sim.venue)
        d = np.array([v.dislocation for v in sim.venue], dtype=np.float64)
        basis = np.zeros(n_m)
        sample = np.full(n_m, np.inf)
        for m, v in enumerate(sim.venue):
            if self.rule[m] == RULE_BINANCE:
                basis[m] = math.fsum(v._basis) / len(v._basis) if v._basis else 0.0
                sample[m] = v._next_sample_s
        if self._liquidates_first(k, d, decay, next_funding, basis):
            self.probed += 1
            return 0
        bands = self._bands()
        if bands is None:
            return 0
        arbs = [v.arbitrageurs for v in sim.venue]
        lag = np.array([a._seen.maxlen or 0 for a in arbs], dtype=np.int64)
        k_end = n if bands.cross is None else min(n, k + self.horizon)
        steps = k_end - k
        lag_max = int(lag.max(initial=0))
        # Entries past the lags are written by the kernel before they are read; no lag: none
        # read (np.zeros of a day's steps cost ~25 us a try).
        hist = np.empty((n_m, lag_max + steps if lag_max else 0))
        for m, a in enumerate(arbs):
            if lag[m]:
                hist[m, : lag[m]] = list(a._seen)
        capital = np.array([a.capital for a in arbs], dtype=np.float64)
        inflow = np.array([a.spec.inflow_per_s for a in arbs], dtype=np.float64)
        inc = np.array([a.spec.inflow_per_s * a.dt_s for a in arbs], dtype=np.float64)
        cost = np.array([a.spec.cost for a in arbs], dtype=np.float64)
        out_mark = np.empty((steps, n_m))
        out_d = np.empty((steps, n_m))
        out_cap = np.empty((steps, n_m))
        w = call_args(sim.ex, bands)
        count = quiet_path_nb(
            k, k_end, float(sim.scenario.dt_s), self.x, self.index, self.oracle, self.rule, d,
            decay.astype(np.float64), capital, inflow, inc, cost, lag, hist,
            np.array(next_funding, dtype=np.float64), self.interval,
            sim.last_funding_rate.astype(np.float64), basis, sample, bands.long_max,
            bands.short_min, bands.p0_index, bands.q_index, bands.p0_dirty, bands.q_dirty,
            w.market, w.long, w.zone, w.liq, w.dropped, out_mark, out_d, out_cap, w.call_m, w.ptr,
            w.n_long, w.acc, w.w_zone, w.w_liq, w.w_long, w.size, w.entry, w.margin, w.floor,
            w.mmr, w.cum, w.min_margin, w.level, w.n_called, w.c_acc, w.ev_step, w.ev_acc,
            w.ev_ratio, w.n_ev, self.stop, self.near_rel,
        )  # fmt: skip
        self.stops[int(self.stop[0])] += 1
        self._size_window(w)
        cross = None
        if bands.cross is not None and count:
            count, cross = self._cross(bands.cross, out_mark[:count], count == steps)
        if count == 0:
            return 0
        made = int(w.n_ev[0])
        calls = (w.call_m, w.ev_step[:made], w.ev_acc[:made], w.ev_ratio[:made]) if made else None
        dropped = w.dropped[: int(w.n_called[0])]
        self._apply(
            k, count, out_mark[:count], out_d[:count], out_cap[:count], hist, lag, dropped, calls,
            cross,
        )  # fmt: skip
        if cross is not None and len(cross.step):
            np.add.at(cols["margin_calls"], (k + cross.step, cross.market), 1)
            self.cross_calls += len(cross.step)
        if calls is not None:
            cols["margin_calls"][k : k + count, w.call_m] = np.bincount(calls[1], minlength=count)
            self.calls += made
            _keep_prices(sim.ex, w)
        self._record(k, count, cols, totals)
        self.skipped += count
        self.stretches += 1
        return int(count)

    def _liquidates_first(
        self, k: int, d: FloatArray, decay: FloatArray, next_funding: list[float], basis: FloatArray
    ) -> bool:
        """Whether step ``k``'s marks put an isolated position under maintenance (a try would
        stop there: :mod:`deleverage.engine.quiet_probe`; the results do not depend on it)."""
        if not self.probe:
            return False
        sim = self.sim
        t = float(k) * float(sim.scenario.dt_s)
        rate = sim.last_funding_rate
        marks = np.empty(len(d))
        for m in range(len(d)):
            mark, priced = venue_mark_nb(
                int(self.rule[m]), float(self.x[k, m]), float(self.index[k, m]),
                float(self.oracle[k, m]), float(d[m] * decay[m]), t, float(next_funding[m]),
                float(self.interval[m]), float(rate[m]), float(basis[m]),
            )  # fmt: skip
            if not priced:
                return False
            marks[m] = mark
        return liquidates_first(sim.ex, marks)

    def _cross(self, setup: CrossStretch, marks: FloatArray, whole: bool) -> tuple[int, CrossCalls]:
        """The leading steps of ``marks`` whose cross side only makes calls, and those calls
        (:mod:`deleverage.engine.quiet_cross`). The horizon doubles when the stretch ran to its
        end (``whole``: the path stopped at the horizon) and starts again small when cut."""
        count, cross, stop = cross_stretch(self.sim.ex, setup, marks)
        self.cross_stops[stop] += 1
        if stop == CROSS_END and whole:
            self.horizon = min(2 * self.horizon, HORIZON_MAX)
        elif stop != CROSS_END:
            self.horizon = HORIZON_MIN
        return count, cross

    def _size_window(self, w: CallArgs) -> None:
        """The next window, each side on its own: twice as wide when a stretch ended at the
        band (the far edge of a window) or used half of this side's, half as wide when it used
        less than an eighth (a falling day calls longs only: its short side stays narrow; the
        results do not depend on it)."""
        if w.call_m < 0:
            return
        band = self.stop[0] == STOP_BAND
        widths = []
        for used, width in zip((int(w.ptr[0]), int(w.ptr[1]) - w.n_long), self.window, strict=True):
            if band or 2 * used >= width:
                width = min(2 * width, WINDOW_MAX)
            elif 8 * used < width:
                width = max(width // 2, WINDOW_MIN)
            widths.append(width)
        self.window = (widths[0], widths[1])

    def _apply(
        self, k: int, count: int, marks: FloatArray, dis: FloatArray, cap: FloatArray,
        hist: FloatArray, lag: IntArray, dropped: npt.NDArray[np.bool_],
        calls: tuple[int, IntArray, IntArray, FloatArray] | None = None,
        cross: CrossCalls | None = None,
    ) -> None:  # fmt: skip
        sim = self.sim
        dt = sim.scenario.dt_s
        ks = np.arange(k, k + count, dtype=np.int64)
        ts = sim.start_ns + np.rint(ks * dt * _NS).astype(np.int64)
        books = np.maximum(self.x[k : k + count] * (1.0 + dis), 1e-12)
        mids = books.copy()
        for m, book in enumerate(sim.books):
            if book is None:
                mids[:, m] = np.nan
        advance_quiet(sim.ex, marks, ts, mids, dropped, calls, cross)
        for m, v in enumerate(sim.venue):
            v.dislocation = float(dis[-1, m])
            arb = v.arbitrageurs
            arb.capital = float(cap[-1, m])
            if lag[m]:
                arb._seen = deque(hist[m, count : count + lag[m]].tolist(), maxlen=int(lag[m]))
            book = sim.books[m]
            if book is not None:
                book.recover(int(ts[-1]))
        self._ts = ts
        self._books = books
        self._marks = marks
        self._dis = dis
        self._cap = cap

    def _record(
        self, k: int, count: int, cols: dict[str, FloatArray],
        totals: tuple[FloatArray, FloatArray, FloatArray, FloatArray],
    ) -> None:  # fmt: skip
        sim = self.sim
        ex = sim.ex
        rows = slice(k, k + count)
        dt = sim.scenario.dt_s
        ks = np.arange(k, k + count, dtype=np.int64)
        bad_debt, socialized, backstop_loss, oi = totals
        pnl = ex.risk.backstop_pnl()
        for m in range(len(sim.venue)):
            exo = self.x[rows, m]
            cols["step"][rows, m] = ks
            cols["t_s"][rows, m] = ks * dt
            cols["ts_ns"][rows, m] = self._ts
            cols["exogenous"][rows, m] = exo
            cols["index"][rows, m] = self.index[rows, m]
            cols["oracle"][rows, m] = self.oracle[rows, m] * 1.0
            cols["oracle_stale"][rows, m] = sim.oracles[m].stale[rows]
            cols["book"][rows, m] = self._books[:, m]
            cols["mark"][rows, m] = self._marks[:, m]
            cols["impact"][rows, m] = self._marks[:, m] / exo - 1.0
            cols["dislocation"][rows, m] = self._dis[:, m]
            cols["arbitrage_capital"][rows, m] = self._cap[:, m]
            cols["depth_multiplier"][rows, m] = sim.depth[m].multiplier
            cols["bad_debt"][rows, m] = bad_debt[m]
            cols["socialized_loss"][rows, m] = socialized[m]
            cols["insurance_fund"][rows, m] = ex.cash(ex.insurance_account_for(m))
            cols["open_interest"][rows, m] = oi[m]
            cols["under_collateralized"][rows, m] = ex.risk.pending_count(m)
            cols["backstop_loss"][rows, m] = backstop_loss[m]
            cols["backstop_pnl"][rows, m] = pnl


@dataclass
class CallArgs:
    """The kernel's called entries (with room for the calls it may make) and call window."""

    market: IntArray
    long: npt.NDArray[np.bool_]
    zone: FloatArray
    liq: FloatArray
    dropped: npt.NDArray[np.bool_]
    n_called: IntArray
    c_acc: IntArray
    call_m: int
    ptr: IntArray
    n_long: int
    acc: IntArray
    w_zone: FloatArray
    w_liq: FloatArray
    w_long: npt.NDArray[np.bool_]
    size: FloatArray
    entry: FloatArray
    margin: FloatArray
    floor: FloatArray
    mmr: FloatArray
    cum: FloatArray
    min_margin: float
    level: float
    ev_step: IntArray
    ev_acc: IntArray
    ev_ratio: FloatArray
    n_ev: IntArray


def call_args(ex: Exchange, bands: QuietBands) -> CallArgs:
    """The kernel's call arguments for ``bands`` (no window: market -1)."""
    n_old = len(bands.called_market)
    win = bands.calls
    # Room for the window's calls and for called positions called again (twice the window
    # and once each of the called ones, and a little more); a stretch that runs out of room
    # ends there. The room is left unset: the kernel writes an entry there (and a call into
    # ``ev_*``) before it reads it, and reads the called entries below ``n_called`` only
    # (zeroing it cost ~0.1 ms a try at thousands of entries).
    room = 0 if win is None else 2 * len(win.acc) + n_old + WINDOW_MIN

    def grow(a: npt.NDArray[Any]) -> npt.NDArray[Any]:
        out = np.empty(n_old + room, dtype=a.dtype)
        out[:n_old] = a
        return out

    empty_f = np.zeros(0)
    if win is None:
        m, level, size, entry, margin = -1, 1.0, empty_f, empty_f, empty_f
        floor = mmr = cum = np.zeros(1)
        min_margin = 0.0
        acc, zone, liq, long, n_long = (
            np.zeros(0, np.int64),
            empty_f,
            empty_f,
            np.zeros(0, np.bool_),
            0,
        )
    else:
        m = win.market
        cols = ex._positions[m]
        tiers = ex.markets[m].tiers
        level = float(ex.markets[m].spec.liquidation.margin_call_ratio)
        size, entry, margin = cols.size, cols.entry, cols.isolated_margin
        floor, mmr, cum, min_margin = tiers.floor, tiers.mmr, tiers.cum, float(tiers.min_margin)
        acc, zone, liq, long, n_long = win.acc, win.zone, win.liq, win.long, win.n_long
    dropped = np.empty(n_old + room, dtype=np.bool_)
    dropped[:n_old] = False
    return CallArgs(
        market=grow(bands.called_market), long=grow(bands.called_long),
        zone=grow(bands.called_zone), liq=grow(bands.called_liq), dropped=dropped,
        n_called=np.array([n_old], dtype=np.int64),
        c_acc=grow(_called_accounts(ex, n_old)), call_m=m,
        ptr=np.array([0, n_long], dtype=np.int64), n_long=n_long, acc=acc, w_zone=zone,
        w_liq=liq, w_long=long, size=size, entry=entry, margin=margin, floor=floor, mmr=mmr,
        cum=cum, min_margin=min_margin, level=level, ev_step=np.empty(room, dtype=np.int64),
        ev_acc=np.empty(room, dtype=np.int64), ev_ratio=np.empty(room),
        n_ev=np.zeros(1, dtype=np.int64),
    )  # fmt: skip


def _keep_prices(ex: Exchange, w: CallArgs) -> None:
    """Hand the called entries a stretch that made calls leaves to the called prices' cache
    (:func:`.quiet_cache.keep_stretch_prices`): the next try prices none of its calls."""
    m = w.call_m
    index = ex._level_index.get((m, min(w.level, 1.0)))
    if index is not None:
        keep_stretch_prices(
            index, ex.markets[m].tiers, int(w.n_called[0]), w.c_acc, w.long, w.zone, w.liq,
            w.dropped, ex.risk.markets[m].called_isolated,
        )  # fmt: skip


def _called_accounts(ex: Exchange, n_old: int) -> IntArray:
    """The called isolated positions' accounts in the order of the bands' ``called_*``."""
    parts = [r.called_isolated for r in ex.risk.markets if len(r.called_isolated)]
    if len(parts) == 1:  # (the caller copies it into the kernel's array)
        acc = parts[0]
    else:
        acc = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
    assert len(acc) == n_old
    return acc if acc.dtype == np.int64 else acc.astype(np.int64)


def _trigger_band(reb: Any) -> tuple[float, float]:
    """Highest trigger price of a long and lowest of a short among rebalanced positions that can
    still be topped up (``-inf`` / ``+inf`` when none): a mark strictly between tops up none."""
    ex = reb.sim.ex
    prices = reb._trigger_prices()
    cols = ex.columns(reb.m)
    size = cols.size[reb.accounts]
    live = (reb.reserve > 0) & (cols.mode[reb.accounts] != 0)
    long = live & (size > 0)
    short = live & (size < 0)
    if np.any(np.isnan(prices[long | short])):
        return math.inf, -math.inf
    lo = float(prices[long].max()) if long.any() else -math.inf
    hi = float(prices[short].min()) if short.any() else math.inf
    return lo, hi
