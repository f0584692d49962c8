"""Attacks on a real ``malsori serve`` process over loopback, as issue 16 made them: playlists
and protocol-bearing text that FFmpeg would follow to the server's own files (uploads and live),
an Ogg/Opus decompression bomb over the WebSocket, a client that leaves while held back, a
trickling client, one key taking every live place, and a key revoked while its stream is open."""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import subprocess
import time
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import httpx
import pytest

from .helpers import SPEECH_WORDS, Clips, words_of
from .test_real_server import MALSORI, ServerProcess
from .test_realtime import pcm16

ws_client = pytest.importorskip("websockets.sync.client")
from websockets.exceptions import ConnectionClosed  # noqa: E402

pytestmark = pytest.mark.slow

# Small limits, so that each attack ends within seconds.
SETTINGS = {
    "MALSORI_REALTIME__MAX_SESSIONS": "3",
    "MALSORI_REALTIME__MAX_SESSIONS_PER_KEY": "1",
    "MALSORI_REALTIME__IDLE_TIMEOUT_S": "3",
    "MALSORI_REALTIME__KEY_CHECK_INTERVAL_S": "1",
}
SECRET_WORDS = set(SPEECH_WORDS)  # what the server's own file says, were it read


class Server:
    """The server under attack, its keys (name -> (id, secret)) and its working folder."""

    def __init__(self, proc: ServerProcess, keys: dict[str, tuple[str, str]], cwd: Path):
        self.proc, self.keys, self.cwd = proc, keys, cwd
        self.ws_url = proc.url.replace("http://", "ws://") + "/v1/realtime"

    def auth(self, name: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[name][1]}"}

    def connect(self, name: str, query: str = "language=en") -> Any:
        return ws_client.connect(f"{self.ws_url}?{query}", additional_headers=self.auth(name),
                                 max_size=None, open_timeout=30)  # fmt: skip

    def rss_kib(self, field: str = "VmRSS") -> int:
        status = Path(f"/proc/{self.proc.process.pid}/status").read_text()
        return int(re.search(rf"^{field}:\s+(\d+) kB", status, re.M).group(1))  # type: ignore[union-attr]


def create_key(data_dir: Path, name: str) -> tuple[str, str]:
    out = subprocess.run([*MALSORI, "keys", "--data-dir", str(data_dir), "create", name],
                         capture_output=True, text=True, check=True)  # fmt: skip
    key_id = re.search(r"created (key_\w+)", out.stderr).group(1)  # type: ignore[union-attr]
    return key_id, out.stdout.strip()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, clips: Clips) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("hostile")
    data_dir = root / "data"
    keys = {name: create_key(data_dir, name) for name in ("k1", "k2", "k3")}
    # The server runs in a folder holding a speech file, as a deployment's folder holds files:
    # a playlist naming it relatively would make FFmpeg read it.
    cwd = root / "cwd"
    cwd.mkdir()
    (cwd / "speech.wav").write_bytes(clips.speech.read_bytes())
    with pytest.MonkeyPatch.context() as mp:
        paths = os.environ.get("PYTHONPATH", "")
        absolute = [os.path.abspath(p) for p in paths.split(os.pathsep) if p]
        mp.setenv("PYTHONPATH", os.pathsep.join(absolute))  # the server runs elsewhere
        for name, value in SETTINGS.items():
            mp.setenv(name, value)
        mp.chdir(cwd)
        proc = ServerProcess(data_dir)
    yield Server(proc, keys, cwd)
    proc.stop()


def events_until_closed(ws: Any, timeout: float = 60.0) -> tuple[list[dict[str, Any]], int | None]:
    """Every event until the server closes the socket, and the close code."""
    events: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            message = ws.recv(timeout=max(0.1, deadline - time.monotonic()))
            events.append(json.loads(message))
    except ConnectionClosed as closed:
        return events, closed.rcvd.code if closed.rcvd else None
    raise AssertionError(f"the server did not close the stream: {events}")


def send_until_closed(ws: Any, message: bytes, every_s: float) -> list[dict[str, Any]]:
    """Send ``message`` every ``every_s`` seconds, collecting events, until the server closes
    (for at most a minute). Events still unread at the close are left to ``events_until_closed``."""
    events: list[dict[str, Any]] = []
    deadline = time.monotonic() + 60
    with contextlib.suppress(ConnectionClosed):
        while time.monotonic() < deadline:
            ws.send(message)
            with contextlib.suppress(TimeoutError):
                events.append(json.loads(ws.recv(timeout=every_s)))
    return events


def first_event(ws: Any) -> dict[str, Any]:
    event: dict[str, Any] = json.loads(ws.recv(timeout=30))
    return event


def error_codes(events: list[dict[str, Any]]) -> list[str]:
    return [e["error"]["code"] for e in events if e["type"] == "error"]


