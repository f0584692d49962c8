"""Request IDs in every log line, from HTTP handlers and from worker threads alike; and log lines
that carry no secrets and cannot be forged.

Every record the server's handler writes (its own, uvicorn's, libraries') goes through
``SafeLogFilter``: API keys (``api_key``/``key``/``token`` query parameters, ``Bearer`` and
``Basic`` credentials, ``malsori-key.`` subprotocols, ``msk-`` secrets) and URL credentials
(``user:pw@``) are replaced by ``***``, and control characters (CR, LF and the other C0 and C1
codes, which a client can put in a path as ``%0d%0a``) are written as escapes, so one record is
always one line.
"""

from __future__ import annotations

import contextvars
import logging
import re
import uuid
from urllib.parse import unquote

REQUEST_ID_HEADER = "X-Request-ID"
_request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")
_VALID_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"

MASK = "***"
SECRET_PARAMS = frozenset(
    {"api_key", "apikey", "api-key", "key", "token", "access_token", "password", "secret"}
)
_QUERY_PARAM = re.compile(r"([?&;])([^=&;#\s\"']+)=([^&;#\s\"']*)")
_URL_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/?#\s@]*@")
_AUTH_SCHEME = re.compile(r"(?i)\b(bearer|basic)(\s+)[A-Za-z0-9._~+/=-]+")
_KEY_SUBPROTOCOL = re.compile(r"(malsori-key\.)[^\s,;'\"]+")
_KEY_SECRET = re.compile(r"msk-[A-Za-z0-9_-]+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _mask_param(m: re.Match[str]) -> str:
    if unquote(m.group(2)).lower() in SECRET_PARAMS:
        return f"{m.group(1)}{m.group(2)}={MASK}"
    return m.group(0)


def redact(text: str) -> str:
    """``text`` with API keys, tokens and URL credentials replaced by ``***``."""
    text = _QUERY_PARAM.sub(_mask_param, text)
    text = _URL_USERINFO.sub(lambda m: f"{m.group(1)}{MASK}@", text)
    text = _AUTH_SCHEME.sub(lambda m: f"{m.group(1)}{m.group(2)}{MASK}", text)
    text = _KEY_SUBPROTOCOL.sub(lambda m: f"{m.group(1)}{MASK}", text)
    return _KEY_SECRET.sub(f"msk-{MASK}", text)


def escape_controls(text: str) -> str:
    """``text`` on one line: CR, LF, TAB as ``\\r \\n \\t``, other control characters as
    ``\\xNN`` or ``\\uNNNN``."""

    def escape(m: re.Match[str]) -> str:
        c = m.group(0)
        return _ESCAPES.get(c) or (f"\\x{ord(c):02x}" if ord(c) < 0x100 else f"\\u{ord(c):04x}")

    return _CONTROL.sub(escape, text)


def safe_text(text: str) -> str:
    """What may be logged of ``text`` (which may come from a client): redacted, one line."""
    return escape_controls(redact(text))


def new_request_id(incoming: str | None = None) -> str:
    """The client's ``X-Request-ID`` when it is short and plain, else a fresh one."""
    if incoming and _VALID_ID.match(incoming):
        return incoming
    return uuid.uuid4().hex[:16]


def current_request_id() -> str:
    return _request_id.get()


def set_request_id(request_id: str) -> contextvars.Token[str]:
    return _request_id.set(request_id)


def reset_request_id(token: contextvars.Token[str]) -> None:
    _request_id.reset(token)


class RequestIdFilter(logging.Filter):
    """Adds ``record.request_id`` (``-`` outside a request) so formats can print it."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = _request_id.get()
        return True


class SafeLogFilter(logging.Filter):
    """Redacts secrets and escapes control characters in each record's message (``safe_text``);
    a traceback's lines are marked with ``| `` and made safe one by one.

    A handler filter, so it sees the records of every logger (uvicorn's WebSocket lines too).
    """

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # a malformed record: let logging report it as usual
            return True
        record.msg = safe_text(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            # A traceback keeps its lines, each marked, so no text in it can start a log line.
            text = logging.Formatter().formatException(record.exc_info)
            record.exc_text = "\n".join(f"| {safe_text(line)}" for line in text.splitlines())
        return True


def configure_logging(level: str) -> None:
    """One stderr handler for the server process, with request IDs in the format, secrets
    redacted and control characters escaped."""
    handler = logging.StreamHandler()
    handler.addFilter(RequestIdFilter())
    handler.addFilter(SafeLogFilter())
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    logging.getLogger("faster_whisper").setLevel(logging.WARNING)
    logging.getLogger("uvicorn.access").disabled = True  # the server logs each request itself
