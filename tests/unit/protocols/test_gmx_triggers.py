"""TriggerLadder against brute force: the crossed prefix is every open position whose
conservative key is past the bound (in ladder order) however positions close, head pointer
and compaction included; the nearest exact key is the minimum over all open positions."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deleverage.protocols.gmx import triggers
from deleverage.protocols.gmx.triggers import TriggerLadder


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**16),
    n=st.integers(0, 3_000),
    rounds=st.lists(st.tuples(st.floats(0.0, 1.0), st.floats(0.0, 0.9)), max_size=12),
)
def test_crossed_and_nearest_equal_a_brute_force_pass(
    seed: int, n: int, rounds: list[tuple[float, float]]
) -> None:
    # Arrange: conservative keys sorted, exact keys at or above them; positions close
    # (sizes go to 0, never back) between calls, most of them among the crossed ones
    rng = np.random.default_rng(seed)
    keys = np.sort(rng.uniform(0.0, 1.0, n))
    idx = rng.permutation(n).astype(np.intp)
    exact_key = np.empty(n)
    exact_key[idx] = keys + rng.exponential(0.01, n)
    size = np.ones(n)
    ladder = TriggerLadder(keys.copy(), idx.copy())
    for bound, closing in rounds:
        # Act
        got = ladder.crossed(bound, "left", size)
        # Assert: the open positions with key < bound, in key order
        want = idx[(keys < bound) & (size[idx] > 0.0)]
        assert got.tolist() == want.tolist()
        live = size > 0.0
        nearest = ladder.nearest(bound, size, lambda i: exact_key[i])
        assert nearest == (exact_key[live].min() if live.any() else np.inf)
        # close a share of the crossed ones and a few others
        size[got[rng.random(got.size) < closing]] = 0.0
        size[rng.random(n) < closing * 0.05] = 0.0


def test_a_crossed_prefix_full_of_closed_entries_is_compacted() -> None:
    # Arrange: 1,000 entries, the first 600 crossed; all but every tenth closes
    ladder = TriggerLadder(np.arange(1_000.0), np.arange(1_000, dtype=np.intp))
    size = np.ones(1_000)
    size[:600] = 0.0
    size[5:600:10] = 1.0
    # Act
    got = ladder.crossed(600.0, "left", size)
    # Assert: the 60 live ones; the head is at the first of them, the 535 closed ones
    # behind it are dropped, and later calls still see the same positions
    assert got.tolist() == list(range(5, 600, 10))
    assert ladder.head == 5
    assert ladder.keys.size == 1_000 - 540 + 5
    assert ladder.crossed(600.0, "left", size).tolist() == got.tolist()


def test_past_the_scan_cap_the_edge_is_the_next_conservative_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Arrange: exact keys far above the conservative ones, so the scan would run to the end
    monkeypatch.setattr(triggers, "_SCAN_CAP", 64)
    keys = np.arange(1_000.0)
    ladder = TriggerLadder(keys, np.arange(1_000, dtype=np.intp))
    # Act: the scan evaluates the one crossed entry and chunks of 32 and 64 beyond it (96
    # entries past the bound: over the cap of 64), then stops
    edge = ladder.nearest(0.5, np.ones(1_000), lambda i: keys[i] + 10_000.0)
    # Assert: the next conservative key, below every exact key (a narrower, valid band)
    assert edge == 97.0
