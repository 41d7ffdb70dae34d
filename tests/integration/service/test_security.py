"""Keys, scopes, validation and limits of the service, against the real server."""

from __future__ import annotations

import asyncio
import hashlib
import sqlite3
from typing import Any

import pytest
from _service_server import ADMIN_KEY, Server
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

SPEC = {
    "symbol": "ETHUSDT",
    "tiers": [{"notional_floor": 0, "max_leverage": 20, "maintenance_rate": 0.025}],
}


@pytest.fixture(scope="module")
def ctx(module_server: Server) -> dict[str, Any]:
    """A market at 3,000, two funded accounts, an oracle key and a feed key."""
    server = module_server
    with server.client() as admin:
        assert admin.post("/v1/markets", json={"spec": SPEC}).status_code == 201
        assert admin.post("/v1/marks", json={"market": "ETHUSDT", "price": 3000}).is_success
        one = admin.post("/v1/accounts", json={"deposit": 1000}).json()
        two = admin.post("/v1/accounts", json={"deposit": 1000}).json()
        oracle = admin.post("/v1/keys", json={"role": "oracle"}).json()["api_key"]
        feed = admin.post("/v1/keys", json={"role": "feed"}).json()["api_key"]
    return {"one": one, "two": two, "oracle": oracle, "feed": feed, "server": server}


async def _ws_status(server: Server, key: str | None, query: str = "") -> int:
    headers = {"X-API-Key": key} if key is not None else {}
    try:
        async with connect(f"{server.ws_url}/v1/stream{query}", additional_headers=headers):
            return 101
    except InvalidStatus as exc:
        return int(exc.response.status_code)


def test_missing_or_wrong_key_is_401_on_http_and_websocket(ctx: dict[str, Any]) -> None:
    # Arrange
    server: Server = ctx["server"]
    # Act / Assert
    with server.client(key=None) as anonymous:
        assert anonymous.get("/v1/info").status_code == 401
    with server.client(key="dlv_not-a-key") as wrong:
        assert wrong.get("/v1/markets").status_code == 401
        assert wrong.post("/v1/marks", json={"market": "ETHUSDT", "price": 1}).status_code == 401
    assert asyncio.run(_ws_status(server, None)) == 401
    assert asyncio.run(_ws_status(server, "dlv_wrong")) == 401


def test_another_accounts_key_is_refused_for_data_and_stream(ctx: dict[str, Any]) -> None:
    # Arrange
    server: Server = ctx["server"]
    one, two = ctx["one"], ctx["two"]
    # Act / Assert
    with server.client(one["api_key"]) as client:
        assert client.get(f"/v1/accounts/{one['account']}").status_code == 200
        assert client.get(f"/v1/accounts/{two['account']}").status_code == 403
        risk = client.get(
            f"/v1/accounts/{two['account']}/liquidation-risk", params={"market": "ETHUSDT"}
        )
        assert risk.status_code == 403
        amount = {"amount": 1.0}
        assert (
            client.post(f"/v1/accounts/{two['account']}/withdraw", json=amount).status_code == 403
        )
        assert (
            client.get("/v1/notifications", params={"account": two["account"]}).status_code == 403
        )
        # account keys cannot use admin, oracle or feed endpoints
        assert client.post("/v1/marks", json={"market": "ETHUSDT", "price": 1}).status_code == 403
        assert client.post("/v1/accounts", json={}).status_code == 403
        assert client.post("/v1/keys", json={"role": "admin"}).status_code == 403
        # market data is readable by any key
        assert client.get("/v1/markets/ETHUSDT/insurance").status_code == 200
    with server.client(ctx["oracle"]) as oracle:
        trade = {"market": "ETHUSDT", "buyer": one["account"], "seller": two["account"],
                 "size": 0.1, "price": 3000}  # fmt: skip
        assert oracle.post("/v1/trades", json=trade).status_code == 403
        assert oracle.get(f"/v1/accounts/{one['account']}").status_code == 403
    with server.client(ctx["feed"]) as feed:
        assert feed.post("/v1/trades", json=trade).status_code == 200
    query = f"?account={two['account']}"
    assert asyncio.run(_ws_status(server, one["api_key"], query)) == 403
    assert asyncio.run(_ws_status(server, one["api_key"])) == 101
    with server.client() as admin:
        assert admin.get("/v1/accounts/9999").status_code == 404


