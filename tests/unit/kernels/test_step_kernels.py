"""The risk step's compiled re-check of the accounts a batch touched against the NumPy and
Python selection it replaced (``np.unique``, ``rules.margin.maintenance_margin``, the sort of
``(health, account)`` tuples); the distress order against ``np.lexsort``; the distinct
accounts of a batch of fills against ``np.unique``."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from deleverage.engine.kernels import distinct_accounts_nb
from deleverage.engine.risk.batch import distress_order
from deleverage.engine.risk.step_kernels import isolated_below_among_nb
from deleverage.rules import margin as mm
from deleverage.spec import TierArrays


def _reference(
    accounts: np.ndarray, size: np.ndarray, entry: np.ndarray, margin: np.ndarray,
    mode: np.ndarray, kind: np.ndarray, mark: float, tiers: TierArrays,
) -> list[int]:  # fmt: skip
    """``RiskEngine._isolated_candidates_among`` before the kernel (every account ready)."""
    a = np.unique(accounts)
    s = size[a]
    equity = margin[a] + s * (mark - entry[a])
    maint = mm.maintenance_margin(np.abs(s) * mark, tiers)
    below = (s != 0.0) & (mode[a] != 0) & (kind[a] == 0) & (equity < maint)
    out = [
        (float(e - mt) / max(float(mt), 1e-12), acc)
        for acc, e, mt in zip(
            a[below].tolist(), equity[below].tolist(), maint[below].tolist(), strict=True
        )
    ]
    out.sort()
    return [acc for _, acc in out]


def _tiers(draw_floor: bool, min_margin: float) -> TierArrays:
    floor = np.array([0.0, 500.0, 5_000.0]) if draw_floor else np.array([0.0])
    mmr = np.array([0.005, 0.01, 0.025])[: len(floor)]
    imr = np.array([0.01, 0.02, 0.05])[: len(floor)]
    cum = np.zeros(len(floor))
    for i in range(1, len(floor)):
        cum[i] = cum[i - 1] + floor[i] * (mmr[i] - mmr[i - 1])
    return TierArrays(floor=floor, imr=imr, mmr=mmr, cum=cum, min_margin=min_margin)


@settings(max_examples=200, deadline=None)
@given(
    seed=st.integers(0, 100_000),
    n=st.integers(1, 400),
    picks=st.integers(0, 600),
    tiered=st.booleans(),
    min_margin=st.sampled_from([0.0, 0.0, 3.0]),
    ties=st.booleans(),
)
def test_isolated_below_among_matches_the_unique_and_sort_reference(
    seed: int, n: int, picks: int, tiered: bool, min_margin: float, ties: bool
) -> None:
    # Arrange: a random isolated/cross book, venue accounts, flat rows, repeated touches;
    # with ``ties`` sizes and margins on a coarse grid, so healths tie across accounts
    rng = np.random.default_rng(seed)
    if ties:
        size = rng.integers(-3, 4, n).astype(np.float64)
        margin = rng.integers(0, 4, n).astype(np.float64)
    else:
        size = np.where(rng.random(n) < 0.1, 0.0, rng.normal(0, 20, n)).astype(np.float64)
        margin = rng.uniform(-5, 60, n)
    entry = np.full(n, 100.0) if ties else rng.uniform(80, 120, n)
    mode = (rng.random(n) < 0.8).astype(np.int8)  # 1: isolated, 0: cross
    kind = np.where(rng.random(n) < 0.05, 2, 0).astype(np.int8)
    accounts = rng.integers(0, n, picks).astype(np.int64)
    mark = 100.0 if ties else float(rng.uniform(80, 120))
    tiers = _tiers(tiered, min_margin)
    seen = np.zeros(n, dtype=np.bool_)

    # Act
    below, health = isolated_below_among_nb(
        accounts, seen, size, entry, margin, mode, kind, mark, tiers.floor, tiers.mmr,
        tiers.cum, tiers.min_margin,
    )  # fmt: skip
    order = np.lexsort((below, health))

    # Assert: the same accounts in the same order; the flags are left clear
    assert below[order].tolist() == _reference(
        accounts, size, entry, margin, mode, kind, mark, tiers
    )
    assert not seen.any()


def test_isolated_below_among_sorts_by_health_then_account() -> None:
    # Three isolated longs of size 1 at entry 100, mark 100, maintenance 0.5 each:
    # margins 0.1, 0.1 and 0.3 give healths -0.8, -0.8 and -0.4; account 2 has 1.0 (safe)
    size = np.ones(4)
    entry = np.full(4, 100.0)
    margin = np.array([0.3, 0.1, 1.0, 0.1])
    ones = np.ones(4, dtype=np.int8)
    tiers = _tiers(False, 0.0)
    below, health = isolated_below_among_nb(
        np.array([3, 0, 1, 3, 2]), np.zeros(4, dtype=np.bool_), size, entry, margin, ones,
        np.zeros(4, dtype=np.int8), 100.0, tiers.floor, tiers.mmr, tiers.cum, 0.0,
    )  # fmt: skip
    order = np.lexsort((below, health))
    assert below[order].tolist() == [1, 3, 0]
    np.testing.assert_allclose(health[order], [-0.8, -0.8, -0.4])


@settings(max_examples=200, deadline=None)
@given(
    seed=st.integers(0, 100_000),
    n=st.integers(0, 3_000),
    levels=st.sampled_from([0, 2, 40]),
    nan=st.booleans(),
)
def test_distress_order_is_the_lexsort_of_health_then_account(
    seed: int, n: int, levels: int, nan: bool
) -> None:
    # Arrange: distinct accounts in any order; continuous healths, or few levels (ties),
    # -0.0 against 0.0, NaN
    rng = np.random.default_rng(seed)
    accounts = rng.permutation(10 * n + 1)[:n].astype(np.int64)
    if levels:
        health = (rng.integers(-levels, 1, n) * 0.25).astype(np.float64)
        health[rng.random(n) < 0.1] = -0.0
    else:
        health = rng.normal(-0.5, 0.3, n)
    if nan and n:
        health[rng.integers(0, n)] = np.nan

    # Act
    got = distress_order(accounts, health)

    # Assert
    np.testing.assert_array_equal(got, np.lexsort((accounts, health)))


@settings(max_examples=200, deadline=None)
@given(accounts=st.lists(st.integers(0, 499), max_size=600))
def test_distinct_accounts_sorted_are_np_unique_and_leave_the_flags_clear(
    accounts: list[int],
) -> None:
    seen = np.zeros(500, dtype=np.bool_)
    got = distinct_accounts_nb(np.array(accounts, dtype=np.int64), seen)
    np.testing.assert_array_equal(np.sort(got), np.unique(np.array(accounts, dtype=np.int64)))
    assert len(got) == len(set(accounts))
    assert not seen.any()
