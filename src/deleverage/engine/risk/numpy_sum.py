"""NumPy's float64 sum (``np.sum``, ``ndarray.sum``) in compiled code, bit for bit.

Numba's ``np.sum`` adds the values in order; NumPy adds a contiguous float64 array by
pairwise summation (``pairwise_sum`` in numpy/_core/src/umath/loops_utils.h.src): fewer than
8 values in order from 0.0; up to 128 values in 8 interleaved partial sums, combined as
``((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))``, then the remainder in order; more
than that split in two at half the length rounded down to a multiple of 8. The reduction
starts from the identity 0.0 (so the sum of ``[-0.0]`` is 0.0). A kernel that sums with
:func:`numpy_sum_nb` gives the figure the Python side would get from ``np.sum`` of the same
array (tests/unit/risk/test_numpy_sum.py compares the two on random arrays of every length
up to 600 and some longer ones, signed zeros included).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from numba import njit

FloatArray = npt.NDArray[np.float64]

#: NumPy's ``PW_BLOCKSIZE``: the longest stretch summed without splitting.
_BLOCK = 128


@njit(cache=True)
def _block_nb(a: FloatArray, lo: int, n: int) -> float:
    """NumPy's ``pairwise_sum`` of ``a[lo:lo + n]`` for ``n <= 128`` (no split)."""
    if n < 8:
        res = 0.0
        for i in range(lo, lo + n):
            res += a[i]
        return res
    r0, r1, r2, r3 = a[lo], a[lo + 1], a[lo + 2], a[lo + 3]
    r4, r5, r6, r7 = a[lo + 4], a[lo + 5], a[lo + 6], a[lo + 7]
    stop = n - n % 8
    i = 8
    while i < stop:
        k = lo + i
        r0 += a[k]
        r1 += a[k + 1]
        r2 += a[k + 2]
        r3 += a[k + 3]
        r4 += a[k + 4]
        r5 += a[k + 5]
        r6 += a[k + 6]
        r7 += a[k + 7]
        i += 8
    res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    while i < n:
        res += a[lo + i]
        i += 1
    return float(res)


@njit(cache=True)
def numpy_sum_nb(a: FloatArray) -> float:
    """``np.sum(a)`` of a contiguous float64 array, the same float (module docstring).

    NumPy's recursion (left half + right half) walked with an explicit stack: a frame is
    a stretch ``[lo, lo + n)`` and its stage (0: not split, 1: summing its left half,
    2: its left half's sum kept, summing its right half)."""
    n = len(a)
    if n <= _BLOCK:
        return 0.0 + _block_nb(a, 0, n)
    los = np.zeros(64, dtype=np.int64)
    ns = np.zeros(64, dtype=np.int64)
    stage = np.zeros(64, dtype=np.int64)
    kept = np.zeros(64)
    top = 0
    ns[0] = n
    while True:
        if ns[top] > _BLOCK:  # split: the left half first
            half = ns[top] // 2
            half -= half % 8
            stage[top] = 1
            los[top + 1], ns[top + 1], stage[top + 1] = los[top], half, 0
            top += 1
            continue
        value = _block_nb(a, los[top], ns[top])
        while True:  # hand the sum up until a frame waits for its right half
            top -= 1
            if top < 0:
                return 0.0 + value
            if stage[top] == 1:
                kept[top] = value
                stage[top] = 2
                half = ns[top] // 2
                half -= half % 8
                los[top + 1], ns[top + 1], stage[top + 1] = los[top] + half, ns[top] - half, 0
                top += 1
                break
            value = kept[top] + value
