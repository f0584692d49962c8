"""``/health`` (alive), ``/ready`` (model loaded, database reachable), ``/metrics``.

All three are ``async`` and none uses the request handlers' shared thread pool, so they answer
while uploads are being checked or that pool is busy."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from ..deps import get_services
from ..metrics import CONTENT_TYPE, Metrics

router = APIRouter(tags=["operations"])


@router.get("/health")
async def health() -> dict[str, str]:
    """The process is up and answering."""
    return {"status": "ok"}


@router.get("/ready")
async def ready(request: Request) -> dict[str, Any]:
    """200 once the server has started (the default model loaded, unless preloading is off) and
    the database answers; 503 otherwise. The ping runs on the control threads: neither decoding
    uploads nor busy request handlers delay it."""
    services = get_services(request)
    await services.call(services.db.ping)
    default = services.models.status(services.models.default)
    return {
        "status": "ready",
        "model": default.id,
        "device": default.device,
        "models_loaded": [s.id for s in services.models.statuses() if s.loaded],
        "workers": services.pool.workers,
        "queue_depth": services.pool.waiting,
    }


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    """Prometheus text format. Rendered on the control threads once the server runs: some
    series are read from the database."""
    registry: Metrics = request.app.state.metrics
    services = request.app.state.services
    body = registry.render() if services is None else await services.call(registry.render)
    return Response(body, media_type=CONTENT_TYPE)
