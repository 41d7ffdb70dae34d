"""``deleverage queue`` on a saved journal, and ``deleverage demo --journal`` that writes one."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from deleverage import Exchange, MarginMode, MarketSpec
from deleverage.cli.app import app, main


def _saved_state(path: Path) -> Exchange:
    # Three shorts of different leverage against one long, the mark down 5%: the shorts are in
    # profit and ranked by PnL% x leverage (BitMEX), the most leveraged first.
    ex = Exchange()
    m = ex.list_market(MarketSpec.simple("BTCUSDT", max_leverage=20.0, maintenance_rate=0.025))
    ex.set_mark(m, 100.0)
    long_ = ex.open_account()
    ex.deposit(long_, 10_000.0)
    for leverage in (20.0, 10.0, 5.0):  # isolated margin 50, 100, 200
        s = ex.open_account(margin_mode=MarginMode.ISOLATED)
        ex.deposit(s, 1_000.0)
        ex.set_leverage(s, m, leverage)
        ex.trade(m, buyer=long_, seller=s, size=10.0, price=100.0)
    ex.set_mark(m, 95.0, ts_ns=10**9)
    ex.journal.write_parquet(path)
    return ex


def test_queue_prints_the_replayed_states_ranking_as_json(tmp_path: Path) -> None:
    ex = _saved_state(tmp_path / "j.parquet")

    result = CliRunner().invoke(
        app, ["queue", str(tmp_path / "j.parquet"), "--market", "BTCUSDT", "--side", "short",
              "--json"],
    )  # fmt: skip

    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    want = ex.adl_queue("BTCUSDT", -1)
    assert [r["account"] for r in rows] == want["account"].tolist()
    assert [r["rank"] for r in rows] == [1, 2, 3]
    assert rows[0]["score"] > rows[1]["score"] > rows[2]["score"]  # most leveraged first
    assert all(1 <= r["indicator"] <= 5 for r in rows)


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--market", "BTCUSDT", "--side", "sideways"], "--side"),
        (["--market", "ETHUSDT"], "unknown market"),
    ],
)
def test_queue_bad_input_exits_2_naming_the_problem(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    args: list[str], needle: str,
) -> None:  # fmt: skip
    _saved_state(tmp_path / "j.parquet")
    monkeypatch.setattr(sys, "argv", ["deleverage", "queue", str(tmp_path / "j.parquet"), *args])

    with pytest.raises(SystemExit) as exit_info:
        main()

    assert exit_info.value.code == 2
    assert needle in capsys.readouterr().err


def test_queue_of_a_missing_journal_exits_2_naming_the_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "none.parquet"
    monkeypatch.setattr(sys, "argv", ["deleverage", "queue", str(missing), "--market", "X"])

    with pytest.raises(SystemExit) as exit_info:
        main()

    assert exit_info.value.code == 2
    assert "none.parquet" in capsys.readouterr().err


@pytest.mark.slow
def test_demo_writes_a_journal_that_replays_to_the_same_state(tmp_path: Path) -> None:
    from deleverage.cli.demo import run_demo
    from deleverage.engine.events import Journal

    result = CliRunner().invoke(app, ["demo", "--journal", str(tmp_path / "demo.parquet")])

    assert result.exit_code == 0, result.output
    replayed = Exchange.replay(Journal.read_parquet(tmp_path / "demo.parquet"))
    assert replayed.state_hash() == run_demo().exchange.state_hash()
