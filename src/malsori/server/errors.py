"""HTTP errors in OpenAI's envelope, and the one place exceptions become responses.

Every error the server sends looks like OpenAI's::

    {"error": {"message": "...", "type": "invalid_request_error", "param": "file", "code": "..."}}

The service layer raises malsori's exceptions (``InvalidOptionError``, ``AudioDecodeError``, and
the server's own in ``exceptions.py``); ``install_error_handlers`` maps them to statuses:

    400  bad request: malformed or unknown fields, bad option values, an empty file, content
         that does not open as audio (``unsupported_media_type``, whatever its name or content
         type says) or audio that opens but is corrupt or truncated (``invalid_audio``): OpenAI
         answers 400 to both, so clients catch them as ``BadRequestError``
    401  missing, unknown or revoked API key (with ``WWW-Authenticate: Bearer realm="malsori"``)
    403  a valid key that may not do this (loading and unloading models takes an admin key)
    404  unknown route, model or job (another key's job too)
    409  a job's result asked for before the job completed
    413  upload larger than the limit, or audio longer than the limit
    422  audio without speech where speech is required (``no_speech``)
    429  the work queue is full, or the API key's quota is used up (with ``Retry-After``)
    503  not ready (model not loaded, database unreachable), or a model that cannot be loaded
         or unloaded now because work is in flight on it (``model_busy``, with ``Retry-After``)
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..errors import (
    AudioDecodeError,
    EmptyAudioError,
    InputError,
    InvalidOptionError,
    MalsoriError,
    ModelNotFoundError,
    NoSpeechError,
)
from .exceptions import (
    AudioTooLongError,
    AuthenticationError,
    ForbiddenError,
    JobNotFinishedError,
    ModelBusyError,
    NotAudioError,
    NotFoundError,
    NotReadyError,
    QueueFullError,
    QuotaExceededError,
    RetryLaterError,
    UnknownModelError,
    UploadTooLargeError,
)

logger = logging.getLogger(__name__)

INVALID = "invalid_request_error"
REALM = "malsori"


@dataclass(frozen=True)
class ErrorKind:
    """How one exception class is answered."""

    status: int
    code: str
    param: str | None = None
    type: str = INVALID


# Most specific first: the first isinstance match wins.
ERROR_KINDS: tuple[tuple[type[BaseException], ErrorKind], ...] = (
    (AuthenticationError, ErrorKind(401, "invalid_api_key")),
    (ForbiddenError, ErrorKind(403, "permission_denied")),
    (UnknownModelError, ErrorKind(404, "model_not_found", "model")),
    (ModelNotFoundError, ErrorKind(404, "model_not_found", "model")),
    (NotFoundError, ErrorKind(404, "not_found")),
    (JobNotFinishedError, ErrorKind(409, "job_not_finished")),
    (UploadTooLargeError, ErrorKind(413, "file_too_large", "file")),
    (AudioTooLongError, ErrorKind(413, "audio_too_long", "file")),
    # OpenAI answers 400 to what it cannot decode: clients catch BadRequestError
    (NotAudioError, ErrorKind(400, "unsupported_media_type", "file")),
    (EmptyAudioError, ErrorKind(400, "empty_audio", "file")),
    (AudioDecodeError, ErrorKind(400, "invalid_audio", "file")),
    (NoSpeechError, ErrorKind(422, "no_speech", "file")),
    (InputError, ErrorKind(400, "invalid_input", "file")),
    (InvalidOptionError, ErrorKind(400, "invalid_option")),
    (QueueFullError, ErrorKind(429, "queue_full", type="rate_limit_error")),
    (QuotaExceededError, ErrorKind(429, "quota_exceeded", type="rate_limit_error")),
    (ModelBusyError, ErrorKind(503, "model_busy", "model", type="server_error")),
    (NotReadyError, ErrorKind(503, "not_ready", type="server_error")),
)
INTERNAL = ErrorKind(500, "internal_error", type="server_error")


class ApiError(Exception):
    """An error found while reading the HTTP request itself (a malformed form field)."""

    def __init__(self, message: str, *, status: int = 400, param: str | None = None,
                 code: str = "invalid_request", headers: dict[str, str] | None = None):  # fmt: skip
        super().__init__(message)
        self.message = message
        self.kind = ErrorKind(status, code, param)
        self.headers = headers or {}


def envelope(
    message: str, type_: str, *, param: str | None = None, code: str | None = None
) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def error_response(
    kind: ErrorKind,
    message: str,
    *,
    param: str | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body = envelope(message, kind.type, param=param or kind.param, code=kind.code)
    return JSONResponse(body, status_code=kind.status, headers=headers)


def kind_of(error: BaseException) -> ErrorKind:
    for cls, kind in ERROR_KINDS:
        if isinstance(error, cls):
            return kind
    return INTERNAL


def challenge(authorization: str | None) -> str:
    """``WWW-Authenticate`` for a 401 (RFC 6750): ``error="invalid_token"`` when a bearer token
    was sent (and refused), none when no credentials came."""
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return f'Bearer realm="{REALM}", error="invalid_token"'
    return f'Bearer realm="{REALM}"'


def _with_challenge(request: Request, response: JSONResponse) -> JSONResponse:
    """Every 401 says how to authenticate."""
    if response.status_code == 401 and "www-authenticate" not in response.headers:
        response.headers["WWW-Authenticate"] = challenge(request.headers.get("authorization"))
    return response


def _log(request: Request, status: int, message: str) -> None:
    log = logger.warning if status >= 500 else logger.info
    log("%s %s -> %d: %s", request.method, request.url.path, status, message)


def _param_of(loc: tuple[Any, ...]) -> str | None:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header", "form")]
    return ".".join(parts) or None


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers that turn every exception into the OpenAI envelope."""

    @app.exception_handler(ApiError)
    async def handle_api_error(request: Request, error: ApiError) -> JSONResponse:
        _log(request, error.kind.status, error.message)
        response = error_response(error.kind, error.message, headers=error.headers)
        return _with_challenge(request, response)

    @app.exception_handler(MalsoriError)
    async def handle_malsori_error(request: Request, error: MalsoriError) -> JSONResponse:
        kind = kind_of(error)
        headers = {}
        if isinstance(error, RetryLaterError):
            headers["Retry-After"] = str(error.retry_after)
        if kind is INTERNAL:
            logger.error("%s %s -> 500: %s", request.method, request.url.path, error)
        else:
            _log(request, kind.status, str(error))
        param = getattr(error, "param", None)
        response = error_response(kind, str(error), param=param, headers=headers)
        return _with_challenge(request, response)

    @app.exception_handler(RequestValidationError)
    async def handle_validation(request: Request, error: RequestValidationError) -> JSONResponse:
        first = error.errors()[0] if error.errors() else {}
        param = _param_of(tuple(first.get("loc", ())))
        message = f"{param}: {first.get('msg', 'invalid value')}" if param else "invalid request"
        _log(request, 400, message)
        return error_response(ErrorKind(400, "invalid_request", param), message)

    @app.exception_handler(StarletteHTTPException)
    async def handle_http(request: Request, error: StarletteHTTPException) -> JSONResponse:
        codes = {404: "not_found", 405: "method_not_allowed"}
        kind = ErrorKind(error.status_code, codes.get(error.status_code, "invalid_request"))
        _log(request, error.status_code, str(error.detail))
        response = error_response(kind, str(error.detail), headers=dict(error.headers or {}))
        return _with_challenge(request, response)

    @app.exception_handler(Exception)
    async def handle_unexpected(request: Request, error: Exception) -> JSONResponse:
        logger.exception("internal error on %s %s", request.method, request.url.path)
        return error_response(INTERNAL, "internal server error (see the server log)")
