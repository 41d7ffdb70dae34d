"""The service on PostgreSQL: the same state after a restart (optional).

Skipped, with the reason, when no ``postgres``/``initdb`` binary or no PostgreSQL driver
(``psycopg``) is installed, or when running as root (``initdb`` refuses to).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _service_server import free_port


def _skip_reason() -> str | None:
    for binary in ("initdb", "pg_ctl", "postgres"):
        if shutil.which(binary) is None:
            return f"no `{binary}` binary installed: PostgreSQL test skipped"
    if importlib.util.find_spec("psycopg") is None:
        return "no PostgreSQL driver (`psycopg`) installed: PostgreSQL test skipped"
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        return "running as root, which `initdb` refuses: PostgreSQL test skipped"
    return None


@pytest.fixture
def postgres_url(tmp_path: Path) -> Iterator[str]:
    reason = _skip_reason()
    if reason is not None:
        pytest.skip(reason)
    data = tmp_path / "pgdata"
    port = free_port()
    subprocess.run(
        ["initdb", "-D", str(data), "-U", "postgres", "--auth=trust"],
        check=True, capture_output=True,
    )  # fmt: skip
    options = f"-p {port} -k {tmp_path} -c listen_addresses=127.0.0.1"
    subprocess.run(
        ["pg_ctl", "-D", str(data), "-o", options, "-w", "start", "-l", str(tmp_path / "pg.log")],
        check=True, capture_output=True,
    )  # fmt: skip
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(["pg_ctl", "-D", str(data), "-w", "stop"], check=False, capture_output=True)


@pytest.mark.slow
def test_postgres_state_survives_restart(make_server: Any, postgres_url: str) -> None:
    # Arrange
    server = make_server(db_url=postgres_url)
    spec = {"symbol": "BTCUSDT", "tiers": [{"notional_floor": 0, "max_leverage": 10,
                                            "maintenance_rate": 0.05}]}  # fmt: skip
    with server.client() as admin:
        assert admin.post("/v1/markets", json={"spec": spec}).status_code == 201
        assert admin.post("/v1/marks", json={"market": "BTCUSDT", "price": 100}).is_success
        long = admin.post("/v1/accounts", json={"margin_mode": "isolated", "deposit": 100}).json()
        short = admin.post("/v1/accounts", json={"deposit": 10_000}).json()
        trade = {"market": "BTCUSDT", "buyer": long["account"], "seller": short["account"],
                 "size": 10, "price": 100}  # fmt: skip
        assert admin.post("/v1/trades", json=trade).status_code == 200
        for price in (96.0, 93.0):
            assert admin.post("/v1/marks", json={"market": "BTCUSDT", "price": price}).is_success
        before = [admin.get(f"/v1/accounts/{a['account']}").json() for a in (long, short)]
        notes = admin.get("/v1/notifications").json()
    # Act
    server.stop()
    server.start()
    # Assert
    with server.client() as admin:
        after = [admin.get(f"/v1/accounts/{a['account']}").json() for a in (long, short)]
        assert after == before
        assert admin.get("/v1/notifications").json() == notes
    assert any(n["kind"] == "liquidation" for n in notes)
