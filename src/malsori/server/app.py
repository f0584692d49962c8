"""``create_app(settings)``: the FastAPI application, its middleware, routers and lifespan."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from starlette.concurrency import run_in_threadpool

from .. import __version__
from ..model import Model
from .errors import install_error_handlers
from .forms import FORM_OVERHEAD_BYTES
from .jobs import Clock
from .metrics import Metrics
from .middleware import (
    BodyLimitMiddleware,
    LocalOriginMiddleware,
    RequestContextMiddleware,
    SecurityHeadersMiddleware,
)
from .routers import audio, jobs, models, ops, realtime
from .services import start_services
from .settings import ServerSettings
from .web import PAGE_CSP, mount_web_page

logger = logging.getLogger(__name__)


def create_app(
    settings: ServerSettings | None = None,
    *,
    model: Model | None = None,
    clock: Clock | None = None,
) -> FastAPI:
    """The server application. ``model``: an already loaded model to serve (tests, embedding);
    otherwise ``settings.model`` is loaded at startup. ``clock``: UTC now, for retention tests.
    """
    settings = settings or ServerSettings()
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        services = await run_in_threadpool(
            start_services, settings, metrics, model=model, clock=clock
        )
        app.state.services = services
        logger.info(
            "serving %s (default %s) with %d worker(s); data in %s",
            ", ".join(services.models.ids),
            services.models.default,
            settings.workers,
            settings.data_dir,
        )
        try:
            yield
        finally:
            await run_in_threadpool(services.stop)

    app = FastAPI(
        title="malsori",
        version=__version__,
        summary="Whisper speech recognition: an OpenAI-compatible API with durable jobs.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.services = None
    install_error_handlers(app)
    for router in (audio.router, models.router, jobs.router, ops.router, realtime.router):
        app.include_router(router)
    mount_web_page(app)
    # Added innermost first: the security headers wrap everything, then the request context;
    # the Host/Origin check (authentication off) comes before CORS; CORS wraps the size limit
    # (so a 413 still carries CORS headers).
    app.add_middleware(
        BodyLimitMiddleware,
        max_upload_bytes=settings.limits.max_upload_bytes,
        overhead_bytes=FORM_OVERHEAD_BYTES,
    )
    if settings.cors.allow_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors.allow_origins,
            allow_methods=settings.cors.allow_methods,
            allow_headers=settings.cors.allow_headers,
            expose_headers=["X-Request-ID", "Retry-After", "Location"],
        )
    security, no_auth = settings.security, not settings.auth.enabled
    if no_auth or security.allowed_hosts or security.allowed_origins:
        app.add_middleware(
            LocalOriginMiddleware,
            hosts=security.allowed_hosts if no_auth or security.allowed_hosts else None,
            origins=[*security.allowed_origins, *settings.cors.allow_origins]
            if no_auth or security.allowed_origins
            else None,
        )
    app.add_middleware(RequestContextMiddleware, metrics=metrics)
    app.add_middleware(SecurityHeadersMiddleware, page_csp=PAGE_CSP)
    return app
