"""The world report opens in a real browser: every figure draws, the console stays clean, and
every venue kind of the world (perp, GMX, Synthetix, Aave, Maker) is on the page.

Runs headless Chromium through tests/browser.py (skipped only when no ``chromium`` is on the
PATH; CI installs it first). The screenshot is kept under ``tests/artifacts/`` (git-ignored)
and its path printed.
"""

from __future__ import annotations

from pathlib import Path

from browser import FIGURE_COUNTS, drawn_page, needs_chromium, screenshot_path
from deleverage.analytics.world_report import write_world_report
from deleverage.world import Channels
from deleverage.world.build import run_world
from deleverage.world.config import WorldScenario
from scenarios import DEFI_WORLD

VENUES = ("cex", "gmx", "snx", "aave", "maker")


@needs_chromium
def test_world_report_renders_every_plot_in_headless_chromium_without_console_errors(
    tmp_path: Path,
) -> None:
    # Arrange
    scenario = WorldScenario.from_toml(DEFI_WORLD)
    result = run_world(scenario)
    baseline = run_world(scenario, channels=Channels(prices=False, traders=False))
    report = write_world_report(tmp_path / "world.html", result, baseline=baseline)
    screenshot = screenshot_path("world_report_defi.png")

    # Act
    with drawn_page(report) as (page, errors):
        plots = page.eval_on_selector_all(".plotly-graph-div", FIGURE_COUNTS)
        legend = page.eval_on_selector_all(
            ".plotly-graph-div .legendtext", "nodes => nodes.map(n => n.textContent)"
        )
        table = page.eval_on_selector_all(
            "table.frame th", "cells => cells.map(c => c.textContent)"
        )
        title = page.title()
        page.screenshot(path=str(screenshot), full_page=True)

    # Assert
    print(f"screenshot: {screenshot}")
    assert title == "deleverage world report: defi-world"
    assert len(plots) == 6  # prices, liquidations, losses, venue panels, contagion, heatmap
    assert all(svgs >= 1 and traces >= 1 for svgs, traces in plots), plots
    assert errors == []
    for venue in VENUES:
        assert venue in table, (venue, table)
        assert venue in legend, (venue, legend)
    assert screenshot.stat().st_size > 10_000
