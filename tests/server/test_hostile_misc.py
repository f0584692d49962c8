"""Hostile clients against a real ``malsori serve`` process (issue 16, items 6 to 8): callbacks to
internal addresses, secrets and forged lines in the log, security headers, Host and Origin checks
without authentication, slow-loris connections, and the modes of the data files."""

from __future__ import annotations

import http.server
import json
import os
import signal
import socket
import stat
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import httpx
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect
from websockets.typing import Origin, Subprotocol

from .helpers import Clips
from .test_real_server import ServerProcess, make_key

pytestmark = pytest.mark.slow

HEADER_TIMEOUT_S = 2.0


def start_server(data_dir: Path, env: dict[str, str], *extra: str) -> ServerProcess:
    with mock.patch.dict(os.environ, env):
        return ServerProcess(data_dir, *extra)


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, str]]:
    """Authentication on; callbacks allowed to ``localhost`` by name only; a 2 s head timeout."""
    data_dir = tmp_path_factory.mktemp("hostile") / "data"
    key = make_key(data_dir)
    env = {
        "MALSORI_JOBS__CALLBACK_ALLOW_HOSTS": '["localhost"]',
        "MALSORI_SECURITY__HEADER_TIMEOUT_S": str(HEADER_TIMEOUT_S),
    }
    proc = start_server(data_dir, env)
    yield proc, key
    proc.stop(signal.SIGKILL)


@pytest.fixture(scope="module")
def open_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """``--no-auth``, with one extra allowed host name."""
    data_dir = tmp_path_factory.mktemp("noauth") / "data"
    proc = start_server(data_dir, {"MALSORI_SECURITY__ALLOWED_HOSTS": '["transcribe.lan"]'},
                        "--no-auth")  # fmt: skip
    yield proc
    proc.stop(signal.SIGKILL)


@pytest.fixture
def receiver() -> Iterator[tuple[int, list[dict[str, Any]]]]:
    """An HTTP server on the address ``localhost`` resolves to first (as the server's will)."""
    family, _, _, _, address = socket.getaddrinfo("localhost", 0, type=socket.SOCK_STREAM)[0]
    calls: list[dict[str, Any]] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            calls.append({"body": body, "authorization": self.headers.get("Authorization")})
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    class Server(http.server.ThreadingHTTPServer):
        address_family = family

    server = Server((str(address[0]), int(address[1])), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1], calls
    server.shutdown()


def _submit(proc: ServerProcess, key: str, clip: Path, **data: str) -> httpx.Response:
    return httpx.post(
        f"{proc.url}/v1/jobs",
        files={"file": (clip.name, clip.read_bytes(), "audio/wav")},
        data={"language": "en", **data},
        headers={"Authorization": f"Bearer {key}"},
        timeout=60,
    )


def _wait_for_log(proc: ServerProcess, text: str, timeout: float = 20) -> str:
    deadline = time.monotonic() + timeout
    while text not in (log := proc.log.read_text(encoding="utf-8", errors="replace")):
        assert time.monotonic() < deadline, f"{text!r} never logged:\n{log}"
        time.sleep(0.1)
    return log


def test_callbacks_to_internal_addresses_are_refused(
    guarded: tuple[ServerProcess, str], clips: Clips, receiver: tuple[int, list[dict[str, Any]]]
) -> None:
    proc, key = guarded
    port, calls = receiver
    internal = [
        f"http://127.0.0.1:{port}/hook", f"http://[::1]:{port}/hook",
        f"http://user:SECRETPW1@127.0.0.1:{port}/hook", "http://169.254.169.254/latest/meta-data/",
        f"http://2130706433:{port}/hook", f"http://0x7f.1:{port}/hook", "http://10.0.0.1/",
        f"http://[::ffff:127.0.0.1]:{port}/", "gopher://8.8.8.8/",
    ]  # fmt: skip
    for url in internal:
        response = _submit(proc, key, clips.speech, callback_url=url)
        assert response.status_code == 400, (url, response.text)
        error = response.json()["error"]
        assert error["param"] == "callback_url" and error["type"] == "invalid_request_error"
        assert "SECRETPW1" not in response.text
    jobs = httpx.get(f"{proc.url}/v1/jobs", headers={"Authorization": f"Bearer {key}"}).json()
    assert not any(j["callback_url"] for j in jobs["data"])  # none was stored

    # The allow-list (MALSORI_JOBS__CALLBACK_ALLOW_HOSTS='["localhost"]') lets this one through.
    allowed = f"http://hook:SECRETPW2@localhost:{port}/hook"
    response = _submit(proc, key, clips.speech, callback_url=allowed)
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]
    deadline = time.monotonic() + 180
    while not calls:
        assert time.monotonic() < deadline, "the allowed callback was never delivered"
        time.sleep(0.1)
    assert len(calls) == 1
    assert calls[0]["body"]["id"] == job_id and calls[0]["body"]["status"] == "completed"
    assert (calls[0]["authorization"] or "").startswith("Basic ")  # credentials were sent...
    log = _wait_for_log(proc, f"job {job_id} callback answered 204")
    assert "SECRETPW1" not in log and "SECRETPW2" not in log  # ...and never logged


