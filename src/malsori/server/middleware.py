"""ASGI middleware: request IDs, access log and metrics; the upload size limit.

Both are plain ASGI (not ``BaseHTTPMiddleware``), so streamed responses stay streamed and the
request body is counted chunk by chunk as the client sends it.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import envelope
from .exceptions import UploadTooLargeError
from .logs import REQUEST_ID_HEADER, new_request_id, reset_request_id, set_request_id
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
            logger.log(level, "%s %s %d %.3fs", scope["method"], path, status, seconds)
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
