"""FastAPI dependencies: the running services and the caller behind the API key."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from .exceptions import NotReadyError
from .keys import LOCAL_OWNER
from .services import Services


def get_services(request: Request) -> Services:
    services: Services | None = getattr(request.app.state, "services", None)
    if services is None or services.pool.stopping.is_set():
        raise NotReadyError("the server is starting or stopping")
    return services


def _bearer(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


async def get_owner(request: Request) -> str:
    """The id of the caller's API key (``local`` when authentication is off). The lookup runs on
    the services' control threads, so no flood of uploads or slow requests delays it."""
    services = get_services(request)
    if not services.settings.auth.enabled:
        return LOCAL_OWNER
    secret = _bearer(request.headers.get("authorization"))
    key = await services.call(services.keys.authenticate, secret)
    return key.id


ServicesDep = Annotated[Services, Depends(get_services)]
OwnerDep = Annotated[str, Depends(get_owner)]
