"""Parts of the quiet-stretch kernel (:func:`deleverage.sim.quiet.quiet_path_nb`) against
their plain forms: the staged calls' sort against NumPy's stable argsort, the bounds pass
that writes the near entries' new states back against the write-back loop then the bounds, and
the recalls' pass that also bounds the new states against the recalls then that bounds pass.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deleverage.engine.kernels import maintenance_nb, tier_of_nb
from deleverage.engine.level_index import ZONE_RTOL
from deleverage.engine.quiet_calls import recalls_bounds_step_nb, recalls_step_nb
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


#: Tier floors, maintenance rates and amounts of the recalls' twin.
_TIERS = (np.array([0.0, 5_000.0]), np.array([0.01, 0.02]), np.array([0.0, 50.0]))


def _recalls(
    fused: bool, marks: np.ndarray, near: np.ndarray, market: np.ndarray, long: np.ndarray,
    zone: np.ndarray, liq: np.ndarray, acc: np.ndarray, dropped: np.ndarray, call_m: int,
    cols: tuple[np.ndarray, np.ndarray, np.ndarray], level: float,
) -> tuple[int, np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
    """One step's recalls then its write-back and bounds: the fused pass
    (``recalls_bounds_step_nb``, the changed entries written back) or the former
    two passes (``recalls_step_nb``, then ``called_bounds_nb`` with ``settle``). Returns the
    count staged, the dropped states, the bounds and the staged calls (-1: not quiet)."""
    n, n_m = len(market), len(marks)
    dropped = dropped.copy()
    new_dropped = np.zeros(n, np.bool_)
    stage = (np.full(n, -7, np.int64), np.full(n, -7, np.int64), np.full(n, -7.0))
    args = (
        marks, near, len(near), market, long, zone, liq, acc, dropped, new_dropped, call_m,
        *cols, *_TIERS, 0.0, level, ZONE_RTOL, *stage,
    )  # fmt: skip
    bounds = np.full((n_m, 6), 12345.0)
    if fused:
        changed, n_changed = np.full(n, -1, np.int64), np.full(1, 99, np.int64)
        got = recalls_bounds_step_nb(*args, bounds, changed, n_changed)  # type: ignore[arg-type]
        if got >= 0:
            for i in changed[: n_changed[0]]:
                dropped[i] = new_dropped[i]
    else:
        got = recalls_step_nb(*args)  # type: ignore[arg-type]
        if got >= 0:
            called_bounds_nb(
                near, 0, len(near), market, long, zone, liq, dropped, bounds, new_dropped
            )
    if got < 0:
        return got, dropped, np.zeros((n_m, 6)), np.zeros(0)
    staged = np.concatenate([stage[0][:got], stage[1][:got], stage[2][:got]])
    return got, dropped, bounds, staged


@settings(max_examples=300, deadline=None)
@given(
    n=st.integers(1, 60),
    n_m=st.integers(1, 3),
    seed=st.integers(0, 2**32 - 1),
    k=st.integers(0, 60),
    call_m=st.integers(-1, 2),
    edge=st.floats(0.0, 1.0),
    in_zone=st.floats(0.0, 1.0),
)
def test_fused_recalls_pass_is_recalls_then_bounds_pass(
    n: int, n_m: int, seed: int, k: int, call_m: int, edge: float, in_zone: float
) -> None:
    """``recalls_bounds_step_nb``: the same count and staged calls, and (the
    changed entries written back) the same dropped states and bounds, bit for bit, as the
    step's two former passes; entries of market -1, dropped ones, marks on the entries' zone
    and liquidation prices (``edge``: the share of such entries), signed zeros among them,
    and positions in the zone above maintenance (``in_zone``: called again when dropped)."""
    rng = np.random.default_rng(seed)
    market = rng.integers(-1, n_m, n).astype(np.int64)
    long = rng.random(n) < 0.5
    marks = rng.uniform(95.0, 105.0, n_m)
    zone = rng.uniform(90.0, 110.0, n)
    liq = np.where(long, zone - rng.uniform(0, 10, n), zone + rng.uniform(0, 10, n))
    on_mark = rng.random(n) < edge
    zone[on_mark] = marks[np.maximum(market[on_mark], 0)]
    zero = rng.random(n) < 0.05
    zone[zero] = rng.choice([0.0, -0.0], int(zero.sum()))
    dropped = rng.random(n) < 0.4
    near = np.sort(rng.choice(n, min(k, n), replace=False)).astype(np.int64)
    acc = rng.permutation(n).astype(np.int64)
    size = np.where(rng.random(n) < 0.5, 1.0, -1.0) * rng.uniform(1.0, 50.0, n)
    cols = (size, rng.uniform(80.0, 120.0, n), rng.uniform(1.0, 200.0, n))
    for i in np.flatnonzero((rng.random(n) < in_zone) & (market >= 0)):
        p = marks[market[i]]  # margin for a ratio MM / E of 0.9 at the mark, zone beyond it
        a = acc[i]
        notional = abs(size[a]) * p
        t = tier_of_nb(notional, _TIERS[0])
        mm = maintenance_nb(notional, _TIERS[1][t], _TIERS[2][t], 0.0)
        cols[2][a] = mm / 0.9 - size[a] * (p - cols[1][a])
        long[i] = size[a] > 0
        zone[i] = p * (1.0 + 0.01) if long[i] else p * (1.0 - 0.01)
        liq[i] = p * (1.0 - 0.05) if long[i] else p * (1.0 + 0.05)
    call_m = min(call_m, n_m - 1)
    want = _recalls(False, marks, near, market, long, zone, liq, acc, dropped, call_m, cols, 0.8)
    got = _recalls(True, marks, near, market, long, zone, liq, acc, dropped, call_m, cols, 0.8)
    assert got[0] == want[0]
    for g, w in zip(got[1:], want[1:], strict=True):
        assert g.shape == w.shape
        assert g.tobytes() == w.tobytes()


def test_fused_recalls_pass_twin_catches_a_missed_write_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The twin above is not blind: a fused pass that lists no changed entry (so none is
    written back) differs from the two passes on the same draws."""
    real = recalls_bounds_step_nb

    def forgetful(*args: object) -> int:
        got = int(real(*args))  # type: ignore[arg-type]
        n_changed = args[-1]
        n_changed[0] = 0  # type: ignore[index]
        return got

    monkeypatch.setattr(sys.modules[__name__], "recalls_bounds_step_nb", forgetful)
    caught = 0
    for seed in range(40):
        try:
            test_fused_recalls_pass_is_recalls_then_bounds_pass.hypothesis.inner_test(  # type: ignore[attr-defined]
                n=30, n_m=1, seed=seed, k=30, call_m=0, edge=0.3, in_zone=0.3
            )
        except AssertionError:
            caught += 1
    assert caught > 0
