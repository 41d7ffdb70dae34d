"""``deleverage serve`` rejects bad options with exit code 2 and the option named."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["--margin-level", "1.5"], "--margin-level"),
        (["--rate-limit", "0"], "--rate-limit"),
        (["--admin-key", "short"], "--admin-key"),
    ],
)
def test_serve_rejects_bad_options_naming_them(args: list[str], option: str) -> None:
    # Act
    result = subprocess.run(
        [sys.executable, "-c", "from deleverage.cli.app import main; main()", "serve", *args],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    # Assert
    assert result.returncode == 2, result.stdout + result.stderr
    assert option in result.stdout + result.stderr
