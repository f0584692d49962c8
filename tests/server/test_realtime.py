"""``/v1/realtime`` in-process: PCM16 and WebM/Opus streams give the spoken words, the API key is
required (header, query parameter or subprotocol), bad requests get an error event and a close
code, idle streams end, clients are held to real time, and two clients at once stay apart;
streams end at their audio and duration limits with their transcript, one key gets at most its
share of places, and the container decoder's output stays bounded. Attacks on a real server
process are in test_hostile_realtime.py."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from starlette.testclient import WebSocketTestSession
from starlette.websockets import WebSocketDisconnect

from malsori.audio import AudioStream
from malsori.errors import MalsoriError
from malsori.server.streams import (
    ContainerDecoder,
    Liveness,
    Pacer,
    StreamLimitError,
    StreamScheduler,
    StreamSession,
    TooManySessionsError,
)

from .helpers import SPEECH_WORDS, Clips, Served, run_tool, words_of

CHUNK = 3200  # 100 ms of 16 kHz PCM16 (bytes)


def pcm16(path: Path, lead_s: float = 0.5, tail_s: float = 1.0) -> bytes:
    audio = AudioStream(path).read()
    audio = np.concatenate([np.zeros(int(lead_s * 16000), np.float32), audio,
                            np.zeros(int(tail_s * 16000), np.float32)])  # fmt: skip
    return (np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes()


def collect(ws: WebSocketTestSession) -> list[dict[str, Any]]:
    """Events until ``end`` or ``error`` (inclusive)."""
    events = []
    while True:
        event = ws.receive_json()
        events.append(event)
        if event["type"] in ("end", "error"):
            return events


def stream(ws: WebSocketTestSession, data: bytes) -> list[dict[str, Any]]:
    ready = ws.receive_json()
    assert ready["type"] == "ready" and ready["session"]["id"].startswith("rt_")
    for i in range(0, len(data), CHUNK):
        ws.send_bytes(data[i : i + CHUNK])
    ws.send_text(json.dumps({"type": "stop"}))
    return collect(ws)


def check_events(events: list[dict[str, Any]]) -> str:
    """The invariants of a finished stream; returns its final text."""
    assert events[-1]["type"] == "end", events[-1]
    finals = [e for e in events if e["type"] == "final"]
    assert {e["type"] for e in events} <= {"partial", "final", "end"}
    text = "".join(e["text"] for e in finals)
    assert " ".join(text.split()) == events[-1]["text"]  # finals never change: they add up
    starts = [w["start"] for e in finals for w in e["words"]]
    assert starts == sorted(starts)
    segments = events[-1]["segments"]
    assert [s["id"] for s in segments] == list(range(len(segments)))
    return text


@pytest.fixture
def served(serve: Callable[..., Served]) -> Served:
    return serve(realtime={"burst_s": 60.0})


def test_pcm16_stream_gives_the_spoken_words(served: Served, clips: Clips) -> None:
    url = "/v1/realtime?language=en"
    with served.client.websocket_connect(url, headers=served.auth()) as ws:
        events = stream(ws, pcm16(clips.speech))
    text = check_events(events)
    assert set(SPEECH_WORDS) <= words_of(text)
    assert events[-1]["language"] == "en" and events[-1]["duration"] > 3.0
    metrics = served.client.get("/metrics").text
    assert 'malsori_audio_seconds_processed_total{task="transcribe"}' in metrics


def test_webm_opus_stream_from_a_browser_recorder(
    served: Served, clips: Clips, tmp_path: Path
) -> None:
    webm = tmp_path / "speech.webm"
    run_tool("ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-i", clips.speech, "-af",
             "apad=pad_dur=1", "-c:a", "libopus", "-b:a", "32k", "-f", "webm", webm)  # fmt: skip
    data = webm.read_bytes()
    # The key as a subprotocol, as the web page sends it (browsers cannot set headers).
    protocols = ["malsori.v1", f"malsori-key.{served.key}"]
    url = "/v1/realtime?encoding=webm&language=en"
    with served.client.websocket_connect(url, subprotocols=protocols) as ws:
        assert ws.accepted_subprotocol == "malsori.v1"  # the key is never echoed
        ready = ws.receive_json()
        assert ready["session"]["encoding"] == "webm"
        for i in range(0, len(data), 1000):  # MediaRecorder-sized pieces, split anywhere
            ws.send_bytes(data[i : i + 1000])
        ws.send_text('{"type": "stop"}')
        events = collect(ws)
    assert set(SPEECH_WORDS) <= words_of(check_events(events))


@pytest.mark.parametrize("how", ["none", "wrong header", "wrong query", "revoked"])
def test_a_key_is_required(served: Served, how: str) -> None:
    headers, url = {}, "/v1/realtime"
    if how == "wrong header":
        headers = served.auth("msk-wrong")
    elif how == "wrong query":
        url += "?api_key=msk-wrong"
    elif how == "revoked":
        key = served.new_key("gone")
        key_id = next(k.id for k in served.services.keys.list() if k.name == "gone")
        served.services.keys.revoke(key_id)
        headers = served.auth(key)
    with served.client.websocket_connect(url, headers=headers) as ws:
        event = ws.receive_json()
        assert event["type"] == "error" and event["error"]["code"] == "invalid_api_key"
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_json()
    assert closed.value.code == 1008


def test_the_key_as_a_query_parameter(served: Served) -> None:
    with served.client.websocket_connect(f"/v1/realtime?api_key={served.key}") as ws:
        assert ws.receive_json()["type"] == "ready"
        ws.send_text('{"type": "stop"}')
        events = collect(ws)
    assert events == [{"type": "end", "text": "", "language": "", "duration": 0.0, "segments": []}]


@pytest.mark.parametrize(
    ("query", "param"),
    [("encoding=mp3", "encoding"), ("sample_rate=44100", "sample_rate"),
     ("language=klingon", "language"), ("model=whisper-9", None)],
)  # fmt: skip
def test_bad_parameters_get_an_error_event(served: Served, query: str, param: str | None) -> None:
    with served.client.websocket_connect(f"/v1/realtime?{query}", headers=served.auth()) as ws:
        event = ws.receive_json()
        assert event["type"] == "error"
        if param is not None:
            assert event["error"]["param"] == param
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_json()
    assert closed.value.code == 1008


def test_undecodable_webm_and_unknown_messages(served: Served) -> None:
    with served.client.websocket_connect("/v1/realtime?encoding=webm", headers=served.auth()) as ws:
        ws.receive_json()
        ws.send_bytes(b"this is not a webm stream at all" * 100)
        ws.send_text('{"type": "stop"}')
        event = collect(ws)[-1]
        assert event["type"] == "error" and event["error"]["code"] == "invalid_audio"
    with served.client.websocket_connect("/v1/realtime", headers=served.auth()) as ws:
        ws.receive_json()
        ws.send_text('{"type": "dance"}')
        event = collect(ws)[-1]
        assert event["error"]["code"] == "invalid_option" and event["error"]["param"] == "message"


def test_an_idle_stream_is_ended(serve: Callable[..., Served], clips: Clips) -> None:
    served = serve(realtime={"idle_timeout_s": 1.0})
    with served.client.websocket_connect("/v1/realtime?language=en", headers=served.auth()) as ws:
        ws.receive_json()
        ws.send_bytes(pcm16(clips.speech, tail_s=1.5))
        started = time.monotonic()
        events = []
        while not events or events[-1]["type"] != "end":
            events.append(ws.receive_json())
    errors = [e for e in events if e["type"] == "error"]
    assert [e["error"]["code"] for e in errors] == ["idle_timeout"]
    assert set(SPEECH_WORDS) <= words_of(events[-1]["text"])  # what was said is still final
    assert time.monotonic() - started < 60


def test_a_client_held_back_is_not_idle(serve: Callable[..., Served]) -> None:
    """While the server holds a client back (it sent 4 s at once, burst 0), the client sends
    nothing by design: that is not idling, even past ``idle_timeout_s``."""
    served = serve(realtime={"idle_timeout_s": 1.0, "burst_s": 0.0})
    with served.client.websocket_connect("/v1/realtime", headers=served.auth()) as ws:
        ws.receive_json()
        ws.send_bytes(bytes(32000 * 4))
        ws.send_text('{"type": "stop"}')  # read only once the 4 s have passed
        events = until_end(ws)
    assert [e for e in events if e["type"] == "error"] == []
    assert events[-1]["duration"] == pytest.approx(4.0)


def test_two_clients_at_once_stay_apart(served: Served, clips: Clips) -> None:
    results: dict[str, list[dict[str, Any]]] = {}
    silence = bytes(16000 * 2 * 3)  # 3 s of silence

    def run(name: str, data: bytes) -> None:
        with served.client.websocket_connect(
            "/v1/realtime?language=en", headers=served.auth()
        ) as ws:
            results[name] = stream(ws, data)

    threads = [threading.Thread(target=run, args=("speech", pcm16(clips.speech))),
               threading.Thread(target=run, args=("silence", silence))]  # fmt: skip
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert set(SPEECH_WORDS) <= words_of(check_events(results["speech"]))
    assert check_events(results["silence"]) == ""
    assert results["silence"][-1]["duration"] == pytest.approx(3.0)


def test_too_many_streams_are_refused(serve: Callable[..., Served]) -> None:
    served = serve(realtime={"max_sessions": 1})
    with served.client.websocket_connect("/v1/realtime", headers=served.auth()) as first:
        assert first.receive_json()["type"] == "ready"
        with served.client.websocket_connect("/v1/realtime", headers=served.auth()) as second:
            event = second.receive_json()
            assert event["type"] == "error" and event["error"]["code"] == "too_many_sessions"
            with pytest.raises(WebSocketDisconnect) as closed:
                second.receive_json()
        assert closed.value.code == 1013
        first.send_text('{"type": "stop"}')
        assert collect(first)[-1]["type"] == "end"


def test_a_fast_client_is_held_to_real_time(serve: Callable[..., Served], clips: Clips) -> None:
    served = serve(realtime={"burst_s": 1.0})
    data = pcm16(clips.speech, lead_s=0.0, tail_s=0.5)  # about 3.5 s of audio
    with served.client.websocket_connect("/v1/realtime?language=en", headers=served.auth()) as ws:
        ws.receive_json()
        started = time.monotonic()
        events = stream_after_ready(ws, data)
        took = time.monotonic() - started
    audio_s = len(data) / 32000
    assert took >= audio_s - 1.0 - 0.3  # read no faster than real time plus the 1 s burst
    assert set(SPEECH_WORDS) <= words_of(events[-1]["text"])


def stream_after_ready(ws: WebSocketTestSession, data: bytes) -> list[dict[str, Any]]:
    for i in range(0, len(data), CHUNK):
        ws.send_bytes(data[i : i + CHUNK])
    ws.send_text('{"type": "stop"}')
    return collect(ws)


def test_pacer_with_an_injected_clock() -> None:
    now = [100.0]
    pacer = Pacer(burst_s=2.0, clock=lambda: now[0])
    assert pacer.delay(1.5) == 0.0  # within the burst
    assert pacer.delay(5.0) == pytest.approx(3.0)  # 5 s sent at t=0: wait until t=3
    now[0] += 3.0
    assert pacer.delay(5.0) == 0.0


def test_the_scheduler_takes_streams_in_turn() -> None:
    """Two busy streams and a quiet one: each gets a decode per round, none is starved."""
    order: list[str] = []
    go = threading.Event()  # every stream is open before any has work

    class Busy:
        def __init__(self, name: str, steps: int):
            self.name, self.steps = name, steps

        def ready(self) -> bool:
            return go.is_set() and self.steps > 0

        def process_iter(self) -> list[Any]:
            order.append(self.name)
            self.steps -= 1
            time.sleep(0.01)
            return []

    scheduler = StreamScheduler(workers=1, max_sessions=3)
    sessions = [StreamSession(Busy(n, s), lambda events: None)  # type: ignore[arg-type]
                for n, s in (("a", 6), ("b", 6), ("c", 2))]  # fmt: skip
    for s in sessions:
        scheduler.open(s)
    with pytest.raises(TooManySessionsError):
        scheduler.open(StreamSession(Busy("d", 1), lambda events: None))  # type: ignore[arg-type]
    go.set()
    deadline = time.monotonic() + 10
    while len(order) < 14 and time.monotonic() < deadline:
        time.sleep(0.01)
    for s in sessions:
        scheduler.close(s)
    assert sorted(order[:6]) == ["a", "a", "b", "b", "c", "c"]  # round robin
    assert order.count("a") == order.count("b") == 6


def test_liveness_with_an_injected_clock() -> None:
    """Each window must bring audio, and at least ``min_rate`` of it per second; a window in
    which the server held the client back does not count."""
    now = [0.0]
    live = Liveness(window_s=10.0, min_rate=0.5, clock=lambda: now[0])
    now[0] = 9.0
    assert live.check(0.0) is None  # the window is not over yet
    now[0] = 10.0
    assert live.check(8.0) is None  # 8 s of audio in 10 s: enough
    now[0] = 20.0
    trickle = live.check(8.0 + 0.01)  # 2-byte messages: 0.01 s of audio in 10 s
    assert trickle is not None and trickle.code == "audio_too_slow"
    now[0] = 30.0
    idle = live.check(8.01)
    assert idle is not None and idle.code == "idle_timeout"
    now[0] = 35.0
    live.restart(8.01)  # the server held the client back until now
    now[0] = 44.0
    assert live.check(8.01) is None


def test_one_key_gets_at_most_its_share_of_the_scheduler() -> None:
    class Idle:
        def ready(self) -> bool:
            return False

    scheduler = StreamScheduler(workers=1, max_sessions=4, max_per_key=2)

    def session(owner: str | None) -> StreamSession:
        return StreamSession(Idle(), lambda events: None, owner=owner)  # type: ignore[arg-type]

    opened = [session("key_a"), session("key_a"), session(None)]
    for s in opened:
        scheduler.open(s)
    with pytest.raises(TooManySessionsError, match="this API key has 2 live streams"):
        scheduler.open(session("key_a"))
    scheduler.open(session("key_b"))  # another key, or no key, still gets a place
    with pytest.raises(TooManySessionsError, match="4 live streams are open"):
        scheduler.open(session("key_c"))
    scheduler.close(opened[0])
    scheduler.open(session("key_a"))  # a closed stream frees its key's place


def until_end(ws: WebSocketTestSession) -> list[dict[str, Any]]:
    events = [ws.receive_json()]
    while events[-1]["type"] != "end":
        events.append(ws.receive_json())
    return events


def test_a_stream_ends_at_its_audio_and_duration_limits(
    serve: Callable[..., Served], clips: Clips
) -> None:
    """Past ``max_message_audio_s``, ``max_session_audio_s`` or ``max_session_s`` the stream is
    finished with an error naming the limit, and what was received is still transcribed."""
    served = serve(realtime={"max_message_audio_s": 2.0, "max_session_audio_s": 6.0,
                             "max_session_s": 2.5, "burst_s": 60.0})  # fmt: skip
    url = "/v1/realtime?language=en"
    with served.client.websocket_connect(url, headers=served.auth()) as ws:
        ws.receive_json()
        ws.send_bytes(bytes(32000 * 3))  # 3 s in one message
        events = until_end(ws)
    errors = [e["error"] for e in events if e["type"] == "error"]
    assert [e["code"] for e in errors] == ["audio_too_long"] and "per message" in errors[0][
        "message"
    ]

    speech = pcm16(clips.speech, lead_s=0.0, tail_s=0.5)  # about 3.5 s
    with served.client.websocket_connect(url, headers=served.auth()) as ws:
        ws.receive_json()
        for _ in range(2):  # 7 s in all, against 6 s
            for i in range(0, len(speech), CHUNK):
                ws.send_bytes(speech[i : i + CHUNK])
        events = until_end(ws)
    errors = [e["error"] for e in events if e["type"] == "error"]
    assert [e["code"] for e in errors] == ["audio_too_long"]
    assert "the most one stream may send" in errors[0]["message"]
    assert set(SPEECH_WORDS) <= words_of(events[-1]["text"])  # what came in is transcribed

    with served.client.websocket_connect(url, headers=served.auth()) as ws:
        ws.receive_json()
        started = time.monotonic()
        done = threading.Event()

        def real_time() -> None:  # a well-behaved client, until the server ends the stream
            while not done.wait(0.1):
                ws.send_bytes(bytes(CHUNK))

        sender = threading.Thread(target=real_time)
        sender.start()
        try:
            events = until_end(ws)
        finally:
            done.set()
            sender.join(10)
    assert [e["error"]["code"] for e in events if e["type"] == "error"] == ["session_too_long"]
    assert 2.5 <= time.monotonic() - started < 30


def test_the_container_decoder_waits_for_room_and_caps_a_message(
    clips: Clips, tmp_path: Path
) -> None:
    """Decoded audio waits while the engine has no room (its queue stays bounded), and one
    message decoding to more than ``max_message_samples`` stops the decoder with an error."""
    ogg = tmp_path / "speech.ogg"
    run_tool("ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-i", clips.speech, "-c:a",
             "libopus", "-b:a", "32k", ogg)  # fmt: skip
    data = ogg.read_bytes()
    got: list[int] = []
    room = threading.Event()
    decoder = ContainerDecoder(
        lambda samples: got.append(samples.size),
        has_room=lambda: room.is_set() or sum(got) < 16000,  # room for 1 s, then none
    )
    decoder.feed(data)
    time.sleep(1.0)
    assert 16000 <= sum(got) < 16000 + 16000 // 2  # stopped near 1 s: nothing piles up
    room.set()
    decoder.close()
    assert sum(got) / 16000 > 2.5  # then the rest

    errors: list[MalsoriError] = []
    capped = ContainerDecoder(lambda samples: None, max_message_samples=16000,
                              on_error=errors.append)  # fmt: skip
    capped.feed(data)  # about 3 s in one message, against 1 s
    with pytest.raises(StreamLimitError, match="the most per message"):
        capped.close()
    assert isinstance(errors[0], StreamLimitError) and errors[0].code == "audio_too_long"
