"""Stress metrics against hand-computed numbers on small synthetic frames and journals."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from deleverage.analytics.stress import (
    StressMetrics,
    account_losses,
    adl_overshoot,
    cascade_amplification,
    fund_series,
    liquidation_peaks,
    loss_distribution,
    max_drawdown,
    max_drawdown_amount,
    run_account_losses,
    stress_metrics,
    verdict,
)
from deleverage.engine.events import (
    AccountOpened,
    AdlRound,
    Deposit,
    EventKind,
    Journal,
    Withdrawal,
)
from deleverage.engine.state import AccountKind
from deleverage.errors import DataError, ValidationError
from deleverage.sim.runner import STEP_COLUMNS, RunResult, run
from deleverage.sim.scenario import Scenario
from scenarios import SMALL_CRASH

# ------------------------------------------------------------------------------ drawdowns


def test_max_drawdown_hand_computed_path() -> None:
    # Peak 120 then 90: 25 %; later peak 130 then 117: 10 %.
    path = [100.0, 120.0, 90.0, 130.0, 117.0]

    assert max_drawdown(path) == pytest.approx(0.25)
    assert max_drawdown_amount(path) == pytest.approx(30.0)


def test_max_drawdown_of_a_rising_or_empty_path_is_zero() -> None:
    assert max_drawdown([1.0, 2.0, 3.0]) == 0.0
    assert max_drawdown([]) == 0.0
    assert max_drawdown_amount([]) == 0.0


@pytest.mark.parametrize("bad", [[1.0, 0.0], [1.0, -2.0], [1.0, math.nan], [[1.0]]])
def test_max_drawdown_rejects_bad_paths(bad: list[object]) -> None:
    with pytest.raises(ValidationError, match="values"):
        max_drawdown(bad)  # type: ignore[arg-type]


@given(st.lists(st.floats(0.01, 1e6), min_size=1, max_size=40))
def test_max_drawdown_matches_the_all_pairs_oracle(path: list[float]) -> None:
    # Oracle: the largest 1 - v_j / v_i over i <= j, by brute force.
    oracle = max(1.0 - path[j] / path[i] for i in range(len(path)) for j in range(i, len(path)))
    oracle_amount = max(path[i] - path[j] for i in range(len(path)) for j in range(i, len(path)))

    assert max_drawdown(path) == pytest.approx(oracle, abs=1e-12)
    assert max_drawdown_amount(path) == pytest.approx(oracle_amount, abs=1e-9)
    assert 0.0 <= max_drawdown(path) < 1.0


def test_cascade_amplification_is_the_ratio_of_drawdowns() -> None:
    assert cascade_amplification(0.30, 0.20) == pytest.approx(1.5)
    assert cascade_amplification(0.0, 0.0) == 1.0
    assert cascade_amplification(0.1, 0.0) == math.inf
    with pytest.raises(ValidationError, match="drawdown_without"):
        cascade_amplification(0.1, -0.1)


# ------------------------------------------------------------------------------ per-step frame


def _steps(rows: list[dict[str, float]], market: str = "BTCUSDT") -> pd.DataFrame:
    frame = pd.DataFrame([dict.fromkeys(STEP_COLUMNS, 0.0) | {"market": market} | r for r in rows])
    return frame[list(STEP_COLUMNS)]


def test_liquidation_peaks_per_step_and_per_calendar_minute_by_hand() -> None:
    # Arrange: two markets, 20-second steps. Step sums: 0: 3, 1: 10, 2: 4, 3: 6, 4: 7.
    # Minutes: [0, 60) holds steps 0-2 (17), [60, 120) steps 3-4 (13).
    notional = {0: (1.0, 2.0), 1: (10.0, 0.0), 2: (4.0, 0.0), 3: (5.0, 1.0), 4: (0.0, 7.0)}
    rows = []
    for k, (a, b) in notional.items():
        rows.append({"step": k, "t_s": 20.0 * k, "market": "A", "liquidated_notional": a})
        rows.append({"step": k, "t_s": 20.0 * k, "market": "B", "liquidated_notional": b})
    steps = pd.DataFrame(rows)

    # Act
    total, peak_step, peak_minute = liquidation_peaks(steps)

    # Assert
    assert (total, peak_step, peak_minute) == (30.0, 10.0, 17.0)
    # 40-second windows: [0, 40) steps 0-1 (13), [40, 80) steps 2-3 (10), [80, 120) step 4 (7).
    assert liquidation_peaks(steps, window_s=40.0)[2] == 13.0
    assert liquidation_peaks(steps.iloc[:0]) == (0.0, 0.0, 0.0)


def test_liquidation_peaks_rejects_a_bad_window() -> None:
    steps = _steps([{"step": 0}])
    with pytest.raises(ValidationError, match="window_s"):
        liquidation_peaks(steps, window_s=0.0)
    with pytest.raises(ValidationError, match="steps"):
        liquidation_peaks(steps.drop(columns=["t_s"]))


def test_fund_series_takes_the_shared_fund_once_per_step() -> None:
    steps = pd.DataFrame(
        {"step": [0, 0, 1, 1], "market": ["A", "B", "A", "B"], "insurance_fund": [5, 5, 3, 3]}
    )

    assert fund_series(steps).tolist() == [5, 3]


# ------------------------------------------------------------------------------ ADL


def _adl_text(closed: float, required: float, profit: float, shortfall: float) -> str:
    return json.dumps(
        {
            "policy": "pnl_leverage",
            "counterparties": 1,
            "notional_closed": closed,
            "notional_required": required,
            "profit_taken": profit,
            "shortfall": shortfall,
        }
    )


def test_adl_overshoot_adds_up_the_rounds_by_hand() -> None:
    # Round 1 closed 1,000 where 800 covered the shortfall of 100 (profit 120);
    # round 2 closed 500, all needed, profit 60 for a shortfall of 60.
    journal = pd.DataFrame(
        {
            "kind": [int(EventKind.FILL), int(EventKind.ADL_ROUND), int(EventKind.ADL_ROUND)],
            "text": ["", _adl_text(1000.0, 800.0, 120.0, 100.0), _adl_text(500, 500, 60, 60)],
        }
    )

    out = adl_overshoot(journal)

    assert out.rounds == 2
    assert out.notional_closed == 1500.0
    assert out.notional_overshoot == 200.0
    assert out.profit_taken == 180.0
    assert out.excess_profit == 20.0


def test_adl_overshoot_of_a_journal_without_adl_is_zero() -> None:
    out = adl_overshoot(pd.DataFrame({"kind": [int(EventKind.FILL)], "text": [""]}))

    assert out.rounds == 0
    assert out.notional_overshoot == 0.0


def test_adl_overshoot_rejects_a_round_without_its_metrics() -> None:
    journal = pd.DataFrame({"kind": [int(EventKind.ADL_ROUND)], "text": ['{"policy": "x"}']})

    with pytest.raises(ValidationError, match="ADL round 0"):
        adl_overshoot(journal)


# ------------------------------------------------------------------------------ losses


def _journal() -> Journal:
    journal = Journal()
    events = [
        AccountOpened(account=0, account_kind=int(AccountKind.INSURANCE)),
        AccountOpened(account=1, account_kind=int(AccountKind.TRADER)),
        AccountOpened(account=2, account_kind=int(AccountKind.TRADER)),
        AccountOpened(account=3, account_kind=int(AccountKind.TRADER)),
        Deposit(account=0, amount=1_000.0),
        Deposit(account=1, amount=100.0),
        Deposit(account=2, amount=50.0),
        Deposit(account=2, amount=25.0),  # a top-up
        Withdrawal(account=2, amount=5.0),
        Deposit(account=3, amount=10.0),
    ]
    for event in events:
        journal.append(event)
    return journal


def test_account_losses_are_net_deposits_minus_final_equity_for_traders_only() -> None:
    # Arrange: equity at the end: fund 1,200, trader 1 lost 40, trader 2 gained 30, trader 3
    # ended at -2 (bad debt): loss 12.
    equity = [1_200.0, 60.0, 100.0, -2.0]

    # Act
    losses = account_losses(_journal().to_frame(), equity)

    # Assert
    assert losses["account"].tolist() == [1, 2, 3]
    assert losses["net_deposits"].tolist() == [100.0, 70.0, 10.0]
    assert losses["loss"].tolist() == [40.0, -30.0, 12.0]


def test_account_losses_needs_an_equity_for_every_trader() -> None:
    with pytest.raises(ValidationError, match="final_equity"):
        account_losses(_journal().to_frame(), [1.0, 2.0])


def test_loss_distribution_hand_computed() -> None:
    # 200 accounts: 100 lost 1, 98 lost 0, one gained 50, one lost 299.
    losses = np.concatenate([np.ones(100), np.zeros(98), [-50.0, 299.0]])

    d = loss_distribution(losses)

    assert d.accounts == 200
    assert d.losers == 101
    assert d.total_loss == 399.0
    assert d.mean == pytest.approx((100.0 - 50.0 + 299.0) / 200.0)
    assert d.median == 1.0  # sorted: -50, 98 zeros, 100 ones, 299: the 100th and 101st are 0, 1
    assert d.max == 299.0
    # ceil(1% of 200) = 2 largest: 299 + 1 over 399.
    assert d.top_1pct_share == pytest.approx(300.0 / 399.0)


def test_loss_distribution_of_nobody_is_zero() -> None:
    assert loss_distribution([]).accounts == 0
    assert loss_distribution([-1.0, -2.0]).top_1pct_share == 0.0


@given(st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=300))
def test_loss_distribution_invariants(losses: list[float]) -> None:
    d = loss_distribution(losses)

    assert d.total_loss == pytest.approx(math.fsum(max(x, 0.0) for x in losses), abs=1e-6)
    assert d.losers == sum(x > 0 for x in losses)
    assert 0.0 <= d.top_1pct_share <= 1.0 + 1e-12
    assert min(losses) <= d.median <= d.p90 <= d.p99 <= d.max == max(losses)


# ------------------------------------------------------------------------------ all of them


def _scenario() -> Scenario:
    return Scenario.from_mapping(
        {
            "name": "synthetic",
            "duration_s": 120,
            "dt_s": 60,
            "markets": [{"price": {"process": "gbm", "s0": 100.0}}],
            "insurance": {"fund": 1_000.0},
        }
    )


def _result(marks: list[float], exogenous: list[float], **columns: list[float]) -> RunResult:
    n = len(marks)
    rows = [
        {"step": k, "t_s": 60.0 * k, "ts_ns": k * 60_000_000_000, "mark": marks[k],
         "exogenous": exogenous[k]} | {name: values[k] for name, values in columns.items()}
        for k in range(n)
    ]  # fmt: skip
    journal = _journal()
    journal.append(
        AdlRound(account=3, market=0, size=1.0, price=90.0, amount=7.0,
                 text=_adl_text(300.0, 250.0, 7.0, 5.0))
    )  # fmt: skip
    return RunResult(
        scenario=_scenario(),
        steps=_steps(rows),
        journal=journal,
        summary={"insurance_fund_start": 1_000.0, "positions": 3.0, "under_collateralized_s": 4.5},
    )


def test_stress_metrics_of_a_synthetic_run_by_hand() -> None:
    # Arrange: mark 100 -> 80 -> 90 with feedback (drawdown 20 %), 100 -> 90 -> 95 without (10 %).
    run = _result(
        [100.0, 80.0, 90.0], [100.0, 90.0, 95.0],
        liquidated_notional=[0.0, 500.0, 100.0], liquidations=[0, 5, 1],
        insurance_fund=[1_100.0, 700.0, 800.0], bad_debt=[0.0, 0.0, 3.0],
        adl_rounds=[0, 1, 0], adl_notional=[0.0, 300.0, 0.0], cascade_rounds=[0, 4, 1],
        under_collateralized=[0, 2, 0],
    )  # fmt: skip
    twin = _result([100.0, 90.0, 95.0], [100.0, 90.0, 95.0], liquidated_notional=[0, 200, 0])
    losses = account_losses(run.journal.to_frame(), [1_200.0, 60.0, 100.0, -2.0])

    # Act
    m = stress_metrics(run, twin, losses=losses)

    # Assert
    assert m.liquidations == 6
    assert m.liquidated_notional == 600.0
    assert m.peak_liquidated_notional_step == 500.0
    assert m.peak_liquidated_notional_minute == 500.0  # one step a minute
    assert m.bad_debt == 3.0
    assert (m.insurance_fund_start, m.insurance_fund_min, m.insurance_fund_end) == (
        1_000.0, 700.0, 800.0,
    )  # fmt: skip
    assert m.insurance_fund_max_drawdown == 400.0  # 1,100 -> 700
    assert m.insurance_fund_max_drawdown_fraction == pytest.approx(400.0 / 1_100.0)
    assert (m.adl_rounds, m.adl_notional, m.adl_notional_overshoot, m.adl_excess_profit) == (
        1, 300.0, 50.0, 2.0,
    )  # fmt: skip
    assert m.max_drawdown_mark == pytest.approx(0.2)
    assert m.max_drawdown_no_feedback == pytest.approx(0.1)
    assert m.cascade_amplification == pytest.approx(2.0)
    assert m.liquidation_amplification == pytest.approx(3.0)
    assert (m.cascade_rounds, m.max_cascade_rounds_step) == (5, 4)
    assert (m.under_collateralized_s, m.under_collateralized_peak) == (4.5, 2)
    assert (m.losers, m.total_account_loss, m.max_account_loss) == (2, 52.0, 40.0)
    survives, text = verdict(m)
    assert not survives
    assert text.startswith("No:")
    assert "ADL was used" in text


def test_stress_metrics_without_a_baseline_uses_the_exogenous_path() -> None:
    run = _result([100.0, 80.0, 90.0], [100.0, 90.0, 95.0], insurance_fund=[1_000.0] * 3)
    losses = account_losses(run.journal.to_frame(), [0.0, 100.0, 70.0, 10.0])

    m = stress_metrics(run, losses=losses)

    assert m.cascade_amplification == pytest.approx(0.2 / 0.1)
    assert math.isnan(m.liquidation_amplification)
    assert m.to_dict()["liquidation_amplification"] is None
    assert m.total_account_loss == 0.0


def _metrics(**changes: float) -> StressMetrics:
    base = stress_metrics(
        _result([100.0, 90.0], [100.0, 90.0], insurance_fund=[1_000.0, 1_000.0]),
        losses=pd.DataFrame({"loss": [1.0]}),
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("changes", "survives", "head"),
    [
        ({}, True, "Yes: the venue survives."),
        ({"adl_rounds": 3, "adl_notional": 500.0}, False, "Solvent, but only through ADL."),
        ({"socialized_loss": 10.0}, False, "No:"),
        ({"bad_debt": 1.0, "adl_rounds": 1}, False, "No:"),
    ],
)
def test_verdict_reads_bad_debt_and_adl(
    changes: dict[str, float], survives: bool, head: str
) -> None:
    ok, text = verdict(_metrics(**changes))

    assert ok is survives
    assert text.startswith(head)
    assert ("ADL was not needed." in text) is (changes.get("adl_rounds", 0) == 0)


def test_run_losses_come_from_the_run_and_equal_a_replay_of_its_journal() -> None:
    # Arrange: a real run (no exchange kept) of the shared small crash.
    result = run(Scenario.from_toml(SMALL_CRASH))
    assert result.exchange is None
    assert result.final_equity is not None

    # Act
    from_run = run_account_losses(result)
    result.derived.clear()
    result.final_equity = None
    replayed = run_account_losses(result, replay=True)

    # Assert: the run's own final equity gives what a full replay gives, to the cent.
    pd.testing.assert_frame_equal(from_run, replayed, rtol=1e-12, atol=1e-6)
    assert (from_run["loss"] > 0).any()


def test_run_losses_without_final_equity_ask_for_a_replay_instead_of_doing_one() -> None:
    result = _result([100.0, 90.0], [100.0, 90.0])

    with pytest.raises(DataError, match="replay=True"):
        run_account_losses(result)
