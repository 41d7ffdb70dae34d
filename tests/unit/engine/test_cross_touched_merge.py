"""The cross index's touched set (:meth:`.CrossIndex.merge_touched`): the accounts touched since
the last call merged into the ascending set by :func:`.cross_kernels.merge_sorted_nb`, which must
equal ``np.unique`` of the set and the new accounts (the oracle: the NumPy expression it
replaced) on random sets with repeats, overlaps, empty sides and several batches of touches.
"""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from deleverage.engine.cross_index import CrossIndex
from deleverage.engine.cross_kernels import merge_sorted_nb

ids = st.lists(st.integers(0, 60), max_size=40)


@settings(max_examples=300, deadline=None)
@given(dirty=ids, new=ids)
def test_the_merge_equals_numpy_unique(dirty: list[int], new: list[int]) -> None:
    d = np.unique(np.array(dirty, dtype=np.int64))
    n = np.array(new, dtype=np.int64)
    got = merge_sorted_nb(d, n)
    want = np.unique(np.concatenate([d, n]))
    assert got.dtype == np.int64
    assert got.tolist() == want.tolist()


@settings(max_examples=100, deadline=None)
@given(batches=st.lists(st.lists(ids, max_size=4), min_size=1, max_size=5))
def test_the_index_keeps_every_touched_account_once(
    batches: list[list[list[int]]],
) -> None:
    index = CrossIndex(0.8)
    index.valid = True  # as after a build: touches are kept
    seen = np.zeros(0, dtype=np.int64)
    for batch in batches:
        for touched in batch:
            index.touch(np.array(touched, dtype=np.int64))
            seen = np.concatenate([seen, np.array(touched, dtype=np.int64)])
        index.merge_touched()
        assert index._dirty.tolist() == np.unique(seen).tolist()