# -- item 1: no playlists, no protocols ---------------------------------------------------------


def hostile_inputs(speech: Path) -> dict[str, bytes]:
    target = str(speech).encode()
    return {
        "ffconcat absolute": b"ffconcat version 1.0\nfile " + target + b"\n",
        "ffconcat relative": b"ffconcat version 1.0\nfile 'speech.wav'\n",
        "ffconcat file url": b"ffconcat version 1.0\nfile 'file:" + target + b"'\n",
        "ffconcat missing": b"ffconcat version 1.0\nfile /nonexistent/nothing.wav\n",
        "hls": b"#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\nfile://" + target
        + b"\n#EXT-X-ENDLIST\n",
        "concat protocol": b"concat:" + target + b"|" + target + b"\n",
        "sdp": b"v=0\no=- 0 0 IN IP4 127.0.0.1\ns=x\nc=IN IP4 127.0.0.1\nt=0 0\n"
        b"m=audio 5004 RTP/AVP 0\n",
        "subtitles": b"1\n00:00:01,000 --> 00:00:02,000\nthe quick brown fox\n",
        "ffmetadata": b";FFMETADATA1\ntitle=speech\n",
    }  # fmt: skip


GENERIC_UPLOAD_ERRORS = {
    "uploaded file: not a decodable audio or video file (unsupported format)",
    "uploaded file: not a decodable audio or video file (Invalid data found when processing input)",
}


def test_playlists_and_protocols_are_refused_on_upload(server: Server) -> None:
    messages = {}
    for name, data in hostile_inputs(server.cwd / "speech.wav").items():
        response = httpx.post(f"{server.proc.url}/v1/audio/transcriptions",
                              files={"file": ("speech.wav", data)}, data={"language": "en"},
                              headers=server.auth("k1"), timeout=60)  # fmt: skip
        assert response.status_code in (400, 415), (name, response.text)
        assert not SECRET_WORDS & words_of(response.text), name
        messages[name] = response.json()["error"]["message"]
    # Generic answers: nothing tells whether a named file exists.
    assert set(messages.values()) <= GENERIC_UPLOAD_ERRORS, messages
    assert messages["ffconcat missing"] == messages["ffconcat absolute"]


def test_playlists_and_protocols_are_refused_live(server: Server) -> None:
    messages = set()
    for name, data in hostile_inputs(server.cwd / "speech.wav").items():
        with server.connect("k1", "encoding=webm&language=en") as ws:
            assert first_event(ws)["type"] == "ready"
            ws.send(data)
            ws.send('{"type": "stop"}')
            events, code = events_until_closed(ws)
        assert error_codes(events) == ["invalid_audio"], (name, events)
        assert code == 1007
        assert not any(SECRET_WORDS & words_of(json.dumps(e)) for e in events), name
        messages.update(e["error"]["message"] for e in events if e["type"] == "error")
    assert len(messages) == 1 and "the stream is neither WebM nor Ogg" in messages.pop()


# -- item 2: decompression bombs ----------------------------------------------------------------


def opus_silence_bomb(seconds: float) -> bytes:
    """Ogg/Opus silence: one tiny 60 ms packet, repeated (about 3 MB for three hours)."""
    seed = subprocess.run(
        ["ffmpeg", "-nostdin", "-loglevel", "error", "-f", "lavfi", "-i",
         "anullsrc=r=48000:cl=mono", "-t", "1.2", "-c:a", "libopus", "-b:a", "6k",
         "-frame_duration", "60", "-application", "voip", "-f", "ogg", "-"],
        capture_output=True, check=True,
    ).stdout  # fmt: skip
    out = io.BytesIO()
    with av.open(io.BytesIO(seed)) as src, av.open(out, "w", format="ogg") as dst:
        template = src.streams.audio[0]
        packet_data = [bytes(p) for p in src.demux(template) if p.size][-2]
        stream = dst.add_stream_from_template(template)
        for i in range(int(seconds / 0.06)):
            packet = av.Packet(packet_data)
            packet.pts = packet.dts = i * 2880
            packet.time_base = Fraction(1, 48000)
            packet.stream = stream
            dst.mux(packet)
    return out.getvalue()


@pytest.fixture(scope="module")
def bomb() -> bytes:
    data = opus_silence_bomb(3 * 3600.0)
    assert len(data) < 4_000_000  # a few MB that would decode to 691 MB of float32
    return data


