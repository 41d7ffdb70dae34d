"""Compiled kernels of the price processes.

The recursions that cannot be vectorized (GARCH variance, Markov chain states, a push oracle's
observations) run here as numba ``@njit(cache=True)`` loops. The random ones take arrays of
random numbers drawn beforehand by the caller's :class:`numpy.random.Generator`, so a kernel
never touches a random state and the same draws always give the same output. Argument checking
happens in :mod:`deleverage.prices.processes` and :mod:`deleverage.prices.oracles`; a kernel
assumes valid input. The tests hold a plain-Python reference of each kernel and assert
that both agree.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, cast

import numpy as np
import numpy.typing as npt
from numba import njit

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

_F = TypeVar("_F", bound=Callable[..., Any])


def _njit(function: _F) -> _F:
    # numba is untyped for mypy: keep the decorated function's signature.
    return cast(_F, njit(cache=True)(function))


def _njit_numpy_errors(function: _F) -> _F:
    # As ``_njit``, with NumPy's float semantics: a division by zero gives inf or NaN.
    return cast(_F, njit(cache=True, error_model="numpy")(function))


@_njit
def garch11_log_returns_nb(
    shocks: FloatArray,
    omega: float,
    alpha: float,
    beta: float,
    initial_variance: float,
    drift_per_step: float,
) -> FloatArray:
    """Log returns of a GARCH(1,1) price, one per standard normal shock.

    ``eps_k = sqrt(h_k) z_k``, ``r_k = drift - h_k / 2 + eps_k``,
    ``h_{k+1} = omega + alpha eps_k^2 + beta h_k``, ``h_0 = initial_variance``.
    """
    n = shocks.shape[0]
    out = np.empty(n, dtype=np.float64)
    h = initial_variance
    for k in range(n):
        eps = np.sqrt(h) * shocks[k]
        out[k] = drift_per_step - 0.5 * h + eps
        h = omega + alpha * eps * eps + beta * h
    return out


@_njit
def markov_chain_nb(
    cumulative_transition: FloatArray, uniforms: FloatArray, initial_state: int
) -> IntArray:
    """States of a Markov chain: ``state[0] = initial_state``, then one step per uniform.

    ``state[k + 1]`` is the first ``j`` with ``uniforms[k] < cumulative_transition[state[k], j]``
    (inverse-CDF sampling of row ``state[k]``); the last column of ``cumulative_transition``
    must be exactly 1. ``uniforms`` holds one draw per transition, so the result has
    ``len(uniforms) + 1`` states.
    """
    n = uniforms.shape[0] + 1
    out = np.empty(n, dtype=np.int64)
    state = initial_state
    out[0] = state
    for k in range(n - 1):
        row = cumulative_transition[state]
        state = np.searchsorted(row, uniforms[k], side="right")
        out[k + 1] = state
    return out


@_njit_numpy_errors
def push_observations_nb(
    x: FloatArray, dt_s: float, heartbeat_s: float, deviation: float
) -> IntArray:
    """Steps at which a push oracle over ``x`` takes an observation (ascending).

    Step ``k`` (time ``k dt_s``, seconds) is observed when ``x[k]`` is not NaN and either no
    value was observed yet, ``heartbeat_s`` (less 1e-9 s) has passed since the last
    observation, or ``|x[k] / p - 1| >= deviation`` (``p`` the last observed value; a zero
    ``p`` gives IEEE ``inf`` or NaN, not an error).
    """
    n = x.shape[0]
    out = np.empty(n, dtype=np.int64)
    count = 0
    last_value, last_t = np.nan, -np.inf
    for k in range(n):
        v = x[k]
        if np.isnan(v):
            continue
        t = k * dt_s
        due = np.isnan(last_value) or t - last_t >= heartbeat_s - 1e-9
        if due or abs(v / last_value - 1.0) >= deviation:
            out[count] = k
            count += 1
            last_value, last_t = v, t
    return out[:count].copy()
