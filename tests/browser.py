"""Headless Chromium for the report tests: open a page, wait for every figure, collect errors.

Debian's ``chromium`` package driven by Playwright with ``executable_path`` (``playwright
install`` cannot download browsers here). Tests that use it are skipped only when no
``chromium`` is on the PATH; CI installs it first (.ci/run). Screenshots go under
``tests/artifacts/`` (git-ignored).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Page

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"

needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="no `chromium` on PATH (apt-get install chromium)"
)

#: Per figure: how many SVG layers it drew and how many traces (or heatmap layers) it holds.
FIGURE_COUNTS = (
    "divs => divs.map(d => [d.querySelectorAll('.main-svg').length,"
    " d.querySelectorAll('.trace, .hm').length])"
)


@contextmanager
def drawn_page(path: Path) -> Iterator[tuple[Page, list[str]]]:
    """Open the HTML file at ``path`` once every Plotly figure on it has drawn.

    Yields the page and the list that collects console errors and uncaught page exceptions
    (it keeps filling while the page is open). The browser closes on exit.
    """
    from playwright.sync_api import sync_playwright

    errors: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(path.as_uri(), wait_until="load")
            page.wait_for_function(
                "[...document.querySelectorAll('.plotly-graph-div')]"
                ".every(d => d.querySelector('.main-svg'))",
                timeout=30_000,
            )
            yield page, errors
        finally:
            browser.close()


def screenshot_path(name: str) -> Path:
    """Where the screenshot ``name`` (a file name) is kept: tests/artifacts/, created if absent."""
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS / name
