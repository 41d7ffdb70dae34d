"""``check_price_inputs``: its fast path (``_fast_ok``) never passes what the full checks
refuse, and the checks refuse exactly the inputs a plain reading of the rule refuses (every
watched asset priced, finite positive float prices, None allowed for oracle and book, time not
going backwards), with the oracle or book the same float object as the index (a world's
inputs) or another value."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deleverage.errors import ValidationError
from deleverage.venues.protocol import PriceInputs, _fast_ok, check_price_inputs

_PRICES = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-5, 5),
    st.just(60_000.0),
)


def _valid_price(value: object, *, optional: bool) -> bool:
    if value is None:
        return optional
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return math.isfinite(value) and value > 0


@st.composite
def _inputs(draw: st.DrawFn) -> PriceInputs:
    index = draw(_PRICES)
    same = draw(st.booleans())
    oracle = index if same else draw(st.none() | _PRICES)
    book = index if draw(st.booleans()) else draw(st.none() | _PRICES)
    return PriceInputs(index, oracle, book)


@settings(max_examples=300, deadline=None)
@given(
    prices=st.dictionaries(st.sampled_from(("BTC", "ETH", "SOL")), _inputs(), max_size=3),
    ts=st.integers(0, 10),
)
def test_the_checks_refuse_exactly_what_the_rule_refuses(
    prices: dict[str, PriceInputs], ts: int
) -> None:
    # Arrange
    assets = ("BTC", "ETH")
    valid = (
        ts >= 5
        and set(prices) == set(assets)
        and all(
            _valid_price(p.index_price, optional=False)
            and _valid_price(p.oracle_price, optional=True)
            and _valid_price(p.book_price, optional=True)
            for p in prices.values()
        )
    )
    # Act
    fast = _fast_ok(prices, assets, ts, 5)
    # Assert
    assert not fast or valid
    if valid:
        check_price_inputs(prices, assets, ts_ns=ts, last_ts_ns=5)
    else:
        with pytest.raises(ValidationError):
            check_price_inputs(prices, assets, ts_ns=ts, last_ts_ns=5)


def test_a_worlds_inputs_take_the_fast_path() -> None:
    p = 60_000.0
    prices = {"BTC": PriceInputs(p, p, 60_010.0), "ETH": PriceInputs(3_000.0, 3_000.0, None)}
    assert _fast_ok(prices, ("BTC", "ETH"), 7, 7)
    assert not _fast_ok({"BTC": PriceInputs(p, p, math.nan)}, ("BTC",), 7, 7)
    assert not _fast_ok({"BTC": PriceInputs(p, -p, p)}, ("BTC",), 7, 7)
