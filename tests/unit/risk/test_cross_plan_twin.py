"""The compiled cross-round planner (engine/risk/cross_plan.py, cross_plan_nb.py) against the
Python ``CrossRound`` it replaces (``RiskEngine.cross_plan = False``) and the per-account path
(``cross_rounds = False``).

The books are random cross accounts over two or three markets whose rules the planner takes
(full or tier-down sizes, linear books of several depths or fills at the mark, liquidation fees
on the fill or the oracle), with shorts among them (ADL has a queue), isolated positions
(the run of cross candidates is cut at each), tier tables with a maintenance floor, and funds
from none to plenty: so the kernel stops at full closes beyond bankruptcy or beyond the book
(the fund, ADL or socialized loss), at flat accounts with a deficit (fund exhaustion, bad debt)
and resumes after them. The three runs must write the same journal row for row, bit for bit,
end in the same arrays, reports, fund ledger records and declared bad debt. A planner fed the
accounts in a wrong order must fail the comparison.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import test_cross_round_twin as rounds
from hypothesis import given, settings
from hypothesis import strategies as st

from deleverage import Exchange, MarginMode, MarketSpec
from deleverage.engine.risk import StepReport
from deleverage.engine.risk import cross_plan as plan_module
from deleverage.engine.risk.cross_plan import CrossPlanner
from deleverage.engine.risk.cross_plan_nb import cross_plan_nb
from deleverage.engine.risk.cross_round import CrossRound
from deleverage.engine.risk.step import RiskEngine
from deleverage.errors import InvariantError
from deleverage.liquidity import ConstantDepthBook

S = 1_000_000_000
SYMBOLS = rounds.SYMBOLS
OPENS = rounds.OPENS
RANKINGS = ("pnl_leverage", "binance", "socialized_loss")


def _spec(symbol: str, market: dict[str, Any]) -> MarketSpec:
    policy: dict[str, Any] = {"kind": market["kind"], "fee_basis": market["fee_basis"]}
    if market["kind"] == "tier_down":
        policy["tier_down_target"] = market["target"]
    return MarketSpec.from_mapping(
        {
            "symbol": symbol, "maker_fee_rate": 0.0, "taker_fee_rate": 0.0,
            "liquidation_fee_rate": market["fee"], "liquidation": policy,
            "adl": {"ranking": market["ranking"]}, "lot_size": market["lot"],
            "min_maintenance_margin": market["floor"],
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
    n_cross = draw(st.integers(3, 16))
    n_iso = draw(st.sampled_from([0, 0, 2]))
    markets = [
        {
            "kind": draw(st.sampled_from(["full", "tier_down", "tier_down"])),
            "target": draw(st.sampled_from(["next", "first"])),
            "ranking": draw(st.sampled_from(RANKINGS)),
            "fee": draw(st.sampled_from([0.0, 0.005, 0.015])),
            "fee_basis": draw(st.sampled_from(["fill", "oracle"])),
            "depth": draw(st.sampled_from([None, 0.5, 5.0, 50.0])),
            "lot": draw(st.sampled_from([0.001, 0.01])),
            "floor": draw(st.sampled_from([0.0, 0.0, 5.0])),
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
            "cash": draw(st.floats(0.1, 0.3)),
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


def _run(
    book: dict[str, Any], *, columns: bool, plan: bool, check: bool = True
) -> tuple[Exchange, list[StepReport]]:
    # check_invariants on the planned run: also a planned round's next candidates (step.py)
    ex = Exchange(seed=3, check_invariants=plan and check)
    ex.risk.cross_rounds = columns
    ex.risk.cross_plan = plan
    ids = []
    for j, market in enumerate(book["markets"]):
        m = ex.list_market(_spec(SYMBOLS[j], market))
        ex.set_mark(m, OPENS[j])
        if market["depth"] is not None:
            ex.set_liquidity(m, ConstantDepthBook(depth_per_pct=market["depth"], half_life_s=20.0))
        ids.append(m)
    if book["fund"] > 0:
        ex.deposit(ex.insurance_account, book["fund"])
    lots = [ex.market(m).spec.lot_size for m in ids]
    held_sizes = [
        [float(np.round(q / lot) * lot) for q, lot in zip(acc["sizes"], lots, strict=True)]
        for acc in book["cross"]
    ]  # whole lots
    traders = ex.open_accounts(len(book["cross"]), margin_mode=MarginMode.CROSS)
    for a, acc, held_size in zip(traders.tolist(), book["cross"], held_sizes, strict=True):
        total = sum(abs(q) * p for q, p in zip(held_size, OPENS, strict=False))
        ex.deposit(a, max(total * acc["cash"], 1.0))
    for j, m in enumerate(ids):
        sizes = np.array([held_size[j] for held_size in held_sizes])
        held = sizes != 0.0
        if held.any():
            lev = rounds._tier_max(np.abs(sizes[held]) * OPENS[j])
            ex.open_positions(
                m, traders[held], sizes[held], np.full(int(held.sum()), OPENS[j]), leverage=lev
            )
    if book["isolated"]:
        iso = ex.open_accounts(len(book["isolated"]), margin_mode=MarginMode.ISOLATED)
        lot = ex.market(ids[0]).spec.lot_size
        sizes = np.round(np.array([q for q, _ in book["isolated"]]) / lot) * lot
        leverage = np.array([lev for _, lev in book["isolated"]])
        notional = np.abs(sizes) * OPENS[0]
        leverage = np.minimum(leverage, rounds._tier_max(notional))
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


@settings(max_examples=150, deadline=None)
@given(books())
def test_the_planner_matches_cross_round_and_the_per_account_path(book: dict[str, Any]) -> None:
    planned = _run(book, columns=True, plan=True)
    rounds._assert_twins(planned, _run(book, columns=True, plan=False))
    rounds._assert_twins(planned, _run(book, columns=False, plan=False))


def _crash(fund: float, ranking: str, depth: float) -> dict[str, Any]:
    """Leveraged cross longs in three markets, a few shorts, a crash through the books."""
    crash = rounds._crash(fund, ranking)
    for market in crash["markets"]:
        market.update(
            {"target": "next", "fee_basis": "fill", "lot": 0.001, "floor": 0.0, "depth": depth}
        )
    crash["isolated"] = []
    return crash


class _Spy:
    """Counts the planner's kernel calls, accounts and stops (by reason)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls = 0
        self.accounts = 0
        self.stops: list[int] = []
        kernel = cross_plan_nb

        def spy(*args: Any) -> None:
            kernel(*args)
            self.calls += 1
            self.accounts += len(args[0])
            stop = args[-3]
            if stop[0]:
                self.stops.append(int(stop[0]))

        monkeypatch.setattr(plan_module, "cross_plan_nb", spy)


