"""The service on PostgreSQL: state across restarts, readiness of a read-only database, and
the container's command line (deploy/Dockerfile's CMD) against a real server.

The server is started from the installed binaries (``initdb``, ``pg_ctl``; Debian keeps them
in ``/usr/lib/postgresql/<version>/bin``) as its own user: ``initdb`` refuses root, so as root
the cluster belongs to the ``postgres`` user and the commands run through ``runuser``. Outside
CI a missing server or driver skips these tests; in CI (``CI=true``; ``.ci/run`` installs
PostgreSQL) it fails them.
"""

from __future__ import annotations

import glob
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from _service_server import ADMIN_KEY, free_port

DOCKERFILE = Path(__file__).parents[3] / "deploy" / "Dockerfile"


def _binary(name: str) -> str | None:
    found = shutil.which(name)
    if found is not None:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return candidates[-1] if candidates else None


def _missing() -> str | None:
    for name in ("initdb", "pg_ctl"):
        if _binary(name) is None:
            return f"no `{name}` binary installed"
    if importlib.util.find_spec("psycopg") is None:
        return "no PostgreSQL driver (`psycopg`) installed"
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        return "running as root without `runuser` to start PostgreSQL as its own user"
    return None


def _as_owner(command: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


@pytest.fixture
def postgres_url() -> Iterator[str]:
    reason = _missing()
    if reason is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}: .ci/run must install PostgreSQL")
        pytest.skip(f"{reason}: PostgreSQL tests skipped")
    folder = Path(tempfile.mkdtemp(prefix="dlv-pg-"))
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres", "postgres")
    data, port = folder / "data", free_port()
    initdb, pg_ctl = str(_binary("initdb")), str(_binary("pg_ctl"))
    subprocess.run(_as_owner([initdb, "-D", str(data), "-U", "postgres", "--auth=trust"]),
                   check=True, capture_output=True)  # fmt: skip
    options = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1"
    start = [pg_ctl, "-D", str(data), "-o", options, "-w", "-l", str(folder / "pg.log"), "start"]
    subprocess.run(_as_owner(start), check=True, capture_output=True)
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    finally:
        stop = [pg_ctl, "-D", str(data), "-w", "-m", "fast", "stop"]
        subprocess.run(_as_owner(stop), check=False, capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)


def _sql(url: str, *statements: str) -> None:
    import psycopg

    with psycopg.connect(url.replace("postgresql+psycopg", "postgresql"), autocommit=True) as c:
        for statement in statements:
            c.execute(statement)  # type: ignore[arg-type]


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
                 "size": 9, "price": 100}  # fmt: skip
        assert admin.post("/v1/trades", json=trade).status_code == 200
        for price in (96.0, 93.0):
            assert admin.post("/v1/marks", json={"market": "BTCUSDT", "price": price}).is_success
        before = [admin.get(f"/v1/accounts/{a['account']}").json() for a in (long, short)]
        notes = admin.get("/v1/notifications").json()
        state = admin.get("/v1/state").json()
    # Act
    server.stop()
    server.start()
    # Assert
    with server.client() as admin:
        after = [admin.get(f"/v1/accounts/{a['account']}").json() for a in (long, short)]
        assert after == before
        assert admin.get("/v1/notifications").json() == notes
        assert admin.get("/v1/state").json()["state_hash"] == state["state_hash"]
    assert any(n["kind"] == "liquidation" for n in notes)


@pytest.mark.slow
def test_postgres_read_only_is_not_ready_and_refuses_writes_unchanged(
    make_server: Any, postgres_url: str
) -> None:
    # Arrange
    server = make_server(db_url=postgres_url)
    with server.client() as admin:
        account = admin.post("/v1/accounts", json={}).json()["account"]
        before = admin.get("/v1/state").json()
        # Act: the database turns read-only (as a demoted primary does)
        _sql(postgres_url, "ALTER SYSTEM SET default_transaction_read_only = on")
        _sql(postgres_url, "SELECT pg_reload_conf()")
        ready = httpx.get(f"{server.url}/ready")
        write = admin.post(f"/v1/accounts/{account}/deposit", json={"amount": 5})
        during = admin.get("/v1/state").json()
        _sql(postgres_url, "SET default_transaction_read_only = off",
             "ALTER SYSTEM RESET default_transaction_read_only")  # fmt: skip
        _sql(postgres_url, "SELECT pg_reload_conf()")
        ready_again = httpx.get(f"{server.url}/ready")
        written = admin.post(f"/v1/accounts/{account}/deposit", json={"amount": 5})
    # Assert
    assert ready.status_code == 503
    assert "read-only" in " ".join(ready.json()["reasons"])
    assert write.status_code == 503
    assert during["state_hash"] == before["state_hash"]
    assert ready_again.status_code == 200
    assert written.status_code == 200


@pytest.mark.slow
def test_the_container_command_line_serves_on_postgres(postgres_url: str, tmp_path: Path) -> None:
    # Arrange: deploy/Dockerfile's CMD with the environment deploy/compose.yaml sets
    cmd = next(line for line in DOCKERFILE.read_text().splitlines() if line.startswith("CMD "))
    command = json.loads(cmd.removeprefix("CMD "))
    assert command[:2] == ["deleverage", "serve"]
    port = free_port()
    env = {**os.environ, "DELEVERAGE_DB": postgres_url, "DELEVERAGE_ADMIN_KEY": ADMIN_KEY,
           "DELEVERAGE_HOST": "127.0.0.1", "DELEVERAGE_PORT": str(port),
           "DELEVERAGE_WEBHOOK_SECRET": ""}  # fmt: skip
    executable = [sys.executable, "-c", "from deleverage.cli.app import main; main()"]
    log = tmp_path / "container.log"
    with log.open("wb") as out:
        process = subprocess.Popen([*executable, *command[1:]], stdout=out, stderr=out, env=env)
    try:
        # Act
        status, deadline = 0, time.monotonic() + 60
        while status != 200 and time.monotonic() < deadline and process.poll() is None:
            try:
                status = httpx.get(f"http://127.0.0.1:{port}/ready", timeout=2).status_code
            except httpx.TransportError:
                time.sleep(0.2)
        info = httpx.get(f"http://127.0.0.1:{port}/v1/info", headers={"X-API-Key": ADMIN_KEY})
    finally:
        process.terminate()
        process.wait(timeout=20)
    # Assert
    assert status == 200, log.read_text()[-2000:]
    assert info.status_code == 200
    assert any(json.loads(line).get("message") == "service started"
               for line in log.read_text().splitlines() if line.startswith("{"))  # fmt: skip
