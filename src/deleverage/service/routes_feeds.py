"""Routes: trades (venue feed) and marks (oracle).

A client trade is between two trader accounts: the venue's system accounts (insurance, fees,
liquidity, backstop, liquidator) only move through the engine's own risk step. Its price must
lie within ``trade_price_band`` of the market's mark, and a client ``ts_ns`` within
``max_clock_skew_s`` of the server clock.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from deleverage import AccountKind, DeleverageError, Exchange
from deleverage.service.deps import Feed, FieldError, Oracle, answer, check_ts, operation_result
from deleverage.service.deps import service_of as _service
from deleverage.service.schemas import MarkPost, TradeBatch, TradePost

__all__ = ["BatchItemError", "router"]

router = APIRouter(prefix="/v1")


class BatchItemError(DeleverageError):
    """One item of a batch failed; the whole batch was rolled back."""

    def __init__(self, field: str, cause: DeleverageError) -> None:
        self.field = field
        self.cause = cause
        super().__init__(f"{field}: {cause}")


def _check_trade(ex: Exchange, t: TradePost, band: float, prefix: str) -> None:
    for side, account in (("buyer", t.buyer), ("seller", t.seller)):
        if 0 <= account < ex.n_accounts and ex.account_kind(account) != AccountKind.TRADER:
            kind = ex.account_kind(account).name.lower()
            raise FieldError(
                422, f"{prefix}.{side}", account,
                f"must be a trader account (account {account} is the venue's {kind} account)",
            )  # fmt: skip
    m = ex.market_id(t.market)
    mark = ex.markets[m].mark
    if mark > 0 and abs(t.price / mark - 1.0) > band:
        low, high = mark * (1 - band), mark * (1 + band)
        raise FieldError(
            422, f"{prefix}.price", t.price,
            f"must be within {band:.4g} of the mark {mark:g} ([{low:g}, {high:g}])",
        )  # fmt: skip


def _trade(ex: Exchange, t: TradePost, ts: int, band: float, prefix: str) -> None:
    _check_trade(ex, t, band, prefix)
    ex.trade(
        t.market, buyer=t.buyer, seller=t.seller, size=t.size, price=t.price,
        taker=t.taker, ts_ns=ts if t.ts_ns is None else t.ts_ns,
    )  # fmt: skip


@router.post("/trades", tags=["feeds"])
async def post_trade(body: TradePost, request: Request, principal: Feed) -> JSONResponse:
    """Apply one fill between two trader accounts (admin or venue feed)."""
    service = _service(request)
    check_ts(service, "body.ts_ns", body.ts_ns)
    band = service.settings.trade_price_band
    return await answer(
        request, principal, lambda ex, ts: _trade(ex, body, ts, band, "body"),
        lambda _r, notes, _k: operation_result(1, notes),
    )  # fmt: skip


@router.post("/trades/batch", tags=["feeds"])
async def post_trades(body: TradeBatch, request: Request, principal: Feed) -> JSONResponse:
    """Apply up to 10,000 fills in order, all or nothing (admin or venue feed)."""
    service = _service(request)
    band = service.settings.trade_price_band
    for i, t in enumerate(body.trades):
        check_ts(service, f"body.trades.{i}.ts_ns", t.ts_ns)

    def op(ex: Exchange, ts: int) -> None:
        for i, t in enumerate(body.trades):
            try:
                _trade(ex, t, ts, band, f"body.trades.{i}")
            except DeleverageError as exc:
                raise BatchItemError(f"trades[{i}]", exc) from exc

    return await answer(
        request, principal, op, lambda _r, notes, _k: operation_result(len(body.trades), notes)
    )


@router.post("/marks", tags=["feeds"])
async def post_mark(body: MarkPost, request: Request, principal: Oracle) -> JSONResponse:
    """Set a mark price and run the risk step: margin calls, liquidations, fund, ADL."""
    check_ts(_service(request), "body.ts_ns", body.ts_ns)

    def op(ex: Exchange, ts: int) -> dict[str, Any]:
        start = len(ex.journal)
        ex.set_mark(body.market, body.price, ts_ns=ts if body.ts_ns is None else body.ts_ns)
        report = dataclasses.asdict(ex.last_step)
        report["events"] = len(ex.journal) - start
        return report

    def render(report: dict[str, Any], notes: list[dict[str, Any]], _k: Any) -> dict[str, Any]:
        report = dict(report)
        return operation_result(int(report.pop("events")), notes, **report)

    return await answer(request, principal, op, render)
