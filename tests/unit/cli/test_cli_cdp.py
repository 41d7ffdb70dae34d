"""``deleverage run`` / ``validate`` / ``scenarios`` on CDP scenarios (``kind = "cdp"``).

The run's numbers are checked against its own saved files (the summary against the Parquet
sales and steps), the validation against the rules of the scenario model.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from deleverage.cli.app import app, main
from deleverage.sim.builtin import builtin_path

runner = CliRunner()


def _small(tmp_path: Path, **replace: str) -> Path:
    text = builtin_path("black-thursday").read_text()
    text = text.replace("n_vaults = 3000", "n_vaults = 120").replace(
        "step_s = 30.0", "step_s = 600.0"
    )
    for old, new in replace.items():
        text = text.replace(old, new)
    path = tmp_path / "cdp.toml"
    path.write_text(text)
    return path


def _main(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str
) -> tuple[int, str]:
    monkeypatch.setattr(sys, "argv", ["deleverage", *args])
    code: object = 0
    try:
        main()
    except SystemExit as exc:
        code = exc.code
    captured = capsys.readouterr()
    return int(code) if isinstance(code, int) else 1, " ".join(
        (captured.out + captured.err).split()
    )


def test_run_a_cdp_scenario_writes_both_designs_and_the_report(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = runner.invoke(app, ["run", str(_small(tmp_path)), "--out", str(out), "--json"])

    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    assert payload["kind"] == "cdp"
    assert set(payload["designs"]) == {"english", "dutch"}
    for name in ("steps.parquet", "sales.parquet", "summary.json", "report.html",
                 "journal-english.parquet", "journal-dutch.parquet", "scenario.json"):  # fmt: skip
        assert (out / name).is_file(), name
    sales = pd.read_parquet(out / "sales.parquet")
    steps = pd.read_parquet(out / "steps.parquet")
    for design, summary in payload["designs"].items():
        mine = sales[sales["design"] == design]
        assert summary["sales"] == len(mine)
        assert summary["dai_raised"] == pytest.approx(mine["dai"].sum())
        last = steps[steps["design"] == design].iloc[-1]
        assert summary["bad_debt"] == pytest.approx(last["bad_debt"])
    page = (out / "report.html").read_text()
    assert page.count("plotly.js v") <= 2  # inlined once
    assert "Outcome, side by side" in page


def test_run_a_cdp_scenario_prints_the_table(tmp_path: Path) -> None:
    result = runner.invoke(app, ["run", str(_small(tmp_path)), "--out", str(tmp_path / "o")])
    assert result.exit_code == 0, result.output
    assert "near-zero sales" in result.output


def test_seeds_are_refused_for_a_cdp_scenario(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, output = _main(monkeypatch, capsys, "run", str(_small(tmp_path)), "--seeds", "2")
    assert code == 2
    assert "--seeds" in output


def test_validate_black_thursday_prints_ok() -> None:
    result = runner.invoke(app, ["validate", "black-thursday"])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "ok"


def test_validate_a_bad_cdp_scenario_lists_every_problem(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = _small(tmp_path, **{"mat = 1.5": "mat = 0.5", "cusp = 0.4": "cusp = 1.5"})
    code, output = _main(monkeypatch, capsys, "validate", str(path))
    assert code == 2
    assert "2 problem(s)" in output
    assert "maker.mat" in output
    assert "maker.clipper.cusp" in output


def test_validate_a_cdp_scenario_with_a_missing_price_file(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = _small(tmp_path, **{'bundled = "ethusdt-1h-2020-03-11"': 'file = "nowhere.csv"'})
    code, output = _main(monkeypatch, capsys, "validate", str(path))
    assert code == 2
    assert "nowhere.csv" in output


def test_scenarios_lists_black_thursday() -> None:
    result = runner.invoke(app, ["scenarios", "--json"])
    names = {row["name"] for row in json.loads(result.output)}
    assert "black-thursday" in names
