"""Bad paths and URLs on the command line (exit 2, nothing run); presets --json."""

from __future__ import annotations

from pathlib import Path

import pytest

from deleverage.cli.app import main
from deleverage.cli.serve import database_url
from deleverage.errors import ConfigError
from deleverage.venues import preset_info


def _exit_code(monkeypatch: pytest.MonkeyPatch, *args: str) -> int:
    monkeypatch.setattr("sys.argv", ["deleverage", *args])
    with pytest.raises(SystemExit) as info:
        main()
    return int(info.value.code or 0)


def test_run_on_a_folder_exits_2(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _exit_code(monkeypatch, "run", str(tmp_path)) == 2
    assert "must be a TOML file, not a folder" in capsys.readouterr().err


def test_run_into_an_impossible_output_folder_exits_2(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code = _exit_code(monkeypatch, "run", "gbm-stress", "--out", str(blocker / "sub"))
    assert code == 2
    assert "--out" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("url", "rule"),
    [
        ("sqlite:////no/such/folder/risk.db", "existing folder"),
        ("mysql://user@localhost/risk", "driver is installed"),
        ("bogus://", "driver is installed"),
    ],
)
def test_database_urls_are_checked_before_serving(url: str, rule: str) -> None:
    with pytest.raises(ConfigError, match=rule):
        database_url(url)


def test_a_sqlite_path_becomes_a_url(tmp_path: Path) -> None:
    assert database_url(str(tmp_path / "risk.db")) == f"sqlite:///{tmp_path / 'risk.db'}"


def test_presets_json_lists_every_venue_with_its_rules(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    from deleverage.venues import list_presets, preset

    monkeypatch.setattr("sys.argv", ["deleverage", "presets", "--json"])
    main()
    rows = json.loads(capsys.readouterr().out)

    assert [r["venue"] for r in rows] == list(list_presets())
    binance = next(r for r in rows if r["venue"] == "binance")
    spec = preset("binance")
    assert binance["max_leverage"] == spec.max_leverage
    assert binance["tiers"] == len(spec.tiers)
    assert binance["gaps"] == list(preset_info("binance").spec_gaps)


def test_presets_of_one_venue_prints_its_gaps_and_sources(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    info = preset_info("dydx_v4")
    monkeypatch.setattr("sys.argv", ["deleverage", "presets", "dydx_v4"])
    monkeypatch.setenv("COLUMNS", "400")
    main()
    out = capsys.readouterr().out

    assert f"not reproduced yet ({len(info.spec_gaps)})" in out
    for gap in info.spec_gaps:
        assert gap[:60] in out
    assert info.sources[0] in out


def test_presets_of_an_unknown_venue_exits_2_naming_the_known_ones(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("sys.argv", ["deleverage", "presets", "nasdaq"])
    with pytest.raises(SystemExit) as exit_info:
        main()

    assert exit_info.value.code == 2
    assert "dydx_v4" in capsys.readouterr().err
