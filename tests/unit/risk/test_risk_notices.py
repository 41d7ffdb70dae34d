"""Margin calls and circuit breakers of the risk step.

Margin ratio follows Binance's convention, ``maintenance / equity`` (liquidation at 1):
https://www.binance.com/en/support/faq/360033525271. The breaker halts liquidations after a mark
move beyond a threshold within a window (the LULD-style "limit up / limit down" band of equity
markets, https://www.luldplan.com/, applied to the risk step), and resumes after a cooldown.
"""

from __future__ import annotations

from typing import Any

import pytest

from deleverage import Exchange, MarginMode, MarketSpec
from deleverage.engine.events import CircuitBreaker, Fill, FillReason, MarginCall
from deleverage.errors import HaltedError

S = 1_000_000_000


def _venue(**fields: Any) -> tuple[Exchange, int]:
    ex = Exchange(check_invariants=True)
    spec = MarketSpec.simple(
        "BTCUSDT", max_leverage=20.0, maintenance_rate=0.025, maker_fee_rate=0.0,
        taker_fee_rate=0.0, **fields,
    )  # fmt: skip
    m = ex.list_market(spec)
    ex.set_mark(m, 100_000.0)
    return ex, m


def _long(ex: Exchange, m: int, mode: MarginMode = MarginMode.ISOLATED) -> int:
    # 0.2 BTC long at 100,000 with 1,000 of margin (20x).
    a = ex.open_account(margin_mode=mode)
    ex.deposit(a, 1_000.0)
    ex.trade(m, buyer=a, seller=ex.liquidity_account, size=0.2, price=100_000.0)
    return a


def _new(ex: Exchange, start: int, kind: type[Any]) -> list[Any]:
    return [e for e in ex.journal.events(kind) if e.seq >= start]


# ---------------------------------------------------------------------------- margin calls


@pytest.mark.parametrize("mode", [MarginMode.ISOLATED, MarginMode.CROSS])
def test_margin_call_is_sent_once_when_the_ratio_crosses_the_level(mode: MarginMode) -> None:
    # ratio = 0.025 x 0.2 P / (1,000 + 0.2 (P - 100,000)) = 0.005 P / (0.2 P - 19,000).
    # It reaches 0.8 at 0.005 P = 0.16 P - 15,200, P = 98,064.52. Hand values:
    #   99,000: 495 / 800 = 0.619     98,000: 490 / 600 = 0.817    97,900: 489.5 / 580 = 0.844
    #   97,800: 489 / 560 = 0.873     98,500: 492.5 / 700 = 0.704  (back below: re-armed)
    ex, m = _venue(liquidation={"margin_call_ratio": 0.8})
    a = _long(ex, m, mode)
    marks = [99_000.0, 98_000.0, 97_900.0, 97_800.0, 98_500.0, 98_000.0]
    expected_calls = [0, 1, 0, 0, 0, 1]
    ratios = [0.619, 0.817, 0.844, 0.873, 0.704, 0.817]

    calls = []
    for k, mark in enumerate(marks, start=1):
        start = len(ex.journal)
        ex.set_mark(m, mark, ts_ns=k * S)
        notices = _new(ex, start, MarginCall)
        calls.append(len(notices))
        assert ex.last_step.margin_calls == len(notices)
        for notice in notices:
            assert notice.account == a
            assert notice.ratio == pytest.approx(ratios[k - 1], abs=1e-3)
            assert notice.ratio >= 0.8

    assert calls == expected_calls
    assert ex.position(a, m).size == pytest.approx(0.2)  # never liquidated on the way


def test_no_margin_call_for_an_account_already_below_maintenance() -> None:
    # At 97,000 the ratio is 485 / 400 > 1: a liquidation, not a warning.
    ex, m = _venue(liquidation={"margin_call_ratio": 0.8})
    _long(ex, m)
    start = len(ex.journal)

    ex.set_mark(m, 97_000.0, ts_ns=1 * S)

    assert _new(ex, start, MarginCall) == []
    assert ex.last_step.liquidations == 1


# ---------------------------------------------------------------------------- circuit breaker


