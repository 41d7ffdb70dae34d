"""Twins of the checks' fast paths for the common argument types (speed round 8, round9).

A cascade round re-marks the market and restores its book twice; the checks on that path
take a float price or an int time first (``spec._as_number``, ``Ledger._ts``,
``fund_records.as_ts``, ``_ResilientBook.restore``, and ``Exchange.set_mark`` and
``set_book_mid``'s one comparison for a float price, speed round 12). Each test passes the
same value once as that type (the fast path) and once as a NumPy scalar of it (the general
checks, as before) and asserts the same value and type, or the same refusal.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from deleverage.engine.exchange import Exchange
from deleverage.engine.fund_records import as_ts
from deleverage.errors import ValidationError
from deleverage.liquidity import ConstantDepthBook
from deleverage.spec import check_finite, check_finite_positive

FLOATS = [5e-324, 1e-300, 0.5, 1.0, 60_000.0, 1.7976931348623157e308]
BAD_POSITIVE = [0.0, -0.0, -1.0, math.nan, math.inf, -math.inf]
TIMES = [0, 1, 1_700_000_000_000_000_000]


def _same(fast: object, general: object) -> bool:
    """The same type and value (bits, for floats: -0.0 and NaN included)."""
    if type(fast) is not type(general):
        return False
    if isinstance(fast, float) and isinstance(general, float):
        return np.float64(fast).tobytes() == np.float64(general).tobytes()
    return fast == general


@pytest.mark.parametrize("value", FLOATS)
def test_a_float_price_is_what_the_general_check_returns(value: float) -> None:
    assert _same(
        check_finite_positive("price", value), check_finite_positive("price", np.float64(value))
    )
    assert _same(check_finite("rate", -value), check_finite("rate", np.float64(-value)))


@pytest.mark.parametrize("value", BAD_POSITIVE)
def test_a_bad_float_price_is_refused_on_both_paths(value: float) -> None:
    for v in (value, np.float64(value)):
        with pytest.raises(ValidationError):
            check_finite_positive("price", v)


@pytest.mark.parametrize("ts", TIMES)
def test_an_int_time_is_what_the_general_checks_return(ts: int) -> None:
    ex = Exchange()
    assert _same(ex._ts(ts), ex._ts(np.int64(ts)))
    assert _same(as_ts(ts), as_ts(np.int64(ts)))


def test_a_bad_int_time_is_refused_on_both_paths() -> None:
    ex = Exchange()
    ex.clock_ns = 10
    for ts in (9, 2**62, True):
        for v in (ts, np.int64(ts)) if not isinstance(ts, bool) else (ts,):
            with pytest.raises(ValidationError):
                ex._ts(v)
    for v in (True, 1.5):
        with pytest.raises(ValidationError):
            as_ts(v)


@pytest.mark.parametrize("consumed", [0.0, -0.0, 0.25, -3.5, 1000.0])
def test_a_restored_float_depth_is_what_the_general_check_sets(consumed: float) -> None:
    fast = ConstantDepthBook(depth_per_pct=10.0, half_life_s=30.0)
    general = ConstantDepthBook(depth_per_pct=10.0, half_life_s=30.0)
    fast.restore({"consumed_depth": consumed, "ts_ns": 7})
    general.restore({"ts_ns": 7, "consumed_depth": np.float64(consumed)})
    assert _same(fast.consumed_depth, general.consumed_depth)
    assert fast.snapshot() == general.snapshot()
    for bad in (math.nan, 1e9):  # outside the book's bounds: refused on both paths
        for raw in (bad, np.float64(bad)):
            with pytest.raises(ValidationError):
                fast.restore({"consumed_depth": raw, "ts_ns": 8})
    assert fast.snapshot() == general.snapshot()


def _engine(*, inverse: bool) -> Exchange:
    from deleverage import MarketSpec

    ex = Exchange()
    fields = (
        {"contract_type": "inverse", "contract_value": 100.0, "settlement_asset": "BTC"}
        if inverse
        else {}
    )
    ex.list_market(MarketSpec.simple("BTCUSD" if inverse else "BTCUSDT", **fields))
    return ex


@pytest.mark.parametrize("inverse", [False, True])
@pytest.mark.parametrize("value", FLOATS)
def test_a_float_mark_and_book_mid_are_what_the_general_check_sets(
    value: float, inverse: bool
) -> None:
    fast, general = _engine(inverse=inverse), _engine(inverse=inverse)
    fast.set_book_mid(0, value)
    general.set_book_mid(0, np.float64(value))
    assert _same(fast.risk.markets[0].book_mid, general.risk.markets[0].book_mid)
    assert _same(fast.risk.markets[0].book_mid, 1.0 / value if inverse else value)
    fast.set_mark(0, value, ts_ns=5)
    general.set_mark(0, np.float64(value), ts_ns=5)
    assert _same(fast.markets[0].mark, general.markets[0].mark)
    assert _same(fast.markets[0].mark, 1.0 / value if inverse else value)  # engine's price
    assert fast.journal.to_frame().equals(general.journal.to_frame())
    fast.set_book_mid(0, None)
    assert fast.risk.markets[0].book_mid is None


@pytest.mark.parametrize("value", [*BAD_POSITIVE, True, "1.0", None])
def test_a_bad_mark_or_book_mid_is_refused_on_both_paths(value: object) -> None:
    ex = _engine(inverse=False)
    ex.set_mark(0, 100.0, ts_ns=1)
    rows = len(ex.journal)
    for v in (value, np.float64(value)) if isinstance(value, float) else (value,):
        with pytest.raises(ValidationError, match="price"):
            ex.set_mark(0, v, ts_ns=2)  # type: ignore[arg-type]
        if v is not None:
            with pytest.raises(ValidationError, match="price"):
                ex.set_book_mid(0, v)  # type: ignore[arg-type]
    assert ex.markets[0].mark == 100.0  # nothing set, nothing journaled
    assert len(ex.journal) == rows


@pytest.mark.parametrize("consumed", [0.0, -0.0, 0.25, -3.5, 1000.0, math.nan, 1e9, -math.inf])
@pytest.mark.parametrize("ts", [7, 1.5, True])
def test_a_consumed_depth_set_without_a_mapping_is_what_restore_sets(
    consumed: float, ts: object
) -> None:
    # ``restore_consumed`` (the batch round's once a round) against ``restore`` of the same
    # mapping: the same state, or the same refusal with the old state kept.
    fast = ConstantDepthBook(depth_per_pct=10.0, half_life_s=30.0)
    general = ConstantDepthBook(depth_per_pct=10.0, half_life_s=30.0)
    for book in (fast, general):
        book.execute(1, 2.0, 100.0, 4)
    try:
        general.restore({"consumed_depth": consumed, "ts_ns": ts})
    except ValidationError:
        with pytest.raises(ValidationError):
            fast.restore_consumed(consumed, ts)  # type: ignore[arg-type]
    else:
        fast.restore_consumed(consumed, ts)  # type: ignore[arg-type]
        assert _same(fast.consumed_depth, general.consumed_depth)
    assert fast.snapshot() == general.snapshot()
