"""The service as one venue of a world: the other venues' levels from a world run, heatmaps
side by side and summed, criticality, and the world_criticality alert (real server)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

SPEC = {
    "symbol": "BTCUSDT",
    "tiers": [{"notional_floor": 0, "max_leverage": 10, "maintenance_rate": 0.05}],
}


def _levels(path: Path) -> Path:
    # Ten longs of 2 BTC on venue "dex", one a dollar apart from 99.5 down: with 2 BTC of
    # shared depth per dollar (depth_per_pct 2 at a price of 100) the branching ratio is 1.
    frame = pd.DataFrame(
        {
            "venue": "dex",
            "asset": "BTCUSDT",
            "account": np.arange(10),
            "size": 2.0,
            "notional": 200.0,
            "liquidation_price": 99.5 - np.arange(10.0),
        }
    )
    out = path / "levels.parquet"
    frame.to_parquet(out, index=False)
    return out


@pytest.mark.timeout(120)
def test_world_heatmap_criticality_and_alert(make_server: Any, tmp_path: Path) -> None:
    # Arrange
    levels = _levels(tmp_path)
    server = make_server(
        "--world-levels", str(levels), "--world-venue", "cex", "--world-depth", "BTCUSDT=2",
        "--world-alert-ratio", "0.5",
    )  # fmt: skip
    with server.client() as admin:
        assert admin.post("/v1/markets", json={"spec": SPEC}).status_code == 201
        start = admin.get("/v1/info").json()["last_notification_seq"]
        assert admin.post("/v1/marks", json={"market": "BTCUSDT", "price": 100.0}).is_success
        oracle = admin.post("/v1/keys", json={"role": "oracle"}).json()["api_key"]
        notes = admin.get("/v1/notifications", params={"since": start}).json()
    # Act: read with a key that is not an admin's
    with server.client(oracle) as reader:
        heat = reader.get("/v1/world/heatmap", params={"asset": "BTCUSDT", "bucket_width": 5})
        crit = reader.get("/v1/world/criticality", params={"asset": "BTCUSDT", "shock": 0.02})
        bad = reader.get("/v1/world/criticality", params={"asset": "ETHUSDT"})
    # Assert
    assert heat.status_code == 200, heat.text
    venues = heat.json()["venues"]
    assert set(venues) == {"dex", "world"}  # the service's venue holds no positions yet
    assert sum(b["notional"] for b in venues["world"]) == pytest.approx(
        sum(99.5 - k for k in range(10)) * 2.0
    )
    rows = {(r["venue"], r["direction"]): r for r in crit.json()}
    # k = 1: a 2% shock (2 dollars) runs through every level: 2 + 20 / 2 = 12 dollars
    assert rows[("world", "down")]["total_move"] == pytest.approx(0.12)
    assert rows[("world", "down")]["critical_shock"] == pytest.approx(0.005)
    assert bad.status_code in (400, 422)
    alerts = [n for n in notes if n["kind"] == "world_criticality"]
    assert len(alerts) == 1
    assert alerts[0]["data"]["active"] is True
    assert alerts[0]["data"]["branching_ratio"] >= 0.5
