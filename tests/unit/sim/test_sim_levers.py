"""The venue's dynamic levers in scenarios: ``[markets.dynamic]`` turns them on, each change is a
replayable ``RiskParamsChanged`` event, sweeps address them by path, the report draws them."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from deleverage.analytics.levers import risk_parameter_path
from deleverage.analytics.report import build_report, report_figures
from deleverage.engine.events import EventKind
from deleverage.engine.exchange import Exchange
from deleverage.errors import ConfigError
from deleverage.rules.dynamic import DynamicLevers, levered_spec
from deleverage.sim.runner import run
from deleverage.sim.scenario import Scenario

ScenarioFactory = Callable[..., Scenario]

#: Implied volatility rising from 0.6 to 1.8 over the first 100 s: k = sigma / 0.6 goes 1 -> 3,
#: in steps of 0.25; the liquidation fee and the tier floors move with k too.
IMPLIED = {
    "volatility": "implied",
    "implied_volatility": [[0.0, 0.6], [100.0, 1.8]],
    "step": 0.25,
    "liquidation_fee_exponent": 1.0,
    "position_limit_exponent": 1.0,
}


def test_rising_implied_volatility_moves_every_lever_as_replayable_events(
    make_scenario: ScenarioFactory,
) -> None:
    # Act
    result = run(make_scenario({"markets.0.dynamic": IMPLIED}), keep_exchange=True)

    # Assert: one event per change of k (1.25, 1.5, ..., 3.0) ...
    path = risk_parameter_path(result.journal)
    changes = path.iloc[1:]
    np.testing.assert_allclose(changes["margin_multiplier"], np.arange(1.25, 3.01, 0.25))
    # ... each at the first mark where sigma(t) / 0.6, rounded to 0.25, reached its value
    # (the schedule read from outside the code: sigma(t) = 0.6 + 1.2 t / 100) ...
    start = int(result.steps["ts_ns"].iloc[0])
    for _, row in changes.iterrows():
        t = (int(row["ts_ns"]) - start) / 1e9
        k = row["margin_multiplier"]
        assert round((0.6 + 1.2 * t / 100) / 0.6 / 0.25) * 0.25 == pytest.approx(k)
        assert round((0.6 + 1.2 * (t - 1) / 100) / 0.6 / 0.25) * 0.25 < k
    # ... the spec in force is the listed one with every lever moved by k ...
    assert result.exchange is not None
    listed = result.scenario.markets[0].market_spec()
    expected = levered_spec(listed, 3.0, DynamicLevers(**IMPLIED))
    assert result.exchange.market(0).spec == expected
    assert float(changes["liquidation_fee_rate"].iloc[-1]) == pytest.approx(0.006)
    # ... and a replay of the journal rebuilds the same state.
    replayed = Exchange.replay(result.journal)
    assert replayed.state_hash() == result.exchange.state_hash()
    assert replayed.market(0).spec == expected


def test_tighter_margin_in_the_same_crash_liquidates_more(make_scenario: ScenarioFactory) -> None:
    # Act
    fixed = run(make_scenario()).summary
    dynamic = run(make_scenario({"markets.0.dynamic": IMPLIED})).summary

    # Assert
    assert dynamic["liquidations"] > fixed["liquidations"]


def test_realized_volatility_levers_stay_put_on_a_flat_path(
    make_scenario: ScenarioFactory,
) -> None:
    # A flat path has no realized volatility: k stays at its minimum, no event.
    flat = {"markets.0.price.drop_fraction": 0.0, "markets.0.dynamic": {"window_s": 60.0}}
    result = run(make_scenario(flat))
    kinds = result.journal.to_frame()["kind"]
    assert int((kinds == int(EventKind.RISK_PARAMS)).sum()) == 0


def test_thinning_depth_raises_margin(make_scenario: ScenarioFactory) -> None:
    # Arrange: depth thins with liquidation flow; margin grows as 1 / depth ratio.
    scenario = make_scenario(
        {
            "markets.0.liquidity.dynamics": {"flow_scale": 5.0},
            "markets.0.dynamic": {"volatility": "none", "depth_exponent": 1.0, "step": 0.01},
        }
    )

    # Act
    result = run(scenario)

    # Assert: each change is 1 / (the step's depth multiplier), rounded to 0.01, in [1, 3].
    path = risk_parameter_path(result.journal).iloc[1:]
    assert len(path) > 0
    steps = result.steps.set_index("ts_ns")
    for _, row in path.iterrows():
        phi = float(steps.loc[int(row["ts_ns"]), "depth_multiplier"])
        expected = min(max(round(1 / phi / 0.01) * 0.01, 1.0), 3.0)
        assert row["margin_multiplier"] == pytest.approx(expected, rel=1e-9)


def test_sweeps_address_the_levers_by_path(make_scenario: ScenarioFactory) -> None:
    base = make_scenario({"markets.0.dynamic": IMPLIED})
    base.check_override_path("markets.0.dynamic.max_multiplier")
    varied = base.with_overrides({"markets.0.dynamic.max_multiplier": 2.0})
    dynamic = varied.markets[0].dynamic
    assert dynamic is not None
    assert dynamic.max_multiplier == 2.0
    with pytest.raises(ConfigError, match="max_multiplier"):
        base.with_overrides({"markets.0.dynamic.max_multiplier": 0.5})
    with pytest.raises(ConfigError, match="must name a field"):
        base.check_override_path("markets.0.dynamic.no_such_lever")


def test_the_report_draws_the_levers_beside_the_price(make_scenario: ScenarioFactory) -> None:
    # Act
    levered = run(make_scenario({"markets.0.dynamic": IMPLIED}))
    plain = run(make_scenario())
    figures = report_figures(levered)

    # Assert: a section with the mark and the levers' step path (the journal's values, the
    # last one held to the end of the run); none when nothing moved.
    assert "levers" in figures
    assert "levers" not in report_figures(plain)
    traces = {trace.name: trace for trace in figures["levers"].data}
    assert set(traces) == {"mark", "maintenance rate / listed", "liquidation fee (% of notional)"}
    multiplier = list(traces["maintenance rate / listed"].y)
    path = risk_parameter_path(levered.journal)
    assert multiplier[:-1] == path["margin_multiplier"].tolist()
    assert multiplier[-1] == multiplier[-2]
    assert "dynamic levers" in build_report(levered)
    assert "dynamic levers" not in build_report(plain)
