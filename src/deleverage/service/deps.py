"""Request plumbing shared by the routes: keys, roles, limits, bounds, idempotent writes.

Errors a client can cause are :class:`FieldError` (a status, the field, the value and the
rule), answered as ``{"detail": [{"field", "value", "message", "type"}]}``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request, Security
from fastapi.responses import JSONResponse
from fastapi.security import APIKeyHeader

from deleverage import Exchange
from deleverage.service.auth import Principal, Role
from deleverage.service.runtime import Idempotency, KeySpec, Render, RiskService, fingerprint
from deleverage.service.schemas import OperationResult

__all__ = [
    "Admin",
    "AnyKey",
    "Depositor",
    "Feed",
    "FieldError",
    "Oracle",
    "answer",
    "check_amount",
    "client_of",
    "jsonable",
    "operation_result",
    "service_of",
]

_api_key = APIKeyHeader(name="X-API-Key", auto_error=False, description="API key")
IDEMPOTENCY_HEADER = "Idempotency-Key"


class FieldError(Exception):
    """A refused input: HTTP status, field, value and the rule it broke."""

    def __init__(self, status: int, field: str, value: object, rule: str) -> None:
        self.status = status
        self.field = field
        self.value = value
        self.rule = rule
        super().__init__(f"`{field}` {rule}, was {jsonable(value)!r}")


def safe_text(text: str) -> str:
    """Text that encodes as UTF-8 (lone surrogates escaped)."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def jsonable(value: object) -> object:
    """A JSON-safe echo of an input value (non-finite floats and long text as strings)."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value if abs(value) <= 2**53 else str(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    text = value if isinstance(value, str) else repr(value)
    text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text if len(text) <= 120 else text[:117] + "..."


def service_of(request: Request) -> RiskService:
    service: RiskService = request.app.state.service
    return service


def client_of(request: Request) -> str:
    return request.client.host if request.client is not None else "unknown"


def limit_anonymous(request: Request) -> None:
    """Count a request without a valid key against its client address (429 over the limit)."""
    service = service_of(request)
    who = client_of(request)
    if not service.anonymous_limiter.allow(who):
        service.metrics.rate_limited.labels("anonymous").inc()
        wait = service.anonymous_limiter.retry_after(who)
        raise HTTPException(
            429,
            f"rate limit for requests without a valid key exceeded "
            f"({service.settings.anonymous_rate_limit_per_s:g}/s)",
            headers={"Retry-After": f"{max(1, math.ceil(wait))}"},
        )


def _principal(request: Request, key: Annotated[str | None, Security(_api_key)]) -> Principal:
    service = service_of(request)
    principal = service.keys.authenticate(key, service.now_ns())
    if principal is None:
        limit_anonymous(request)
        raise HTTPException(
            401,
            "missing, unknown, revoked or expired API key (header X-API-Key)",
            headers={"WWW-Authenticate": "ApiKey"},
        )
    request.state.key_id = principal.key_id
    if not service.limiter.allow(principal.key_hash):
        service.metrics.rate_limited.labels("key").inc()
        wait = service.limiter.retry_after(principal.key_hash)
        raise HTTPException(
            429,
            f"rate limit of {service.settings.rate_limit_per_s:g} requests/s exceeded",
            headers={"Retry-After": f"{max(1, math.ceil(wait))}"},
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
Depositor = Annotated[Principal, Depends(_roles(Role.ADMIN, Role.DEPOSITOR))]


def check_amount(service: RiskService, field: str, value: float | None) -> None:
    """Refuse an amount over the service's ``max_amount`` (422)."""
    limit = service.settings.max_amount
    if value is not None and value > limit:
        raise FieldError(422, field, value, f"must be at most {limit:g} (max_amount)")


def check_ts(service: RiskService, field: str, value: int | None) -> None:
    """Refuse a client timestamp too far from the server clock (422)."""
    if value is None:
        return
    now = service.now_ns()
    skew = int(service.settings.max_clock_skew_s * 1e9)
    if abs(value - now) > skew:
        raise FieldError(
            422, field, value,
            f"must be within {service.settings.max_clock_skew_s:g} s of the server clock "
            f"({now} ns)",
        )  # fmt: skip


async def _idempotency(request: Request, principal: Principal) -> Idempotency | None:
    key = request.headers.get(IDEMPOTENCY_HEADER)
    if key is None:
        return None
    if not 1 <= len(key) <= 128 or not key.isascii() or not key.isprintable():
        raise FieldError(
            422, f"header.{IDEMPOTENCY_HEADER}", key, "must be 1-128 printable ASCII characters"
        )
    body = await request.body()
    path = request.url.path + ("?" + request.url.query if request.url.query else "")
    return Idempotency(principal.key_hash, key, fingerprint(request.method, path, body))


async def answer(
    request: Request,
    principal: Principal,
    op: Callable[[Exchange, int], Any],
    render: Render,
    *,
    keys: Callable[[Any], KeySpec] | None = None,
    revoke: tuple[int, ...] = (),
    status: int = 200,
) -> JSONResponse:
    """Run a write (idempotent when the request carries an ``Idempotency-Key``)."""
    service = service_of(request)
    idem = await _idempotency(request, principal)
    outcome = await service.respond(
        op, render, keys=keys, revoke=revoke, idempotency=idem, status=status
    )
    headers = {"Idempotency-Replayed": "true"} if outcome.replayed else None
    return JSONResponse(outcome.body, outcome.status, headers=headers)


def operation_result(events: int, notes: list[dict[str, Any]], **detail: Any) -> dict[str, Any]:
    """The body of a write's answer (:class:`OperationResult`)."""
    return OperationResult(
        events=events,
        notifications=len(notes),
        first_notification_seq=notes[0]["seq"] if notes else None,
        detail=detail,
    ).model_dump(mode="json")
