"""malsori's HTTP server (the ``server`` extra): an OpenAI-compatible API, durable jobs, API keys,
limits and metrics, around the same ``Model.transcribe`` and writers as the CLI.

Layout: ``routers/`` (one per resource, thin), a service layer that knows nothing of HTTP
(``transcriber``, ``jobs``, ``keys``, ``uploads``, ``scheduler``), ``errors`` (the one exception
handler), ``settings`` (pydantic-settings, ``MALSORI_*``) and ``create_app(settings)``.
"""

from __future__ import annotations

from .app import create_app
from .settings import ServerSettings

__all__ = ["ServerSettings", "create_app"]
