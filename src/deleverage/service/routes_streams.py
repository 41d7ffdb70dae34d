"""Routes: stored notifications (``GET /v1/notifications``) and the live stream (``WS``).

The stream's query (``since``, ``account``) is checked by hand so a bad value is refused with
a 422 denial naming it, like an HTTP request; a key may hold ``max_streams_per_key`` streams
(429 beyond), and a revoked key's streams are closed (code 1008).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request, WebSocket
from fastapi.responses import JSONResponse
from starlette.websockets import WebSocketDisconnect

from deleverage.service.auth import Principal, Role
from deleverage.service.deps import AnyKey, FieldError, jsonable, service_of
from deleverage.service.notifications import Subscriber
from deleverage.service.runtime import RiskService
from deleverage.service.schemas import MAX_ACCOUNT, MAX_INT64

__all__ = ["router"]

router = APIRouter(prefix="/v1")


def _scope(principal: Principal, account: int | None) -> tuple[int | None, bool]:
    if principal.role is Role.ADMIN:
        return account, True
    if principal.role is Role.ACCOUNT:
        if account is not None and account != principal.account:
            raise HTTPException(403, f"this key may not access account {account}")
        return principal.account, False
    if account is not None:
        raise HTTPException(403, f"this key may not access account {account}")
    return None, False


@router.get("/notifications", tags=["notifications"])
async def notifications(
    request: Request,
    principal: AnyKey,
    since: Annotated[int, Query(ge=0, le=MAX_INT64)] = 0,
    account: Annotated[int | None, Query(ge=0, le=MAX_ACCOUNT)] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
) -> list[dict[str, Any]]:
    """Stored notifications with ``seq > since``, oldest first (same scope as the stream)."""
    who, everything = _scope(principal, account)
    storage = service_of(request).storage
    return await asyncio.to_thread(
        storage.notifications_after, since, account=who, everything=everything, limit=limit
    )


def _query_int(websocket: WebSocket, name: str, high: int) -> int | None:
    raw = websocket.query_params.get(name)
    if raw is None:
        return None
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 20 or int(raw) > high:
        raise FieldError(422, f"query.{name}", raw, f"must be an integer in [0, {high}]")
    return int(raw)


@router.websocket("/stream")
async def stream(websocket: WebSocket) -> None:
    """Live notifications; ``since=N`` first replays the stored ones after ``N``."""
    service: RiskService = websocket.app.state.service
    key = websocket.headers.get("x-api-key") or websocket.query_params.get("api_key")
    principal = service.keys.authenticate(key, service.now_ns())
    if principal is None:
        address = websocket.client.host if websocket.client is not None else "unknown"
        if not service.anonymous_limiter.allow(address):
            await _deny(websocket, 429, "api_key", "rate limit for requests without a key")
            return
        await _deny(websocket, 401, "api_key", "missing, unknown, revoked or expired API key")
        return
    try:
        since = _query_int(websocket, "since", MAX_INT64)
        account = _query_int(websocket, "account", MAX_ACCOUNT)
        who, everything = _scope(principal, account)
    except FieldError as exc:
        await _deny(websocket, exc.status, exc.field, str(exc), exc.value)
        return
    except HTTPException as exc:
        await _deny(websocket, exc.status_code, "account", str(exc.detail))
        return
    mine = service.streams.setdefault(principal.key_hash, set())
    if len(mine) >= service.settings.max_streams_per_key:
        limit = service.settings.max_streams_per_key
        await _deny(websocket, 429, "api_key", f"at most {limit} open streams per key")
        return
    await websocket.accept()
    sub = service.hub.subscribe(
        account=who, everything=everything, maxsize=service.settings.subscriber_queue
    )
    mine.add(sub)
    service.metrics.streams.inc()
    try:
        await _pump(websocket, service, sub, since, who, everything)
    except WebSocketDisconnect:
        pass
    finally:
        service.hub.unsubscribe(sub)
        mine.discard(sub)
        service.metrics.streams.dec()


async def _deny(
    websocket: WebSocket, status: int, field: str, message: str, value: object = None
) -> None:
    body = {"detail": [{"field": field, "value": jsonable(value), "message": message}]}
    await websocket.send_denial_response(JSONResponse(body, status))


async def _pump(
    websocket: WebSocket,
    service: RiskService,
    sub: Subscriber,
    since: int | None,
    who: int | None,
    everything: bool,
) -> None:
    last = service.next_seq - 1 if since is None else since
    await websocket.send_json({"kind": "subscribed", "seq": last, "account": who})
    while since is not None:
        backlog = await asyncio.to_thread(service.backlog, last, account=who, everything=everything)
        for note in backlog:
            await websocket.send_json(note)
            last = note["seq"]
        if len(backlog) < 10_000:
            break

    async def send() -> None:
        nonlocal last
        while True:
            if sub.closed is not None:
                await websocket.close(1008, sub.closed)
                return
            if sub.overflowed and sub.queue.empty():
                await websocket.close(1013, f"slow consumer: reconnect with since={last}")
                return
            seq, text = await sub.queue.get()
            if seq <= last:
                continue
            await websocket.send_text(text)
            last = seq

    async def receive() -> None:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return

    await _first_of(send(), receive())


async def _first_of(*tasks: Awaitable[None]) -> None:
    running = [asyncio.ensure_future(t) for t in tasks]
    try:
        done, _ = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            task.result()
    finally:
        for task in running:
            task.cancel()
