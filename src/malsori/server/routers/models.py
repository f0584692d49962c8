"""``GET /v1/models`` and ``GET /v1/models/{id}``: the one served model and its aliases."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from ..deps import OwnerDep, ServicesDep
from ..services import Services

router = APIRouter(prefix="/v1/models", tags=["models"])


def _model(services: Services, model_id: str) -> dict[str, Any]:
    return {
        "id": model_id,
        "object": "model",
        "created": services.started_at,
        "owned_by": "malsori",
    }


@router.get("")
async def list_models(services: ServicesDep, _: OwnerDep) -> dict[str, Any]:
    """The served model under each id a request may name."""
    data = [_model(services, m) for m in services.transcriber.model_ids]
    return {"object": "list", "data": data}


@router.get("/{model_id:path}")
async def get_model(model_id: str, services: ServicesDep, _: OwnerDep) -> dict[str, Any]:
    services.transcriber.check_model(model_id)
    return _model(services, model_id)
