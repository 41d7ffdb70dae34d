"""A scripted crash through the oracle endpoint, watched over WebSockets.

Market: one tier, 10x maximum leverage, maintenance rate 5%, no trading fees, a 1% liquidation
penalty; liquidations fill at the mark (no book). Warning levels 0.6 and 0.8.

Positions opened at 100 (hand-computed, Binance isolated/cross formulas with one tier):

- A isolated long 10, margin 100: LP = (100 - 10 x 100) / (10 x 0.05 - 10) = 900 / 9.5
  = 94.7368..., BP = 100 - 100 / 10 = 90;
- B cross long 10, cash 150: LP = (150 - 1000) / (0.5 - 10) = 850 / 9.5 = 89.4736..., BP = 85;
- C cross long 1, cash 15: LP = (15 - 100) / (0.05 - 1) = 89.4736..., BP = 85;
- S (cash 10,000) short 10 against A; S2 (cash 2,000) short 11 against B and C.

Marks 96.5, 95.5, 93, 80:

- 96.5: A's ratio MM / E = (10 x 96.5 x 0.05) / (100 - 35) = 48.25 / 65 = 0.742: warning 0.6;
- 95.5: 47.75 / 55 = 0.868: the engine's margin call (level 0.8) and warning 0.8;
- 93 (below A's LP): A liquidated at 93, penalty 1% x 930 = 9.3 to the fund (equity 30 left);
  B's ratio 46.5 / 80 = 0.58 and C's 4.65 / 8 = 0.58 stay under 0.6;
- 80 (below B's and C's BP 85): B's equity 150 - 200 = -50, deleveraged at its bankruptcy
  price 85 against the first short in the ADL queue (S2, the more leveraged); C liquidated at
  80 with shortfall 15 - 20 = -5 -> 5 covered by the fund (9.3 -> 4.3): a drawdown of
  5 / 9.3 = 53.8% of the fund within 8 hours, over Bybit's 30%: the insurance alert.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
from _service_server import ADMIN_KEY, Server
from websockets.asyncio.client import ClientConnection, connect

SPEC = {
    "symbol": "BTCUSDT",
    "tiers": [{"notional_floor": 0, "max_leverage": 10, "maintenance_rate": 0.05}],
    "maker_fee_rate": 0.0,
    "taker_fee_rate": 0.0,
    "liquidation_fee_rate": 0.01,
}


async def _open(http: httpx.AsyncClient, mode: str, deposit: float) -> tuple[int, str]:
    r = await http.post("/v1/accounts", json={"margin_mode": mode, "deposit": deposit})
    assert r.status_code == 201, r.text
    body = r.json()
    return body["account"], body["api_key"]


async def _socket(server: Server, key: str, since: int | None = None) -> ClientConnection:
    query = "" if since is None else f"?since={since}"
    ws = await connect(f"{server.ws_url}/v1/stream{query}", additional_headers={"X-API-Key": key})
    hello = json.loads(await ws.recv())
    assert hello["kind"] == "subscribed"
    return ws


async def _read(ws: ClientConnection, count: int) -> list[dict[str, Any]]:
    return [json.loads(await asyncio.wait_for(ws.recv(), 15.0)) for _ in range(count)]


async def _scenario(server: Server) -> None:
    async with httpx.AsyncClient(
        base_url=server.url, headers={"X-API-Key": ADMIN_KEY}, timeout=30.0
    ) as http:
        # Arrange: market, accounts, positions at 100
        assert (await http.post("/v1/markets", json={"spec": SPEC})).status_code == 201
        oracle = (await http.post("/v1/keys", json={"role": "oracle"})).json()["api_key"]
        assert (await http.post("/v1/marks", json={"market": "BTCUSDT", "price": 100})).is_success
        a, key_a = await _open(http, "isolated", 100.0)
        b, key_b = await _open(http, "cross", 150.0)
        c, key_c = await _open(http, "cross", 15.0)
        s, key_s = await _open(http, "cross", 10_000.0)
        s2, key_s2 = await _open(http, "cross", 2_000.0)
        d, key_d = await _open(http, "cross", 1_000.0)
        for buyer, seller, size in ((a, s, 10), (b, s2, 10), (c, s2, 1)):
            trade = {"market": "BTCUSDT", "buyer": buyer, "seller": seller, "size": size,
                     "price": 100}  # fmt: skip
            r = await http.post("/v1/trades", json=trade)
            assert r.status_code == 200, r.text
        views = {x: (await http.get(f"/v1/accounts/{x}")).json() for x in (a, b, c)}
        pos = {x: views[x]["positions"][0] for x in views}
        assert pos[a]["liquidation_price"] == pytest.approx(900 / 9.5, rel=1e-12)
        assert pos[a]["bankruptcy_price"] == pytest.approx(90.0, rel=1e-12)
        assert pos[b]["liquidation_price"] == pytest.approx(850 / 9.5, rel=1e-12)
        assert pos[b]["bankruptcy_price"] == pytest.approx(85.0, rel=1e-12)
        assert pos[c]["liquidation_price"] == pytest.approx(85 / 0.95, rel=1e-12)
        assert pos[c]["bankruptcy_price"] == pytest.approx(85.0, rel=1e-12)
        start = (await http.get("/v1/info")).json()["last_notification_seq"]
        keys = {a: key_a, b: key_b, c: key_c, s: key_s, s2: key_s2, d: key_d}
        sockets = {x: await _socket(server, k) for x, k in keys.items()}
        admin_ws = await _socket(server, ADMIN_KEY)

        # Act: the crash, posted by the oracle
        queue_at_93: dict[int, Any] = {}
        for price in (96.5, 95.5, 93.0, 80.0):
            r = await http.post(
                "/v1/marks", json={"market": "BTCUSDT", "price": price},
                headers={"X-API-Key": oracle},
            )  # fmt: skip
            assert r.status_code == 200, r.text
            if price == 93.0:
                for x in (s, s2):
                    view = (await http.get(f"/v1/accounts/{x}")).json()
                    queue_at_93[x] = view["positions"][0]["adl"]["rank"]
        stored = (await http.get("/v1/notifications", params={"since": start})).json()

        # Assert: the admin stream is the stored list, in sequence
        everything = await _read(admin_ws, len(stored))
        assert everything == stored
        assert [n["seq"] for n in stored] == list(range(start + 1, start + 1 + len(stored)))
        # each account's socket gets exactly its own notifications and the public ones
        for x, ws in sockets.items():
            expected = [n for n in stored if n["account"] in (x, None)]
            assert await _read(ws, len(expected)) == expected
            own = (await http.get(f"/v1/accounts/{x}")).json()["positions"]
            indicators = [n["data"]["indicator"] for n in expected if n["kind"] == "adl_indicator"]
            if indicators:  # the last indicator change is the account's indicator now
                assert indicators[-1] == (own[0]["adl"]["indicator"] if own else 0)
        events = [n for n in stored if n["kind"] != "adl_indicator"]
        summary = [(n["kind"], n["account"], n["data"].get("price")) for n in events]
        first_short = s2 if queue_at_93[s2] == 1 else s
        assert summary == [
            ("margin_warning", a, None),
            ("margin_call", a, None),
            ("margin_warning", a, None),
            ("liquidation", a, 93.0),
            ("adl_fill", first_short, 85.0),
            ("adl_fill", b, 85.0),
            ("adl_round", b, 85.0),
            ("liquidation", c, 80.0),
            ("insurance_drawdown", None, None),
        ]
        assert first_short == s2  # higher leverage: first in the queue
        warn1, call, warn2, liq_a, fill_s2, fill_b, _, liq_c, alert = events
        assert warn1["data"]["level"] == 0.6
        assert warn1["data"]["ratio"] == pytest.approx(48.25 / 65, rel=1e-12)
        assert call["data"]["ratio"] == pytest.approx(47.75 / 55, rel=1e-12)
        assert warn2["data"]["level"] == 0.8
        assert liq_a["data"]["penalty"] == pytest.approx(9.3, rel=1e-12)
        assert liq_a["data"]["size"] == -10.0
        assert fill_s2["data"]["size"] == 10.0
        assert fill_b["data"]["size"] == -10.0
        assert liq_c["data"]["shortfall"] == pytest.approx(5.0, rel=1e-12)
        assert liq_c["data"]["bankruptcy_price"] == pytest.approx(85.0, rel=1e-12)
        assert alert["data"]["active"] is True
        assert alert["data"]["loss"] == pytest.approx(5.0, rel=1e-9)
        assert alert["data"]["fraction"] == pytest.approx(5.0 / 9.3, rel=1e-9)
        assert alert["data"]["balance"] == pytest.approx(4.3, rel=1e-9)
        # A's indicator went to 0 when it was liquidated (its position closed)
        ind_a = [n for n in stored if n["kind"] == "adl_indicator" and n["account"] == a]
        assert ind_a[-1]["data"]["indicator"] == 0
        assert ind_a[-1]["seq"] > liq_a["seq"]
        # the market views agree
        fund = (await http.get("/v1/markets/BTCUSDT/insurance")).json()
        assert fund["balance"] == pytest.approx(4.3, rel=1e-9)
        assert fund["drawdown_alert"] is True
        recent = (await http.get("/v1/markets/BTCUSDT/liquidations")).json()
        assert [(r["account"], r["price"]) for r in recent] == [(c, 80.0), (a, 93.0)]
        for ws in [*sockets.values(), admin_ws]:
            await ws.close()


def test_scripted_crash_sends_calls_liquidations_adl_and_alerts_in_order(server: Server) -> None:
    asyncio.run(_scenario(server))
