"""The README's snippets run, and print what the README shows.

Conventions of README.md: a ```python block followed by a ```text block prints that text
(compared as doctest does, whitespace normalized, ``...`` matching anything); a ```text block
after ``<!-- output of: deleverage ARGS -->`` is what that command prints (run here, slow).
Every ```python block runs, in a fresh namespace and an empty working directory.
"""

from __future__ import annotations

import contextlib
import doctest
import io
import re
import shlex
from pathlib import Path

import pytest

from cli_contract import call

README = Path(__file__).parents[1] / "README.md"
_SNIPPET = re.compile(r"```python\n(?P<code>.*?)```\n(?:\n```text\n(?P<out>.*?)```\n)?", re.S)
_COMMAND = re.compile(r"<!-- output of: (?P<command>.*?) -->\n```text\n(?P<out>.*?)```\n", re.S)
_FLAGS = doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS


def _snippets() -> list[tuple[str, str | None]]:
    return [(m["code"], m["out"]) for m in _SNIPPET.finditer(README.read_text(encoding="utf-8"))]


def _matches(expected: str, got: str) -> bool:
    return doctest.OutputChecker().check_output(expected, got, _FLAGS)


def test_the_readme_has_snippets_with_their_output() -> None:
    snippets = _snippets()

    assert len(snippets) >= 2
    assert all(out is not None for _, out in snippets)
    assert len(list(_COMMAND.finditer(README.read_text(encoding="utf-8")))) >= 1


@pytest.mark.parametrize(
    ("code", "expected"), _snippets(), ids=lambda v: str(v).split("\n", 1)[0][:40]
)
def test_a_readme_snippet_prints_what_the_readme_shows(
    code: str, expected: str | None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    printed = io.StringIO()

    with contextlib.redirect_stdout(printed):
        exec(compile(code, str(README), "exec"), {"__name__": "readme"})

    if expected is not None:
        assert _matches(expected, printed.getvalue()), printed.getvalue()


@pytest.mark.slow
@pytest.mark.parametrize(
    ("command", "expected"),
    [(m["command"], m["out"]) for m in _COMMAND.finditer(README.read_text(encoding="utf-8"))],
)
def test_a_readme_command_prints_what_the_readme_shows(
    command: str, expected: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    program, *args = shlex.split(command)
    assert program == "deleverage"

    outcome = call(*args)

    assert outcome.code == 0, outcome.text[-500:]
    assert _matches(expected, outcome.out), outcome.out
