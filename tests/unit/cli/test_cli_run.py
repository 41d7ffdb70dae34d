"""Tests of ``deleverage run``, ``scenarios``, ``validate`` and the heatmap's venues/scenario.

Numbers come from outside the code under test: the saved Parquet frames (amplification = ratio
of the marks' drawdowns, recomputed here with numpy), the built-in scenario files, the runner's
own populations, and liquidation prices worked by hand with the venues' published first-tier
maintenance rates (Binance BTCUSDT 0.4 %, Hyperliquid BTC 1.25 % = half the initial margin at
40x): ``LP = (M - side |q| EP) / (|q| mmr - side |q|)``, ``M`` the isolated margin.
"""

from __future__ import annotations

import json
import sys
import tomllib
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from deleverage.cli.app import app, main
from deleverage.sim.builtin import DEFAULT_SCENARIO, builtin_descriptions, builtin_path
from deleverage.sim.runner import run
from deleverage.sim.scenario import Scenario
from scenarios import SMALL_CRASH

runner = CliRunner()

SMALL = SMALL_CRASH


@pytest.fixture(scope="module")
def scenario_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("scenario") / "small.toml"
    path.write_text(SMALL)
    return path


@pytest.fixture(scope="module")
def json_run(scenario_file: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("run") / "out"
    result = runner.invoke(app, ["run", str(scenario_file), "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    payload: dict[str, Any] = json.loads(result.stdout)
    return payload


def _run_main(
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


def _max_drop(marks: np.ndarray) -> float:
    return float(np.max(1.0 - marks / np.maximum.accumulate(marks)))


# --------------------------------------------------------------------------------------------
# deleverage run
# --------------------------------------------------------------------------------------------


def test_run_json_writes_results_baseline_metrics_and_report(json_run: dict[str, Any]) -> None:
    out = Path(json_run["out"])

    for name in ("steps.parquet", "journal.parquet", "scenario.json", "summary.json",
                 "metrics.json", "losses.parquet", "report.html"):  # fmt: skip
        assert (out / name).is_file(), name
    for name in ("steps.parquet", "journal.parquet", "summary.json"):
        assert (out / "baseline" / name).is_file(), name
    assert json_run["scenario"] == "small-crash"
    assert json.loads((out / "metrics.json").read_text()) == json_run["metrics"]
    saved = json.loads((out / "summary.json").read_text())
    assert saved["result_hash"] == json_run["result_hash"]
    assert saved["liquidations"] == json_run["summary"]["liquidations"]
    assert "small-crash" in (out / "report.html").read_text(encoding="utf-8")


def test_run_amplification_is_the_ratio_of_the_saved_marks_drawdowns(
    json_run: dict[str, Any],
) -> None:
    # Arrange: recompute from the Parquet files, independently of the metrics code.
    out = Path(json_run["out"])
    marks = pd.read_parquet(out / "steps.parquet")["mark"].to_numpy()
    base = pd.read_parquet(out / "baseline" / "steps.parquet")
    metrics = json_run["metrics"]

    # Assert
    assert base["mark"].tolist() == base["exogenous"].tolist()  # no feedback: mark = exogenous
    assert metrics["max_drawdown_no_feedback"] == pytest.approx(0.2, rel=1e-12)  # the 20% ramp
    assert metrics["cascade_amplification"] == pytest.approx(
        _max_drop(marks) / _max_drop(base["mark"].to_numpy()), rel=1e-12
    )
    assert metrics["cascade_amplification"] > 1.0  # a thin book deepens the fall
    liquidated = pd.read_parquet(out / "steps.parquet")["liquidated_notional"].sum()
    assert metrics["liquidation_amplification"] == pytest.approx(
        liquidated / base["liquidated_notional"].sum(), rel=1e-12
    )
    assert json_run["baseline_summary"]["cascade_rounds"] == 0.0


def test_run_table_without_baseline_into_the_default_results_folder(
    scenario_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)

    result = runner.invoke(app, ["run", str(scenario_file), "--no-baseline"])

    assert result.exit_code == 0, result.output
    folder = tmp_path / "results" / "small-crash"
    assert (folder / "report.html").is_file()
    assert not (folder / "baseline").exists()
    assert "small-crash: stress metrics" in result.output
    assert "cascade amplification (drawdown)" in result.output
    assert "report.html" in result.output


def test_run_same_scenario_gives_the_same_hash(
    json_run: dict[str, Any], scenario_file: Path
) -> None:
    assert run(Scenario.from_toml(scenario_file)).result_hash == json_run["result_hash"]


def _bad(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize(
    ("make", "fragments"),
    [
        (lambda d: str(d / "absent.toml"), ["absent.toml"]),
        (lambda d: _bad(d, "broken.toml", "name = [unclosed"), ["toml"]),
        (lambda d: _bad(d, "neg.toml", SMALL.replace("size_min = 0.01", "size_min = -0.5")),
         ["size_min", "-0.5"]),
        (lambda d: _bad(d, "zero.toml", SMALL.replace("duration_s = 300", "duration_s = 0")),
         ["duration_s", "greater than 0"]),
        (lambda d: "no-such-scenario", ["no-such-scenario", DEFAULT_SCENARIO]),
    ],
)  # fmt: skip
def test_run_bad_input_exits_2_naming_field_and_value(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    make: Any,
    fragments: list[str],
) -> None:
    code, output = _run_main(monkeypatch, capsys, "run", make(tmp_path), "--out", str(tmp_path))

    assert code == 2
    assert output.startswith("error:")
    for fragment in fragments:
        assert fragment in output.replace(" ", "") or fragment in output


def test_run_out_pointing_at_a_file_exits_2(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    scenario_file: Path,
) -> None:
    target = tmp_path / "file.txt"
    target.write_text("x")

    code, output = _run_main(monkeypatch, capsys, "run", str(scenario_file), "--out", str(target))

    assert code == 2
    assert "`--out`" in output


@pytest.mark.parametrize("command", ["run", "scenarios", "validate", "heatmap"])
def test_every_command_has_help_with_examples(command: str) -> None:
    result = runner.invoke(app, [command, "--help"])

    assert result.exit_code == 0
    assert "Example" in result.output


# --------------------------------------------------------------------------------------------
# deleverage scenarios / validate
# --------------------------------------------------------------------------------------------


def test_scenarios_json_lists_every_builtin_file_with_its_description() -> None:
    result = runner.invoke(app, ["scenarios", "--json"])

    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    folder = builtin_path(DEFAULT_SCENARIO).parent
    files = {p.stem: tomllib.loads(p.read_text())["description"] for p in folder.glob("*.toml")}
    assert builtin_descriptions() == files
    worlds = folder.parent / "worlds"  # the built-in multi-venue worlds are listed too
    files |= {p.stem: tomllib.loads(p.read_text())["description"] for p in worlds.glob("*.toml")}
    assert {row["name"]: row["description"] for row in rows} == files


def test_scenarios_table_marks_the_default() -> None:
    result = runner.invoke(app, ["scenarios"])

    assert result.exit_code == 0
    assert f"{DEFAULT_SCENARIO} (default)" in result.output


@pytest.mark.parametrize("name", [DEFAULT_SCENARIO, "adl-exhaustion"])
def test_validate_a_good_scenario_prints_ok(name: str) -> None:
    result = runner.invoke(app, ["validate", name])

    assert result.exit_code == 0, result.output
    assert result.output.strip() == "ok"


def test_validate_a_file_with_problems_lists_them_and_exits_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = _bad(tmp_path, "bad.toml", SMALL.replace("duration_s = 300", "duration_s = 0"))

    code, output = _run_main(monkeypatch, capsys, "validate", path)

    assert code == 2
    assert "problem(s)" in output
    assert "duration_s" in output


@pytest.mark.parametrize("text", ["name = [unclosed", 'name = "x"\nunknown_key = 1\n'])
def test_validate_malformed_or_unknown_keys_exits_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path, text: str
) -> None:
    code, output = _run_main(monkeypatch, capsys, "validate", _bad(tmp_path, "x.toml", text))

    assert code == 2
    assert "problem(s)" in output


def test_validate_unknown_name_exits_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, output = _run_main(monkeypatch, capsys, "validate", "nowhere")

    assert code == 2
    assert "'nowhere'" in output


# --------------------------------------------------------------------------------------------
# deleverage heatmap: several venues, a scenario's population
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def two_positions(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Long and short 0.1 BTC at 60,000, 20x: margin 300 + Binance's 0.05 % opening fee (3).
    frame = pd.DataFrame(
        {
            "account": [0, 1],
            "size": [0.1, -0.1],
            "entry_price": [60_000.0, 60_000.0],
            "leverage": [20.0, 20.0],
            "margin_mode": ["isolated", "isolated"],
            "collateral": [303.0, 303.0],
        }
    )
    path = tmp_path_factory.mktemp("venues") / "two.parquet"
    frame.to_parquet(path, index=False)
    return path


def test_heatmap_several_venues_recomputes_levels_with_each_venues_tiers_by_hand(
    two_positions: Path,
) -> None:
    # Arrange: margin held = 303 - 6,000 x taker fee (Binance 0.05 %: 300; Hyperliquid
    # 0.045 %: 300.3).
    expected = {
        "binance": {"long": (300.0 - 6_000.0) / (0.1 * 0.004 - 0.1),  # 57,228.92
                    "short": (300.0 + 6_000.0) / (0.1 * 0.004 + 0.1)},  # 62,749.00
        "hyperliquid": {"long": (300.3 - 6_000.0) / (0.1 * 0.0125 - 0.1),  # 57,718.48
                        "short": (300.3 + 6_000.0) / (0.1 * 0.0125 + 0.1)},  # 62,225.19
    }  # fmt: skip
    args = ["heatmap", str(two_positions), "--venue", "binance", "--venue", "hyperliquid"]

    # Act
    result = runner.invoke(app, [*args, "--bucket", "1", "--mark", "60000", "--json"])

    # Assert
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert [v["venue"] for v in out["venues"]] == ["binance", "hyperliquid"]
    assert [v["symbol"] for v in out["venues"]] == ["BTCUSDT", "BTC"]
    for venue in out["venues"]:
        for row in venue["buckets"]:
            level = expected[venue["venue"]][row["side"]]
            assert row["bucket_low"] == np.floor(level)
            assert row["notional"] == pytest.approx(0.1 * level, rel=1e-12)


def test_heatmap_several_venues_table_and_one_figure_with_a_subplot_each(
    two_positions: Path, tmp_path: Path
) -> None:
    html = tmp_path / "venues.html"
    venues = ["--venue", "binance", "--venue", "bybit", "--venue", "hyperliquid"]

    result = runner.invoke(app, ["heatmap", str(two_positions), *venues, "--html", str(html)])

    assert result.exit_code == 0, result.output
    for venue in ("binance", "bybit", "hyperliquid"):
        assert f"{venue} (" in result.output
        assert f"long liquidations, {venue}" in html.read_text(encoding="utf-8")
    assert html.read_text(encoding="utf-8").count('"xaxis3"') >= 1  # three subplots


def test_heatmap_of_a_scenario_maps_the_population_the_runner_draws(scenario_file: Path) -> None:
    # Arrange: the runner's own population of the scenario (same seed).
    population = run(Scenario.from_toml(scenario_file)).populations["BTCUSDT"].frame
    iso = population[population["margin_mode"] == "isolated"]
    expected = float((iso["size"].abs() * iso["liquidation_price"]).sum())

    # Act
    result = runner.invoke(app, ["heatmap", "--scenario", str(scenario_file), "--json"])

    # Assert
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert out["positions"] == 600
    assert out["mark_price"] == 60_000.0  # the scenario's first price
    assert out["venue"] == "binance"
    assert sum(row["notional"] for row in out["buckets"]) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        ([], "`population`"),
        (["POP", "--scenario", "gbm-stress"], "`population`"),
        (["--scenario", "no-such"], "no-such"),
        (["--scenario", "correlated-shock", "--market", "XRP"], "`--market`"),
        (["POP", "--venue", "bybit", "--venue", "bybit"], "`--venue`"),
    ],
)
def test_heatmap_bad_source_exits_2(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    two_positions: Path,
    args: list[str],
    fragment: str,
) -> None:
    args = [str(two_positions) if a == "POP" else a for a in args]

    code, output = _run_main(monkeypatch, capsys, "heatmap", *args)

    assert code == 2
    assert fragment in output


def test_heatmap_of_a_scenario_on_its_own_venue_recomputes_the_runners_levels(
    scenario_file: Path,
) -> None:
    # Arrange: the scenario's market is the Binance preset, so recomputing the levels with
    # Binance's tiers must give back the levels the runner's population carries.
    population = run(Scenario.from_toml(scenario_file)).populations["BTCUSDT"].frame
    iso = population[population["margin_mode"] == "isolated"]
    args = ["heatmap", "--scenario", str(scenario_file), "--venue", "binance", "--venue", "okx"]

    # Act
    result = runner.invoke(app, [*args, "--json"])

    # Assert
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    binance, okx = out["venues"]
    expected = float((iso["size"].abs() * iso["liquidation_price"]).sum())
    assert sum(r["notional"] for r in binance["buckets"]) == pytest.approx(expected, rel=1e-12)
    assert okx["symbol"] == "BTC-USDT-SWAP"
    assert okx["mapped"] == len(iso)
