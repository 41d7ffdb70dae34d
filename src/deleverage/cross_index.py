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
the accounts a set of marks can reach are a prefix (docs/formulas.md §14). The bound holds only
while nothing but marks changed (no fill, transfer, deposit, funding or setting); the engine
drops the index at any other change and builds it again once marks alone follow.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from deleverage.spec import TierArrays

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

#: The largest relative move the bound is built for (mmr of the tier of twice the notional).
MAX_MOVE = 1.0
#: Rebuild when the reachable prefix exceeds this share of the indexed accounts.
PREFIX_SHARE = 1 / 8


class CrossIndex:
    """Accounts with cross positions, sorted by how far the marks must move to reach the zone."""

    def __init__(self, level: float) -> None:
        self.level = min(float(level), 1.0)
        self.effects_version = -1
        self.p0 = np.zeros(0)
        self.q = np.zeros(0)
        self.acc = np.zeros(0, dtype=np.int64)
        self.builds = 0
        self.last_effects = -1
        self.quiet_marks = 0

    def observe(self, effects_version: int) -> None:
        """Count consecutive scans that saw no change but marks (the index is built after two)."""
        if effects_version == self.last_effects:
            self.quiet_marks += 1
        else:
            self.quiet_marks = 0
            self.last_effects = effects_version

    def valid_for(self, effects_version: int) -> bool:
        return self.effects_version == effects_version and len(self.p0) > 0

    def build(
        self,
        effects_version: int,
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
        for size, mode, t, mark in zip(sizes, modes, tiers, marks, strict=True):
            cross = (size != 0.0) & (mode == 0)
            notional = np.abs(size) * mark
            reach = np.searchsorted(t.floor, 2.0 * notional, side="right") - 1
            k += np.where(cross, notional * (self.level + t.mmr[reach]), 0.0)
        has = trader & (k > 0.0)
        acc = np.flatnonzero(has).astype(np.int64)
        q = (self.level * equity[acc] - maintenance[acc]) / k[acc]
        order = np.argsort(q, kind="stable")
        self.q, self.acc = q[order], acc[order]
        self.p0 = np.array(marks, dtype=np.float64)
        self.effects_version = effects_version
        self.builds += 1

    def candidates(self, marks: FloatArray) -> IntArray | None:
        """Accounts the marks can have moved into the zone, ascending; ``None`` when the bound
        no longer pays (a move beyond :data:`MAX_MOVE` or a prefix past :data:`PREFIX_SHARE`)."""
        move = float(np.max(np.abs(np.asarray(marks) / self.p0 - 1.0)))
        if move >= MAX_MOVE:
            return None
        k = int(np.searchsorted(self.q, move * (1.0 + 1e-9) + 1e-12, side="right"))
        if k > max(64, int(len(self.acc) * PREFIX_SHARE)):
            return None
        out = self.acc[:k].copy()
        out.sort()
        return out
