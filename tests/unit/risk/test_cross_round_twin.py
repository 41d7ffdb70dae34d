"""Cross rounds with their journal rows in columns (engine/risk/cross_round.py) against the
per-account path they replace (``RiskEngine.cross_rounds = False``).

The reference is ``LiquidationStage._liquidate`` account by account, one event object and one
``_emit`` each. Both runs must write the same journal row for row (every column, bit for
bit), end in the same state arrays bit for bit, report the same steps and leave the same fund
ledger records. The books are random cross accounts over two or three markets (longs and
shorts, so ADL has a queue), with isolated positions among them (the round flushes its rows
before each), books or fills at the mark, liquidation kinds, ADL rankings (socialized loss
included) and funds from none to plenty, so shortfalls, fund exhaustion and ADL occur.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from deleverage import Exchange, MarginMode, MarketSpec
from deleverage.engine.events import EventKind
from deleverage.engine.risk import StepReport
from deleverage.engine.risk.cross_round import CrossRound
from deleverage.liquidity import ConstantDepthBook

S = 1_000_000_000
SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT")
OPENS = (1_000.0, 100.0, 10.0)
POLICIES: dict[str, dict[str, Any]] = {
    "full": {"kind": "full"},
    "partial": {"kind": "partial", "buffer": 0.01},
    "tier_down": {"kind": "tier_down"},
}
RANKINGS = ("pnl_leverage", "binance", "hyperliquid", "pro_rata", "socialized_loss")


def _spec(symbol: str, kind: str, ranking: str, fee: float) -> MarketSpec:
    return MarketSpec.from_mapping(
        {
            "symbol": symbol, "maker_fee_rate": 0.0, "taker_fee_rate": 0.0,
            "liquidation_fee_rate": fee, "liquidation": POLICIES[kind],
            "adl": {"ranking": ranking},
            "tiers": [
                {"notional_floor": 0.0, "max_leverage": 50.0, "maintenance_rate": 0.01},
                {"notional_floor": 10_000.0, "max_leverage": 20.0, "maintenance_rate": 0.025},
                {"notional_floor": 30_000.0, "max_leverage": 10.0, "maintenance_rate": 0.05},
            ],
        }
    )  # fmt: skip


@st.composite
def books(draw: st.DrawFn) -> dict[str, Any]:
    n_markets = draw(st.integers(2, 3))
    n_cross = draw(st.integers(3, 14))
    n_iso = draw(st.integers(0, 3))
    markets = [
        {
            "kind": draw(st.sampled_from(sorted(POLICIES))),
            "ranking": draw(st.sampled_from(RANKINGS)),
            "fee": draw(st.sampled_from([0.0, 0.005, 0.015])),
            "depth": draw(st.sampled_from([None, 0.5, 5.0, 50.0])),
        }
        for _ in range(n_markets)
    ]
    notional = st.floats(200.0, 40_000.0, allow_nan=False)
    cross = [
        {
            "sizes": [
                draw(st.sampled_from([0.0, 1.0, 1.0, -1.0])) * draw(notional) / OPENS[j]
                for j in range(n_markets)
            ],
            "cash": draw(
                st.floats(0.1, 0.3)
            ),  # of the summed notional (the top tier's initial rate: 0.1)
        }
        for _ in range(n_cross)
    ]
    isolated = [
        (draw(st.sampled_from([1.0, -1.0])) * draw(notional) / OPENS[0], draw(st.floats(2, 40)))
        for _ in range(n_iso)
    ]
    moves = st.floats(-0.15, 0.08, allow_nan=False)
    path = [[draw(moves) for _ in range(n_markets)] for _ in range(draw(st.integers(2, 6)))]
    fund = draw(st.sampled_from([0.0, 50.0, 2_000.0, 1e7]))
    return {"markets": markets, "cross": cross, "isolated": isolated, "path": path, "fund": fund}


def _tier_max(notional: Any) -> Any:
    """The highest leverage :func:`_spec`'s tiers allow at each notional."""
    return np.where(notional >= 30_000.0, 10.0, np.where(notional >= 10_000.0, 20.0, 50.0))


def _run(
    book: dict[str, Any], *, columns: bool, plan: bool = True
) -> tuple[Exchange, list[StepReport]]:
    ex = Exchange(seed=3)
    ex.risk.cross_rounds = columns
    ex.risk.cross_plan = plan  # the compiled planner (test_cross_plan_twin.py) or CrossRound
    ids = []
    for j, market in enumerate(book["markets"]):
        m = ex.list_market(_spec(SYMBOLS[j], market["kind"], market["ranking"], market["fee"]))
        ex.set_mark(m, OPENS[j])
        if market["depth"] is not None:
            ex.set_liquidity(m, ConstantDepthBook(depth_per_pct=market["depth"], half_life_s=20.0))
        ids.append(m)
    if book["fund"] > 0:
        ex.deposit(ex.insurance_account, book["fund"])
    traders = ex.open_accounts(len(book["cross"]), margin_mode=MarginMode.CROSS)
    for a, acc in zip(traders.tolist(), book["cross"], strict=True):
        total = sum(abs(q) * p for q, p in zip(acc["sizes"], OPENS, strict=False))
        ex.deposit(a, max(total * acc["cash"], 1.0))
    for j, m in enumerate(ids):
        sizes = np.array([acc["sizes"][j] for acc in book["cross"]])
        held = sizes != 0.0
        if held.any():
            lev = _tier_max(np.abs(sizes[held]) * OPENS[j])
            ex.open_positions(
                m, traders[held], sizes[held], np.full(int(held.sum()), OPENS[j]), leverage=lev
            )
    if book["isolated"]:
        iso = ex.open_accounts(len(book["isolated"]), margin_mode=MarginMode.ISOLATED)
        sizes = np.array([q for q, _ in book["isolated"]])
        leverage = np.array([lev for _, lev in book["isolated"]])
        notional = np.abs(sizes) * OPENS[0]
        leverage = np.minimum(leverage, _tier_max(notional))
        ex.deposit_many(iso, notional / leverage + 1.0)
        ex.open_positions(ids[0], iso, sizes, np.full(len(sizes), OPENS[0]), leverage=leverage)
    reports = []
    marks = list(OPENS)
    for k, moves in enumerate(book["path"], start=1):
        for j, m in enumerate(ids):
            marks[j] = round(marks[j] * (1.0 + moves[j]), 6)
            ex.set_mark(m, marks[j], ts_ns=k * 30 * S)
            reports.append(ex.last_step)
    return ex, reports


