"""``CrossIndex.candidates`` remembers its last answer while the reachable prefix and the
touched set are unchanged (quiet marks after a crash ask for the same accounts again): the
remembered answer must equal a fresh merge after any sequence of marks, touches and merges
from outside (``merge_touched``, as the quiet stretches do)."""

from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from deleverage.engine.cross_index import CrossIndex
from deleverage.venues import preset

N = 400

steps = st.lists(
    st.one_of(
        st.tuples(st.just("mark"), st.floats(-0.004, 0.004), st.floats(-0.004, 0.004)),
        st.tuples(st.just("touch"), st.lists(st.integers(0, N - 1), min_size=1, max_size=4)),
        st.tuples(st.just("merge")),
    ),
    min_size=1,
    max_size=40,
)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**31), steps)
def test_remembered_candidates_equal_a_fresh_merge(seed: int, ops: list[tuple[Any, ...]]) -> None:
    rng = np.random.default_rng(seed)
    tiers = preset("binance", "BTCUSDT").tier_arrays
    marks = np.array([100.0, 10.0])
    sizes = [rng.normal(0.0, 50.0, N), rng.normal(0.0, 400.0, N)]
    modes = [np.zeros(N, dtype=np.int8), np.zeros(N, dtype=np.int8)]
    maintenance = sum(np.abs(s) * p * 0.004 for s, p in zip(sizes, marks, strict=True))
    equity = maintenance * rng.uniform(0.9, 60.0, N)
    index = CrossIndex(0.8)
    index.build(marks, sizes, modes, [tiers, tiers], equity, maintenance, np.ones(N, bool))
    now = marks.copy()
    for op in ops:
        if op[0] == "mark":
            now = marks * (1.0 + np.array(op[1:]))
            got = index.candidates(now)
            if got is None:
                continue
            k = int(
                np.searchsorted(
                    index.q,
                    float(np.max(np.abs(now / marks - 1.0))) * (1.0 + 1e-9) + 1e-12,
                    side="right",
                )
            )
            fresh = np.union1d(index.acc[:k], index._dirty)
            assert np.array_equal(got, fresh)
        elif op[0] == "touch":
            index.touch(np.array(op[1], dtype=np.int64))
        else:
            index.merge_touched()
