"""``engine/risk/prefetch.prefetch``: a hint that changes no value and never faults."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from numba import njit

from deleverage.engine.risk.prefetch import prefetch


@njit(cache=True)
def _prefetch_then_sum(rows: npt.NDArray[np.int64], a: npt.NDArray[np.float64],
                       b: npt.NDArray[np.int8], c: npt.NDArray[np.bool_]) -> float:  # fmt: skip
    for i in range(len(rows)):
        prefetch(a, rows[i])
        prefetch(b, rows[i])
        prefetch(c, rows[i])
    total = 0.0
    for i in range(len(rows)):
        r = rows[i]
        if 0 <= r < len(a):
            total += a[r] + b[r] + c[r]
    return total


def test_prefetch_changes_nothing_and_reads_nothing_outside() -> None:
    # Arrange: million-row columns of the kernels' dtypes, rows in and far outside them
    rng = np.random.default_rng(3)
    a = rng.normal(size=1_000_000)
    b = rng.integers(-3, 3, 1_000_000).astype(np.int8)
    c = rng.random(1_000_000) < 0.5
    before = (a.copy(), b.copy(), c.copy())
    rows = np.concatenate([rng.integers(0, 1_000_000, 500), [-5, 10**6, 2 * 10**6]])

    # Act
    got = _prefetch_then_sum(rows.astype(np.int64), a, b, c)

    # Assert: the sum of the rows inside, in order, and the columns untouched
    inside = rows[(rows >= 0) & (rows < 1_000_000)]
    want = 0.0
    for r in inside.tolist():
        want += float(a[r]) + float(b[r]) + float(c[r])
    assert got == want
    for x, y in zip((a, b, c), before, strict=True):
        assert np.array_equal(x, y)