def _assert_twins(
    a: tuple[Exchange, list[StepReport]], b: tuple[Exchange, list[StepReport]]
) -> None:
    (ex_a, rep_a), (ex_b, rep_b) = a, b
    journal_a, journal_b = ex_a.journal.to_arrow(), ex_b.journal.to_arrow()
    assert journal_a.num_rows == journal_b.num_rows
    for name in journal_a.column_names:
        assert journal_a.column(name).to_pylist() == journal_b.column(name).to_pylist(), name
    arrays_a, arrays_b = ex_a.state_arrays(), ex_b.state_arrays()
    assert arrays_a.keys() == arrays_b.keys()
    for name in arrays_a:
        assert np.array_equal(arrays_a[name], arrays_b[name], equal_nan=True), name
    assert ex_a.state_hash() == ex_b.state_hash()
    assert [dataclasses.asdict(r) for r in rep_a] == [dataclasses.asdict(r) for r in rep_b]
    for account, fund in ex_a.funds.items():
        assert fund.history == ex_b.funds[account].history
    assert ex_a.risk.declared_bad_debt == ex_b.risk.declared_bad_debt
    assert ex_a.open_interest(0) == ex_b.open_interest(0)


@settings(max_examples=120, deadline=None)
@given(books())
def test_cross_rounds_match_the_per_account_path(book: dict[str, Any]) -> None:
    _assert_twins(_run(book, columns=True), _run(book, columns=False))


def _crash(fund: float, ranking: str) -> dict[str, Any]:
    """Leveraged cross longs in three markets, a few shorts, a 15% crash through thin books."""
    cross = [
        {"sizes": [q * 20_000.0 / p for p in OPENS], "cash": c}
        for q, c in [(1.0, 0.1), (1.0, 0.1), (1.0, 0.11), (0.5, 0.1), (2.0, 0.1), (1.0, 0.13)]
    ] + [{"sizes": [-15_000.0 / p for p in OPENS], "cash": 0.3} for _ in range(3)]
    market = {"kind": "tier_down", "ranking": ranking, "fee": 0.01, "depth": 20.0}
    return {
        "markets": [dict(market) for _ in OPENS],
        "cross": cross,
        "isolated": [(8.0, 20.0), (-5.0, 10.0)],
        "path": [
            [-0.07, -0.075, -0.07],
            [-0.02, -0.03, -0.02],
            [-0.12, -0.1, -0.14],
            [0.02, 0.0, -0.03],
        ],
        "fund": fund,
    }


def test_the_columns_path_runs_and_hands_shortfalls_to_the_fund_and_adl(monkeypatch: Any) -> None:
    """The crash liquidates through the columns path (rows appended as batches), the fund pays
    shortfalls until it is exhausted and ADL takes the rest; both paths agree on all of it.
    (``CrossRound`` account by account: the compiled planner is off here.)"""
    calls = {"liquidate": 0, "flush_rows": 0}
    original_liquidate, original_flush = CrossRound.liquidate, CrossRound.flush

    def liquidate(self: CrossRound, *args: Any) -> bool:
        calls["liquidate"] += 1
        return original_liquidate(self, *args)

    def flush(self: CrossRound) -> None:
        calls["flush_rows"] += len(self._rows)
        original_flush(self)

    monkeypatch.setattr(CrossRound, "liquidate", liquidate)
    monkeypatch.setattr(CrossRound, "flush", flush)
    for fund, ranking in [(1_000.0, "pnl_leverage"), (0.0, "socialized_loss"), (1e7, "binance")]:
        fast = _run(_crash(fund, ranking), columns=True, plan=False)
        reference = _run(_crash(fund, ranking), columns=False)
        _assert_twins(fast, reference)
        kinds = reference[0].journal.to_arrow().column("kind").to_pylist()
        assert kinds.count(int(EventKind.LIQUIDATION)) >= 6
        if fund == 1_000.0:
            assert kinds.count(int(EventKind.ADL_ROUND)) >= 1
            assert sum(r.insurance_paid for r in reference[1]) > 0.0
    assert calls["liquidate"] >= 6 * 3
    assert calls["flush_rows"] >= 3 * 6 * 3  # fill, penalty and notice rows went as columns
