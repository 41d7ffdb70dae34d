"""The command line with world scenarios: run, validate, heatmap and scenarios dispatch on
``kind = "world"``; bad files exit 2 naming the field."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from cli_contract import assert_contract, call
from deleverage.cli.app import app
from scenarios import SMALL_WORLD

runner = CliRunner()


def test_run_a_world_writes_its_folder_and_prints_json(tmp_path: Path) -> None:
    # Arrange
    source = tmp_path / "small.toml"
    source.write_text(SMALL_WORLD)
    out = tmp_path / "out"
    # Act
    result = runner.invoke(app, ["run", str(source), "--out", str(out), "--json"])
    # Assert
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    assert payload["kind"] == "world"
    assert payload["summary"]["liquidations"] > 0
    assert payload["baseline_summary"]["cross_venue_liquidations"] == 0.0
    names = ("assets", "venues", "contagion", "levels", "heatmaps", "criticality")
    for name in (*(f"{n}.parquet" for n in names), "report.html", "summary.json"):
        assert (out / name).is_file(), name
    crit = pd.read_parquet(out / "criticality.parquet")
    assert set(crit["venue"]) == {"cex", "dex", "world"}
    assert "world report" in (out / "report.html").read_text()


def test_validate_a_world_file(tmp_path: Path) -> None:
    # Arrange: one good file, one with a bad field, one with a bad venue config
    good = tmp_path / "good.toml"
    good.write_text(SMALL_WORLD)
    bad_field = tmp_path / "bad_field.toml"
    bad_field.write_text(SMALL_WORLD.replace("interval_s = 10.0", "interval_s = -1.0"))
    bad_venue = tmp_path / "bad_venue.toml"
    bad_venue.write_text(SMALL_WORLD.replace('preset = "binance"', 'preset = "nowhere"'))
    # Act
    ok = call("validate", str(good))
    field = call("validate", str(bad_field))
    venue = call("validate", str(bad_venue))
    # Assert
    assert ok.code == 0
    assert ok.out.strip() == "ok"
    for outcome, name in ((field, "wallets.interval_s"), (venue, "venues.0.config")):
        assert outcome.code == 2
        assert_contract(outcome)
        assert name in outcome.out


def test_a_world_cannot_run_with_seeds(tmp_path: Path) -> None:
    source = tmp_path / "small.toml"
    source.write_text(SMALL_WORLD)
    outcome = call("run", str(source), "--seeds", "3", "--out", str(tmp_path / "o"))
    assert outcome.code == 2
    assert_contract(outcome, names=("--seeds",))


def test_heatmap_of_a_world_lists_every_venue_and_the_world(tmp_path: Path) -> None:
    source = tmp_path / "small.toml"
    source.write_text(SMALL_WORLD)
    result = runner.invoke(app, ["heatmap", "--scenario", str(source), "--json", "--bucket", "500"])
    assert result.exit_code == 0, result.output
    heat = json.loads(result.output)["heatmaps"]["BTC"]
    assert set(heat) == {"cex", "dex", "world"}
    world_long = heat["world"]["long"]
    assert world_long == pytest.approx(sum(heat[v]["long"] for v in ("cex", "dex")), rel=1e-12)


def test_scenarios_lists_the_builtin_world() -> None:
    result = runner.invoke(app, ["scenarios", "--json"])
    assert result.exit_code == 0
    assert "world-2025-10-10" in {row["name"] for row in json.loads(result.output)}
