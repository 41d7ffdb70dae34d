"""deleverage.portable_math: libm's functions element-wise, NumPy's ufunc semantics.

The oracle is Python's ``math`` module (the C library's functions, one value at a time), which
no CPU dispatch reaches; NumPy's own ufuncs agree with it only on CPUs without AVX-512.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deleverage import portable_math as pm


def _libm(fn, values):  # type: ignore[no-untyped-def]
    out = []
    for v in values:
        try:
            out.append(fn(v))
        except OverflowError:
            out.append(math.inf)
        except ValueError:
            out.append(-math.inf if v == 0.0 or v == -1.0 else math.nan)
    return np.array(out)


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    return bool(np.array_equal(a, b, equal_nan=True))


WIDE = np.concatenate(
    [
        np.random.default_rng(7).standard_normal(20_000) * 5.0,
        np.random.default_rng(8).uniform(-700.0, 700.0, 5_000),
        np.array([0.0, -0.0, 1e-300, -1e-300, 709.7, 710.0, -745.2, np.inf, -np.inf, np.nan]),
    ]
)


@pytest.mark.parametrize(
    ("fn", "oracle", "domain"),
    [
        (pm.exp, math.exp, WIDE),
        (pm.expm1, math.expm1, WIDE),
        (pm.log, math.log, np.abs(WIDE)),
        (pm.log1p, math.log1p, np.abs(WIDE)),
    ],
)
def test_each_value_is_libms(fn, oracle, domain) -> None:  # type: ignore[no-untyped-def]
    finite = domain[np.isfinite(domain)]
    assert _same(fn(finite), _libm(oracle, finite))


def test_special_values_follow_numpys_ufuncs() -> None:
    with np.errstate(all="ignore"):
        for fn, ref in ((pm.exp, np.exp), (pm.log, np.log), (pm.expm1, np.expm1)):
            special = np.array([0.0, -0.0, -1.0, -2.0, np.inf, -np.inf, np.nan, 1e308])
            assert _same(fn(special), ref(special)), fn.__name__
        special = np.array([-1.0, -2.0, 0.0, np.inf, np.nan])
        assert _same(pm.log1p(special), np.log1p(special))


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.floats(0.0, 1e6, allow_nan=False), min_size=1, max_size=50),
    st.floats(-4.0, 4.0, allow_nan=False),
)
def test_power_is_libms_pow(bases: list[float], exponent: float) -> None:
    def pow_c(b: float) -> float:  # C's pow: +inf where Python's raises (overflow, 0 ** -y)
        try:
            return math.pow(b, exponent)
        except (OverflowError, ValueError):
            return math.inf

    assert _same(pm.power(bases, exponent), np.array([pow_c(b) for b in bases]))


def test_array_power_takes_numpys_operator_shortcuts() -> None:
    x = np.random.default_rng(3).uniform(0.0, 100.0, 50_000)
    for e in (1.0, -1.0, 0.0, 0.5, 2.0):  # exact ufuncs, as NumPy's ``**`` takes them
        assert _same(pm.array_power(x, e), x ** np.asarray(e))
    # sqrt and pow differ in the last bit for some inputs: the shortcut is not cosmetic.
    assert not _same(np.sqrt(x), pm.power(x, 0.5))
    for e in (1.5, -0.5, 3.0):
        assert _same(pm.array_power(x, e), np.array([math.pow(v, e) for v in x]))


def test_shapes_scalars_and_out() -> None:
    grid = np.arange(6.0).reshape(2, 3)
    assert pm.exp(grid).shape == (2, 3)
    assert _same(pm.exp(grid.T), _libm(math.exp, grid.T.ravel()).reshape(3, 2))  # strided
    scalar = pm.log(2.0)
    assert isinstance(scalar, np.float64)
    assert scalar == math.log(2.0)
    out = np.empty((2, 3))
    assert pm.exp(grid, out=out) is out
    assert _same(out, pm.exp(grid))
    assert (
        pm.power(np.ones((2, 1)) * 2.0, np.array([1.0, 2.0, 3.0])).tolist() == [[2.0, 4.0, 8.0]] * 2
    )
    assert pm.exp(np.array([1, 2])).dtype == np.float64  # integers convert


def test_numba_is_kept_off_svml() -> None:
    import os

    from numba.core import config

    assert os.environ["NUMBA_DISABLE_INTEL_SVML"] == "1"
    assert not config.USING_SVML
