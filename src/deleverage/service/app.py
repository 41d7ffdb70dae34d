"""The risk service's HTTP and WebSocket API (FastAPI), served by ``deleverage serve``.

Routes (all under ``/v1``; OpenAPI at ``/docs`` and ``/openapi.json``; key in ``X-API-Key``):

========================================  ===============  ==================================
route                                     keys             what
========================================  ===============  ==================================
``POST /markets``                         admin            list a market (preset or spec)
``GET /markets``, ``GET /info``           any              markets, system account ids
``POST /accounts``, ``/accounts/batch``   admin            open (and fund) accounts + keys
``POST /accounts/{id}/deposit|withdraw``  admin, own       move quote cash
``GET /accounts/{id}``                    admin, own       margins, positions, prices, ADL
``GET /accounts/{id}/liquidation-risk``   admin, own       probability of liquidation
``POST /trades``, ``/trades/batch``       admin, feed      fills
``POST /marks``                           admin, oracle    mark price: runs the risk step
``GET /markets/{symbol}/heatmap``         any              liquidation heatmap
``GET /markets/{symbol}/insurance``       any              fund balance and drawdown rule
``GET /markets/{symbol}/liquidations``    any              recent liquidations
``GET /notifications``                    any (scoped)     stored notifications after a seq
``POST /keys``                            admin            new API key
``WS /stream?since=N``                    any (scoped)     live notifications, resumable
========================================  ===============  ==================================

Errors: 401 missing or unknown key, 403 a key used outside its role or account, 404 unknown
market or account, 409 refused by the engine's state (margin, funds, halted), 413 body too
large, 422 invalid field (named in ``detail[].field``), 429 rate limit (``Retry-After``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Annotated, Any

import numpy as np
from fastapi import Depends, FastAPI, HTTPException, Query, Request, Security, WebSocket
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import APIKeyHeader
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from starlette.websockets import WebSocketDisconnect

from deleverage.engine.exchange import Exchange
from deleverage.errors import (
    DeleverageError,
    MarginError,
    StateError,
    UnknownEntityError,
    ValidationError,
)
from deleverage.service import views
from deleverage.service.auth import Principal, Role, hash_key, new_key
from deleverage.service.runtime import RiskService
from deleverage.service.schemas import (
    AccountBatchCreate,
    AccountBatchCreated,
    AccountCreate,
    AccountCreated,
    Amount,
    KeyCreate,
    KeyCreated,
    MarketCreate,
    MarkPost,
    OperationResult,
    TradeBatch,
    TradePost,
)
from deleverage.service.settings import ServiceSettings
from deleverage.spec import MarginMode, MarketSpec
from deleverage.venues import preset

__all__ = ["create_app"]

_api_key = APIKeyHeader(name="X-API-Key", auto_error=False, description="API key")


class BatchItemError(DeleverageError):
    """One item of a batch failed; the whole batch was rolled back."""

    def __init__(self, field: str, cause: DeleverageError) -> None:
        self.field = field
        self.cause = cause
        super().__init__(f"{field}: {cause}")


class BodyLimit:
    """ASGI middleware: answer 413 to a request body over ``max_bytes``."""

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length" and value.isdigit() and int(value) > self.max_bytes:
                await self._reject(scope, receive, send)
                return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise _TooLargeError
            return message

        try:
            await self.app(scope, limited, send)
        except _TooLargeError:
            await self._reject(scope, receive, send)

    async def _reject(self, scope: Scope, receive: Receive, send: Send) -> None:
        detail = f"request body must be at most {self.max_bytes} bytes"
        response = JSONResponse({"detail": [{"field": "body", "message": detail}]}, 413)
        await response(scope, receive, send)


class _TooLargeError(Exception):
    pass


def _service(request: Request) -> RiskService:
    service: RiskService = request.app.state.service
    return service


def _principal(request: Request, key: Annotated[str | None, Security(_api_key)]) -> Principal:
    service = _service(request)
    principal = service.keys.authenticate(key)
    if principal is None:
        raise HTTPException(
            401,
            "missing or unknown API key (header X-API-Key)",
            headers={"WWW-Authenticate": "ApiKey"},
        )
    if not service.limiter.allow(principal.key_hash):
        wait = service.limiter.retry_after(principal.key_hash)
        raise HTTPException(
            429,
            f"rate limit of {service.settings.rate_limit_per_s:g} requests/s exceeded",
            headers={"Retry-After": f"{max(1, round(wait + 0.5))}"},
        )
    return principal


def _roles(*roles: Role) -> Callable[[Principal], Principal]:
    def check(principal: Annotated[Principal, Depends(_principal)]) -> Principal:
        if principal.role not in roles:
            names = ", ".join(r.value for r in roles)
            raise HTTPException(403, f"this endpoint needs a key with role: {names}")
        return principal

    return check


AnyKey = Annotated[Principal, Depends(_principal)]
Admin = Annotated[Principal, Depends(_roles(Role.ADMIN))]
Oracle = Annotated[Principal, Depends(_roles(Role.ADMIN, Role.ORACLE))]
Feed = Annotated[Principal, Depends(_roles(Role.ADMIN, Role.FEED))]
AccountPath = Annotated[int, Query(ge=0)]


def _own(principal: Principal, account: int) -> None:
    if not principal.may_read_account(account):
        raise HTTPException(403, f"this key may not access account {account}")


def _result(events: int, notes: list[dict[str, Any]], **detail: Any) -> OperationResult:
    return OperationResult(
        events=events,
        notifications=len(notes),
        first_notification_seq=notes[0]["seq"] if notes else None,
        detail=detail,
    )


def _error_body(field: str, message: str) -> dict[str, Any]:
    return {"detail": [{"field": field, "message": message}]}


def _install_error_handlers(app: FastAPI) -> None:
    async def invalid(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        items = [
            {
                "field": ".".join(str(part) for part in err.get("loc", ())),
                "message": str(err.get("msg", "")),
                "type": str(err.get("type", "")),
            }
            for err in exc.errors()
        ]
        return JSONResponse({"detail": items}, 422)

    async def engine_error(_: Request, exc: Exception) -> JSONResponse:
        cause = exc.cause if isinstance(exc, BatchItemError) else exc
        prefix = f"{exc.field}." if isinstance(exc, BatchItemError) else ""
        field = prefix + str(getattr(cause, "field", "") or "")
        if isinstance(cause, ValidationError):
            status = 422
        elif isinstance(cause, UnknownEntityError):
            status = 404
        elif isinstance(cause, MarginError | StateError):
            status = 409
        else:
            status = 400
        return JSONResponse(_error_body(field.rstrip("."), str(exc)), status)

    app.add_exception_handler(RequestValidationError, invalid)
    app.add_exception_handler(DeleverageError, engine_error)


def create_app(settings: ServiceSettings) -> FastAPI:
    """Build the service's FastAPI application (the engine is rebuilt at start-up)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        service = await asyncio.to_thread(RiskService, settings)
        app.state.service = service
        # The imported libraries and the rebuilt engine live as long as the process: keep
        # them out of the cyclic collector's full passes (measured pauses of 150-400 ms with
        # 10,000 accounts and 1,000 sockets otherwise; benchmarks/service_load.py).
        gc.collect()
        gc.freeze()
        # Full collections scan every long-lived object (each socket holds hundreds): make
        # them rare; reference counting frees everything that is not in a cycle anyway.
        gc.set_threshold(10_000, 50, 1_000)
        try:
            yield
        finally:
            service.close()

    app = FastAPI(
        title="deleverage risk service",
        version="0.1.0",
        description=(
            "Real-time margin, liquidation, insurance-fund and ADL risk over the deleverage "
            "engine. Authenticate with the X-API-Key header. See docs/service.md."
        ),
        lifespan=lifespan,
    )
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    _install_error_handlers(app)
    _routes_markets(app)
    _routes_accounts(app)
    _routes_feeds(app)
    _routes_streams(app)
    return app


