"""The web page served at ``/``: plain HTML, CSS and ES modules in ``static/``, no build step.

It talks to the same API as any client (``/v1/jobs`` for uploads, ``/v1/realtime`` for the
microphone), with the API key the user types in, kept in the browser's localStorage.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

STATIC_DIR = Path(__file__).parent / "static"


def mount_web_page(app: FastAPI) -> None:
    """``/`` answers the page; ``/static/...`` its scripts and styles."""
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})
