"""``numpy_sum_nb`` (engine/risk/numpy_sum.py) against NumPy's own ``np.sum``: the compiled
kernels report sums that the Python side used to take with ``np.sum``, and the results must
not move by one bit (pairwise summation, not a sum in order)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from deleverage.engine.risk.numpy_sum import numpy_sum_nb


def _same(a: np.ndarray) -> bool:
    return bool(np.float64(np.sum(a)).tobytes() == np.float64(numpy_sum_nb(a)).tobytes())


def test_every_length_up_to_600_and_some_longer() -> None:
    # Arrange: values over many magnitudes and both signs (a sum in order differs from
    # NumPy's pairwise sum on most of them), some all signed zeros
    rng = np.random.default_rng(20)
    lengths = [*range(600), 1_000, 1_031, 4_096, 10_007]
    for n in lengths:
        for trial in range(6):
            a = rng.standard_normal(n) * 10.0 ** rng.integers(-6, 9, n)
            if trial == 1:
                a = np.abs(a)
            if trial == 2 and n:
                a[rng.integers(0, n, max(1, n // 4))] = -0.0
            if trial == 3:
                a[:] = -0.0
            # Act and assert: bit for bit
            assert _same(a), (n, trial)


def test_a_sum_in_order_is_not_numpy_s() -> None:
    # The oracle is not vacuous: adding in order misses NumPy's figure on these values.
    a = np.array([1e16, 1.0, -1e16, 1.0, 3.0, 1e-3, 7.0, 1e15, 2.0, -1e15, 5.0])
    in_order = 0.0
    for v in a.tolist():
        in_order += v
    assert np.sum(a) != in_order
    assert _same(a)


@settings(max_examples=200, deadline=None)
@given(
    hnp.arrays(
        np.float64, st.integers(0, 300),
        elements=st.floats(allow_nan=False, allow_infinity=False, width=64),
    )
)  # fmt: skip
def test_any_finite_array(a: np.ndarray) -> None:
    with np.errstate(over="ignore", invalid="ignore"):
        assert _same(a)
