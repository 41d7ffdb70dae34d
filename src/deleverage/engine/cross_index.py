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

Risk-limit steps (``TierArrays.whole_position``, BitMEX) make maintenance jump at the floors,
so the slope bound holds only while no position crosses one: an account's ``q`` is then also
capped by the smallest relative move that takes one of its step-schedule positions to a
neighbouring floor (:func:`step_reach`), and within it the slope is the position's own tier
rate. A maintenance floor (``min_margin``) keeps maintenance continuous with the same slopes.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from deleverage.engine.cross_kernels import merge_candidates_nb
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
        self._flag = np.zeros(0, dtype=np.bool_)  # scratch of merge_candidates_nb, all False
        self._top = -1  # the largest indexed account id
        #: The last answer of :meth:`candidates` and what it depended on (the prefix length and
        #: the touched set's generation): quiet marks after a crash ask for the same set again.
        self._last: tuple[int, int, IntArray] | None = None
        self._dirty_gen = 0

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
    ) -> None:
        """Compute ``q`` of every trader with a cross position from a full pass's ``E``, ``MM``."""
        k = np.zeros(len(equity))
        to_step = np.full(len(equity), np.inf)
        for size, mode, t, mark in zip(sizes, modes, tiers, marks, strict=True):
            cross = (size != 0.0) & (mode == 0)
            notional = np.abs(size) * mark
            reach = np.searchsorted(t.floor, 2.0 * notional, side="right") - 1
            rate = t.mmr[reach]
            if t.whole_position:
                tier = np.searchsorted(t.floor, notional, side="right") - 1
                rate = np.maximum(rate, t.mmr[tier])
                to_step = np.where(cross, np.minimum(to_step, step_reach(notional, t)), to_step)
            k += np.where(cross, notional * (self.level + rate), 0.0)
        has = trader & (k > 0.0)
        acc = np.flatnonzero(has).astype(np.int64)
        q = np.minimum((self.level * equity[acc] - maintenance[acc]) / k[acc], to_step[acc])
        order = np.argsort(q, kind="stable")
        self.q, self.acc = q[order], acc[order]
        self._top = int(acc.max()) if len(acc) else -1
        self.p0 = np.array(marks, dtype=np.float64)
        self._touched = []
        self._dirty = np.zeros(0, dtype=np.int64)
        self._dirty_gen += 1
        self._last = None
        self.valid = True
        self.builds += 1

    def merge_touched(self) -> None:
        """Fold the accounts touched since the last call into the touched set (``_dirty``)."""
        if self._touched:
            self._dirty = np.unique(np.concatenate([self._dirty, *self._touched]))
            self._touched = []
            self._dirty_gen += 1

    def candidates(self, marks: FloatArray) -> IntArray | None:
        """Accounts the marks can have moved into the zone and those touched, ascending;
        ``None`` when the bound no longer pays (a move beyond :data:`MAX_MOVE`, or more than
        :data:`PREFIX_SHARE` of the accounts to check)."""
        if not self.valid or len(marks) != len(self.p0):
            return None
        self.merge_touched()
        marks = np.asarray(marks, dtype=np.float64)
        unpriced = self.p0 <= 0.0  # a market without a mark at the build: no bound
        if unpriced.any():
            if np.any(marks[unpriced] != self.p0[unpriced]):
                return None
            marks = np.where(unpriced, 1.0, marks)
        move = float(np.max(np.abs(marks / np.where(unpriced, 1.0, self.p0) - 1.0)))
        if move >= MAX_MOVE:
            return None
        k = int(np.searchsorted(self.q, move * (1.0 + 1e-9) + 1e-12, side="right"))
        limit = max(64, int(len(self.acc) * PREFIX_SHARE))
        if k + len(self._dirty) > limit or len(self._dirty) > max(
            DIRTY_FLOOR, int(len(self.acc) * DIRTY_SHARE)
        ):
            return None
        last = self._last
        if last is not None and last[0] == k and last[1] == self._dirty_gen:
            return last[2]  # read-only: the same accounts as the last call
        out = self._merge(k)
        out.flags.writeable = False
        self._last = (k, self._dirty_gen, out)
        return out

    def _merge(self, k: int) -> IntArray:
        """The first ``k`` indexed accounts and the touched ones, ascending, without repeats."""
        if len(self._dirty) == 0:
            out = self.acc[:k].copy()
            out.sort()
            return out
        top = max(int(self._dirty[-1]), self._top) + 1
        if len(self._flag) < top:
            self._flag = np.zeros(top, dtype=np.bool_)
        out = np.empty(k + len(self._dirty), dtype=np.int64)
        count = merge_candidates_nb(self.acc[:k], self._dirty, self._flag, out)
        out = out[:count]
        out.sort()
        return out


#: Relative margin kept below the move to a floor (the tier lookup's float error is ~1e-16).
STEP_RTOL = 1e-9


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
