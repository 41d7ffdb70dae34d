"""The called set's update (:func:`deleverage.engine.risk.step_kernels.calls_update_nb`)
against a plain set-based oracle of the rule: a called account stays while it is in the warning
zone or under maintenance; an account of the zone not (still) called is called afresh, after
the ones kept, in the scan's order."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from deleverage.engine.risk.step_kernels import calls_update_nb

_ACCOUNTS = st.lists(st.integers(0, 40), unique=True, max_size=25)


@settings(max_examples=200, deadline=None)
@given(called=_ACCOUNTS, warn=_ACCOUNTS, below=_ACCOUNTS)
def test_called_set_update_follows_the_rule(
    called: list[int], warn: list[int], below: list[int]
) -> None:
    below = [a for a in below if a not in warn]  # a scan puts an account in one set
    flag = np.zeros(41, dtype=np.bool_)
    got, fresh = calls_update_nb(
        np.array(called, dtype=np.int64), np.array(warn, dtype=np.int64),
        np.array(below, dtype=np.int64), flag,
    )  # fmt: skip
    zone = set(warn) | set(below)
    kept = [a for a in called if a in zone]
    new = [a for a in warn if a not in kept]
    assert got.tolist() == kept + new
    assert fresh.tolist() == [a not in kept for a in warn]
    assert not flag.any()  # the scratch array is left all False
