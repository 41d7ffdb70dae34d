"""Routes: the world around the service's venue (read-only; any key may read)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from deleverage import Exchange
from deleverage.service.deps import AnyKey, service_of

__all__ = ["router"]

router = APIRouter(prefix="/v1")
Asset = Annotated[str, Query(min_length=1, max_length=64)]


@router.get("/world/heatmap", tags=["world"])
async def world_heatmap(
    request: Request,
    _key: AnyKey,
    asset: Asset,
    bucket_width: Annotated[float, Query(ge=1e-6, le=1e12, allow_inf_nan=False)],
) -> dict[str, Any]:
    """Liquidation heatmap of every venue of the world and of the world (summed)."""
    service = service_of(request)

    def read(ex: Exchange) -> dict[str, Any]:
        return service.world.heatmap(ex, asset, bucket_width)

    return await service.read(read)


@router.get("/world/criticality", tags=["world"])
async def world_criticality(
    request: Request,
    _key: AnyKey,
    asset: Asset,
    shock: Annotated[float, Query(gt=0, lt=1, allow_inf_nan=False)] = 0.02,
) -> list[dict[str, Any]]:
    """Branching ratio at ``shock`` and critical shock per venue and for the world."""
    service = service_of(request)

    def read(ex: Exchange) -> list[dict[str, Any]]:
        return service.world.criticality(ex, asset, shock)

    return await service.read(read)
