"""Monte Carlo hit probabilities and path generators, checked against closed forms."""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import pytest
from scipy import special, stats

from deleverage.analytics.first_passage import (
    SECONDS_PER_YEAR,
    FloatArray,
    bootstrap_paths,
    discrete_hit_probability,
    gbm_hit_probability,
    gbm_paths,
    mc_hit_probability,
    merton_jump_paths,
)
from deleverage.errors import ValidationError

DAY = 86_400.0


def _gbm_chunks(seed: int, *, n_chunks: int, chunk: int, **kwargs: float) -> Iterator[FloatArray]:
    rng = np.random.default_rng(seed)
    for _ in range(n_chunks):
        yield gbm_paths(100.0, n_paths=chunk, rng=rng, **kwargs)  # type: ignore[arg-type]


def test_gbm_monte_carlo_agrees_with_bgk_corrected_formula_within_its_interval() -> None:
    # Arrange: 20,000 GBM paths over one day, price checked every 5 minutes (288 steps).
    # The paths are monitored discretely, so the right closed form is the BGK-corrected one.
    mu, sigma, dt_s, n_steps = 0.1, 0.8, 300.0, 288
    barriers = np.array([96.0, 94.0, 104.0, 106.5])
    chunks = _gbm_chunks(
        13, n_chunks=4, chunk=5_000, mu=mu, sigma=sigma, dt_s=dt_s, n_steps=n_steps
    )

    # Act
    est = mc_hit_probability(chunks, barriers, confidence=0.99)
    discrete = discrete_hit_probability(100.0, barriers, mu, sigma, DAY, dt_s=dt_s)
    continuous = gbm_hit_probability(100.0, barriers, mu, sigma, DAY)

    # Assert: BGK inside the 99 % interval; the uncorrected formula, for the nearest barriers,
    # outside it (the correction is not cosmetic).
    assert est.n_paths == 20_000
    assert ((est.lower <= discrete) & (discrete <= est.upper)).all(), (est, discrete)
    assert continuous[0] > est.upper[0]
    assert continuous[2] > est.upper[2]


def test_wilson_interval_matches_newcombe_worked_examples() -> None:
    # Newcombe (1998), "Two-sided confidence intervals for the single proportion", Statistics
    # in Medicine 17:857-872, Table II, method 3 (Wilson score): 81/263 -> 0.2553-0.3662,
    # 15/148 -> 0.0624-0.1605, 0/20 -> 0-0.1611, 1/29 -> 0.0061-0.1718.
    cases = [(81, 263, 0.2553, 0.3662), (15, 148, 0.0624, 0.1605), (0, 20, 0.0, 0.1611)]
    cases.append((1, 29, 0.0061, 0.1718))
    for hits, n, low, high in cases:
        # One path per column: `hits` of them dip to 90, the rest stay at 100.
        paths = np.full((2, n), 100.0)
        paths[1, :hits] = 90.0
        est = mc_hit_probability(paths, 95.0)
        assert int(est.hits) == hits
        assert round(float(est.lower), 4) == low
        assert round(float(est.upper), 4) == high


def test_normal_interval_is_estimate_plus_minus_z_standard_errors() -> None:
    paths = np.full((2, 400), 100.0)
    paths[1, :100] = 80.0
    est = mc_hit_probability(paths, 90.0, interval="normal", confidence=0.95)
    half = 1.959963984540054 * math.sqrt(0.25 * 0.75 / 400)
    assert float(est.standard_error) == pytest.approx(math.sqrt(0.25 * 0.75 / 400))
    assert float(est.lower) == pytest.approx(0.25 - half)
    assert float(est.upper) == pytest.approx(0.25 + half)


def test_chunked_paths_give_the_same_estimate_as_one_array() -> None:
    paths = gbm_paths(
        100.0, mu=0.0, sigma=0.5, dt_s=60.0, n_steps=50, n_paths=300, rng=np.random.default_rng(3)
    )
    whole = mc_hit_probability(paths, [99.0, 101.0])
    parts = mc_hit_probability([paths[:, :100], paths[:, 100:]], [99.0, 101.0])
    np.testing.assert_array_equal(whole.hits, parts.hits)
    np.testing.assert_array_equal(whole.lower, parts.lower)