@pytest.mark.parametrize(
    ("path", "payload", "field"),
    [
        ("/v1/marks", {"market": "ETHUSDT", "price": -5}, "body.price"),
        ("/v1/marks", {"market": "ETHUSDT", "price": "abc"}, "body.price"),
        ("/v1/marks", {"market": "ETHUSDT"}, "body.price"),
        ("/v1/marks", {"market": "ETHUSDT", "price": 1, "extra": 1}, "body.extra"),
        ("/v1/trades", {"market": "ETHUSDT", "buyer": -1, "seller": 2, "size": 1, "price": 1},
         "body.buyer"),
        ("/v1/accounts", {"margin_mode": "sideways"}, "body.margin_mode"),
        ("/v1/accounts", {"deposit": 0}, "body.deposit"),
        ("/v1/keys", {"role": "account"}, "body"),
        ("/v1/markets", {"spec": {"symbol": "X", "tiers": []}}, "tiers"),
        ("/v1/trades", {"market": "ETHUSDT", "buyer": 5, "seller": 6, "size": 0.0001,
                        "price": 3000}, "size"),
    ],
)  # fmt: skip
def test_malformed_payload_is_422_naming_the_field(
    ctx: dict[str, Any], path: str, payload: dict[str, Any], field: str
) -> None:
    # Arrange
    server: Server = ctx["server"]
    # Act
    with server.client() as admin:
        response = admin.post(path, json=payload)
    # Assert
    assert response.status_code == 422, response.text
    fields = [item["field"] for item in response.json()["detail"]]
    assert any(f == field or f.endswith(field) for f in fields), fields


def test_engine_refusals_are_4xx_and_change_nothing(ctx: dict[str, Any]) -> None:
    # Arrange
    server: Server = ctx["server"]
    one, two = ctx["one"]["account"], ctx["two"]["account"]
    with server.client() as admin:
        before = admin.get(f"/v1/accounts/{one}").json()
        events = admin.get("/v1/info").json()["events"]
        # Act: a withdrawal beyond the cash, a trade beyond initial margin, a batch whose
        # second trade fails (the first must not stay applied), an unknown market, an
        # inverse market (the service is linear-only)
        too_much = admin.post(f"/v1/accounts/{one}/withdraw", json={"amount": 5000})
        huge = {"market": "ETHUSDT", "buyer": one, "seller": two, "size": 100, "price": 3000}
        small = {**huge, "size": 0.1}
        batch = admin.post("/v1/trades/batch", json={"trades": [small, huge]})
        unknown = admin.post("/v1/marks", json={"market": "NOPE", "price": 1})
        inverse = admin.post("/v1/markets", json={"venue": "bitmex", "symbol": "XBTUSD"})
        # Assert
        assert inverse.status_code == 422
        assert "contract_type" in inverse.text
        assert too_much.status_code == 409
        assert batch.status_code == 409
        assert batch.json()["detail"][0]["message"].startswith("trades[1]")
        assert unknown.status_code == 404
        assert admin.get(f"/v1/accounts/{one}").json() == before
        assert admin.get("/v1/info").json()["events"] == events


def test_request_size_and_rate_limits(make_server: Any) -> None:
    # Arrange: a server that allows 5 requests in a burst, 1 a second after that
    server = make_server("--rate-limit", "1", "--rate-burst", "5", "--max-body-bytes", "512")
    with server.client() as admin:
        # Act
        big = admin.post("/v1/accounts", content=b"{" + b" " * 2000 + b"}",
                         headers={"Content-Type": "application/json"})  # fmt: skip
        codes = [admin.get("/v1/markets").status_code for _ in range(8)]
    # Assert
    assert big.status_code == 413
    assert codes.count(429) >= 2
    assert codes[:3] == [200, 200, 200]


def test_keys_are_stored_hashed(ctx: dict[str, Any]) -> None:
    # Arrange
    server: Server = ctx["server"]
    assert server.db_path is not None
    # Act
    with sqlite3.connect(server.db_path) as db:
        stored = [row[0] for row in db.execute("SELECT key_hash FROM api_keys")]
        dump = "\n".join(db.iterdump())
    # Assert
    for key in (ADMIN_KEY, ctx["oracle"], ctx["one"]["api_key"]):
        assert hashlib.sha256(key.encode()).hexdigest() in stored
        assert key not in dump
