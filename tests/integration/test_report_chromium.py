"""The HTML report opens in a real browser: every figure draws, the console stays clean.

Runs headless Chromium (Debian's ``chromium`` package, driven by Playwright with
``executable_path``: ``playwright install`` cannot download browsers here). Skipped only when no
``chromium`` is on the PATH; CI installs it first (.ci/run). The screenshot is kept under
``tests/artifacts/`` (git-ignored) and its path printed.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from deleverage.analytics.report import write_report
from deleverage.sim.runner import run
from deleverage.sim.scenario import Scenario
from scenarios import SMALL_CRASH

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"

SMALL = SMALL_CRASH


@pytest.mark.skipif(CHROMIUM is None, reason="no `chromium` on PATH (apt-get install chromium)")
def test_report_renders_every_plot_in_headless_chromium_without_console_errors(
    tmp_path: Path,
) -> None:
    from playwright.sync_api import sync_playwright

    # Arrange
    scenario = Scenario.from_toml(SMALL)
    report = write_report(
        tmp_path / "report.html", run(scenario, keep_exchange=True), run(scenario, feedback=False)
    )
    ARTIFACTS.mkdir(exist_ok=True)
    screenshot = ARTIFACTS / "report_small_crash.png"
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
                " d.querySelectorAll('.trace').length])",
            )
            title = page.title()
            page.screenshot(path=str(screenshot), full_page=True)
        finally:
            browser.close()

    # Assert
    print(f"screenshot: {screenshot}")
    assert title == "deleverage report: small-crash"
    assert len(plots) == 7  # prices, crash window, breakdown, flows, fund, heatmap, losses
    assert all(svgs >= 1 and traces >= 1 for svgs, traces in plots), plots
    assert errors == []
    assert screenshot.stat().st_size > 10_000
