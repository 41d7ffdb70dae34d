"""Margin calls inside quiet stretches: a mark that only calls isolated positions stays in bulk.

Over a volatile day most risk steps that do anything only *call* positions (their ratio
``MM / E`` reached the call level) and liquidate none. :mod:`deleverage.engine.quiet` stops a
stretch at the first mark that can reach the zone of an uncalled position; this module lets
the stretch go on through such marks for one market (the first isolated market of the
engine), exactly as the risk step would:

- :func:`call_window` takes the next ``width`` uncalled positions of each side from the
  sorted zone-price index (:class:`.LevelIndex`: clean entries in order, then the dirty ones
  priced afresh), with their zone prices at the call level and their liquidation prices; the
  band of the market becomes the first zone price beyond the window (a mark past it stops the
  stretch, and the next stretch takes a new window);
- :func:`entrants_step_nb` evaluates, at one mark, the window's positions that the risk
  step's scan would evaluate (zone price within ``ZONE_RTOL`` of the mark) with the scan's
  own arithmetic (:func:`.isolated_scan_nb`): below maintenance or in the slack but not in
  the zone, the mark is not quiet; in the zone, the position is called (a ``MARGIN_CALL``
  event with its ratio, accounts ascending within the step) and joins the called positions,
  which :func:`.called_step_nb` follows from the next mark on;
- :func:`append_stretch_events` writes a stretch's marks and calls to the journal in the
  order the step-by-step run writes them (each step: the markets' marks in order, a market's
  calls right after its mark).

The twin tests (tests/integration/test_quiet_twin.py, tests/unit/kernels/test_quiet.py)
compare journals, called sets, step reports and result hashes with the step-by-step run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
from numba import njit

from deleverage.engine.events import EventKind
from deleverage.engine.kernels import maintenance_nb, tier_of_nb, zone_prices_nb
from deleverage.engine.levels import zone_prices_compiled
from deleverage.engine.quiet_take import take_clean
from deleverage.engine.quiet_take import take_clean_nb as take_clean_nb

if TYPE_CHECKING:
    from deleverage.engine.events import Journal
    from deleverage.engine.exchange import Exchange
    from deleverage.engine.level_index import LevelIndex

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

#: What :func:`_ratio_nb` returns for a position under maintenance / out of the zone.
BELOW, OUTSIDE = -1.0, -2.0
#: Uncalled positions per side taken into a stretch's window: at first, at least, at most.
WINDOW, WINDOW_MIN, WINDOW_MAX = 1024, 128, 65536


@dataclass(frozen=True)
class CallWindow:
    """The next uncalled isolated positions of market ``market`` (see the module docstring).

    Entries ``[0, n_long)`` are longs by zone price descending, the rest shorts ascending:
    account, zone price at the index's level, liquidation price (level 1), side. ``long_max``
    / ``short_min``: the highest long / lowest short zone price of the uncalled positions left
    out of the window (``-inf`` / ``+inf`` when none).
    """

    market: int
    level: float
    n_long: int
    acc: IntArray
    zone: FloatArray
    liq: FloatArray
    long: BoolArray
    long_max: float
    short_min: float


def call_window(
    ex: Exchange,
    m: int,
    index: LevelIndex,
    called: IntArray,
    width: int | tuple[int, int] = WINDOW,
) -> CallWindow | None:
    """The window of market ``m`` from its zone-price ``index``, leaving out the ``called``
    positions (``width`` a side, or longs and shorts); None when a dirty position has an
    unbounded zone (no band)."""
    cols = ex._positions[m]
    tiers = ex.markets[m].tiers
    if index._touched:
        index._refresh_dirty(cols.size, cols.entry, cols.isolated_margin, tiers)
    # Per side: accounts, zone prices, sizes, entries, isolated margins.
    parts: list[list[npt.NDArray[Any]]] = []
    beyond = []
    taken: list[IntArray] = []  # per side: the positions of the clean uncalled entries taken
    d_acc, d_price = index._dirty_acc, index._dirty_price
    is_called = ex.risk._flags(ex.n_accounts)  # scratch, all False: reset below
    is_called[called] = True
    # A clean entry's size, entry and margin are those the index copied in its order (no
    # scattered reads of the full columns; level_index.py's ``_rows``), when it has them.
    rows = index._rows
    widths = (width, width) if isinstance(width, int) else width
    try:
        for k, (sign, acc, price, head) in enumerate(
            (
                (-1.0, index.long_acc, index.long_neg_price, index.long_head),
                (1.0, index.short_acc, index.short_price, index.short_head),
            )
        ):
            out = np.empty(min(widths[k], len(acc)), dtype=np.int64)
            count, nxt = take_clean(index, k, acc, head, is_called, widths[k], out)
            taken.append(out[:count])
            beyond.append(sign * float(price[nxt]) if nxt < len(acc) else sign * np.inf)
        joins = 0
        if len(d_acc):
            joins = dirty_joins_nb(
                d_acc, d_price, cols.size, cols.mode, ex._kind, is_called, beyond[0], beyond[1]
            )
            if joins < 0:
                return None
        d_called = is_called[d_acc] if joins else np.zeros(0, dtype=np.bool_)
    finally:
        is_called[called] = False
    long_max, short_min = beyond
    if not joins and FAST_WINDOW:  # the sides in the index's order: one compiled pass
        got = window_nb(
            taken[0], taken[1], index.long_acc, index.long_neg_price, index.short_acc,
            index.short_price, *(rows[0][:3] if rows is not None else _NO_ROWS),
            *(rows[1][:3] if rows is not None else _NO_ROWS), rows is not None, cols.size,
            cols.entry, cols.isolated_margin, tiers.mmr, tiers.cum,
        )  # fmt: skip
        if got is not None:
            w_acc, w_zone, w_liq, w_long, n_long, cut_long, cut_short = got
            if cut_long >= 0:  # an unbounded zone: the side's window ends before it
                long_max = max(long_max, float(w_zone[cut_long]))
            if cut_short >= 0:
                short_min = min(short_min, float(w_zone[cut_short]))
            end_long = n_long if cut_long < 0 else cut_long
            if cut_long >= 0 or cut_short >= 0:
                keep = np.ones(len(w_acc), dtype=np.bool_)
                keep[end_long:n_long] = False
                if cut_short >= 0:
                    keep[cut_short:] = False
                w_acc, w_zone, w_liq, w_long = w_acc[keep], w_zone[keep], w_liq[keep], w_long[keep]
            return CallWindow(
                market=m, level=index.level, n_long=end_long, acc=w_acc, zone=w_zone,
                liq=w_liq, long=w_long, long_max=long_max, short_min=short_min,
            )  # fmt: skip
    for k, (sign, acc, price) in enumerate(
        ((-1.0, index.long_acc, index.long_neg_price), (1.0, index.short_acc, index.short_price))
    ):
        pos = taken[k]
        a = acc[pos]
        if rows is not None:
            inputs = rows[k][0][pos], rows[k][1][pos], rows[k][2][pos]
        else:
            inputs = cols.size[a], cols.entry[a], cols.isolated_margin[a]
        parts.append([a, sign * price[pos], *inputs])
    added = [False, False]  # dirty positions joined a side (else it is in the index's order)
    if joins:  # (else no dirty position joins a side: dirty_joins_nb)
        d_size = cols.size[d_acc]
        keep = (cols.mode[d_acc] != 0) & (ex._kind[d_acc] == 0) & (d_size != 0.0) & ~d_called
        d_acc, d_price, d_size = d_acc[keep], d_price[keep], d_size[keep]
        if not np.all(np.isfinite(d_price)):
            return None
        take_long = (d_size > 0) & (d_price >= long_max)
        take_short = (d_size < 0) & (d_price <= short_min)
        for k, take in enumerate((take_long, take_short)):
            if not take.any():
                continue
            added[k] = True
            a = d_acc[take]
            add = (a, d_price[take], d_size[take], cols.entry[a], cols.isolated_margin[a])
            parts[k] = [np.concatenate([old, new]) for old, new in zip(parts[k], add, strict=True)]
    sides = []
    for k, (acc, zone, size, entry, margin) in enumerate(parts):
        if added[k] or not in_order_nb(zone, k == 0):  # else a stable sort keeps all
            order = np.argsort(-zone if k == 0 else zone, kind="stable")
            acc, zone, size, entry, margin = (a[order] for a in (acc, zone, size, entry, margin))
        liq = zone_prices_compiled(size, entry, margin, 1.0, tiers)
        cut = first_unbounded_nb(zone, liq)
        if cut < len(zone):  # an unbounded zone: the window ends before it
            edge = float(zone[cut])
            if k == 0:
                long_max = max(long_max, edge)
            else:
                short_min = min(short_min, edge)
            acc, zone, liq = acc[:cut], zone[:cut], liq[:cut]
        sides.append((acc, zone, liq))
    (la, lz, ll), (sa, sz, sl) = sides
    return CallWindow(
        market=m,
        level=index.level,
        n_long=len(la),
        acc=np.concatenate([la, sa]),
        zone=np.concatenate([lz, sz]),
        liq=np.concatenate([ll, sl]),
        long=np.concatenate([np.ones(len(la), np.bool_), np.zeros(len(sa), np.bool_)]),
        long_max=long_max,
        short_min=short_min,
    )


#: Whether :func:`call_window` assembles a window with no dirty entry in one compiled pass
#: (:func:`window_nb`; tests switch it off to compare with the NumPy path).
FAST_WINDOW = True
#: No index rows (:func:`window_nb` reads the full columns then).
_NO_ROWS = (np.zeros(0), np.zeros(0), np.zeros(0))


@njit(cache=True)
def window_nb(
    pos_long: IntArray,
    pos_short: IntArray,
    long_acc: IntArray,
    long_neg_price: FloatArray,
    short_acc: IntArray,
    short_price: FloatArray,
    size_long: FloatArray,
    entry_long: FloatArray,
    margin_long: FloatArray,
    size_short: FloatArray,
    entry_short: FloatArray,
    margin_short: FloatArray,
    from_rows: bool,
    size: FloatArray,
    entry: FloatArray,
    margin: FloatArray,
    mmr: FloatArray,
    cum: FloatArray,
) -> tuple[IntArray, FloatArray, FloatArray, BoolArray, int, int, int] | None:
    """:func:`call_window`'s sides when no dirty position joins them: the taken positions
    ``pos_*`` of the index's sides (longs by ``-long_neg_price``, shorts by
    ``short_price``), their size, entry and margin from the index's rows (``*_long``,
    ``*_short`` in its order, ``from_rows``) or the full columns, priced at level 1 by
    :func:`.zone_prices_nb` (each entry alone: the same bits as the NumPy path's batch).
    Returns the longs then the shorts (account, zone, liquidation price, side), the count of
    longs, and each side's first entry with an unbounded zone (-1: none); None when a side is
    out of the window's order (the NumPy path sorts it)."""
    n_long = len(pos_long)
    n = n_long + len(pos_short)
    acc = np.empty(n, dtype=np.int64)
    zone = np.empty(n)
    s = np.empty(n)
    e = np.empty(n)
    mg = np.empty(n)
    long = np.empty(n, dtype=np.bool_)
    for t in range(n):
        if t < n_long:
            i = pos_long[t]
            a = long_acc[i]
            zone[t] = -1.0 * long_neg_price[i]
            long[t] = True
            if from_rows:
                s[t], e[t], mg[t] = size_long[i], entry_long[i], margin_long[i]
        else:
            i = pos_short[t - n_long]
            a = short_acc[i]
            zone[t] = 1.0 * short_price[i]
            long[t] = False
            if from_rows:
                s[t], e[t], mg[t] = size_short[i], entry_short[i], margin_short[i]
        acc[t] = a
        if not from_rows:
            s[t], e[t], mg[t] = size[a], entry[a], margin[a]
        # The window's order within a side: ties allowed, a NaN is out of it.
        if (
            t > 0
            and t != n_long
            and not (zone[t] <= zone[t - 1] if t < n_long else zone[t] >= zone[t - 1])
        ):
            return None
    liq = np.empty(n)
    zone_prices_nb(s, e, mg, 1.0, mmr, cum, liq)
    cut_long = -1
    cut_short = -1
    for t in range(n):
        if not (math.isfinite(zone[t]) and math.isfinite(liq[t])):
            if t < n_long and cut_long < 0:
                cut_long = t
            elif t >= n_long and cut_short < 0:
                cut_short = t
    return acc, zone, liq, long, n_long, cut_long, cut_short


@njit(cache=True)
def dirty_joins_nb(
    d_acc: IntArray,
    d_price: FloatArray,
    size: FloatArray,
    mode: npt.NDArray[np.int8],
    kind: npt.NDArray[np.int8],
    is_called: BoolArray,
    long_max: float,
    short_min: float,
) -> int:
    """Whether a dirty entry (accounts ``d_acc``, zone prices ``d_price``) of an open isolated
    trader position not called joins the window: -1 when such an entry has a zone price that
    is not finite (no window), 1 when one is a long at or above ``long_max`` or a short at or
    below ``short_min``, else 0 (:func:`call_window`'s NumPy tests over the dirty entries,
    one pass, no arrays)."""
    joins = 0
    for t in range(len(d_acc)):
        a = d_acc[t]
        s = size[a]
        if mode[a] == 0 or kind[a] != 0 or s == 0.0 or is_called[a]:
            continue
        p = d_price[t]
        if not math.isfinite(p):
            return -1
        if (s > 0 and p >= long_max) or (s < 0 and p <= short_min):
            joins = 1
    return joins


@njit(cache=True)
def in_order_nb(zone: FloatArray, descending: bool) -> bool:
    """Whether ``zone`` is in the window's order: descending (longs) or ascending (shorts),
    ties allowed; a NaN is out of order (``np.all(key[1:] >= key[:-1])`` of ``key = -zone``
    or ``zone``)."""
    for i in range(1, len(zone)):
        if not (zone[i] <= zone[i - 1] if descending else zone[i] >= zone[i - 1]):
            return False
    return True


@njit(cache=True)
def first_unbounded_nb(zone: FloatArray, liq: FloatArray) -> int:
    """The first entry whose zone or liquidation price is not finite (``len`` when none)."""
    i = 0
    while i < len(zone) and math.isfinite(zone[i]) and math.isfinite(liq[i]):
        i += 1
    return i


@njit(cache=True)
def _ratio_nb(
    a: int, p: float, size: FloatArray, entry: FloatArray, margin: FloatArray,
    floor: FloatArray, mmr: FloatArray, cum: FloatArray, min_margin: float, call_level: float,
) -> float:  # fmt: skip
    """``MM / E`` of isolated position ``a`` at mark ``p`` when the risk step's scan
    (:func:`.isolated_scan_nb`) would warn it; :data:`BELOW` under maintenance,
    :data:`OUTSIDE` when neither."""
    s = size[a]
    notional = abs(s) * p
    t = tier_of_nb(notional, floor)
    mm = maintenance_nb(notional, mmr[t], cum[t], min_margin)
    e = margin[a] + s * (p - entry[a])
    if e < mm:
        return BELOW
    if not (e > 0.0 and mm / e >= call_level):
        return OUTSIDE
    ratio: float = mm / e
    return ratio


@njit(cache=True)
def empty_bounds_nb(out: FloatArray) -> None:
    """Each market's row of near-entry bounds (:func:`.called_bounds_nb`'s six columns) set
    to bound no entry: the called longs' lowest zone and highest liquidation price, the called
    shorts' highest zone and lowest liquidation price, the dropped longs' highest and the
    dropped shorts' lowest zone price."""
    for m in range(out.shape[0]):
        out[m, 0] = np.inf
        out[m, 1] = -np.inf
        out[m, 2] = -np.inf
        out[m, 3] = np.inf
        out[m, 4] = -np.inf
        out[m, 5] = np.inf


@njit(cache=True)
def widen_bounds_nb(
    out: FloatArray, m: int, dropped: bool, is_long: bool, zone: float, liq: float
) -> None:
    """Market ``m``'s bounds (:func:`empty_bounds_nb`'s columns) widened by one entry: a
    dropped one by its zone price, a called one by its zone and liquidation prices. The one
    rule of :func:`.called_bounds_nb` and of the fused pass of
    :func:`recalls_bounds_step_nb` (the same comparisons: the same bits)."""
    if dropped:
        if is_long:
            out[m, 4] = max(out[m, 4], zone)
        else:
            out[m, 5] = min(out[m, 5], zone)
    elif is_long:
        out[m, 0] = min(out[m, 0], zone)
        out[m, 1] = max(out[m, 1], liq)
    else:
        out[m, 2] = max(out[m, 2], zone)
        out[m, 3] = min(out[m, 3], liq)


@njit(cache=True)
def _recalls_nb(
    marks: FloatArray,
    near: IntArray,
    n_near: int,
    c_market: IntArray,
    c_long: BoolArray,
    c_zone: FloatArray,
    c_liq: FloatArray,
    c_acc: IntArray,
    dropped: BoolArray,
    new_dropped: BoolArray,
    call_m: int,
    size: FloatArray,
    entry: FloatArray,
    margin: FloatArray,
    floor: FloatArray,
    mmr: FloatArray,
    cum: FloatArray,
    min_margin: float,
    call_level: float,
    zone_rtol: float,
    stage_src: IntArray,
    stage_acc: IntArray,
    stage_ratio: FloatArray,
    fused: bool,
    bounds: FloatArray,
    changed: IntArray,
    n_changed: IntArray,
) -> int:
    """:func:`recalls_step_nb`, or with ``fused`` :func:`recalls_bounds_step_nb`."""
    count = 0
    if fused:
        empty_bounds_nb(bounds)
        n_changed[0] = 0
    for t in range(n_near):
        i = near[t]
        mk = c_market[i]
        if mk < 0:
            new_dropped[i] = True
            if fused and not dropped[i]:
                changed[n_changed[0]] = i
                n_changed[0] += 1
            continue
        p = marks[mk]
        lo = p * (1.0 - zone_rtol)
        hi = p * (1.0 + zone_rtol)
        if c_long[i]:
            inside = hi < c_zone[i]
            outside = lo > c_zone[i]
            safe = lo > c_liq[i]
        else:
            inside = lo > c_zone[i]
            outside = hi < c_zone[i]
            safe = hi < c_liq[i]
        if outside:
            state = True
        elif not dropped[i] and inside and safe:
            state = False  # certainly in the zone and above maintenance: stays called
        elif mk == call_m:
            r = _ratio_nb(c_acc[i], p, size, entry, margin, floor, mmr, cum, min_margin, call_level)
            if r == BELOW:
                return -1
            state = dropped[i] or r == OUTSIDE
            if dropped[i] and r != OUTSIDE:
                stage_src[count] = i
                stage_acc[count] = c_acc[i]
                stage_ratio[count] = r
                count += 1
        else:
            return -1
        new_dropped[i] = state
        if fused:
            if state != dropped[i]:
                changed[n_changed[0]] = i
                n_changed[0] += 1
            widen_bounds_nb(bounds, mk, state, c_long[i], c_zone[i], c_liq[i])
    return count


@njit(cache=True)
def recalls_step_nb(
    marks: FloatArray,
    near: IntArray,
    n_near: int,
    c_market: IntArray,
    c_long: BoolArray,
    c_zone: FloatArray,
    c_liq: FloatArray,
    c_acc: IntArray,
    dropped: BoolArray,
    new_dropped: BoolArray,
    call_m: int,
    size: FloatArray,
    entry: FloatArray,
    margin: FloatArray,
    floor: FloatArray,
    mmr: FloatArray,
    cum: FloatArray,
    min_margin: float,
    call_level: float,
    zone_rtol: float,
    stage_src: IntArray,
    stage_acc: IntArray,
    stage_ratio: FloatArray,
) -> int:
    """:func:`.called_step_nb` over the called entries ``near[:n_near]`` (ascending; the
    others stay as they are: :mod:`deleverage.sim.quiet_near`), except that the entries
    of market ``call_m`` follow the risk step exactly: one that is a candidate of its scan
    (zone price within ``zone_rtol`` of the mark) and not certainly in the zone and above
    maintenance (:func:`.called_step_nb`'s test) is evaluated as the scan does; under
    maintenance, the mark is not quiet; in the zone, it stays called (a dropped one is called
    again: staged, ``stage_src`` its entry, with its ratio); neither, it is dropped. Entries of
    market -1 were called again already (skipped). The near entries' new states go to
    ``new_dropped``. Returns the count staged, -1 when the mark is not quiet. With ``call_m``
    -1 it is :func:`.called_step_nb` (-1 for False)."""
    none_i = np.empty(0, dtype=np.int64)
    return _recalls_nb(
        marks, near, n_near, c_market, c_long, c_zone, c_liq, c_acc, dropped, new_dropped,
        call_m, size, entry, margin, floor, mmr, cum, min_margin, call_level, zone_rtol,
        stage_src, stage_acc, stage_ratio, False, np.empty((0, 6)), none_i, none_i,
    )  # fmt: skip


@njit(cache=True)
def recalls_bounds_step_nb(
    marks: FloatArray,
    near: IntArray,
    n_near: int,
    c_market: IntArray,
    c_long: BoolArray,
    c_zone: FloatArray,
    c_liq: FloatArray,
    c_acc: IntArray,
    dropped: BoolArray,
    new_dropped: BoolArray,
    call_m: int,
    size: FloatArray,
    entry: FloatArray,
    margin: FloatArray,
    floor: FloatArray,
    mmr: FloatArray,
    cum: FloatArray,
    min_margin: float,
    call_level: float,
    zone_rtol: float,
    stage_src: IntArray,
    stage_acc: IntArray,
    stage_ratio: FloatArray,
    bounds: FloatArray,
    changed: IntArray,
    n_changed: IntArray,
) -> int:
    """:func:`recalls_step_nb` whose pass also writes into ``bounds`` what
    :func:`.called_bounds_nb` with ``settle`` would compute from the near entries' new states
    (the same comparisons in the same order: the same bits) and lists the entries whose state
    changed (``changed[:n_changed[0]]``): the caller writes those back once the step is quiet
    (``dropped`` is not written here: a step stopped later leaves it as it was), and a second
    pass over the near entries is saved. ``bounds`` and the list are unusable after -1."""
    return _recalls_nb(
        marks, near, n_near, c_market, c_long, c_zone, c_liq, c_acc, dropped, new_dropped,
        call_m, size, entry, margin, floor, mmr, cum, min_margin, call_level, zone_rtol,
        stage_src, stage_acc, stage_ratio, True, bounds, changed, n_changed,
    )  # fmt: skip


@njit(cache=True)
def entrants_step_nb(
    p: float,
    ptr: IntArray,
    n_long: int,
    w_acc: IntArray,
    w_zone: FloatArray,
    w_called: BoolArray,
    size: FloatArray,
    entry: FloatArray,
    margin: FloatArray,
    floor: FloatArray,
    mmr: FloatArray,
    cum: FloatArray,
    min_margin: float,
    call_level: float,
    zone_rtol: float,
    start: int,
    stage_src: IntArray,
    stage_acc: IntArray,
    stage_ratio: FloatArray,
) -> int:
    """The window's positions the risk step would call at mark ``p``, staged from ``start``
    (``stage_src``: ``-1 - i`` for window entry ``i``); returns the staged count then, -1 when
    the mark is not quiet (one of them under maintenance, or no room left). The window's
    candidates at ``p`` (zone price within ``zone_rtol``) not ``w_called`` yet are evaluated
    as the scan does: in the zone, called; neither, left for the next marks. ``ptr``: the
    first long and short entries not called."""
    lo = p * (1.0 - zone_rtol)
    hi = p * (1.0 + zone_rtol)
    count = start
    for side in range(2):
        i = ptr[side]
        end = n_long if side == 0 else len(w_acc)
        while i < end and (w_zone[i] >= lo if side == 0 else w_zone[i] <= hi):
            if not w_called[i]:
                a = w_acc[i]
                r = _ratio_nb(a, p, size, entry, margin, floor, mmr, cum, min_margin, call_level)
                if r == BELOW or count == len(stage_src):
                    return -1  # a liquidation (or no room): the risk step runs
                if r != OUTSIDE:
                    stage_src[count] = -1 - i
                    stage_acc[count] = a
                    stage_ratio[count] = r
                    count += 1
            i += 1
    return count


def append_stretch_events(
    journal: Journal,
    marks: FloatArray,
    ts: IntArray,
    call_market: int | IntArray = -1,
    call_step: IntArray | None = None,
    call_acc: IntArray | None = None,
    call_ratio: FloatArray | None = None,
) -> None:
    """Journal a stretch in one append: ``marks[j, m]`` at ``ts[j]`` (markets in order within
    a step) and the calls of market ``call_market`` (or one market per call, ascending within
    a step; ``call_step`` ascending, accounts ascending within a step's market) right after
    that market's mark of their step, as the
    step-by-step run writes them (each row's other columns are the defaults)."""
    steps, n_m = marks.shape
    flat = marks.reshape(-1)
    if call_step is None or call_acc is None or call_ratio is None or len(call_step) == 0:
        stamps = np.repeat(ts, n_m)
        markets = np.tile(np.arange(n_m), steps)
        journal.append_columns(EventKind.MARK_PRICE, stamps, market=markets, price=flat)
        return
    # A call goes after its step's mark of its market (and after the calls before it).
    kind, row_ts, market, price, account, amount = stretch_rows_nb(
        np.ascontiguousarray(flat, dtype=np.float64), np.asarray(ts, dtype=np.int64), n_m,
        np.asarray(call_step, dtype=np.int64) * n_m + call_market,
        np.asarray(call_acc, dtype=np.int64), np.asarray(call_ratio, dtype=np.float64),
        int(EventKind.MARK_PRICE), int(EventKind.MARGIN_CALL),
    )  # fmt: skip
    # The kernel's fresh arrays are handed over (append_columns' batch, less its copies).
    journal.append_owned_columns(
        kind, int(row_ts[-1]), market=market, price=price, account=account, amount=amount,
        __ts_rows=row_ts,
    )  # fmt: skip


@njit(cache=True)
def stretch_rows_nb(
    flat: FloatArray,
    ts: IntArray,
    n_m: int,
    after: IntArray,
    call_acc: IntArray,
    call_ratio: FloatArray,
    mark_kind: int,
    call_kind: int,
) -> tuple[npt.NDArray[np.int16], IntArray, IntArray, FloatArray, IntArray, FloatArray]:
    """The journal rows of :func:`append_stretch_events` with calls: the marks ``flat``
    (``[step, market]`` flattened; step ``j`` at ``ts[j]``) and, right after mark row
    ``after[c]`` (ascending), call ``c`` (account, ratio); kind, time, market, price,
    account and amount per row (a mark's account -1 and amount 0, a call's price 0)."""
    n_marks = len(flat)
    total = n_marks + len(after)
    kind = np.empty(total, dtype=np.int16)
    row_ts = np.empty(total, dtype=np.int64)
    market = np.empty(total, dtype=np.int64)
    price = np.zeros(total)
    account = np.full(total, -1, dtype=np.int64)
    amount = np.zeros(total)
    c = 0
    row = 0
    for r in range(n_marks):
        j = r // n_m
        kind[row] = mark_kind
        row_ts[row] = ts[j]
        market[row] = r - j * n_m
        price[row] = flat[r]
        row += 1
        while c < len(after) and after[c] == r:
            kind[row] = call_kind
            row_ts[row] = ts[j]
            market[row] = r - j * n_m
            account[row] = call_acc[c]
            amount[row] = call_ratio[c]
            row += 1
            c += 1
    if c != len(after):
        raise ValueError("stretch calls out of order")
    return kind, row_ts, market, price, account, amount
