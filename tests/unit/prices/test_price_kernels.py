"""Compiled kernels against plain-Python references (STYLE rule 9).

Each reference is the textbook recursion written out as a loop, independent of the kernel.
"""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from deleverage.prices import SECONDS_PER_YEAR, garch11, markov_chain
from deleverage.prices.kernels import (
    garch11_log_returns_nb,
    markov_chain_nb,
    push_observations_nb,
)


def _garch_reference(
    z: list[float], omega: float, alpha: float, beta: float, h0: float, drift: float
) -> list[float]:
    out, h = [], h0
    for shock in z:
        eps = math.sqrt(h) * shock
        out.append(drift - h / 2 + eps)
        h = omega + alpha * eps**2 + beta * h
    return out


def _markov_reference(p: np.ndarray, uniforms: list[float], first: int) -> list[int]:
    states = [first]
    for u in uniforms:
        row, acc, nxt = p[states[-1]], 0.0, p.shape[0] - 1
        for j, prob in enumerate(row):
            acc += prob
            if u < acc:
                nxt = j
                break
        states.append(nxt)
    return states


@given(
    seed=st.integers(0, 2**32 - 1),
    alpha=st.floats(0.0, 0.5),
    beta=st.floats(0.0, 0.49),
    omega=st.floats(1e-8, 1e-3),
    drift=st.floats(-1e-3, 1e-3),
)
def test_garch_kernel_matches_python_reference(
    seed: int, alpha: float, beta: float, omega: float, drift: float
) -> None:
    z = np.random.default_rng(seed).standard_normal(200)
    h0 = omega / (1 - alpha - beta)
    expected = _garch_reference(z.tolist(), omega, alpha, beta, h0, drift)
    np.testing.assert_allclose(
        garch11_log_returns_nb(z, omega, alpha, beta, h0, drift), expected, rtol=1e-12, atol=0
    )


def test_garch_path_matches_reference_built_from_the_same_draws() -> None:
    # garch11 draws one standard normal per step, in order, and nothing else.
    omega, alpha, beta, mu, dt_s = 2e-6, 0.1, 0.85, 0.3, 60.0
    z = np.random.default_rng(77).standard_normal(1_000)
    returns = _garch_reference(
        z.tolist(), omega, alpha, beta, omega / 0.05, mu * dt_s / SECONDS_PER_YEAR
    )
    expected = 100.0 * np.exp(np.concatenate([[0.0], np.cumsum(returns)]))

    path = garch11(100.0, omega, alpha, beta, dt_s, 1_000, np.random.default_rng(77), mu=mu)

    np.testing.assert_allclose(path, expected, rtol=1e-12)


@given(
    seed=st.integers(0, 2**32 - 1),
    rows=st.lists(st.lists(st.floats(0.0, 1.0), min_size=3, max_size=3), min_size=3, max_size=3),
)
def test_markov_kernel_matches_python_reference(seed: int, rows: list[list[float]]) -> None:
    p = np.array(rows) + 1e-3
    p /= p.sum(axis=1, keepdims=True)
    cumulative = np.cumsum(p, axis=1)
    cumulative[:, -1] = 1.0
    u = np.random.default_rng(seed).random(300)
    got = markov_chain_nb(cumulative, u, 1)
    assert got.tolist() == _markov_reference(p, u.tolist(), 1)


def test_markov_chain_never_enters_a_state_with_zero_probability() -> None:
    p = np.array([[0.5, 0.5, 0.0], [0.5, 0.5, 0.0], [0.0, 0.0, 1.0]])
    states = markov_chain(p, 10_000, np.random.default_rng(0), initial_state=0)
    assert set(states.tolist()) == {0, 1}


def _push_reference(x: np.ndarray, dt_s: float, heartbeat_s: float, deviation: float) -> list[int]:
    """The push oracle's observations as ``oracles.push_feed`` took them in a Python loop."""
    obs: list[int] = []
    last_value, last_t = math.nan, -math.inf
    with np.errstate(divide="ignore", invalid="ignore"):
        for k in range(len(x)):
            v = x[k]
            if math.isnan(v):
                continue
            t = k * dt_s
            due = math.isnan(last_value) or t - last_t >= heartbeat_s - 1e-9
            if due or abs(v / last_value - 1.0) >= deviation:
                obs.append(k)
                last_value, last_t = v, t
    return obs


@given(
    seed=st.integers(0, 2**32 - 1),
    dt_s=st.sampled_from([0.5, 1.0, 3.0, 60.0]),
    heartbeat_s=st.sampled_from([0.0, 2.0, 2.0000000005, 10.0, 3600.0, math.inf]),
    deviation=st.sampled_from([0.0, 1e-4, 0.005, 0.05, math.inf]),
    holes=st.floats(0.0, 0.5),
    zeros=st.floats(0.0, 0.2),
)
def test_push_observations_kernel_matches_python_reference(
    seed: int, dt_s: float, heartbeat_s: float, deviation: float, holes: float, zeros: float
) -> None:
    # A drifting price with outages (NaN) and zero prints (a zero last value: inf or NaN moves).
    rng = np.random.default_rng(seed)
    x = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.003, 400)))
    x = np.where(rng.random(400) < zeros, 0.0, x)
    x = np.where(rng.random(400) < holes, np.nan, x)
    got = push_observations_nb(x, dt_s, heartbeat_s, deviation)
    assert got.dtype == np.int64
    assert got.tolist() == _push_reference(x, dt_s, heartbeat_s, deviation)
