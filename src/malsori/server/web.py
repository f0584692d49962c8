"""The web page served at ``/``: plain HTML, CSS and ES modules in ``static/``, no build step.

It talks to the same API as any client (``/v1/jobs`` for uploads, ``/v1/realtime`` for the
microphone), with the API key the user types in: kept in the tab's sessionStorage (gone when the
tab closes), or in localStorage when the user ticks "remember key on this device" (in clear, on
that device's disk, readable by any script the page runs). ``PAGE_CSP`` lets the page run only
its own files, so injected markup cannot run a script that reads the key.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

STATIC_DIR = Path(__file__).parent / "static"

# What the page needs: its own modules and stylesheet, fetch and the WebSocket to its own
# origin, blob: URLs for downloads (which may be read back); nothing inline, no frames, no
# plugins.
PAGE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "media-src 'self' blob:; connect-src 'self' blob:; form-action 'self'; base-uri 'none'; "
    "frame-ancestors 'none'"
)


def mount_web_page(app: FastAPI) -> None:
    """``/`` answers the page; ``/static/...`` its scripts and styles."""
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})
