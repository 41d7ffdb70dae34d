"""The compiled health-factor kernel (:mod:`deleverage.protocols.aave.health_nb`) gives the same
bits as the venue's NumPy form on any rows, and the issue's worked example."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from deleverage.protocols.aave.health_nb import health_rows_nb, under_rows_nb
from deleverage.protocols.aave.math import health_factor

_VALUES = st.one_of(st.just(0.0), st.floats(1e-6, 1e9))


def _numpy_form(c: np.ndarray, d: np.ndarray, weights: np.ndarray, p: np.ndarray) -> np.ndarray:
    # The venue's full-pass form (venue._health with every row, column by column).
    weighted = c[:, 0] * weights[0]
    owed = d[:, 0] * p[0]
    for r in range(1, c.shape[1]):
        weighted = weighted + c[:, r] * weights[r]
        owed = owed + d[:, r] * p[r]
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(owed > 0.0, weighted / np.where(owed > 0.0, owed, 1.0), np.inf)


@given(
    shape=st.tuples(st.integers(1, 40), st.integers(1, 4)),
    data=st.data(),
)
def test_the_kernel_gives_the_numpy_forms_bits(shape: tuple[int, int], data: st.DataObject) -> None:
    n, r = shape
    c = np.asfortranarray(data.draw(arrays(np.float64, shape, elements=_VALUES)))
    d = np.asfortranarray(data.draw(arrays(np.float64, shape, elements=_VALUES)))
    p = data.draw(arrays(np.float64, r, elements=st.floats(1e-3, 1e6)))
    lt = data.draw(arrays(np.float64, r, elements=st.sampled_from([0.0, 0.78, 0.83, 0.9])))
    weights = p * lt
    rows = np.array(data.draw(st.lists(st.integers(0, n - 1), max_size=60)), dtype=np.int64)
    got = health_rows_nb(c, d, rows, weights, p)
    np.testing.assert_array_equal(got, _numpy_form(c, d, weights, p)[rows])
    assert got.tobytes() == _numpy_form(c, d, weights, p)[rows].tobytes()


def test_the_issues_worked_example() -> None:
    # 10 ETH at 2,000 (LT 0.83) against 17,000 USDC: HF 0.9765 (docs/formulas.md §A1).
    c = np.asfortranarray([[10.0, 0.0]])
    d = np.asfortranarray([[0.0, 17_000.0]])
    p = np.array([2_000.0, 1.0])
    hf = health_rows_nb(c, d, np.array([0, 0]), p * np.array([0.83, 0.78]), p)
    assert hf.tolist() == [16_600.0 / 17_000.0] * 2
    np.testing.assert_allclose(hf, health_factor([20_000.0, 0.0], [0.83, 0.78], [0.0, 17_000.0]))


@settings(max_examples=200, deadline=None)
@given(
    shape=st.tuples(st.integers(1, 40), st.integers(1, 4)),
    data=st.data(),
)
def test_the_under_kernel_is_the_venues_filter_and_sort(
    shape: tuple[int, int], data: st.DataObject
) -> None:
    # The venue's former steps (_health of the candidates, then _under: HF < 1, most
    # distressed first, ties by account with np.lexsort); few distinct values make ties.
    n, r = shape
    few = st.sampled_from([0.0, 1.0, 2.0, 3.0])
    c = np.asfortranarray(data.draw(arrays(np.float64, shape, elements=st.one_of(few, _VALUES))))
    d = np.asfortranarray(data.draw(arrays(np.float64, shape, elements=st.one_of(few, _VALUES))))
    p = data.draw(arrays(np.float64, r, elements=st.sampled_from([1.0, 2.0, 1_000.0])))
    lt = data.draw(arrays(np.float64, r, elements=st.sampled_from([0.0, 0.5, 0.78, 1.0])))
    weights = p * lt
    rows = np.array(
        data.draw(st.lists(st.integers(0, n - 1), unique=True, max_size=n)), dtype=np.int64
    )
    hf = _numpy_form(c, d, weights, p)[rows]
    below = hf < 1.0
    want = rows[below][np.lexsort((rows[below], hf[below]))]
    np.testing.assert_array_equal(under_rows_nb(c, d, rows, weights, p), want)
