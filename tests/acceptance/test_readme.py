"""The README's "In fifteen lines" example runs, and prints what the README says it prints."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_fifteen_lines_print_the_step_report_the_readme_shows() -> None:
    # Arrange
    code = _blocks("python")[0]
    shown = _blocks("")[0]
    # Act
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, str(README), "exec"), {})
    printed = out.getvalue()
    # Assert: every "name=number" the README shows matches the printed report
    for name, value in re.findall(r"(\w+)=([-\d.]+)", shown):
        got = re.search(rf"\b{name}=([-\d.e]+)", printed)
        assert got is not None, name
        assert float(got.group(1)) == pytest.approx(float(value), abs=0.005), name
