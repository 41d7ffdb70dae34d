"""Funding in the runner: historical Binance rates in order, the premium rule on the run's own
mark, and bad funding files."""

from __future__ import annotations

from collections.abc import Callable
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from deleverage.errors import ConfigError, DataError, ValidationError
from deleverage.sim.funding import (
    bundled_funding_names,
    funding_rates_from,
    load_funding_history,
)
from deleverage.sim.runner import run
from deleverage.sim.scenario import Scenario

ScenarioFactory = Callable[..., Scenario]

EIGHT_HOURS = 28_800.0


def _bundled_csv(name: str) -> pd.DataFrame:
    source = resources.files("deleverage") / "data" / "funding" / f"{name}_funding.csv.gz"
    with resources.as_file(source) as path:
        return pd.read_csv(path)


def _historical(make_scenario: ScenarioFactory, *, start: str, periods: int) -> Scenario:
    # No positions; ten-minute steps over `periods` eight-hour funding periods.
    return make_scenario(
        {
            "dt_s": 600.0,
            "duration_s": periods * EIGHT_HOURS,
            "markets.0.population": None,
            "markets.0.price.start_s": 0.0,
            "markets.0.price.drop_fraction": 0.0,
            "markets.0.funding": {
                "kind": "historical",
                "bundled": "BTCUSDT",
                "start": start,
                "interval_s": EIGHT_HOURS,
            },
        }
    )


def test_historical_funding_settles_binances_rates_from_the_start_date_in_order(
    make_scenario: ScenarioFactory,
) -> None:
    # Arrange: the published rates at or after 2020-03-12 00:00 UTC, read independently.
    csv = _bundled_csv("BTCUSDT")
    start_ms = pd.Timestamp("2020-03-12", tz="UTC").value // 1_000_000
    expected = csv.loc[csv["calc_time"] >= start_ms, "last_funding_rate"].iloc[:4].tolist()

    # Act
    steps = run(_historical(make_scenario, start="2020-03-12", periods=4)).steps

    # Assert: one settlement every eight hours, the rates in the file's order.
    settled = steps[steps["funding_rate"].notna()]
    assert settled["t_s"].tolist() == [EIGHT_HOURS * k for k in (1, 2, 3, 4)]
    assert settled["funding_rate"].tolist() == pytest.approx(expected, rel=0, abs=1e-15)


def test_historical_funding_starting_after_the_history_names_funding_start(
    make_scenario: ScenarioFactory,
) -> None:
    with pytest.raises(ConfigError, match=r"funding\.start"):
        run(_historical(make_scenario, start="2099-01-01", periods=2))


def test_bundled_histories_load_in_time_order() -> None:
    for name in bundled_funding_names():
        history = load_funding_history(bundled=name)
        assert list(history.columns) == ["ts_ns", "rate"]
        assert (np.diff(history["ts_ns"].to_numpy()) > 0).all()
        assert (history["rate"].abs() < 1).all()
        raw = _bundled_csv(name)
        assert len(history) == len(raw)
        np.testing.assert_array_equal(history["rate"], raw["last_funding_rate"])


def test_rates_from_a_time_between_settlements_start_at_the_next_one() -> None:
    history = pd.DataFrame({"ts_ns": [10, 20, 30, 40], "rate": [0.1, 0.2, 0.3, 0.4]})
    assert funding_rates_from(history, 15, 2).tolist() == [0.2, 0.3]
    assert funding_rates_from(history, 20, 3).tolist() == [0.2, 0.3, 0.4]
    with pytest.raises(DataError, match=r"funding\.start"):
        funding_rates_from(history, 25, 3)


@pytest.mark.parametrize(
    ("text", "pattern"),
    [
        ("calc_time,last_funding_rate\n1000,0.0001\n2000,0.5\n3000,1.5\n", r"line 4.*rate"),
        ("calc_time,last_funding_rate\n1000,0.0001\n3000,0.0002\n2000,0.0001\n", r"line 4.*calc"),
        ("calc_time,last_funding_rate\n1000,0.0001\nsoon,0.0002\n", r"line 3.*calc_time"),
        ("calc_time,rate\n1000,0.0001\n", "last_funding_rate"),
    ],
)
def test_bad_funding_file_names_the_line_or_column(tmp_path: Path, text: str, pattern: str) -> None:
    path = tmp_path / "funding.csv"
    path.write_text(text)
    with pytest.raises(DataError, match=pattern):
        load_funding_history(file=str(path))


def test_missing_funding_file_and_unknown_bundled_name_are_rejected(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"funding\.file"):
        load_funding_history(file=str(tmp_path / "none.csv"))
    with pytest.raises(ValidationError, match=r"funding\.bundled"):
        load_funding_history(bundled="DOGEUSDT")


def test_historical_funding_needs_exactly_one_source(make_scenario: ScenarioFactory) -> None:
    with pytest.raises(ConfigError, match="bundled"):
        make_scenario({"markets.0.funding": {"kind": "historical"}})


def test_premium_funding_follows_binances_rule_on_the_runs_mark_and_index(
    make_scenario: ScenarioFactory,
) -> None:
    # Arrange: a 5% jump at t = 31 s displaces the mark below the index; settle every 40 s.
    scenario = make_scenario(
        {
            "markets.0.price.duration_s": 0.0,
            "markets.0.price.drop_fraction": 0.05,
            "markets.0.funding": {"kind": "premium", "interval_s": 40.0},
        }
    )

    # Act
    steps = run(scenario).steps

    # Assert: F = P + clamp(0.01% - P, -0.05%, 0.05%), P = (mark - index) / index, cap 3%,
    # by hand from the frame's own columns at each settlement.
    settled = steps[steps["funding_rate"].notna()]
    assert settled["t_s"].tolist() == [40.0, 80.0, 120.0, 160.0, 200.0]
    premium = (settled["mark"] - settled["exogenous"]) / settled["exogenous"]
    expected = np.clip(premium + np.clip(0.0001 - premium, -0.0005, 0.0005), -0.03, 0.03)
    np.testing.assert_allclose(settled["funding_rate"], expected, rtol=1e-12, atol=1e-15)
    assert settled["funding_rate"].iloc[0] < 0  # mark below index: shorts pay longs
