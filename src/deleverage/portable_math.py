"""Exponentials, logarithms and powers whose results do not depend on the CPU.

NumPy picks the loop of ``np.exp``, ``np.log``, ``np.expm1``, ``np.log1p`` and ``np.power``
by the CPU it runs on: on a CPU with AVX-512 (``X86_V4``; most Intel Xeons) it takes its own
vectorized approximations, elsewhere (AVX2 only: AMD Zen 3, older Intel) the C library's
functions, and the two differ in the last bit for some inputs (numpy/numpy#23523). A seeded run
that draws its populations with ``np.exp`` then gives other positions, other liquidation prices
and another result hash on each machine type: the README's run hashed differently on an Intel
Xeon and an AMD EPYC of the same configuration.

These functions evaluate the C library's function element by element in a compiled loop
(numba lowers ``math.exp`` and its kin to calls of the process's libm, never to NumPy's
loops), so a seed gives the same numbers on every x86-64 machine with the same C library. The
simulator, the protocols' populations and the analytics call these instead of NumPy's
(tests/architecture/test_cpu_independent_math.py keeps it so); inside compiled kernels
``math.*`` and ``np.*`` already lower to libm. Intel's SVML, which numba would use for
vectorized loops where it is installed, is switched off by :mod:`deleverage._kernel_cache` for
the same reason.

Semantics are NumPy's ufuncs' for float64 (no exceptions: ``log(0) = -inf``, ``log(-1) = nan``,
``exp`` overflows to ``inf``): inputs are converted to float64 and broadcast; the result is an
array of the broadcast shape, or a ``np.float64`` where every input is a scalar; ``out``, where
given, receives the result (an array of that shape) and is returned.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt
from numba import njit

FloatArray = npt.NDArray[np.float64]


@njit(cache=True)
def _exp_nb(x: FloatArray, out: FloatArray) -> None:
    for i in range(len(x)):
        out[i] = math.exp(x[i])


@njit(cache=True)
def _log_nb(x: FloatArray, out: FloatArray) -> None:
    for i in range(len(x)):
        v = x[i]
        # libm's log: -inf at 0, nan below (math.log in a kernel does not raise).
        out[i] = math.log(v) if v > 0.0 else (-math.inf if v == 0.0 else math.nan)


@njit(cache=True)
def _expm1_nb(x: FloatArray, out: FloatArray) -> None:
    for i in range(len(x)):
        out[i] = math.expm1(x[i])


@njit(cache=True)
def _log1p_nb(x: FloatArray, out: FloatArray) -> None:
    for i in range(len(x)):
        v = x[i]
        out[i] = math.log1p(v) if v > -1.0 else (-math.inf if v == -1.0 else math.nan)


@njit(cache=True)
def _power_nb(x: FloatArray, y: FloatArray, out: FloatArray) -> None:
    for i in range(len(x)):
        out[i] = x[i] ** y[i]


def _finish(out: FloatArray, shape: tuple[int, ...], dest: FloatArray | None) -> Any:
    if dest is not None:
        dest[...] = out.reshape(shape)
        return dest
    return out[0] if shape == () else out.reshape(shape)


def _unary(
    kernel: Callable[[FloatArray, FloatArray], None], x: npt.ArrayLike, dest: FloatArray | None
) -> Any:
    a = np.asarray(x, dtype=np.float64)
    flat = np.ascontiguousarray(a).reshape(-1)
    out = np.empty(flat.shape, dtype=np.float64)
    kernel(flat, out)
    return _finish(out, a.shape, dest)


def exp(x: npt.ArrayLike, out: FloatArray | None = None) -> Any:
    """``e ** x`` element-wise, by libm's ``exp``."""
    return _unary(_exp_nb, x, out)


def log(x: npt.ArrayLike, out: FloatArray | None = None) -> Any:
    """The natural logarithm element-wise, by libm's ``log`` (``-inf`` at 0, nan below)."""
    return _unary(_log_nb, x, out)


def expm1(x: npt.ArrayLike, out: FloatArray | None = None) -> Any:
    """``e ** x - 1`` element-wise, by libm's ``expm1``."""
    return _unary(_expm1_nb, x, out)


def log1p(x: npt.ArrayLike, out: FloatArray | None = None) -> Any:
    """``log(1 + x)`` element-wise, by libm's ``log1p`` (``-inf`` at -1, nan below)."""
    return _unary(_log1p_nb, x, out)


def power(x: npt.ArrayLike, y: npt.ArrayLike, out: FloatArray | None = None) -> Any:
    """``x ** y`` element-wise (broadcast), by libm's ``pow``."""
    a, b = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    shape = np.broadcast_shapes(a.shape, b.shape)
    flat_a, flat_b = (
        np.ascontiguousarray(v if v.shape == shape else np.broadcast_to(v, shape).copy()).reshape(
            -1
        )
        for v in (a, b)
    )
    result = np.empty(flat_a.shape, dtype=np.float64)
    _power_nb(flat_a, flat_b, result)
    return _finish(result, shape, out)


#: NumPy's ``array ** exponent`` takes these ufuncs for a scalar exponent instead of ``pow``
#: (``fast_scalar_power``); each is exact (one rounding) on every CPU.
_FAST_POWERS: dict[float, Callable[[FloatArray], FloatArray]] = {
    1.0: np.positive,
    -1.0: np.reciprocal,
    0.0: np.ones_like,
    0.5: np.sqrt,
    2.0: np.square,
}


def array_power(x: npt.ArrayLike, y: npt.ArrayLike) -> Any:
    """``x ** y`` as NumPy's operator computes it for an array ``x``: a scalar ``y`` of 1,
    -1, 0, 0.5 or 2 takes a copy, the reciprocal, ones, the square root or the square (which
    differ from ``pow`` in the last bit for some inputs), any other :func:`power`."""
    a = np.asarray(x, dtype=np.float64)
    b = np.asarray(y, dtype=np.float64)
    if b.ndim == 0:
        fast = _FAST_POWERS.get(float(b))
        if fast is not None:
            out = fast(a)
            return out[()] if out.ndim == 0 else out
    return power(a, b)


def warm_up() -> None:
    """Compile (or load) the loops once."""
    one = np.ones(1)
    for kernel in (_exp_nb, _log_nb, _expm1_nb, _log1p_nb):
        kernel(one, np.empty(1))
    _power_nb(one, one, np.empty(1))
