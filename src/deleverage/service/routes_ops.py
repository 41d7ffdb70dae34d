"""Routes for operators: ``/health`` (alive), ``/ready`` (can serve), ``/metrics``.

No key is needed; requests count against the per-address limit for requests without a key.

- ``GET /health``: 200 while the process and its event loop answer.
- ``GET /ready``: 200 when the database answers, accepts a write (rolled back), passes its
  integrity check (SQLite ``quick_check``, a gap-free journal) and holds the journal the
  engine holds; otherwise 503 with ``reasons``.
- ``GET /metrics``: Prometheus exposition (:mod:`deleverage.service.metrics`).
"""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST

from deleverage.service.deps import limit_anonymous, service_of

__all__ = ["router"]

router = APIRouter(dependencies=[Depends(limit_anonymous)], tags=["operations"])


@router.get("/health")
async def health() -> dict[str, str]:
    """Liveness: the process answers."""
    return {"status": "ok"}


@router.get("/ready")
async def ready(request: Request) -> JSONResponse:
    """Readiness: the database is reachable, writable and sound (503 with the reasons)."""
    service = service_of(request)
    async with service.lock:
        problems = await asyncio.to_thread(service.readiness)
    if problems:
        return JSONResponse({"status": "not ready", "reasons": problems}, 503)
    return JSONResponse({"status": "ready", "events": len(service.ex.journal)})


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    """Prometheus metrics."""
    return Response(service_of(request).metrics.render(), media_type=CONTENT_TYPE_LATEST)
