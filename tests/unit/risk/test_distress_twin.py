"""``ranked_candidates_nb`` (engine/risk/distress.py) against the NumPy reference: the batch
path's candidates ordered by health, ties by account (``np.lexsort((accounts, health))`` of
``health = (equity - maintenance) / np.maximum(maintenance, 1e-12)``, as
``BatchStage._batch_candidates`` computed them). Where the kernel claims its order (no tie,
no NaN) the accounts, equities and maintenance must be the reference's bit for bit; it must
decline every book with a tie (-0.0 against 0.0 included) or a NaN; a kernel that sorted by
equity instead of health must fail the comparison."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from deleverage.engine.risk.distress import ranked_candidates_nb


def _reference(
    accounts: np.ndarray, equity: np.ndarray, maint: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    health = (equity - maint) / np.maximum(maint, 1e-12)
    order = np.lexsort((accounts, health))
    return accounts[order].astype(np.int64), equity[order], maint[order], health


@settings(max_examples=300, deadline=None)
@given(
    seed=st.integers(0, 100_000),
    n=st.integers(0, 400),
    levels=st.sampled_from([0, 2, 40]),
    zero_maintenance=st.booleans(),
    nan=st.booleans(),
)
def test_the_kernel_order_is_the_distress_order_or_declined(
    seed: int, n: int, levels: int, zero_maintenance: bool, nan: bool
) -> None:
    # Arrange: distinct accounts in any order; equities and maintenance continuous or on a few
    # levels (ties), some maintenance zero (the 1e-12 floor), NaN
    rng = np.random.default_rng(seed)
    accounts = rng.permutation(10 * n + 1)[:n].astype(np.int64)
    maint = rng.uniform(1.0, 500.0, n)
    equity = maint * rng.uniform(-1.0, 1.0, n)
    if levels:
        maint = np.full(n, 100.0)
        equity = (rng.integers(-levels, levels, n) * 25.0).astype(np.float64)
    if zero_maintenance and n:
        maint[rng.random(n) < 0.2] = 0.0
    if nan and n:
        equity[rng.integers(0, n)] = np.nan
    ref_accounts, ref_equity, ref_maint, health = _reference(accounts, equity, maint)

    # Act
    got_accounts, got_equity, got_maint, distinct = ranked_candidates_nb(accounts, equity, maint)

    # Assert: the claimed order is the reference's; declined exactly on ties and NaN
    ranked = np.sort(health)
    tie_or_nan = bool(np.isnan(health).any() or (ranked[1:] == ranked[:-1]).any())
    assert distinct == (not tie_or_nan)
    if distinct:
        assert got_accounts.tobytes() == ref_accounts.tobytes()
        assert got_equity.tobytes() == ref_equity.tobytes()
        assert got_maint.tobytes() == ref_maint.tobytes()


def test_signed_zero_healths_are_a_tie() -> None:
    # Health 0.0 and -0.0 are equal: the kernel declines (the lexsort orders them by account).
    accounts = np.array([7, 3], dtype=np.int64)
    equity, maint = np.array([5.0, -0.0]), np.array([5.0, 0.0])
    health = (equity - maint) / np.maximum(maint, 1e-12)
    assert health.tobytes() == np.array([0.0, -0.0]).tobytes()
    assert not ranked_candidates_nb(accounts, equity, maint)[3]


def test_an_order_by_equity_fails_the_comparison() -> None:
    # Healths order these unlike their equities: a kernel ranking by equity would differ.
    accounts = np.array([1, 2, 3], dtype=np.int64)
    equity, maint = np.array([10.0, 20.0, 5.0]), np.array([100.0, 400.0, 10.0])
    ref_accounts = _reference(accounts, equity, maint)[0]
    by_equity = accounts[np.argsort(equity)]
    assert by_equity.tolist() != ref_accounts.tolist()
    assert ranked_candidates_nb(accounts, equity, maint)[0].tolist() == ref_accounts.tolist()
