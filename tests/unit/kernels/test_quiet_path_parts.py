"""Parts of the quiet-stretch kernel (:func:`deleverage.sim.quiet.quiet_path_nb`) against
their plain forms: the staged calls' sort against NumPy's stable argsort, and the bounds pass
that writes the near entries' new states back against the write-back loop then the bounds.
"""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from deleverage.sim.quiet import _sort_staged_nb
from deleverage.sim.quiet_near import called_bounds_nb


def _reference_sort(
    got: int, src: np.ndarray, acc: np.ndarray, ratio: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The kernel's former code: ``np.argsort(kind="mergesort")`` and fancy indexing."""
    src, acc, ratio = src.copy(), acc.copy(), ratio.copy()
    order = np.argsort(acc[:got], kind="mergesort")
    src[:got] = src[:got][order]
    acc[:got] = acc[:got][order]
    ratio[:got] = ratio[:got][order]
    return src, acc, ratio


@settings(max_examples=200, deadline=None)
@given(
    accs=st.lists(st.integers(0, 40), min_size=0, max_size=60),
    extra=st.integers(0, 5),
    presorted=st.booleans(),
)
def test_staged_sort_is_the_stable_argsort(accs: list[int], extra: int, presorted: bool) -> None:
    """Same arrays as the stable argsort, ties (a repeated account) in staging order, the
    entries past ``got`` untouched; sorted input (the early return) included."""
    if presorted:
        accs = sorted(accs)
    got = len(accs)
    n = got + extra
    acc = np.array(accs + [99] * extra, dtype=np.int64)
    src = np.arange(n, dtype=np.int64) * 3 - 7
    ratio = np.linspace(0.5, 2.0, n) if n else np.zeros(0)
    want = _reference_sort(got, src, acc, ratio)
    tmp_i, tmp_f = np.empty(n, dtype=np.int64), np.empty(n)
    _sort_staged_nb(got, src, acc, ratio, tmp_i, tmp_f)
    for g, w in zip((src, acc, ratio), want, strict=True):
        assert np.array_equal(g, w)


def test_staged_sort_keeps_ties_in_order() -> None:
    """An unstable order of ties would fail here (two entries of account 4)."""
    acc = np.array([9, 4, 4, 1], dtype=np.int64)
    src = np.array([10, 11, 12, 13], dtype=np.int64)
    ratio = np.array([0.1, 0.2, 0.3, 0.4])
    _sort_staged_nb(4, src, acc, ratio, np.empty(4, np.int64), np.empty(4))
    assert acc.tolist() == [1, 4, 4, 9]
    assert src.tolist() == [13, 11, 12, 10]
    assert ratio.tolist() == [0.4, 0.2, 0.3, 0.1]


@settings(max_examples=200, deadline=None)
@given(
    n=st.integers(1, 40),
    n_m=st.integers(1, 3),
    seed=st.integers(0, 2**32 - 1),
    k=st.integers(0, 40),
)
def test_bounds_pass_with_settle_is_write_back_then_bounds(
    n: int, n_m: int, seed: int, k: int
) -> None:
    """``called_bounds_nb(..., settle)`` leaves ``dropped`` and the bounds as the loop
    ``dropped[i] = new_dropped[i]`` over the near entries followed by the plain pass; the
    entries not near keep their state."""
    rng = np.random.default_rng(seed)
    market = rng.integers(-1, n_m, n).astype(np.int64)
    long = rng.random(n) < 0.5
    zone = rng.uniform(90.0, 110.0, n)
    liq = np.where(long, zone - rng.uniform(1, 10, n), zone + rng.uniform(1, 10, n))
    dropped = rng.random(n) < 0.3
    new_dropped = rng.random(n) < 0.5
    near = np.sort(rng.choice(n, min(k, n), replace=False)).astype(np.int64)
    want_dropped = dropped.copy()
    want_dropped[near] = new_dropped[near]
    want = np.empty((n_m, 6))
    called_bounds_nb(near, 0, len(near), market, long, zone, liq, want_dropped, want)
    got_dropped = dropped.copy()
    got = np.full((n_m, 6), 12345.0)
    called_bounds_nb(near, 0, len(near), market, long, zone, liq, got_dropped, got, new_dropped)
    assert np.array_equal(got_dropped, want_dropped)
    assert np.array_equal(got, want)