def _routes_markets(app: FastAPI) -> None:
    @app.post("/v1/markets", status_code=201, tags=["markets"])
    async def create_market(body: MarketCreate, request: Request, _key: Admin) -> dict[str, Any]:
        """List a market from a venue preset or a full MarketSpec (admin)."""
        if body.spec is not None:
            spec = MarketSpec.from_mapping(body.spec)
        else:
            spec = preset(str(body.venue), body.symbol or "BTC")
        market, _notes = await _service(request).write(
            lambda ex, ts: ex.list_market(spec, ts_ns=ts)
        )
        return {"market": market, "symbol": spec.symbol, "spec": spec.model_dump(mode="json")}

    @app.get("/v1/markets", tags=["markets"])
    async def list_markets(request: Request, _key: AnyKey) -> list[dict[str, Any]]:
        """Every listed market with its mark price."""

        def read(ex: Exchange) -> list[dict[str, Any]]:
            return [
                {"market": s.id, "symbol": s.spec.symbol, "mark_price": s.mark,
                 "max_leverage": s.spec.max_leverage}
                for s in ex.markets
            ]  # fmt: skip

        return await _service(request).read(read)

    @app.get("/v1/info", tags=["markets"])
    async def info(request: Request, _key: AnyKey) -> dict[str, Any]:
        """System account ids, account count, the latest notification seq."""
        service = _service(request)

        def read(ex: Exchange) -> dict[str, Any]:
            return {
                "liquidity_account": ex.liquidity_account,
                "insurance_account": ex.insurance_account,
                "fee_account": ex.fee_account,
                "accounts": ex.n_accounts,
                "events": len(ex.journal),
                "last_notification_seq": service.next_seq - 1,
                "subscribers": len(service.hub),
                "margin_levels": list(service.settings.margin_levels),
            }

        return await service.read(read)

    @app.get("/v1/markets/{symbol}/heatmap", tags=["markets"])
    async def heatmap(
        symbol: str,
        request: Request,
        _key: AnyKey,
        bucket_width: Annotated[float, Query(gt=0, allow_inf_nan=False)],
    ) -> dict[str, Any]:
        """Liquidation notional by price bucket and side (trader positions)."""

        def read(ex: Exchange) -> dict[str, Any]:
            m = ex.market_id(symbol)
            rows = views.heatmap_view(ex, m, bucket_width)
            return {"market": symbol, "mark_price": ex.markets[m].mark, "buckets": rows}

        return await _service(request).read(read)

    @app.get("/v1/markets/{symbol}/insurance", tags=["markets"])
    async def insurance(symbol: str, request: Request, _key: AnyKey) -> dict[str, Any]:
        """Insurance fund balance and Bybit's 8-hour drawdown rule."""
        service = _service(request)
        return await service.read(
            lambda ex: views.insurance_view(ex, ex.market_id(symbol), service.now_ns())
        )

    @app.get("/v1/markets/{symbol}/liquidations", tags=["markets"])
    async def liquidations(
        symbol: str,
        request: Request,
        _key: AnyKey,
        limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    ) -> list[dict[str, Any]]:
        """The newest liquidations of a market, newest first."""
        service = _service(request)
        market = await service.read(lambda ex: ex.market_id(symbol))
        rows = await asyncio.to_thread(service.storage.recent_liquidations, market, limit)
        return [
            {"seq": r["seq"], "ts_ns": r["ts_ns"], "account": r["account"], "size": r["size"],
             "price": r["price"], "shortfall": r["amount"], "penalty": r["fee"],
             "bankruptcy_price": r["counterparty_fee"]}
            for r in rows
        ]  # fmt: skip


