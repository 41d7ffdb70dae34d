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
