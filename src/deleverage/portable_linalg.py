"""Matrix products and small factorizations whose results do not depend on the CPU.

NumPy's ``@``, ``np.dot`` and ``np.linalg`` call BLAS and LAPACK (OpenBLAS built with
``DYNAMIC_ARCH``), which pick a kernel by the CPU they run on: with fused multiply-adds on
Haswell, Zen and later, without on older cores, with AVX-512 on SkylakeX, each summing the
products in its own blocks. The same product then differs in the last bit between machine
types (on one AMD EPYC, ``OPENBLAS_CORETYPE=Sandybridge`` against the default changes a
``(10^5 x 6) @ 6`` product in most rows), and a cascade turns an ulp into other liquidations.

These functions compute in one fixed order with one rounding per operation: a product's
entry is ``((a_0 b_0 + a_1 b_1) + a_2 b_2) + ...``, each product rounded before it is added
(no fused multiply-add: numba without ``fastmath`` neither contracts nor reorders, which
tests/unit/test_portable_linalg.py checks bit for bit against Python floats). The small
factorizations (a correlation matrix's Cholesky factor or eigenvectors, a Markov chain's
stationary distribution) run as plain Python loops over a few rows. So a seed gives the same
numbers on every x86-64 machine (tests/architecture/test_cpu_independent_linalg.py keeps BLAS
out of the package and runs a correlated world under two OpenBLAS core types).

Semantics follow ``@`` for the shapes the package uses: ``matmul(a, b)`` with ``a`` of shape
``(..., m)`` and ``b`` of shape ``(m,)`` or ``(m, k)``; inputs are converted to float64.
"""

from __future__ import annotations

import math
from typing import Any, Final

import numpy as np
import numpy.typing as npt
from numba import njit

FloatArray = npt.NDArray[np.float64]


@njit(cache=True)
def _matvec_nb(a: FloatArray, x: FloatArray, out: FloatArray) -> None:
    n, m = a.shape
    for i in range(n):
        total = 0.0
        for j in range(m):
            total += a[i, j] * x[j]
        out[i] = total


@njit(cache=True)
def _matmat_nb(a: FloatArray, b: FloatArray, out: FloatArray) -> None:
    n, m = a.shape
    k_count = b.shape[1]
    for i in range(n):
        for k in range(k_count):
            total = 0.0
            for j in range(m):
                total += a[i, j] * b[j, k]
            out[i, k] = total


def matmul(a: npt.ArrayLike, b: npt.ArrayLike) -> Any:
    """``a @ b`` summed left to right over the shared axis, one rounding per operation.

    ``a`` has shape ``(..., m)`` (one dimension or more), ``b`` shape ``(m,)`` or ``(m, k)``;
    the result has shape ``a.shape[:-1]`` or ``a.shape[:-1] + (k,)`` (a ``np.float64`` where
    both are vectors), in the product of the units of ``a`` and ``b``.

    Examples
    --------
    >>> float(matmul([0.1, 0.2, 0.3], [1.0, 2.0, 3.0]))  # (0.1 + 0.4) + 0.9
    1.4
    """
    left = np.ascontiguousarray(a, dtype=np.float64)
    right = np.ascontiguousarray(b, dtype=np.float64)
    if left.ndim == 0 or right.ndim not in (1, 2) or left.shape[-1] != right.shape[0]:
        raise ValueError(f"matmul: shapes {left.shape} and {right.shape} do not align")
    rows = left.reshape(-1, left.shape[-1])
    if right.ndim == 1:
        out = np.empty(rows.shape[0], dtype=np.float64)
        _matvec_nb(rows, right, out)
        return out[0] if left.ndim == 1 else out.reshape(left.shape[:-1])
    result = np.empty((rows.shape[0], right.shape[1]), dtype=np.float64)
    _matmat_nb(rows, right, result)
    return result.reshape((*left.shape[:-1], right.shape[1]))


def cholesky(c: FloatArray) -> FloatArray | None:
    """Lower-triangular ``L`` with ``L L^T = C`` for a symmetric positive definite ``C``; None
    where ``C`` is not positive definite (a remainder under a square root ``<= 0``, as
    LAPACK's ``potrf`` reports it).

    The Cholesky-Banachiewicz recurrence row by row, each sum left to right:
    ``L[j][j] = sqrt(C[j][j] - sum_k<j L[j][k]^2)`` and
    ``L[i][j] = (C[i][j] - sum_k<j L[i][k] L[j][k]) / L[j][j]`` for ``i > j``.

    Not ``np.linalg.cholesky``: LAPACK's ``potrf`` sums through BLAS kernels chosen by the CPU,
    so its factor (and every correlated path drawn with it) could differ by an ulp between
    machine types. ``C`` is a correlation matrix of a few assets: a Python loop costs
    microseconds.
    """
    n = c.shape[0]
    rows = [[float(v) for v in row] for row in c]
    lower = [[0.0] * n for _ in range(n)]
    for i in range(n):
        for j in range(i + 1):
            total = rows[i][j]
            for k in range(j):
                total -= lower[i][k] * lower[j][k]
            if i > j:
                lower[i][j] = total / lower[j][j]
            elif total > 0.0:
                lower[i][i] = math.sqrt(total)
            else:
                return None
    return np.array(lower, dtype=np.float64).reshape(n, n)


