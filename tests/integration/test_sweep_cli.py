"""``deleverage sweep`` and ``deleverage sweep-report``: runs, the HTML page, bad input exits 2,
and a sweep killed midway that resumes to the clean result."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from deleverage.cli.app import app, main
from deleverage.sweep import read_results
from deleverage.sweep.results import TIMING_COLUMNS

EXPERIMENT = """
name = "cli-tiny"
seed = 9
base = "adl-exhaustion"
seeds_per_cell = {seeds}
metrics = ["bad_debt", "adl_rounds", "liquidations"]

[overrides]
"markets.0.population.n_positions" = 300
"markets.0.population.isolated_fraction" = 1.0
duration_s = 240
"markets.0.price.start_s" = 20.0
"markets.0.price.duration_s" = 120.0

[parameters]
drop = {{ path = "markets.0.price.drop_fraction", values = [0.1, 0.3] }}
fund = {{ path = "insurance.fund", low = 10.0, high = 10000.0, num = {num}, scale = "log" }}
ranking = {{ path = "markets.0.spec_overrides.adl.ranking", values = ["pnl_leverage", "pro_rata"] }}
"""


def _write(tmp_path: Path, *, seeds: int = 2, num: int = 2, extra: str = "") -> Path:
    path = tmp_path / "exp.toml"
    path.write_text(EXPERIMENT.format(seeds=seeds, num=num) + extra)
    return path


def test_sweep_then_report_writes_rows_and_one_self_contained_page(tmp_path: Path) -> None:
    # Arrange
    experiment = _write(tmp_path)
    out = tmp_path / "results"

    # Act
    ran = CliRunner().invoke(app, ["sweep", str(experiment), "--workers", "0", "--out", str(out)])
    reported = CliRunner().invoke(app, ["sweep-report", str(out)])

    # Assert
    assert ran.exit_code == 0, ran.output
    assert "16 runs done" in ran.output
    assert reported.exit_code == 0, reported.output
    frame = read_results(out)
    assert len(frame) == 16
    page = (out / "report.html").read_text()
    assert page.count("* plotly.js v") == 1  # the library inlined once
    assert "<script src=" not in page  # nothing fetched from a CDN
    for title in ("Bad debt vs volatility, per policy", "ADL frequency vs insurance fund",
                  "Mean bad debt over drop and fund"):  # fmt: skip
        assert title in page
    assert "ranking = pro_rata" in page


def _exit_code(monkeypatch: pytest.MonkeyPatch, *args: str) -> int:
    monkeypatch.setattr(sys, "argv", ["deleverage", *args])
    with pytest.raises(SystemExit) as info:
        main()
    return int(info.value.code or 0)


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        ('typo = { path = "markets.0.liquidity.dept_per_pct", values = [1.0] }\n',
         "parameters.typo.path"),
        ('empty = { path = "insurance.fund", values = [] }\n', "values"),
        ('bad = { path = "insurance.fund", low = "ten", high = 20.0, num = 2 }\n', "low"),
    ],
)  # fmt: skip
def test_bad_experiment_exits_2_before_any_run(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    extra: str,
    words: str,
) -> None:
    experiment = _write(tmp_path, extra=extra)
    out = tmp_path / "results"

    code = _exit_code(monkeypatch, "sweep", str(experiment), "--workers", "0", "--out", str(out))

    assert code == 2
    assert words in capsys.readouterr().err.replace("\n", "")
    assert not out.exists()


def test_unreachable_ray_address_exits_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("ray")
    experiment = _write(tmp_path)

    code = _exit_code(
        monkeypatch, "sweep", str(experiment), "--backend", "ray", "--address", "127.0.0.1:1",
        "--out", str(tmp_path / "results"),
    )  # fmt: skip

    assert code == 2
    assert "reachable Ray cluster" in capsys.readouterr().err.replace("\n", "")


def test_report_of_a_folder_that_is_not_a_sweep_exits_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert _exit_code(monkeypatch, "sweep-report", str(tmp_path)) == 2


def _rows_on_disk(folder: Path) -> int:
    parts = sorted(folder.glob("part-*.parquet"))
    return sum(pq.read_metadata(p).num_rows for p in parts)


@pytest.mark.slow
def test_sweep_killed_midway_resumes_to_the_clean_result(tmp_path: Path) -> None:
    # Arrange: 12 cells x 6 seeds = 72 runs, written every 32 rows (or 5 s)
    experiment = _write(tmp_path, seeds=6, num=3)
    clean, killed = tmp_path / "clean", tmp_path / "killed"
    command = [sys.executable, "-c", "from deleverage.cli.app import main; main()", "sweep",
               str(experiment), "--workers", "0"]  # fmt: skip
    subprocess.run([*command, "--out", str(clean)], check=True, capture_output=True)

    # Act: start the same sweep, kill it (SIGKILL, no clean-up) once rows are on disk
    proc = subprocess.Popen([*command, "--out", str(killed)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.monotonic() + 120
    while _rows_on_disk(killed) == 0 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    before = _rows_on_disk(killed)
    resumed = subprocess.run([*command, "--out", str(killed)], check=True, capture_output=True,
                             text=True)  # fmt: skip

    # Assert
    assert 0 < before < 72
    assert f"{72 - before} runs done, {before} already in" in resumed.stdout.replace("\n", " ")
    got = read_results(killed).drop(columns=list(TIMING_COLUMNS))
    want = read_results(clean).drop(columns=list(TIMING_COLUMNS))
    pd.testing.assert_frame_equal(got, want)
    assert _rows_on_disk(killed) == 72  # no duplicate rows either
