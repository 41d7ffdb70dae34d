"""deleverage.portable_linalg: products in a fixed order, small factorizations without LAPACK.

The oracle for the products is Python's float arithmetic, one rounding per operation and no
fused multiply-add, summed left to right: the compiled loops must match it bit for bit (numba
would differ if it contracted ``a * b + c`` into an FMA or reordered the sum).
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deleverage import portable_linalg as pla


def _python_matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Rows of ``a`` times columns of ``b`` with Python floats, left to right."""
    out = np.empty((a.shape[0], b.shape[1]))
    for i in range(a.shape[0]):
        for k in range(b.shape[1]):
            total = 0.0
            for j in range(a.shape[1]):
                total += float(a[i, j]) * float(b[j, k])
            out[i, k] = total
    return out


def _fma_sensitive(seed: int, n: int, m: int) -> tuple[np.ndarray, np.ndarray]:
    """Products whose sums cancel, where a fused multiply-add gives other bits."""
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((n, m)) * 10.0 ** rng.integers(-3, 4, (n, m))
    b = rng.standard_normal(m)
    a[:, -1] = -a[:, :-1] @ b[:-1] / b[-1]  # each row's sum nearly cancels
    return a, b


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matrix_vector_product_equals_python_floats_bit_for_bit(seed: int) -> None:
    a, b = _fma_sensitive(seed, 2_000, 5)

    got = pla.matmul(a, b)

    expected = _python_matmul(a, b[:, None])[:, 0]
    assert np.array_equal(got, expected)


def test_the_oracle_tells_a_fused_multiply_add_apart() -> None:
    # An FMA rounds a * b + c once (exact rationals, rounded once, here): on these rows it
    # differs from the product rounded first, so the bit-for-bit test above can fail.
    a, b = _fma_sensitive(0, 2_000, 2)
    fused = np.array([float(Fraction(r[1]) * Fraction(b[1]) + Fraction(r[0] * b[0])) for r in a])

    assert (pla.matmul(a, b) != fused).sum() > 100


@pytest.mark.parametrize("seed", [3, 4])
def test_matrix_product_equals_python_floats_bit_for_bit(seed: int) -> None:
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((300, 4)) * 1e3
    b = np.tril(rng.standard_normal((4, 4))).T  # a correlated path's w @ L^T, L transposed

    got = pla.matmul(a, b)

    assert np.array_equal(got, _python_matmul(a, b))
    np.testing.assert_allclose(got, a @ b, rtol=1e-12, atol=1e-9)


def test_shapes_follow_the_operator() -> None:
    rng = np.random.default_rng(5)
    cube, vector, square = rng.random((2, 3, 4)), rng.random(4), rng.random((4, 2))

    assert pla.matmul(cube, vector).shape == (2, 3)
    assert pla.matmul(cube, square).shape == (2, 3, 2)
    assert isinstance(pla.matmul(vector, vector), np.float64)
    assert pla.matmul(np.empty((0, 4)), vector).shape == (0,)
    np.testing.assert_allclose(pla.matmul(cube, square), cube @ square, rtol=1e-13)
    np.testing.assert_allclose(pla.matmul(np.asfortranarray(cube[0]), vector), cube[0] @ vector)
    with pytest.raises(ValueError, match="do not align"):
        pla.matmul(cube, rng.random(3))


CORRELATIONS = [
    np.array([[1.0, 0.6], [0.6, 1.0]]),
    np.array([[1.0, 0.8, 0.3], [0.8, 1.0, 0.5], [0.3, 0.5, 1.0]]),
    np.array([[1.0, -0.4, 0.2, 0.1], [-0.4, 1.0, 0.3, 0.0], [0.2, 0.3, 1.0, 0.7],
              [0.1, 0.0, 0.7, 1.0]]),
]  # fmt: skip


@pytest.mark.parametrize("c", CORRELATIONS, ids=lambda c: f"{len(c)}x{len(c)}")
def test_cholesky_matches_lapack_and_reproduces_the_matrix(c: np.ndarray) -> None:
    lower = pla.cholesky(c)

    assert lower is not None
    np.testing.assert_allclose(lower, np.linalg.cholesky(c), rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(pla.matmul(lower, lower.T), c, rtol=0, atol=3e-16)
    assert np.array_equal(lower, np.tril(lower))


def test_cholesky_of_a_singular_matrix_is_none() -> None:
    # Assets 0 and 1 perfectly correlated: rank 2, as LAPACK reports it.
    c = np.array([[1.0, 1.0, 0.5], [1.0, 1.0, 0.5], [0.5, 0.5, 1.0]])

    assert pla.cholesky(c) is None
    with pytest.raises(np.linalg.LinAlgError):
        np.linalg.cholesky(c)


@pytest.mark.parametrize("c", CORRELATIONS, ids=lambda c: f"{len(c)}x{len(c)}")
def test_eigen_matches_lapack(c: np.ndarray) -> None:
    values, vectors = pla.symmetric_eigen(c)

    np.testing.assert_allclose(values, np.linalg.eigvalsh(c), rtol=0, atol=1e-14)
    np.testing.assert_allclose(vectors @ np.diag(values) @ vectors.T, c, atol=1e-14)
    np.testing.assert_allclose(vectors.T @ vectors, np.eye(len(c)), atol=1e-14)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.floats(-3, 3), min_size=12, max_size=12))
def test_eigen_of_any_gram_matrix_reproduces_it(entries: list[float]) -> None:
    b = np.array(entries).reshape(4, 3)  # rank <= 3: a singular 4x4 matrix
    c = b @ b.T

    values, vectors = pla.symmetric_eigen(c)

    scale = max(float(np.abs(c).max()), 1.0)
    np.testing.assert_allclose(vectors @ np.diag(values) @ vectors.T, c, atol=1e-12 * scale)
    np.testing.assert_allclose(values, np.linalg.eigvalsh(c), atol=1e-12 * scale)
    assert list(values) == sorted(values)


def test_solve_matches_lapack_and_reports_a_singular_matrix() -> None:
    a = np.array([[2.0, 1.0, 0.0], [1.0, 3.0, 1.0], [0.0, 1.0, 4.0]])
    b = np.array([1.0, 2.0, 3.0])

    np.testing.assert_allclose(pla.solve(a, b), np.linalg.solve(a, b), rtol=1e-15)
    assert pla.solve(np.zeros((2, 2)), np.ones(2)) is None
    assert pla.solve(np.array([[1.0, 1.0], [1.0, 1.0 + 1e-15]]), b[:2], tiny=1e-12) is None
