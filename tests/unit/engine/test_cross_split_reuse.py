"""The bounded scan's split (:func:`.cross_kernels.split_nb`) and the reuse of its accounts
inside a quiet cross stretch (:func:`.quiet_cross.cross_stretch_nb`).

A stretch scans every market at every step; the accounts to evaluate depend on the marks only
through two counts: the near accounts whose bound the move from the anchor reaches (``kd`` of
:func:`.cross_kernels.split_bound_nb`) and the touched accounts whose own bound the move from
the stretch's first marks reaches. While both stay the same (and the anchor does), the stretch
takes the last scan's accounts again instead of calling :func:`.cross_kernels.split_pick_nb`.
Along random walks over random index arrays, the accounts the reuse gives must be exactly those
a fresh :func:`.cross_kernels.split_nb` gives at every step (the oracle: a plain NumPy set
union of the reached prefixes); a reuse keyed on the near count alone must not be (the touched
count moves on its own). The stretch itself is checked against the risk step in
tests/unit/engine/test_quiet_cross_twin.py.
"""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from deleverage.engine.cross_kernels import split_bound_nb, split_nb, split_pick_nb

MAX_MOVE = 1.0


def _index(seed: int, n_near: int, n_touched: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    n = 4 * n_near + 2 * n_touched
    acc = rng.choice(10 * n, n, replace=False).astype(np.int64)
    near = acc[:n_near]
    return {
        "p0": np.array([100.0, 10.0, 1.0]),
        "p1": np.array([100.0, 10.0, 1.0]) * rng.uniform(0.99, 1.01, 3),
        "q": np.sort(rng.uniform(0.0, 0.2, n)),
        "near_by_dist": rng.permutation(near),
        "near_dist": np.sort(rng.uniform(-0.001, 0.01, n_near)),
        "t_by": rng.choice(acc, n_touched, replace=False),
        "t_dist": np.sort(rng.uniform(0.0, 0.01, n_touched)),
        "flag": np.zeros(10 * n, dtype=np.bool_),
    }


def _oracle(ix: dict[str, np.ndarray], marks: np.ndarray, n_t: int) -> np.ndarray | None:
    """The accounts a scan evaluates at ``marks`` (NumPy, from the definitions)."""
    d0 = np.max(np.abs(marks / ix["p0"] - 1.0))
    d1 = np.max(np.abs(marks / ix["p1"] - 1.0))
    if d0 >= MAX_MOVE or d1 >= MAX_MOVE:
        return None
    n_near = len(ix["near_by_dist"])
    if np.searchsorted(ix["q"], d0 * (1.0 + 1e-9) + 1e-12, side="right") > n_near:
        return None
    reached = ix["near_dist"] <= d1 * (1.0 + 1e-9) + 1e-12
    return np.union1d(ix["near_by_dist"][reached], ix["t_by"][:n_t]).astype(np.int64)


def _walk(
    seed: int, n_near: int, n_touched: int, vol: float, steps: int, key_touched: bool = True
) -> tuple[bool, int]:  # fmt: skip
    """Run the stretch's selection along a random walk: whether every step's accounts equal a
    fresh split's and the oracle's, and how many steps took the last scan's accounts."""
    ix = _index(seed, n_near, n_touched)
    rng = np.random.default_rng(seed + 1)
    marks0 = ix["p1"].copy()
    walk = marks0 * np.exp(np.cumsum(rng.normal(0.0, vol, (steps, 3)), axis=0))
    n_near_all = len(ix["near_by_dist"])
    last_kd, last_t = -1, -1
    evaluate = np.zeros(0, dtype=np.int64)
    reused = 0
    same = True
    for marks in walk:
        move_t = float(np.max(np.abs(marks / marks0 - 1.0)))
        thr_t = move_t * (1.0 + 1e-9) + 1e-12
        n_t = int(np.searchsorted(ix["t_dist"], thr_t, side="right"))
        kd, threshold = split_bound_nb(
            marks, ix["p0"], ix["p1"], ix["q"], n_near_all, ix["near_dist"], MAX_MOVE
        )
        t_eval = np.sort(ix["t_by"][:n_t])
        fresh, picked, fresh_thr = split_nb(
            marks, ix["p0"], ix["p1"], ix["q"], n_near_all, ix["near_by_dist"],
            ix["near_dist"], t_eval, ix["flag"], MAX_MOVE,
        )  # fmt: skip
        expected = _oracle(ix, marks, n_t)
        if kd < 0:
            assert picked < 0
            assert expected is None
            last_kd = -1
            continue
        assert expected is not None
        assert np.array_equal(fresh, expected)
        assert threshold == fresh_thr
        if kd != last_kd or (key_touched and n_t != last_t):
            evaluate, _ = split_pick_nb(kd, ix["near_by_dist"], t_eval, ix["flag"])
            last_kd, last_t = kd, n_t
        else:
            reused += 1
        same = same and np.array_equal(evaluate, fresh)
        assert not ix["flag"].any()
    return same, reused


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    n_near=st.integers(1, 300),
    n_touched=st.integers(0, 40),
    vol=st.sampled_from([1e-5, 1e-4, 1e-3, 1e-2]),
)
def test_reused_accounts_equal_a_fresh_split(
    seed: int, n_near: int, n_touched: int, vol: float
) -> None:
    same, _ = _walk(seed, n_near, n_touched, vol, 200)
    assert same


def test_small_moves_reuse_the_accounts() -> None:
    """Slow walks keep both counts for many steps: the reuse is taken (the branch is live)."""
    assert sum(_walk(seed, 200, 20, 1e-5, 200)[1] for seed in range(5)) > 100


def test_a_reuse_keyed_on_the_near_count_alone_fails() -> None:
    """Ignoring the touched accounts' count, a step whose move reaches another touched account
    but no other near one takes stale accounts: the selection differs from a fresh split."""
    agree = [_walk(seed, 200, 40, 1e-4, 200, key_touched=False)[0] for seed in range(6)]
    assert not all(agree)