def test_explicit_direction_counts_touches_on_the_given_side() -> None:
    paths = np.array([[100.0, 100.0], [102.0, 97.0], [99.0, 103.0]])
    down = mc_hit_probability(paths, 99.5, direction="down")
    up = mc_hit_probability(paths, 99.5, direction="up")
    assert int(down.hits) == 2  # both paths go below 99.5
    assert int(up.hits) == 2  # both start above 99.5


def test_inferring_direction_needs_a_common_start() -> None:
    paths = np.array([[100.0, 101.0], [90.0, 95.0]])
    with pytest.raises(ValidationError):
        mc_hit_probability(paths, 92.0)
    assert int(mc_hit_probability(paths, 92.0, direction="down").hits) == 1


@pytest.mark.parametrize(
    ("paths", "kwargs"),
    [
        (np.full(5, 100.0), {}),
        (np.full((3, 2), np.nan), {}),
        (np.full((3, 2), 100.0), {"confidence": 1.0}),
        (np.full((3, 2), 100.0), {"interval": "exact"}),
        ([], {}),
    ],
)
def test_bad_monte_carlo_input_raises_validation_error(
    paths: object, kwargs: dict[str, object]
) -> None:
    with pytest.raises(ValidationError):
        mc_hit_probability(paths, 90.0, **kwargs)  # type: ignore[arg-type]


def _merton_terminal_cdf(
    s0: float, k: float, mu: float, sigma: float, lam: float, m: float, s: float, t: float
) -> float:
    """P(S_T <= k) under Merton (1976): a Poisson mixture of log-normals.

    Given ``N = n`` jumps, ``ln(S_T/s0) ~ N((mu - sigma^2/2 - lam kappa) T + n m,
    sigma^2 T + n s^2)`` with ``kappa = exp(m + s^2/2) - 1`` (Merton 1976, eq. 16).
    """
    kappa = math.exp(m + 0.5 * s * s) - 1.0
    total = 0.0
    for n in range(80):
        weight = stats.poisson.pmf(n, lam * t)
        mean = (mu - 0.5 * sigma**2 - lam * kappa) * t + n * m
        sd = math.sqrt(sigma**2 * t + n * s * s)
        total += weight * special.ndtr((math.log(k / s0) - mean) / sd)
    return total


def test_merton_paths_have_the_merton_terminal_distribution_and_mean() -> None:
    # Arrange: frequent jumps (50 a year, mean log size -5 %) over a week, hourly steps.
    params = {"mu": 0.1, "sigma": 0.6, "jump_intensity": 50.0, "jump_mean": -0.05}
    params["jump_std"] = 0.05
    t = 7 * DAY / SECONDS_PER_YEAR
    rng = np.random.default_rng(5)

    # Act
    paths = merton_jump_paths(100.0, dt_s=3600.0, n_steps=168, n_paths=20_000, rng=rng, **params)
    final = paths[-1]

    # Assert: terminal CDF at two strikes within the 99 % Wilson interval, and the martingale
    # compensator makes E[S_T] = s0 e^{mu T} (within 4 standard errors).
    assert paths.shape == (169, 20_000)
    assert (paths[0] == 100.0).all()
    for strike in (90.0, 105.0):
        expected = _merton_terminal_cdf(
            100.0, strike, 0.1, 0.6, 50.0, -0.05, 0.05, t
        )  # closed form
        as_paths = np.vstack([np.full(final.size, 1e9), final])  # "hit" = final <= strike
        est = mc_hit_probability(as_paths, strike, direction="down", confidence=0.99)
        assert float(est.lower) <= expected <= float(est.upper)
    stderr = final.std(ddof=1) / math.sqrt(final.size)
    assert abs(final.mean() - 100.0 * math.exp(0.1 * t)) < 4.0 * stderr


