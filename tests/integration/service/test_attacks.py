"""Each attack of issue 15 against the real server: refused with a 4xx naming the field, the
engine, journal and database unchanged (state hash and database digest), and a valid write
still accepted after it."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from _service_server import Server, snapshot_state
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

SPEC = {
    "symbol": "BTCUSDT",
    "tiers": [{"notional_floor": 0, "max_leverage": 20, "maintenance_rate": 0.025}],
}
MARK = 60_000.0


@pytest.fixture(scope="module")
def venue(module_server: Server) -> dict[str, Any]:
    """BTCUSDT at 60,000, a funded insurance fund, two traders, feed/oracle/depositor keys."""
    server = module_server
    with server.client() as admin:
        assert admin.post("/v1/markets", json={"spec": SPEC}).status_code == 201
        assert admin.post("/v1/marks", json={"market": "BTCUSDT", "price": MARK}).is_success
        info = admin.get("/v1/info").json()
        fund = info["insurance_account"]
        keys = {role: admin.post("/v1/keys", json={"role": role}).json()["api_key"]
                for role in ("feed", "oracle", "depositor")}  # fmt: skip
        assert admin.post(f"/v1/accounts/{fund}/deposit", json={"amount": 100_000}).is_success
        attacker = admin.post("/v1/accounts", json={"deposit": 10_000}).json()
        victim = admin.post("/v1/accounts", json={"deposit": 10_000}).json()
    return {"server": server, "info": info, "attacker": attacker, "victim": victim, **keys}


def _refused(server: Server, send: Any, status: int, field: str) -> None:
    before = snapshot_state(server)
    response = send()
    assert response.status_code == status, response.text
    detail = response.json()["detail"]
    fields = [item["field"] for item in detail] if isinstance(detail, list) else [""]
    assert any(field in f for f in fields), detail
    assert snapshot_state(server) == before


def _still_writes(server: Server, venue: dict[str, Any]) -> None:
    with server.client() as admin:
        a, b = venue["attacker"]["account"], venue["victim"]["account"]
        trade = {"market": "BTCUSDT", "buyer": a, "seller": b, "size": 0.001, "price": MARK}
        assert admin.post("/v1/trades", json=trade).status_code == 200
        assert admin.post("/v1/marks", json={"market": "BTCUSDT", "price": MARK}).is_success


@pytest.mark.parametrize("system", ["insurance_account", "fee_account", "liquidity_account",
                                    "backstop_account", "liquidator_account"])  # fmt: skip
def test_a_feed_cannot_trade_a_system_account(venue: dict[str, Any], system: str) -> None:
    # Arrange
    server: Server = venue["server"]
    target, attacker = venue["info"][system], venue["attacker"]["account"]
    trade = {"market": "BTCUSDT", "buyer": attacker, "seller": target, "size": 1.0,
             "price": 0.1}  # fmt: skip
    # Act / Assert: as the seller, as the buyer, in a batch
    with server.client(venue["feed"]) as feed:
        _refused(server, lambda: feed.post("/v1/trades", json=trade), 422, "body.seller")
        swapped = {**trade, "buyer": target, "seller": attacker, "price": MARK}
        _refused(server, lambda: feed.post("/v1/trades", json=swapped), 422, "body.buyer")
        fair = {**trade, "seller": venue["victim"]["account"], "size": 0.001, "price": MARK}
        batch = {"trades": [fair, trade]}
        _refused(server, lambda: feed.post("/v1/trades/batch", json=batch), 422, "trades.1")
    _still_writes(server, venue)


def test_a_trade_far_from_the_mark_is_refused(venue: dict[str, Any]) -> None:
    server: Server = venue["server"]
    trade = {"market": "BTCUSDT", "buyer": venue["attacker"]["account"],
             "seller": venue["victim"]["account"], "size": 0.01, "price": 0.1}  # fmt: skip
    with server.client(venue["feed"]) as feed:
        for price in (0.1, MARK * 0.85, MARK * 1.2):
            send = lambda p=price: feed.post("/v1/trades", json={**trade, "price": p})  # noqa: E731
            _refused(server, send, 422, "body.price")
    _still_writes(server, venue)


def test_the_fund_endpoint_reads_the_engine(venue: dict[str, Any]) -> None:
    # Arrange
    server: Server = venue["server"]
    fund = venue["info"]["insurance_account"]
    # Act
    with server.client() as admin:
        view = admin.get("/v1/markets/BTCUSDT/insurance").json()
        account = admin.get(f"/v1/accounts/{fund}").json()
    # Assert
    assert view["fund_account"] == fund
    assert view["balance"] == account["cash"] == view["ledger_balance"]
    assert view["consistent"] is True


def test_deposits_need_the_depositor_role_and_bounded_amounts(venue: dict[str, Any]) -> None:
    server: Server = venue["server"]
    own = venue["attacker"]
    path = f"/v1/accounts/{own['account']}/deposit"
    with server.client(own["api_key"]) as account_key:
        _refused(server, lambda: account_key.post(path, json={"amount": 1e308}), 403, "")
        _refused(server, lambda: account_key.post(path, json={"amount": 10}), 403, "")
    with server.client(venue["depositor"]) as depositor:
        _refused(server, lambda: depositor.post(path, json={"amount": 1e308}), 422, "body.amount")
        _refused(server, lambda: depositor.post(path, json={"amount": 2e9}), 422, "body.amount")
        assert depositor.post(path, json={"amount": 10}).status_code == 200
    with server.client() as admin:
        big = {"deposit": 1e10}
        _refused(server, lambda: admin.post("/v1/accounts", json=big), 422, "body.deposit")
        withdraw = f"/v1/accounts/{venue['info']['insurance_account']}/withdraw"
        _refused(server, lambda: admin.post(withdraw, json={"amount": 1}), 409, "account")
    _still_writes(server, venue)


@pytest.mark.parametrize("ts_ns", [2**63, 2**63 - 1, 2**62, 10**30, -1, 1])
def test_timestamps_out_of_bounds_or_far_from_the_clock_are_refused(
    venue: dict[str, Any], ts_ns: int
) -> None:
    server: Server = venue["server"]
    mark = {"market": "BTCUSDT", "price": MARK, "ts_ns": ts_ns}
    with server.client(venue["oracle"]) as oracle:
        _refused(server, lambda: oracle.post("/v1/marks", json=mark), 422, "body.ts_ns")
        trade = {"market": "BTCUSDT", "buyer": venue["attacker"]["account"],
                 "seller": venue["victim"]["account"], "size": 0.001, "price": MARK,
                 "ts_ns": ts_ns}  # fmt: skip
    with server.client(venue["feed"]) as feed:
        _refused(server, lambda: feed.post("/v1/trades", json=trade), 422, "ts_ns")
    _still_writes(server, venue)
    with server.client() as admin:
        clock = admin.get("/v1/state").json()["clock_ns"]
    assert abs(clock - time.time_ns()) < 3600 * 10**9  # the clock follows the wall clock


@pytest.mark.parametrize(
    ("path", "payload", "field"),
    [
        ("/v1/trades", {"market": "BTCUSDT", "buyer": 5, "seller": 6, "size": 1e308,
                        "price": MARK}, "body.size"),
        ("/v1/trades", {"market": "BTCUSDT", "buyer": 5, "seller": 6, "size": 1,
                        "price": 1e300}, "body.price"),
        ("/v1/trades", {"market": "BTCUSDT", "buyer": 2**64, "seller": 6, "size": 1,
                        "price": MARK}, "body.buyer"),
        ("/v1/marks", {"market": "BTCUSDT", "price": 1e308}, "body.price"),
        ("/v1/accounts/batch", {"count": 3, "deposit": 1e308}, "body.deposit"),
        ("/v1/keys", {"role": "oracle", "expires_in_s": 1e308}, "body.expires_in_s"),
    ],
)  # fmt: skip
def test_huge_numbers_are_refused(
    venue: dict[str, Any], path: str, payload: dict[str, Any], field: str
) -> None:
    server: Server = venue["server"]
    with server.client() as admin:
        _refused(server, lambda: admin.post(path, json=payload), 422, field)
    _still_writes(server, venue)


@pytest.mark.parametrize(
    "raw",
    [b"{", b"\xff\xfe\x00", b"[]", b"null", b"1e999", b'{"market": NaN}', b"[" * 50_000,
     b'{"market": "BTCUSDT", "price": 1e999}', b'{"market": "BTCUSDT", "price": NaN}',
     b'{"market": "\\ud800", "price": 1}'],
)  # fmt: skip
def test_malformed_bodies_are_4xx(venue: dict[str, Any], raw: bytes) -> None:
    server: Server = venue["server"]
    with server.client() as admin:
        for path in ("/v1/marks", "/v1/trades", "/v1/accounts", "/v1/keys"):
            before = snapshot_state(server)
            response = admin.post(path, content=raw, headers={"Content-Type": "application/json"})
            assert 400 <= response.status_code < 500, (path, response.text)
            assert snapshot_state(server) == before
    _still_writes(server, venue)


@pytest.mark.parametrize(
    "query",
    ["/v1/notifications?since=9223372036854775808", "/v1/notifications?since=-1",
     "/v1/notifications?account=99999999999999999999", "/v1/accounts/99999999999999999999999",
     "/v1/markets/BTCUSDT/heatmap?bucket_width=5e-324",
     "/v1/markets/BTCUSDT/heatmap?bucket_width=1e308",
     "/v1/accounts/5/liquidation-risk?market=BTCUSDT&horizon_s=1e308",
     "/v1/markets/BTCUSDT/liquidations?limit=99999999999999999999"],
)  # fmt: skip
def test_out_of_range_queries_are_422(venue: dict[str, Any], query: str) -> None:
    server: Server = venue["server"]
    with server.client() as admin:
        response = admin.get(query)
    assert response.status_code == 422, response.text


async def _ws_status(server: Server, query: str) -> tuple[int, str]:
    try:
        async with connect(
            f"{server.ws_url}/v1/stream{query}",
            additional_headers={"X-API-Key": "admin-key-for-tests-0123456789"},
        ):
            return 101, ""
    except InvalidStatus as exc:
        return int(exc.response.status_code), exc.response.body.decode()  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "query", ["?since=9223372036854775808", "?since=-1", "?since=abc", "?account=2147483648"]
)
def test_out_of_range_stream_queries_are_denied_422(venue: dict[str, Any], query: str) -> None:
    status, body = asyncio.run(_ws_status(venue["server"], query))
    assert status == 422
    assert "query." in body
    assert asyncio.run(_ws_status(venue["server"], "?since=0"))[0] == 101
