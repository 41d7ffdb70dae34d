"""The policies' predictor in a run, and the paired evaluation with and without them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from predict_worlds import tiny_world

from cli_contract import call, toml_value
from deleverage.engine.events import EventKind, FillReason
from deleverage.engine.exchange import Exchange
from deleverage.errors import ConfigError, ValidationError
from deleverage.predict.proactive import (
    POLICY_METRICS,
    PolicyEffect,
    _effects,
    evaluate_policy,
    policy_verdict,
    run_proactive,
    run_scenario,
)
from deleverage.sim.runner import run
from deleverage.sweep.executors import EvalSpec, evaluate
from deleverage.sweep.experiment import Cell, RunTask

POLICY = {
    "every_s": 5.0,
    "horizon_s": 60.0,
    "window_s": 60.0,
    "margin": {"level": 0.1, "release_level": 0.05, "grace_s": 10.0, "hold_s": 30.0},
    "deleveraging": {"level": 0.1, "account_level": 0.2, "fraction": 0.5},
}


def test_a_proactive_scenario_without_a_predictor_is_refused() -> None:
    scenario = tiny_world(duration_s=60.0).with_overrides({"proactive": POLICY})

    with pytest.raises(ConfigError, match="proactive"):
        run(scenario)


def test_the_predictor_makes_the_engine_act_and_the_run_replays() -> None:
    scenario = tiny_world().with_overrides({"proactive": POLICY, "seed": 3})

    result = run_proactive(scenario)

    table = result.journal.to_arrow()
    kind = table.column("kind").to_numpy()
    code = table.column("code").to_numpy()
    reductions = (kind == int(EventKind.FILL)) & (code == int(FillReason.PREDICTIVE))
    assert reductions.sum() > 0
    assert (kind == int(EventKind.MARGIN_NOTICE)).sum() > 0
    assert (kind == int(EventKind.RISK_PARAMS)).sum() >= 1
    assert result.exchange is not None
    assert Exchange.replay(result.journal).state_hash() == result.exchange.state_hash()


def test_the_same_seeds_give_the_same_policy_runs() -> None:
    scenario = tiny_world(duration_s=200.0).with_overrides({"proactive": POLICY})

    first, _ = evaluate_policy(scenario, [3, 4])
    second, _ = evaluate_policy(scenario, [3, 4])

    pd.testing.assert_frame_equal(first, second)
    off = first[first["policy"] == "off"]
    assert (off["reduced_notional"] == 0).all()
    assert (off["notices"] == 0).all()
    assert (first.loc[first["policy"] == "on", "reduced_notional"] > 0).any()


def test_effects_are_paired_differences_with_a_t_interval_and_say_when_nothing_helps() -> None:
    # Oracle: differences on - off of sudden events = (-2, -1, -3): mean -2, sd 1,
    # t(0.975, 2) = 4.3027 -> [-2 - 2.484, -2 + 2.484] crosses zero: "does not help".
    rows = []
    for seed, off, on in ((1, 5, 3), (2, 4, 3), (3, 6, 3)):
        base = dict.fromkeys(POLICY_METRICS, 0.0)
        rows.append({"seed": seed, "policy": "off", **base, "sudden_events": float(off)})
        rows.append({"seed": seed, "policy": "on", **base, "sudden_events": float(on)})
    frame = pd.DataFrame(rows)

    effects = {e.metric: e for e in _effects(frame, 0.95)}

    half = 4.302652729911275 * 1.0 / np.sqrt(3)
    sudden = effects["sudden_events"]
    assert sudden.mean_difference == pytest.approx(-2.0)
    assert (sudden.low, sudden.high) == pytest.approx((-2.0 - half, -2.0 + half))
    assert sudden.verdict.startswith("no significant effect")
    assert effects["bad_debt"].verdict == "no change on any seed"
    assert "does NOT help" in policy_verdict(list(effects.values()))


def test_a_consistent_improvement_is_reported_as_help() -> None:
    effect = PolicyEffect(
        metric="sudden_events", mean_off=5.0, mean_on=2.0, mean_difference=-3.0, low=-4.0,
        high=-2.0, verdict="improves",
    )  # fmt: skip

    assert policy_verdict([effect]).startswith("the policy HELPS")


def test_evaluating_without_a_policy_or_with_one_seed_is_refused() -> None:
    with pytest.raises(ValidationError, match="proactive"):
        evaluate_policy(tiny_world(), [1, 2])
    with pytest.raises(ValidationError, match="seeds"):
        evaluate_policy(tiny_world().with_overrides({"proactive": POLICY}), [1])


@pytest.mark.parametrize("action", ["add_margin", "reduce"])
def test_traders_react_to_alerts_on_their_own_probability(action: str) -> None:
    # Arrange: every account set an alert at 20%; reactions add 1x maintenance or close half.
    alerts = {"level": 0.2, "action": action, "fraction": 0.5}
    scenario = tiny_world().with_overrides(
        {"seed": 3, "proactive": {"every_s": 5.0, "horizon_s": 60.0, "window_s": 60.0,
                                  "alerts": alerts}}
    )  # fmt: skip

    # Act
    result = run_proactive(scenario)

    # Assert: alerts went out, each reaction is in the journal (deposits or trades), and the
    # engine ran no proactive policy of its own.
    summary = result.summary
    table = result.journal.to_arrow()
    kind = table.column("kind").to_numpy()
    assert summary["alerts"] > 0
    assert summary["alert_reactions"] > 0
    if action == "add_margin":
        assert summary["alert_margin_added"] > 0
        assert summary["alert_reduced_notional"] == 0
    else:
        assert summary["alert_reduced_notional"] > 0
        assert summary["alert_margin_added"] == 0
    assert (kind == int(EventKind.MARGIN_NOTICE)).sum() == 0
    assert result.exchange is not None
    assert result.exchange.risk.markets[0].proactive is None
    result.exchange.assert_conserved()


def test_reducing_more_than_the_position_on_alert_is_refused() -> None:
    with pytest.raises(ValidationError, match="fraction"):
        tiny_world().with_overrides(
            {"proactive": {"alerts": {"action": "reduce", "fraction": 1.5}}}
        )


def test_run_scenario_is_the_plain_runner_without_a_proactive_block() -> None:
    scenario = tiny_world(duration_s=100.0)

    assert run_scenario(scenario).result_hash == run(scenario).result_hash


def test_deleverage_run_and_a_sweep_task_run_a_proactive_scenario_with_its_predictor(
    tmp_path: Path,
) -> None:
    # Arrange: the tiny world with the policies, as a TOML file and as a sweep's base.
    scenario = tiny_world().with_overrides({"proactive": POLICY, "seed": 3})
    path = tmp_path / "proactive.toml"
    data = _without_none(scenario.to_toml_dict())
    path.write_text("\n".join(f"{key} = {toml_value(value)}" for key, value in data.items()))
    expected = run_proactive(scenario)

    # Act
    outcome = call("run", str(path), "--out", str(tmp_path / "out"), "--no-baseline", "--json")
    task = RunTask(cell=Cell(index=0, cell_id="c", values={}, overrides={}), replicate=1, seed=3)
    row = evaluate(scenario, task, EvalSpec(metrics=("liquidated_notional",), feedback_twin=False))

    # Assert: the same run as run_proactive, from both front doors.
    assert outcome.code == 0, outcome.text[-600:]
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["result_hash"] == expected.result_hash
    assert row["error"] is None
    assert row["liquidated_notional"] == pytest.approx(expected.summary["liquidated_notional"])


def _without_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [_without_none(v) for v in value]
    return value


def test_a_sweep_switches_the_policies_off_and_on_on_the_same_seeds() -> None:
    # `proactive.enabled = [true, false]` as a sweep parameter: the switched-off cell is the
    # plain run of the same seed (same result hash), the switched-on cell is the policies' run.
    base = tiny_world(duration_s=120.0).with_overrides({"proactive": POLICY, "seed": 3})
    base.check_override_path("proactive.enabled")
    off = base.with_overrides({"proactive.enabled": False})
    assert off.proactive is None
    plain = tiny_world(duration_s=120.0).with_overrides({"seed": 3})
    assert run(off).result_hash == run(plain).result_hash
    assert run_scenario(base).result_hash != run(plain).result_hash
    with pytest.raises(ConfigError, match="proactive"):  # a switched-off block is still checked
        base.with_overrides({"proactive.enabled": False, "proactive.margin": None,
                             "proactive.deleveraging": None})  # fmt: skip
