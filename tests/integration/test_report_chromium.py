"""The HTML report opens in a real browser: every figure draws, the console stays clean.

Runs headless Chromium through tests/browser.py (skipped only when no ``chromium`` is on the
PATH; CI installs it first). The screenshot is kept under ``tests/artifacts/`` (git-ignored)
and its path printed.
"""

from __future__ import annotations

from pathlib import Path

from browser import FIGURE_COUNTS, drawn_page, needs_chromium, screenshot_path
from deleverage.analytics.report import write_report
from deleverage.sim.runner import run
from deleverage.sim.scenario import Scenario
from scenarios import SMALL_CRASH


@needs_chromium
def test_report_renders_every_plot_in_headless_chromium_without_console_errors(
    tmp_path: Path,
) -> None:
    # Arrange
    scenario = Scenario.from_toml(SMALL_CRASH)
    report = write_report(
        tmp_path / "report.html", run(scenario, keep_exchange=True), run(scenario, feedback=False)
    )
    screenshot = screenshot_path("report_small_crash.png")

    # Act
    with drawn_page(report) as (page, errors):
        plots = page.eval_on_selector_all(".plotly-graph-div", FIGURE_COUNTS)
        title = page.title()
        page.screenshot(path=str(screenshot), full_page=True)

    # Assert
    print(f"screenshot: {screenshot}")
    assert title == "deleverage report: small-crash"
    assert len(plots) == 7  # prices, crash window, breakdown, flows, fund, heatmap, losses
    assert all(svgs >= 1 and traces >= 1 for svgs, traces in plots), plots
    assert errors == []
    assert screenshot.stat().st_size > 10_000
