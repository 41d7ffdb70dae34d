"""Invariants linking the exact integer rules to the engine's float rules (Hypothesis).

The integer functions follow Drift's rounding (floors at each step), so they may fall short of
the float value by a few units of the last place, never exceed it by more than that.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from deleverage.rules import fixed_point as fp
from deleverage.rules import inverse
from deleverage.rules import liquidation as liq

shortages = st.integers(min_value=1_000_000, max_value=10**12)  # $1 .. $1M
prices = st.integers(min_value=1_000_000, max_value=10**11)  # $1 .. $100k
ratios = st.integers(min_value=300, max_value=2_000)  # 3% .. 20%
fees = st.integers(min_value=0, max_value=20_000)  # 0 .. 2%


@given(shortages, ratios, fees, fees, prices)
def test_exact_cover_size_matches_the_float_formula(
    shortage: int, ratio: int, fee_l: int, fee_i: int, price: int
) -> None:
    exact = fp.base_to_cover_shortage(
        shortage=shortage, margin_ratio=ratio, liquidator_fee=fee_l, insurance_fee=fee_i,
        oracle_price=price,
    )  # fmt: skip
    oracle = price / fp.PRICE
    size = liq.size_to_restore(
        size=1e18, shortage=shortage / fp.QUOTE, mark=oracle, requirement_rate=ratio / fp.MARGIN,
        fee_rate=fee_i / fp.FEE, fill_price=oracle * (1 - fee_l / fp.FEE), fee_price=oracle,
    )  # fmt: skip
    # ratio >= 3% > 2% + 2% is not guaranteed: the release can vanish (no finite size).
    if exact == fp.UNBOUNDED:
        assert size == 1e18
        return
    # The integer denominator is floored (a smaller release, a larger size) and the result
    # floored: within a relative 1e-5 of the float size, or a unit of BASE.
    assert abs(exact / fp.BASE - size) <= max(1e-5 * size, 2e-9)


@given(shortages, st.integers(min_value=10**7, max_value=10**13), ratios, fees, prices)
def test_insurance_fee_never_exceeds_what_the_ratio_leaves(
    shortage: int, base: int, ratio: int, fee_l: int, price: int
) -> None:
    fee = fp.insurance_fee_for_shortage(
        shortage=shortage, base=base, margin_ratio=ratio, liquidator_fee=fee_l,
        oracle_price=price, max_insurance_fee=10**6,
    )  # fmt: skip
    assert 0 <= fee <= max(0, ratio * 100 - fee_l) * 19 // 20
    notional = base / fp.BASE * price / fp.PRICE
    rate = liq.insurance_fee_rate(
        shortage=shortage / fp.QUOTE, notional=notional, requirement_rate=ratio / fp.MARGIN,
        liquidator_fee_rate=fee_l / fp.FEE, max_rate=1.0,
    )  # fmt: skip
    assert abs(fee / fp.FEE - rate) <= 3e-6


@given(
    st.integers(min_value=1, max_value=10**7).map(float),
    st.floats(min_value=100.0, max_value=200_000.0),
    st.floats(min_value=1.0, max_value=125.0),
    st.sampled_from([1, -1]),
)
def test_inverse_equity_is_zero_at_the_bankruptcy_price(
    contracts: float, entry: float, leverage: float, side: int
) -> None:
    margin = contracts / entry / leverage
    price = float(inverse.bankruptcy_price(side * contracts, entry, margin))
    if price == float("inf"):  # a 1x short never goes bankrupt
        assert side < 0
        return
    equity = margin + float(inverse.unrealized_pnl(side * contracts, entry, price))
    assert abs(equity) <= 1e-9 * max(1.0, margin)
