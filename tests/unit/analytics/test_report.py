"""The HTML report: sections, one embedded plotly.js, figures that add up to the run's totals."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from deleverage.analytics.report import MAX_LINE_POINTS, _thin, build_report, report_figures
from deleverage.analytics.stress import run_account_losses, stress_metrics
from deleverage.sim.runner import RunResult, run
from deleverage.sim.scenario import Scenario
from scenarios import SMALL_CRASH

SMALL = SMALL_CRASH


@pytest.fixture(scope="module")
def runs() -> tuple[RunResult, RunResult]:
    scenario = Scenario.from_toml(SMALL)
    return run(scenario, keep_exchange=True), run(scenario, feedback=False)


@pytest.fixture(scope="module")
def page(runs: tuple[RunResult, RunResult]) -> str:
    return build_report(*runs)


def test_report_is_one_self_contained_page_with_plotly_inlined_once(page: str) -> None:
    scripts = re.findall(r"<script[^>]*>(.*?)</script>", page, flags=re.DOTALL)

    assert page.startswith("<!DOCTYPE html>")
    assert re.search(r"<script[^>]*\bsrc=", page) is None  # nothing fetched
    assert sum(len(s) > 1_000_000 for s in scripts) == 1  # the plotly.js bundle, once
    # prices, crash, breakdown, flows, fund, heatmap, losses
    assert page.count('class="plotly-graph-div"') == 7


def test_report_has_every_section_the_verdict_and_the_parameters(
    page: str, runs: tuple[RunResult, RunResult]
) -> None:
    result, _ = runs
    for heading in ("Does this venue survive?", "Price path", "Liquidations and ADL",
                    "Insurance fund and bad debt", "Where the liquidations were waiting",
                    "Who lost", "Metrics", "Scenario parameters"):  # fmt: skip
        assert f">{heading}</h2>" in page
    assert "deleverage report: small-crash" in page
    assert "markets.0.liquidity.depth_per_pct" in page
    assert f"{int(result.summary['liquidations']):,}" in page
    assert result.result_hash[:16] in page


def test_report_figures_show_the_run_and_add_up_to_its_totals(
    runs: tuple[RunResult, RunResult],
) -> None:
    # Arrange
    result, baseline = runs

    # Act
    figures = report_figures(result, baseline)

    # Assert: price traces are the frame's columns (301 points, not thinned).
    prices = {trace.name: trace for trace in figures["prices"].data}
    assert set(prices) == {"index", "venue's book", "mark with feedback", "mark without feedback"}
    np.testing.assert_array_equal(prices["index"].y, result.steps["index"])
    np.testing.assert_array_equal(prices["venue's book"].y, result.steps["book"])
    np.testing.assert_array_equal(prices["mark with feedback"].y, result.steps["mark"])
    np.testing.assert_array_equal(prices["mark without feedback"].y, baseline.steps["mark"])
    # Flow bars add up to the summary's totals.
    flows = {trace.name: trace for trace in figures["flows"].data}
    assert sum(flows["liquidated notional"].y) == pytest.approx(
        result.summary["liquidated_notional"], rel=1e-12
    )
    assert sum(flows["ADL notional"].y) == pytest.approx(result.summary["adl_notional"])
    # Heatmap: all isolated notional |q| x L of the population, by hand.
    frame = result.populations["BTCUSDT"].frame
    iso = frame[frame["margin_mode"] == "isolated"]
    expected = float((iso["size"].abs() * iso["liquidation_price"]).sum())
    drawn = sum(sum(trace.y) for trace in figures["heatmap"].data)
    assert drawn == pytest.approx(expected, rel=1e-12)
    # Losses: one value per trader account.
    assert len(figures["losses"].data[0].x) == 600


def test_report_without_a_baseline_leaves_out_the_twin(runs: tuple[RunResult, RunResult]) -> None:
    result, _ = runs
    losses = run_account_losses(result)

    page = build_report(result, metrics=stress_metrics(result, losses=losses), losses=losses)

    assert "mark without feedback" not in page
    assert "without a baseline run" in page


def test_thinning_keeps_each_chunk_extremes_and_the_last_point() -> None:
    # Arrange: 20,000 points with a single deep low and a single high in the middle.
    values = np.full(20_000, 100.0)
    values[12_345], values[7_777] = 1.0, 500.0
    frame = pd.DataFrame({"mark": values})

    # Act
    thin = _thin(frame, "mark")

    # Assert
    assert len(thin) <= MAX_LINE_POINTS + 2
    assert {12_345, 7_777, 19_999} <= set(thin.index)
    assert thin["mark"].min() == 1.0
    assert thin["mark"].max() == 500.0
