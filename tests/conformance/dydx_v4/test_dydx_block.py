"""dYdX v4's pass over liquidatable subaccounts, through the engine.

``LiquidateSubaccountsAgainstOrderbook`` (v4-chain @ 84d4664,
``protocol/x/clob/keeper/liquidations.go``): at most ``MaxLiquidationAttemptsPerBlock`` (50,
``protocol/x/clob/flags/flags.go``) subaccounts, taken from a pseudo-random offset, sorted by
``SortLiquidationOrders`` (the relative distance of the fillable price from the oracle, then the
oracle notional, both descending, then the order hash); ``DeleverageSubaccounts``
(``deleveraging.go``) deleverages at most ``MaxDeleveragingAttemptsPerBlock`` (10) of the
unfilled ones. The order is checked against ``rules.quantum_deleverage.sort_liquidation_orders``,
which reproduces the ``TestSortLiquidationOrders`` vectors (``ordering_01``..``06``), fed with
``rules.liquidation.fillable_price`` (the ``TestGetFillablePrice`` vectors).
"""

from __future__ import annotations

from typing import Any

import pytest

from deleverage import Exchange, MarketSpec
from deleverage.engine.events import EventKind
from deleverage.rules import liquidation as liq
from deleverage.rules.quantum_deleverage import LiquidationOrder, sort_liquidation_orders
from deleverage.venues import preset

MMR = 0.012
ENTRY = 100_000.0


def _spec(**liquidation: Any) -> MarketSpec:
    base = preset("dydx_v4", "BTC-USD").model_dump()
    base["liquidation"] = {**base["liquidation"], "max_notional_per_account_step": None,
                           "min_position_notional": 0.0, **liquidation}  # fmt: skip
    return MarketSpec.from_mapping({
        **base, "maker_fee_rate": 0.0, "taker_fee_rate": 0.0, "lot_size": 0.001,
        "tiers": [{"notional_floor": 0.0, "max_leverage": 50.0, "maintenance_rate": MMR}],
    })  # fmt: skip


def _book(
    spec: MarketSpec, accounts: list[tuple[float, float]], fund: float
) -> tuple[Exchange, list[int]]:
    """Longs of (size, cash left after opening) at 100,000 against one big short."""
    ex = Exchange(seed=3)
    ex.list_market(spec)
    ex.set_mark("BTC-USD", ENTRY)
    if fund:
        ex.deposit(ex.insurance_account, fund)
    ex.deposit(ex.liquidator_account, 1e9)
    short = ex.open_account()
    ex.deposit(short, 1e9)
    ids = []
    for size, cash in accounts:
        a = ex.open_account()
        ex.deposit(a, 2 * size * ENTRY)
        ex.trade("BTC-USD", buyer=a, seller=short, size=size, price=ENTRY)
        ex.transfer(a, ex.fee_account, 2 * size * ENTRY - cash, reason=0)  # type: ignore[arg-type]
        ids.append(a)
    return ex, ids


def _liquidated(ex: Exchange, first_seq: int) -> list[int]:
    table = ex.journal.to_arrow().slice(first_seq).to_pandas()
    rows = table[table["kind"] == int(EventKind.LIQUIDATION)]
    return [int(a) for a in rows["account"]]


def test_accounts_are_liquidated_in_sort_liquidation_orders_order() -> None:
    # Equal TNC / TMMR gives equal fillable-price gaps: B (twice A) goes before A, A before its
    # twin E (account id, where dYdX uses the order hash), and D (half) after them; C, deepest
    # under water, first.
    book = {"A": (1.0, 2_000.0), "B": (2.0, 4_000.0), "C": (1.0, 1_500.0), "D": (0.5, 1_000.0),
            "E": (1.0, 2_000.0)}  # fmt: skip
    ex, ids = _book(_spec(), list(book.values()), fund=1e9)
    mark = 98_900.0
    orders = []
    for size, cash in book.values():
        equity, maintenance = cash + size * (mark - ENTRY), size * mark * MMR
        price = liq.fillable_price(
            side=1, oracle_price=mark, size=size, position_maintenance=maintenance,
            account_equity=equity, account_maintenance=maintenance,
            spread_to_maintenance_ratio=1.5,
        )  # fmt: skip
        orders.append(LiquidationOrder(
            is_buy=False, base=round(size * 1e8), subticks=round(price * 1e6),
            oracle_notional_quote=round(size * mark * 1e6),
        ))  # fmt: skip
    want = [ids[k] for k in sort_liquidation_orders(orders, round(mark * 1e6))]
    assert [list(book)[ids.index(a)] for a in want] == ["C", "B", "A", "E", "D"]
    first = len(ex.journal)
    ex.set_mark("BTC-USD", mark, ts_ns=10**9)
    assert _liquidated(ex, first) == want


def test_at_most_max_liquidations_per_step_accounts_a_window_from_a_random_start() -> None:
    ex, ids = _book(_spec(max_liquidations_per_step=2), [(1.0, 2_000.0)] * 5, fund=1e9)
    first = len(ex.journal)
    ex.set_mark("BTC-USD", 98_900.0, ts_ns=10**9)
    done = _liquidated(ex, first)
    assert len(done) == 2
    # Two neighbours in account order (the window wraps from the last to the first).
    picked = {ids.index(a) for a in done}
    assert any(picked == {k, (k + 1) % 5} for k in range(5))
    first = len(ex.journal)
    ex.set_mark("BTC-USD", 98_900.0, ts_ns=2 * 10**9)  # the next block takes two more
    assert len(_liquidated(ex, first)) == 2


@pytest.mark.parametrize(("cap", "per_step"), [(1, 1), (None, 2)])
def test_at_most_max_deleveragings_per_step_after_unfilled_liquidations(
    cap: int | None, per_step: int
) -> None:
    # An empty fund cannot pay fills beyond bankruptcy: both losers (negative TNC at 97,000)
    # are deleveraged against the short, one per step with a cap of 1.
    ex, ids = _book(_spec(max_deleveragings_per_step=cap), [(1.0, 2_000.0)] * 2, fund=0.0)
    ex.set_mark("BTC-USD", 97_000.0, ts_ns=10**9)
    still_open = [a for a in ids if ex.position(a, "BTC-USD").size != 0.0]
    assert len(ids) - len(still_open) == per_step
    ex.set_mark("BTC-USD", 97_000.0, ts_ns=2 * 10**9)
    assert all(ex.position(a, "BTC-USD").size == 0.0 for a in ids)


def test_dydx_preset_sets_the_block_pass() -> None:
    policy = preset("dydx_v4").liquidation
    assert (policy.order, policy.max_liquidations_per_step, policy.max_deleveragings_per_step) == (
        "fillable_price", 50, 10,
    )  # fmt: skip
