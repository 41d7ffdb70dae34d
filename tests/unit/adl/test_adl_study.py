"""``deleverage adl-study`` and the study from Python: schema checks, outputs, the report."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from deleverage.analytics.adl_study import (
    adl_study,
    example_rounds,
    load_rounds,
    run_study,
    validate_rounds,
)
from deleverage.analytics.hyperliquid_fills import (
    adl_rounds_from_fills,
    adl_totals_by_coin,
    read_fills,
)
from deleverage.cli.app import app
from deleverage.errors import DataError

DATA = Path(__file__).parents[2] / "data" / "hyperliquid_adl_2025-10-10"


def test_python_study_returns_one_row_per_round_and_policy() -> None:
    frame = adl_study(example_rounds(n_rounds=6, n_counterparties=10), ["bitmex", "min_max"])
    assert isinstance(frame, pd.DataFrame)
    assert len(frame) == 12
    assert set(frame["policy"]) == {"bitmex", "min_max"}
    assert {"deficit", "haircut", "overshoot", "uncovered", "gini", "jain"} <= set(frame.columns)


def test_cli_runs_the_readme_example(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = CliRunner().invoke(
        app, ["adl-study", "--example", str(tmp_path / "rounds.csv"), "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    totals = pd.read_csv(out / "adl_study.csv")
    assert len(totals) == 12
    page = (out / "adl_study.html").read_text(encoding="utf-8")
    assert page.count("plotly.js v") <= 2
    assert page.count("<script") >= 3
    assert "Haircut vs deficit per wave" in page


def test_bad_rounds_exit_2_naming_the_field(tmp_path: Path) -> None:
    frame = example_rounds(n_rounds=2, n_counterparties=3)
    frame.loc[0, "deficit"] = -5.0
    path = tmp_path / "bad.csv"
    frame.to_csv(path, index=False)
    with pytest.raises(DataError, match=r"rows\[0\]\.deficit"):
        load_rounds(path)
    run = subprocess.run(
        [sys.executable, "-m", "deleverage", "adl-study", str(path), "--out", str(tmp_path)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert run.returncode == 2
    assert "deficit" in run.stdout + run.stderr


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"role": "winner"}, "role"),
        ({"mark_price": 0.0}, "mark_price"),
        ({"round": 1.5}, "round"),
    ],
)
def test_schema_errors(change: dict[str, object], field: str) -> None:
    frame = example_rounds(n_rounds=1, n_counterparties=2)
    for k, v in change.items():
        frame[k] = frame[k].astype(object)
        frame.loc[1, k] = v
    with pytest.raises(DataError, match=field):
        validate_rounds(frame)
    with pytest.raises(DataError, match="columns"):
        validate_rounds(frame.drop(columns=["equity"]))


# ---------------------------------------------------------------------------- Hyperliquid
def _fill(user: str, coin: str, px: float, sz: float, side: str, start: float, pnl: float,
          liquidated: str, t: int = 1_760_130_964_000, mark: float = 100.0) -> str:  # fmt: skip
    fill = {"coin": coin, "px": str(px), "sz": str(sz), "side": side, "time": t,
            "startPosition": str(start), "dir": "Auto-Deleveraging", "closedPnl": str(pnl),
            "hash": "0x0", "oid": 1, "crossed": False, "fee": "0.0", "tid": 1,
            "liquidation": {"liquidatedUser": liquidated, "markPx": str(mark),
                            "method": "market"}}  # fmt: skip
    return json.dumps([user, fill])


def test_hyperliquid_fills_become_rounds(tmp_path: Path) -> None:
    # A bankrupt long 0xbad is deleveraged against two shorts at 100: 0xa closes 2 of its
    # -5 with closedPnl 2 x (120 - 100) = 40 (entry 120); 0xb closes 1 of -1 with PnL 5
    # (entry 105). An ordinary fill is ignored.
    plain = json.loads(_fill("0xc", "BTC", 1.0, 1.0, "B", 0.0, 0.0, "0xbad"))
    plain[1]["dir"] = "Open Long"
    del plain[1]["liquidation"]
    lines = [
        _fill("0xa", "ETH", 100.0, 2.0, "B", -5.0, 40.0, "0xbad"),
        _fill("0xb", "ETH", 100.0, 1.0, "B", -1.0, 5.0, "0xbad"),
        json.dumps(plain),
    ]
    path = tmp_path / "node_fills"
    path.write_text("\n".join(lines) + "\n")
    fills = read_fills(path)
    equity = {"0xa": 200.0, "0xb": 50.0}
    rounds = adl_rounds_from_fills(fills, deficits={"0xbad": 30.0}, equity=equity)
    bk = rounds[rounds["role"] == "bankrupt"].iloc[0]
    assert bk["size"] == 3.0
    assert bk["deficit"] == 30.0
    assert bk["bankruptcy_price"] == 110.0
    cps = rounds[rounds["role"] == "counterparty"].set_index("address")
    assert cps.loc["0xa", "entry_price"] == pytest.approx(120.0)
    assert cps.loc["0xb", "entry_price"] == pytest.approx(105.0)
    study = run_study(rounds, ["hyperliquid", "profit_pro_rata"]).totals.set_index("policy")
    # Profit at the mark: 0xa 5 x 20 = 100, 0xb 5: the queue closes 3 units, profit pro rata
    # takes exactly the deficit.
    assert study.loc["profit_pro_rata", "haircut"] == pytest.approx(30.0)
    assert study.loc["hyperliquid", "haircut"] > 30.0
    totals = adl_totals_by_coin(fills).set_index("coin")
    assert totals.loc["ETH", "adl_notional"] == 300.0
    assert totals.loc["ETH", "closed_pnl"] == 45.0
    assert totals.loc["ETH", "num_events"] == 2
    assert totals.loc["ETH", "num_users"] == 2


def test_block_layout_and_bad_lines(tmp_path: Path) -> None:
    block = {"block_time": "x", "events": [json.loads(_fill("0xa", "SOL", 10.0, 1.0, "A", 2.0,
                                                            1.0, "0xbad"))]}  # fmt: skip
    assert len(read_fills([json.dumps(block)])) == 1
    with pytest.raises(DataError, match="line 1"):
        read_fills(["{not json"])


def test_bundled_aggregates_agree_with_each_other() -> None:
    # The per-coin table (the layout adl_totals_by_coin writes) sums to the reconstruction's
    # and HyperFireworks' totals: $2.103 B over 34,983 ADL fills.
    by_coin = pd.read_csv(DATA / "adl_by_coin_REALTIME.csv")
    summary = json.loads((DATA / "realtime_analysis_summary.json").read_text())
    fireworks = json.loads((DATA / "cascade_summary_hyperfireworks.json").read_text())
    assert {"adl_notional", "closed_pnl", "num_users", "num_events"} <= set(by_coin.columns)
    assert by_coin["num_events"].sum() == fireworks["adls"] == 34_983
    total = float(by_coin["adl_notional"].sum())
    assert total == pytest.approx(summary["key_findings"]["total_adl_notional"], rel=1e-9)
    assert total == pytest.approx(fireworks["total_adl_amount"], rel=1e-9)
    assert np.all(by_coin["num_users"] <= by_coin["num_events"])
