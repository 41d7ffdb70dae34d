"""Distance-to-zone bounds of cross accounts: a quiet mark re-checks only those it can reach.

A cross account's buffer before the warning zone is ``B = level E - MM`` (``E`` cross equity,
``MM`` cross maintenance, at the marks ``p0`` of the last full pass); it is in the zone when
``B <= 0``. When market ``j``'s mark moves by the relative amount ``d_j``, its position of
size ``s_j`` changes ``E`` by ``s_j p0_j d_j`` and its maintenance by at most
``|s_j| p0_j |d_j| mmr_j`` (maintenance is continuous and piecewise linear in the notional with
slopes at most the highest tier rate reached, here the tier of twice the notional, so moves up
to +100%). So

    B(p) >= B - sum_j |s_j| p0_j (level + mmr_j) |d_j| >= B - K max_j |d_j|,
    K = sum_j |s_j| p0_j (level + mmr_j),

and an account with ``q = B / K`` above ``max_j |d_j|`` cannot be in the zone: sorted by ``q``,
the accounts a set of marks can reach are a prefix (docs/formulas.md §14). An account's bound
holds while nothing but marks changed it: the engine reports every account a fill, transfer,
deposit, withdrawal, margin move or setting touched (:meth:`CrossIndex.touch`), and those are
checked exactly on every scan until the next build. Funding, tier changes and new markets drop
the index; it is built again from a full pass.

The prefix grows as the marks drift from ``p0``, and after a crash the accounts near the zone
are many. The accounts a full rebuild would put at the front, the first ``PREFIX_SHARE`` of the
index (the *near* set, ``q`` up to ``Q``), carry a second pair of bounds, taken at the *anchor*
marks ``p1`` (the build's, then re-taken from exact figures at the current marks when the
accounts to evaluate grow, :meth:`CrossIndex.anchor`, a pass over the near set only), with
``d1_j`` the move from ``p1`` (docs/formulas.md §14.2):

    q_out = (level E1 - MM1 - slack) / K1          out of the zone while max_j |d1_j| < q_out;
    q_in = min((MM1 - level E1 - slack) / K1,      in the zone (the ratio at or above the level
               (E1 - MM1 - slack) / K1_one)        and below 1) and above maintenance while
                                                   max_j |d1_j| < q_in;

``K1_one = sum_j |s_j| p1_j (1 + mmr_j)``, ``slack = CROSS_SLACK (level |E1| + MM1)``. While
``max_j |d_j| < Q`` no account beyond the near set can be in the zone, so a scan evaluates
only the near accounts with neither bound above ``max_j |d1_j|`` and the touched ones, and
counts the near accounts certainly in the zone as warned without evaluating them
(:meth:`CrossIndex.split`).

Risk-limit steps (``TierArrays.whole_position``, BitMEX) make maintenance jump at the floors,
so the slope bound holds only while no position crosses one: an account's ``q`` is then also
capped by the smallest relative move that takes one of its step-schedule positions to a
neighbouring floor (:func:`step_reach`), and within it the slope is the position's own tier
rate. A maintenance floor (``min_margin``) keeps maintenance continuous with the same slopes.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from deleverage.engine.cross_kernels import gather_nb, merge_sorted_nb, slopes_nb, split_nb
from deleverage.errors import InvariantError
from deleverage.spec import TierArrays

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

#: The largest relative move the bound is built for (mmr of the tier of twice the notional).
MAX_MOVE = 1.0
#: Rebuild when the reachable prefix exceeds this share of the indexed accounts ...
PREFIX_SHARE = 1 / 32
#: ... or the touched accounts (checked on every scan) exceed this share (and the floor).
#: (Measured on benchmarks/cascade_day.py's cross day, 2 hours: 1/8 and 1/64 checked 2,664
#: accounts per scan on average with 13 builds; 1/32 and 1/256, 876 with 69 builds and a
#: third less time; 1/64 and 1/1024, 613 with 297 builds and more time again.)
DIRTY_SHARE = 1 / 256
DIRTY_FLOOR = 256
#: Re-take the anchor when a scan evaluates more untouched near accounts than this, or than half
#: the accounts a scan may evaluate where that is less (at least ``ANCHOR_EVAL_MIN``:
#: :func:`anchor_threshold`). The results do not depend on it. Measured on
#: benchmarks/cascade_day.py's cross day (the step's anchors and the kernels' CPU, same
#: minutes): 64: 2,194 anchors, kernels 2.49-2.53 s; 128: 875, 2.06-2.27 s; 192: 488, 2.23 s;
#: 256: 298, 2.05 s (the bounded scans' CPU unchanged at 0.41-0.46 s).
ANCHOR_EVAL = 128
ANCHOR_EVAL_MIN = 64
#: Near accounts an anchor sorts by their bound (the others wait at the last one's bound).
NEAR_SORTED = 512
#: Relative slack kept below a bound computed from an account's own ``E`` and ``MM`` (the float
#: error of those sums is ~1e-16 of their terms).
CROSS_SLACK = 1e-6


class CrossSplit(NamedTuple):
    """The accounts one set of marks needs evaluated, and those certainly in the zone.

    ``evaluate``: ascending (near accounts with neither bound above the move from the anchor,
    and the touched ones). ``in_acc[j]``, ``in_q[j]``: the near accounts that held a cross
    position in market ``j`` at the anchor and had ``q_in > 0``, ascending, with ``q_in``;
    ``threshold``: the move from the anchor (``max_j |d1_j| (1 + 1e-9) + 1e-12``): such an
    account with ``q_in > threshold`` that was not touched is certainly in the zone and above
    maintenance. ``dirty``: the touched accounts (ascending); ``flag``: scratch, all False,
    longer than every account id of the index and of ``dirty``; ``reanchor``: the untouched
    accounts to evaluate exceed :func:`anchor_threshold` (the scan may call
    :meth:`CrossIndex.anchor`).
    """

    evaluate: IntArray
    in_acc: tuple[IntArray, ...]
    in_q: tuple[FloatArray, ...]
    threshold: float
    dirty: IntArray
    flag: npt.NDArray[np.bool_]
    reanchor: bool


class NearColumns(NamedTuple):
    """The near accounts' columns in their order (:meth:`CrossIndex.near_columns`):
    ``size[j, i]``, ``entry[j, i]``, ``mode[j, i]`` of account ``near[i]`` in market ``j``,
    ``cash[i]``."""

    size: FloatArray
    entry: FloatArray
    mode: npt.NDArray[np.int8]
    cash: FloatArray


class CrossIndex:
    """Accounts with cross positions, sorted by how far the marks must move to reach the zone."""

    def __init__(self, level: float) -> None:
        self.level = min(float(level), 1.0)
        self.valid = False
        self.p0 = np.zeros(0)
        self.q = np.zeros(0)
        self.acc = np.zeros(0, dtype=np.int64)
        self.builds = 0
        self._touched: list[IntArray] = []
        self._dirty = np.zeros(0, dtype=np.int64)  # touched since the build, ascending
        self._flag = np.zeros(0, dtype=np.bool_)  # scratch of the scans' kernels, all False
        self._top = -1  # the largest indexed account id
        #: The near set (the first ``n_near`` accounts of ``acc``, ascending by account) and its
        #: bounds from the anchor marks ``p1`` (module docstring).
        self.n_near = 0
        self.near = np.zeros(0, dtype=np.int64)
        self.near_by_dist = np.zeros(0, dtype=np.int64)
        self.near_dist = np.zeros(0)
        self.in_acc: tuple[IntArray, ...] = ()
        self.in_q: tuple[FloatArray, ...] = ()
        self.p1 = np.zeros(0)
        self.anchors = 0  # re-taken anchors (all builds)
        #: Whether :meth:`anchor` may re-take the bounds (no risk-limit steps: its slopes have
        #: no step cap).
        self.can_anchor = True
        #: Near accounts sorted by their bound at an anchor (:func:`by_distance`).
        self.near_sorted = NEAR_SORTED
        #: The near accounts' columns gathered (:meth:`near_columns`); None: not yet since the
        #: build.
        self._cols: NearColumns | None = None

    def invalidate(self) -> None:
        self.valid = False

    def touch(self, accounts: IntArray) -> None:
        """These accounts changed (cash or positions): check them exactly until the next build."""
        if self.valid:
            self._touched.append(np.asarray(accounts, dtype=np.int64))

    def build(
        self,
        marks: FloatArray,
        sizes: list[FloatArray],
        modes: list[npt.NDArray[np.int8]],
        tiers: list[TierArrays],
        equity: FloatArray,
        maintenance: FloatArray,
        trader: npt.NDArray[np.bool_],
        slopes: list[FloatArray] | None = None,
    ) -> None:
        """Compute ``q`` of every trader with a cross position from a full pass's ``E``, ``MM``.
        ``slopes``: ``K`` at the level and at 1 where the caller has them (no risk-limit
        steps: :func:`.cross_kernels.cross_terms_nb`'s, the same figures as
        :func:`.cross_kernels.slopes_nb`'s market by market)."""
        to_step = np.full(len(equity), np.inf)
        if slopes is not None and not any(t.whole_position for t in tiers):
            k, k_one = slopes
        else:
            k, k_one = np.zeros(len(equity)), np.zeros(len(equity))
            for size, mode, t, mark in zip(sizes, modes, tiers, marks, strict=True):
                slopes_nb(
                    size, mode, float(mark), t.floor, t.mmr, self.level, t.whole_position, k,
                    k_one,
                )  # fmt: skip
        for size, mode, t, mark in zip(sizes, modes, tiers, marks, strict=True):
            if t.whole_position:
                cross = (size != 0.0) & (mode == 0)
                notional = np.abs(size) * mark
                to_step = np.where(cross, np.minimum(to_step, step_reach(notional, t)), to_step)
        has = trader & (k > 0.0)
        acc = np.flatnonzero(has).astype(np.int64)
        q = np.minimum((self.level * equity[acc] - maintenance[acc]) / k[acc], to_step[acc])
        self.n_near = min(len(acc), max(64, int(len(acc) * PREFIX_SHARE)))
        self.acc, self.q = sorted_prefix(acc, q, self.n_near)
        self.can_anchor = not any(t.whole_position for t in tiers)
        # The near set and its first anchor: the build's own figures (with the step caps).
        near = np.sort(self.acc[: self.n_near])
        holds = [
            (size[near] != 0.0) & (mode[near] == 0) for size, mode in zip(sizes, modes, strict=True)
        ]
        self._set_anchor(
            marks, near, equity[near], maintenance[near], k[near], k_one[near], to_step[near],
            holds,
        )  # fmt: skip
        self._top = int(acc.max()) if len(acc) else -1
        self.p0 = np.array(marks, dtype=np.float64)
        self._touched = []
        self._dirty = np.zeros(0, dtype=np.int64)
        self._cols = None
        self.valid = True
        self.builds += 1

    def merge_touched(self) -> None:
        """Fold the accounts touched since the last call into the touched set (``_dirty``)."""
        if self._touched:
            new = self._touched[0] if len(self._touched) == 1 else np.concatenate(self._touched)
            new = np.ascontiguousarray(new)
            self._dirty = merge_sorted_nb(self._dirty, new)
            self._touched = []

    def _set_anchor(
        self, marks: FloatArray, near: IntArray, equity: FloatArray, maintenance: FloatArray,
        k_level: FloatArray, k_one: FloatArray, cap: FloatArray,
        holds: list[npt.NDArray[np.bool_]],
    ) -> None:  # fmt: skip
        """The near accounts' bounds ``q_out``, ``q_in`` (module docstring) at ``marks``;
        ``holds[j]``: which near accounts hold a cross position in market ``j``."""
        level = self.level
        slack = CROSS_SLACK * (level * np.abs(equity) + maintenance)
        with np.errstate(invalid="ignore", divide="ignore"):
            q_out = np.minimum((level * equity - maintenance - slack) / k_level, cap)
            q_in = np.minimum(
                np.minimum(
                    (maintenance - level * equity - slack) / k_level,
                    (equity - maintenance - slack) / k_one,
                ),
                cap,
            )
        q_out = np.where(np.isnan(q_out), -np.inf, q_out)
        q_in = np.where(np.isnan(q_in), -np.inf, q_in)
        # An account needs evaluating once the move reaches the larger of its bounds (at most
        # one is positive): sorted by it, those are a prefix.
        dist = np.maximum(q_out, q_in)
        self.near = near
        self.near_by_dist, self.near_dist = by_distance(near, dist, self.near_sorted)
        # Per market, the near accounts certainly in the zone at some move (``q_in > 0``) that
        # hold a cross position there, ascending, with ``q_in``.
        inside = q_in > 0.0
        self.in_acc = tuple(near[inside & h] for h in holds)
        self.in_q = tuple(q_in[inside & h] for h in holds)
        self.p1 = np.array(marks, dtype=np.float64)

    def anchor(
        self, marks: FloatArray, equity: FloatArray, maintenance: FloatArray,
        k_level: FloatArray, k_one: FloatArray, holds: list[npt.NDArray[np.bool_]],
    ) -> None:  # fmt: skip
        """Re-take the near accounts' bounds at ``marks`` from their exact ``E``, ``MM`` and
        slopes there (one entry per account of :attr:`near`, e.g. from
        :func:`.cross_kernels.cross_terms_nb` at the index's level; ``holds[j]``: which of them
        hold a cross position in market ``j``). Only while :attr:`can_anchor` and the marks
        are within ``Q`` of the build's (:meth:`split` did not answer None)."""
        if not self.can_anchor:
            return
        cap = np.full(len(self.near), np.inf)
        self._set_anchor(marks, self.near, equity, maintenance, k_level, k_one, cap, holds)
        self.anchors += 1

    def near_columns(
        self, sizes: tuple[FloatArray, ...], entries: tuple[FloatArray, ...],
        modes: tuple[npt.NDArray[np.int8], ...], cash: FloatArray, check: bool = False,
    ) -> NearColumns:  # fmt: skip
        """The near accounts' sizes, entries and modes (``[market, i]`` for ``near[i]``) and
        cash, as the columns hold them now (:func:`.cross_kernels.anchor_nb` reads these):
        gathered after a build, then only the touched accounts re-read (an account nothing
        touched since the build has the build's columns). ``check``: compare every entry with
        the columns (``check_invariants``)."""
        self.merge_touched()
        near = self.near
        if self._cols is None:
            k, n_m = len(near), len(sizes)
            self._cols = NearColumns(
                np.empty((n_m, k)), np.empty((n_m, k)), np.empty((n_m, k), dtype=np.int8),
                np.empty(k),
            )  # fmt: skip
            gather_nb(near, near, sizes, entries, modes, cash, *self._cols)
        else:
            gather_nb(near, self._dirty, sizes, entries, modes, cash, *self._cols)
        if check:
            cols = self._cols
            agree = {
                "size": all(
                    np.array_equal(c[near], g) for c, g in zip(sizes, cols.size, strict=True)
                ),
                "entry": all(
                    np.array_equal(c[near], g) for c, g in zip(entries, cols.entry, strict=True)
                ),
                "mode": all(
                    np.array_equal(c[near], g) for c, g in zip(modes, cols.mode, strict=True)
                ),
                "cash": np.array_equal(cash[near], cols.cash),
            }
            for name, ok in agree.items():
                if not ok:
                    raise InvariantError(f"the cross index's gathered near `{name}` is stale")
        return self._cols

    def take_anchor(
        self, marks: FloatArray, near_by_dist: IntArray, near_dist: FloatArray, in_acc: IntArray,
        in_q: FloatArray, in_at: IntArray,
    ) -> None:  # fmt: skip
        """Take the anchor :func:`.cross_kernels.anchor_nb` computed at ``marks`` (the figures
        :meth:`anchor` computes; ``in_acc``, ``in_q`` flat, market ``j``'s at
        ``in_at[j] : in_at[j + 1]``)."""
        if not self.can_anchor:
            return
        self.near_by_dist, self.near_dist = near_by_dist, near_dist
        parts = range(len(in_at) - 1)
        self.in_acc = tuple(in_acc[in_at[j] : in_at[j + 1]] for j in parts)
        self.in_q = tuple(in_q[in_at[j] : in_at[j + 1]] for j in parts)
        self.p1 = np.array(marks, dtype=np.float64)
        self.anchors += 1

    def split(self, marks: FloatArray) -> CrossSplit | None:
        """The accounts ``marks`` need evaluated and those certainly in the zone (module
        docstring); ``None`` when the bound no longer pays: a move beyond :data:`MAX_MOVE`, an
        account beyond the near set reachable, or more than :data:`PREFIX_SHARE` of the
        accounts to evaluate."""
        if not self.valid or len(marks) != len(self.p0):
            return None
        self.merge_touched()
        n_dirty = len(self._dirty)
        if n_dirty > max(DIRTY_FLOOR, int(len(self.acc) * DIRTY_SHARE)):
            return None
        flag = self._scratch()
        evaluate, picked, threshold = split_nb(
            np.asarray(marks, dtype=np.float64), self.p0, self.p1, self.q, self.n_near,
            self.near_by_dist, self.near_dist, self._dirty, flag, MAX_MOVE,
        )  # fmt: skip
        limit = max(64, int(len(self.acc) * PREFIX_SHARE))
        if picked < 0 or len(evaluate) > limit:
            return None
        reanchor = self.can_anchor and picked > anchor_threshold(limit)
        return CrossSplit(evaluate, self.in_acc, self.in_q, threshold, self._dirty, flag, reanchor)

    def _scratch(self) -> npt.NDArray[np.bool_]:
        """The all-False scratch flags, longer than every indexed and touched account id."""
        top = max(int(self._dirty[-1]) if len(self._dirty) else -1, self._top) + 1
        if len(self._flag) < top:
            self._flag = np.zeros(top, dtype=np.bool_)
        return self._flag


def anchor_threshold(limit: int) -> int:
    """The untouched near accounts a scan evaluates past which it re-takes the anchor, when a
    scan may evaluate at most ``limit`` accounts: :data:`ANCHOR_EVAL`, or half the limit where
    that is less, but at least :data:`ANCHOR_EVAL_MIN` (a small book's scans pass the limit
    first and run the full pass, as with the minimum alone).

    >>> anchor_threshold(3125), anchor_threshold(200), anchor_threshold(64)
    (128, 100, 64)
    """
    return min(ANCHOR_EVAL, max(ANCHOR_EVAL_MIN, limit // 2))


#: Relative margin kept below the move to a floor (the tier lookup's float error is ~1e-16).
STEP_RTOL = 1e-9


def sorted_prefix(acc: IntArray, q: FloatArray, keep: int) -> tuple[IntArray, FloatArray]:
    """``acc`` and ``q`` in the index's order: the first ``keep + 1`` exactly as a stable sort
    by ``q`` puts them, the others after them (those tied with the last of them first, then in
    ``acc``'s order) with ``q`` lowered to that last one's (a lower bound of their own, so every
    test of the index stays safe: a scan reaching it runs the full pass, a quiet stretch's
    smallest ``q`` among accounts not called is no larger than the true one). Only the near
    set and the bound just beyond it are read in order (:meth:`CrossIndex.split`); a full sort
    of every account cost most of a build.

    >>> sorted_prefix(np.array([4, 5, 6, 7, 8]), np.array([0.5, 0.1, 0.3, 0.2, 0.4]), 1)
    (array([5, 7, 4, 6, 8]), array([0.1, 0.2, 0.2, 0.2, 0.2]))
    """
    if len(q) <= keep + 1:
        order = np.argsort(q, kind="stable")
        return acc[order], q[order]
    cut = float(np.partition(q, keep)[keep])
    head = np.flatnonzero(q < cut)
    head = head[np.argsort(q[head], kind="stable")]
    ties = np.flatnonzero(q == cut)
    rest = np.flatnonzero(~(q <= cut))
    order = np.concatenate([head, ties, rest])
    return acc[order], np.concatenate([q[head], np.full(len(ties) + len(rest), cut)])


def by_distance(near: IntArray, dist: FloatArray, keep: int) -> tuple[IntArray, FloatArray]:
    """The near accounts in the order the scans pick them, with the bounds they are picked at
    (ascending): the (at most) ``keep`` accounts with ``dist`` below ``cut``, the
    ``keep + 1``-th smallest, by ``dist`` (stable), then the others in ``near``'s order, each
    at ``cut`` (a lower bound of its own: they are evaluated once the move reaches ``cut``,
    docs/formulas.md §14.2). A scan that reaches ``cut`` picks more than :data:`ANCHOR_EVAL`
    accounts and the anchor is re-taken, so a full sort would not pay;
    :func:`.cross_kernels.anchor_nb` does the same.

    >>> by_distance(np.array([3, 5, 8, 9]), np.array([0.3, -0.1, 0.2, 0.5]), 2)
    (array([5, 8, 3, 9]), array([-0.1,  0.2,  0.3,  0.3]))
    """
    if len(dist) <= keep:
        order = np.argsort(dist, kind="stable")
        return near[order], dist[order]
    cut = float(np.partition(dist, keep)[keep])
    head = np.flatnonzero(dist < cut)
    head = head[np.argsort(dist[head], kind="stable")]
    tail = np.flatnonzero(dist >= cut)
    order = np.concatenate([head, tail])
    return near[order], np.concatenate([dist[head], np.full(len(tail), cut)])


def step_reach(notional: FloatArray, tiers: TierArrays) -> FloatArray:
    """Smallest relative move of the mark that takes a position of ``notional`` (quote) out of
    its tier: to the next floor up, ``floor_{t+1} / notional - 1``, or below its own floor,
    ``1 - floor_t / notional`` (none for the first tier), shrunk by :data:`STEP_RTOL`.

    >>> from deleverage.venues import preset
    >>> t = preset("bitmex", "XBTUSD").tier_arrays  # floors 0, 200, 350, ... XBT
    >>> [round(float(x), 6) for x in step_reach(np.array([100.0, 250.0]), t)]
    [1.0, 0.2]
    """
    notional = np.asarray(notional, dtype=np.float64)
    tier = np.searchsorted(tiers.floor, notional, side="right") - 1
    top = np.append(tiers.floor[1:], np.inf)[tier]
    with np.errstate(divide="ignore", invalid="ignore"):
        up = top / notional - 1.0
        down = np.where(tier > 0, 1.0 - tiers.floor[tier] / notional, np.inf)
    out: FloatArray = np.minimum(up, down) * (1.0 - STEP_RTOL)
    return np.where(notional > 0.0, out, np.inf)
