"""Closed-form first-passage probabilities: oracles, limits, symmetries, BGK correction."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import integrate, special

from deleverage.analytics.first_passage import (
    BGK_BETA,
    SECONDS_PER_YEAR,
    bgk_discrete_barrier,
    discrete_hit_probability,
    gbm_hit_probability,
)
from deleverage.errors import ValidationError

DAY = 86_400.0
WEEK = 7 * DAY


def _first_passage_density_oracle(
    s0: float, barrier: float, mu: float, sigma: float, horizon_s: float
) -> float:
    """P(hit by T) as the integral of the first-passage-time density of BM with drift.

    The first time Brownian motion with drift ``nu`` and volatility ``sigma`` reaches level
    ``b != 0`` has the inverse-Gaussian density ``|b| / (sigma sqrt(2 pi t^3))
    exp(-(b - nu t)^2 / (2 sigma^2 t))`` (Karatzas and Shreve 1991, *Brownian Motion and
    Stochastic Calculus*, §3.5.C; Borodin and Salminen 2002, Part II, Ch. 2). Its
    integral over ``(0, T]`` is the hit probability, computed here by quadrature, independently
    of the reflection formula under test.
    """
    b = math.log(barrier / s0)
    nu = mu - 0.5 * sigma**2
    t_end = horizon_s / SECONDS_PER_YEAR

    def density(t: float) -> float:
        return (
            abs(b)
            / (sigma * math.sqrt(2.0 * math.pi * t**3))
            * math.exp(-((b - nu * t) ** 2) / (2.0 * sigma**2 * t))
        )

    value, _ = integrate.quad(density, 0.0, t_end, limit=200, epsabs=1e-13, epsrel=1e-11)
    return value


@pytest.mark.parametrize(
    ("barrier", "mu", "sigma", "horizon_s"),
    [
        (90.0, 0.0, 0.8, WEEK),  # 10x-ish long, a week
        (96.0, 0.5, 0.6, DAY),  # 25x long, positive drift
        (80.0, -1.0, 1.2, 30 * DAY),  # falling market
        (110.0, 0.0, 0.8, WEEK),  # short
        (104.0, 2.0, 0.5, 3 * DAY),  # short against a rising market
        (120.0, -0.3, 0.9, 60 * DAY),
    ],
)
def test_closed_form_matches_integrated_first_passage_density(
    barrier: float, mu: float, sigma: float, horizon_s: float
) -> None:
    # Arrange
    expected = _first_passage_density_oracle(100.0, barrier, mu, sigma, horizon_s)

    # Act
    p = gbm_hit_probability(100.0, barrier, mu, sigma, horizon_s)

    # Assert
    assert float(p) == pytest.approx(expected, rel=1e-8, abs=1e-12)


def test_zero_log_drift_gives_twice_the_terminal_tail() -> None:
    # Reflection principle for driftless Brownian motion: P(min_{t<=T} W_t <= -c) =
    # 2 P(W_T <= -c) = 2 Phi(-c / (sigma sqrt T)) (Shreve 2004, vol. II, §3.7).
    sigma = 0.8
    mu = 0.5 * sigma**2  # log drift nu = 0
    t = WEEK / SECONDS_PER_YEAR
    c = math.log(100.0 / 88.0)
    expected = 2.0 * special.ndtr(-c / (sigma * math.sqrt(t)))

    p_down = gbm_hit_probability(100.0, 88.0, mu, sigma, WEEK)
    p_up = gbm_hit_probability(100.0, 100.0 * math.exp(c), mu, sigma, WEEK)

    assert float(p_down) == pytest.approx(expected, rel=1e-12)
    assert float(p_up) == pytest.approx(expected, rel=1e-12)


def test_barrier_at_start_price_is_hit_with_certainty() -> None:
    p = gbm_hit_probability(100.0, 100.0, 0.1, 0.8, WEEK)
    assert float(p) == 1.0


def test_barrier_next_to_start_price_is_hit_almost_surely() -> None:
    p = gbm_hit_probability(100.0, [100.0 * (1 - 1e-9), 100.0 * (1 + 1e-9)], 0.0, 0.8, WEEK)
    np.testing.assert_allclose(p, 1.0, atol=1e-6)


def test_vanishing_volatility_without_drift_never_hits() -> None:
    p = gbm_hit_probability(100.0, [[90.0], [110.0]], 0.0, [1e-3, 1e-6, 1e-12, 0.0], WEEK)
    assert p.shape == (2, 4)
    np.testing.assert_allclose(p, 0.0, atol=1e-300)


def test_zero_volatility_follows_the_deterministic_drift() -> None:
    # ln(S_T / s0) = mu T: -1.0 a year over 7 days is -1.92 %, enough for 98.5 but not 97.
    p = gbm_hit_probability(100.0, [98.5, 97.0], -1.0, 0.0, WEEK)
    assert p.tolist() == [1.0, 0.0]


def test_zero_horizon_and_unreachable_barriers_give_zero() -> None:
    assert float(gbm_hit_probability(100.0, 90.0, 0.0, 0.8, 0.0)) == 0.0
    assert gbm_hit_probability(100.0, [0.0, -5.0, np.inf], 0.0, 0.8, WEEK).tolist() == [0, 0, 0]


def test_long_horizon_with_favourable_drift_tends_to_power_law() -> None:
    # Running minimum of BM with positive drift nu: P(ever reach b < 0) = exp(2 nu b / sigma^2),
    # i.e. (H / s0)^(2 nu / sigma^2) (Karatzas and Shreve 1991, §3.5.C).
    mu, sigma = 1.0, 0.5
    nu = mu - 0.5 * sigma**2
    expected = (80.0 / 100.0) ** (2.0 * nu / sigma**2)

    p = gbm_hit_probability(100.0, 80.0, mu, sigma, 200 * SECONDS_PER_YEAR)

    assert float(p) == pytest.approx(expected, rel=1e-10)


def test_long_horizon_with_adverse_drift_hits_almost_surely() -> None:
    p = gbm_hit_probability(100.0, 80.0, -0.2, 0.5, 500 * SECONDS_PER_YEAR)
    assert float(p) == pytest.approx(1.0, abs=1e-10)


@given(
    distance=st.floats(0.001, 2.0),
    nu=st.floats(-3.0, 3.0),
    sigma=st.floats(0.05, 3.0),
    days=st.floats(0.01, 400.0),
)
def test_down_barrier_with_drift_equals_up_barrier_with_opposite_drift(
    distance: float, nu: float, sigma: float, days: float
) -> None:
    # X -> -X maps the minimum of BM with drift nu to the maximum of BM with drift -nu.
    mu_down = nu + 0.5 * sigma**2
    mu_up = -nu + 0.5 * sigma**2
    p_down = gbm_hit_probability(50.0, 50.0 * math.exp(-distance), mu_down, sigma, days * DAY)
    p_up = gbm_hit_probability(50.0, 50.0 * math.exp(distance), mu_up, sigma, days * DAY)
    assert float(p_down) == pytest.approx(float(p_up), rel=1e-9, abs=1e-14)


@given(
    barrier=st.floats(1.0, 99.9) | st.floats(100.1, 500.0),
    mu=st.floats(-5.0, 5.0),
    sigma=st.floats(0.0, 5.0),
    days=st.floats(0.0, 1000.0),
    extra_days=st.floats(0.0, 100.0),
)
def test_probability_is_in_unit_interval_and_grows_with_horizon(
    barrier: float, mu: float, sigma: float, days: float, extra_days: float
) -> None:
    p_short, p_long = gbm_hit_probability(
        100.0, barrier, mu, sigma, np.array([days, days + extra_days]) * DAY
    )
    assert 0.0 <= p_short <= p_long + 1e-12 <= 1.0 + 1e-12


@given(
    near=st.floats(0.001, 1.0),
    gap=st.floats(0.0, 1.0),
    mu=st.floats(-3.0, 3.0),
    sigma=st.floats(0.01, 3.0),
    days=st.floats(0.01, 365.0),
)
def test_probability_falls_as_the_barrier_moves_away(
    near: float, gap: float, mu: float, sigma: float, days: float
) -> None:
    far = near + gap
    down = gbm_hit_probability(100.0, 100.0 * np.exp([-near, -far]), mu, sigma, days * DAY)
    up = gbm_hit_probability(100.0, 100.0 * np.exp([near, far]), mu, sigma, days * DAY)
    assert down[0] >= down[1] - 1e-12
    assert up[0] >= up[1] - 1e-12


def test_vectorized_over_positions_matches_one_by_one() -> None:
    barriers = np.array([90.0, 95.0, 105.0, 120.0])
    sigmas = np.array([0.5, 0.8, 1.0, 0.3])
    together = gbm_hit_probability(100.0, barriers, 0.1, sigmas, WEEK)
    apart = [
        float(gbm_hit_probability(100.0, b, 0.1, s, WEEK))
        for b, s in zip(barriers, sigmas, strict=True)
    ]
    np.testing.assert_array_equal(together, apart)


def test_explicit_direction_counts_a_barrier_on_the_wrong_side_as_hit() -> None:
    # A long whose liquidation price is above the price is already liquidatable.
    p = gbm_hit_probability(100.0, [101.0, 99.0], 0.0, 0.8, WEEK, direction="down")
    assert float(p[0]) == 1.0
    assert 0.0 < float(p[1]) < 1.0
    short = gbm_hit_probability(100.0, 99.0, 0.0, 0.8, WEEK, direction=[1.0])
    assert short.tolist() == [1.0]


def test_extreme_parameters_stay_finite_and_raise_no_warnings() -> None:
    p = gbm_hit_probability(
        100.0,
        [99.0, 50.0, 101.0, 1e6],
        [-50.0, 50.0, 50.0, -50.0],
        [1e-140, 1e-3, 20.0, 1e-3],
        [WEEK, 100 * SECONDS_PER_YEAR, DAY, WEEK],
    )
    assert np.isfinite(p).all()
    assert p.tolist()[0] == 1.0  # deterministic fall of 13 % in a week reaches 99
    assert p.tolist()[3] == 0.0


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"s0": 0.0}, "s0"),
        ({"sigma": -0.1}, "sigma"),
        ({"horizon_s": -1.0}, "horizon_s"),
        ({"barrier": float("nan")}, "barrier"),
        ({"mu": float("inf")}, "mu"),
        ({"direction": "sideways"}, "direction"),
        ({"direction": [0.0]}, "direction"),
        ({"barrier": [90.0, 80.0], "sigma": [0.1, 0.2, 0.3]}, "arguments"),
    ],
)
def test_bad_arguments_raise_validation_error_naming_the_field(
    kwargs: dict[str, object], field: str
) -> None:
    args: dict[str, object] = {
        "s0": 100.0,
        "barrier": 90.0,
        "mu": 0.0,
        "sigma": 0.8,
        "horizon_s": WEEK,
    }
    args.update(kwargs)
    with pytest.raises(ValidationError) as info:
        gbm_hit_probability(**args)  # type: ignore[arg-type]
    assert info.value.field == field


def test_bgk_constant_is_minus_zeta_half_over_root_two_pi() -> None:
    # Broadie, Glasserman and Kou (1997), Theorem 1: beta = -zeta(1/2) / sqrt(2 pi) ~ 0.5826.
    assert pytest.approx(-special.zeta(0.5) / math.sqrt(2.0 * math.pi), rel=1e-15) == BGK_BETA
    assert round(BGK_BETA, 4) == 0.5826


def test_bgk_shifts_the_barrier_away_from_the_price() -> None:
    # Hourly monitoring at 80 % vol: shift factor exp(0.5826 * 0.8 * sqrt(3600 / 31_536_000)).
    factor = math.exp(0.5825971579390107 * 0.8 * math.sqrt(3600.0 / 31_536_000.0))
    down = bgk_discrete_barrier(90.0, 0.8, 3600.0, "down")
    up = bgk_discrete_barrier(110.0, 0.8, 3600.0, "up")
    mixed = bgk_discrete_barrier([90.0, 110.0], 0.8, 3600.0, [-1.0, 1.0])
    assert float(down) == pytest.approx(90.0 / factor, rel=1e-14)
    assert float(up) == pytest.approx(110.0 * factor, rel=1e-14)
    np.testing.assert_allclose(mixed, [90.0 / factor, 110.0 * factor], rtol=1e-14)


def test_bgk_with_continuous_monitoring_leaves_the_barrier_alone() -> None:
    assert float(bgk_discrete_barrier(90.0, 0.8, 0.0, "down")) == 90.0


def test_bgk_requires_a_direction() -> None:
    with pytest.raises(ValidationError):
        bgk_discrete_barrier(90.0, 0.8, 60.0, None)  # type: ignore[arg-type]


def test_discrete_monitoring_hits_less_often_and_converges_to_continuous() -> None:
    barriers = np.array([90.0, 112.0])
    continuous = gbm_hit_probability(100.0, barriers, 0.2, 0.8, WEEK)
    steps = [3600.0, 60.0, 1.0]
    discrete = [discrete_hit_probability(100.0, barriers, 0.2, 0.8, WEEK, dt_s=d) for d in steps]
    assert (discrete[0] < discrete[1]).all()
    assert (discrete[1] < discrete[2]).all()
    assert (discrete[2] < continuous).all()
    np.testing.assert_allclose(discrete[2], continuous, atol=2e-3)


def test_discrete_probability_counts_a_barrier_at_the_start_as_hit() -> None:
    p = discrete_hit_probability(100.0, [100.0, 100.5], 0.0, 0.8, WEEK, dt_s=3600.0)
    assert p[0] == 1.0
    assert p[1] < 1.0
