"""Fixtures: the real ``deleverage serve`` on a SQLite file in a temporary directory."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from _service_server import Server


@pytest.fixture(scope="module")
def module_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server shared by a module's tests (they must not depend on each other's state)."""
    path = tmp_path_factory.mktemp("service")
    server = Server(f"sqlite:///{path / 'service.db'}", path / "server.log").start()
    server.db_path = path / "service.db"
    yield server
    server.stop()


@pytest.fixture
def make_server(tmp_path: Path) -> Iterator[type[Server] | object]:
    """Start servers on SQLite files in ``tmp_path``; all are stopped after the test."""
    started: list[Server] = []

    def make(*extra: str, db_url: str | None = None) -> Server:
        url = db_url or f"sqlite:///{tmp_path / 'service.db'}"
        server = Server(url, tmp_path / "server.log", *extra)
        if db_url is None:
            server.db_path = tmp_path / "service.db"
        server.start()
        started.append(server)
        return server

    yield make
    for server in started:
        server.stop()


@pytest.fixture
def server(make_server: object) -> Server:
    """One running server with margin warnings at 0.6 and 0.8."""
    assert callable(make_server)
    made: Server = make_server("--margin-level", "0.6", "--margin-level", "0.8")
    return made