@pytest.mark.parametrize("pieces", [1, 48], ids=["one message", "many messages"])
def test_an_opus_bomb_ends_the_stream_and_memory_stays_bounded(
    server: Server, bomb: bytes, pieces: int
) -> None:
    rss_before, peak_before = server.rss_kib(), server.rss_kib("VmHWM")
    with server.connect("k2", "encoding=webm&language=en") as ws:
        assert first_event(ws)["type"] == "ready"
        size = -(-len(bomb) // pieces)
        for i in range(0, len(bomb), size):
            try:
                ws.send(bomb[i : i + size])
            except ConnectionClosed:
                break  # ended while sending: fine
        events, code = events_until_closed(ws)
    assert error_codes(events) == ["audio_too_long"], events
    error = next(e for e in events if e["type"] == "error")
    assert "the most per message" in error["error"]["message"]
    assert events[-1]["type"] == "end" and events[-1]["duration"] <= 61.0  # at most one message
    assert code == 1000
    grown_mib = (server.rss_kib() - rss_before) / 1024
    peak_grown_mib = (server.rss_kib("VmHWM") - peak_before) / 1024
    assert grown_mib < 150 and peak_grown_mib < 150, (grown_mib, peak_grown_mib)
    assert httpx.get(f"{server.proc.url}/ready", timeout=10).status_code == 200
    with server.connect("k2") as ws:  # and the server still streams
        assert first_event(ws)["type"] == "ready"
        ws.send('{"type": "stop"}')
        assert events_until_closed(ws)[0][-1]["type"] == "end"


# -- item 4: sessions that outlive their client -------------------------------------------------


def test_a_client_that_leaves_while_held_back_frees_its_place(server: Server) -> None:
    # k1 may hold one stream: the next one is refused until the first place is freed.
    with server.connect("k1") as ws:
        assert first_event(ws)["type"] == "ready"
        ws.send(bytes(32000 * 50))  # 50 s of silence: held back for about 45 s
        time.sleep(0.5)
    left = time.monotonic()
    while True:
        with server.connect("k1") as again:
            event = first_event(again)
            if event["type"] == "ready":
                again.send('{"type": "stop"}')
                assert events_until_closed(again)[0][-1]["type"] == "end"
                break
        assert event["error"]["code"] == "too_many_sessions"
        assert time.monotonic() - left < 10, "the place was not freed"
        time.sleep(0.2)


def test_a_trickling_client_is_ended_with_its_transcript(server: Server, clips: Clips) -> None:
    audio = pcm16(clips.speech, tail_s=1.0)
    with server.connect("k1") as ws:
        assert first_event(ws)["type"] == "ready"
        for i in range(0, len(audio), 3200):
            ws.send(audio[i : i + 3200])
        started = time.monotonic()
        events = send_until_closed(ws, b"\0\0", every_s=0.25)  # 1/4000 of real time
        more, code = events_until_closed(ws)  # what came before the close, still unread
        events += more
    took = time.monotonic() - started
    assert error_codes(events) == ["audio_too_slow"], events
    kinds = [e["type"] for e in events]
    assert kinds.index("error") < kinds.index("end") == len(kinds) - 1  # transcript, then close
    assert words_of(events[-1]["text"]) >= SECRET_WORDS
    assert code == 1000 and 2.0 < took < 30


# -- item 5: one key cannot take every live place -------------------------------------------------


def test_one_key_gets_at_most_its_share_of_live_streams(server: Server) -> None:
    with server.connect("k1") as first:
        assert first_event(first)["type"] == "ready"
        with server.connect("k1") as second:
            refused = first_event(second)
            assert refused["type"] == "error"
            assert refused["error"]["code"] == "too_many_sessions"
            assert "this API key" in refused["error"]["message"]
            assert events_until_closed(second)[1] == 1013
        with server.connect("k2") as other:  # another key still gets a place
            assert first_event(other)["type"] == "ready"
            other.send('{"type": "stop"}')
            assert events_until_closed(other)[0][-1]["type"] == "end"
        first.send('{"type": "stop"}')
        assert events_until_closed(first)[0][-1]["type"] == "end"


# -- item 8: a revoked key's streams end ----------------------------------------------------------


def test_revoking_a_key_ends_its_open_stream(server: Server) -> None:
    key_id, _ = server.keys["k3"]
    with server.connect("k3") as ws:
        assert first_event(ws)["type"] == "ready"
        revoking = time.monotonic()
        revoke = subprocess.Popen([*MALSORI, "keys", "--data-dir", str(server.proc.data_dir),
                                   "revoke", key_id], stdout=subprocess.DEVNULL)  # fmt: skip
        events = send_until_closed(ws, bytes(3200), every_s=0.1)  # real time: well-behaved
        ended = time.monotonic()
        more, code = events_until_closed(ws)
        events += more
    assert revoke.wait(30) == 0
    assert error_codes(events) == ["invalid_api_key"], events
    assert code == 1008
    # The revoking command itself takes a few seconds to start; the check runs every second.
    assert ended - revoking < 20
    again = httpx.get(f"{server.proc.url}/v1/models", headers=server.auth("k3"))
    assert again.status_code == 401
