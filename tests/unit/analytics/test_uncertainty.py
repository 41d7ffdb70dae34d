"""Uncertainty across seeds: percentile bands, VaR and expected shortfall of the fund's loss
(Acerbi and Tasche 2002: ES_a = E[L | L >= VaR_a], VaR_a the empirical a-quantile), and
``deleverage run --seeds`` end to end on a small scenario."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from deleverage.analytics.uncertainty import bands, tail_risk
from deleverage.cli.app import app
from deleverage.sim.runner import run
from deleverage.sim.scenario import Scenario
from deleverage.sweep.seeds import run_seeds, seed_list
from scenarios import SMALL_CRASH


def test_var_and_es_of_a_hundred_losses() -> None:
    # losses 1..100: F(95) = 0.95, so VaR = 95 and ES = mean(95..100) = 97.5
    assert tail_risk(np.arange(1.0, 101.0)) == (95.0, 97.5)


def test_es_is_at_least_var_and_nan_without_losses() -> None:
    rng = np.random.default_rng(0)
    var, es = tail_risk(rng.lognormal(size=1000), 0.99)
    assert es >= var
    assert all(math.isnan(v) for v in tail_risk([]))


def test_bands_are_the_percentiles_across_seeds() -> None:
    series = [np.array([1.0, 10.0]), np.array([2.0, 20.0]), np.array([3.0, 30.0])]
    out = bands(series)
    assert out["p50"].tolist() == [2.0, 20.0]
    assert out["p5"].tolist() == pytest.approx([1.1, 11.0])  # linear interpolation
    assert out["p95"].tolist() == pytest.approx([2.9, 29.0])


def test_run_seeds_starts_with_the_scenarios_own_seed() -> None:
    # Arrange
    scenario = Scenario.from_toml(SMALL_CRASH)

    # Act: three seeds in this process
    summary = run_seeds(scenario, 3, workers=0)

    # Assert: the first seed is the scenario's, and its row is that run's summary
    assert summary.seeds == seed_list(scenario, 3)
    assert summary.seeds[0] == scenario.seed
    assert len(set(summary.seeds)) == 3
    own = run(scenario).summary
    assert summary.metrics.iloc[0]["liquidations"] == own["liquidations"]
    band = summary.bands["mark"]
    assert (band["p5"] <= band["p50"]).all()
    assert (band["p50"] <= band["p95"]).all()
    assert summary.fund_loss_es >= summary.fund_loss_var >= 0.0


def test_cli_run_with_seeds_reports_bands_and_tail_risk(tmp_path: Path) -> None:
    scenario = tmp_path / "small.toml"
    scenario.write_text(SMALL_CRASH)
    out = tmp_path / "out"

    result = CliRunner().invoke(
        app, ["run", str(scenario), "--out", str(out), "--seeds", "2", "--workers", "0",
              "--no-baseline", "--json"],
    )  # fmt: skip

    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert len(metrics["seeds"]["seeds"]) == 2
    assert "fund_loss_var" in metrics["seeds"]
    page = (out / "report.html").read_text(encoding="utf-8")
    assert "Across 2 seeds" in page
    assert "fund loss VaR 95%" in page
