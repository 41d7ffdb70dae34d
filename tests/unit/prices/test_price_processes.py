"""Price processes against closed-form moments.

Every statistical test uses a fixed seed and a tolerance of a few standard errors, where the
standard error comes from the closed form (i.i.d. samples) or from batch means (serially
dependent samples: GARCH, Markov chains). The expected values are textbook results, not output
of the code under test:

- GBM: log returns ~ N((mu - sigma^2/2) dt, sigma^2 dt), E[S_t] = s0 e^{mu t}
  (Black and Scholes 1973; Glasserman 2003, §3.2).
- Merton (1976): E[S_t] = s0 e^{mu t} after compensation; the jump part of a step's log return
  has variance lambda dt (m^2 + s^2) (compound Poisson: lambda E[Y^2]).
- GARCH(1,1): unconditional variance omega / (1 - alpha - beta) (Bollerslev 1986, Theorem 1).
- Two-state Markov chain: pi_0 = p10 / (p01 + p10), and the time average of 1{state = 0} has
  asymptotic variance pi_0 pi_1 (1 + lam) / (1 - lam) / n, lam = 1 - p01 - p10
  (Hamilton 1994, ch. 22).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from deleverage.errors import ValidationError
from deleverage.prices import (
    SECONDS_PER_YEAR,
    garch11,
    garch11_omega,
    gbm,
    markov_chain,
    merton_jump_diffusion,
    regime_switching,
    shock_path,
    stationary_distribution,
    time_grid,
)

DAY_S = 86_400.0
YEAR_S = 365 * DAY_S  # documented year length


def _log_returns(path: np.ndarray) -> np.ndarray:
    return np.diff(np.log(path), axis=0)


def _batch_mean_se(samples: np.ndarray, n_batches: int = 200) -> float:
    """Standard error of the mean of serially dependent samples, by batch means."""
    usable = samples[: samples.size - samples.size % n_batches]
    means = usable.reshape(n_batches, -1).mean(axis=1)
    return float(means.std(ddof=1) / math.sqrt(n_batches))


# --------------------------------------------------------------------------------------------
# Year length and grid
# --------------------------------------------------------------------------------------------


def test_year_length_is_365_days_in_seconds() -> None:
    assert SECONDS_PER_YEAR == 31_536_000.0


def test_time_grid_is_k_times_dt() -> None:
    assert time_grid(0.5, 4).tolist() == [0.0, 0.5, 1.0, 1.5, 2.0]


# --------------------------------------------------------------------------------------------
# GBM
# --------------------------------------------------------------------------------------------


def test_gbm_log_returns_match_closed_form_mean_and_variance() -> None:
    # Arrange: 20 independent assets x 100 000 daily steps = 2e6 i.i.d. log returns.
    mu, sigma, dt_s = 0.5, 0.8, DAY_S
    dt = dt_s / YEAR_S
    rng = np.random.default_rng(20240611)

    # Act
    path = gbm(np.full(20, 100.0), mu, sigma, dt_s, 100_000, rng)
    r = _log_returns(path).ravel()

    # Assert
    n = r.size
    mean, var = (mu - sigma**2 / 2) * dt, sigma**2 * dt
    assert abs(r.mean() - mean) < 4 * math.sqrt(var / n)
    assert abs(r.var(ddof=1) - var) < 4 * var * math.sqrt(2 / (n - 1))
    # The Ito correction is 6.6 standard errors away from mu dt: the test can tell them apart.
    assert abs(mu * dt - mean) > 6 * math.sqrt(var / n)


def test_gbm_single_asset_has_one_dimension_and_starts_at_s0() -> None:
    path = gbm(250.0, 0.0, 0.6, 1.0, 1_000, np.random.default_rng(1))
    assert path.shape == (1_001,)
    assert path[0] == 250.0


def test_gbm_expected_terminal_price_is_s0_exp_mu_t() -> None:
    # Arrange: 100 000 independent assets, one year in 12 monthly steps.
    mu, sigma = 0.2, 0.7
    rng = np.random.default_rng(5)

    # Act
    terminal = gbm(np.full(100_000, 1.0), mu, sigma, YEAR_S / 12, 12, rng)[-1]

    # Assert
    se = terminal.std(ddof=1) / math.sqrt(terminal.size)
    assert abs(terminal.mean() - math.exp(mu)) < 4 * se


def test_gbm_with_zero_volatility_grows_deterministically() -> None:
    path = gbm(100.0, 0.1, 0.0, YEAR_S / 4, 4, np.random.default_rng(0))
    np.testing.assert_allclose(path, 100.0 * np.exp(0.1 * np.arange(5) / 4), rtol=1e-14)


def test_gbm_seconds_per_year_rescales_time() -> None:
    # A 252-day year makes one day 1/252 of a year.
    path = gbm(1.0, 0.252, 0.0, DAY_S, 1, np.random.default_rng(0), seconds_per_year=252 * DAY_S)
    assert path[1] == pytest.approx(math.exp(0.001), rel=1e-14)


# --------------------------------------------------------------------------------------------
# Merton jump diffusion
# --------------------------------------------------------------------------------------------


def test_merton_mean_matches_s0_exp_mu_t() -> None:
    # Arrange: 40 000 independent assets over 360 days in 30-day steps, jumps of about -14 %.
    mu, sigma, lam, m, s = 0.1, 0.3, 3.0, -0.15, 0.1
    t = 360 * DAY_S / YEAR_S
    rng = np.random.default_rng(76)

    # Act
    terminal = merton_jump_diffusion(
        np.full(40_000, 100.0), mu, sigma, lam, m, s, 30 * DAY_S, 12, rng
    )[-1]

    # Assert
    se = terminal.std(ddof=1) / math.sqrt(terminal.size)
    assert abs(terminal.mean() - 100.0 * math.exp(mu * t)) < 4 * se
    # Without the compensator the mean would be 100 e^{(mu + lam kappa) t}, 40 % lower.
    kappa = math.exp(m + s**2 / 2) - 1
    assert abs(100.0 * math.exp((mu + lam * kappa) * t) - 100.0 * math.exp(mu * t)) > 50 * se


def test_merton_common_jumps_keep_mean_s0_exp_mu_t() -> None:
    # Arrange: only common jumps, 4 000 independent one-asset runs.
    mu, lam_c, m_c, s_c = 0.05, 4.0, -0.2, 0.1
    rng = np.random.default_rng(11)

    # Act
    terminal = np.array(
        [
            merton_jump_diffusion(
                1.0,
                mu,
                0.2,
                0.0,
                0.0,
                0.0,
                YEAR_S / 4,
                4,
                rng,
                common_jump_intensity=lam_c,
                common_jump_mean=m_c,
                common_jump_std=s_c,
            )[-1]
            for _ in range(4_000)
        ]
    )

    # Assert
    se = terminal.std(ddof=1) / math.sqrt(terminal.size)
    assert abs(terminal.mean() - math.exp(mu)) < 4 * se


def test_merton_log_return_variance_adds_compound_poisson_variance() -> None:
    # Var[log return of a step] = sigma^2 dt + lam dt (m^2 + s^2).
    mu, sigma, lam, m, s = 0.0, 0.5, 20.0, -0.05, 0.08
    dt_s = DAY_S
    dt = dt_s / YEAR_S
    rng = np.random.default_rng(3)

    r = _log_returns(
        merton_jump_diffusion(np.full(10, 1.0), mu, sigma, lam, m, s, dt_s, 100_000, rng)
    ).ravel()

    expected = sigma**2 * dt + lam * dt * (m**2 + s**2)
    centered_sq = (r - r.mean()) ** 2
    se = centered_sq.std(ddof=1) / math.sqrt(r.size)
    assert abs(centered_sq.mean() - expected) < 5 * se


def test_merton_without_jumps_equals_gbm_drawn_from_the_same_seed() -> None:
    # With lambda = 0 the first draws (the diffusion shocks) are GBM's.
    merton = merton_jump_diffusion(100.0, 0.1, 0.5, 0.0, -0.1, 0.1, 60.0, 500, _rng(9))
    plain = gbm(100.0, 0.1, 0.5, 60.0, 500, _rng(9))
    np.testing.assert_allclose(merton, plain, rtol=1e-12)


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


# --------------------------------------------------------------------------------------------
# GARCH(1,1)
# --------------------------------------------------------------------------------------------


def test_garch_unconditional_variance_is_omega_over_one_minus_alpha_minus_beta() -> None:
    # Arrange
    omega, alpha, beta = 1e-5, 0.1, 0.8
    unconditional = omega / (1 - alpha - beta)  # 1e-4 (Bollerslev 1986)

    # Act
    r = _log_returns(garch11(100.0, omega, alpha, beta, 60.0, 400_000, _rng(1986)))

    # Assert
    centered_sq = (r - r.mean()) ** 2
    assert abs(centered_sq.mean() - unconditional) < 5 * _batch_mean_se(centered_sq)


def test_garch_returns_cluster_squared_returns_are_autocorrelated() -> None:
    r = _log_returns(garch11(100.0, 1e-6, 0.15, 0.8, 60.0, 100_000, _rng(2)))
    sq = r**2 - (r**2).mean()
    lag1 = float((sq[1:] * sq[:-1]).mean() / (sq * sq).mean())
    assert lag1 > 0.1  # i.i.d. returns would give about 0 (se ~ 0.003)


def test_garch_omega_helper_targets_annual_volatility() -> None:
    omega = garch11_omega(0.8, 0.1, 0.85, 60.0)
    assert omega / (1 - 0.95) == pytest.approx(0.8**2 * 60.0 / YEAR_S, rel=1e-14)


@pytest.mark.parametrize(("alpha", "beta"), [(0.2, 0.8), (0.5, 0.6), (1.0, 0.0)])
def test_garch_rejects_non_stationary_coefficients(alpha: float, beta: float) -> None:
    with pytest.raises(ValidationError, match=r"`alpha \+ beta` must be < 1"):
        garch11(100.0, 1e-6, alpha, beta, 60.0, 10, _rng(0))


def test_garch_rejects_negative_alpha_naming_it() -> None:
    with pytest.raises(ValidationError, match=re.escape("`alpha` must be >= 0, was -0.1")):
        garch11(100.0, 1e-6, -0.1, 0.5, 60.0, 10, _rng(0))


# --------------------------------------------------------------------------------------------
# Regime switching
# --------------------------------------------------------------------------------------------

P_TWO_STATE = np.array([[0.99, 0.01], [0.03, 0.97]])  # p01 = 0.01, p10 = 0.03


def test_stationary_distribution_of_two_states_matches_closed_form() -> None:
    # pi_0 = p10 / (p01 + p10) = 0.03 / 0.04 = 0.75
    np.testing.assert_allclose(stationary_distribution(P_TWO_STATE), [0.75, 0.25], atol=1e-12)


@given(st.lists(st.lists(st.floats(0.01, 1.0), min_size=4, max_size=4), min_size=4, max_size=4))
def test_stationary_distribution_is_invariant_under_the_chain(rows: list[list[float]]) -> None:
    p = np.array(rows)
    p /= p.sum(axis=1, keepdims=True)
    pi = stationary_distribution(p)
    np.testing.assert_allclose(pi @ p, pi, atol=1e-10)
    assert pi.sum() == pytest.approx(1.0)
    assert (pi >= 0).all()


def test_stationary_distribution_of_an_absorbing_regime_is_that_regime() -> None:
    # One closed class ({1}): unique, all mass on the absorbing regime.
    np.testing.assert_allclose(stationary_distribution([[0.99, 0.01], [0.0, 1.0]]), [0.0, 1.0])


def test_stationary_distribution_of_several_closed_classes_is_refused() -> None:
    with pytest.raises(ValidationError, match="several closed classes"):
        stationary_distribution([[0.5, 0.5, 0.0], [0.5, 0.5, 0.0], [0.0, 0.0, 1.0]])


def test_markov_chain_time_share_matches_stationary_distribution() -> None:
    # Arrange
    n = 200_000
    lam = 1 - 0.01 - 0.03
    se = math.sqrt(0.75 * 0.25 * (1 + lam) / (1 - lam) / n)  # about 0.0068

    # Act
    states = markov_chain(P_TWO_STATE, n, _rng(1989))

    # Assert
    assert abs((states == 0).mean() - 0.75) < 4 * se


def test_markov_chain_transition_frequencies_match_matrix() -> None:
    p = np.array([[0.5, 0.3, 0.2], [0.1, 0.8, 0.1], [0.25, 0.25, 0.5]])
    states = markov_chain(p, 300_000, _rng(4))
    counts = np.zeros((3, 3))
    np.add.at(counts, (states[:-1], states[1:]), 1)
    freq = counts / counts.sum(axis=1, keepdims=True)
    se = np.sqrt(p * (1 - p) / counts.sum(axis=1, keepdims=True))
    assert (np.abs(freq - p) < 5 * se).all()


def test_markov_chain_starts_in_the_given_state() -> None:
    states = markov_chain(P_TWO_STATE, 5, _rng(0), initial_state=1)
    assert states[0] == 1
    assert states.shape == (5,)


def test_regime_switching_return_variance_is_the_stationary_mixture() -> None:
    # Arrange: calm (sigma 0.4) and stressed (sigma 1.2, drift -1) regimes, daily steps.
    regimes = [(0.0, 0.4), (-1.0, 1.2)]
    dt = DAY_S / YEAR_S
    pi = np.array([0.75, 0.25])
    drifts = np.array([(m - s**2 / 2) * dt for m, s in regimes])
    expected = float(pi @ (np.array([s for _, s in regimes]) ** 2 * dt))
    expected += float(pi @ drifts**2 - (pi @ drifts) ** 2)  # variance of the regime drift

    # Act
    r = _log_returns(regime_switching(100.0, regimes, P_TWO_STATE, DAY_S, 400_000, _rng(57)))

    # Assert
    centered_sq = (r - r.mean()) ** 2
    assert abs(centered_sq.mean() - expected) < 5 * _batch_mean_se(centered_sq)


def test_regime_switching_follows_a_given_state_path() -> None:
    # Regime 1 has no volatility: the price grows exactly with its drift in those steps.
    states = np.array([1, 1, 0, 1])
    path = regime_switching(
        100.0, [(0.0, 0.9), (0.365, 0.0)], P_TWO_STATE, DAY_S, 4, _rng(0), states=states
    )
    assert path[1] == pytest.approx(100.0 * math.exp(0.001), rel=1e-14)
    assert path[2] == pytest.approx(100.0 * math.exp(0.002), rel=1e-14)
    assert path[4] / path[3] == pytest.approx(math.exp(0.001), rel=1e-14)


def test_regime_switching_rejects_state_outside_regimes() -> None:
    with pytest.raises(ValidationError, match=r"`states\[2\]` must be in \[0, 2\), was 5"):
        regime_switching(1.0, [(0, 0.1), (0, 0.2)], P_TWO_STATE, 1.0, 3, _rng(0), states=[0, 1, 5])


def test_transition_matrix_row_not_summing_to_one_is_rejected() -> None:
    with pytest.raises(ValidationError, match=r"`transition\[1\]` must sum to 1, was 0.9"):
        markov_chain([[0.5, 0.5], [0.4, 0.5]], 10, _rng(0))


# --------------------------------------------------------------------------------------------
# Shock path
# --------------------------------------------------------------------------------------------


def test_shock_path_linear_ramp_hand_computed() -> None:
    # 20 % drop from t = 10 s to t = 30 s, sampled every 5 s: 5 % per sample during the ramp.
    path = shock_path(100.0, 0.2, 10.0, 20.0, 5.0, 7)
    np.testing.assert_allclose(path, [100, 100, 100, 95, 90, 85, 80, 80], rtol=1e-15)


def test_shock_path_log_ramp_has_constant_log_return() -> None:
    path = shock_path(100.0, 0.19, 0.0, 2.0, 1.0, 2, shape="log")
    np.testing.assert_allclose(path, [100.0, 90.0, 81.0], rtol=1e-14)  # 0.81 = 0.9^2


def test_shock_path_with_zero_duration_gaps_down_right_after_start() -> None:
    path = shock_path(50.0, 0.5, 2.0, 0.0, 1.0, 4)
    np.testing.assert_allclose(path, [50.0, 50.0, 50.0, 25.0, 25.0])


def test_shock_path_rejects_total_drop() -> None:
    with pytest.raises(ValidationError, match="`drop_fraction` must be < 1"):
        shock_path(100.0, 1.0, 0.0, 1.0, 1.0, 3)


@given(
    drop=st.floats(0.0, 0.99),
    start=st.floats(0.0, 100.0),
    duration=st.floats(0.0, 100.0),
    shape=st.sampled_from(["linear", "log"]),
)
def test_shock_path_is_monotone_between_s0_and_bottom(
    drop: float, start: float, duration: float, shape: str
) -> None:
    path = shock_path(100.0, drop, start, duration, 1.0, 200, shape=shape)  # type: ignore[arg-type]
    assert path[0] == pytest.approx(100.0)
    assert path[-1] == pytest.approx(100.0 * (1 - drop))
    assert (np.diff(path) <= 1e-12).all()


# --------------------------------------------------------------------------------------------
# Reproducibility
# --------------------------------------------------------------------------------------------

GENERATORS: dict[str, Callable[[np.random.Generator], np.ndarray]] = {
    "gbm": lambda rng: gbm(
        [100.0, 10.0], 0.1, 0.9, 1.0, 500, rng, correlation=[[1, 0.3], [0.3, 1]]
    ),
    "merton": lambda rng: merton_jump_diffusion(
        [100.0, 10.0],
        0.1,
        0.9,
        50.0,
        -0.1,
        0.05,
        600.0,
        500,
        rng,
        common_jump_intensity=100.0,
        common_jump_mean=-0.2,
        common_jump_std=0.1,
    ),
    "garch": lambda rng: garch11(100.0, 1e-6, 0.1, 0.85, 1.0, 500, rng),
    "regime": lambda rng: regime_switching(100.0, [(0, 0.5), (-2, 2)], P_TWO_STATE, 60, 500, rng),
    "markov": lambda rng: markov_chain(P_TWO_STATE, 500, rng),
}


@pytest.mark.parametrize("name", sorted(GENERATORS))
def test_same_seed_gives_the_same_path(name: str) -> None:
    first = GENERATORS[name](np.random.default_rng(123))
    again = GENERATORS[name](np.random.default_rng(123))
    other = GENERATORS[name](np.random.default_rng(124))
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)


# --------------------------------------------------------------------------------------------
# Validation and shape properties
# --------------------------------------------------------------------------------------------


def test_non_positive_start_price_of_an_asset_is_named_with_its_index() -> None:
    with pytest.raises(ValidationError, match=r"`s0\[1\]` must be > 0, was 0.0"):
        gbm([100.0, 0.0], 0.0, 0.5, 1.0, 10, _rng(0))


def test_negative_volatility_is_rejected() -> None:
    with pytest.raises(ValidationError, match=re.escape("`sigma` must be >= 0, was -0.5")):
        gbm(100.0, 0.0, -0.5, 1.0, 10, _rng(0))


def test_per_asset_parameter_of_wrong_length_is_rejected() -> None:
    with pytest.raises(ValidationError, match="`mu` must be a number or a vector of one number"):
        gbm([1.0, 2.0, 3.0], [0.1, 0.2], 0.5, 1.0, 10, _rng(0))


def test_rng_must_be_a_generator() -> None:
    with pytest.raises(ValidationError, match=re.escape("`rng` must be a numpy.random.Generator")):
        gbm(100.0, 0.0, 0.5, 1.0, 10, 42)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("field", "kwargs"), [("dt_s", {"dt_s": 0.0}), ("n_steps", {"n_steps": -1})]
)
def test_time_arguments_are_checked(field: str, kwargs: dict[str, float]) -> None:
    args: dict[str, float] = {"dt_s": 1.0, "n_steps": 10, **kwargs}
    with pytest.raises(ValidationError, match=f"`{field}`"):
        gbm(100.0, 0.0, 0.5, args["dt_s"], int(args["n_steps"]), _rng(0))


def test_zero_steps_give_only_the_start_price() -> None:
    assert merton_jump_diffusion([1.0, 2.0], 0, 1, 1, 0, 0, 1.0, 0, _rng(0)).tolist() == [
        [1.0, 2.0]
    ]


@given(
    s0=st.floats(1e-6, 1e6),
    mu=st.floats(-5.0, 5.0),
    sigma=st.floats(0.0, 5.0),
    lam=st.floats(0.0, 1e4),
    jump_mean=st.floats(-0.5, 0.5),
    jump_std=st.floats(0.0, 0.5),
    n_steps=st.integers(0, 50),
    seed=st.integers(0, 2**32 - 1),
)
def test_merton_paths_are_positive_finite_and_shaped(
    s0: float,
    mu: float,
    sigma: float,
    lam: float,
    jump_mean: float,
    jump_std: float,
    n_steps: int,
    seed: int,
) -> None:
    path = merton_jump_diffusion(
        s0, mu, sigma, lam, jump_mean, jump_std, 3600.0, n_steps, np.random.default_rng(seed)
    )
    assert path.shape == (n_steps + 1,)
    assert path[0] == s0
    assert np.isfinite(path).all()
    assert (path > 0).all()
