"""The risk step's liquidators (latency, capital per step) and its batched margin calls.

Worked examples on a one-tier market (maintenance 1 %, no fees) whose numbers are computed by
hand here: a 10x isolated long of 10 at 100 holds margin 100, so ``E(p) = 100 + 10 (p - 100)``,
``MM(p) = 0.1 p``; it is under maintenance below ``900 / 9.9 = 90.909...`` and bankrupt below 90.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from deleverage import Exchange, MarginMode, MarketSpec
from deleverage.engine.events import Liquidation, MarginCall
from deleverage.errors import DeleverageError, ValidationError

S = 1_000_000_000  # ns per second


def _market(ex: Exchange) -> int:
    spec = MarketSpec.simple(
        "XUSDT", max_leverage=50, maintenance_rate=0.01, maker_fee_rate=0.0, taker_fee_rate=0.0
    )
    m = ex.list_market(spec)
    ex.set_mark(m, 100.0)
    return m


def _iso_long(ex: Exchange, m: int, size: float = 10.0, leverage: float = 10.0) -> int:
    """An isolated position opened at 100 against the book (``size < 0``: a short)."""
    a = ex.open_account(margin_mode=MarginMode.ISOLATED)
    ex.deposit(a, 10_000.0)
    ex.set_leverage(a, m, leverage)
    book = ex.liquidity_account
    buyer, seller = (a, book) if size > 0 else (book, a)
    ex.trade(m, buyer=buyer, seller=seller, size=abs(size), price=100.0)
    return a


def _liquidations(ex: Exchange) -> list[Liquidation]:
    return [e for e in ex.journal.events(Liquidation) if isinstance(e, Liquidation)]


# ---------------------------------------------------------------------------- latency


def test_latency_delays_liquidation_even_beyond_bankruptcy() -> None:
    ex = Exchange()
    m = _market(ex)
    a = _iso_long(ex, m)
    assert ex.columns(m).isolated_margin[a] == pytest.approx(100.0)
    ex.risk.set_liquidators(m, latency_s=5.0)
    ex.set_mark(m, 90.5, ts_ns=1 * S)  # under maintenance (< 90.909): found at t = 1 s
    assert ex.columns(m).size[a] == 10.0
    assert ex.risk.pending_count(m) == 1
    ex.set_mark(m, 85.0, ts_ns=3 * S)  # beyond bankruptcy (90): still waiting
    assert ex.columns(m).size[a] == 10.0
    ex.set_mark(m, 85.0, ts_ns=5 * S)  # 4 s after: not yet
    assert ex.columns(m).size[a] == 10.0
    assert not _liquidations(ex)
    ex.set_mark(m, 86.0, ts_ns=6 * S)  # 5 s after it was found: liquidated
    assert ex.columns(m).size[a] == 0.0
    assert [e.account for e in _liquidations(ex)] == [a]
    assert ex.risk.pending_count(m) == 0
    assert ex.risk.under_collateralized_s == pytest.approx(5.0)


def test_latency_wait_ends_when_the_position_recovers() -> None:
    ex = Exchange()
    m = _market(ex)
    a = _iso_long(ex, m)
    ex.risk.set_liquidators(m, latency_s=10.0)
    ex.set_mark(m, 90.5, ts_ns=1 * S)
    ex.set_mark(m, 95.0, ts_ns=3 * S)  # back above maintenance: 2 s under water
    assert ex.risk.pending_count(m) == 0
    assert ex.risk.under_collateralized_s == pytest.approx(2.0)
    ex.set_mark(m, 90.5, ts_ns=20 * S)  # a new episode: the clock starts again
    ex.set_mark(m, 90.5, ts_ns=29 * S)
    assert ex.columns(m).size[a] == 10.0
    ex.set_mark(m, 90.5, ts_ns=30 * S)
    assert ex.columns(m).size[a] == 0.0
    assert ex.risk.under_collateralized_s == pytest.approx(2.0 + 10.0)


def test_zero_latency_liquidates_at_once() -> None:
    ex = Exchange()
    m = _market(ex)
    a = _iso_long(ex, m)
    ex.risk.set_liquidators(m, latency_s=0.0)
    ex.set_mark(m, 90.5, ts_ns=1 * S)
    assert ex.columns(m).size[a] == 0.0
    assert ex.risk.under_collateralized_s == 0.0


def test_latency_within_the_mark_interval_acts_at_the_mark_that_found_it() -> None:
    ex = Exchange()
    m = _market(ex)
    a = _iso_long(ex, m)
    ex.risk.set_liquidators(m, latency_s=0.2, mark_interval_s=1.0)
    ex.set_mark(m, 90.5, ts_ns=1 * S)
    assert ex.columns(m).size[a] == 0.0
    assert ex.risk.under_collateralized_s == pytest.approx(0.2)


# ---------------------------------------------------------------------------- capital


def test_capital_caps_the_notional_per_mark_time() -> None:
    ex = Exchange()
    m = _market(ex)
    accounts = [_iso_long(ex, m) for _ in range(5)]  # 5 x 1,000 notional
    cap = 1_500.0
    ex.risk.set_liquidators(m, capital_per_step=cap)

    def liquidated_notional(ts: int) -> float:
        return sum(abs(e.size) * e.price for e in _liquidations(ex) if e.ts_ns == ts)

    ex.set_mark(m, 90.5, ts_ns=1 * S)
    first = liquidated_notional(1 * S)
    assert 0.0 < first <= cap * (1 + 1e-9)
    ex.set_mark(m, 90.4, ts_ns=1 * S)  # a re-mark at the same time shares the step's capital
    ex.set_mark(m, 90.3, ts_ns=1 * S)
    assert liquidated_notional(1 * S) <= cap * (1 + 1e-9)
    open_after_first = sum(ex.columns(m).size[a] for a in accounts)
    assert open_after_first > 0.0  # capital ran out before the book did
    ex.set_mark(m, 90.3, ts_ns=2 * S)  # a new time: fresh capital
    second = liquidated_notional(2 * S)
    assert 0.0 < second <= cap * (1 + 1e-9)
    for ts in range(3, 10):
        ex.set_mark(m, 90.3, ts_ns=ts * S)
    assert all(ex.columns(m).size[a] == 0.0 for a in accounts)
    total = sum(abs(e.size) for e in _liquidations(ex))
    assert total == pytest.approx(50.0)


# ---------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"latency_s": -1.0}, "latency_s"),
        ({"latency_s": math.nan}, "latency_s"),
        ({"latency_s": math.inf}, "latency_s"),
        ({"capital_per_step": 0.0}, "capital_per_step"),
        ({"capital_per_step": -5.0}, "capital_per_step"),
        ({"capital_per_step": math.nan}, "capital_per_step"),
        ({"mark_interval_s": -1.0}, "mark_interval_s"),
        ({"mark_interval_s": math.inf}, "mark_interval_s"),
    ],
)
def test_bad_liquidator_settings_are_refused_whole(kwargs: dict[str, float], field: str) -> None:
    ex = Exchange()
    m = _market(ex)
    ex.risk.set_liquidators(m, latency_s=2.0, capital_per_step=100.0, mark_interval_s=1.0)
    with pytest.raises(ValidationError, match=field):
        ex.risk.set_liquidators(m, **{"latency_s": 3.0, "capital_per_step": 50.0, **kwargs})
    risk = ex.risk.markets[m]  # nothing half-applied
    assert (risk.latency_ns, risk.capital_per_step, risk.mark_interval_ns) == (2 * S, 100.0, S)


@pytest.mark.parametrize("market", [7, -1])
def test_unknown_market_is_refused(market: int) -> None:
    ex = Exchange()
    m = _market(ex)
    with pytest.raises(DeleverageError, match="market"):
        ex.risk.set_liquidators(market, latency_s=1.0)
    assert ex.risk.markets[m].latency_ns == 0  # the listed market is left as it was


# ---------------------------------------------------------------------------- margin calls


def _ratio_oracle(ex: Exchange, m: int, a: int) -> float:
    """``MM / E`` from the raw columns: one tier of 1 %, one market."""
    cols = ex.columns(m)
    mark = ex.markets[m].mark
    s, e = float(cols.size[a]), float(cols.entry[a])
    maint = abs(s) * mark * 0.01
    if cols.mode[a] == MarginMode.ISOLATED:
        equity = float(cols.isolated_margin[a]) + s * (mark - e)
    else:
        equity = ex.cash(a) + s * (mark - e)
    return maint / equity


def _calls(ex: Exchange) -> list[MarginCall]:
    return [e for e in ex.journal.events(MarginCall) if isinstance(e, MarginCall)]


def test_margin_calls_batch_once_per_episode() -> None:
    ex = Exchange()
    m = _market(ex)
    a = _iso_long(ex, m)
    b = _iso_long(ex, m, size=5.0)  # same leverage, same ratio
    c = ex.open_account()  # cross: cash 100.1, long 10 at 100
    ex.deposit(c, 100.1)
    ex.set_leverage(c, m, 10.0)
    ex.trade(m, buyer=c, seller=ex.liquidity_account, size=10.0, price=100.0)
    d = _iso_long(ex, m, leverage=3.0)  # far from the zone
    # At 91: a, b: 9.1 / (100 - 90) = 0.91; c: 9.1 / (100.1 - 90) = 0.90099; d: 9.1 / 243.3.
    ex.set_mark(m, 91.0, ts_ns=1 * S)
    calls = _calls(ex)
    assert sorted(e.account for e in calls) == sorted([a, b, c])
    assert len({e.ts_ns for e in calls}) == 1
    assert all(e.market == m for e in calls)
    for e in calls:
        assert e.ratio == pytest.approx(_ratio_oracle(ex, m, e.account), rel=1e-12)
    assert {e.account: e.ratio for e in calls}[a] == pytest.approx(0.91, rel=1e-12)
    assert {e.account: e.ratio for e in calls}[c] == pytest.approx(9.1 / 10.1, rel=1e-12)
    assert _ratio_oracle(ex, m, d) < 0.8
    ex.set_mark(m, 90.95, ts_ns=2 * S)  # still in the zone: not called again
    ex.set_mark(m, 91.0, ts_ns=3 * S)
    assert len(_calls(ex)) == 3
    ex.set_mark(m, 96.0, ts_ns=4 * S)  # out of the zone
    assert len(_calls(ex)) == 3
    ex.set_mark(m, 91.0, ts_ns=5 * S)  # back in: a new episode, called again
    again = [e for e in _calls(ex) if e.ts_ns == 5 * S]
    assert sorted(e.account for e in again) == sorted([a, b, c])
    assert all(ex.columns(m).size[x] != 0.0 for x in (a, b, c, d))  # no one liquidated


def test_single_margin_call_and_random_population_against_oracle() -> None:
    """A random population marked down: each step calls exactly the accounts the oracle puts
    newly in the zone ``0.8 <= MM / E`` (liquidated ones excepted), with the oracle's ratio."""
    rng = np.random.default_rng(3)
    ex = Exchange()
    m = _market(ex)
    accounts = []
    for _ in range(30):
        lev = float(rng.choice([5.0, 8.0, 10.0, 12.0, 20.0]))
        size = float(rng.integers(1, 20)) * float(rng.choice([-1.0, 1.0]))
        accounts.append(_iso_long(ex, m, size=size, leverage=lev))
    called: set[int] = set()
    seen = 0
    path = np.concatenate([np.arange(100.0, 88.0, -0.1), np.arange(88.0, 108.0, 0.1)])
    for k, mark in enumerate(path.tolist()):
        before = len(_calls(ex))
        ex.set_mark(m, mark, ts_ns=(k + 1) * S)
        new = _calls(ex)[before:]
        open_now = [x for x in accounts if ex.columns(m).size[x] != 0.0]
        zone = {x for x in open_now if _ratio_oracle(ex, m, x) >= 0.8}
        assert {e.account for e in new} == zone - called, mark
        for e in new:
            assert e.ratio == pytest.approx(_ratio_oracle(ex, m, e.account), rel=1e-12)
        called = (called & zone) | zone
        seen += len(new)
    assert seen > 15, seen
