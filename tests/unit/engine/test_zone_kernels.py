"""The called-set update of the zone tracker (:func:`.calls_apply_nb`, which the fused
:func:`.zone_calls_nb` runs after its step) against a plain-Python oracle of its rule.

The rule (:mod:`deleverage.engine.zone_calls`): of the pending accounts, a member at status 0
leaves the set (the members' order kept), a non-member at status 2 joins it at the end, in
account order, with its ratio ``MM / E`` at the mark; nothing else changes. The kernel finds
the leaving members through a table of flags hashed by account (``account & (width - 1)``)
and tests ``is_called`` only where a slot is taken; the books here have account ids up to
10^6, so members share slots with leaving accounts and stay (the cases count them), and a
rule that trusted the table alone gives a different set on those cases. It reads the
members up to the last leaving one and copies the slices between them: members leaving at
either end, side by side, every other one or all of them give the oracle's set.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deleverage.engine import zone_kernels
from deleverage.engine.zone_kernels import calls_apply_nb

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]

RATE = 0.01  # one tier: maintenance = |size| x mark x RATE (no floor, no deduction)
MARK = 100.0


class Case(NamedTuple):
    called: IntArray  # the called set, in join order
    pending: IntArray  # the accounts whose status changed (distinct)
    status: npt.NDArray[np.int8]
    size: FloatArray
    entry: FloatArray
    margin: FloatArray


def _case(seed: int, n_accounts: int, n_called: int, n_pending: int) -> Case:
    rng = np.random.default_rng(seed)
    pool = rng.choice(n_accounts, n_called + n_pending, replace=False).astype(np.int64)
    called = pool[:n_called].copy()  # join order: not sorted
    others = pool[n_called:]
    from_called = called[rng.random(n_called) < min(1.0, 3.0 * n_pending / max(n_called, 1))]
    pending = np.concatenate([from_called[:n_pending], others[: n_pending // 2]])
    pending = rng.permutation(pending).astype(np.int64)
    status = np.zeros(n_accounts, dtype=np.int8)
    status[called] = 2
    status[pending] = rng.choice(np.array([0, 1, 2], dtype=np.int8), len(pending))
    size = rng.choice([-1.0, 1.0], n_accounts) * rng.uniform(0.5, 3.0, n_accounts)
    entry = rng.uniform(90.0, 110.0, n_accounts)
    margin = rng.uniform(5.0, 30.0, n_accounts)
    return Case(called, pending, status, size, entry, margin)


def _oracle(case: Case) -> tuple[IntArray, IntArray, FloatArray]:
    status = case.status
    members = {int(a) for a in case.called}
    leaving = {int(a) for a in case.pending if status[a] == 0 and int(a) in members}
    fresh = sorted(int(a) for a in case.pending if status[a] == 2 and int(a) not in members)
    kept = [int(a) for a in case.called if int(a) not in leaving]
    f = np.array(fresh, dtype=np.int64)
    m = np.abs(case.size[f]) * MARK * RATE - 0.0
    e = case.margin[f] + case.size[f] * (MARK - case.entry[f])
    return np.array(kept + fresh, dtype=np.int64), f, m / e


def _run(case: Case) -> tuple[IntArray, IntArray, FloatArray, bool]:
    n = len(case.status)
    is_called = np.zeros(n, dtype=np.bool_)
    is_called[case.called] = True
    pending_flag = np.zeros(n, dtype=np.bool_)
    pending_flag[case.pending] = True
    out, fresh, ratio, changed = calls_apply_nb(
        case.called, case.pending, case.status, is_called, pending_flag, case.size, case.entry,
        case.margin, MARK, np.zeros(1), np.array([RATE]), np.zeros(1), 0.0, 0.5,
    )  # fmt: skip
    assert not pending_flag.any()  # cleared for every pending account
    want = np.zeros(n, dtype=np.bool_)
    want[out] = True
    assert np.array_equal(is_called, want)  # the flags follow the new set
    return out, fresh, ratio, bool(changed)


def _shared_slots(case: Case) -> int:
    """Members that stay although their slot of the kernel's table is taken by a leaving
    account (the cases where the kernel must read ``is_called``)."""
    pending, called = case.pending, case.called
    leaving = pending[(case.status[pending] == 0) & np.isin(pending, called)]
    width = zone_kernels.FILTER_MIN
    while width < 8 * len(leaving):
        width *= 2
    slots = set((leaving & (width - 1)).tolist())
    stay = called[~np.isin(called, leaving)]
    return sum((int(a) & (width - 1)) in slots for a in stay)


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n_accounts=st.sampled_from([64, 5_000, 1_000_000]),
    n_called=st.integers(0, 3_000),
    n_pending=st.integers(0, 400),
)
def test_call_update_equals_the_rule(
    seed: int, n_accounts: int, n_called: int, n_pending: int
) -> None:
    n_called = min(n_called, n_accounts // 2)
    n_pending = min(n_pending, n_accounts // 2)
    case = _case(seed, n_accounts, n_called, n_pending)
    out, fresh, ratio, changed = _run(case)
    want_out, want_fresh, want_ratio = _oracle(case)
    assert np.array_equal(out, want_out)
    assert np.array_equal(fresh, want_fresh)
    assert np.array_equal(ratio, want_ratio)
    assert changed == (not np.array_equal(out, case.called))


def test_members_sharing_a_slot_with_a_leaving_account_stay() -> None:
    """Large books: thousands of members, hundreds leaving, ids up to 10^6. Many staying
    members share a slot with a leaving account; the kernel keeps them, and a rule that
    dropped every member whose slot is taken (no ``is_called`` test) would not."""
    shared = 0
    for seed in range(8):
        case = _case(seed, 1_000_000, 5_000, 600)
        out, *_ = _run(case)
        want_out, *_ = _oracle(case)
        assert np.array_equal(out, want_out)
        shared += _shared_slots(case)
    assert shared > 0


@pytest.mark.parametrize(
    "where",
    ["first", "last", "adjacent", "all", "one in the middle", "every other", "first and last"],
)
def test_members_leaving_at_the_ends_and_side_by_side(where: str) -> None:
    """The slices between leaving members (:func:`.zone_kernels._drop_nb`): members leaving
    at the set's ends, next to each other, every other one, all of them; the scan of the
    members stops at the last leaving one (none after it is read)."""
    n_called = 600
    case = _case(3, 1_000_000, n_called, 0)
    positions = {
        "first": [0],
        "last": [n_called - 1],
        "adjacent": [10, 11, 12, 300, 301],
        "all": list(range(n_called)),
        "one in the middle": [n_called // 2],
        "every other": list(range(0, n_called, 2)),
        "first and last": [0, n_called - 1],
    }[where]
    leaving = case.called[positions]
    status = case.status.copy()
    status[leaving] = 0
    pending = np.random.default_rng(5).permutation(leaving).astype(np.int64)
    case = case._replace(pending=pending, status=status)
    out, fresh, ratio, changed = _run(case)
    want_out, *_ = _oracle(case)
    assert np.array_equal(out, want_out)
    assert np.array_equal(out, np.delete(case.called, positions))
    assert len(fresh) == 0
    assert len(ratio) == 0
    assert changed


def test_nothing_pending_returns_the_same_set() -> None:
    case = _case(1, 5_000, 300, 0)
    out, fresh, _, changed = _run(case)
    assert np.array_equal(out, case.called)
    assert len(fresh) == 0
    assert not changed


# ------------------------------------------------------------------ adopting a replaced set
def _replaced(seed: int, n_old: int, n_left: int, n_joined: int, shuffle: bool) -> tuple[
    IntArray, IntArray, npt.NDArray[np.bool_], npt.NDArray[np.bool_]
]:  # fmt: skip
    """An old called set, a new one as a quiet stretch makes it (members leaving in place,
    accounts joining at the end; or any order where ``shuffle``), the flags marking the old
    set and pending flags on a random few accounts."""
    rng = np.random.default_rng(seed)
    n = 4 * (n_old + n_joined) + 64
    pool = rng.choice(n, n_old + n_joined, replace=False).astype(np.int64)
    old = pool[:n_old].copy()
    keep = np.ones(n_old, dtype=np.bool_)
    keep[rng.choice(n_old, min(n_left, n_old), replace=False)] = False
    called = np.concatenate([old[keep], pool[n_old:]])
    if shuffle:
        called = rng.permutation(called)
    is_called = np.zeros(n, dtype=np.bool_)
    is_called[old] = True
    pending = rng.random(n) < 0.05
    return old, called, is_called, pending


@settings(max_examples=200, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n_old=st.integers(0, 3000),
    n_left=st.integers(0, 800),
    n_joined=st.integers(0, 800),
    shuffle=st.booleans(),
)
def test_adopt_merge_twin_of_the_full_pass(
    seed: int, n_old: int, n_left: int, n_joined: int, shuffle: bool
) -> None:
    """:func:`._adopt_nb` (the sets merged in order, the full pass past its limit) returns
    the accounts :func:`._adopt_all_nb` returns, in the same order, and leaves the same call
    and pending flags and the scratch all False: sets replaced in place, with many members
    leaving or joining (the full pass taken), reordered, empty, or the same."""
    old, called, is_called, pending = _replaced(seed, n_old, n_left, n_joined, shuffle)
    got_c, got_p, got_s = is_called.copy(), pending.copy(), np.zeros(len(pending), np.bool_)
    want_c, want_p, want_s = is_called.copy(), pending.copy(), np.zeros(len(pending), np.bool_)
    got = zone_kernels._adopt_nb(old, called, got_c, got_p, got_s)
    want = zone_kernels._adopt_all_nb(old, called, want_c, want_p, want_s)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(got_c, want_c)
    np.testing.assert_array_equal(got_p, want_p)
    assert not got_s.any()
    assert not want_s.any()
    expect = np.zeros(len(pending), dtype=np.bool_)
    expect[called] = True
    np.testing.assert_array_equal(got_c, expect)  # the flags mark the new set


@pytest.mark.parametrize(
    ("n_old", "n_left", "n_joined", "shuffle"),
    [(5000, 40, 60, False), (5000, 0, 0, False), (0, 0, 30, False), (300, 300, 0, False),
     (5000, 3000, 10, False), (5000, 10, 10, True), (1, 1, 1, False), (2000, 0, 2000, False)],
)  # fmt: skip
def test_adopt_merge_fixed_cases(n_old: int, n_left: int, n_joined: int, shuffle: bool) -> None:
    """The fixed cases of the twin above (the day's replaced sets: thousands of members,
    tens leaving and joining; and the limit's sides); each seed twice."""
    for seed in (1, 2):
        old, called, is_called, pending = _replaced(seed, n_old, n_left, n_joined, shuffle)
        a_c, a_p, a_s = is_called.copy(), pending.copy(), np.zeros(len(pending), np.bool_)
        b_c, b_p, b_s = is_called.copy(), pending.copy(), np.zeros(len(pending), np.bool_)
        got = zone_kernels._adopt_nb(old, called, a_c, a_p, a_s)
        want = zone_kernels._adopt_all_nb(old, called, b_c, b_p, b_s)
        np.testing.assert_array_equal(got, want)
        np.testing.assert_array_equal(a_c, b_c)
        np.testing.assert_array_equal(a_p, b_p)
        assert not a_s.any()


def test_adopt_merge_with_members_moved_to_the_end() -> None:
    """Members of the old set found again in the new set's tail (moved to the end: set aside
    by the merge, then met in the tail) are in both sets: neither leaving nor new."""
    rng = np.random.default_rng(7)
    old = rng.choice(10_000, 2_000, replace=False).astype(np.int64)
    moved = old[[3, 50, 700]]
    rest = np.setdiff1d(np.arange(10_000), old)[:40]
    called = np.concatenate([np.delete(old, [3, 50, 700, 900]), moved[::-1], rest])
    is_called = np.zeros(10_000, dtype=np.bool_)
    is_called[old] = True
    pending = rng.random(10_000) < 0.05
    a_c, a_p, a_s = is_called.copy(), pending.copy(), np.zeros(10_000, np.bool_)
    b_c, b_p, b_s = is_called.copy(), pending.copy(), np.zeros(10_000, np.bool_)
    got = zone_kernels._adopt_nb(old, called, a_c, a_p, a_s)
    want = zone_kernels._adopt_all_nb(old, called, b_c, b_p, b_s)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(a_c, b_c)
    np.testing.assert_array_equal(a_p, b_p)
    assert not a_s.any()
    assert not np.isin(moved, got).any()  # in both sets: not pending on their account
