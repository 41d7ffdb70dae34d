"""Properties of deleverage.protocols.aave.math.liquidation_plan on random accounts: the
amounts stay within the balances, the liquidator never loses at the oracle price, a
liquidation that goes through leaves no dust, and a deficit appears only when the collateral
is gone (Hypothesis; the protocol's vectors are in tests/conformance/aave/)."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from deleverage.protocols.aave.math import (
    LIQUIDATABLE,
    MIN_LEFTOVER_BASE,
    NOT_BELOW_THRESHOLD,
    liquidation_plan,
)

amount = st.one_of(st.just(0.0), st.floats(1e-6, 1e6))  # no subnormal token amounts
price = st.floats(0.01, 1e5)


@given(
    collateral=st.lists(amount, min_size=3, max_size=3),
    debt=st.lists(amount, min_size=3, max_size=3),
    prices=st.lists(price, min_size=3, max_size=3),
    thresholds=st.lists(st.floats(0.0, 0.9), min_size=3, max_size=3),
    bonus=st.floats(1.0001, 1.1),
    fee=st.floats(0.0, 0.5),
    pair=st.tuples(st.integers(0, 2), st.integers(0, 2)),
    cover=st.one_of(st.just(float("inf")), st.floats(1e-6, 1e6)),
    provider=st.booleans(),
)
def test_a_liquidation_stays_within_the_accounts_rules(
    collateral: list[float],
    debt: list[float],
    prices: list[float],
    thresholds: list[float],
    bonus: float,
    fee: float,
    pair: tuple[int, int],
    cover: float,
    provider: bool,
) -> None:
    ci, di = pair
    lt = np.array(thresholds)
    lt[ci] = max(lt[ci], 0.1)  # the seized reserve is a collateral
    plan = liquidation_plan(
        [collateral],
        [debt],
        prices,
        lt,
        [bonus] * 3,
        [fee] * 3,
        [ci],
        [di],
        [cover],
        use_data_provider=provider,
    )
    a = plan.amounts
    repaid, seized, fee_tokens = a.debt_repaid[0], a.collateral_seized[0], a.protocol_fee[0]
    pc, pd = prices[ci], prices[di]
    if plan.status[0] != LIQUIDATABLE:
        assert repaid == seized == fee_tokens == 0.0
        assert plan.deficit.sum() == 0.0
        if plan.status[0] == NOT_BELOW_THRESHOLD:
            assert plan.health[0] >= 1.0
        return
    assert plan.health[0] < 1.0
    assert 0.0 <= repaid <= debt[di] * (1 + 1e-12)
    assert 0.0 <= seized <= collateral[ci] * (1 + 1e-12)
    assert 0.0 <= fee_tokens <= seized
    # The bonus: what the liquidator receives is worth at least what it repaid.
    assert a.to_liquidator[0] * pc >= repaid * pd * (1 - 1e-9)
    cleared = repaid >= debt[di] * (1 - 1e-12) or seized >= collateral[ci] * (1 - 1e-12)
    if not cleared:
        assert (collateral[ci] - seized) * pc >= MIN_LEFTOVER_BASE * (1 - 1e-9)
        assert (debt[di] - repaid) * pd >= MIN_LEFTOVER_BASE * (1 - 1e-9)
    if plan.deficit.sum() > 0.0:
        assert seized >= collateral[ci] * (1 - 1e-12)
        others = [collateral[r] * prices[r] * (lt[r] > 0) for r in range(3) if r != ci]
        assert sum(others) == 0.0
        assert plan.deficit[0, di] == debt[di] - repaid
