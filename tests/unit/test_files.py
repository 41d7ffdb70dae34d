"""Reading and writing user-named paths (:mod:`deleverage._files`)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from deleverage._files import (
    MAX_TEXT_BYTES,
    atomic_folder,
    atomic_write,
    check_output_file,
    read_text,
)
from deleverage.errors import ConfigError


def test_atomic_folder_replaces_an_earlier_output_whole(tmp_path: Path) -> None:
    # Arrange: an earlier output with a file the new one does not write.
    out = tmp_path / "out"
    out.mkdir()
    (out / "a.json").write_text("old")
    (out / "b.json").write_text("old")

    # Act
    with atomic_folder(out, field="--out", replaceable={"a.json", "b.json"}) as folder:
        (folder / "a.json").write_text("new")

    # Assert: the new folder exactly, nothing of the old one, no temporary sibling.
    assert sorted(p.name for p in out.iterdir()) == ["a.json"]
    assert (out / "a.json").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_atomic_folder_failure_removes_the_parents_it_made(tmp_path: Path) -> None:
    target = tmp_path / "x" / "y" / "out"

    def failing_run() -> None:
        with atomic_folder(target, field="--out") as folder:
            (folder / "partial.parquet").write_text("half")
            raise RuntimeError("the run failed")

    with pytest.raises(RuntimeError):
        failing_run()

    assert list(tmp_path.iterdir()) == []


def test_atomic_folder_refuses_a_folder_with_other_files(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")

    with pytest.raises(ConfigError, match=r"notes\.txt"), atomic_folder(tmp_path, field="--out"):
        pass

    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path: Path) -> None:
    target = tmp_path / "report.html"
    target.write_text("old report")

    def fail(tmp: Path) -> None:
        tmp.write_text("half a report")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(target, fail, field="--out")

    assert target.read_text() == "old report"
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]


@pytest.mark.parametrize(
    ("content", "rule"),
    [
        (b"a = 1\x00", "NUL byte at offset 5"),
        (b"a = '\xe9'", "byte 0xe9 at offset 5"),
        (b"x" * (MAX_TEXT_BYTES + 1), "at most"),
    ],
)
def test_read_text_names_the_path_and_the_rule(tmp_path: Path, content: bytes, rule: str) -> None:
    path = tmp_path / "s.toml"
    path.write_bytes(content)

    with pytest.raises(ConfigError, match=rule) as info:
        read_text(path, field="scenario")

    assert info.value.field == "scenario"
    assert info.value.value == str(path)


@pytest.mark.timeout(30)
def test_read_text_refuses_a_fifo_without_opening_it(tmp_path: Path) -> None:
    path = tmp_path / "pipe"
    os.mkfifo(path)

    with pytest.raises(ConfigError, match="not a FIFO"):
        read_text(path, field="scenario")


@pytest.mark.parametrize("name", ["", ".", "sub/"])
def test_check_output_file_wants_a_file_name(tmp_path: Path, name: str) -> None:
    with pytest.raises(ConfigError, match="--html"):
        check_output_file(
            str(tmp_path / name) + ("/" if name.endswith("/") else ""), field="--html"
        )