def _routes_accounts(app: FastAPI) -> None:
    @app.post("/v1/accounts", status_code=201, tags=["accounts"])
    async def create_account(body: AccountCreate, request: Request, _key: Admin) -> AccountCreated:
        """Open a trader account (optionally funded) and make its API key (admin)."""
        key = new_key()
        mode = MarginMode.ISOLATED if body.margin_mode == "isolated" else MarginMode.CROSS

        def op(ex: Exchange, ts: int) -> int:
            account = ex.open_account(label=body.label, margin_mode=mode, ts_ns=ts)
            if body.deposit is not None:
                ex.deposit(account, body.deposit, ts_ns=ts)
            return account

        account, _notes = await _service(request).write(
            op, keys=lambda a: [(hash_key(key), Role.ACCOUNT.value, a)]
        )
        return AccountCreated(account=account, api_key=key)

    @app.post("/v1/accounts/batch", status_code=201, tags=["accounts"])
    async def create_accounts(
        body: AccountBatchCreate, request: Request, _: Admin
    ) -> AccountBatchCreated:
        """Open up to 10,000 funded trader accounts at once, with their keys (admin)."""
        keys = [new_key() for _ in range(body.count)]
        mode = MarginMode.ISOLATED if body.margin_mode == "isolated" else MarginMode.CROSS

        def op(ex: Exchange, ts: int) -> list[int]:
            ids = ex.open_accounts(body.count, margin_mode=mode, ts_ns=ts)
            if body.deposit is not None:
                ex.deposit_many(ids, np.full(len(ids), body.deposit), ts_ns=ts)
            return [int(a) for a in ids]

        def digests(ids: list[int]) -> list[tuple[str, str, int | None]]:
            return [(hash_key(k), Role.ACCOUNT.value, a) for k, a in zip(keys, ids, strict=True)]

        accounts, _notes = await _service(request).write(op, keys=digests)
        return AccountBatchCreated(accounts=accounts, api_keys=keys)

    @app.post("/v1/accounts/{account}/deposit", tags=["accounts"])
    async def deposit(
        account: int, body: Amount, request: Request, principal: AnyKey
    ) -> OperationResult:
        """Deposit quote cash (admin, or the account's own key)."""
        _own(principal, account)
        _, notes = await _service(request).write(
            lambda ex, ts: ex.deposit(account, body.amount, ts_ns=ts)
        )
        return _result(1, notes)

    @app.post("/v1/accounts/{account}/withdraw", tags=["accounts"])
    async def withdraw(
        account: int, body: Amount, request: Request, principal: AnyKey
    ) -> OperationResult:
        """Withdraw quote cash up to the withdrawable amount (admin, or the account's key)."""
        _own(principal, account)
        _, notes = await _service(request).write(
            lambda ex, ts: ex.withdraw(account, body.amount, ts_ns=ts)
        )
        return _result(1, notes)

    @app.get("/v1/accounts/{account}", tags=["accounts"])
    async def account_detail(account: int, request: Request, principal: AnyKey) -> dict[str, Any]:
        """Margins and positions: margin ratio, liquidation and bankruptcy prices, ADL rank."""
        _own(principal, account)
        service = _service(request)
        return await service.read(
            lambda ex: views.account_view(ex, account, service.alerts.adl_position)
        )

    @app.get("/v1/accounts/{account}/liquidation-risk", tags=["accounts"])
    async def liquidation_risk(
        account: int,
        request: Request,
        principal: AnyKey,
        market: Annotated[str, Query(min_length=1, max_length=64)],
        horizon_s: Annotated[float, Query(gt=0, allow_inf_nan=False)] = 86_400.0,
        volatility: Annotated[float | None, Query(gt=0, allow_inf_nan=False)] = None,
        drift: Annotated[float, Query(allow_inf_nan=False)] = 0.0,
    ) -> dict[str, Any]:
        """Probability that the position is liquidated within ``horizon_s`` (GBM mark)."""
        _own(principal, account)
        default = _service(request).settings.default_volatility
        sigma = volatility if volatility is not None else default

        def read(ex: Exchange) -> dict[str, Any]:
            m = ex.market_id(market)
            ex.account_kind(account)  # unknown account: 404
            size = float(ex.columns(m).size[account])
            liq, _ = views.liquidation_prices(ex, m, np.asarray([account], dtype=np.int64))
            mark = ex.markets[m].mark
            p = 0.0
            if size != 0.0 and mark > 0.0:
                p = views.liquidation_probability(
                    mark, float(liq[0]), 1 if size > 0 else -1,
                    volatility=sigma, drift=drift, horizon_s=horizon_s,
                )  # fmt: skip
            return {
                "account": account, "market": market, "size": size, "mark_price": mark,
                "liquidation_price": float(liq[0]) if np.isfinite(liq[0]) else None,
                "horizon_s": horizon_s, "volatility": sigma, "drift": drift, "probability": p,
            }  # fmt: skip

        return await _service(request).read(read)

    @app.post("/v1/keys", status_code=201, tags=["keys"])
    async def create_key(body: KeyCreate, request: Request, _key: Admin) -> KeyCreated:
        """Make an API key for a role (and account); only its SHA-256 digest is stored."""
        key = new_key()
        service = _service(request)
        if body.account is not None:
            await service.read(lambda ex: ex.account_kind(int(body.account or 0)))
        await service.write(
            lambda ex, ts: None, keys=lambda _: [(hash_key(key), body.role, body.account)]
        )
        return KeyCreated(role=body.role, account=body.account, api_key=key)


