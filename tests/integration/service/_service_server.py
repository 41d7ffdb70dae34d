"""The real server for the service's integration tests (used by ``conftest.py``).

:class:`Server` runs ``deleverage serve`` in a subprocess on a free loopback port with a SQLite
file in ``tmp_path`` (or a PostgreSQL URL), waits until it answers, and can stop it gently or
kill it with SIGKILL (``kill -9``) and start it again on the same database.
"""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

ADMIN_KEY = "admin-key-for-tests-0123456789"
STARTUP_TIMEOUT_S = 60.0
START_ATTEMPTS = 5
# Below Linux's ephemeral range (32768-60999), so that no outgoing connection of another test
# worker (an HTTP client, a database driver) can be given the port between this check and the
# server's bind.
PORT_RANGE = (20000, 32000)
BIND_FAILURES = ("address already in use", "must be free to listen on")


def free_port() -> int:
    """A loopback port that was free a moment ago, outside the ephemeral range."""
    for _ in range(200):
        port = random.randrange(*PORT_RANGE)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {PORT_RANGE}")


class Server:
    """``deleverage serve`` in a subprocess, on 127.0.0.1."""

    def __init__(self, db_url: str, log: Path, *extra: str) -> None:
        self.db_url = db_url
        self.log = log
        self.extra = extra
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self.db_path: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def start(self) -> Server:
        """Start the server; a port taken between the check and the bind is retried on another."""
        for _ in range(START_ATTEMPTS - 1):
            seen = self.log.stat().st_size if self.log.exists() else 0
            try:
                return self._start_once()
            except RuntimeError:
                new = self.log.read_bytes()[seen:].decode(errors="replace").lower()
                if not any(failure in new for failure in BIND_FAILURES):
                    raise
        return self._start_once()

    def _start_once(self) -> Server:
        self.port = free_port()
        command = [
            sys.executable, "-c", "from deleverage.cli.app import main; main()", "serve",
            "--db", self.db_url, "--port", str(self.port), "--admin-key", ADMIN_KEY,
            "--log-level", "warning", *self.extra,
        ]  # fmt: skip
        env = {**os.environ, "PYTHONWARNINGS": "ignore"}
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(command, stdout=out, stderr=out, env=env)
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited: {self.log.read_text()[-2000:]}")
            try:
                response = httpx.get(
                    f"{self.url}/v1/info", headers={"X-API-Key": ADMIN_KEY}, timeout=1.0
                )
                if response.status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"server did not start: {self.log.read_text()[-2000:]}")

    def kill9(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)
        self.process = None

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None

    def client(self, key: str | None = ADMIN_KEY) -> httpx.Client:
        headers = {"X-API-Key": key} if key is not None else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30.0)


def db_digest(path: Path) -> str:
    """SHA-256 over the rows of every table of a SQLite service database (its whole content)."""
    import hashlib
    import sqlite3

    h = hashlib.sha256()
    with sqlite3.connect(path) as db:
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        for table in sorted(tables):
            for row in db.execute(f"SELECT * FROM {table} ORDER BY 1"):
                h.update(repr((table, row)).encode())
    return h.hexdigest()


def snapshot_state(server: Server) -> tuple[object, ...]:
    """Engine state hash, journal length, last seq and the database digest, as one tuple."""
    with server.client() as admin:
        state = admin.get("/v1/state").json()
    assert server.db_path is not None
    return (state["state_hash"], state["events"], state["last_notification_seq"],
            db_digest(server.db_path))  # fmt: skip
