"""The engine with an ADL-laboratory policy: same objects, same round metrics as the study.

Setup (as tests/unit/risk/test_risk_adl.py, by hand): an isolated long 0.2 BTC at 100,000
with 1,000 of margin; three cross shorts 0.1, 0.3, 0.2 at 100,000 with 10,000 cash each; a
long 0.05 bought at 90,000 on the bankrupt's side. At a mark of 94,000 the long's equity is
1,000 - 0.2 x 6,000 = -200: deficit 200, bankruptcy price 95,000; the fund is empty.
"""

from __future__ import annotations

import json

import pandas as pd
import pytest

from deleverage import Exchange, MarginMode, MarketSpec
from deleverage.analytics.adl_study import run_study
from deleverage.engine.events import AdlRound, Fill, FillReason, Transfer, TransferReason

S = 1_000_000_000
SHORTS = (0.1, 0.3, 0.2)


def _book(policy: str, **adl: object) -> tuple[Exchange, int, int, list[int], int]:
    ex = Exchange(check_invariants=True)
    spec = MarketSpec.simple(
        "BTCUSDT", max_leverage=20.0, maintenance_rate=0.025, maker_fee_rate=0.0,
        taker_fee_rate=0.0, liquidation_fee_rate=0.005, lot_size=0.001,
        adl={"deleveraging": policy, **adl},
    )  # fmt: skip
    m = ex.list_market(spec)
    ex.set_mark(m, 100_000.0)
    bankrupt = ex.open_account(margin_mode=MarginMode.ISOLATED)
    ex.deposit(bankrupt, 1_000.0)
    ex.trade(m, buyer=bankrupt, seller=ex.liquidity_account, size=0.2, price=100_000.0)
    shorts = []
    for size in SHORTS:
        s = ex.open_account(margin_mode=MarginMode.CROSS)
        ex.deposit(s, 10_000.0)
        ex.trade(m, buyer=ex.liquidity_account, seller=s, size=size, price=100_000.0)
        shorts.append(s)
    same = ex.open_account(margin_mode=MarginMode.CROSS)
    ex.deposit(same, 10_000.0)
    ex.trade(m, buyer=same, seller=ex.liquidity_account, size=0.05, price=90_000.0)
    return ex, m, bankrupt, shorts, same


def _study_round(bankrupt: int, shorts: list[int], same: int) -> pd.DataFrame:
    # The same round for the study: counterparties' equity = cash + 6,000 x size (cross).
    mark = 94_000.0
    rows = [{"round": 0, "ts_ms": 1_000, "role": "bankrupt", "account": bankrupt, "size": 0.2,
             "mark_price": mark, "bankruptcy_price": 95_000.0, "deficit": 200.0}]  # fmt: skip
    for s, q in zip(shorts, SHORTS, strict=True):
        rows.append({"round": 0, "ts_ms": 1_000, "role": "counterparty", "account": s,
                     "size": -q, "mark_price": mark, "entry_price": 100_000.0,
                     "equity": 10_000.0 + q * 6_000.0, "lot_size": 0.001, "cross": True,
                     "margin_ratio": 0.025 * q * mark / (10_000.0 + q * 6_000.0)})  # fmt: skip
    rows.append({"round": 0, "ts_ms": 1_000, "role": "counterparty", "account": same,
                 "size": 0.05, "mark_price": mark, "entry_price": 90_000.0, "equity": 10_200.0,
                 "lot_size": 0.001, "cross": True})  # fmt: skip
    return pd.DataFrame(rows)


KEYS = ("deficit", "fund_paid", "covered", "uncovered", "haircut", "overshoot",
        "notional_closed", "largest_haircut_pct", "gini", "jain", "participation")  # fmt: skip


@pytest.mark.parametrize("policy", ["bitmex", "okx", "size_pro_rata", "whole_lots",
                                    "profit_pro_rata", "min_max", "notional_pro_rata"])  # fmt: skip
def test_engine_round_metrics_equal_the_study(policy: str) -> None:
    ex, m, bankrupt, shorts, same = _book(policy)
    start = len(ex.journal)
    ex.set_mark(m, 94_000.0, ts_ns=1 * S)
    (round_,) = [e for e in ex.journal.events(AdlRound) if e.seq >= start]
    engine = json.loads(round_.text)
    study = run_study(_study_round(bankrupt, shorts, same), [policy]).rounds.iloc[0]
    for key in KEYS:
        assert engine[key] == pytest.approx(study[key], rel=1e-9, abs=1e-9), key
    assert engine["deficit"] == pytest.approx(200.0)
    assert engine["covered"] == pytest.approx(200.0)
    assert ex.position(same, m).size == pytest.approx(0.05)  # the bankrupt's side: untouched
    assert ex.last_step.bad_debt == pytest.approx(0.0, abs=1e-6)


def test_profit_pro_rata_in_the_engine_takes_exactly_the_deficit_from_profits() -> None:
    ex, m, bankrupt, shorts, _ = _book("profit_pro_rata")
    start = len(ex.journal)
    ex.set_mark(m, 94_000.0, ts_ns=1 * S)
    charges = [t for t in ex.journal.events(Transfer) if t.seq >= start
               and t.reason == TransferReason.SOCIALIZED_LOSS]  # fmt: skip
    # Profits 600, 1,800, 1,200 (of 3,600): 200 shared as 33.3, 100, 66.7.
    got = {t.source: t.amount for t in charges}
    assert [got[s] for s in shorts] == pytest.approx([200 / 6, 100.0, 200 / 3])
    assert not [f for f in ex.journal.events(Fill) if f.seq >= start and f.reason == FillReason.ADL]
    assert ex.position(bankrupt, m).size == 0.0  # closed on the book at the mark after


def test_hybrid_fund_first_closes_part_of_the_bankrupt_position_by_adl() -> None:
    ex, m, bankrupt, _, _ = _book("bitmex", fund_drawdown_limit=0.5)
    ex.deposit(ex.insurance_account, 150.0)  # short of 200; half of it (75) may be used
    start = len(ex.journal)
    ex.set_mark(m, 94_000.0, ts_ns=1 * S)
    adl = [f for f in ex.journal.events(Fill) if f.seq >= start and f.reason == FillReason.ADL]
    # The fund pays 75; 125 more at 1,000 per unit needs 0.125 of the 0.2.
    assert sum(f.size for f in adl) == pytest.approx(0.125)
    (round_,) = [e for e in ex.journal.events(AdlRound) if e.seq >= start]
    metrics = json.loads(round_.text)
    assert metrics["fund_paid"] == pytest.approx(75.0)
    assert metrics["covered"] == pytest.approx(200.0)
    assert ex.position(bankrupt, m).size == 0.0
