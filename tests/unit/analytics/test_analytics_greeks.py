"""Greeks of liquidatable positions and sensitivities of the liquidation probability."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import special

from deleverage.analytics.first_passage import (
    SECONDS_PER_YEAR,
    FloatArray,
    bgk_discrete_barrier,
    gbm_hit_probability,
    gbm_paths,
    merton_jump_paths,
)
from deleverage.analytics.greeks import (
    hit_probability_sensitivities,
    knockout_forward_greeks,
    mc_knockout_forward_greeks,
)
from deleverage.errors import ValidationError

DAY = 86_400.0
WEEK = 7 * DAY


def _black_scholes(s: float, k: float, t: float, r: float, b: float, v: float, call: bool) -> float:
    """Generalized Black-Scholes with cost of carry ``b`` (Haug 1998, ch. 1)."""
    d1 = (math.log(s / k) + (b + 0.5 * v * v) * t) / (v * math.sqrt(t))
    d2 = d1 - v * math.sqrt(t)
    carry = math.exp((b - r) * t)
    if call:
        return s * carry * special.ndtr(d1) - k * math.exp(-r * t) * special.ndtr(d2)
    return k * math.exp(-r * t) * special.ndtr(-d2) - s * carry * special.ndtr(-d1)


@pytest.mark.parametrize(
    ("size", "strike", "barrier", "sigma", "haug_knock_in"),
    [
        # Down-and-in call, strike 90 below barrier 95: knocked-out part is a long forward.
        (1.0, 90.0, 95.0, 0.25, 7.7627),
        (1.0, 90.0, 95.0, 0.30, 9.0093),
        # Up-and-in put, strike 110 above barrier 105: knocked-out part is a short forward.
        (-1.0, 110.0, 105.0, 0.25, 7.0846),
        (-1.0, 110.0, 105.0, 0.30, 8.3686),
    ],
)
def test_knockout_forward_reproduces_haug_barrier_option_values(
    size: float, strike: float, barrier: float, sigma: float, haug_knock_in: float
) -> None:
    # Haug, *Option Pricing Formulas* (McGraw-Hill 1998), p. 72, standard barrier options with
    # S = 100, rebate 3, T = 0.5, r = 0.08, dividend yield 0.04 (carry b = 0.04); the same table
    # is the test data of QuantLib, test-suite/barrieroption.cpp, testHaugValues
    # (https://github.com/lballabio/QuantLib/blob/master/test-suite/barrieroption.cpp).
    # With the strike beyond the barrier, a surviving path always ends in the money, so the
    # knock-out option without rebate is our knock-out forward (drift b, R = 0) discounted, and
    # in-out parity gives: knock-in = vanilla - knock-out + rebate e^{-rT} P(never hit).
    r, b, t = 0.08, 0.04, 0.5
    horizon = t * SECONDS_PER_YEAR
    forward = knockout_forward_greeks(
        100.0,
        size=size,
        entry_price=strike,
        liquidation_price=barrier,
        sigma=sigma,
        horizon_s=horizon,
        mu=b,
        knockout_value=0.0,
    )
    p_hit = float(gbm_hit_probability(100.0, barrier, b, sigma, horizon))
    vanilla = _black_scholes(100.0, strike, t, r, b, sigma, call=size > 0)

    knock_in = (
        vanilla - math.exp(-r * t) * float(forward.value) + 3.0 * math.exp(-r * t) * (1.0 - p_hit)
    )

    assert knock_in == pytest.approx(haug_knock_in, abs=6e-5)


@given(
    size=st.floats(0.01, 50.0) | st.floats(-50.0, -0.01),
    entry=st.floats(50.0, 150.0),
    distance=st.floats(0.01, 0.5),
    sigma=st.floats(0.05, 2.0),
    days=st.floats(0.1, 60.0),
)
def test_driftless_position_without_penalty_is_linear_by_optional_stopping(
    size: float, entry: float, distance: float, sigma: float, days: float
) -> None:
    # With mu = 0 the price is a martingale; closing exactly at L stops it, so the value is
    # E[q (S_{tau ^ T} - E)] = q (S - E): delta = q, gamma = 0.
    liquidation = 100.0 * (1.0 - distance) if size > 0 else 100.0 * (1.0 + distance)
    g = knockout_forward_greeks(
        100.0,
        size=size,
        entry_price=entry,
        liquidation_price=liquidation,
        sigma=sigma,
        horizon_s=days * DAY,
    )
    scale = abs(size) * 100.0
    assert float(g.value) == pytest.approx(size * (100.0 - entry), abs=1e-9 * scale)
    assert float(g.delta) == pytest.approx(size, rel=1e-9)
    assert abs(float(g.gamma)) < 1e-9 * abs(size)


def test_penalty_makes_the_position_short_a_one_touch_binary() -> None:
    # Arrange: 10x long, 2 BTC at 100, liquidation price 90.5, the trader's whole collateral
    # (20) is lost: R = -20 whereas closing at L would give -19; penalty 1.
    q, pen = 2.0, 1.0
    g = knockout_forward_greeks(
        101.0,
        size=q,
        entry_price=100.0,
        liquidation_price=90.5,
        sigma=0.8,
        horizon_s=WEEK,
        knockout_value=-20.0,
    )
    sens = hit_probability_sensitivities(101.0, 90.5, 0.0, 0.8, WEEK)
    h = 1e-3
    p_up, p_mid, p_down = gbm_hit_probability([101.0 + h, 101.0, 101.0 - h], 90.5, 0.0, 0.8, WEEK)
    d2p = (p_up - 2.0 * p_mid + p_down) / h**2

    assert float(g.value) == pytest.approx(q * 1.0 - pen * float(sens.probability), rel=1e-12)
    assert float(g.delta) == pytest.approx(q - pen * float(sens.d_price), rel=1e-12)
    assert float(g.gamma) == pytest.approx(-pen * d2p, rel=1e-5)
    assert float(g.gamma) < 0.0


@pytest.mark.parametrize("mu", [0.0, 0.6, -0.9])
@pytest.mark.parametrize(
    ("size", "liquidation", "knockout_value"),
    [(1.0, 90.5, -10.0), (-2.0, 109.0, None), (3.0, 80.0, 5.0), (-0.5, 120.0, -12.0)],
)
def test_analytic_delta_and_gamma_match_finite_differences_of_the_value(
    mu: float, size: float, liquidation: float, knockout_value: float | None
) -> None:
    def value(spot: FloatArray) -> FloatArray:
        return knockout_forward_greeks(
            spot,
            size=size,
            entry_price=100.0,
            liquidation_price=liquidation,
            sigma=0.8,
            horizon_s=WEEK,
            mu=mu,
            knockout_value=knockout_value,
        ).value

    h = 1e-2
    v_down, v_mid, v_up = value(np.array([100.0 - h, 100.0, 100.0 + h]))
    g = knockout_forward_greeks(
        100.0,
        size=size,
        entry_price=100.0,
        liquidation_price=liquidation,
        sigma=0.8,
        horizon_s=WEEK,
        mu=mu,
        knockout_value=knockout_value,
    )

    assert float(g.value) == pytest.approx(v_mid, rel=1e-14)
    # Central differences: truncation O(h^2), rounding about 1e-16 |V| / h^2 for gamma.
    assert float(g.delta) == pytest.approx((v_up - v_down) / (2 * h), rel=1e-6)
    assert float(g.gamma) == pytest.approx((v_up - 2 * v_mid + v_down) / h**2, rel=1e-3, abs=1e-8)


@pytest.mark.parametrize("mu", [0.0, 0.7, -1.5])
@pytest.mark.parametrize("barrier", [88.0, 97.0, 103.0, 125.0])
def test_probability_sensitivities_match_finite_differences(mu: float, barrier: float) -> None:
    sens = hit_probability_sensitivities(100.0, barrier, mu, 0.8, WEEK)
    h = 1e-5
    p_price = gbm_hit_probability([100.0 + h, 100.0 - h], barrier, mu, 0.8, WEEK)
    p_sigma = gbm_hit_probability(100.0, barrier, mu, [0.8 + h, 0.8 - h], WEEK)

    assert float(sens.probability) == float(gbm_hit_probability(100.0, barrier, mu, 0.8, WEEK))
    assert float(sens.d_price) == pytest.approx((p_price[0] - p_price[1]) / (2 * h), rel=1e-6)
    assert float(sens.d_sigma) == pytest.approx((p_sigma[0] - p_sigma[1]) / (2 * h), rel=1e-6)


def test_probability_sensitivities_have_the_expected_signs() -> None:
    sens = hit_probability_sensitivities(100.0, [90.0, 110.0], 0.0, 0.8, WEEK)
    assert sens.d_price[0] < 0.0 < sens.d_price[1]  # long: higher price, safer
    assert (sens.d_sigma > 0.0).all()  # more volatility, more liquidations


def test_reached_and_unreachable_barriers_have_flat_sensitivities() -> None:
    sens = hit_probability_sensitivities(100.0, [101.0, 0.0], 0.0, 0.8, WEEK, direction="down")
    assert sens.probability.tolist() == [1.0, 0.0]
    assert sens.d_price.tolist() == [0.0, 0.0]
    assert sens.d_sigma.tolist() == [0.0, 0.0]


def test_liquidated_and_unliquidatable_positions_have_simple_greeks() -> None:
    g = knockout_forward_greeks(
        100.0,
        size=[1.0, -1.0, 1.0, -1.0],
        entry_price=95.0,
        liquidation_price=[100.0, 99.0, 0.0, np.inf],
        sigma=0.8,
        horizon_s=WEEK,
        mu=0.1,
        knockout_value=[-7.0, -3.0, 0.0, 0.0],
    )
    growth = math.exp(0.1 * WEEK / SECONDS_PER_YEAR)
    np.testing.assert_allclose(g.value, [-7.0, -3.0, 100 * growth - 95, -(100 * growth - 95)])
    np.testing.assert_allclose(g.delta, [0.0, 0.0, growth, -growth])
    np.testing.assert_array_equal(g.gamma, [0.0, 0.0, 0.0, 0.0])


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"sigma": 0.0}, "sigma"),
        ({"horizon_s": 0.0}, "horizon_s"),
        ({"spot": -1.0}, "spot"),
        ({"entry_price": float("nan")}, "entry_price"),
        ({"size": [1.0, 2.0], "sigma": [0.1, 0.2, 0.3]}, "arguments"),
    ],
)
def test_greeks_reject_bad_arguments(kwargs: dict[str, object], field: str) -> None:
    args: dict[str, object] = {
        "spot": 100.0,
        "size": 1.0,
        "entry_price": 100.0,
        "liquidation_price": 90.0,
        "sigma": 0.8,
        "horizon_s": WEEK,
    }
    args.update(kwargs)
    with pytest.raises(ValidationError) as info:
        knockout_forward_greeks(**args)  # type: ignore[arg-type]
    assert info.value.field == field


# Monte Carlo with common random numbers ----------------------------------------------------

SIGMA, N_STEPS = 0.8, 168
DT_S = WEEK / N_STEPS  # hourly monitoring over a week
POSITION = {"size": 1.0, "entry_price": 100.0, "liquidation_price": 90.5, "knockout_value": -20.0}


def _simulate_gbm(spot: float, rng: np.random.Generator) -> FloatArray:
    return gbm_paths(spot, mu=0.0, sigma=SIGMA, dt_s=DT_S, n_steps=N_STEPS, n_paths=20_000, rng=rng)


def test_mc_greeks_with_bridge_agree_with_analytic_within_four_standard_errors() -> None:
    # Arrange: penalty 10.5 (R = -20 vs closing at L: -9.5). The Brownian-bridge survival
    # makes the discretely simulated paths continuously monitored, exactly, under GBM. The
    # bump is 5 % of spot, so compare with the analytic price's central differences over the
    # same bump (both then carry the same O(h^2) finite-difference error).
    bump = 0.05
    h = 100.0 * bump

    def analytic(spot: FloatArray) -> FloatArray:
        return knockout_forward_greeks(spot, sigma=SIGMA, horizon_s=WEEK, **POSITION).value

    v_down, v_mid, v_up = analytic(np.array([100.0 - h, 100.0, 100.0 + h]))

    # Act
    mc = mc_knockout_forward_greeks(
        100.0,
        simulate=_simulate_gbm,
        seed=2024,
        relative_bump=bump,
        bridge_sigma=SIGMA,
        dt_s=DT_S,
        **POSITION,
    )

    # Assert
    assert mc.n_paths == 20_000
    assert abs(mc.value - v_mid) < 4.0 * mc.value_stderr
    assert abs(mc.delta - (v_up - v_down) / (2 * h)) < 4.0 * mc.delta_stderr
    assert abs(mc.gamma - (v_up - 2 * v_mid + v_down) / h**2) < 4.0 * mc.gamma_stderr
    assert mc.gamma_stderr < 0.2 * abs((v_up - 2 * v_mid + v_down) / h**2)  # informative


def test_mc_greeks_without_bridge_agree_with_bgk_shifted_analytic() -> None:
    # Discrete (hourly) monitoring: the right closed form is the BGK-shifted barrier.
    shifted = float(bgk_discrete_barrier(90.5, SIGMA, DT_S, "down"))
    position = {**POSITION, "liquidation_price": shifted}
    g = knockout_forward_greeks(100.0, sigma=SIGMA, horizon_s=WEEK, **position)

    mc = mc_knockout_forward_greeks(100.0, simulate=_simulate_gbm, seed=99, **POSITION)

    assert abs(mc.value - float(g.value)) < 4.0 * mc.value_stderr
    assert abs(mc.delta - float(g.delta)) < 4.0 * mc.delta_stderr


def test_mc_greeks_are_reproducible_from_the_seed() -> None:
    def small(spot: float, rng: np.random.Generator) -> FloatArray:
        return gbm_paths(spot, mu=0.0, sigma=SIGMA, dt_s=DT_S, n_steps=24, n_paths=500, rng=rng)

    a = mc_knockout_forward_greeks(100.0, simulate=small, seed=7, **POSITION)
    b = mc_knockout_forward_greeks(
        100.0, simulate=small, seed=np.random.SeedSequence(7), **POSITION
    )
    assert a == b


def test_mc_with_jumps_shows_gap_risk_left_to_the_insurance_fund() -> None:
    # Under a martingale jump diffusion a position closed at exactly L (R = q (L - E)) would be
    # worth q (S - E) if the price never jumped past L. Jumps gap through L, and the trader
    # still gets q (L - E): the gap is the insurance fund's loss, so the value exceeds q (S - E).
    def merton(spot: float, rng: np.random.Generator) -> FloatArray:
        return merton_jump_paths(
            spot,
            mu=0.0,
            sigma=0.5,
            jump_intensity=30.0,
            jump_mean=-0.08,
            jump_std=0.04,
            dt_s=DT_S,
            n_steps=N_STEPS,
            n_paths=10_000,
            rng=rng,
        )

    mc = mc_knockout_forward_greeks(
        100.0, size=1.0, entry_price=100.0, liquidation_price=90.5, simulate=merton, seed=5
    )

    assert mc.value > 4.0 * mc.value_stderr
    assert math.isfinite(mc.delta)
    assert math.isfinite(mc.gamma)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"bridge_sigma": 0.8},
        {"dt_s": 3600.0},
        {"relative_bump": 1.5},
        {"simulate": lambda s, rng: np.full((3, 4), 1.0)},
    ],
)
def test_mc_greeks_reject_bad_arguments(kwargs: dict[str, object]) -> None:
    args: dict[str, object] = {"simulate": _simulate_gbm, "seed": 1, **POSITION}
    args.update(kwargs)
    with pytest.raises(ValidationError):
        mc_knockout_forward_greeks(100.0, **args)  # type: ignore[arg-type]
