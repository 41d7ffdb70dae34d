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
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
from numba import njit

from deleverage.engine.level_index import ZONE_RTOL
from deleverage.engine.quiet import (
    QuietBands,
    advance_quiet,
    called_step_nb,
    quiet_bands,
    quiet_mark_nb,
)

if TYPE_CHECKING:
    from deleverage.sim.runner import Simulation

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

RULE_BOOK, RULE_ORACLE, RULE_BINANCE = 0, 1, 2
_RULES = {"book": RULE_BOOK, "oracle": RULE_ORACLE, "binance": RULE_BINANCE}
_NS = 1_000_000_000


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
    """
    n_m = len(d)
    marks = np.empty(n_m)
    new_dropped = np.empty(len(dropped), dtype=np.bool_)
    new_d = np.empty(n_m)
    new_cap = np.empty(n_m)
    for k in range(k0, k_end):
        j = k - k0
        t = float(k) * dt
        for m in range(n_m):
            if t + 1e-9 >= next_funding[m] or t + 1e-9 >= next_sample[m]:
                return j
        for m in range(n_m):
            dm = d[m] * decay[m]
            cap = capital[m]
            if (cap > 0.0 or inflow[m] > 0.0) and dm != 0.0:
                cap = cap + inc[m]
                seen = hist[m, j] if lag[m] > 0 else dm
                if dm * seen > 0.0 and min(abs(dm), abs(seen)) - cost[m] > 0.0 and cap > 0.0:
                    return j  # the arbitrageurs trade at this step
            book = max(x[k, m] * (1.0 + dm), 1e-12)
            if rule[m] == RULE_BOOK:
                mark = book
            elif rule[m] == RULE_ORACLE:
                mark = oracle[k, m]
            else:
                idx = index[k, m]
                if not (math.isfinite(idx) and idx > 0.0 and math.isfinite(book)):
                    return j
                left = (next_funding[m] - t) / interval[m]
                tau = min(max(left, 0.0), 1.0)
                p1 = idx * (1.0 + rate[m] * tau)
                p2 = max(idx + basis_avg[m], 1e-12)
                mark = max(min(p1, p2), min(max(p1, p2), book))
            marks[m] = mark
            new_d[m] = dm
            new_cap[m] = cap
        if not quiet_mark_nb(
            marks, long_max, short_min, p0_index, q_index, p0_dirty, q_dirty, ZONE_RTOL
        ) or not called_step_nb(
            marks, called_market, called_long, called_zone, called_liq, dropped, new_dropped,
            ZONE_RTOL,
        ):  # fmt: skip
            return j
        dropped[:] = new_dropped
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

    def _bands(self) -> QuietBands | None:
        bands = quiet_bands(self.sim.ex)
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
        bands = self._bands()
        if bands is None:
            return 0
        n_m = len(sim.venue)
        arbs = [v.arbitrageurs for v in sim.venue]
        lag = np.array([a._seen.maxlen or 0 for a in arbs], dtype=np.int64)
        steps = n - k
        hist = np.zeros((n_m, int(lag.max(initial=0)) + steps))
        for m, a in enumerate(arbs):
            if lag[m]:
                hist[m, : lag[m]] = list(a._seen)
        d = np.array([v.dislocation for v in sim.venue], dtype=np.float64)
        capital = np.array([a.capital for a in arbs], dtype=np.float64)
        inflow = np.array([a.spec.inflow_per_s for a in arbs], dtype=np.float64)
        inc = np.array([a.spec.inflow_per_s * a.dt_s for a in arbs], dtype=np.float64)
        cost = np.array([a.spec.cost for a in arbs], dtype=np.float64)
        basis = np.zeros(n_m)
        sample = np.full(n_m, np.inf)
        for m, v in enumerate(sim.venue):
            if self.rule[m] == RULE_BINANCE:
                basis[m] = math.fsum(v._basis) / len(v._basis) if v._basis else 0.0
                sample[m] = v._next_sample_s
        dropped = np.zeros(len(bands.called_market), dtype=np.bool_)
        out_mark = np.empty((steps, n_m))
        out_d = np.empty((steps, n_m))
        out_cap = np.empty((steps, n_m))
        count = quiet_path_nb(
            k, n, float(sim.scenario.dt_s), self.x, self.index, self.oracle, self.rule, d,
            decay.astype(np.float64), capital, inflow, inc, cost, lag, hist,
            np.array(next_funding, dtype=np.float64), self.interval,
            sim.last_funding_rate.astype(np.float64), basis, sample, bands.long_max,
            bands.short_min, bands.p0_index, bands.q_index, bands.p0_dirty, bands.q_dirty,
            bands.called_market, bands.called_long, bands.called_zone, bands.called_liq, dropped,
            out_mark, out_d, out_cap,
        )  # fmt: skip
        if count == 0:
            return 0
        self._apply(k, count, out_mark[:count], out_d[:count], out_cap[:count], hist, lag, dropped)
        self._record(k, count, cols, totals)
        self.skipped += count
        self.stretches += 1
        return int(count)

    def _apply(
        self, k: int, count: int, marks: FloatArray, dis: FloatArray, cap: FloatArray,
        hist: FloatArray, lag: IntArray, dropped: npt.NDArray[np.bool_],
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
        advance_quiet(sim.ex, marks, ts, mids, dropped)
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
