"""Tests of deleverage.liquidity's models: closed forms, hand-walked books, properties.

Expected numbers come from outside the code: integrals of the price schedule worked by hand
(and checked with scipy.integrate.quad), a book walked level by level on paper, the square-root
law's formula (Tóth et al. 2011, https://doi.org/10.1103/PhysRevX.1.021006). The books' files
(CSV, Parquet, Binance's bookDepth archive) are test_liquidity_files.py's.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from _liquidity_books import three_level_book
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from scipy.integrate import quad

from deleverage.errors import ValidationError
from deleverage.liquidity import (
    ConstantDepthBook,
    Fill,
    L2Book,
    LiquidityModel,
    PowerLawImpact,
    decay_factor,
    linear_fill,
    linear_fill_nb,
    linear_last_price,
    linear_size_for_price_move,
    linear_vwap,
    power_law_fill,
    power_law_fill_nb,
    power_law_impact,
    power_law_size_for_price_move,
    power_law_vwap,
)

S = 1_000_000_000  # ns per second


# --------------------------------------------------------------------------------------------
# Constant-depth (linear) book
# --------------------------------------------------------------------------------------------


def test_linear_book_buy_pays_the_average_of_the_linear_price_schedule() -> None:
    # Arrange: 10 BTC per 1 % -> D = 1000 BTC per 100 %; p(q) = 100 000 (1 + q / 1000).
    # By hand: vwap = (1/5) * integral_0^5 p(q) dq = 100 000 (1 + 2.5 / 1000) = 100 250,
    # last = p(5) = 100 500, notional = 5 * 100 250 = 501 250.
    book = ConstantDepthBook(depth_per_pct=10.0, half_life_s=30.0)

    # Act
    fill = book.quote(1, 5.0, 100_000.0, 0)

    # Assert
    assert fill == pytest.approx(Fill(5.0, 100_250.0, 100_500.0, 501_250.0, 0.0, 0.005))


def test_linear_book_vwap_after_earlier_sells_matches_numerical_integral() -> None:
    # Arrange: 3 BTC sold first (x = -3), then a 5 BTC buy walks y from -3 to 2
    book = ConstantDepthBook(depth_per_pct=10.0, half_life_s=math.inf)
    book.execute(-1, 3.0, 100_000.0, 0)
    expected = quad(lambda y: 100_000.0 * (1.0 + y / 1_000.0), -3.0, 2.0)[0] / 5.0

    # Act
    fill = book.quote(1, 5.0, 100_000.0, 0)

    # Assert
    assert fill.vwap == pytest.approx(expected, rel=1e-12)
    assert fill.vwap == pytest.approx(99_950.0, rel=1e-12)  # by hand: 1e5 (1 + (-0.5) / 1000)
    assert fill.last_price == pytest.approx(100_200.0, rel=1e-12)


def test_linear_formulas_vectorize_and_agree_with_the_book() -> None:
    # Arrange
    sides = np.array([1.0, -1.0, 1.0, -1.0])
    sizes = np.array([0.0, 5.0, 12.5, 40.0])
    book = ConstantDepthBook(depth_per_pct=10.0, half_life_s=30.0)

    # Act
    vwaps = linear_vwap(sides, sizes, 50_000.0, book.depth)
    lasts = linear_last_price(sides, sizes, 50_000.0, book.depth)

    # Assert
    for s, q, v, last in zip(sides, sizes, vwaps, lasts, strict=True):
        fill = book.quote(int(s), float(q), 50_000.0, 0)
        assert fill.vwap == pytest.approx(v, rel=1e-14)
        assert fill.last_price == pytest.approx(last, rel=1e-14)


def test_linear_size_for_price_move_moves_the_impact_by_that_much() -> None:
    # Arrange
    book = ConstantDepthBook(depth_per_pct=7.0, half_life_s=30.0)
    size = float(linear_size_for_price_move(-0.004, book.depth))

    # Act
    fill = book.execute(-1, size, 60_000.0, 0)

    # Assert: 700 BTC per 100 % -> 2.8 BTC per 0.4 %
    assert size == pytest.approx(2.8)
    assert fill.impact == pytest.approx(-0.004)
    assert fill.last_price == pytest.approx(60_000.0 * 0.996)


def test_constant_depth_book_leaves_the_part_beyond_max_move_unfilled() -> None:
    # Arrange: 10 BTC per 1 % down to -5 % holds 50 BTC of bids
    book = ConstantDepthBook(depth_per_pct=10.0, half_life_s=30.0, max_move=0.05)

    # Act
    fill = book.execute(-1, 80.0, 100_000.0, 0)

    # Assert
    assert fill.size == pytest.approx(50.0)
    assert fill.unfilled == pytest.approx(30.0)
    assert fill.last_price == pytest.approx(95_000.0)
    assert fill.vwap == pytest.approx(97_500.0)
    assert book.quote(-1, 1.0, 100_000.0, 0).size == 0.0


# --------------------------------------------------------------------------------------------
# Power law (square-root) impact
# --------------------------------------------------------------------------------------------


def test_square_root_law_quadrupling_size_doubles_impact() -> None:
    # Arrange
    model = PowerLawImpact(y=0.8, sigma=0.03, daily_volume=250_000.0, half_life_s=60.0)

    # Act
    small = model.quote(-1, 400.0, 100_000.0, 0).impact
    large = model.quote(-1, 1_600.0, 100_000.0, 0).impact

    # Assert
    assert large / small == pytest.approx(2.0, rel=1e-12)
    assert float(power_law_impact(4.0, y=1.0, sigma=0.02, daily_volume=1.0)) == pytest.approx(
        2.0 * float(power_law_impact(1.0, y=1.0, sigma=0.02, daily_volume=1.0))
    )


def test_square_root_law_worked_example() -> None:
    # I = Y sigma sqrt(Q / V) = 1 x 0.02 x sqrt(100 / 10 000) = 0.002 (Tóth et al. 2011, eq. 1).
    # From rest the fill averages G over [0, Q]: I / (1 + 1/2) = 0.001333..., so buying at
    # mid 100 000 pays 100 133.33 and leaves the mid displaced by 0.2 %.
    model = PowerLawImpact(y=1.0, sigma=0.02, daily_volume=10_000.0, half_life_s=60.0)

    fill = model.quote(1, 100.0, 100_000.0, 0)

    assert fill.impact == pytest.approx(0.002, rel=1e-12)
    assert fill.last_price == pytest.approx(100_200.0, rel=1e-12)
    assert fill.vwap == pytest.approx(100_000.0 * (1.0 + 0.002 * 2.0 / 3.0), rel=1e-12)


def test_power_law_vwap_from_a_displaced_state_matches_numerical_integral() -> None:
    # Arrange: buy 300 first (x = 300), then sell 500: y walks from 300 down to -200
    k = 1.0 * 0.02 / math.sqrt(10_000.0)
    model = PowerLawImpact(y=1.0, sigma=0.02, daily_volume=10_000.0, half_life_s=math.inf)
    model.execute(1, 300.0, 100_000.0, 0)

    def g(y: float) -> float:
        return math.copysign(k * math.sqrt(abs(y)), y)

    expected = 100_000.0 * (1.0 + quad(g, -200.0, 300.0, points=[0.0])[0] / 500.0)

    # Act
    fill = model.quote(-1, 500.0, 100_000.0, 0)
    vectorized = power_law_vwap(
        -1, 500.0, 100_000.0, y=1.0, sigma=0.02, daily_volume=10_000.0, consumed=300.0
    )

    # Assert
    assert fill.vwap == pytest.approx(expected, rel=1e-10)
    assert float(vectorized) == pytest.approx(expected, rel=1e-10)
    assert fill.last_price == pytest.approx(100_000.0 * (1.0 + g(-200.0)), rel=1e-12)


def test_power_law_size_for_price_move_inverts_the_impact() -> None:
    # Arrange: from rest, Q = V (I / (Y sigma))^2 = 10 000 x (0.003 / 0.02)^2 = 225
    params = {"y": 1.0, "sigma": 0.02, "daily_volume": 10_000.0}
    model = PowerLawImpact(**params, half_life_s=60.0)
    model.execute(1, 50.0, 100_000.0, 0)

    # Act
    from_rest = float(power_law_size_for_price_move(-0.003, **params))
    from_state = float(power_law_size_for_price_move(-0.003, **params, consumed=50.0))
    fill = model.execute(-1, from_state, 100_000.0, 0)

    # Assert
    assert from_rest == pytest.approx(225.0, rel=1e-12)
    assert fill.impact == pytest.approx(0.02 * math.sqrt(50.0 / 10_000.0) - 0.003, rel=1e-9)


def test_power_law_with_delta_one_is_the_constant_depth_book() -> None:
    # delta = 1: G(x) = Y sigma x / V, a linear book with D = V / (Y sigma) = 1000
    power = PowerLawImpact(y=0.5, sigma=0.02, daily_volume=10.0, delta=1.0, half_life_s=30.0)
    linear = ConstantDepthBook(depth_per_pct=10.0, half_life_s=30.0)

    for side, size in ((1, 3.0), (-1, 7.5), (1, 0.0), (-1, 999.0)):
        assert power.execute(side, size, 42_000.0, 0) == pytest.approx(
            linear.execute(side, size, 42_000.0, 0), rel=1e-12, abs=1e-12
        )


# --------------------------------------------------------------------------------------------
# L2 book
# --------------------------------------------------------------------------------------------


def test_l2_buy_walks_the_asks_level_by_level() -> None:
    # By hand: 1 @ 100.5 + 1.5 @ 101 = 252.0 -> vwap 100.8, last 101; the best ask is now 101,
    # 0.5 above the untouched 100.5: impact 0.5 / 100 = 0.005
    fill = three_level_book().quote(1, 2.5, 100.0, 0)

    assert fill == pytest.approx(Fill(2.5, 100.8, 101.0, 252.0, 0.0, 0.005))


def test_l2_sell_walks_the_bids_level_by_level() -> None:
    # By hand: 1 @ 99.5 + 2 @ 99 + 1 @ 98 = 395.5 -> vwap 98.875, last 98, best bid 98 = -1.5 %
    fill = three_level_book().quote(-1, 4.0, 100.0, 0)

    assert fill == pytest.approx(Fill(4.0, 98.875, 98.0, 395.5, 0.0, -0.015))


def test_l2_order_beyond_the_book_reports_the_unfilled_remainder() -> None:
    # By hand: all 6 asks = 100.5 + 202 + 306 = 608.5; 1 unit left over
    fill = three_level_book().quote(1, 7.0, 100.0, 0)

    assert fill.size == 6.0
    assert fill.unfilled == 1.0
    assert fill.notional == pytest.approx(608.5)
    assert fill.vwap == pytest.approx(608.5 / 6.0)
    assert fill.last_price == 102.0


def test_l2_extrapolates_past_the_last_level_with_its_density() -> None:
    # Last ask level: 3 units over the 1.0 between 101 and 102 -> 3 units per unit of price.
    # The 7th unit fills from 102 to 102 + 1/3 at an average 102 + 1/6:
    # notional = 608.5 + 102.1666... = 710.6666..., last = 102.3333...
    fill = three_level_book("extrapolate").quote(1, 7.0, 100.0, 0)

    assert fill.unfilled == 0.0
    assert fill.notional == pytest.approx(608.5 + 102.0 + 1.0 / 6.0)
    assert fill.last_price == pytest.approx(102.0 + 1.0 / 3.0)


def test_l2_single_level_extrapolates_with_its_density_from_the_mid() -> None:
    # The only ask, 2 units at 101, spans the 1.0 from the mid 100: 2 units per unit of price.
    # The 3rd unit fills from 101 to 101.5 at an average 101.25: notional 202 + 101.25 = 303.25
    book = L2Book([99.0], [1.0], [101.0], [2.0], half_life_s=1.0, on_exhausted="extrapolate")

    fill = book.quote(1, 3.0, 100.0, 0)

    assert fill.notional == pytest.approx(303.25)
    assert fill.last_price == pytest.approx(101.5)


def test_l2_extrapolated_sell_stops_where_the_price_reaches_zero() -> None:
    # Last bid level: 3 units per unit of price below 98 -> 98 x 3 = 294 more units down to 0
    fill = three_level_book("extrapolate").quote(-1, 1_000.0, 100.0, 0)

    assert fill.size == pytest.approx(300.0)
    assert fill.last_price == pytest.approx(0.0, abs=1e-9)


def test_l2_levels_scale_with_the_quoted_mid() -> None:
    # The book's shape is relative to its reference mid (100): at mid 200 each price doubles
    fill = three_level_book().quote(1, 2.5, 200.0, 0)

    assert fill.vwap == pytest.approx(201.6)
    assert fill.last_price == pytest.approx(202.0)


def test_l2_buy_after_sells_walks_back_up_one_spread_above_the_consumed_bids() -> None:
    # Arrange: selling 2 takes 99.5 and 99 (bids shift down by 0.5); the spread is 1.0, so the
    # next unit bought fills one spread above the displaced best bid 99: at 100
    book = three_level_book()
    book.execute(-1, 2.0, 100.0, 0)

    # Act
    fill = book.quote(1, 1.0, 100.0, 0)

    # Assert
    assert fill.vwap == pytest.approx(100.0)
    assert fill.impact == pytest.approx(-0.005)


def test_l2_max_fillable_counts_levels_within_the_limit() -> None:
    book = three_level_book()

    assert book.max_fillable(1, 100.0, 101.0) == pytest.approx(3.0)
    assert book.max_fillable(-1, 100.0, 99.0) == pytest.approx(3.0)
    assert book.max_fillable(-1, 100.0, 99.6) == 0.0
    assert book.max_fillable(1, 100.0, 1e9) == pytest.approx(6.0)
    assert three_level_book("extrapolate").max_fillable(1, 100.0, 102.5) == pytest.approx(7.5)


def test_l2_depth_within_counts_resting_size_inside_the_band() -> None:
    book = three_level_book()

    assert book.depth_within(1, 0.01) == pytest.approx(3.0)
    assert book.depth_within(-1, 0.02) == pytest.approx(6.0)


def oracle_walk(levels: list[tuple[float, float]], size: float) -> tuple[float, float, float]:
    """Independent reference: fill a market order level by level from an untouched book."""
    remaining, notional, last = size, 0.0, math.nan
    for price, quantity in levels:
        take = min(remaining, quantity)
        if take > 0.0:
            notional += take * price
            last = price
            remaining -= take
    return size - remaining, notional, last


@st.composite
def l2_levels(draw: st.DrawFn) -> tuple[list[float], list[float], list[float], list[float]]:
    mid = draw(st.floats(10.0, 1e5))
    n_bid = draw(st.integers(1, 6))
    n_ask = draw(st.integers(1, 6))
    gaps = st.floats(1e-4, 0.05)
    sizes = st.floats(1e-3, 1e3)
    bid_off = np.cumsum([draw(gaps) for _ in range(n_bid)])
    ask_off = np.cumsum([draw(gaps) for _ in range(n_ask)])
    bids = list(mid * (1.0 - np.minimum(bid_off, 0.9)))
    asks = list(mid * (1.0 + ask_off))
    assume(all(a > b for a, b in itertools.pairwise(bids)))
    return bids, [draw(sizes) for _ in bids], asks, [draw(sizes) for _ in asks]


@given(l2_levels(), st.sampled_from([1, -1]), st.floats(0.0, 5e3))
def test_l2_walk_from_an_untouched_book_matches_the_oracle(
    levels: tuple[list[float], list[float], list[float], list[float]], side: int, size: float
) -> None:
    bids, bid_sizes, asks, ask_sizes = levels
    book = L2Book(bids, bid_sizes, asks, ask_sizes, half_life_s=10.0)
    walk = (
        list(zip(asks, ask_sizes, strict=True))
        if side == 1
        else list(zip(bids, bid_sizes, strict=True))
    )

    filled, notional, last = oracle_walk(walk, size)
    fill = book.quote(side, size, book.mid, 0)

    assert fill.size == pytest.approx(filled, rel=1e-12, abs=1e-9)
    assert fill.notional == pytest.approx(notional, rel=1e-9, abs=1e-9)
    if filled > 0.0:
        assert fill.last_price == pytest.approx(last, rel=1e-12)


# --------------------------------------------------------------------------------------------
# Resilience, state, snapshot
# --------------------------------------------------------------------------------------------


def test_after_one_half_life_half_the_linear_impact_remains() -> None:
    # Arrange
    book = ConstantDepthBook(depth_per_pct=10.0, half_life_s=30.0)
    book.execute(-1, 5.0, 100_000.0, 0)  # impact -5 / 1000 = -0.5 %

    # Act / Assert
    assert book.price_impact(0) == pytest.approx(-0.005)
    assert book.price_impact(30 * S) == pytest.approx(-0.0025)
    assert book.price_impact(60 * S) == pytest.approx(-0.00125)
    assert float(decay_factor(30.0, 30.0)) == pytest.approx(0.5)


def test_after_one_half_life_half_the_power_law_depth_remains() -> None:
    model = PowerLawImpact(y=1.0, sigma=0.02, daily_volume=10_000.0, half_life_s=10.0)
    start = model.execute(1, 400.0, 100_000.0, 0).impact

    model.recover(10 * S)

    assert model.consumed_depth == pytest.approx(200.0)
    assert model.price_impact(10 * S) == pytest.approx(start / math.sqrt(2.0))


def test_l2_recovery_refills_consumed_levels() -> None:
    book = three_level_book()
    book.execute(1, 3.0, 100.0, 0)  # takes 100.5 and 101: best ask now 102

    book.recover(10 * S)  # half of the 3 consumed units come back: best ask 101 again

    assert book.consumed_depth == pytest.approx(1.5)
    assert book.quote(1, 1.5, 100.0, 10 * S).vwap == pytest.approx(101.0)


def test_infinite_half_life_never_recovers() -> None:
    book = ConstantDepthBook(depth_per_pct=10.0, half_life_s=math.inf)
    book.execute(1, 5.0, 100.0, 0)

    book.recover(10**6 * S)

    assert book.consumed_depth == 5.0


def test_quote_leaves_state_unchanged_and_execute_consumes_depth() -> None:
    # Arrange
    book = three_level_book()
    before = book.snapshot()

    # Act
    quoted = book.quote(1, 2.5, 100.0, 5 * S)
    after_quote = book.snapshot()
    executed = book.execute(1, 2.5, 100.0, 5 * S)

    # Assert
    assert after_quote == before == {"consumed_depth": 0.0, "ts_ns": 0}
    assert executed == quoted
    assert book.snapshot() == {"consumed_depth": 2.5, "ts_ns": 5 * S}
    assert book.quote(1, 2.5, 100.0, 5 * S).vwap > quoted.vwap


def test_restore_replays_the_same_fills() -> None:
    model = PowerLawImpact(y=1.0, sigma=0.02, daily_volume=10_000.0, half_life_s=10.0)
    model.execute(-1, 120.0, 100_000.0, 3 * S)
    saved = model.snapshot()
    first = model.execute(-1, 50.0, 100_000.0, 7 * S)

    model.restore(saved)

    assert model.execute(-1, 50.0, 100_000.0, 7 * S) == first


@pytest.mark.parametrize(
    "state",
    [
        {"consumed_depth": 1.0},
        {"consumed_depth": 1.0, "ts_ns": 0, "extra": 1},
        {"consumed_depth": math.nan, "ts_ns": 0},
        {"consumed_depth": 1e9, "ts_ns": 0},
        {"consumed_depth": 1.0, "ts_ns": 1.5},
        {"consumed_depth": "1", "ts_ns": 0},
    ],
)
def test_restore_rejects_a_bad_state_and_keeps_the_old_one(state: dict[str, object]) -> None:
    book = ConstantDepthBook(depth_per_pct=10.0, half_life_s=30.0)
    book.execute(1, 2.0, 100.0, 4)

    with pytest.raises(ValidationError):
        book.restore(state)
    assert book.snapshot() == {"consumed_depth": 2.0, "ts_ns": 4}


def test_models_implement_the_liquidity_model_protocol() -> None:
    models = [
        ConstantDepthBook(depth_per_pct=1.0, half_life_s=1.0),
        PowerLawImpact(y=1.0, sigma=0.02, daily_volume=1.0, half_life_s=1.0),
        three_level_book(),
    ]
    assert all(isinstance(m, LiquidityModel) for m in models)


# --------------------------------------------------------------------------------------------
# Hot-path kernels
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("side", [1, -1])
@pytest.mark.parametrize("size", [0.0, 0.5, 3.0, 80.0])
@pytest.mark.parametrize("consumed", [-20.0, 0.0, 12.0])
def test_compiled_kernels_match_the_python_kernels(side: int, size: float, consumed: float) -> None:
    linear_args = (side, size, 30_000.0, 1_000.0, consumed, 0.05)
    power_args = (side, size, 30_000.0, 2e-4, 0.5, consumed, 0.05)

    assert linear_fill_nb(*linear_args) == pytest.approx(linear_fill(*linear_args), rel=1e-14)
    assert power_law_fill_nb(*power_args) == pytest.approx(power_law_fill(*power_args), rel=1e-14)


# --------------------------------------------------------------------------------------------
# Properties of every model
# --------------------------------------------------------------------------------------------

MID = 50_000.0


@st.composite
def models(draw: st.DrawFn) -> LiquidityModel:
    kind = draw(st.sampled_from(["linear", "power", "l2"]))
    if kind == "linear":
        model: LiquidityModel = ConstantDepthBook(
            depth_per_pct=draw(st.floats(0.01, 1e3)),
            half_life_s=30.0,
            max_move=draw(st.floats(0.01, 1.0)),
        )
    elif kind == "power":
        model = PowerLawImpact(
            y=draw(st.floats(0.1, 2.0)),
            sigma=draw(st.floats(0.005, 0.2)),
            daily_volume=draw(st.floats(1.0, 1e6)),
            delta=draw(st.floats(0.3, 1.0)),
            half_life_s=30.0,
            max_move=draw(st.floats(0.01, 1.0)),
        )
    else:
        bids, bid_sizes, asks, ask_sizes = draw(l2_levels())
        scale = MID / (0.5 * (bids[0] + asks[0]))
        model = L2Book(
            [b * scale for b in bids],
            bid_sizes,
            [a * scale for a in asks],
            ask_sizes,
            half_life_s=30.0,
            mid=MID,
            on_exhausted=draw(st.sampled_from(["unfilled", "extrapolate"])),
        )
    return model


sizes = st.floats(0.0, 2e3)


@given(models(), st.sampled_from([1, -1]), sizes, sizes)
def test_untouched_book_fills_sells_at_or_below_mid_and_buys_at_or_above(
    model: LiquidityModel, side: int, size: float, other: float
) -> None:
    fill = model.quote(side, size, MID, 0)

    assert side * (fill.vwap - MID) >= 0.0
    assert side * (fill.last_price - fill.vwap) >= -1e-9 * MID


@given(models(), st.sampled_from([1, -1]), sizes, sizes, st.sampled_from([1, -1]), sizes)
def test_bigger_orders_never_get_a_better_vwap(
    model: LiquidityModel, side: int, a: float, b: float, earlier_side: int, earlier: float
) -> None:
    # Arrange: from any state reached by an earlier order
    model.execute(earlier_side, earlier, MID, 0)
    small, large = sorted((a, b))

    # Act
    fill_small = model.quote(side, small, MID, S)
    fill_large = model.quote(side, large, MID, S)

    # Assert
    assert side * (fill_large.vwap - fill_small.vwap) >= -1e-9 * MID
    assert side * (fill_large.last_price - fill_small.last_price) >= -1e-9 * MID


@given(models(), st.sampled_from([1, -1]), sizes, st.sampled_from([1, -1]), sizes)
def test_filled_plus_unfilled_is_the_size_requested(
    model: LiquidityModel, side: int, size: float, earlier_side: int, earlier: float
) -> None:
    model.execute(earlier_side, earlier, MID, 0)

    fill = model.execute(side, size, MID, 0)

    assert fill.size >= 0.0
    assert fill.unfilled >= 0.0
    assert fill.size + fill.unfilled == pytest.approx(size, rel=1e-12, abs=1e-12)
    assert fill.notional == pytest.approx(fill.size * fill.vwap, rel=1e-12)


@given(models(), st.sampled_from([1, -1]), sizes, st.floats(-0.5, 0.5))
def test_max_fillable_fills_completely_within_the_limit(
    model: LiquidityModel, side: int, earlier: float, limit_move: float
) -> None:
    # Arrange
    model.execute(-side, earlier, MID, 0)
    worst = MID * (1.0 + limit_move)

    # Act
    size = model.max_fillable(side, MID, worst)
    assume(math.isfinite(size))
    fill = model.quote(side, size, MID, 0)

    # Assert
    assert fill.unfilled <= 1e-9 * max(size, 1.0)
    if size > 1e-9:
        # 1e-8: the square-root law's inverse is ill-conditioned at tiny moves (a limit 1e-9
        # off the mid comes back within a few ulps of the price, not exactly on it).
        assert side * (fill.last_price - worst) <= 1e-8 * MID
        beyond = model.quote(side, size * 1.01 + 1e-6, MID, 0)
        assert beyond.unfilled > 0.0 or side * (beyond.last_price - worst) > -1e-9 * MID


@given(models(), st.sampled_from([1, -1]), sizes)
def test_a_round_trip_at_one_instant_returns_the_book_to_rest(
    model: LiquidityModel, side: int, size: float
) -> None:
    there = model.execute(side, size, MID, 0)
    model.execute(-side, there.size, MID, 0)

    assert model.snapshot()["consumed_depth"] == pytest.approx(0.0, abs=1e-9 * max(size, 1.0))
    assert model.price_impact(0) == pytest.approx(0.0, abs=1e-9)


@settings(max_examples=50)
@given(models(), st.sampled_from([1, -1]), st.floats(0.1, 1e3), st.floats(0.0, 120.0))
def test_consumed_depth_decays_by_the_half_life(
    model: LiquidityModel, side: int, size: float, elapsed_s: float
) -> None:
    model.execute(side, size, MID, 0)
    start = model.snapshot()["consumed_depth"]

    model.recover(int(elapsed_s * S))

    expected = start * 0.5 ** (int(elapsed_s * S) / S / 30.0)
    assert model.snapshot()["consumed_depth"] == pytest.approx(expected, rel=1e-12, abs=1e-300)


# --------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"depth_per_pct": 0.0, "half_life_s": 1.0}, "depth_per_pct"),
        ({"depth_per_pct": -3.0, "half_life_s": 1.0}, "depth_per_pct"),
        ({"depth_per_pct": math.nan, "half_life_s": 1.0}, "depth_per_pct"),
        ({"depth_per_pct": 1.0, "half_life_s": 0.0}, "half_life_s"),
        ({"depth_per_pct": 1.0, "half_life_s": -1.0}, "half_life_s"),
        ({"depth_per_pct": 1.0, "half_life_s": math.nan}, "half_life_s"),
        ({"depth_per_pct": 1.0, "half_life_s": 1.0, "max_move": 1.5}, "max_move"),
        ({"depth_per_pct": 1.0, "half_life_s": 1.0, "ts_ns": 1.5}, "ts_ns"),
    ],
)
def test_constant_depth_book_rejects_bad_parameters(kwargs: dict[str, float], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        ConstantDepthBook(**kwargs)  # type: ignore[arg-type]
    assert info.value.field == field
    assert f"`{field}`" in str(info.value)


@pytest.mark.parametrize(
    ("name", "value"), [("y", 0.0), ("sigma", -0.1), ("daily_volume", math.inf), ("delta", 1.5)]
)
def test_power_law_rejects_bad_parameters(name: str, value: float) -> None:
    params = {"y": 1.0, "sigma": 0.02, "daily_volume": 100.0, "half_life_s": 1.0, name: value}
    with pytest.raises(ValidationError) as info:
        PowerLawImpact(**params)
    assert info.value.field == name


@pytest.mark.parametrize(
    ("args", "field"),
    [
        ((1, math.nan, 100.0, 0), "size"),
        ((1, "abc", 100.0, 0), "size"),
        ((1, -1.0, 100.0, 0), "size"),
        ((1, math.inf, 100.0, 0), "size"),
        ((0, 1.0, 100.0, 0), "side"),
        ((2, 1.0, 100.0, 0), "side"),
        ((1, 1.0, 0.0, 0), "mid"),
        ((1, 1.0, math.nan, 0), "mid"),
        ((1, 1.0, 100.0, -1), "ts_ns"),
        ((1, 1.0, 100.0, 0.5), "ts_ns"),
    ],
)
def test_quote_and_execute_reject_bad_orders_without_changing_state(
    args: tuple[float, ...], field: str
) -> None:
    book = three_level_book()
    for call in (book.quote, book.execute):
        with pytest.raises(ValidationError) as info:
            call(*args)  # type: ignore[arg-type]
        assert info.value.field == field
    assert book.snapshot() == {"consumed_depth": 0.0, "ts_ns": 0}


@pytest.mark.parametrize(
    ("levels", "field"),
    [
        (([99.0, 99.5], [1, 1], [100.5], [1]), "bid_prices[1]"),
        (([99.5], [1], [101.0, 100.5], [1, 1]), "ask_prices[1]"),
        (([99.5], [1], [100.5, 100.5], [1, 1]), "ask_prices[1]"),
        (([99.5], [-1.0], [100.5], [1]), "bid_sizes[0]"),
        (([99.5], [1], [100.5], [math.nan]), "ask_sizes[0]"),
        (([math.nan], [1], [100.5], [1]), "bid_prices[0]"),
        (([0.0], [1], [100.5], [1]), "bid_prices[0]"),
        (([101.0], [1], [100.5], [1]), "bid_prices[0]"),
        (([99.5], [1, 2], [100.5], [1]), "bid_sizes"),
        (([99.5], [0.0], [100.5], [0.0]), "ask_sizes"),
        (([], [], [100.5], [1]), "mid"),
    ],
)
def test_l2_book_rejects_bad_levels(
    levels: tuple[list[float], list[float], list[float], list[float]], field: str
) -> None:
    with pytest.raises(ValidationError) as info:
        L2Book(*levels, half_life_s=1.0)
    assert info.value.field == field


def test_l2_book_rejects_a_mid_outside_the_spread() -> None:
    with pytest.raises(ValidationError, match="between the best bid and best ask"):
        L2Book([99.5], [1.0], [100.5], [1.0], half_life_s=1.0, mid=101.0)


def test_l2_book_with_one_empty_side_fills_nothing_on_that_side() -> None:
    book = L2Book([], [], [100.5], [1.0], half_life_s=1.0, mid=100.0, on_exhausted="extrapolate")

    fill = book.quote(-1, 1.0, 100.0, 0)

    assert fill.size == 0.0
    assert fill.unfilled == 1.0
