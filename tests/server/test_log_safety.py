"""What the server logs of request data: secrets redacted, control characters escaped, one record
on one line (``malsori.server.logs``); the access line of a request with a forged path."""

from __future__ import annotations

import io
import logging

import pytest

from malsori.server.logs import SafeLogFilter, escape_controls, redact, safe_text


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ('127.0.0.1:5 - "WebSocket /v1/realtime?api_key=SECRET123&language=en" [accepted]',
         "SECRET123"),
        ("GET /v1/models?language=en&key=SECRET123", "SECRET123"),
        ("GET /x?token=SECRET123#frag", "SECRET123"),
        ("GET /x?api%5Fkey=SECRET123", "SECRET123"),
        ("GET /x?API_KEY=SECRET123", "SECRET123"),
        ("callback to http://user:SECRET123@hooks.example/done failed", "SECRET123"),
        ("callback to https://SECRET123@hooks.example/done failed", "SECRET123"),
        ("Authorization: Bearer SECRET123", "SECRET123"),
        ("authorization: basic U0VDUkVUMTIz", "U0VDUkVUMTIz"),
        ("subprotocols ['malsori.v1', 'malsori-key.SECRET123']", "SECRET123"),
        ("key msk-AbCdEf_0123456789 was used", "AbCdEf_0123456789"),
    ],
)  # fmt: skip
def test_secrets_are_redacted(text: str, secret: str) -> None:
    out = redact(text)
    assert secret not in out and "***" in out


def test_other_query_parameters_stay() -> None:
    assert redact('"WebSocket /v1/realtime?api_key=S" [accepted]') == (
        '"WebSocket /v1/realtime?api_key=***" [accepted]'
    )
    assert redact("GET /v1/realtime?language=en&task=translate&api_key=S") == (
        "GET /v1/realtime?language=en&task=translate&api_key=***"
    )
    assert redact("job job_1 queued (3.0 s of audio)") == "job job_1 queued (3.0 s of audio)"


@pytest.mark.parametrize(
    "control", ["\r", "\n", "\r\n", "\x00", "\x1b[31m", "\x85", "\u2028", "\x7f"]
)
def test_control_characters_are_escaped(control: str) -> None:
    out = escape_controls(f"GET /a{control}2026-01-01 INFO forged")
    assert control not in out and "\\" in out
    assert len(out.splitlines()) == 1


def test_the_filter_makes_every_record_one_safe_line() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(SafeLogFilter())
    log = logging.getLogger("malsori.tests.safe")
    log.addHandler(handler)
    log.propagate = False
    log.setLevel(logging.INFO)
    try:
        log.warning("%s %s", "GET /v1/x\r\nFAKE forged line", "/?api_key=SECRET1")
        log.info('%s - "WebSocket %s" [accepted]', "127.0.0.1:1", "/v1/realtime?api_key=SECRET2")
    finally:
        log.removeHandler(handler)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2
    assert not any(line.startswith("FAKE") for line in lines)
    assert "SECRET" not in stream.getvalue()
    assert lines[0] == "GET /v1/x\\r\\nFAKE forged line /?api_key=***"


def test_safe_text_redacts_before_escaping() -> None:
    assert safe_text("/p\n?api_key=S") == "/p\\n?api_key=***"


def test_a_traceback_cannot_forge_a_line() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(SafeLogFilter())
    log = logging.getLogger("malsori.tests.safe_tb")
    log.addHandler(handler)
    log.propagate = False
    try:
        try:
            raise ValueError("bad path /x\nFORGED line ?api_key=SECRET9")
        except ValueError:
            log.exception("failed on %s", "/x")
    finally:
        log.removeHandler(handler)
    lines = stream.getvalue().splitlines()
    assert lines[0] == "failed on /x"
    assert all(line.startswith("| ") for line in lines[1:]) and len(lines) > 2
    assert "SECRET9" not in stream.getvalue()
    assert not any(line.startswith("FORGED") for line in lines)
