"""The compiled plan (:mod:`deleverage.protocols.aave.plan_nb`) against the reference
:func:`deleverage.protocols.aave.math.liquidation_plan` as the venue calls it (the largest
collateral and debt reserves, ``debt_to_cover = inf``, the data provider's amount): every field,
bit for bit, on random books near the close-factor, dust and health thresholds; and the issue's
worked example (docs/formulas.md §A2-§A4)."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from deleverage.protocols.aave.math import (
    DEFAULT_LIQUIDATION_CLOSE_FACTOR,
    LIQUIDATABLE,
    NOT_BELOW_THRESHOLD,
    liquidation_plan,
)
from deleverage.protocols.aave.plan_nb import plan_rows_nb

# Token amounts that put reserve values near 1,000 and 2,000 quote (the dust and close-factor
# thresholds) at prices near 1 and 2,000, and zeros.
_AMOUNT = st.one_of(
    st.just(0.0),
    st.floats(0.0, 3.0),
    st.floats(400.0, 3_000.0),
    st.floats(3_000.0, 1e6),
)


def _both(
    c: np.ndarray, d: np.ndarray, p: np.ndarray, lt: np.ndarray, bonus: np.ndarray, fee: np.ndarray
) -> tuple[tuple[np.ndarray, ...], tuple[np.ndarray, ...]]:
    cf, df = np.asfortranarray(c), np.asfortranarray(d)
    rows = np.arange(c.shape[0], dtype=np.int64)[::-1].copy()
    got = plan_rows_nb(
        cf, df, rows, p, lt, bonus, fee, 0.95, 2_000.0, 1_000.0, DEFAULT_LIQUIDATION_CLOSE_FACTOR
    )
    cg, dg = cf[rows], df[rows]  # gathered as the venue does
    ci = (cg * p * (lt > 0.0)).argmax(axis=1)
    di = (dg * p).argmax(axis=1)
    ref = liquidation_plan(
        cg, dg, p, lt, bonus, fee, ci, di, np.full(rows.size, np.inf), use_data_provider=True
    )
    want = (
        ref.health,
        ref.max_debt,
        ref.amounts.debt_repaid,
        ref.amounts.collateral_seized,
        ref.amounts.protocol_fee,
        ref.status,
        ref.deficit,
        ci,
        di,
    )
    return tuple(got), want


@given(
    m=st.integers(1, 30),
    reserves=st.integers(1, 3),
    data=st.data(),
)
def test_the_kernel_plans_what_liquidation_plan_plans(
    m: int, reserves: int, data: st.DataObject
) -> None:
    draw = data.draw
    c = np.array(draw(st.lists(_AMOUNT, min_size=m * reserves, max_size=m * reserves)))
    d = np.array(draw(st.lists(_AMOUNT, min_size=m * reserves, max_size=m * reserves)))
    c, d = c.reshape(m, reserves), d.reshape(m, reserves)
    p = np.array(draw(st.lists(st.sampled_from([1.0, 0.9997, 1_950.0, 2_000.0, 61_000.0],),
                               min_size=reserves, max_size=reserves)))  # fmt: skip
    lt = np.array(draw(st.lists(st.sampled_from([0.0, 0.78, 0.83]), min_size=reserves,
                                max_size=reserves)))  # fmt: skip
    bonus = np.array(draw(st.lists(st.sampled_from([1.045, 1.05, 1.1]), min_size=reserves,
                                   max_size=reserves)))  # fmt: skip
    fee = np.array(draw(st.lists(st.sampled_from([0.0, 0.1, 0.2]), min_size=reserves,
                                 max_size=reserves)))  # fmt: skip
    got, want = _both(c, d, p, lt, bonus, fee)
    for g, w in zip(got, want, strict=True):
        assert g.dtype.kind == w.dtype.kind
        assert g.tobytes() == np.ascontiguousarray(w).astype(g.dtype).tobytes()


def test_the_issues_worked_example_and_each_status() -> None:
    # 10 ETH at 2,000 (LT 0.83, bonus 5%, fee 10%) against 17,000 USDC: HF 0.9765 > 0.95, both
    # reserves above 2,000: 50% of the debt, 8,500 USDC, seizes 4.4625 ETH, fee 0.02125 ETH.
    # A healthy account; and an account under 1,000 of debt (100% close factor): all of it.
    c = np.array([[10.0, 0.0], [10.0, 0.0], [0.5, 0.0]])
    d = np.array([[0.0, 17_000.0], [0.0, 10_000.0], [0.0, 900.0]])
    p = np.array([2_000.0, 1.0])
    got, want = _both(c, d, p, np.array([0.83, 0.78]), np.array([1.05, 1.045]), np.array([0.1] * 2))
    health, _, repaid, seized, fee, status, *_ = got
    order = [2, 1, 0]  # the kernel's rows run backwards
    assert status[order].tolist() == [LIQUIDATABLE, NOT_BELOW_THRESHOLD, LIQUIDATABLE]
    np.testing.assert_allclose(
        [health[2], repaid[2], seized[2], fee[2]], [0.97647, 8_500.0, 4.4625, 0.02125], rtol=1e-5
    )
    assert repaid[0] == 900.0  # HF 830 / 900 < 1, values under 2,000: the whole debt
    assert all(
        g.tobytes() == np.ascontiguousarray(w).tobytes() for g, w in zip(got, want, strict=True)
    )


@given(
    st.lists(
        st.tuples(
            st.floats(1_900.0, 6_000.0),  # ETH collateral value
            st.floats(0.9, 1.02),  # health factor
            st.one_of(st.just(0.0), st.floats(0.0, 1_500.0)),  # USDC collateral
            st.one_of(st.just(0.0), st.floats(0.0, 0.6)),  # ETH debt
        ),
        min_size=1,
        max_size=20,
    )
)
def test_partial_liquidations_near_the_thresholds_plan_the_same(
    books: list[tuple[float, float, float, float]],
) -> None:
    # Health factors around 0.95 and 1 with both reserves near 2,000: the 50% close factor,
    # the data provider's shrinking near 1,000 of leftovers, and the dust rule.
    v, h, usdc, eth_debt = (np.array(x) for x in zip(*books, strict=True))
    c = np.stack([v / 2_000.0, usdc], axis=1)
    debt = (v * 0.83 + usdc * 0.78) / h
    d = np.stack([eth_debt, np.maximum(debt - eth_debt * 2_000.0, 0.0)], axis=1)
    got, want = _both(
        c, d, np.array([2_000.0, 1.0]), np.array([0.83, 0.78]), np.array([1.05, 1.045]),
        np.array([0.1, 0.1]),
    )  # fmt: skip
    for g, w in zip(got, want, strict=True):
        assert g.tobytes() == np.ascontiguousarray(w).astype(g.dtype).tobytes()


def test_a_subnormal_debt_plans_alike_without_a_warning() -> None:
    # Found by Hypothesis: 1 token of collateral against 5e-324 of debt overflowed the
    # reference's division (a RuntimeWarning); the health factor is +inf in both.
    c = np.array([[1.0, 0.0]])
    d = np.array([[0.0, 5e-324]])
    p, lt = np.array([1.0, 1.0]), np.array([0.78, 0.0])
    got, want = _both(c, d, p, lt, np.array([1.05, 1.05]), np.array([0.1, 0.1]))
    assert np.isinf(want[0][0])
    assert np.isinf(got[0][0])
    for g, w in zip(got, want, strict=True):
        assert g.tobytes() == np.ascontiguousarray(w).astype(g.dtype).tobytes()
