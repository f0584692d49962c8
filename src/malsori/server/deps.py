"""FastAPI dependencies: the running services and the caller behind the API key."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from .exceptions import ForbiddenError, NotReadyError
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


async def get_admin(request: Request) -> str:
    """The caller's key id when it is one of ``auth.admin_keys`` (anyone with authentication
    off); ForbiddenError (403) for other valid keys."""
    owner = await get_owner(request)
    auth = get_services(request).settings.auth
    if auth.enabled and owner not in auth.admin_keys:
        raise ForbiddenError(
            f"API key {owner} may not manage models: add its id to auth.admin_keys "
            "(MALSORI_AUTH__ADMIN_KEYS)"
        )
    return owner


ServicesDep = Annotated[Services, Depends(get_services)]
OwnerDep = Annotated[str, Depends(get_owner)]
AdminDep = Annotated[str, Depends(get_admin)]
