"""Compiled helpers of the risk step's rounds after the batch path.

After a batch of isolated liquidations, the next round re-checks only the accounts the batch
touched (:meth:`RiskEngine._isolated_candidates_among`). :func:`isolated_below_among_nb` does
that check in one pass over those accounts: their distinct ids (through a flag per account,
no sort of the batch), the isolated margin test ``E < MM`` with ``E = M + s (mark - e)`` and
the tiered maintenance of :func:`deleverage.engine.kernels.maintenance_nb` (the scan's own
arithmetic), and the health ``(E - MM) / max(MM, 1e-12)`` the rounds sort by.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from numba import njit

from deleverage.engine.kernels import maintenance_nb, tier_of_nb

FloatArray = npt.NDArray[np.float64]


@njit(cache=True)
def isolated_below_among_nb(
    accounts: npt.NDArray[np.int64],
    seen: npt.NDArray[np.bool_],
    size: FloatArray,
    entry: FloatArray,
    isolated_margin: FloatArray,
    mode: npt.NDArray[np.int8],
    kind: npt.NDArray[np.int8],
    mark: float,
    floor: FloatArray,
    mmr: FloatArray,
    cum: FloatArray,
    min_margin: float,
) -> tuple[npt.NDArray[np.int64], FloatArray]:
    """The distinct ``accounts`` (ascending) whose isolated trader position is under
    maintenance, with their health ``(E - MM) / max(MM, 1e-12)``.

    ``seen``: one flag per account, all False; set for the accounts met and cleared again
    before returning (a caller keeps one for every call).
    """
    found = np.empty(len(accounts), dtype=np.int64)
    k = 0
    for a in accounts:
        if not seen[a]:
            seen[a] = True
            found[k] = a
            k += 1
    below = np.empty(k, dtype=np.int64)
    n_below = 0
    for j in range(k):
        a = found[j]
        seen[a] = False
        s = size[a]
        if s == 0.0 or mode[a] == 0 or kind[a] != 0:
            continue
        notional = abs(s) * mark
        t = tier_of_nb(notional, floor)
        m = maintenance_nb(notional, mmr[t], cum[t], min_margin)
        e = isolated_margin[a] + s * (mark - entry[a])
        if e < m:
            below[n_below] = a
            n_below += 1
    out = np.sort(below[:n_below])
    health = np.empty(n_below, dtype=np.float64)
    for j in range(n_below):
        a = out[j]
        s = size[a]
        notional = abs(s) * mark
        t = tier_of_nb(notional, floor)
        m = maintenance_nb(notional, mmr[t], cum[t], min_margin)
        e = isolated_margin[a] + s * (mark - entry[a])
        health[j] = (e - m) / max(m, 1e-12)
    return out, health


@njit(cache=True)
def close_sizes_nb(
    size: FloatArray,
    equity: FloatArray,
    maintenance: FloatArray,
    mark: float,
    floor: FloatArray,
    rates: FloatArray,
    fee_in_rate: float,
    tier_down: bool,
    first: bool,
    initial: bool,
    buffer: float,
    fee_rate: float,
    lot: float,
) -> FloatArray:
    """:func:`~deleverage.engine.risk.support._sizes_to_close` of a ``tier_down`` or a
    ``partial`` policy in one pass (base units), all of a position whose equity is gone.

    ``tier_down``: down one tier (``first``: into the first), just below the target tier's
    floor, at least a lot; a position in the first tier closes whole. ``partial``: the lots
    that restore the target rate (``initial``: the tier's initial rate ``rates`` plus
    ``fee_in_rate``; else its maintenance rate plus ``buffer``). The same expressions in the
    same order, with NumPy's tie and NaN rules (``np.searchsorted(side="right")``;
    ``np.maximum``/``np.minimum`` return the second operand on ties)."""
    n = len(size)
    out = np.empty(n)
    for i in range(n):
        abs_size = abs(size[i])
        notional = abs_size * mark
        if notional != notional:  # NaN sorts after every floor
            t = len(floor) - 1
        else:
            t = -1
            for j in range(len(floor)):
                t += floor[j] <= notional
            t = max(t, 0)
        if tier_down:
            to = min(t, 1) if first else t
            target = floor[to] * (1.0 - 1e-9) / mark
            down = np.ceil((abs_size - target) / lot - 1e-9) * lot
            close = abs_size if t <= 0 else _np_maximum(down, lot)
        else:
            if initial:
                rate = rates[t] + fee_in_rate
                requirement = notional * rate
            else:
                rate = rates[t] + buffer
                requirement = maintenance[i] + notional * buffer
            shortage = requirement - equity[i]
            release = mark * (rate - fee_rate)
            raw = shortage / release if release > 0 else abs_size
            lots = np.ceil(raw / lot - 1e-9) * lot
            close = 0.0 if shortage <= 0 else _np_minimum(abs_size, lots)
        out[i] = abs_size if equity[i] <= 0.0 else _np_minimum(close, abs_size)
    return out


@njit(cache=True)
def _np_minimum(a: float, b: float) -> float:
    """``np.minimum(a, b)`` for one pair: NaN propagates, a tie returns ``b``."""
    if a != a:
        return a
    return a if a < b else b


@njit(cache=True)
def _np_maximum(a: float, b: float) -> float:
    """``np.maximum(a, b)`` for one pair: NaN propagates, a tie returns ``b``."""
    if a != a:
        return a
    return a if a > b else b


@njit(cache=True)
def calls_update_nb(
    called: npt.NDArray[np.int64],
    warn: npt.NDArray[np.int64],
    below: npt.NDArray[np.int64],
    flag: npt.NDArray[np.bool_],
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_]]:
    """:meth:`RiskEngine._calls` in one compiled pass: the called accounts still in the
    warning zone or under maintenance (in order), then the accounts of ``warn`` not called
    before (in ``warn``'s order), and which of ``warn`` those are. ``flag``: a scratch array
    over the accounts, all False (left so)."""
    for a in warn:
        flag[a] = True
    for a in below:
        flag[a] = True
    out = np.empty(len(called) + len(warn), dtype=np.int64)
    k = 0
    for a in called:  # kept: in the zone; its flag drops so that it is not fresh below
        if flag[a]:
            out[k] = a
            k += 1
            flag[a] = False
    fresh = np.empty(len(warn), dtype=np.bool_)
    for j in range(len(warn)):
        a = warn[j]
        fresh[j] = flag[a]
        flag[a] = False
        if fresh[j]:
            out[k] = a
            k += 1
    for a in below:
        flag[a] = False
    return out[:k].copy(), fresh