def test_secrets_and_forged_lines_never_reach_the_log(guarded: tuple[ServerProcess, str]) -> None:
    proc, key = guarded
    ws_url = proc.url.replace("http://", "ws://") + "/v1/realtime"
    with connect(f"{ws_url}?language=en&api_key=SECRETWS1") as ws:  # an unknown key
        event = json.loads(ws.recv(timeout=10))
        assert event["type"] == "error" and event["error"]["code"] == "invalid_api_key"
    with connect(f"{ws_url}?api_key={key}&language=en") as ws:  # a real key, in the URL
        assert json.loads(ws.recv(timeout=10))["type"] == "ready"
        ws.send(json.dumps({"type": "stop"}))
        while json.loads(ws.recv(timeout=30))["type"] != "end":
            pass
    protocols = [Subprotocol("malsori.v1"), Subprotocol("malsori-key.SECRETWS2")]
    with connect(ws_url, subprotocols=protocols) as ws:
        assert json.loads(ws.recv(timeout=10))["type"] == "error"
    assert httpx.get(f"{proc.url}/v1/models?api_key=SECRETHTTP1").status_code == 401
    bearer = {"Authorization": "Bearer SECRETHTTP2"}
    assert httpx.get(f"{proc.url}/v1/models?key=SECRETHTTP3", headers=bearer).status_code == 401

    forged = "/v1/models%0d%0aFORGED%20line%0aFORGED2%c2%85FORGED3%e2%80%a8FORGED4%1b[2K"
    with socket.create_connection(("127.0.0.1", proc.port), timeout=10) as s:
        s.sendall(f"GET {forged} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
        assert s.recv(100).startswith(b"HTTP/1.1 404")

    access = "GET /v1/models\\r\\nFORGED line\\nFORGED2\\x85FORGED3\\u2028FORGED4\\x1b[2K 404"
    log = _wait_for_log(proc, access)  # the access line, escaped
    for secret in ("SECRETWS1", "SECRETWS2", "SECRETHTTP1", "SECRETHTTP2", "SECRETHTTP3", key):
        assert secret not in log, secret
    assert '"WebSocket /v1/realtime?language=en&api_key=***" [accepted]' in log  # redacted
    raw = proc.log.read_bytes()
    assert not any(line.startswith(b"FORGED") for line in raw.splitlines())
    assert b"\r" not in raw and b"\x1b" not in raw and b"\xc2\x85" not in raw


def test_security_headers(guarded: tuple[ServerProcess, str]) -> None:
    proc, key = guarded
    for path in ("/", "/static/app.js", "/static/style.css"):
        response = httpx.get(proc.url + path)
        assert response.status_code == 200
        csp = response.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp
        assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["referrer-policy"] == "no-referrer"
        assert response.headers["x-frame-options"] == "DENY"
    for headers in ({"Authorization": f"Bearer {key}"}, {}):
        response = httpx.get(f"{proc.url}/v1/models", headers=headers)
        assert response.status_code in (200, 401)
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["cache-control"] == "no-store"
        assert "frame-ancestors 'none'" in response.headers["content-security-policy"]


def _kept_alive(proc: ServerProcess) -> socket.socket:
    """A connection that has made one complete request and read its answer."""
    s = socket.create_connection(("127.0.0.1", proc.port), timeout=5)
    s.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    answer = b""
    while b"\r\n\r\n" not in answer:
        answer += s.recv(4096)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                  if line.lower().startswith(b"content-length:"))  # fmt: skip
    while len(body) < length:
        body += s.recv(4096)
    return s


