"""Cascade criticality: geometric amplification, round-by-round cascades, critical shock."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from deleverage.analytics.criticality import (
    branching_ratio,
    branching_ratio_vs_shock,
    critical_shock,
    linear_cascade_total_drop,
    simulate_cascade_rounds,
)
from deleverage.errors import ValidationError

START, SPACING, N_LEVELS, DEPTH = 100.0, 0.01, 5_000, 1_000.0


def _uniform_book(k: float) -> tuple[np.ndarray, np.ndarray]:
    """Longs liquidated every 0.01 below 100 over a band of 50, density k * depth per dollar."""
    levels = START - SPACING * (np.arange(N_LEVELS) + 0.5)
    sizes = np.full(N_LEVELS, k * SPACING * DEPTH)
    return levels, sizes


def _cascade_oracle(
    levels: list[float], sizes: list[float], start: float, shock: float, depth: float
) -> tuple[float, int]:
    """Position-by-position loop: liquidate every open long at or above the price, repeat."""
    open_ = set(range(len(levels)))
    liquidated: list[float] = []
    price = start - shock
    while True:
        hit = [i for i in open_ if levels[i] >= price]
        if not hit:
            return price, len(liquidated)
        for i in hit:
            open_.discard(i)
            liquidated.append(sizes[i])
        price = start - shock - math.fsum(liquidated) / depth


def test_linear_total_drop_is_the_geometric_series() -> None:
    k = np.array([0.0, 0.3, 0.5, 0.9])
    series = sum(2.0 * k**r for r in range(2_000))
    np.testing.assert_allclose(linear_cascade_total_drop(2.0, k), series, rtol=1e-12)


def test_linear_total_drop_diverges_at_and_above_criticality() -> None:
    assert linear_cascade_total_drop(1.0, [1.0, 1.5]).tolist() == [math.inf, math.inf]
    assert linear_cascade_total_drop(0.0, [0.5, 1.0, 2.0]).tolist() == [0.0, 0.0, 0.0]


def test_branching_ratio_is_liquidation_density_over_depth() -> None:
    # 3 M$ of liquidations per $1 of BTC price against 4 M$ of bids per $1: k = 0.75.
    assert float(branching_ratio(3.0e6, 4.0e6)) == 0.75
    with pytest.raises(ValidationError):
        branching_ratio(1.0, 0.0)
    with pytest.raises(ValidationError):
        branching_ratio(-1.0, 1.0)


@pytest.mark.parametrize("k", [0.0, 0.25, 0.5, 0.8, 0.95])
def test_uniform_density_cascade_amplifies_shock_by_one_over_one_minus_k(k: float) -> None:
    # Arrange
    levels, sizes = _uniform_book(k)
    shock = 1.0

    # Act
    rounds = simulate_cascade_rounds(levels, sizes, START, shock, DEPTH)

    # Assert: within the level spacing (the discretization) of s / (1 - k).
    expected = float(linear_cascade_total_drop(shock, k))
    assert rounds.converged
    assert rounds.total_drop == pytest.approx(expected, abs=SPACING / (1.0 - k))
    assert rounds.price[-1] == pytest.approx(START - rounds.total_drop)
    assert rounds.cumulative_size[-1] == pytest.approx(sizes[0] * rounds.n_liquidated)


def test_uniform_density_rounds_shrink_by_the_branching_ratio() -> None:
    levels, sizes = _uniform_book(0.5)
    rounds = simulate_cascade_rounds(levels, sizes, START, 1.0, DEPTH)
    assert math.isnan(rounds.branching_ratio[0])
    np.testing.assert_allclose(rounds.branching_ratio[1:5], 0.5, atol=0.05)
    np.testing.assert_allclose(np.diff(rounds.cumulative_size), rounds.liquidated_size[1:])


@pytest.mark.parametrize("k", [1.0, 1.5])
def test_uniform_density_at_or_above_criticality_liquidates_the_whole_band(k: float) -> None:
    levels, sizes = _uniform_book(k)
    rounds = simulate_cascade_rounds(levels, sizes, START, 0.02, DEPTH)
    assert rounds.n_liquidated == N_LEVELS
    assert rounds.total_drop == pytest.approx(0.02 + sizes.sum() / DEPTH)


@given(
    data=st.lists(st.tuples(st.floats(50.0, 110.0), st.floats(0.0, 10.0)), min_size=0, max_size=30),
    shock=st.floats(0.0, 20.0),
    depth=st.floats(0.1, 50.0),
)
def test_vectorized_cascade_matches_position_by_position_oracle(
    data: list[tuple[float, float]], shock: float, depth: float
) -> None:
    levels = [d[0] for d in data]
    sizes = [d[1] for d in data]
    expected_price, expected_count = _cascade_oracle(levels, sizes, START, shock, depth)

    rounds = simulate_cascade_rounds(levels, sizes, START, shock, depth)

    assert rounds.n_liquidated == expected_count
    assert rounds.price[-1] == pytest.approx(expected_price, rel=1e-12, abs=1e-9)


def test_short_cascade_mirrors_the_long_cascade() -> None:
    levels, sizes = _uniform_book(0.6)
    down = simulate_cascade_rounds(levels, sizes, START, 1.0, DEPTH)
    up = simulate_cascade_rounds(2 * START - levels, -sizes, START, 1.0, DEPTH, direction="up")
    np.testing.assert_allclose(up.price, 2 * START - down.price)
    assert up.n_liquidated == down.n_liquidated


def test_max_rounds_truncates_and_reports_it() -> None:
    levels, sizes = _uniform_book(0.9)
    rounds = simulate_cascade_rounds(levels, sizes, START, 1.0, DEPTH, max_rounds=3)
    assert not rounds.converged
    assert rounds.price.size == 4  # the shock and three rounds


def test_positions_already_past_their_level_go_in_the_first_round() -> None:
    rounds = simulate_cascade_rounds([101.0, 90.0], [2.0, 1.0], START, 0.0, 4.0)
    assert rounds.n_liquidated == 1
    assert rounds.price.tolist() == [100.0, 99.5]


@pytest.mark.parametrize("k", [0.2, 0.5, 0.9])
def test_uniform_critical_shock_is_one_minus_k_of_the_band(k: float) -> None:
    levels, sizes = _uniform_book(k)
    band = START - levels[-1]
    s_c = critical_shock(levels, sizes, START, DEPTH)
    assert s_c == pytest.approx((1.0 - k) * band, abs=SPACING)
    assert simulate_cascade_rounds(levels, sizes, START, s_c, DEPTH).n_liquidated == N_LEVELS
    below = simulate_cascade_rounds(levels, sizes, START, s_c - 1e-6, DEPTH)
    assert below.n_liquidated < N_LEVELS


@pytest.mark.parametrize("k", [1.0, 2.0])
def test_critical_book_needs_only_a_shock_reaching_the_first_level(k: float) -> None:
    levels, sizes = _uniform_book(k)
    assert critical_shock(levels, sizes, START, DEPTH) == pytest.approx(SPACING / 2)


def test_critical_shock_matches_bisection_on_the_simulated_cascade() -> None:
    # Arrange: a lumpy book (clusters of liquidation levels) and a target price of 80.
    rng = np.random.default_rng(17)
    levels = np.concatenate([rng.uniform(95, 99, 300), rng.uniform(82, 90, 500)])
    sizes = rng.uniform(0.0, 2.0, levels.size)
    depth = 40.0

    def reaches(shock: float) -> bool:
        rounds = simulate_cascade_rounds(levels, sizes, START, shock, depth)
        return START - rounds.total_drop <= 80.0

    low, high = 0.0, 20.0
    for _ in range(60):
        mid = 0.5 * (low + high)
        low, high = (low, mid) if reaches(mid) else (mid, high)

    # Act
    s_c = critical_shock(levels, sizes, START, depth, target_price=80.0)

    # Assert
    assert s_c == pytest.approx(high, abs=1e-9)


@given(
    data=st.lists(st.tuples(st.floats(60.0, 99.9), st.floats(0.01, 10.0)), min_size=1, max_size=30),
    depth=st.floats(0.1, 20.0),
)
def test_critical_shock_is_the_smallest_shock_that_wipes_out_the_book(
    data: list[tuple[float, float]], depth: float
) -> None:
    levels = np.array([d[0] for d in data])
    sizes = np.array([d[1] for d in data])

    s_c = critical_shock(levels, sizes, START, depth)

    assert simulate_cascade_rounds(levels, sizes, START, s_c, depth).n_liquidated == len(data)
    smaller = s_c - 1e-7 * max(1.0, s_c)
    if smaller >= 0.0:
        assert simulate_cascade_rounds(levels, sizes, START, smaller, depth).n_liquidated < len(
            data
        )


def test_critical_shock_is_zero_when_the_target_is_already_reached() -> None:
    assert critical_shock([90.0], [1.0], START, 1.0, target_price=101.0) == 0.0


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [
        (([90.0, 80.0], [1.0], START, 1.0, 1.0), {}),
        (([np.nan], [1.0], START, 1.0, 1.0), {}),
        (([90.0], [1.0], START, -1.0, 1.0), {}),
        (([90.0], [1.0], START, 1.0, 0.0), {}),
        (([90.0], [1.0], 0.0, 1.0, 1.0), {}),
        (([90.0], [1.0], START, 1.0, 1.0), {"direction": "sideways"}),
        (([90.0], [1.0], START, 1.0, 1.0), {"max_rounds": -1}),
    ],
)
def test_cascade_rejects_bad_input(args: tuple[object, ...], kwargs: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        simulate_cascade_rounds(*args, **kwargs)  # type: ignore[arg-type]


def test_critical_shock_needs_a_finite_level_without_a_target() -> None:
    with pytest.raises(ValidationError):
        critical_shock([-np.inf], [1.0], START, 1.0)


@pytest.mark.parametrize("k", [0.2, 0.5, 0.8])
def test_branching_ratio_vs_shock_recovers_k_of_a_uniform_book_for_every_shock(k: float) -> None:
    # Arrange: D = s / (1 - k) on a uniform book, so 1 - s / D = k for any shock inside the band.
    levels, sizes = _uniform_book(k)
    shocks = np.array([0.5, 1.0, 2.0, 5.0])

    # Act
    response = branching_ratio_vs_shock(levels, sizes, START, shocks, DEPTH)

    # Assert: within the discretization of one level spacing on the drop.
    expected_drop = shocks / (1.0 - k)
    np.testing.assert_allclose(response.total_drop, expected_drop, atol=SPACING / (1.0 - k))
    np.testing.assert_allclose(response.amplification, 1.0 / (1.0 - k), rtol=0.05)
    np.testing.assert_allclose(response.branching_ratio, k, atol=0.02)
    assert response.converged.all()


def test_branching_ratio_vs_shock_rises_to_one_past_the_critical_shock() -> None:
    # Arrange: a small cluster right below the price, then a big cluster 2 dollars down that
    # only a shock bringing the cascade within reach sets off (k of the cluster > 1).
    levels = np.concatenate([99.9 - 0.1 * np.arange(5), 97.9 - 0.01 * np.arange(100)])
    sizes = np.concatenate([np.full(5, 0.1), np.full(100, 1.0)])
    depth = 10.0
    s_c = critical_shock(levels, sizes, 100.0, depth)

    # Act
    below = branching_ratio_vs_shock(levels, sizes, 100.0, s_c * 0.9, depth)
    above = branching_ratio_vs_shock(levels, sizes, 100.0, s_c, depth)

    # Assert: below the critical shock the cascade stops near the shock (k_eff small); from it
    # the whole book goes, so the drop reaches the last level and k_eff = 1 - s_c / D.
    assert below.n_liquidated[0] < 105
    assert above.n_liquidated[0] == 105
    assert above.total_drop[0] >= 100.0 - levels.min()
    assert above.branching_ratio[0] > below.branching_ratio[0]
    assert above.branching_ratio[0] == pytest.approx(1.0 - s_c / above.total_drop[0])


def test_branching_ratio_vs_shock_rejects_a_zero_shock() -> None:
    with pytest.raises(ValidationError, match="`shocks`"):
        branching_ratio_vs_shock([99.0], [1.0], 100.0, [1.0, 0.0], 1.0)
