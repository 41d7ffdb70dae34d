"""Routes: accounts (open, deposit, withdraw, read, liquidation risk) and API keys.

Deposits need the ``depositor`` role (or admin); an account's own key may withdraw but not
deposit. Amounts are at most ``max_amount``. Cash leaves only trader accounts.
"""

from __future__ import annotations

from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, HTTPException, Path, Query, Request
from fastapi.responses import JSONResponse

from deleverage import AccountKind, Exchange, MarginMode
from deleverage.service import views
from deleverage.service.auth import Principal, Role
from deleverage.service.deps import (
    Admin,
    AnyKey,
    Depositor,
    FieldError,
    answer,
    check_amount,
    operation_result,
    service_of,
)
from deleverage.service.schemas import (
    MAX_ACCOUNT,
    AccountBatchCreate,
    AccountBatchCreated,
    AccountCreate,
    AccountCreated,
    Amount,
    KeyCreate,
    KeyCreated,
    KeyRotate,
    PredictionAlertSet,
)
from deleverage.service.storage import PredictionAlert

__all__ = ["router"]

router = APIRouter(prefix="/v1")
AccountId = Annotated[int, Path(ge=0, le=MAX_ACCOUNT)]


def _own(principal: Principal, account: int) -> None:
    if not principal.may_read_account(account):
        raise HTTPException(403, f"this key may not access account {account}")


def _expiry(now: int, seconds: float | None) -> int | None:
    return None if seconds is None else now + int(seconds * 1e9)


@router.post("/accounts", status_code=201, tags=["accounts"], response_model=AccountCreated)
async def create_account(body: AccountCreate, request: Request, principal: Admin) -> JSONResponse:
    """Open a trader account (optionally funded) and make its API key (admin)."""
    check_amount(service_of(request), "body.deposit", body.deposit)
    mode = MarginMode.ISOLATED if body.margin_mode == "isolated" else MarginMode.CROSS

    def op(ex: Exchange, ts: int) -> int:
        account = ex.open_account(label=body.label, margin_mode=mode, ts_ns=ts)
        if body.deposit is not None:
            ex.deposit(account, body.deposit, ts_ns=ts)
        return account

    def render(account: int, _n: Any, keys: list[tuple[int, str]]) -> dict[str, Any]:
        return {"account": account, "key_id": keys[0][0], "api_key": keys[0][1]}

    return await answer(
        request, principal, op, render, keys=lambda a: [(Role.ACCOUNT, a, None)], status=201
    )


@router.post(
    "/accounts/batch", status_code=201, tags=["accounts"], response_model=AccountBatchCreated
)
async def create_accounts(
    body: AccountBatchCreate, request: Request, principal: Admin
) -> JSONResponse:
    """Open up to 10,000 funded trader accounts at once, with their keys (admin)."""
    check_amount(service_of(request), "body.deposit", body.deposit)
    mode = MarginMode.ISOLATED if body.margin_mode == "isolated" else MarginMode.CROSS

    def op(ex: Exchange, ts: int) -> list[int]:
        ids = ex.open_accounts(body.count, margin_mode=mode, ts_ns=ts)
        if body.deposit is not None:
            ex.deposit_many(ids, np.full(len(ids), body.deposit), ts_ns=ts)
        return [int(a) for a in ids]

    def render(ids: list[int], _n: Any, keys: list[tuple[int, str]]) -> dict[str, Any]:
        return {"accounts": ids, "key_ids": [k for k, _ in keys], "api_keys": [k for _, k in keys]}

    return await answer(
        request, principal, op, render,
        keys=lambda ids: [(Role.ACCOUNT, a, None) for a in ids], status=201,
    )  # fmt: skip


@router.post("/accounts/{account}/deposit", tags=["accounts"])
async def deposit(
    account: AccountId, body: Amount, request: Request, principal: Depositor
) -> JSONResponse:
    """Deposit quote cash (admin or depositor keys; at most ``max_amount``)."""
    check_amount(service_of(request), "body.amount", body.amount)
    return await answer(
        request, principal, lambda ex, ts: ex.deposit(account, body.amount, ts_ns=ts),
        lambda _r, notes, _k: operation_result(1, notes),
    )  # fmt: skip


@router.post("/accounts/{account}/withdraw", tags=["accounts"])
async def withdraw(
    account: AccountId, body: Amount, request: Request, principal: AnyKey
) -> JSONResponse:
    """Withdraw quote cash up to the withdrawable amount (admin, or the account's key)."""
    _own(principal, account)
    check_amount(service_of(request), "body.amount", body.amount)

    def op(ex: Exchange, ts: int) -> None:
        kind = ex.account_kind(account)
        if kind != AccountKind.TRADER:
            raise FieldError(
                409, "account", account,
                f"must be a trader account: the venue's {kind.name.lower()} account's cash "
                "does not leave through the API",
            )  # fmt: skip
        ex.withdraw(account, body.amount, ts_ns=ts)

    return await answer(request, principal, op, lambda _r, notes, _k: operation_result(1, notes))


@router.get("/accounts/{account}", tags=["accounts"])
async def account_detail(account: AccountId, request: Request, principal: AnyKey) -> dict[str, Any]:
    """Margins and positions: margin ratio, liquidation and bankruptcy prices, ADL rank."""
    _own(principal, account)
    service = service_of(request)
    return await service.read(
        lambda ex: views.account_view(ex, account, service.alerts.adl_position)
    )