def test_the_planner_runs_stops_and_resumes_on_a_crash(monkeypatch: pytest.MonkeyPatch) -> None:
    """On the crash the kernel takes the rounds, stops at closes the fund, ADL or socialized
    loss decide (reason 1) and at flat accounts with a deficit (reason 2), resumes after them,
    and all three paths agree."""
    spy = _Spy(monkeypatch)
    cases = [(1_000.0, "pnl_leverage", 20.0), (0.0, "socialized_loss", 20.0)]
    cases += [(1e7, "binance", 20.0), (0.0, "pnl_leverage", 0.05)]
    for fund, ranking, depth in cases:
        book = _crash(fund, ranking, depth)
        planned = _run(book, columns=True, plan=True)
        rounds._assert_twins(planned, _run(book, columns=True, plan=False))
        rounds._assert_twins(planned, _run(book, columns=False, plan=False))
    assert spy.calls >= 4
    assert spy.accounts >= 12
    assert 1 in spy.stops


def test_a_flat_account_with_a_deficit_stops_the_planner_for_the_fund(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A cross candidate without positions and with negative cash (the only way an account
    ends a planned liquidation flat with a deficit: a fill beyond bankruptcy stops the kernel
    earlier) goes to the fund through ``CrossRound.resume``, in the middle of a run (reason 2);
    the planner and ``CrossRound`` agree on the rows, the cover and the accounts after it."""
    spy = _Spy(monkeypatch)
    candidates = RiskEngine._candidates
    book = _crash(1_000.0, "pnl_leverage", 20.0)
    book["cross"].append({"sizes": [0.0, 0.0, 0.0], "cash": 0.1})  # flat: 1.0 deposited
    flat = _run({**book, "path": []}, columns=True, plan=True)[0].n_accounts - 1  # the last

    def with_flat(self: RiskEngine, m: int, **kwargs: Any) -> list[tuple[int, bool]]:
        out = candidates(self, m, **kwargs)
        if out and self.ex._cash[flat] >= 0.0:
            self.ex._cash[flat] = -40.0  # (as if an earlier loss had landed there)
            out.insert(len(out) // 2, (flat, False))
        return out

    monkeypatch.setattr(RiskEngine, "_candidates", with_flat)
    planned = _run(book, columns=True, plan=True, check=False)  # (cash set by hand above)
    journal = planned[0].journal.to_arrow()
    named = set(journal.column("account").to_pylist()) | set(
        journal.column("counterparty").to_pylist()
    )
    assert flat in named or flat in planned[0].risk.declared_bad_debt  # the deficit was handled
    rounds._assert_twins(planned, _run(book, columns=True, plan=False))
    assert 2 in spy.stops


def test_a_planner_in_the_wrong_order_fails_the_twin(monkeypatch: pytest.MonkeyPatch) -> None:
    """The comparison catches a planner that liquidates a run's accounts in reverse order (the
    books' impact and the fund's records then come in another order)."""
    run = CrossPlanner.run

    def reversed_run(self: CrossPlanner, accounts: list[int], *args: Any) -> bool:
        return run(self, accounts[::-1], *args)

    book = _crash(1_000.0, "pnl_leverage", 20.0)
    reference = _run(book, columns=True, plan=False)
    rounds._assert_twins(_run(book, columns=True, plan=True), reference)
    monkeypatch.setattr(CrossPlanner, "run", reversed_run)
    with pytest.raises(AssertionError):
        rounds._assert_twins(_run(book, columns=True, plan=True), reference)


def test_a_wrong_next_round_shortcut_fails_the_invariant_check(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """After a planned round only its accounts are scanned for the next one; with
    ``check_invariants`` the step compares that against the full scan, and a shortcut that
    forgets the accounts still under maintenance is caught."""
    book = _crash(1e7, "binance", 20.0)
    _run(book, columns=True, plan=True)  # the true shortcut passes the check
    among = CrossRound.among

    def forgetful(self: CrossRound, candidates: list[tuple[int, bool]]) -> list[int] | None:
        accounts = among(self, candidates)
        return None if accounts is None else []

    monkeypatch.setattr(CrossRound, "among", forgetful)
    with pytest.raises(InvariantError, match="planned round"):
        _run(book, columns=True, plan=True)
