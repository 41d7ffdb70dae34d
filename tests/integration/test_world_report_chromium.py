"""The world report opens in a real browser: every figure draws, the console stays clean, and
every venue kind of the world (perp, GMX, Synthetix, Aave, Maker) is on the page.

Runs headless Chromium (Debian's ``chromium`` package, driven by Playwright with
``executable_path``, as tests/integration/test_report_chromium.py). Skipped only when no
``chromium`` is on the PATH; CI installs it first (.ci/run). The screenshot is kept under
``tests/artifacts/`` (git-ignored) and its path printed.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from deleverage.analytics.world_report import write_world_report
from deleverage.world import Channels
from deleverage.world.build import run_world
from deleverage.world.config import WorldScenario
from scenarios import DEFI_WORLD

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
VENUES = ("cex", "gmx", "snx", "aave", "maker")


@pytest.mark.skipif(CHROMIUM is None, reason="no `chromium` on PATH (apt-get install chromium)")
def test_world_report_renders_every_plot_in_headless_chromium_without_console_errors(
    tmp_path: Path,
) -> None:
    from playwright.sync_api import sync_playwright

    # Arrange
    scenario = WorldScenario.from_toml(DEFI_WORLD)
    result = run_world(scenario)
    baseline = run_world(scenario, channels=Channels(prices=False, traders=False))
    report = write_world_report(tmp_path / "world.html", result, baseline=baseline)
    ARTIFACTS.mkdir(exist_ok=True)
    screenshot = ARTIFACTS / "world_report_defi.png"
    errors: list[str] = []

    # Act
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(report.as_uri(), wait_until="load")
            page.wait_for_function(
                "[...document.querySelectorAll('.plotly-graph-div')]"
                ".every(d => d.querySelector('.main-svg'))",
                timeout=30_000,
            )
            plots = page.eval_on_selector_all(
                ".plotly-graph-div",
                "divs => divs.map(d => [d.querySelectorAll('.main-svg').length,"
                " d.querySelectorAll('.trace, .hm').length])",
            )
            legend = page.eval_on_selector_all(
                ".plotly-graph-div .legendtext", "nodes => nodes.map(n => n.textContent)"
            )
            table = page.eval_on_selector_all(
                "table.frame th", "cells => cells.map(c => c.textContent)"
            )
            title = page.title()
            page.screenshot(path=str(screenshot), full_page=True)
        finally:
            browser.close()

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