def test_merton_without_jumps_is_exactly_gbm_with_the_same_seed() -> None:
    kwargs = {"mu": 0.2, "sigma": 0.7, "dt_s": 60.0, "n_steps": 30, "n_paths": 50}
    a = gbm_paths(100.0, rng=np.random.default_rng(9), **kwargs)  # type: ignore[arg-type]
    b = merton_jump_paths(
        100.0,
        jump_intensity=0.0,
        jump_mean=-0.1,
        jump_std=0.1,
        rng=np.random.default_rng(9),
        **kwargs,  # type: ignore[arg-type]
    )
    np.testing.assert_array_equal(a, b)


def test_same_seed_gives_identical_paths() -> None:
    kwargs = {"mu": 0.0, "sigma": 0.7, "jump_intensity": 20.0, "jump_mean": -0.1, "jump_std": 0.1}
    a = merton_jump_paths(
        100.0, dt_s=60.0, n_steps=30, n_paths=50, rng=np.random.default_rng(4), **kwargs
    )
    b = merton_jump_paths(
        100.0, dt_s=60.0, n_steps=30, n_paths=50, rng=np.random.default_rng(4), **kwargs
    )
    np.testing.assert_array_equal(a, b)


def test_bootstrap_of_two_point_returns_matches_random_walk_reflection_principle() -> None:
    # Arrange: resampling log returns {+a, -a} with replacement gives a simple symmetric random
    # walk in log price. Reflection principle (Feller 1968, *An Introduction to Probability
    # Theory*, vol. I, §III.1-III.2): P(min_{j<=n} S_j <= -r) = P(S_n <= -r) + P(S_n < -r),
    # with S_n = 2U - n, U ~ Binomial(n, 1/2).
    a, n, r = 0.01, 100, 6
    u = stats.binom(n, 0.5)
    expected = u.cdf((n - r) // 2) + u.cdf((n - r - 1) // 2)  # S_n <= -6, S_n <= -8
    rng = np.random.default_rng(21)

    # Act: barrier half a step above -r * a, so touching it means S_j <= -r.
    paths = bootstrap_paths(100.0, [a, -a], n_steps=n, n_paths=20_000, rng=rng)
    est = mc_hit_probability(paths, 100.0 * math.exp(-(r - 0.5) * a), confidence=0.99)

    # Assert
    assert float(est.lower) <= expected <= float(est.upper)


def test_block_bootstrap_copies_consecutive_runs_of_the_data() -> None:
    # Returns 0.001 * i make every increment identify its source index.
    data = 0.001 * np.arange(1, 31)
    paths = bootstrap_paths(
        50.0, data, n_steps=23, n_paths=40, rng=np.random.default_rng(2), block_length=5
    )
    index = np.rint(np.diff(np.log(paths), axis=0) / 0.001).astype(int) - 1  # (23, 40)
    assert index.min() >= 0
    assert index.max() <= 29
    for offset in range(0, 23, 5):
        block = index[offset : offset + 5]
        assert (np.diff(block, axis=0) == 1).all()  # consecutive inside a block


def test_circular_block_bootstrap_wraps_around_the_end() -> None:
    data = 0.001 * np.arange(1, 4)  # 3 returns, blocks of 3 may start at any of them
    paths = bootstrap_paths(
        1.0,
        data,
        n_steps=3,
        n_paths=200,
        rng=np.random.default_rng(8),
        block_length=3,
        circular=True,
    )
    index = np.rint(np.diff(np.log(paths), axis=0) / 0.001).astype(int) - 1
    starts = set(index[0].tolist())
    assert starts == {0, 1, 2}
    assert (np.diff(index, axis=0) % 3 == 1).all()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"block_length": 0},
        {"block_length": 4},
        {"n_steps": 0},
        {"n_paths": 1.5},
        {"rng": 42},
    ],
)
def test_bootstrap_rejects_bad_arguments(kwargs: dict[str, object]) -> None:
    args: dict[str, object] = {"n_steps": 5, "n_paths": 3, "rng": np.random.default_rng(0)}
    args.update(kwargs)
    with pytest.raises(ValidationError):
        bootstrap_paths(100.0, [0.01, -0.01, 0.0], **args)  # type: ignore[arg-type]
