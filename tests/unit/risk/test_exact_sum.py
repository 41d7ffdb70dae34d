"""``fsum_nb`` (engine/risk/exact_sum.py) against Python's ``math.fsum``: the batch round sums
the fund's rows in compiled code and the fund records the figure ``math.fsum`` gave the Python
path, so the two must not differ by one bit; where ``math.fsum`` would not give a finite sum
(an infinite or NaN value, an intermediate overflow) the kernel says so with NaN."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from deleverage.engine.risk.exact_sum import fsum_nb


def _bits(x: float) -> bytes:
    return np.float64(x).tobytes()


def _check(values: list[float], lo: int = 0, hi: int | None = None) -> None:
    a = np.array(values, dtype=np.float64)
    stop = len(values) if hi is None else hi
    try:
        expected = math.fsum(values[lo:stop])
    except (OverflowError, ValueError):
        expected = math.nan
    got = fsum_nb(a, lo, stop)
    if math.isfinite(expected):
        assert _bits(got) == _bits(expected), (values[lo:stop], got, expected)
    else:
        assert math.isnan(got), (values[lo:stop], got)


def test_random_arrays_over_many_magnitudes_and_the_rounding_cases() -> None:
    # Arrange: values over wide magnitudes, both signs, positive only (the fund's penalties),
    # cancellations, and CPython's half-even cases across partials
    rng = np.random.default_rng(13)
    for n in [*range(40), 55, 128, 511, 512]:
        for trial in range(8):
            a = rng.standard_normal(n) * 10.0 ** rng.integers(-20, 20, n)
            if trial % 2:
                a = np.abs(a)
            if trial == 2 and n > 1:
                a[1::2] = -a[::2][: len(a[1::2])]
            # Act and assert: bit for bit, and on a slice
            _check(a.tolist())
            _check(a.tolist(), n // 3, n - n // 4)
    for case in ([1e-16, 1.0, 1e16], [1e16, 1.0, 1e-16], [0.1] * 10, [1e308, 1e308, -1e308],
                 [1.0, math.inf], [math.nan, 1.0], [-0.0, -0.0], [], [2.0**-1074, 2.0**53, 1.0],
                 [2.0**53, 1.0, 2.0**-1074], [1e308, 1e308]):  # fmt: skip
        _check(case)


def test_a_sum_in_order_is_not_fsum() -> None:
    # The oracle is not vacuous: adding in order misses ``math.fsum``'s figure here.
    values = [0.1] * 10
    in_order = 0.0
    for v in values:
        in_order += v
    assert in_order != math.fsum(values)
    assert fsum_nb(np.array(values), 0, 10) == math.fsum(values)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.floats(allow_nan=True, allow_infinity=True), max_size=60))
def test_any_floats(values: list[float]) -> None:
    _check(values)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.floats(min_value=0.0, max_value=1e12, exclude_min=True), max_size=200))
def test_positive_amounts(values: list[float]) -> None:
    # The fund's penalty groups: amounts > 0, finite
    _check(values)
