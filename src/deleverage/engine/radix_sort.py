"""NumPy's stable argsort of float64 values, by a least-significant-digit radix sort.

A zone-price index (:class:`.LevelIndex`) sorts every isolated position's zone price when it
is built: 10^5-10^6 values a side, twice at the start of a large day (the call level and the
liquidation tracker). NumPy has no vector argsort for float64 on every CPU (on the AMD EPYC
type it took ~45 ms for 6 * 10^5 prices), and its stable sort is no faster; a radix sort of
the values' bits orders them in eight linear passes (~13 ms).

The order is ``np.argsort(values, kind="stable")`` index for index: each value is mapped to an
unsigned key that orders as the value does (the sign bit flipped for a positive value, every
bit for a negative one; ``-0.0`` keyed as ``0.0``, since NumPy ranks the two as equal, and
every NaN the largest key, since NumPy puts them last as one run), and an LSD radix sort is
stable, so equal keys keep their index order. Passes whose byte is the same for every key are
skipped. A Hypothesis test compares it with NumPy's stable argsort
(tests/unit/exchange/test_level_index_stable_order.py).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from numba import njit

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

#: Bits sorted per pass (256 buckets: the counts of all passes fit in cache).
DIGIT_BITS = 8
_PASSES = 64 // DIGIT_BITS


@njit(cache=True)
def radix_keys_nb(values: FloatArray) -> npt.NDArray[np.uint64]:
    """Unsigned keys ordered as NumPy's sort orders ``values`` (C-contiguous): ``-0.0`` and
    ``0.0`` equal, every NaN equal and above ``+inf``."""
    n = len(values)
    bits = values.view(np.uint64)
    keys = np.empty(n, dtype=np.uint64)
    top = np.uint64(1) << np.uint64(63)
    for i in range(n):
        v = values[i]
        if v != v:
            keys[i] = np.uint64(0xFFFFFFFFFFFFFFFF)
        elif v == 0.0:
            keys[i] = top
        else:
            b = bits[i]
            keys[i] = (b ^ top) if (b & top) == np.uint64(0) else ~b
    return keys


@njit(cache=True)
def radix_sorted_nb(values: FloatArray) -> tuple[IntArray, FloatArray]:
    """``np.argsort(values, kind="stable")`` of C-contiguous ``values`` and the values in that
    order (module docstring)."""
    n = len(values)
    keys = radix_keys_nb(values)
    n_buckets = 1 << DIGIT_BITS
    mask = np.uint64(n_buckets - 1)
    counts = np.zeros((_PASSES, n_buckets), dtype=np.int64)
    for i in range(n):
        k = keys[i]
        for p in range(_PASSES):
            counts[p, (k >> np.uint64(p * DIGIT_BITS)) & mask] += 1
    order = np.arange(n)
    keys_to = np.empty(n, dtype=np.uint64)
    order_to = np.empty(n, dtype=np.int64)
    at = np.empty(n_buckets, dtype=np.int64)
    for p in range(_PASSES):
        c = counts[p]
        single = False  # one bucket holds every key: the pass keeps the order
        for d in range(n_buckets):
            if c[d] != 0:
                single = c[d] == n
                break
        if single:
            continue
        start = 0
        for d in range(n_buckets):
            at[d] = start
            start += c[d]
        shift = np.uint64(p * DIGIT_BITS)
        for i in range(n):
            k = keys[i]
            d = (k >> shift) & mask
            q = at[d]
            keys_to[q] = k
            order_to[q] = order[i]
            at[d] = q + 1
        keys, keys_to = keys_to, keys
        order, order_to = order_to, order
    ranked = np.empty(n)
    for i in range(n):
        ranked[i] = values[order[i]]
    return order, ranked


def radix_sorted(values: FloatArray) -> tuple[IntArray, FloatArray]:
    """:func:`radix_sorted_nb` of any float64 array (copied contiguous where it is not)."""
    return radix_sorted_nb(np.ascontiguousarray(values, dtype=np.float64))
