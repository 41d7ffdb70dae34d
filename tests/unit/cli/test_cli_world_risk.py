"""``deleverage run`` on a world with risk layers: the same shocks without them are run too,
saved and compared in the JSON summary and the report."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from deleverage.cli.app import app
from scenarios import SMALL_WORLD

runner = CliRunner()

RISK = """
[clearinghouse]
member_funds = { cex = 5000.0, dex = 2000.0 }
skin_in_game = 1000.0
stress = [{ name = "crash", shocks = { BTC = -0.2 } }]

[[backstops]]
chain = "arbitrum"
capacity = 2e5
latency_s = 5.0
"""


def test_a_world_with_risk_layers_is_compared_with_the_same_shocks_without_them(
    tmp_path: Path,
) -> None:
    # Arrange: clearing members pledge their funds (none inside the engines).
    text = SMALL_WORLD.replace("insurance_fund = 5000.0", "insurance_fund = 0.0")
    text = text.replace('preset = "hyperliquid"', 'preset = "hyperliquid"\ninsurance_fund = 0.0')
    source = tmp_path / "risk.toml"
    source.write_text(text + RISK)
    out = tmp_path / "out"
    # Act
    result = runner.invoke(app, ["run", str(source), "--out", str(out), "--json"])
    # Assert
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    bare = payload["without_layers_summary"]
    assert bare is not None
    assert bare["absorbed"] == 0.0
    assert (out / "without_layers" / "summary.json").is_file()
    page = (out / "report.html").read_text()
    assert "without risk layers: bad_debt" in page
    assert "Risk layer: clearinghouse" in page
    assert "Risk layer: backstop" in page
