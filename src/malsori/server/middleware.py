"""ASGI middleware: request IDs, access log and metrics; the upload size limit; security headers;
the Host and Origin check that keeps a server without authentication to loopback callers.

Both are plain ASGI (not ``BaseHTTPMiddleware``), so streamed responses stay streamed and the
request body is counted chunk by chunk as the client sends it.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import envelope
from .exceptions import UploadTooLargeError
from .logs import (
    REQUEST_ID_HEADER,
    new_request_id,
    reset_request_id,
    safe_text,
    set_request_id,
)
from .metrics import Metrics

logger = logging.getLogger("malsori.server.access")

_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
_PROBES = frozenset({"/health", "/ready", "/metrics"})  # logged at debug level: polled often


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return str(value.decode("latin-1"))
    return None


class RequestContextMiddleware:
    """Gives each request an ID (echoed in ``X-Request-ID``), logs it and records its metrics."""

    def __init__(self, app: ASGIApp, metrics: Metrics):
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = new_request_id(_header(scope, b"x-request-id"))
        token = set_request_id(request_id)
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", ()))
                headers.append((REQUEST_ID_HEADER.lower().encode(), request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            seconds = time.perf_counter() - started
            route = scope.get("route")
            endpoint = getattr(route, "path", None) or "unmatched"
            self.metrics.observe_request(scope["method"], endpoint, status, seconds)
            path = scope.get("path", "")
            level = logging.DEBUG if path in _PROBES and status < 400 else logging.INFO
            logger.log(level, "%s %s %d %.3fs", scope["method"], safe_text(path), status, seconds)
            reset_request_id(token)


class BodyLimitMiddleware:
    """Stops reading a request body once it passes the upload limit and answers 413.

    The body may exceed ``max_upload_bytes`` by ``overhead_bytes`` (the other form fields and the
    multipart framing); the file part itself is held to the exact limit as it is spooled.

    A declared ``Content-Length`` over the limit is refused before any of the body is read; a
    chunked body is counted as it arrives, and reading stops at the first chunk past the limit
    (the handler reading it gets ``UploadTooLargeError``, which the error handler turns into 413).
    """

    def __init__(self, app: ASGIApp, max_upload_bytes: int, overhead_bytes: int):
        self.app = app
        self.max_upload_bytes = max_upload_bytes
        self.max_bytes = max_upload_bytes + overhead_bytes

    def _too_large(self) -> UploadTooLargeError:
        return UploadTooLargeError.for_limit(self.max_upload_bytes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in _BODY_METHODS:
            await self.app(scope, receive, send)
            return
        declared = _header(scope, b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(send, self._too_large())
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise self._too_large()
            return message

        await self.app(scope, limited_receive, send)

    async def _refuse(self, send: Send, error: UploadTooLargeError) -> None:
        body = json.dumps(
            envelope(str(error), "invalid_request_error", param="file", code="file_too_large")
        ).encode()
        headers: list[Any] = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
        ]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})


# Headers on every HTTP response, and on the page and its files a Content-Security-Policy that
# allows only the page's own scripts, styles and connections (its WebSocket included).
COMMON_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
)
API_CSP = b"default-src 'none'; frame-ancestors 'none'"
_DOCS = frozenset({"/docs", "/docs/oauth2-redirect", "/redoc"})  # FastAPI's pages (CDN scripts)


class SecurityHeadersMiddleware:
    """Adds ``COMMON_HEADERS`` to every HTTP response; ``page_csp`` to the web page (``/`` and
    ``/static/``); ``Cache-Control: no-store`` (unless the response set its own) and a CSP that
    allows nothing to the API's responses."""

    def __init__(self, app: ASGIApp, page_csp: str):
        self.app = app
        self.page_csp = page_csp.encode()

    def _extra(self, path: str, headers: list[Any]) -> list[tuple[bytes, bytes]]:
        if path == "/" or path.startswith("/static/"):
            return [(b"content-security-policy", self.page_csp)]
        if path in _DOCS:
            return []
        extra = [(b"content-security-policy", API_CSP)]
        if not any(k.lower() == b"cache-control" for k, _ in headers):
            extra.append((b"cache-control", b"no-store"))
        return extra

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                headers += [*COMMON_HEADERS, *self._extra(path, headers)]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})


def host_name(value: str) -> str:
    """The name in a Host header, lower-case, without port, brackets or a trailing dot."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1 : value.find("]")] if "]" in value else value
    name, sep, port = value.rpartition(":")
    if sep and port.isdigit() and ":" not in name:
        value = name
    return value.rstrip(".")


def _loopback_origin(origin: str) -> bool:
    try:
        parts = urlsplit(origin)
        parts.port  # noqa: B018 (raises ValueError for a bad port)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and (parts.hostname or "") in LOOPBACK_NAMES


def _same_origin(origin: str, host: str) -> bool:
    try:
        netloc = urlsplit(origin).netloc
    except ValueError:
        return False
    return bool(netloc) and netloc.lower() == host.strip().lower()


class LocalOriginMiddleware:
    """Refuses (403, or a refused WebSocket handshake) requests whose Host is not a loopback
    name or one of ``hosts``, or whose Origin (when sent) is not a loopback origin, one of
    ``origins`` or the allowed Host's own origin (the server's page). ``*`` in a list accepts
    anything; None skips that check. Guards a server without authentication from web pages
    that a local user visits (CSRF, DNS rebinding)."""

    def __init__(self, app: ASGIApp, hosts: Iterable[str] | None, origins: Iterable[str] | None):
        self.app = app
        self.hosts = None if hosts is None else frozenset(map(host_name, hosts)) | LOOPBACK_NAMES
        self.origins = (
            None if origins is None else frozenset(o.rstrip("/").lower() for o in origins)
        )

    def _host_allowed(self, host: str | None) -> bool:
        if self.hosts is None or "*" in self.hosts:
            return True
        return host is not None and host_name(host) in self.hosts

    def refusal(self, scope: Scope) -> str | None:
        """Why the request is refused, or None."""
        host = _header(scope, b"host")
        if not self._host_allowed(host):
            return "this server answers only requests addressed to an allowed host name"
        origin = _header(scope, b"origin")
        if origin is None or self.origins is None or "*" in self.origins:
            return None
        if origin.rstrip("/").lower() in self.origins or _loopback_origin(origin):
            return None
        if host is not None and _same_origin(origin, host):
            return None  # the page this (allowed) host served
        return "requests from this origin are not allowed"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        reason = self.refusal(scope)
        if reason is None:
            await self.app(scope, receive, send)
            return
        logger.warning(
            "refused %s %s: %s (host %s, origin %s)",
            scope.get("method", "WEBSOCKET"),
            safe_text(scope.get("path", "")),
            reason,
            safe_text(_header(scope, b"host") or "-"),
            safe_text(_header(scope, b"origin") or "-"),
        )
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        body = json.dumps(
            envelope(reason, "invalid_request_error", code="forbidden_origin")
        ).encode()
        headers: list[Any] = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ]
        await send({"type": "http.response.start", "status": 403, "headers": headers})
        await send({"type": "http.response.body", "body": body})