def _routes_feeds(app: FastAPI) -> None:
    def trade(ex: Exchange, t: TradePost, ts: int) -> None:
        ex.trade(
            t.market, buyer=t.buyer, seller=t.seller, size=t.size, price=t.price,
            taker=t.taker, ts_ns=ts if t.ts_ns is None else t.ts_ns,
        )  # fmt: skip

    @app.post("/v1/trades", tags=["feeds"])
    async def post_trade(body: TradePost, request: Request, _key: Feed) -> OperationResult:
        """Apply one fill between two accounts (admin or venue feed)."""
        _, notes = await _service(request).write(lambda ex, ts: trade(ex, body, ts))
        return _result(1, notes)

    @app.post("/v1/trades/batch", tags=["feeds"])
    async def post_trades(body: TradeBatch, request: Request, _key: Feed) -> OperationResult:
        """Apply up to 10,000 fills in order, all or nothing (admin or venue feed)."""

        def op(ex: Exchange, ts: int) -> None:
            for i, t in enumerate(body.trades):
                try:
                    trade(ex, t, ts)
                except DeleverageError as exc:
                    raise BatchItemError(f"trades[{i}]", exc) from exc

        _, notes = await _service(request).write(op)
        return _result(len(body.trades), notes)

    @app.post("/v1/marks", tags=["feeds"])
    async def post_mark(body: MarkPost, request: Request, _key: Oracle) -> OperationResult:
        """Set a mark price and run the risk step: margin calls, liquidations, fund, ADL."""

        def op(ex: Exchange, ts: int) -> dict[str, Any]:
            start = len(ex.journal)
            ex.set_mark(body.market, body.price, ts_ns=ts if body.ts_ns is None else body.ts_ns)
            report = dataclasses.asdict(ex.last_step)
            report["events"] = len(ex.journal) - start
            return report

        report, notes = await _service(request).write(op)
        return _result(int(report.pop("events")), notes, **report)