def _breaker_venue(*, halt_trading: bool, cooldown_s: float = 300.0) -> tuple[Exchange, int]:
    breaker = {
        "threshold": 0.05, "window_s": 60.0, "cooldown_s": cooldown_s, "halt_trading": halt_trading,
    }  # fmt: skip
    return _venue(liquidation_fee_rate=0.005, circuit_breaker=breaker)


def test_breaker_halts_liquidations_after_a_fast_move_and_resumes_after_cooldown() -> None:
    # Arrange: the long's liquidation price is 97,435.90; the breaker trips on a move of more
    # than 5% against any mark of the last 60 s.
    ex, m = _breaker_venue(halt_trading=True)
    a = _long(ex, m)
    ex.set_mark(m, 99_000.0, ts_ns=10 * S)  # 1% from 100,000: no halt

    # Act 1: 94,000 at 20 s is 6% below the 100,000 of 0 s.
    start = len(ex.journal)
    ex.set_mark(m, 94_000.0, ts_ns=20 * S)

    # Assert 1: halted, and the account (equity -200, far below maintenance) is left alone.
    (notice,) = _new(ex, start, CircuitBreaker)
    assert notice.halted == 1
    assert notice.move == pytest.approx(0.06)
    assert ex.last_step.halted
    assert ex.risk.halted(m)
    assert ex.last_step.liquidations == 0
    assert ex.position(a, m).size == pytest.approx(0.2)
    assert _new(ex, start, Fill) == []

    # Still halted at 200 s: nothing happens.
    ex.set_mark(m, 94_000.0, ts_ns=200 * S)
    assert ex.last_step.halted
    assert ex.position(a, m).size == pytest.approx(0.2)

    # Act 2: 300 s after the halt (at 320 s) the market resumes in the same step and the
    # pending liquidation happens.
    start = len(ex.journal)
    ex.set_mark(m, 94_000.0, ts_ns=320 * S)

    # Assert 2
    (resume,) = _new(ex, start, CircuitBreaker)
    assert resume.halted == 0
    assert not ex.last_step.halted
    assert not ex.risk.halted(m)
    assert ex.position(a, m).size == 0.0
    assert ex.last_step.liquidations + ex.last_step.adl_rounds >= 1
    assert ex.conservation().holds


def test_trading_in_a_halted_market_raises_and_changes_nothing() -> None:
    ex, m = _breaker_venue(halt_trading=True)
    b = ex.open_account()
    ex.deposit(b, 10_000.0)
    ex.set_mark(m, 94_000.0, ts_ns=20 * S)
    assert ex.risk.halted(m)
    before, events = ex.state_hash(), len(ex.journal)

    with pytest.raises(HaltedError, match="halted"):
        ex.trade(m, buyer=b, seller=ex.liquidity_account, size=0.01, price=94_000.0, ts_ns=21 * S)

    assert ex.state_hash() == before
    assert len(ex.journal) == events


def test_trading_continues_while_only_liquidations_are_halted() -> None:
    ex, m = _breaker_venue(halt_trading=False)
    b = ex.open_account()
    ex.deposit(b, 10_000.0)
    ex.set_mark(m, 94_000.0, ts_ns=20 * S)
    assert ex.risk.halted(m)

    fill = ex.trade(m, buyer=b, seller=ex.liquidity_account, size=0.01, price=94_000.0)

    assert fill.reason == FillReason.TRADE
    assert ex.position(b, m).size == pytest.approx(0.01)


def test_moves_spread_beyond_the_window_do_not_trip_the_breaker() -> None:
    # -4% at 10 s, then another -4% at 100 s: the 10 s mark has left the 60 s window, so the
    # second move is measured against 96,000 only (4%), never 8%.
    ex, m = _breaker_venue(halt_trading=True)
    ex.set_mark(m, 96_000.0, ts_ns=10 * S)
    ex.set_mark(m, 92_160.0, ts_ns=100 * S)

    assert not ex.risk.halted(m)
    assert ex.journal.events(CircuitBreaker) == []


def test_a_move_within_the_threshold_liquidates_normally() -> None:
    # 100,000 -> 97,000 is 3% < 5%: the long (liquidation price 97,435.90) is liquidated.
    ex, m = _breaker_venue(halt_trading=True)
    a = _long(ex, m)

    ex.set_mark(m, 97_000.0, ts_ns=1 * S)

    assert not ex.last_step.halted
    assert ex.position(a, m).size == 0.0
