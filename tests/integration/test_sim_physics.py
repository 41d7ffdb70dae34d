"""The cascade simulator shows the physics of deleveraging, on small seeded scenarios.

Each claim compares two runs on the same population and the same exogenous path, changing one
thing, over several seeds, with a margin that a single draw does not decide:

- feedback (forced flow moving the mark) liquidates more and deepens the fall;
- a thinner book amplifies the crash;
- partial liquidation sells less and moves the mark less than full liquidation;
- slower liquidators leave more bad debt and more time under maintenance;
- bad debt grows faster than linearly in the size of a jump;
- ADL is used exactly when the insurance fund cannot pay.

The market is one tier (50x max, 1% maintenance, 0.2% penalty), so a 20x long liquidates
about 4% below its entry and is bankrupt about 5% below it.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import numpy as np
import pandas as pd
import pytest

from deleverage.engine.events import EventKind
from deleverage.sim.runner import RunResult, run
from deleverage.sim.scenario import Scenario

SEEDS = (1, 2, 3)

SPEC: dict[str, Any] = {
    "tiers": [{"notional_floor": 0.0, "max_leverage": 50.0, "maintenance_rate": 0.01}],
    "liquidation_fee_rate": 0.002,
    "lot_size": 0.001,
    "tick_size": 0.1,
}


def _scenario(
    seed: int,
    *,
    drop: float = 0.04,
    ramp_s: float = 60.0,
    depth: float = 5.0,
    fund: float = 20_000.0,
    long_fraction: float = 0.7,
    latency_s: float = 0.0,
    duration_s: float = 200.0,
    kind: str | None = None,
    price: dict[str, Any] | None = None,
) -> Scenario:
    """2,000 positions (median 20x) on a crash of ``drop`` over ``ramp_s`` from t = 30 s."""
    market: dict[str, Any] = {
        "symbol": "BTCUSDT",
        "preset": None,
        "spec": copy.deepcopy(SPEC),
        "price": price
        or {
            "process": "shock",
            "s0": 60_000.0,
            "drop_fraction": drop,
            "start_s": 30.0,
            "duration_s": ramp_s,
        },
        "liquidity": {"depth_per_pct": depth, "half_life_s": 120.0},
        "population": {
            "n_positions": 2_000,
            "long_fraction": long_fraction,
            "leverage_median": 20.0,
            "size_min": 0.002,
        },
    }
    if kind is not None:
        market["spec_overrides"] = {"liquidation": {"kind": kind}}
    return Scenario.from_mapping(
        {
            "name": "physics",
            "seed": seed,
            "dt_s": 1.0,
            "duration_s": duration_s,
            "markets": [market],
            "insurance": {"fund": fund},
            "agents": {"liquidators": {"latency_s": latency_s}},
        }
    )


def _events(result: RunResult, kind: EventKind) -> pd.DataFrame:
    frame = result.journal.to_frame()
    return frame[frame["kind"] == int(kind)]


# ---------------------------------------------------------------------------- feedback
@pytest.mark.parametrize("seed", SEEDS)
def test_feedback_liquidates_more_and_deepens_the_fall(seed: int) -> None:
    # Arrange: a 4% fall over a minute on a thin book.
    scenario = _scenario(seed)

    # Act
    with_feedback = run(scenario).summary
    without = run(scenario, feedback=False).summary

    # Assert
    assert without["liquidations"] > 100  # the premise: the exogenous move alone liquidates
    assert with_feedback["liquidations"] > 1.1 * without["liquidations"]
    assert with_feedback["liquidated_notional"] > 1.1 * without["liquidated_notional"]
    assert without["max_drawdown_mark"] == pytest.approx(without["max_drawdown_exogenous"])
    assert with_feedback["max_drawdown_mark"] > with_feedback["max_drawdown_exogenous"] + 0.003


# ---------------------------------------------------------------------------- depth
@pytest.mark.parametrize("seed", SEEDS)
def test_thinner_book_amplifies_the_crash(seed: int) -> None:
    # Act: the same crash on a book four times thinner.
    deep = run(_scenario(seed, depth=20.0)).summary
    thin = run(_scenario(seed, depth=5.0)).summary

    # Assert
    assert thin["liquidated_notional"] > 1.1 * deep["liquidated_notional"]
    assert thin["liquidations"] > deep["liquidations"]
    excess_thin = thin["max_drawdown_mark"] - thin["max_drawdown_exogenous"]
    excess_deep = deep["max_drawdown_mark"] - deep["max_drawdown_exogenous"]
    assert excess_thin > 2 * excess_deep > 0


# ---------------------------------------------------------------------------- partial
@pytest.mark.parametrize("seed", SEEDS)
def test_partial_liquidation_sells_less_and_moves_the_mark_less(seed: int) -> None:
    # Act: the same path and population, full vs partial (restore maintenance) closes.
    full = run(_scenario(seed, kind="full")).summary
    partial = run(_scenario(seed, kind="partial")).summary

    # Assert: less forced volume, a shallower mark, and no more bad debt.
    assert partial["liquidated_notional"] < 0.95 * full["liquidated_notional"]
    assert partial["max_drawdown_mark"] < full["max_drawdown_mark"]
    assert partial["bad_debt"] <= full["bad_debt"]


@pytest.mark.parametrize("seed", SEEDS)
def test_partial_liquidation_leaves_no_more_bad_debt_after_a_gap(seed: int) -> None:
    # Arrange: a 4% gap in one step with no fund and no opposing traders (all long): every
    # shortfall is bad debt.
    def scenario(kind: str) -> Scenario:
        return _scenario(seed, kind=kind, ramp_s=0.0, fund=0.0, long_fraction=1.0)

    # Act
    full = run(scenario("full")).summary
    partial = run(scenario("partial")).summary

    # Assert
    assert full["bad_debt"] > 0  # the premise: the gap jumps positions past bankruptcy
    assert partial["bad_debt"] <= full["bad_debt"] * (1 + 1e-9)
    assert partial["liquidated_notional"] < full["liquidated_notional"]


# ---------------------------------------------------------------------------- latency
@pytest.mark.slow
@pytest.mark.parametrize("seed", SEEDS)
def test_slower_liquidators_leave_more_bad_debt(seed: int) -> None:
    # Arrange: a 15% fall over a minute, no fund, all long (shortfall = bad debt).
    def summary(latency_s: float) -> dict[str, float]:
        scenario = _scenario(seed, drop=0.15, fund=0.0, long_fraction=1.0, latency_s=latency_s)
        return run(scenario).summary

    # Act
    instant, slow, slower = summary(0.0), summary(3.0), summary(12.0)

    # Assert: liquidating at maintenance leaves none; waiting lets prices pass bankruptcy.
    assert instant["bad_debt"] == 0.0
    assert slower["bad_debt"] > 2 * slow["bad_debt"] > 0
    assert instant["under_collateralized_s"] == 0.0
    assert slower["under_collateralized_s"] > 2 * slow["under_collateralized_s"] > 0


# ---------------------------------------------------------------------------- volatility
@pytest.mark.parametrize("seed", SEEDS)
def test_bad_debt_grows_faster_than_linearly_in_the_jump_size(seed: int) -> None:
    # Arrange: a single gap of 3%, 6% and 12%; no fund, all long.
    def bad_debt(drop: float) -> float:
        scenario = _scenario(seed, drop=drop, ramp_s=0.0, fund=0.0, long_fraction=1.0)
        return run(scenario).summary["bad_debt"]

    # Act
    small, double, quadruple = bad_debt(0.03), bad_debt(0.06), bad_debt(0.12)

    # Assert: doubling the jump more than doubles the bad debt, at each level.
    assert small > 0
    assert double > 2 * small
    assert quadruple > 2 * double


def test_bad_debt_grows_faster_than_linearly_in_the_mean_jump_of_a_merton_path() -> None:
    # Arrange: Merton paths, ~3 jumps in 300 s; the same seeds (so the same jump times and
    # shocks) with the mean log jump doubled, summed over four seeds.
    def total(jump_mean: float) -> float:
        out = 0.0
        for seed in (1, 2, 3, 4):
            price = {
                "process": "merton", "s0": 60_000.0, "sigma": 0.5, "jump_intensity": 3e5,
                "jump_mean": jump_mean, "jump_std": 0.005,
            }  # fmt: skip
            scenario = _scenario(
                seed, price=price, depth=20.0, fund=0.0, long_fraction=1.0, duration_s=300.0
            )
            out += run(scenario).summary["bad_debt"]
        return out

    # Act
    base, doubled = total(-0.02), total(-0.04)

    # Assert
    assert base > 0
    assert doubled > 2 * base


# ---------------------------------------------------------------------------- ADL
def _fund_before_each_event(result: RunResult, account: int) -> pd.Series:
    """The fund's balance just before each journal event, from deposits and transfers."""
    frame = result.journal.to_frame()
    flow = np.zeros(len(frame))
    deposit = (frame["kind"] == int(EventKind.DEPOSIT)) & (frame["account"] == account)
    inflow = (frame["kind"] == int(EventKind.TRANSFER)) & (frame["counterparty"] == account)
    outflow = (frame["kind"] == int(EventKind.TRANSFER)) & (frame["account"] == account)
    amount = frame["amount"].to_numpy()
    flow[deposit.to_numpy() | inflow.to_numpy()] += amount[deposit.to_numpy() | inflow.to_numpy()]
    flow[outflow.to_numpy()] -= amount[outflow.to_numpy()]
    balance_after = np.cumsum(flow)
    return pd.Series(balance_after - flow, index=frame.index)


