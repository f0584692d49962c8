"""``/v1/models``: the served models (each with whether it is loaded) under every id a request may
name; ``POST`` loads one now and ``DELETE`` unloads it (admin keys only)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from ..deps import AdminDep, OwnerDep, ServicesDep
from ..models import ModelStatus
from ..services import Services

router = APIRouter(prefix="/v1/models", tags=["models"])


def _model(services: Services, model_id: str, status: ModelStatus) -> dict[str, Any]:
    return {
        "id": model_id,
        "object": "model",
        "created": services.started_at,
        "owned_by": "malsori",
        "root": status.id,  # the served model an alias names
        "loaded": status.loaded,
        "default": status.default,
        "in_use": status.in_use,
        "device": status.device,
        "load_seconds": status.load_seconds,
    }


def _described(services: Services, model_id: str) -> dict[str, Any]:
    return _model(services, model_id, services.models.status(services.models.resolve(model_id)))


@router.get("")
async def list_models(services: ServicesDep, _: OwnerDep) -> dict[str, Any]:
    """Every served model, then the default one's aliases, with whether each is loaded."""
    data = [_described(services, m) for m in services.models.ids]
    return {"object": "list", "data": data}


@router.get("/{model_id:path}")
async def get_model(model_id: str, services: ServicesDep, _: OwnerDep) -> dict[str, Any]:
    return _described(services, model_id)


@router.post("/{model_id:path}")
async def load_model(model_id: str, services: ServicesDep, _: AdminDep) -> dict[str, Any]:
    """Load the model now (it may unload the least recently used idle one to stay within
    ``model.max_loaded``); answers once it is loaded."""
    status = await run_in_threadpool(services.models.load, model_id)
    return _model(services, model_id, status)


@router.delete("/{model_id:path}")
async def unload_model(model_id: str, services: ServicesDep, _: AdminDep) -> dict[str, Any]:
    """Unload the model and free its memory (503 ``model_busy`` while work is in flight on it);
    its next request loads it again."""
    status = await run_in_threadpool(services.models.unload, model_id)
    return _model(services, model_id, status)
