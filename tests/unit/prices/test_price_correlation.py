"""Several assets: correlation matrices, correlated diffusions and common jumps.

Expected values: the sample correlation of n i.i.d. pairs has standard error about
(1 - rho^2) / sqrt(n) (Fisher 1915); the matrix [[1, a, -a], [a, 1, a], [-a, a, 1]] has the
eigenvector (1, -1, 1) with eigenvalue 1 - 2a (multiply it out), so a = 0.9 gives -0.8.
"""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from deleverage.errors import ValidationError
from deleverage.prices import (
    correlation_factor,
    gbm,
    merton_jump_diffusion,
    validate_correlation,
)

CORRELATION = np.array([[1.0, 0.6, -0.3], [0.6, 1.0, 0.2], [-0.3, 0.2, 1.0]])


def test_sample_correlation_of_returns_matches_the_matrix() -> None:
    # Arrange
    n = 20_000
    rng = np.random.default_rng(1973)

    # Act
    path = gbm(
        [100.0, 50.0, 10.0],
        [0.1, 0.0, -0.2],
        [0.5, 0.8, 1.2],
        60.0,
        n,
        rng,
        correlation=CORRELATION,
    )
    sample = np.corrcoef(np.diff(np.log(path), axis=0), rowvar=False)

    # Assert
    se = (1 - CORRELATION**2) / math.sqrt(n)
    off_diagonal = ~np.eye(3, dtype=bool)
    assert (np.abs(sample - CORRELATION)[off_diagonal] < 5 * se[off_diagonal]).all()


def test_path_of_several_assets_has_one_column_per_asset() -> None:
    path = gbm([1.0, 2.0, 3.0], 0.0, 0.5, 1.0, 10, np.random.default_rng(0))
    assert path.shape == (11, 3)
    assert path[0].tolist() == [1.0, 2.0, 3.0]


def test_cholesky_factor_reproduces_the_matrix() -> None:
    factor = correlation_factor(CORRELATION)
    np.testing.assert_allclose(factor @ factor.T, CORRELATION, atol=1e-14)
    assert np.allclose(factor, np.tril(factor))


def test_singular_matrix_of_perfectly_correlated_assets_is_accepted() -> None:
    # Arrange: two assets with correlation 1 have no Cholesky factor but a valid one exists.
    perfect = [[1.0, 1.0], [1.0, 1.0]]

    # Act
    path = gbm([100.0, 100.0], 0.1, 0.7, 60.0, 1_000, np.random.default_rng(2), correlation=perfect)

    # Assert
    np.testing.assert_allclose(path[:, 0], path[:, 1], rtol=1e-12)


def test_non_psd_matrix_is_rejected_naming_its_smallest_eigenvalue() -> None:
    bad = [[1.0, 0.9, -0.9], [0.9, 1.0, 0.9], [-0.9, 0.9, 1.0]]  # eigenvalue 1 - 2(0.9) = -0.8
    with pytest.raises(ValidationError, match=r"positive semi-definite.*was -0\.8$") as info:
        gbm([1.0, 1.0, 1.0], 0.0, 0.5, 1.0, 10, np.random.default_rng(0), correlation=bad)
    assert info.value.field == "correlation"
    assert info.value.value == pytest.approx(-0.8)


def test_asymmetric_matrix_is_rejected_naming_the_entry() -> None:
    with pytest.raises(
        ValidationError, match=re.escape("`correlation[0][1]` must equal correlation[1][0] = 0.4")
    ):
        validate_correlation([[1.0, 0.5], [0.4, 1.0]])


def test_diagonal_other_than_one_is_rejected_naming_the_entry() -> None:
    with pytest.raises(ValidationError, match=re.escape("`correlation[1][1]` must be 1, was 0.9")):
        validate_correlation([[1.0, 0.5], [0.5, 0.9]])


def test_entry_outside_unit_interval_is_rejected() -> None:
    with pytest.raises(ValidationError, match=re.escape("`correlation[0][1]` must be in [-1, 1]")):
        validate_correlation([[1.0, 1.5], [1.5, 1.0]])


def test_matrix_of_wrong_size_for_the_assets_is_rejected() -> None:
    with pytest.raises(ValidationError, match="must be 3x3, one row and column per asset"):
        gbm(
            [1.0, 1.0, 1.0],
            0.0,
            0.5,
            1.0,
            10,
            np.random.default_rng(0),
            correlation=[[1.0, 0.0], [0.0, 1.0]],
        )


def test_correlation_for_a_single_asset_is_rejected() -> None:
    with pytest.raises(ValidationError, match="`correlation` needs `s0` given as a vector"):
        gbm(1.0, 0.0, 0.5, 1.0, 10, np.random.default_rng(0), correlation=[[1.0]])


@given(st.lists(st.floats(-3, 3), min_size=12, max_size=12))
def test_any_gram_matrix_normalized_to_unit_diagonal_is_accepted(entries: list[float]) -> None:
    # A normalized Gram matrix B B^T is a valid correlation matrix (if no row of B is zero).
    b = np.array(entries).reshape(4, 3)
    norms = np.linalg.norm(b, axis=1)
    if (norms < 1e-3).any():
        return
    b = b / norms[:, None]
    c = b @ b.T
    factor = correlation_factor(c)
    np.testing.assert_allclose(factor @ factor.T, validate_correlation(c), atol=1e-9)


# --------------------------------------------------------------------------------------------
# Correlated jumps
# --------------------------------------------------------------------------------------------


def _jump_part(path: np.ndarray) -> np.ndarray:
    """Log returns minus their constant drift (all assets have sigma = 0 here)."""
    r = np.diff(np.log(path), axis=0)
    typical = np.median(r, axis=0)  # most steps have no jump: the median is the drift
    return np.asarray(r - typical)


def test_common_jumps_hit_all_assets_in_the_same_steps_with_linked_sizes() -> None:
    # Arrange: no diffusion, no idiosyncratic jumps, about 100 common jumps.
    s_c = np.array([0.05, 0.1, 0.02])
    m_c = -2.0 * s_c  # same m / s for all assets, so J_i / s_i = -2 N + sqrt(N) W for all i

    # Act
    path = merton_jump_diffusion(
        [100.0, 50.0, 10.0],
        0.0,
        0.0,
        0.0,
        0.0,
        0.0,
        3600.0,
        8_760,
        np.random.default_rng(8),
        common_jump_intensity=100.0,
        common_jump_mean=m_c,
        common_jump_std=s_c,
    )
    jumps = _jump_part(path)

    # Assert
    hit = np.abs(jumps) > 1e-12
    assert 50 < hit[:, 0].sum() < 150
    assert (hit == hit[:, [0]]).all()  # every jump hits all three assets
    # One shared jump count N and normal W per step: J_i = m_i N + s_i sqrt(N) W.
    scaled = jumps[hit[:, 0]] / s_c
    np.testing.assert_allclose(scaled, np.broadcast_to(scaled[:, [0]], scaled.shape), atol=1e-9)


def test_idiosyncratic_jumps_arrive_independently() -> None:
    path = merton_jump_diffusion(
        [100.0, 100.0], 0.0, 0.0, 200.0, -0.1, 0.0, 3600.0, 8_760, np.random.default_rng(9)
    )
    hit = np.abs(_jump_part(path)) > 1e-12
    both = (hit[:, 0] & hit[:, 1]).sum()
    # About 200 jumps each over 8 760 steps: independent arrivals coincide about 4.6 times.
    assert hit[:, 0].sum() > 150
    assert hit[:, 1].sum() > 150
    assert both < 20