def _slow_loris(proc: ServerProcess) -> tuple[list[float], float, int]:
    """50 connections sending a request head a byte at a time (one of them after a first,
    complete request) and 5 sending nothing, until all are closed or 30 s pass; one normal
    request meanwhile. When each was closed (seconds), how long the normal request took, and
    how many bytes each slow one sent."""
    head = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Pad: " + b"a" * 10_000
    started = time.monotonic()
    slow = [socket.create_connection(("127.0.0.1", proc.port), timeout=5) for _ in range(49)]
    slow.append(_kept_alive(proc))  # one whose second request comes a byte at a time
    idle = [socket.create_connection(("127.0.0.1", proc.port), timeout=5) for _ in range(5)]
    for s in slow + idle:
        s.setblocking(False)
    closed_at: dict[int, float] = {}
    answered_in = float("inf")
    sent = 0
    while len(closed_at) < len(slow) + len(idle) and time.monotonic() - started < 30:
        for i, s in enumerate(slow + idle):
            if i in closed_at:
                continue
            try:
                if i < len(slow):
                    s.send(head[sent : sent + 1])
                if s.recv(1) == b"":
                    closed_at[i] = time.monotonic() - started
            except BlockingIOError:
                pass
            except OSError:  # reset or broken pipe: closed by the server
                closed_at[i] = time.monotonic() - started
        sent += 1
        if answered_in == float("inf") and time.monotonic() - started > 0.5:
            t0 = time.monotonic()
            assert httpx.get(f"{proc.url}/health", timeout=10).status_code == 200
            answered_in = time.monotonic() - t0
        time.sleep(0.1)
    for s in slow + idle:
        s.close()
    assert len(closed_at) == len(slow) + len(idle), "some slow connections were never closed"
    return list(closed_at.values()), answered_in, sent


def test_slow_loris_connections_are_closed(guarded: tuple[ServerProcess, str]) -> None:
    """Slow and idle connections are closed once the head timeout passes; a normal request is
    answered meanwhile, and an open WebSocket is not affected."""
    proc, key = guarded
    url = proc.url.replace("http://", "ws://") + "/v1/realtime"
    with connect(url, additional_headers={"Authorization": f"Bearer {key}"}) as live:
        assert json.loads(live.recv(timeout=10))["type"] == "ready"
        closed_at, answered_in, sent = _slow_loris(proc)
        live.send(json.dumps({"type": "stop"}))  # the WebSocket outlived the head timeout
        while json.loads(live.recv(timeout=30))["type"] != "end":
            pass
    assert min(closed_at) >= HEADER_TIMEOUT_S - 0.5  # not before the timeout
    assert max(closed_at) < HEADER_TIMEOUT_S + 15  # and soon after it
    assert sent > 10  # the slow ones really were sending all along
    assert answered_in < 2.0


def test_data_files_are_private(guarded: tuple[ServerProcess, str], clips: Clips) -> None:
    proc, key = guarded
    response = _submit(proc, key, clips.speech)
    assert response.status_code == 202
    job_id = response.json()["id"]

    def mode(path: Path) -> int:
        return stat.S_IMODE(path.stat().st_mode)

    data = proc.data_dir
    assert mode(data) == 0o700
    assert mode(data / "uploads") == 0o700 and mode(data / "audio") == 0o700
    assert mode(data / "malsori.db") == 0o600
    assert mode(data / "audio" / job_id) == 0o600
    for extra in ("malsori.db-wal", "malsori.db-shm"):
        if (data / extra).exists():
            assert mode(data / extra) == 0o600


def test_without_auth_only_loopback_hosts_and_origins(open_server: ServerProcess) -> None:
    proc = open_server
    url = f"{proc.url}/v1/models"
    port = proc.port
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}", "localhost",
                 "transcribe.lan", f"Transcribe.LAN:{port}"):  # fmt: skip
        assert httpx.get(url, headers={"Host": host}).status_code == 200, host
    for host in ("evil.example", f"evil.example:{port}", "127.0.0.1.evil.example", "[::2]"):
        response = httpx.get(url, headers={"Host": host})
        assert response.status_code == 403, host
        assert response.json()["error"]["code"] == "forbidden_origin"
    for origin in (f"http://127.0.0.1:{port}", "http://localhost:5173", "https://[::1]"):
        assert httpx.get(url, headers={"Origin": origin}).status_code == 200, origin
    for origin in ("http://evil.example", "null", "http://localhost.evil.example"):
        assert httpx.get(url, headers={"Origin": origin}).status_code == 403, origin
    # The server's own page under an allowed name; the same page name on another Host is not.
    own = {"Host": "transcribe.lan:8000", "Origin": "http://transcribe.lan:8000"}
    assert httpx.get(url, headers=own).status_code == 200
    other = {"Host": f"127.0.0.1:{port}", "Origin": "http://transcribe.lan:8000"}
    assert httpx.get(url, headers=other).status_code == 403
    # A cross-site form post (CSRF) is refused before anything is read.
    csrf = httpx.post(f"{proc.url}/v1/jobs", headers={"Origin": "http://evil.example"},
                      files={"file": ("a.wav", b"RIFF")})  # fmt: skip
    assert csrf.status_code == 403

    ws_url = f"ws://127.0.0.1:{port}/v1/realtime"
    with pytest.raises(InvalidStatus) as refused:
        connect(ws_url, origin=Origin("http://evil.example"))
    assert refused.value.response.status_code == 403
    with connect(ws_url, origin=Origin(f"http://localhost:{port}")) as ws:
        assert json.loads(ws.recv(timeout=10))["type"] == "ready"
    log = _wait_for_log(proc, "refused")
    assert "evil.example" in log
