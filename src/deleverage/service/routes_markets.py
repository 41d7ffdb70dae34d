"""Routes: markets, service info, heatmap, insurance fund, liquidations, state digest."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse

from deleverage import Exchange, MarketSpec, preset
from deleverage.errors import ValidationError
from deleverage.service import views
from deleverage.service.deps import Admin, AnyKey, answer, service_of
from deleverage.service.schemas import MarketCreate

__all__ = ["router"]

router = APIRouter(prefix="/v1")
Symbol = Annotated[str, Query(min_length=1, max_length=64)]


@router.post("/markets", status_code=201, tags=["markets"])
async def create_market(body: MarketCreate, request: Request, principal: Admin) -> JSONResponse:
    """List a market from a venue preset or a full MarketSpec (admin)."""
    if body.spec is not None:
        spec = MarketSpec.from_mapping(body.spec)
    else:
        spec = preset(str(body.venue), body.symbol or "BTC")
    if spec.contract_type == "inverse":
        raise ValidationError(
            "spec.contract_type", "inverse", "must be 'linear': the service's views, feeds and "
            "bounds are in quote and base units (run an inverse market on an Exchange)",
        )  # fmt: skip

    def render(market: int, _notes: Any, _keys: Any) -> dict[str, Any]:
        return {"market": market, "symbol": spec.symbol, "spec": spec.model_dump(mode="json")}

    return await answer(
        request, principal, lambda ex, ts: ex.list_market(spec, ts_ns=ts), render, status=201
    )


@router.get("/markets", tags=["markets"])
async def list_markets(request: Request, _key: AnyKey) -> list[dict[str, Any]]:
    """Every listed market with its mark price."""

    def read(ex: Exchange) -> list[dict[str, Any]]:
        return [
            {"market": s.id, "symbol": s.spec.symbol, "mark_price": s.mark,
             "max_leverage": s.spec.max_leverage}
            for s in ex.markets
        ]  # fmt: skip

    return await service_of(request).read(read)


@router.get("/info", tags=["markets"])
async def info(request: Request, _key: AnyKey) -> dict[str, Any]:
    """System account ids, account count, the latest notification seq."""
    service = service_of(request)

    def read(ex: Exchange) -> dict[str, Any]:
        return {
            "liquidity_account": ex.liquidity_account,
            "insurance_account": ex.insurance_account,
            "fee_account": ex.fee_account,
            "backstop_account": ex.backstop_account,
            "liquidator_account": ex.liquidator_account,
            "accounts": ex.n_accounts,
            "events": len(ex.journal),
            "last_notification_seq": service.next_seq - 1,
            "subscribers": len(service.hub),
            "margin_levels": list(service.settings.margin_levels),
            "trade_price_band": service.settings.trade_price_band,
            "max_amount": service.settings.max_amount,
        }

    return await service.read(read)


@router.get("/state", tags=["markets"])
async def state(request: Request, _key: Admin) -> dict[str, Any]:
    """The engine's state digest, journal length, clock and last seq (admin; audits, tests)."""
    service = service_of(request)

    def read(ex: Exchange) -> dict[str, Any]:
        balance = ex.conservation()
        return {
            "state_hash": ex.state_hash(),
            "events": len(ex.journal),
            "clock_ns": ex.clock_ns,
            "last_notification_seq": service.next_seq - 1,
            "conserved": bool(balance.holds),
            "snapshot_events": service.restored_from,
        }

    return await service.read(read)


@router.get("/markets/{symbol}/heatmap", tags=["markets"])
async def heatmap(
    symbol: str,
    request: Request,
    _key: AnyKey,
    bucket_width: Annotated[float, Query(ge=1e-6, le=1e12, allow_inf_nan=False)],
) -> dict[str, Any]:
    """Liquidation notional by price bucket and side (trader positions)."""

    def read(ex: Exchange) -> dict[str, Any]:
        m = ex.market_id(symbol)
        rows = views.heatmap_view(ex, m, bucket_width)
        return {"market": symbol, "mark_price": ex.markets[m].mark, "buckets": rows}

    return await service_of(request).read(read)


@router.get("/markets/{symbol}/insurance", tags=["markets"])
async def insurance(symbol: str, request: Request, _key: AnyKey) -> dict[str, Any]:
    """Insurance fund balance (the engine's own figures) and Bybit's 8-hour drawdown rule."""
    service = service_of(request)
    return await service.read(
        lambda ex: views.insurance_view(ex, ex.market_id(symbol), service.now_ns())
    )


@router.get("/markets/{symbol}/liquidations", tags=["markets"])
async def liquidations(
    symbol: str,
    request: Request,
    _key: AnyKey,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
) -> list[dict[str, Any]]:
    """The newest liquidations of a market, newest first."""
    service = service_of(request)
    market = await service.read(lambda ex: ex.market_id(symbol))
    rows = await asyncio.to_thread(service.storage.recent_liquidations, market, limit)
    return [
        {"seq": r["seq"], "ts_ns": r["ts_ns"], "account": r["account"], "size": r["size"],
         "price": r["price"], "shortfall": r["amount"], "penalty": r["fee"],
         "bankruptcy_price": r["counterparty_fee"]}
        for r in rows
    ]  # fmt: skip
