"""Compiled parts of the batch ADL of isolated positions (:meth:`BatchStage._batch_adl_side`).

Two array steps of one side's batch ADL, each a single pass where the NumPy form sorted or
grouped (``np.union1d``, ``np.unique``, ``np.bincount``, ``np.minimum.reduceat``), with the
same floats:

- :func:`match_needs_nb`: the bankrupt positions' cumulative needs merged with the queue's
  cumulative sizes into (bankrupt, queue slot, size) fills;
- :func:`capped_prices_nb`: each round's ADL price capped so that no counterparty pays more
  against the mark than its own equity spread over everything it takes
  (:meth:`ShortfallStage._solvent_adl_price` for many rounds).

tests/unit/risk/test_adl_batch_kernels_twin.py compares both with the NumPy forms they
replace (kept there as the oracles).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from numba import njit

FloatArray = npt.NDArray[np.float64]
IntpArray = npt.NDArray[np.intp]


@njit(cache=True)
def match_needs_nb(
    cum_need: FloatArray, cum_av: FloatArray, total: float, n_queue: int
) -> tuple[IntpArray, IntpArray, FloatArray]:
    """For every fill, the bankrupt position ``i``, the queue slot ``j`` and the size (base).

    ``cum_need``: the bankrupt positions' cumulative sizes; ``cum_av``: the queue's cumulative
    sizes (both non-decreasing), ``total`` its last. The breaks are the union of the needs
    (clipped at ``end = min(cum_need[-1], total)``: a need may exceed the queue by float
    dust) and the queue's sums below ``end``, each value once, ascending (``np.union1d``);
    a fill runs from one break to the next (positive lengths only), and its position and
    slot are those whose cumulative range holds its midpoint (``np.searchsorted(...,
    side="right")``, clamped to the last), found by pointers that move forward as the
    midpoints ascend (and back, should rounding put one below the last).
    """
    n_need = len(cum_need)
    end = min(cum_need[n_need - 1], total)
    need = np.empty(n_need)
    for a in range(n_need):
        need[a] = min(cum_need[a], end)
    n_av = 0
    while n_av < len(cum_av) and cum_av[n_av] < end:
        n_av += 1
    # The union, ascending, each value once (both inputs are sorted).
    breaks = np.empty(n_need + n_av)
    nb = 0
    a = 0
    b = 0
    while a < n_need or b < n_av:
        if b >= n_av or (a < n_need and need[a] <= cum_av[b]):
            x = need[a]
            a += 1
        else:
            x = cum_av[b]
            b += 1
        if nb == 0 or x != breaks[nb - 1]:
            breaks[nb] = x
            nb += 1
    fill_i = np.empty(nb, dtype=np.intp)
    fill_j = np.empty(nb, dtype=np.intp)
    lengths = np.empty(nb)
    k = 0
    p = 0
    q = 0
    start = 0.0
    for t in range(nb):
        length = breaks[t] - start
        if length > 0:
            mid = start + length / 2
            while p < n_need and need[p] <= mid:
                p += 1
            while p > 0 and need[p - 1] > mid:  # (a midpoint below the last by rounding)
                p -= 1
            while q < len(cum_av) and cum_av[q] <= mid:
                q += 1
            while q > 0 and cum_av[q - 1] > mid:
                q -= 1
            fill_i[k] = min(p, n_need - 1)
            fill_j[k] = min(q, n_queue - 1)
            lengths[k] = length
            k += 1
        start = breaks[t]
    return fill_i[:k], fill_j[:k], lengths[:k]


@njit(cache=True)
def capped_prices_nb(
    price: FloatArray,
    fill_i: IntpArray,
    fill_j: IntpArray,
    lengths: FloatArray,
    cp_equity: FloatArray,
    n_queue: int,
    mark: float,
    side: float,
) -> FloatArray:
    """Each round's price with its adverse move against the mark capped by its weakest
    counterparty's room ``E_j / T_j`` times ``1 - 1e-9`` (``E_j``: the counterparty's equity
    floored at 0, ``T_j``: all it takes in the batch).

    ``price``: one per round; ``fill_i``: each fill's round (non-decreasing); ``fill_j``: its
    queue slot (one counterparty per slot, ``n_queue`` slots); ``cp_equity``: the
    counterparty's floored equity, per fill. ``T_j`` is summed per slot in fill order (as
    ``np.bincount`` adds its weights); the room of round ``r`` is the minimum over its fills
    with ``np.minimum.reduceat``'s rules (NaN propagates; a round without a fill takes the
    value at its start, past the end an IndexError). A round without an adverse move keeps
    its price.
    """
    n_fill = len(fill_i)
    n_rounds = len(price)
    taken = np.zeros(n_queue)
    for v in range(n_fill):
        taken[fill_j[v]] += lengths[v]
    out = price.copy()
    at = 0  # the first fill of round r: np.searchsorted(fill_i, r) (fill_i non-decreasing)
    for r in range(n_rounds):
        while at < n_fill and fill_i[at] < r:
            at += 1
        if at >= n_fill:
            raise IndexError("an ADL round without a fill past the last fill")
        adverse = side * (price[r] - mark)
        if not adverse > 0.0:
            continue
        # reduceat: the segment up to the next round's start (a round without a fill: the
        # value at its start alone); the last round's runs to the end.
        if r + 1 == n_rounds:
            stop = n_fill
        elif fill_i[at] >= r + 1:
            stop = at + 1
        else:
            stop = at + 1
            while stop < n_fill and fill_i[stop] < r + 1:
                stop += 1
        room = cp_equity[at] / taken[fill_j[at]]
        for v in range(at + 1, stop):
            x = cp_equity[v] / taken[fill_j[v]]
            if not (room <= x or room != room):  # np.minimum(room, x)
                room = x
        cap = room * (1.0 - 1e-9)
        move = adverse if (adverse <= cap or adverse != adverse) else cap
        out[r] = mark + side * move
    return out
