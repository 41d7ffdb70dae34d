"""``Exchange.open_interest``: the traders' long sizes summed, kept up to date by every fill.

The oracle is a direct sum over the position columns (``sum(max(size, 0))`` over trader
accounts), recomputed after each trade, bulk open, funding, liquidation and ADL round of random
sequences; replaying the journal must give the same open interest.
"""

from __future__ import annotations

import contextlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deleverage import AccountKind, Exchange, MarginMode, MarketSpec
from deleverage.engine.events import EventKind
from deleverage.errors import DeleverageError, UnknownEntityError
from deleverage.venues import preset


def _oracle(ex: Exchange, m: int) -> float:
    n = ex.n_accounts
    size = ex.columns(m).size[:n]
    trader = np.array([ex.account_kind(a) == AccountKind.TRADER for a in range(n)])
    return float(np.sum(np.maximum(size[trader], 0.0)))


def _assert_oi(ex: Exchange) -> None:
    for m in range(len(ex.markets)):
        want = _oracle(ex, m)
        assert ex.open_interest(m) == pytest.approx(want, rel=1e-9, abs=1e-9), m


def _grid(x: float, step: float) -> float:
    return max(1, round(x / step)) * step


def _scenario(seed: int, n_markets: int) -> tuple[Exchange, dict[str, int]]:
    """A random book traded, funded and marked through liquidations and ADL; OI checked."""
    rng = np.random.default_rng(seed)
    ex = Exchange(seed=seed)
    specs = [
        MarketSpec.simple("AUSDT", max_leverage=50, maintenance_rate=0.01, tick_size=0.01),
        preset("binance", "BTCUSDT"),
        preset("okx", "BTC"),
    ][:n_markets]
    marks = [100.0, 60_000.0, 30_000.0]
    for m, spec in enumerate(specs):
        ex.list_market(spec)
        ex.set_mark(m, marks[m])
    traders = [ex.open_account(margin_mode=MarginMode(int(rng.integers(2)))) for _ in range(10)]
    batch = ex.open_accounts(6, margin_mode=MarginMode.ISOLATED)
    traders += [int(a) for a in batch]
    ex.deposit_many(np.array(traders), rng.uniform(500.0, 20_000.0, len(traders)))
    _assert_oi(ex)
    for m, spec in enumerate(specs):  # a columnar open for the batch accounts
        sizes = np.array(
            [_grid(rng.uniform(100, 3_000) / marks[m], spec.lot_size) for _ in batch]
        ) * rng.choice([-1.0, 1.0], len(batch))
        with contextlib.suppress(DeleverageError):
            ex.open_positions(m, batch, sizes, np.full(len(batch), marks[m]), leverage=10.0)
        _assert_oi(ex)
    ts = 0
    for _ in range(70):
        m = int(rng.integers(n_markets))
        spec = specs[m]
        mark = ex.markets[m].mark
        a, b = (int(x) for x in rng.choice(traders, 2, replace=False))
        op = rng.random()
        try:
            if op < 0.45:
                free = ex.account_margins(a).withdrawable
                lev = float(ex.columns(m).leverage[a]) or spec.max_leverage
                size = _grid(max(free, 10.0) * lev * rng.uniform(0.2, 0.9) / mark, spec.lot_size)
                px = _grid(mark, spec.tick_size)
                other = b if rng.random() < 0.5 else ex.liquidity_account
                buyer, seller = (a, other) if rng.random() < 0.5 else (other, a)
                ex.trade(m, buyer=buyer, seller=seller, size=size, price=px)
            elif op < 0.9:
                ts += 1_000_000_000
                move = rng.normal(0.0, 0.02) if rng.random() < 0.85 else rng.choice([-0.2, 0.2])
                ex.set_mark(m, mark * float(np.exp(move)), ts_ns=ts)
            else:
                ts += 1_000_000_000
                ex.settle_funding(m, float(rng.choice([-0.002, 0.002])), ts_ns=ts)
        except DeleverageError:
            pass
        _assert_oi(ex)
    kinds = ex.journal.to_arrow().column("kind").to_pylist()
    counts = {k.name: kinds.count(int(k)) for k in EventKind}
    return ex, counts


@settings(max_examples=10)
@given(seed=st.integers(0, 2**32 - 1), n_markets=st.integers(1, 3))
def test_open_interest_equals_direct_sum(seed: int, n_markets: int) -> None:
    ex, _ = _scenario(seed, n_markets)
    replayed = Exchange.replay(ex.journal)
    for m in range(n_markets):
        assert replayed.open_interest(m) == pytest.approx(_oracle(ex, m), rel=1e-9, abs=1e-9)


def test_open_interest_through_liquidations_and_adl() -> None:
    """Sequences that liquidate and deleverage: the fills of both keep the sum."""
    totals = {"LIQUIDATION": 0, "ADL_ROUND": 0}
    for seed in range(6):
        _, counts = _scenario(seed, 2)
        for k in totals:
            totals[k] += counts[k]
    assert totals["LIQUIDATION"] > 0
    assert totals["ADL_ROUND"] > 0


def test_open_interest_worked_example() -> None:
    ex = Exchange()
    m = ex.list_market(MarketSpec.simple("XUSDT", max_leverage=10))
    ex.set_mark(m, 100.0)
    a, b = ex.open_account(), ex.open_account(margin_mode=MarginMode.ISOLATED)
    ex.deposit(a, 1_000.0)
    ex.deposit(b, 1_000.0)
    book = ex.liquidity_account
    assert ex.open_interest(m) == 0.0
    ex.trade(m, buyer=a, seller=b, size=2.0, price=100.0)  # a long 2, b short 2
    assert ex.open_interest(m) == 2.0
    ex.trade(m, buyer=a, seller=book, size=1.0, price=100.0)  # the book is not a trader
    assert ex.open_interest(m) == 3.0
    ex.trade(m, buyer=b, seller=a, size=5.0, price=100.0)  # a flips short 2, b long 3
    assert ex.open_interest(m) == 3.0
    ex.trade(m, buyer=a, seller=b, size=3.0, price=100.0)  # a long 1, b flat
    assert ex.open_interest(m) == 1.0
    with pytest.raises(UnknownEntityError, match="market"):
        ex.open_interest("NOPE")
