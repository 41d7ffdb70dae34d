"""Agents of the simulator: rebalancers (collateral top-ups), hedgers, liquidator latency."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest

from deleverage.engine.events import EventKind
from deleverage.sim.runner import RunResult, Simulation, run
from deleverage.sim.scenario import Scenario

ScenarioFactory = Callable[..., Scenario]

#: Every isolated position rebalances: a reserve of 1x its collateral, a top-up of one
#: maintenance margin when MM / E reaches 0.8, at most every 10 s.
REBALANCERS = {
    "agents.rebalancers.fraction": 1.0,
    "agents.rebalancers.reserve_fraction": 1.0,
    "agents.rebalancers.trigger_ratio": 0.8,
    "agents.rebalancers.top_up_fraction": 1.0,
    "agents.rebalancers.cooldown_s": 10.0,
}

#: A squeeze: a steady rise of ~10% over the 200 s (GBM, sigma 0, drift 15,000 a year) on a
#: book that is 70% short.
SQUEEZE = {
    "markets.0.price": {"process": "gbm", "s0": 60_000.0, "mu": 15_000.0, "sigma": 0.0},
    "markets.0.population.long_fraction": 0.3,
}


def _journal(result: RunResult, kind: EventKind) -> pd.DataFrame:
    frame = result.journal.to_frame()
    return frame[frame["kind"] == int(kind)]


# ---------------------------------------------------------------------------- rebalancers
def test_rebalancers_top_up_from_their_reserve(make_scenario: ScenarioFactory) -> None:
    # Arrange
    sim = Simulation(make_scenario(REBALANCERS))
    rebalancers = sim.agents.rebalancers[0]
    assert rebalancers is not None
    reserve_start = rebalancers.reserve.copy()
    accounts = set(rebalancers.accounts.tolist())

    # Act
    result = sim.run(keep_exchange=True)

    # Assert: top-ups happened, as margin moves of rebalancing accounts after the start,
    # and the reserve fell by exactly what was moved.
    assert result.summary["top_ups"] > 0
    assert result.summary["top_ups"] == result.steps["top_ups"].sum()
    start_ns = int(result.steps["ts_ns"].iloc[0])
    moves = _journal(result, EventKind.MARGIN_MOVED)
    moves = moves[moves["ts_ns"] > start_ns]
    assert set(moves["account"].tolist()) <= accounts
    assert len(moves) == result.summary["top_ups"]
    spent = reserve_start - rebalancers.reserve
    assert (spent >= 0).all()
    assert float(spent.sum()) == pytest.approx(float(moves["amount"].sum()), rel=1e-12)
    assert rebalancers.total == pytest.approx(float(spent.sum()), rel=1e-12)
    assert result.exchange is not None
    result.exchange.assert_conserved()


def test_a_top_up_is_one_maintenance_margin_at_the_mark(make_scenario: ScenarioFactory) -> None:
    # Arrange
    sim = Simulation(make_scenario(REBALANCERS))
    frame = sim.populations["BTCUSDT"].frame
    row_of = {int(a): i for i, a in enumerate(sim.accounts[0].tolist())}

    # Act
    result = sim.run()

    # Assert: the first top-up = top_up_fraction x 1% x |size| x mark (one-tier market), or
    # the whole reserve (1x the collateral) if smaller.
    moves = _journal(result, EventKind.MARGIN_MOVED)
    first = moves[moves["ts_ns"] > int(result.steps["ts_ns"].iloc[0])].iloc[0]
    row = row_of[int(first["account"])]
    mark = float(result.steps.loc[result.steps["ts_ns"] == first["ts_ns"], "mark"].iloc[0])
    expected = min(
        0.01 * abs(float(frame["size"].iloc[row])) * mark, float(frame["collateral"].iloc[row])
    )
    assert float(first["amount"]) == pytest.approx(expected, rel=1e-9)


def test_rebalancers_end_with_fewer_liquidations(make_scenario: ScenarioFactory) -> None:
    # Act: the same population and path, with and without rebalancers.
    without = run(make_scenario()).summary
    with_agents = run(make_scenario(REBALANCERS)).summary

    # Assert
    assert without["liquidations"] > 50  # the premise: the crash liquidates
    assert with_agents["liquidations"] < 0.9 * without["liquidations"]
    assert with_agents["liquidated_notional"] < without["liquidated_notional"]


def test_no_rebalancers_no_top_ups(make_scenario: ScenarioFactory) -> None:
    result = run(make_scenario())
    assert result.summary["top_ups"] == 0
    assert (result.steps["top_ups"] == 0).all()


# ---------------------------------------------------------------------------- hedgers
@pytest.mark.parametrize("fraction", [0.0, 0.5, 1.0])
def test_hedgers_are_counted_when_their_short_is_liquidated_in_a_squeeze(
    make_scenario: ScenarioFactory, fraction: float
) -> None:
    # Arrange
    sim = Simulation(make_scenario({**SQUEEZE, "agents.hedgers.fraction": fraction}))
    hedged = set(sim.agents.hedgers[0].tolist())
    frame = sim.populations["BTCUSDT"].frame
    shorts = set(sim.accounts[0][frame["size"].to_numpy() < 0].tolist())
    assert hedged <= shorts

    # Act
    result = sim.run()

    # Assert: the count is the hedged shorts that the engine liquidated (from the journal).
    liquidated = set(_journal(result, EventKind.LIQUIDATION)["account"].tolist())
    expected = len(hedged & liquidated)
    assert result.summary["hedgers_liquidated"] == expected
    if fraction == 0.0:
        assert expected == 0
    else:
        assert expected > 0  # the squeeze reached hedged shorts
    if fraction == 1.0:
        assert hedged == shorts
        assert expected == len(shorts & liquidated)


def test_hedged_fraction_of_shorts_matches_within_sampling_error(
    make_scenario: ScenarioFactory,
) -> None:
    sim = Simulation(make_scenario({**SQUEEZE, "agents.hedgers.fraction": 0.5}))
    n_shorts = int((sim.populations["BTCUSDT"].frame["size"] < 0).sum())
    share = len(sim.agents.hedgers[0]) / n_shorts
    assert abs(share - 0.5) < 4 * np.sqrt(0.25 / n_shorts)


# ---------------------------------------------------------------------------- latency
def test_latency_leaves_positions_under_maintenance_for_the_latency(
    make_scenario: ScenarioFactory,
) -> None:
    # Arrange: a 5% jump (all at once), liquidators 5 s late.
    jump = {"markets.0.price.duration_s": 0.0, "markets.0.price.drop_fraction": 0.05}
    scenario = make_scenario({**jump, "agents.liquidators.latency_s": 5.0})

    # Act
    steps = run(scenario).steps

    # Assert: positions wait under maintenance from the jump for exactly 5 s, then all of
    # those still waiting are liquidated at once.
    frame = steps.set_index("t_s")
    t_jump = float(frame.index[frame["exogenous"] < 60_000.0][0])
    waiting = frame["under_collateralized"]
    liquidations = frame["liquidations"]
    assert (waiting.loc[: t_jump - 1] == 0).all()
    assert waiting.loc[t_jump] > 0
    assert (liquidations.loc[t_jump : t_jump + 4] == 0).all()
    assert liquidations.loc[t_jump + 5] >= waiting.loc[t_jump + 4]
    assert waiting.loc[t_jump + 5] < waiting.loc[t_jump + 4]