def test_no_adl_while_the_insurance_fund_can_pay() -> None:
    # Arrange: an 8% gap, a fund far larger than any shortfall.
    for seed in SEEDS:
        result = run(_scenario(seed, drop=0.08, ramp_s=0.0, fund=1e9))

        # Assert: the fund paid shortfalls, and ADL never ran.
        shortfall = float(_events(result, EventKind.LIQUIDATION)["amount"].sum())
        assert shortfall > 0
        assert result.summary["insurance_fund_min"] < 1e9
        assert (result.steps["adl_notional"] == 0.0).all()
        assert (result.steps["adl_rounds"] == 0).all()
        assert len(_events(result, EventKind.ADL_ROUND)) == 0


def test_a_drained_insurance_fund_leads_to_adl() -> None:
    # Arrange: the same gap with a 100 fund.
    for seed in SEEDS:
        result = run(_scenario(seed, drop=0.08, ramp_s=0.0, fund=100.0), keep_exchange=True)
        assert result.exchange is not None
        fund_account = result.exchange.insurance_account_for(0)

        # Act
        rounds = _events(result, EventKind.ADL_ROUND)
        fund = _fund_before_each_event(result, fund_account)

        # Assert: ADL ran, only after the fund had paid out (below its 100 start), and each
        # round only for a loss the fund could not pay: the round's "shortfall" metric is the
        # book-fill shortfall net of the fund's balance, > 0.
        assert result.summary["adl_notional"] > 0
        assert len(rounds) > 0
        assert fund.loc[rounds.index].max() < 100.0
        net_of_fund = np.array([json.loads(text)["shortfall"] for text in rounds["text"]])
        assert (net_of_fund > 0).all()
        steps = result.steps
        first = int(steps.loc[steps["adl_notional"] > 0, "step"].iloc[0])
        assert (steps.loc[steps["step"] < first, "adl_notional"] == 0).all()
        # The journal's fund agrees with the frame's at the end.
        assert fund.iloc[-1] == pytest.approx(steps["insurance_fund"].iloc[-1], abs=1e-6)
