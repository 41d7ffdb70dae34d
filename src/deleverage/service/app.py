"""The risk service's HTTP and WebSocket API (FastAPI), served by ``deleverage serve``.

Routes (under ``/v1`` unless noted; OpenAPI at ``/docs`` and ``/openapi.json``; key in
``X-API-Key``):

==========================================  ================  ================================
route                                       keys              what
==========================================  ================  ================================
``POST /markets``                           admin             list a market (preset or spec)
``GET /markets``, ``GET /info``             any               markets, system account ids
``GET /state``                              admin             state hash, journal length
``POST /accounts``, ``/accounts/batch``     admin             open (and fund) accounts + keys
``POST /accounts/{id}/deposit``             admin, depositor  bring quote cash in
``POST /accounts/{id}/withdraw``            admin, own        take quote cash out
``GET /accounts/{id}``                      admin, own        margins, positions, prices, ADL
``GET /accounts/{id}/liquidation-risk``     admin, own        probability of liquidation
``POST /trades``, ``/trades/batch``         admin, feed       fills between trader accounts
``POST /marks``                             admin, oracle     mark price: runs the risk step
``GET /markets/{symbol}/heatmap``           any               liquidation heatmap
``GET /markets/{symbol}/insurance``         any               fund balance and drawdown rule
``GET /markets/{symbol}/liquidations``      any               recent liquidations
``GET /notifications``                      any (scoped)      stored notifications after a seq
``POST /keys``, ``GET /keys``               admin             new key (rotation), key list
``DELETE /keys/{id}``                       admin             revoke a key
``POST /keys/rotate``                       any               replace the calling key
``WS /stream?since=N``                      any (scoped)      live notifications, resumable
``GET /health``, ``/ready``, ``/metrics``   none (top level)  liveness, readiness, Prometheus
==========================================  ================  ================================

Errors: 401 missing, unknown, revoked or expired key, 403 a key used outside its role or
account, 404 unknown market, account or key, 409 refused by the engine's state (margin,
funds, halted), 413 body too large, 422 invalid field (``detail[].field``, ``value`` and
``message``), 429 rate limit (``Retry-After``). Writes accept an ``Idempotency-Key`` header.
No input yields a 5xx; an unexpected failure is logged and answered 500 without details.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import SQLAlchemyError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from deleverage.errors import (
    DeleverageError,
    MarginError,
    StateError,
    UnknownEntityError,
    ValidationError,
)
from deleverage.service import (
    routes_accounts,
    routes_feeds,
    routes_markets,
    routes_ops,
    routes_streams,
    routes_world,
)
from deleverage.service.deps import FieldError, client_of, jsonable, safe_text
from deleverage.service.logs import logger
from deleverage.service.routes_feeds import BatchItemError
from deleverage.service.runtime import IdempotencyConflictError, RiskService
from deleverage.service.settings import ServiceSettings

__all__ = ["create_app"]


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
        body = {"detail": [{"field": "body", "value": None, "message": detail}]}
        await JSONResponse(body, 413)(scope, receive, send)


class _TooLargeError(Exception):
    pass


def _error_body(field: str, value: object, message: str, kind: str = "") -> dict[str, Any]:
    return {"detail": [{"field": safe_text(field), "value": jsonable(value),
                        "message": safe_text(message), "type": kind}]}  # fmt: skip


def _install_error_handlers(app: FastAPI) -> None:
    async def invalid(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        items = [
            {
                "field": ".".join(str(part) for part in err.get("loc", ())),
                "value": jsonable(err.get("input")),
                "message": safe_text(str(err.get("msg", ""))),
                "type": str(err.get("type", "")),
            }
            for err in exc.errors()
        ]
        return JSONResponse({"detail": items}, 422)

    async def field_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, FieldError)
        return JSONResponse(_error_body(exc.field, exc.value, str(exc), "refused"), exc.status)

    async def conflict(_: Request, exc: Exception) -> JSONResponse:
        message = "Idempotency-Key was already used for a different request"
        return JSONResponse(_error_body("header.Idempotency-Key", str(exc), message), 422)

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
        value = getattr(cause, "value", None)
        return JSONResponse(_error_body(field.rstrip("."), value, str(exc)), status)

    async def database_error(request: Request, exc: Exception) -> JSONResponse:
        logger.error(
            "database unavailable", extra={"path": request.url.path, "error": str(exc)[:300]}
        )
        message = f"database unavailable, nothing was changed: {type(exc).__name__}"
        return JSONResponse(_error_body("database", None, message), 503)

    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        logger.exception(
            "unexpected error", extra={"path": request.url.path, "error": type(exc).__name__}
        )
        return JSONResponse({"detail": [{"field": "", "message": "internal error"}]}, 500)

    app.add_exception_handler(RequestValidationError, invalid)
    app.add_exception_handler(FieldError, field_error)
    app.add_exception_handler(IdempotencyConflictError, conflict)
    app.add_exception_handler(DeleverageError, engine_error)
    app.add_exception_handler(SQLAlchemyError, database_error)
    app.add_exception_handler(Exception, unexpected)


def _install_request_log(app: FastAPI) -> None:
    @app.middleware("http")
    async def observe(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        start = time.perf_counter()
        status = 500
        try:
            response = await call_next(request)
            status = response.status_code
            return response
        finally:
            elapsed = time.perf_counter() - start
            route = getattr(request.scope.get("route"), "path", "unmatched")
            service: RiskService | None = getattr(request.app.state, "service", None)
            if service is not None:
                service.metrics.requests.labels(request.method, route, str(status)).inc()
                service.metrics.latency.labels(request.method, route).observe(elapsed)
            fields = {
                "method": request.method, "route": route, "status": status,
                "duration_ms": round(elapsed * 1000, 3), "client": client_of(request),
                "key_id": getattr(request.state, "key_id", None),
            }  # fmt: skip
            level = 20 if status < 400 else 30 if status < 500 else 40
            logger.log(level, "request", extra=fields)


def create_app(settings: ServiceSettings) -> FastAPI:
    """Build the service's FastAPI application (the engine is rebuilt at start-up)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        service = await asyncio.to_thread(RiskService, settings)
        app.state.service = service
        service.webhooks.start()
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
            await service.webhooks.stop()
            service.close()

    app = FastAPI(
        title="deleverage risk service",
        version="0.2.0",
        description=(
            "Real-time margin, liquidation, insurance-fund and ADL risk over the deleverage "
            "engine. Authenticate with the X-API-Key header. See docs/service.md."
        ),
        lifespan=lifespan,
    )
    _install_request_log(app)
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    _install_error_handlers(app)
    for module in (
        routes_markets, routes_accounts, routes_feeds, routes_streams, routes_ops, routes_world,
    ):  # fmt: skip
        app.include_router(module.router)
    return app
