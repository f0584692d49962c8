"""Unit tests of the Host/Origin check, the security headers and the data file modes (the real
server is attacked in test_hostile_misc.py)."""

from __future__ import annotations

import io
import stat
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from starlette.applications import Starlette
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from malsori.server.db import Database, make_private_dir
from malsori.server.middleware import LocalOriginMiddleware, SecurityHeadersMiddleware, host_name
from malsori.server.uploads import UploadSpool
from malsori.server.web import PAGE_CSP


def _scope(host: str | None, origin: str | None = None) -> dict[str, Any]:
    headers = [(b"host", host.encode())] if host is not None else []
    if origin is not None:
        headers.append((b"origin", origin.encode()))
    return {"type": "http", "headers": headers}


async def _app(scope: Any, receive: Any, send: Any) -> None:
    pass


@pytest.mark.parametrize(
    ("value", "name"),
    [("localhost:8000", "localhost"), ("[::1]:8000", "::1"), ("[::1]", "::1"),
     ("Example.COM.", "example.com"), ("127.0.0.1", "127.0.0.1"), ("::1", "::1")],
)  # fmt: skip
def test_host_names(value: str, name: str) -> None:
    assert host_name(value) == name


def test_without_auth_only_loopback_unless_listed() -> None:
    guard = LocalOriginMiddleware(_app, hosts=["lan.box"], origins=["https://app.example/"])
    assert guard.refusal(_scope("127.0.0.1:8000")) is None
    assert guard.refusal(_scope("lan.box:8000")) is None
    assert guard.refusal(_scope("evil.example")) is not None
    assert guard.refusal(_scope(None)) is not None
    assert guard.refusal(_scope("localhost", "https://app.example")) is None
    assert guard.refusal(_scope("localhost", "http://127.0.0.1:3000")) is None
    assert guard.refusal(_scope("lan.box:8000", "http://lan.box:8000")) is None  # its own page
    assert guard.refusal(_scope("localhost", "http://lan.box:8000")) is not None
    assert guard.refusal(_scope("localhost", "http://evil.example")) is not None
    assert guard.refusal(_scope("localhost", "null")) is not None


def test_none_skips_a_check_and_star_allows_any() -> None:
    origins_only = LocalOriginMiddleware(_app, hosts=None, origins=["https://app.example"])
    assert origins_only.refusal(_scope("any.host.example")) is None
    assert origins_only.refusal(_scope("any.host", "https://other.example")) is not None
    anything = LocalOriginMiddleware(_app, hosts=["*"], origins=["*"])
    assert anything.refusal(_scope("evil.example", "http://evil.example")) is None


def test_security_headers() -> None:
    async def page(request: Any) -> PlainTextResponse:
        return PlainTextResponse("page", headers={"Cache-Control": "no-cache"})

    async def api(request: Any) -> JSONResponse:
        return JSONResponse({})

    app = Starlette(routes=[Route("/", page), Route("/v1/models", api), Route("/docs", api)])
    client = TestClient(SecurityHeadersMiddleware(app, page_csp=PAGE_CSP))
    common = {"x-content-type-options": "nosniff", "referrer-policy": "no-referrer",
              "x-frame-options": "DENY"}  # fmt: skip
    for path in ("/", "/v1/models", "/docs", "/nowhere"):
        response = client.get(path)
        assert common.items() <= response.headers.items(), path
    page_headers = client.get("/").headers
    assert page_headers["content-security-policy"] == PAGE_CSP
    assert page_headers["cache-control"] == "no-cache"  # the page's own
    api_headers = client.get("/v1/models").headers
    assert api_headers["cache-control"] == "no-store"
    assert api_headers["content-security-policy"] == "default-src 'none'; frame-ancestors 'none'"
    assert "content-security-policy" not in client.get("/docs").headers  # FastAPI's CDN page


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_data_files_are_created_private(tmp_path: Path) -> None:
    data = tmp_path / "a" / "data"
    make_private_dir(data)
    assert _mode(data) == 0o700
    db = Database(f"sqlite:///{data / 'malsori.db'}")
    with db.session() as s:  # a write: SQLite makes its -wal file
        s.execute(text("CREATE TABLE t (x INTEGER)"))
    for name in ("malsori.db", "malsori.db-wal", "malsori.db-shm"):
        if (data / name).exists():
            assert _mode(data / name) == 0o600, name
    db.close()
    spool = UploadSpool(data)
    spool.prepare()
    assert _mode(data / "uploads") == 0o700 and _mode(data / "audio") == 0o700
    saved = spool.save(io.BytesIO(b"x" * 10), max_bytes=100)
    assert _mode(saved) == 0o600
    assert _mode(spool.adopt(saved, "job_1")) == 0o600


def test_an_existing_world_readable_database_is_made_private(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    path.touch(mode=0o644)
    path.chmod(0o644)
    Database(f"sqlite:///{path}").close()
    assert _mode(path) == 0o600
