"""Mark rules against worked examples from the venues' documented formulas.

- Binance USDⓈ-M: ``mark = median(index (1 + f tau), index + MA(basis), last)``
  (binance.com/en/support/faq/360033525071, "How to Calculate Mark Price", and the futures
  "Mark Price and Price Index" page).
- Hyperliquid: ``mark = median(oracle + 150 s EMA(mid - oracle), median(bid, ask, last),
  CEX perp mids)`` (hyperliquid.gitbook.io/hyperliquid-docs/trading/robust-price-indices).
- dYdX v4, Drift, GMX, Synthetix: the oracle price is the mark.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from deleverage.errors import ValidationError
from deleverage.prices import marks

prices = st.floats(min_value=1.0, max_value=1e6)


def test_binance_mark_is_the_middle_of_its_three_prices() -> None:
    # Arrange: index 100, funding 0.01% with half the interval left -> P1 = 100.005;
    # basis average -0.3 -> P2 = 99.7; last trade 97 (the book fell 3%).
    # Act
    mark = marks.binance_mark(
        last_price=97.0, index_price=100.0, basis_average=-0.3, funding_rate=0.0001,
        time_left_fraction=0.5,
    )  # fmt: skip

    # Assert: median(100.005, 99.7, 97) = 99.7: the book's fall alone does not move the mark
    assert mark == pytest.approx(99.7)


def test_binance_mark_follows_the_last_price_inside_the_band() -> None:
    mark = marks.binance_mark(
        last_price=100.2, index_price=100.0, basis_average=0.5, funding_rate=0.0,
        time_left_fraction=1.0,
    )  # fmt: skip
    assert mark == pytest.approx(100.2)  # median(100, 100.5, 100.2)


def test_hyperliquid_mark_lags_a_falling_book_by_its_ema() -> None:
    # Oracle 100, EMA of (mid - oracle) -1.5, own mid 92, CEX perps 100: median = 98.5.
    mark = marks.hyperliquid_mark(
        oracle_price=100.0, basis_ema=-1.5, book_mid=92.0, external_perp=100.0
    )
    assert mark == pytest.approx(98.5)


def test_oracle_mark_is_the_oracle() -> None:
    assert marks.oracle_mark(oracle_price=123.4) == 123.4


def test_ema_step_after_one_time_constant_is_1_minus_1_over_e() -> None:
    assert marks.ema_step(0.0, 10.0, 150.0, 150.0) == pytest.approx(10 * (1 - math.exp(-1)))


def test_venue_presets_choose_their_rule() -> None:
    assert marks.venue_mark_rule("binance") == "binance"
    assert marks.venue_mark_rule("hyperliquid") == "hyperliquid"
    assert marks.venue_mark_rule("dydx_v4") == "oracle"
    assert marks.venue_mark_rule("drift") == "oracle"
    assert marks.venue_mark_rule(None) == "book"


@pytest.mark.parametrize("bad", [0.0, -1.0, math.nan, math.inf])
def test_bad_prices_are_rejected_with_the_field_named(bad: float) -> None:
    with pytest.raises(ValidationError, match="last_price"):
        marks.binance_mark(
            last_price=bad, index_price=100.0, basis_average=0.0, funding_rate=0.0,
            time_left_fraction=0.0,
        )  # fmt: skip


@given(index=prices, book=prices, basis=st.floats(-50.0, 50.0), ema=st.floats(-50.0, 50.0))
def test_marks_lie_between_the_book_and_the_index_band(
    index: float, book: float, basis: float, ema: float
) -> None:
    # A median of three is never outside the range of its inputs, so the book alone can move
    # a Binance or Hyperliquid mark no further than the index side lets it.
    b = marks.binance_mark(
        last_price=book, index_price=index, basis_average=basis, funding_rate=0.0,
        time_left_fraction=0.0,
    )  # fmt: skip
    h = marks.hyperliquid_mark(
        oracle_price=index, basis_ema=ema, book_mid=book, external_perp=index
    )
    for mark, other in ((b, max(index + basis, 1e-12)), (h, max(index + ema, 1e-12))):
        assert min(index, book, other) - 1e-9 <= mark <= max(index, book, other) + 1e-9
        assert min(index, other) - 1e-9 <= mark or book <= mark  # book is the only lower one
