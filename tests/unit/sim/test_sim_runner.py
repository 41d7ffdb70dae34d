"""The scenario runner's contract: reproducibility, the per-step frame, impact, money, funding,
liquidator capital, the journal."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from deleverage.engine.events import EventKind, Journal
from deleverage.engine.exchange import Exchange
from deleverage.sim.runner import STEP_COLUMNS, RunResult, Simulation, run
from deleverage.sim.scenario import Scenario

ScenarioFactory = Callable[..., Scenario]

#: A 5% drop in one step at t = 30 s, then flat: one burst of forced flow, then none.
JUMP = {"markets.0.price.duration_s": 0.0, "markets.0.price.drop_fraction": 0.05}


def _events(result: RunResult, kind: EventKind) -> pd.DataFrame:
    frame = result.journal.to_frame()
    return frame[frame["kind"] == int(kind)]


# ---------------------------------------------------------------------------- reproducibility
def test_same_seed_gives_the_same_result_hash(make_scenario: ScenarioFactory) -> None:
    # Act
    first = run(make_scenario())
    second = run(make_scenario())

    # Assert
    assert first.result_hash == second.result_hash
    pd.testing.assert_frame_equal(first.steps, second.steps)


@pytest.mark.slow
def test_same_seed_gives_the_same_result_hash_whatever_ran_before(
    make_scenario: ScenarioFactory,
) -> None:
    # Arrange: 2,000 positions on a thin book; the same scenario run six times in one process,
    # each time after a run without feedback (which leaves other data in reused memory).
    scenario = make_scenario(
        {
            "markets.0.population.n_positions": 2000,
            "markets.0.liquidity.depth_per_pct": 5.0,
            "markets.0.liquidity.half_life_s": 120.0,
            "insurance.fund": 20_000.0,
        }
    )

    # Act
    hashes = set()
    for _ in range(6):
        hashes.add(run(scenario).result_hash)
        hashes.add(run(scenario, feedback=False).result_hash)

    # Assert: one hash per configuration.
    assert len(hashes) == 2


def test_different_seed_gives_a_different_result_hash(make_scenario: ScenarioFactory) -> None:
    first = run(make_scenario())
    other = run(make_scenario({"seed": 2}))
    assert first.result_hash != other.result_hash


# ---------------------------------------------------------------------------- the frame
def test_steps_frame_has_the_columns_and_one_row_per_step_and_market(
    scenario_data: dict[str, Any],
) -> None:
    # Arrange: two markets, 50 steps.
    eth = json.loads(json.dumps(scenario_data["markets"][0]))
    eth["symbol"] = "ETHUSDT"
    eth["price"]["s0"] = 3_000.0
    scenario_data["markets"].append(eth)
    scenario_data["duration_s"] = 50.0

    # Act
    steps = run(Scenario.from_mapping(scenario_data)).steps

    # Assert
    assert tuple(steps.columns) == STEP_COLUMNS
    assert len(steps) == 51 * 2
    pairs = steps[["step", "market"]].astype(str).drop_duplicates()
    assert len(pairs) == len(steps)
    assert sorted(steps["market"].astype(str).unique()) == ["BTCUSDT", "ETHUSDT"]
    for _, group in steps.groupby("market", observed=True):
        assert group["step"].tolist() == list(range(51))
        assert group["t_s"].tolist() == pytest.approx([float(k) for k in range(51)])


def test_cumulative_bad_debt_and_socialized_loss_never_decrease(
    make_scenario: ScenarioFactory,
) -> None:
    # Arrange: a jump through bankruptcy with no fund, so bad debt appears.
    scenario = make_scenario({**JUMP, "markets.0.price.drop_fraction": 0.08, "insurance.fund": 0.0})

    # Act
    steps = run(scenario).steps

    # Assert
    assert steps["bad_debt"].iloc[-1] > 0  # the premise: there is some
    for column in ("bad_debt", "socialized_loss"):
        assert (np.diff(steps[column].to_numpy()) >= 0).all()


def test_summary_totals_match_the_journal(make_scenario: ScenarioFactory) -> None:
    # Arrange
    result = run(make_scenario({**JUMP, "markets.0.price.drop_fraction": 0.08}))

    # Act
    liquidations = _events(result, EventKind.LIQUIDATION)
    bad_debt = _events(result, EventKind.BAD_DEBT)

    # Assert: the frame's tallies are the engine's events, counted independently.
    assert result.summary["liquidations"] == len(liquidations)
    assert result.summary["bad_debt"] == pytest.approx(float(bad_debt["amount"].sum()))
    assert result.summary["steps"] == 200
    assert result.summary["positions"] == 1000


def test_mark_equals_exogenous_without_feedback(make_scenario: ScenarioFactory) -> None:
    # Act
    result = run(make_scenario(JUMP), feedback=False)

    # Assert
    steps = result.steps
    assert result.summary["liquidations"] > 0  # forced flow that would move a fed-back mark
    np.testing.assert_array_equal(steps["mark"].to_numpy(), steps["exogenous"].to_numpy())
    assert (steps["impact"] == 0.0).all()
    assert (steps["cascade_rounds"] == 0).all()


def test_impact_decays_by_the_half_life_once_forced_flow_stops(
    make_scenario: ScenarioFactory,
) -> None:
    # Arrange: one burst at the jump, then a flat exogenous price; half-life 60 s, dt 1 s.
    half_life = 60.0
    steps = run(make_scenario({**JUMP, "markets.0.liquidity.half_life_s": half_life})).steps
    busy = steps.index[(steps["liquidations"] > 0) | (steps["adl_notional"] > 0)]
    last = int(steps.loc[busy[-1], "step"])
    after = steps[steps["step"] >= last]
    impact0 = float(after["impact"].iloc[0])
    assert impact0 < -1e-3  # the premise: the burst displaced the mark
    assert len(after) > 100

    # Act
    t = after["t_s"].to_numpy() - after["t_s"].iloc[0]

    # Assert: I(t) = I0 x 2^(-t / h), the closed form of the book's refill.
    expected = impact0 * 2.0 ** (-t / half_life)
    np.testing.assert_allclose(after["impact"].to_numpy(), expected, rtol=1e-9, atol=1e-15)


def test_arbitrageurs_add_their_exponential_decay(make_scenario: ScenarioFactory) -> None:
    # Arrange: speed 0.01 / s on top of the 60 s half-life.
    speed, half_life = 0.01, 60.0
    steps = run(make_scenario({**JUMP, "agents.arbitrageurs.speed_per_s": speed})).steps
    busy = steps.index[steps["liquidations"] > 0]
    after = steps[steps["step"] >= int(steps.loc[busy[-1], "step"])]
    t = after["t_s"].to_numpy() - after["t_s"].iloc[0]

    # Assert: I(t) = I0 x 2^(-t/h) x exp(-speed t).
    expected = after["impact"].iloc[0] * 2.0 ** (-t / half_life) * np.exp(-speed * t)
    np.testing.assert_allclose(after["impact"].to_numpy(), expected, rtol=1e-9, atol=1e-15)


# ---------------------------------------------------------------------------- money
def test_money_adds_up_after_a_crash(make_scenario: ScenarioFactory) -> None:
    # Arrange: a crash with a small fund, so the fund, ADL and bad debt all take part.
    scenario = make_scenario(
        {**JUMP, "markets.0.price.drop_fraction": 0.08, "insurance.fund": 500.0}
    )

    # Act
    result = run(scenario, keep_exchange=True)

    # Assert
    assert result.exchange is not None
    assert result.summary["liquidations"] > 0
    conservation = result.exchange.conservation()
    assert conservation.holds, conservation
    result.exchange.assert_conserved()


def test_jump_with_a_small_fund_runs_to_the_end_with_money_conserved(
    make_scenario: ScenarioFactory,
) -> None:
    # Arrange: a 5% jump with a 500 fund: the fund drains and ADL runs within the cascade.
    scenario = make_scenario({**JUMP, "insurance.fund": 500.0})

    # Act
    result = run(scenario, keep_exchange=True)

    # Assert
    assert result.exchange is not None
    assert len(result.steps) == 201
    assert result.summary["adl_notional"] > 0
    result.exchange.assert_conserved()


def test_exchange_is_kept_only_when_asked(make_scenario: ScenarioFactory) -> None:
    assert run(make_scenario({"duration_s": 5.0})).exchange is None


# ---------------------------------------------------------------------------- funding
def _funding_scenario(make_scenario: ScenarioFactory, duration_s: float) -> Scenario:
    # A flat price (no liquidations) and a constant 0.1% rate every 60 s.
    return make_scenario(
        {
            "duration_s": duration_s,
            "markets.0.price.drop_fraction": 0.0,
            "markets.0.funding": {"kind": "constant", "rate": 0.001, "interval_s": 60.0},
        }
    )


def test_funding_settles_at_each_interval(make_scenario: ScenarioFactory) -> None:
    steps = run(_funding_scenario(make_scenario, 150.0)).steps
    settled = steps.loc[steps["funding_rate"].notna(), "t_s"].tolist()
    assert settled == [60.0, 120.0]
    assert steps["funding_rate"].dropna().tolist() == [0.001, 0.001]


@pytest.mark.parametrize("mode", ["cross", "isolated"])
@pytest.mark.parametrize("side", [1, -1])
def test_funding_moves_each_account_by_minus_size_mark_rate(
    make_scenario: ScenarioFactory, mode: str, side: int
) -> None:
    # Arrange: the same run stopped just before and just after the first settlement (t = 60 s).
    sim_before = Simulation(_funding_scenario(make_scenario, 59.0))
    sim_after = Simulation(_funding_scenario(make_scenario, 60.0))
    population = sim_after.populations["BTCUSDT"].frame
    picked = (population["margin_mode"] == mode) & (population["side"] == side)
    row = int(np.flatnonzero(picked.to_numpy())[0])
    account = int(sim_after.accounts[0][row])
    assert account == int(sim_before.accounts[0][row])
    size = float(population["size"].iloc[row])
    before = sim_before.run(keep_exchange=True)
    after = sim_after.run(keep_exchange=True)
    assert before.exchange is not None
    assert after.exchange is not None
    mark = float(after.steps["mark"].iloc[-1])

    # Act
    def balance(ex: Exchange) -> float:
        if mode == "cross":
            return ex.cash(account)
        return float(ex.position(account, 0).isolated_margin)

    moved = balance(after.exchange) - balance(before.exchange)

    # Assert: -size x mark x rate, by hand; a long pays, a short receives, at a positive rate.
    assert float(after.exchange.columns(0).size[account]) == size  # the right account
    assert moved == pytest.approx(-size * mark * 0.001, rel=1e-9)
    assert np.sign(moved) == -side


# ---------------------------------------------------------------------------- liquidators
@pytest.mark.parametrize("feedback", [False, True])
def test_liquidator_capital_caps_the_notional_liquidated_per_step(
    make_scenario: ScenarioFactory, feedback: bool
) -> None:
    # Arrange: a 6% jump liquidates ~170,000 quote at once; liquidators hold 20,000 / s.
    capital = 20_000.0
    jump = {**JUMP, "markets.0.price.drop_fraction": 0.06}
    free = run(make_scenario(jump), feedback=feedback).steps
    assert free["liquidated_notional"].max() > 4 * capital  # the premise

    # Act
    capped = run(make_scenario({**jump, "agents.liquidators.capital": capital}), feedback=feedback)

    # Assert: at most capital x dt_s in any step (cascade rounds included), spread over more steps.
    per_step = capped.steps["liquidated_notional"].to_numpy()
    assert per_step.max() <= capital * (1 + 1e-9), per_step.max()
    assert (per_step > 0).sum() > (free["liquidated_notional"] > 0).sum()


# ---------------------------------------------------------------------------- journal
def test_journal_parquet_round_trip_replays_to_the_same_state(
    make_scenario: ScenarioFactory, tmp_path: Path
) -> None:
    # Arrange: a crash with ADL, so fills of every reason are in the journal.
    scenario = make_scenario({**JUMP, "markets.0.price.drop_fraction": 0.08, "insurance.fund": 2e3})
    result = run(scenario, keep_exchange=True)
    assert result.exchange is not None
    assert result.summary["adl_notional"] > 0
    path = result.journal.write_parquet(tmp_path / "journal.parquet")

    # Act
    replayed = Exchange.replay(Journal.read_parquet(path))

    # Assert
    assert replayed.state_hash() == result.exchange.state_hash()


def test_save_writes_the_four_files_with_the_hash(
    make_scenario: ScenarioFactory, tmp_path: Path
) -> None:
    # Arrange
    result = run(make_scenario({"duration_s": 40.0}))

    # Act
    paths = result.save(tmp_path / "out")

    # Assert
    assert sorted(p.name for p in paths.values()) == [
        "journal.parquet", "scenario.json", "steps.parquet", "summary.json",
    ]  # fmt: skip
    summary = json.loads(paths["summary"].read_text())
    assert summary["result_hash"] == result.result_hash
    pd.testing.assert_frame_equal(pd.read_parquet(paths["steps"]), result.steps)
    saved = Scenario.from_mapping(json.loads(paths["scenario"].read_text()))
    assert run(saved).result_hash == result.result_hash  # the saved scenario reproduces the run


def test_progress_is_reported_up_to_the_last_step(make_scenario: ScenarioFactory) -> None:
    # Arrange
    calls: list[tuple[int, int]] = []

    # Act
    run(make_scenario(), progress=lambda done, total: calls.append((done, total)))

    # Assert
    assert calls[-1] == (200, 200)
    assert all(total == 200 for _, total in calls)
    assert [done for done, _ in calls] == sorted(done for done, _ in calls)
    assert 2 <= len(calls) <= 202


def test_under_collateralized_time_is_zero_without_latency(
    make_scenario: ScenarioFactory,
) -> None:
    result = run(make_scenario(JUMP))
    assert result.summary["under_collateralized_s"] == 0.0
    assert (result.steps["under_collateralized"] == 0).all()
    assert math.isfinite(result.wall_s)


# ---------------------------------------------------------------------------- properties
@given(
    seed=st.integers(0, 2**16),
    drop=st.floats(0.0, 0.2),
    ramp_s=st.sampled_from([0.0, 5.0, 40.0]),
    depth=st.floats(0.5, 50.0),
    fund=st.sampled_from([0.0, 300.0, 1e6]),
    kind=st.sampled_from(["full", "partial", "tier_down"]),
    feedback=st.booleans(),
)
def test_any_small_crash_conserves_money_and_keeps_the_frame_consistent(
    seed: int, drop: float, ramp_s: float, depth: float, fund: float, kind: str, feedback: bool
) -> None:
    # Arrange: 300 positions, 60 steps, a crash from t = 10 s.
    data = {
        "seed": seed,
        "duration_s": 60.0,
        "markets": [
            {
                "symbol": "BTCUSDT",
                "preset": "binance",
                "spec_overrides": {"liquidation": {"kind": kind}},
                "price": {
                    "process": "shock",
                    "s0": 60_000.0,
                    "drop_fraction": drop,
                    "start_s": 10.0,
                    "duration_s": ramp_s,
                },
                "liquidity": {"depth_per_pct": depth, "half_life_s": 30.0},
                "population": {"n_positions": 300, "leverage_median": 30.0, "size_min": 0.002},
            }
        ],
        "insurance": {"fund": fund},
    }

    # Act
    result = run(Scenario.from_mapping(data), feedback=feedback, keep_exchange=True)

    # Assert: money adds up; the frame's tallies are the journal's; cumulative lines grow.
    assert result.exchange is not None
    result.exchange.assert_conserved()
    steps = result.steps
    assert len(steps) == 61
    assert result.summary["liquidations"] == len(_events(result, EventKind.LIQUIDATION))
    assert (np.diff(steps["bad_debt"].to_numpy()) >= 0).all()
    assert (steps["insurance_fund"] >= -1e-9).all()
    assert ((steps["adl_notional"] > 0) == (steps["adl_rounds"] > 0)).all()
    if not feedback:
        assert (steps["mark"] == steps["exogenous"]).all()