@router.get("/accounts/{account}/liquidation-risk", tags=["accounts"])
async def liquidation_risk(
    account: AccountId,
    request: Request,
    principal: AnyKey,
    market: Annotated[str, Query(min_length=1, max_length=64)],
    horizon_s: Annotated[float, Query(gt=0, le=10 * 366 * 86_400, allow_inf_nan=False)] = 86_400.0,
    volatility: Annotated[float | None, Query(gt=0, le=100, allow_inf_nan=False)] = None,
    drift: Annotated[float, Query(ge=-100, le=100, allow_inf_nan=False)] = 0.0,
) -> dict[str, Any]:
    """Probability that the position is liquidated within ``horizon_s`` (GBM mark)."""
    _own(principal, account)
    default = service_of(request).settings.default_volatility
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
            "horizon_s": horizon_s, "volatility": sigma, "drift": drift,
            "probability": p if np.isfinite(p) else None,
        }  # fmt: skip

    return await service_of(request).read(read)


@router.put("/accounts/{account}/prediction-alert", tags=["accounts"])
async def set_prediction_alert(
    account: AccountId, body: PredictionAlertSet, request: Request, principal: AnyKey
) -> dict[str, Any]:
    """Alert this account (a ``prediction_alert`` notification) when its predicted probability
    of liquidation within ``horizon_s`` rises through ``level`` (admin, or the account's key).
    Returns the probability now; replaces an earlier alert in the same market."""
    _own(principal, account)
    alert = PredictionAlert(account, body.market, body.level, body.horizon_s)
    probability = await service_of(request).set_prediction_alert(alert)
    return {
        "account": account, "market": body.market, "level": body.level,
        "horizon_s": body.horizon_s, "probability": probability,
    }  # fmt: skip


@router.delete("/accounts/{account}/prediction-alert", tags=["accounts"])
async def remove_prediction_alert(
    account: AccountId,
    request: Request,
    principal: AnyKey,
    market: Annotated[str, Query(min_length=1, max_length=64)],
) -> dict[str, Any]:
    """Remove the account's prediction alert in a market (admin, or the account's key)."""
    _own(principal, account)
    removed = await service_of(request).remove_prediction_alert(account, market)
    return {"account": account, "market": market, "removed": removed}


def _key_body(role: str, account: int | None, expires: int | None, replaced: int | None) -> Any:
    def render(_r: Any, _n: Any, keys: list[tuple[int, str]]) -> dict[str, Any]:
        return KeyCreated(
            key_id=keys[0][0], role=role, account=account, expires_ns=expires,
            revoked=replaced, api_key=keys[0][1],
        ).model_dump(mode="json")  # fmt: skip

    return render


@router.post("/keys", status_code=201, tags=["keys"], response_model=KeyCreated)
async def create_key(body: KeyCreate, request: Request, principal: Admin) -> JSONResponse:
    """Make an API key for a role (and account), optionally expiring, optionally revoking
    the key it ``replaces`` in the same transaction (admin)."""
    service = service_of(request)
    if body.account is not None:
        await service.read(lambda ex: ex.account_kind(int(body.account or 0)))
    if body.replaces is not None and service.keys.get(body.replaces) is None:
        raise FieldError(404, "body.replaces", body.replaces, "must be an existing key id")
    expires = _expiry(service.now_ns(), body.expires_in_s)
    role = Role(body.role)
    return await answer(
        request, principal, lambda ex, ts: None,
        _key_body(body.role, body.account, expires, body.replaces),
        keys=lambda _: [(role, body.account, expires)],
        revoke=() if body.replaces is None else (body.replaces,), status=201,
    )  # fmt: skip


@router.post("/keys/rotate", status_code=201, tags=["keys"], response_model=KeyCreated)
async def rotate_key(body: KeyRotate, request: Request, principal: AnyKey) -> JSONResponse:
    """Replace the calling key: a new key with its role and account; the old one is revoked."""
    service = service_of(request)
    record = service.keys.get(principal.key_id)
    expires = _expiry(service.now_ns(), body.expires_in_s)
    if expires is None and record is not None:
        expires = record.expires_ns
    return await answer(
        request, principal, lambda ex, ts: None,
        _key_body(principal.role.value, principal.account, expires, principal.key_id),
        keys=lambda _: [(principal.role, principal.account, expires)],
        revoke=(principal.key_id,), status=201,
    )  # fmt: skip


@router.get("/keys", tags=["keys"])
async def list_keys(request: Request, _key: Admin) -> list[dict[str, object]]:
    """Every key's id, role, account, creation, expiry, revocation and state (no digests)."""
    service = service_of(request)
    now = service.now_ns()
    return [record.public(now) for record in service.keys.records()]


@router.delete("/keys/{key_id}", tags=["keys"])
async def revoke_key(
    key_id: Annotated[int, Path(ge=1, le=MAX_ACCOUNT)], request: Request, principal: Admin
) -> JSONResponse:
    """Revoke a key at once (its open streams are closed) (admin)."""
    service = service_of(request)
    record = service.keys.get(key_id)
    if record is None:
        raise FieldError(404, "key_id", key_id, "must be an existing key id")

    def render(_r: Any, _n: Any, _k: Any) -> dict[str, Any]:
        return {"key_id": key_id, "revoked": True}

    return await answer(request, principal, lambda ex, ts: None, render, revoke=(key_id,))