#: Most cyclic Jacobi sweeps; a symmetric matrix of a few rows converges in under ten.
MAX_SWEEPS: Final[int] = 64


def symmetric_eigen(c: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Eigenvalues (ascending) and eigenvectors (columns) of a small symmetric ``C``:
    ``C = V diag(lambda) V^T``.

    Cyclic Jacobi (Golub and Van Loan 2013, *Matrix Computations*, §8.5): sweeps over the
    pairs ``p < q`` in row order, each rotation zeroing ``C[p][q]``, until every off-diagonal
    entry is below ``1e-15`` of its diagonal pair's scale (or :data:`MAX_SWEEPS`). Ties of equal
    eigenvalues keep their diagonal order.

    Not ``np.linalg.eigh``: LAPACK's ``syevd`` runs BLAS kernels chosen by the CPU. Used for the
    factor of a singular correlation matrix (a few rows).
    """
    n = c.shape[0]
    a = [[float(v) for v in row] for row in c]
    v = [[1.0 if i == j else 0.0 for j in range(n)] for i in range(n)]
    for _ in range(MAX_SWEEPS):
        rotated = False
        for p in range(n - 1):
            for q in range(p + 1, n):
                apq = a[p][q]
                if abs(apq) <= 1e-15 * math.sqrt(abs(a[p][p] * a[q][q])):
                    continue
                rotated = True
                tau = (a[q][q] - a[p][p]) / (2.0 * apq)
                root = math.sqrt(1.0 + tau * tau)
                t = 1.0 / (tau + root) if tau >= 0.0 else -1.0 / (root - tau)
                cos = 1.0 / math.sqrt(1.0 + t * t)
                sin = t * cos
                for k in range(n):  # columns p and q of A J
                    akp, akq = a[k][p], a[k][q]
                    a[k][p], a[k][q] = cos * akp - sin * akq, sin * akp + cos * akq
                for k in range(n):  # rows p and q of J^T (A J)
                    apk, aqk = a[p][k], a[q][k]
                    a[p][k], a[q][k] = cos * apk - sin * aqk, sin * apk + cos * aqk
                for k in range(n):
                    vkp, vkq = v[k][p], v[k][q]
                    v[k][p], v[k][q] = cos * vkp - sin * vkq, sin * vkp + cos * vkq
        if not rotated:
            break
    order = sorted(range(n), key=lambda i: a[i][i])
    values = np.array([a[i][i] for i in order], dtype=np.float64)
    vectors = np.array([[v[k][i] for i in order] for k in range(n)], dtype=np.float64)
    return values, vectors.reshape(n, n)


def solve(a: FloatArray, b: FloatArray, *, tiny: float = 0.0) -> FloatArray | None:
    """``x`` with ``a x = b`` for a small square ``a``, by Gaussian elimination with partial
    pivoting in a fixed order (the first row of largest ``|pivot|``); None if ``a`` is
    singular (a pivot of magnitude ``<= tiny``, in the units of ``a``).

    Not ``np.linalg.solve`` or ``lstsq``: LAPACK's ``getrf`` and ``gelsd`` run BLAS kernels
    chosen by the CPU; ``a`` here has a row per state of a Markov chain (a few).
    """
    n = a.shape[0]
    m = [[float(v) for v in row] + [float(r)] for row, r in zip(a, b, strict=True)]
    for j in range(n):
        pivot = max(range(j, n), key=lambda r: abs(m[r][j]))
        if abs(m[pivot][j]) <= tiny:
            return None
        m[j], m[pivot] = m[pivot], m[j]
        for r in range(j + 1, n):
            factor = m[r][j] / m[j][j]
            if factor != 0.0:
                for k in range(j, n + 1):
                    m[r][k] -= factor * m[j][k]
    x = [0.0] * n
    for j in range(n - 1, -1, -1):
        total = m[j][n]
        for k in range(j + 1, n):
            total -= m[j][k] * x[k]
        x[j] = total / m[j][j]
    return np.array(x, dtype=np.float64)


def warm_up() -> None:
    """Compile (or load) the product loops once."""
    matmul(np.ones((1, 1)), np.ones(1))
    matmul(np.ones((1, 1)), np.ones((1, 1)))
