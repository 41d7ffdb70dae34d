"""Durability: ``kill -9`` the server mid-stream, start it again on the same database.

Ten isolated longs are opened at marks 100, 101, ..., 109 (5 units each at 10x, so each
liquidation price is ``entry x 0.9 / 0.95``); the oracle then posts marks from 110 down by 0.5
while an admin WebSocket listens, and the server is killed with SIGKILL once 15 marks were
acknowledged. After the restart:

- every notification received before the kill is stored, unchanged, at the same ``seq``, and
  so is every notification of every acknowledged mark;
- a client resuming with its last ``seq`` receives exactly the stored ones it missed;
- the state equals an engine that applied the same operations in-process, up to the last
  acknowledged mark or, if the request in flight at the kill was committed, the one after.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

import httpx
import pytest
from _service_server import ADMIN_KEY, Server
from websockets.asyncio.client import connect

from deleverage import Exchange, MarketSpec
from deleverage.spec import MarginMode

SPEC = {
    "symbol": "BTCUSDT",
    "tiers": [{"notional_floor": 0, "max_leverage": 10, "maintenance_rate": 0.05}],
    "maker_fee_rate": 0.0,
    "taker_fee_rate": 0.0,
}
ENTRIES = [100.0 + i for i in range(10)]
CRASH = [110.0 - 0.5 * k for k in range(41)]
KILL_AFTER = 15


def _setup(server: Server) -> tuple[list[int], int]:
    with server.client() as admin:
        assert admin.post("/v1/markets", json={"spec": SPEC}).status_code == 201
        longs = admin.post(
            "/v1/accounts/batch", json={"count": 10, "margin_mode": "isolated", "deposit": 100}
        ).json()["accounts"]
        short = admin.post("/v1/accounts", json={"deposit": 100_000}).json()["account"]
        for account, price in zip(longs, ENTRIES, strict=True):
            assert admin.post("/v1/marks", json={"market": "BTCUSDT", "price": price}).is_success
            trade = {"market": "BTCUSDT", "buyer": account, "seller": short, "size": 5,
                     "price": price}  # fmt: skip
            assert admin.post("/v1/trades", json=trade).status_code == 200
    return longs, short


def _reference(marks: list[float]) -> Exchange:
    ex = Exchange()
    ex.list_market(MarketSpec.from_mapping(SPEC))
    longs = ex.open_accounts(10, margin_mode=MarginMode.ISOLATED)
    ex.deposit_many(longs, [100.0] * 10)
    short = ex.open_account()
    ex.deposit(short, 100_000.0)
    for account, price in zip(longs.tolist(), ENTRIES, strict=True):
        ex.set_mark("BTCUSDT", price)
        ex.trade("BTCUSDT", buyer=account, seller=short, size=5, price=price)
    for price in marks:
        ex.set_mark("BTCUSDT", price)
    return ex


async def _run_until_kill(server: Server) -> tuple[list[dict[str, Any]], list[tuple[float, Any]]]:
    received: list[dict[str, Any]] = []
    acked: list[tuple[float, Any]] = []
    ws = await connect(f"{server.ws_url}/v1/stream", additional_headers={"X-API-Key": ADMIN_KEY})
    assert json.loads(await ws.recv())["kind"] == "subscribed"

    async def listen() -> None:
        with contextlib.suppress(Exception):
            async for text in ws:
                received.append(json.loads(text))

    async def post() -> None:
        async with httpx.AsyncClient(
            base_url=server.url, headers={"X-API-Key": ADMIN_KEY}, timeout=10.0
        ) as http:
            for price in CRASH:
                try:
                    r = await http.post("/v1/marks", json={"market": "BTCUSDT", "price": price})
                except httpx.TransportError:
                    return
                assert r.status_code == 200, r.text
                acked.append((price, r.json()))

    listener = asyncio.create_task(listen())
    poster = asyncio.create_task(post())
    while len(acked) < KILL_AFTER:
        await asyncio.sleep(0.001)
    server.kill9()  # mid-stream: the socket is open, the oracle is posting
    await asyncio.wait_for(poster, 20.0)
    await asyncio.wait_for(listener, 20.0)
    return received, acked


async def _resume(server: Server, since: int) -> list[dict[str, Any]]:
    url = f"{server.ws_url}/v1/stream?since={since}"
    async with connect(url, additional_headers={"X-API-Key": ADMIN_KEY}) as ws:
        assert json.loads(await ws.recv())["kind"] == "subscribed"
        out = []
        with contextlib.suppress(TimeoutError):
            while True:
                out.append(json.loads(await asyncio.wait_for(ws.recv(), 1.0)))
        return out


@pytest.mark.slow
def test_kill9_mid_stream_loses_nothing_acknowledged(make_server: Any) -> None:
    # Arrange
    server: Server = make_server("--margin-level", "0.6", "--margin-level", "0.8")
    longs, short = _setup(server)
    # Act
    received, acked = asyncio.run(_run_until_kill(server))
    server.start()
    with server.client() as admin:
        stored = admin.get("/v1/notifications", params={"since": 0, "limit": 10_000}).json()
        mark = admin.get("/v1/markets").json()[0]["mark_price"]
        views = {a: admin.get(f"/v1/accounts/{a}").json() for a in [*longs, short]}
    last_seen = received[-1]["seq"] if received else 0
    missed = asyncio.run(_resume(server, last_seen))
    # Assert: what was seen or acknowledged is stored, unchanged
    by_seq = {n["seq"]: n for n in stored}
    assert received, "the stream saw nothing before the kill"
    after_connect = [n for n in stored if n["seq"] >= received[0]["seq"]]
    assert received == after_connect[: len(received)]
    for _, result in acked:
        first, count = result["first_notification_seq"], result["notifications"]
        if count:
            assert all(seq in by_seq for seq in range(first, first + count))
    assert missed == after_connect[len(received) :]
    assert any(n["kind"] == "liquidation" for n in stored)
    # the state is the acknowledged one (or one more mark, if the in-flight one committed)
    done = [price for price, _ in acked]
    in_flight = CRASH[len(done)] if len(done) < len(CRASH) else None
    assert mark in (done[-1], in_flight)
    reference = _reference(done if mark == done[-1] else [*done, mark])
    for account, view in views.items():
        assert view["cash"] == reference.cash(account)
        assert view["total_equity"] == reference.account_margins(account).total_equity
        position = reference.position(account, "BTCUSDT")
        sizes = [p["size"] for p in view["positions"]]
        assert sizes == ([position.size] if position.size != 0.0 else [])