def _routes_streams(app: FastAPI) -> None:
    def scope_of(principal: Principal, account: int | None) -> tuple[int | None, bool]:
        if principal.role is Role.ADMIN:
            return account, True
        if principal.role is Role.ACCOUNT:
            if account is not None and account != principal.account:
                raise HTTPException(403, f"this key may not access account {account}")
            return principal.account, False
        if account is not None:
            raise HTTPException(403, f"this key may not access account {account}")
        return None, False

    @app.get("/v1/notifications", tags=["notifications"])
    async def notifications(
        request: Request,
        principal: AnyKey,
        since: Annotated[int, Query(ge=0)] = 0,
        account: Annotated[int | None, Query(ge=0)] = None,
        limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
    ) -> list[dict[str, Any]]:
        """Stored notifications with ``seq > since``, oldest first (same scope as the stream)."""
        who, everything = scope_of(principal, account)
        storage = _service(request).storage
        return await asyncio.to_thread(
            storage.notifications_after, since, account=who, everything=everything, limit=limit
        )

    @app.websocket("/v1/stream")
    async def stream(
        websocket: WebSocket,
        since: Annotated[int | None, Query(ge=0)] = None,
        account: Annotated[int | None, Query(ge=0)] = None,
    ) -> None:
        """Live notifications; ``since=N`` first replays the stored ones after ``N``."""
        service: RiskService = websocket.app.state.service
        key = websocket.headers.get("x-api-key") or websocket.query_params.get("api_key")
        principal = service.keys.authenticate(key)
        if principal is None:
            await _deny(websocket, 401, "missing or unknown API key (header X-API-Key)")
            return
        try:
            who, everything = scope_of(principal, account)
        except HTTPException as exc:
            await _deny(websocket, exc.status_code, str(exc.detail))
            return
        await websocket.accept()
        sub = service.hub.subscribe(
            account=who, everything=everything, maxsize=service.settings.subscriber_queue
        )
        try:
            await _pump(websocket, service, sub, since, who, everything)
        except WebSocketDisconnect:
            pass
        finally:
            service.hub.unsubscribe(sub)


async def _deny(websocket: WebSocket, status: int, message: str) -> None:
    await websocket.send_denial_response(JSONResponse(_error_body("api_key", message), status))


async def _pump(
    websocket: WebSocket,
    service: RiskService,
    sub: Any,
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
