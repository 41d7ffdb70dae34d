"""The compiled summary of a step's planned liquidations for §D3's skip bound
(:func:`deleverage.protocols.aave.plan_nb.best_opportunity_nb`) against the NumPy expressions
the venue evaluated before (the rows that can run, their keeper incentives at the market prices,
the largest one, the earliest flag block): the same count, the same float (NaN included) and the
same block, on random plans."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from deleverage.protocols.aave.math import LIQUIDATABLE, NOT_BELOW_THRESHOLD
from deleverage.protocols.aave.plan_nb import best_opportunity_nb

_AMOUNT = st.one_of(st.sampled_from([0.0, -0.0, 1.0, 2.0]), st.floats(-1.0, 1e6))
_PRICE = st.one_of(st.sampled_from([1.0, 2_000.0, math.nan, math.inf]), st.floats(0.0, 1e5))


@settings(max_examples=300, deadline=None)
@given(
    rows=st.lists(
        st.tuples(
            st.sampled_from([LIQUIDATABLE, NOT_BELOW_THRESHOLD, 2]),
            _AMOUNT, _AMOUNT, _AMOUNT,  # repaid, seized, fee
            st.integers(0, 2), st.integers(0, 2),  # collateral and debt reserves
            st.integers(-1, 50),  # the account's flag block
        ),
        max_size=30,
    ),
    market=st.lists(_PRICE, min_size=3, max_size=3),
)  # fmt: skip
def test_the_kernel_is_the_venues_skip_inputs(
    rows: list[tuple[int, float, float, float, int, int, int]], market: list[float]
) -> None:
    status = np.array([r[0] for r in rows], dtype=np.int8)
    repaid, seized, fee = (np.array([r[k] for r in rows], dtype=np.float64) for k in (1, 2, 3))
    ci, di = (np.array([r[k] for r in rows], dtype=np.int64) for k in (4, 5))
    accounts = np.arange(len(rows), dtype=np.int64)[::-1].copy()
    since = np.zeros(len(rows), dtype=np.int64)
    since[accounts] = [r[6] for r in rows]
    pm = np.array(market)
    count, best, oldest = best_opportunity_nb(
        status, repaid, seized, fee, ci, di, pm, since, accounts, LIQUIDATABLE
    )
    # The venue's former expressions.
    ok = np.flatnonzero((status == LIQUIDATABLE) & (repaid > 0.0))
    assert count == ok.size
    if ok.size == 0:
        return
    with np.errstate(invalid="ignore"):
        incentive = (seized[ok] - fee[ok]) * pm[ci[ok]] - repaid[ok] * pm[di[ok]]
    want = float(incentive.max())
    assert (math.isnan(best) and math.isnan(want)) or best == want
    assert oldest == int(since[accounts[ok]].min())


def test_a_plan_that_pays_and_one_that_cannot() -> None:
    # Seize 1.05 WETH (fee 0.005) at 2,000 for 2,000 USDC repaid: incentive 90 quote; the
    # second row is not below its threshold and does not count.
    got = best_opportunity_nb(
        np.array([LIQUIDATABLE, NOT_BELOW_THRESHOLD], dtype=np.int8),
        np.array([2_000.0, 5.0]), np.array([1.05, 9.0]), np.array([0.005, 0.0]),
        np.array([1, 1]), np.array([0, 0]), np.array([1.0, 2_000.0]),
        np.array([7, 3]), np.array([0, 1]), LIQUIDATABLE,
    )  # fmt: skip
    assert got[0] == 1
    assert math.isclose(got[1], 90.0)
    assert got[2] == 7
