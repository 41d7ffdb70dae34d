"""Keys (revocation, rotation, expiry), limits (anonymous requests, streams per key) and
idempotent writes, against the real server."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest
from _service_server import ADMIN_KEY, Server, snapshot_state
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

SPEC = {
    "symbol": "ETHUSDT",
    "tiers": [{"notional_floor": 0, "max_leverage": 20, "maintenance_rate": 0.025}],
}


async def _open(server: Server, key: str) -> Any:
    return await connect(f"{server.ws_url}/v1/stream", additional_headers={"X-API-Key": key})


def test_a_revoked_key_is_refused_and_its_stream_closed(make_server: Any) -> None:
    # Arrange
    server: Server = make_server()
    with server.client() as admin:
        made = admin.post("/v1/keys", json={"role": "oracle"}).json()

    async def scenario() -> tuple[int, int | None]:
        ws = await _open(server, made["api_key"])
        await ws.recv()  # subscribed
        with server.client() as admin:
            revoked = admin.delete(f"/v1/keys/{made['key_id']}").status_code
        try:
            await asyncio.wait_for(ws.recv(), 10)
        except ConnectionClosed as exc:
            return revoked, exc.rcvd.code if exc.rcvd else None
        return revoked, None

    # Act
    status, code = asyncio.run(scenario())
    # Assert
    assert status == 200
    assert code == 1008
    with server.client(made["api_key"]) as oracle:
        assert oracle.get("/v1/markets").status_code == 401
    server.stop()
    server.start()  # revocation survives a restart
    with server.client(made["api_key"]) as oracle:
        assert oracle.get("/v1/markets").status_code == 401
    with server.client() as admin:
        states = {k["key_id"]: k["state"] for k in admin.get("/v1/keys").json()}
    assert states[made["key_id"]] == "revoked"


def test_a_new_admin_key_replaces_the_old_one_when_asked(make_server: Any) -> None:
    # Arrange
    server: Server = make_server()
    with server.client() as admin:
        keys = admin.get("/v1/keys").json()
        bootstrap = next(k["key_id"] for k in keys if k["role"] == "admin")
        # Act
        made = admin.post("/v1/keys", json={"role": "admin", "replaces": bootstrap})
    # Assert
    assert made.status_code == 201
    assert made.json()["revoked"] == bootstrap
    with server.client() as old:
        assert old.get("/v1/info").status_code == 401
    with server.client(made.json()["api_key"]) as new:
        assert new.get("/v1/info").status_code == 200
        account = new.post("/v1/accounts", json={}).json()
    # an account key rotates itself
    with server.client(account["api_key"]) as mine:
        rotated = mine.post("/v1/keys/rotate", json={}).json()
        assert mine.get(f"/v1/accounts/{account['account']}").status_code == 401
    with server.client(rotated["api_key"]) as mine:
        assert mine.get(f"/v1/accounts/{account['account']}").status_code == 200


def test_an_expired_key_is_refused(make_server: Any) -> None:
    server: Server = make_server()
    with server.client() as admin:
        made = admin.post("/v1/keys", json={"role": "feed", "expires_in_s": 1}).json()
    assert made["expires_ns"] is not None
    deadline = time.monotonic() + 30
    status = 200
    with server.client(made["api_key"]) as feed:
        while status == 200 and time.monotonic() < deadline:
            status = feed.get("/v1/markets").status_code
            time.sleep(0.2)
    assert status == 401


def test_unauthenticated_requests_and_streams_per_key_are_limited(make_server: Any) -> None:
    # Arrange
    server: Server = make_server("--anonymous-rate-limit", "1", "--anonymous-rate-burst", "5",
                                 "--max-streams-per-key", "2")  # fmt: skip
    # Act
    with server.client("dlv_wrong") as wrong:
        codes = [wrong.get("/v1/info").status_code for _ in range(10)]

    async def streams() -> list[int]:
        opened, codes = [], []
        for _ in range(3):
            try:
                opened.append(await _open(server, ADMIN_KEY))
                codes.append(101)
            except InvalidStatus as exc:
                codes.append(int(exc.response.status_code))
        for ws in opened:
            await ws.close()
        return codes

    ws_codes = asyncio.run(streams())
    # Assert
    assert codes[:5] == [401] * 5
    assert 429 in codes
    assert ws_codes == [101, 101, 429]
    with server.client() as admin:  # a valid key is not limited by others' failures
        assert admin.get("/v1/info").status_code == 200


def test_an_idempotent_write_is_applied_once_even_across_a_crash(make_server: Any) -> None:
    # Arrange
    server: Server = make_server()
    with server.client() as admin:
        assert admin.post("/v1/markets", json={"spec": SPEC}).status_code == 201
        account = admin.post("/v1/accounts", json={}).json()["account"]
    path = f"/v1/accounts/{account}/deposit"
    headers = {"Idempotency-Key": "deposit-0001"}
    # Act
    with server.client() as admin:
        first = admin.post(path, json={"amount": 100}, headers=headers)
        again = admin.post(path, json={"amount": 100}, headers=headers)
        before = snapshot_state(server)
        other = admin.post(path, json={"amount": 999}, headers=headers)
        assert snapshot_state(server) == before
    server.kill9()
    server.start()
    with server.client() as admin:
        retried = admin.post(path, json={"amount": 100}, headers=headers)
        cash = admin.get(f"/v1/accounts/{account}").json()["cash"]
        created = admin.post("/v1/accounts", json={}, headers={"Idempotency-Key": "acct-1"})
        replayed = admin.post("/v1/accounts", json={}, headers={"Idempotency-Key": "acct-1"})
    # Assert
    assert first.status_code == again.status_code == retried.status_code == 200
    assert first.json() == again.json() == retried.json()
    assert again.headers["Idempotency-Replayed"] == "true"
    assert other.status_code == 422
    assert cash == 100.0
    assert created.json()["account"] == replayed.json()["account"]
    assert created.json()["api_key"] is not None
    assert replayed.json()["api_key"] is None  # keys are never stored


def test_a_retry_of_a_write_that_never_committed_is_applied(make_server: Any) -> None:
    server: Server = make_server()
    with server.client() as admin:
        account = admin.post("/v1/accounts", json={}).json()["account"]
        path = f"/v1/accounts/{account}/deposit"
        refused = admin.post(path, json={"amount": -1}, headers={"Idempotency-Key": "k"})
        applied = admin.post(path, json={"amount": 5}, headers={"Idempotency-Key": "k"})
    assert refused.status_code == 422
    assert applied.status_code == 200


@pytest.mark.parametrize("key", ["", "x" * 200, "caf\u00e9"])
def test_a_bad_idempotency_key_is_422(make_server: Any, key: str) -> None:
    server: Server = make_server()
    with server.client() as admin:
        headers = {"Idempotency-Key": key}
        try:
            response = admin.post("/v1/accounts", json={}, headers=headers)
        except (httpx.LocalProtocolError, UnicodeEncodeError):
            return  # the client refuses to send it: nothing to test
    assert response.status_code == 422
