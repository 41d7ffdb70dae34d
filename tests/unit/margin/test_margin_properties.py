"""Property tests of the margin math: invariants that hold for any position and tier table."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from deleverage.rules.margin import (
    account_liquidation_prices,
    apply_fill,
    bankruptcy_price,
    bankruptcy_price_cross,
    liquidation_price_cross,
    liquidation_price_dydx,
    liquidation_price_hyperliquid,
    liquidation_price_isolated,
    maintenance_margin,
    notional,
    uniform_liquidation_factors,
    unrealized_pnl,
)
from deleverage.spec import TierArrays, maintenance_deductions

REL = 1e-9

sizes = st.floats(1e-3, 1e3).flatmap(lambda a: st.sampled_from([a, -a]))
prices = st.floats(1.0, 1e5)
fractions = st.floats(0.005, 1.0)
cash_balances = st.one_of(
    st.just(0.0), st.floats(1e-2, 1e6).flatmap(lambda a: st.sampled_from([a, -a]))
)


@st.composite
def tier_tables(draw: st.DrawFn) -> TierArrays:
    """Random valid tier tables: floors rising from 0, maintenance rates non-decreasing."""
    count = draw(st.integers(1, 6))
    floors = sorted(draw(st.sets(st.floats(10.0, 1e8), min_size=count - 1, max_size=count - 1)))
    floor = np.array([0.0, *floors])
    first = draw(st.floats(0.001, 0.05))
    steps = draw(st.lists(st.floats(0.0, 0.08), min_size=count - 1, max_size=count - 1))
    mmr = np.cumsum([first, *steps])
    return TierArrays(
        floor=floor, imr=np.minimum(2 * mmr, 1.0), mmr=mmr, cum=maintenance_deductions(floor, mmr)
    )


def _gap(size: float, entry: float, margin: float, price: float, tiers: TierArrays) -> float:
    equity = margin + float(unrealized_pnl(size, entry, price))
    return equity - float(maintenance_margin(notional(size, price), tiers))


@settings(max_examples=300, deadline=None)
@given(size=sizes, entry=prices, initial=fractions, tiers=tier_tables())
def test_equity_at_the_isolated_liquidation_price_equals_maintenance_margin(
    size: float, entry: float, initial: float, tiers: TierArrays
) -> None:
    # Arrange
    margin = abs(size) * entry * initial
    # Act
    lp = float(liquidation_price_isolated(size, entry, margin, tiers))
    # Assert
    if lp == 0.0:
        # Clipped: a long that no fall can liquidate, or a short liquidatable at any price.
        assert (_gap(size, entry, margin, 0.0, tiers) >= 0) == (size > 0)
        return
    scale = abs(size) * max(entry, lp) + margin
    assert abs(_gap(size, entry, margin, lp, tiers)) <= REL * scale


@settings(max_examples=200, deadline=None)
@given(size=sizes, entry=prices, initial=fractions, tiers=tier_tables())
def test_position_is_safe_on_the_near_side_of_the_liquidation_price(
    size: float, entry: float, initial: float, tiers: TierArrays
) -> None:
    # Arrange
    margin = abs(size) * entry * initial
    lp = float(liquidation_price_isolated(size, entry, margin, tiers))
    assume(lp > 0)
    safe_side = lp * (1 + 1e-6 * np.sign(size))
    unsafe_side = lp * (1 - 1e-6 * np.sign(size))
    # The gap subtracts terms of order |size| x entry: measure the tolerance on those.
    scale = abs(size) * max(lp, entry) * 1e-9
    # Act / Assert: the boundary is the unique crossing of a monotone gap.
    assert _gap(size, entry, margin, safe_side, tiers) > -scale
    assert _gap(size, entry, margin, unsafe_side, tiers) < scale


@settings(max_examples=200, deadline=None)
@given(
    size=sizes,
    entry=prices,
    wallet=st.floats(0.0, 1e7),
    other_mm=st.floats(0.0, 1e5),
    other_pnl=st.floats(-1e5, 1e5),
    tiers=tier_tables(),
)
def test_cross_liquidation_price_balances_account_equity_and_total_maintenance(
    size: float, entry: float, wallet: float, other_mm: float, other_pnl: float, tiers: TierArrays
) -> None:
    # Act
    lp = float(
        liquidation_price_cross(
            size,
            entry,
            wallet_balance=wallet,
            tiers=tiers,
            other_maintenance=other_mm,
            other_unrealized_pnl=other_pnl,
        )
    )
    assume(lp > 0)
    # Assert
    equity = wallet + other_pnl + float(unrealized_pnl(size, entry, lp))
    required = other_mm + float(maintenance_margin(notional(size, lp), tiers))
    scale = abs(size) * max(entry, lp) + wallet + abs(other_pnl) + other_mm
    assert abs(equity - required) <= REL * scale


@settings(max_examples=200, deadline=None)
@given(size=sizes, entry=prices, initial=fractions, tiers=tier_tables())
def test_maintenance_on_entry_value_makes_equity_meet_the_entry_maintenance(
    size: float, entry: float, initial: float, tiers: TierArrays
) -> None:
    # Arrange
    margin = abs(size) * entry * initial
    # Act
    lp = float(liquidation_price_isolated(size, entry, margin, tiers, mm_basis="entry"))
    assume(lp > 0)
    # Assert
    equity = margin + float(unrealized_pnl(size, entry, lp))
    required = float(maintenance_margin(notional(size, entry), tiers))
    assert abs(equity - required) <= REL * (abs(size) * max(entry, lp) + margin)


@settings(max_examples=200, deadline=None)
@given(tiers=tier_tables())
def test_maintenance_margin_is_continuous_across_tier_floors(tiers: TierArrays) -> None:
    # Act: both neighbouring tiers' formulas at each floor, and the function just below it.
    floor = tiers.floor[1:]
    upper = floor * tiers.mmr[1:] - tiers.cum[1:]
    lower = floor * tiers.mmr[:-1] - tiers.cum[:-1]
    just_below = maintenance_margin(np.nextafter(floor, 0.0), tiers)
    # Assert
    np.testing.assert_allclose(upper, lower, rtol=REL, atol=0)
    np.testing.assert_allclose(just_below, maintenance_margin(floor, tiers), rtol=REL, atol=0)


@settings(max_examples=300, deadline=None)
@given(
    size=st.one_of(st.just(0.0), sizes),
    entry=prices,
    fill_size=sizes,
    fill_price=prices,
    mark=prices,
)
@example(size=2.0, entry=100.0, fill_size=-2.0, fill_price=110.0, mark=105.0)  # close
@example(size=2.0, entry=100.0, fill_size=-3.0, fill_price=110.0, mark=105.0)  # flip
@example(size=-1.0, entry=100.0, fill_size=-1.0, fill_price=90.0, mark=95.0)  # add
def test_apply_fill_conserves_money_at_any_mark(
    size: float, entry: float, fill_size: float, fill_price: float, mark: float
) -> None:
    # Arrange
    entry = entry if size != 0 else 0.0
    old_unrealized = float(unrealized_pnl(size, entry, mark))
    fill_pnl = fill_size * (mark - fill_price)
    # Act
    new_size, new_entry, realized = apply_fill(size, entry, fill_size, fill_price)
    new_unrealized = float(unrealized_pnl(new_size, new_entry, mark))
    # Assert
    scale = (abs(size) + abs(fill_size)) * max(entry, fill_price, mark)
    assert abs(float(realized) + new_unrealized - (old_unrealized + fill_pnl)) <= REL * scale


@settings(max_examples=300, deadline=None)
@given(
    size=sizes,
    entry=prices,
    initial=fractions,
    fee=st.one_of(st.none(), st.floats(0.0, 0.01)),
)
def test_bankruptcy_price_leaves_zero_equity_after_the_closing_fee(
    size: float, entry: float, initial: float, fee: float | None
) -> None:
    # Arrange
    margin = abs(size) * entry * initial
    # Act
    bp = float(bankruptcy_price(size, entry, margin, close_fee_rate=fee))
    assume(bp > 0)
    # Assert
    equity = margin + float(unrealized_pnl(size, entry, bp)) - (fee or 0.0) * abs(size) * bp
    assert abs(equity) <= REL * (abs(size) * max(entry, bp) + margin)


@settings(max_examples=100, deadline=None)
@given(size=sizes, entry=prices, wallet=st.floats(0.0, 1e6), other_pnl=st.floats(-1e4, 1e4))
def test_cross_bankruptcy_price_is_the_isolated_one_with_the_account_margin(
    size: float, entry: float, wallet: float, other_pnl: float
) -> None:
    # Act
    cross = bankruptcy_price_cross(
        size, entry, wallet_balance=wallet, other_unrealized_pnl=other_pnl
    )
    isolated = bankruptcy_price(size, entry, wallet + other_pnl)
    # Assert
    np.testing.assert_allclose(cross, isolated, rtol=1e-15)


@settings(max_examples=200, deadline=None)
@given(
    size=sizes,
    entry=prices,
    price=prices,
    initial=fractions,
    other_mm=st.floats(0.0, 1e4),
    tiers=tier_tables(),
)
def test_hyperliquid_formula_agrees_with_the_binance_form(
    size: float, entry: float, price: float, initial: float, other_mm: float, tiers: TierArrays
) -> None:
    # Arrange: Hyperliquid's margin is valued at the current price (unrealized PnL included).
    wallet = abs(size) * entry * initial + other_mm
    margin_value = wallet + float(unrealized_pnl(size, entry, price))
    # Act
    hyperliquid = float(
        liquidation_price_hyperliquid(
            size, price, margin=margin_value, tiers=tiers, other_maintenance=other_mm
        )
    )
    binance = float(
        liquidation_price_cross(
            size, entry, wallet_balance=wallet, tiers=tiers, other_maintenance=other_mm
        )
    )
    # Assert
    assert hyperliquid == pytest.approx(binance, rel=1e-8, abs=1e-9 * entry)


@settings(max_examples=200, deadline=None)
@given(size=sizes, price=prices, initial=fractions, mmf=st.floats(0.001, 0.3))
def test_dydx_formula_agrees_with_the_binance_form_for_one_tier(
    size: float, price: float, initial: float, mmf: float
) -> None:
    # Arrange
    equity = abs(size) * price * initial
    tiers = TierArrays(floor=np.zeros(1), imr=np.ones(1), mmr=np.array([mmf]), cum=np.zeros(1))
    # Act
    dydx = float(liquidation_price_dydx(size, price, equity=equity, maintenance_fraction=mmf))
    binance = float(liquidation_price_isolated(size, price, equity, tiers))
    # Assert
    assert dydx == pytest.approx(binance, rel=1e-10, abs=1e-10 * price)


accounts = st.integers(1, 4).flatmap(
    lambda n: st.tuples(
        st.lists(sizes, min_size=n, max_size=n),
        st.lists(prices, min_size=n, max_size=n),
        st.lists(st.floats(0.005, 0.2), min_size=n, max_size=n),
    )
)


@settings(max_examples=200, deadline=None)
@given(account=accounts, cash=cash_balances)
def test_account_liquidation_prices_match_one_cross_position_at_a_time(
    account: tuple[list[float], list[float], list[float]], cash: float
) -> None:
    # Arrange
    s, p, mmf = (np.array(x) for x in account)
    equity = cash + float(np.sum(s * p))
    own = np.abs(s) * p * mmf
    # Act
    prices_all = account_liquidation_prices(s, p, quote_balance=cash, maintenance_fractions=mmf)
    # Assert
    for i in range(len(s)):
        one = liquidation_price_dydx(
            s[i],
            p[i],
            equity=equity,
            maintenance_fraction=mmf[i],
            other_maintenance=float(own.sum() - own[i]),
        )
        assert float(prices_all[i]) == pytest.approx(float(one), rel=1e-9, abs=1e-9 * p[i])


def _account_gap(
    k: np.ndarray, s: np.ndarray, p: np.ndarray, cash: float, tables: list[TierArrays]
) -> np.ndarray:
    required = sum(
        (maintenance_margin(k * abs(si) * pi, t) for si, pi, t in zip(s, p, tables, strict=True)),
        start=np.zeros_like(k),
    )
    return cash + k * float(np.sum(s * p)) - required


@settings(max_examples=200, deadline=None)
@given(account=accounts, cash=cash_balances, data=st.data())
def test_uniform_factors_bound_exactly_the_safe_moves(
    account: tuple[list[float], list[float], list[float]], cash: float, data: st.DataObject
) -> None:
    # Arrange
    s, p, _ = (np.array(x) for x in account)
    tables = [data.draw(tier_tables()) for _ in s]
    exposure = float(np.sum(np.abs(s) * p))

    def tolerance(k: np.ndarray | float) -> np.ndarray:
        return REL * (abs(cash) + np.asarray(k) * exposure)

    # Act
    bounds = uniform_liquidation_factors(s, p, quote_balance=cash, tiers=tables)
    lower, upper = (float(x) for x in bounds)
    # Assert: the boundaries are roots, and a brute-force grid agrees on which moves are safe.
    if np.isnan(lower):
        assert np.isnan(upper)
        grid = np.linspace(0.0, 100.0, 2001)
        assert np.all(_account_gap(grid, s, p, cash, tables) < tolerance(grid))
        return
    for k in (lower, upper):
        if 0 < k < np.inf:
            assert abs(float(_account_gap(np.array(k), s, p, cash, tables))) <= tolerance(k)
    top = 2 * upper if np.isfinite(upper) else 2 * lower + 10.0
    grid = np.linspace(0.0, top, 2001)
    gap = _account_gap(grid, s, p, cash, tables)
    inside = (grid >= lower) & (grid <= upper)
    assert np.all(gap[inside] >= -tolerance(grid[inside]))
    assert np.all(gap[~inside] <= tolerance(grid[~inside]))


@settings(max_examples=100, deadline=None)
@given(account=accounts, cash=cash_balances)
def test_uniform_factors_with_flat_fractions_equal_one_tier_tables(
    account: tuple[list[float], list[float], list[float]], cash: float
) -> None:
    # Arrange
    s, p, mmf = (np.array(x) for x in account)
    tables = [
        TierArrays(floor=np.zeros(1), imr=np.ones(1), mmr=np.array([m]), cum=np.zeros(1))
        for m in mmf
    ]
    # Act
    flat = uniform_liquidation_factors(s, p, quote_balance=cash, maintenance_fractions=mmf)
    tiered = uniform_liquidation_factors(s, p, quote_balance=cash, tiers=tables)
    # Assert
    np.testing.assert_allclose(flat, tiered, rtol=1e-9)
