"""OpenAI's Realtime transcription protocol on ``/v1/realtime``.

In-process: a session the client commits (GA shape), server VAD turns, G.711 u-law in the beta
shape, the key as OpenAI's browser subprotocol, a first message that switches a plain
connection, and bad events (unknown, malformed, binary, out of range, audio not in the announced
format) that each get an error event naming the client's ``event_id`` while the session stays
open. Against a real ``malsori serve`` process: the official Python client (GA and beta), whose
text is within 1 WER point of the same clip through ``/v1/audio/transcriptions``."""

from __future__ import annotations

import base64
import json
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from starlette.testclient import WebSocketTestSession

from malsori.evaluation import error_counts, normalize_text
from malsori.server.turns import AudioConverter

from .helpers import LONG_SENTENCES, SPEECH_WORDS, Clips, Served, run_tool, words_of

CHUNK_MS = 100
DONE = "conversation.item.input_audio_transcription.completed"
DELTA = "conversation.item.input_audio_transcription.delta"


def raw(source: Path, out: Path, fmt: str, lead_s: float = 0.3, tail_s: float = 1.2) -> bytes:
    """``source`` as raw audio in an OpenAI input format, with silence before and after."""
    args = {"pcm16": ["-r", "24000", "-b", "16", "-e", "signed-integer"],
            "g711_ulaw": ["-r", "8000", "-e", "u-law"]}[fmt]  # fmt: skip
    run_tool("sox", source, "-c", "1", *args, "-t", "raw", out, "pad", str(lead_s), str(tail_s))
    return out.read_bytes()


def chunks(data: bytes, fmt: str) -> Iterator[str]:
    step = (48 if fmt == "pcm16" else 8) * CHUNK_MS  # bytes per 100 ms
    for i in range(0, len(data), step):
        yield base64.b64encode(data[i : i + step]).decode()


def until(ws: WebSocketTestSession, kind: str, limit: int = 500) -> list[dict[str, Any]]:
    """Events up to and including the first of type ``kind``."""
    events = []
    for _ in range(limit):
        events.append(ws.receive_json())
        if events[-1]["type"] == kind:
            return events
    raise AssertionError(f"no {kind} in {[e['type'] for e in events]}")


def send(ws: WebSocketTestSession, event: dict[str, Any]) -> None:
    ws.send_text(json.dumps(event))


def ga_update(**input_: Any) -> dict[str, Any]:
    return {"type": "session.update",
            "session": {"type": "transcription", "audio": {"input": input_}}}  # fmt: skip


@pytest.fixture
def served(serve: Callable[..., Served]) -> Served:
    return serve(realtime={"burst_s": 60.0})


@pytest.fixture(scope="module")
def speech24(clips: Clips, tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return raw(clips.speech, tmp_path_factory.mktemp("rt") / "speech.raw", "pcm16")


def test_a_session_the_client_commits(served: Served, speech24: bytes) -> None:
    with served.client.websocket_connect(
        "/v1/realtime?intent=transcription", headers=served.auth()
    ) as ws:
        created = ws.receive_json()
        assert created["type"] == "session.created" and created["event_id"]
        session = created["session"]
        assert session["type"] == "transcription"
        assert session["audio"]["input"]["format"] == {"type": "audio/pcm", "rate": 24000}
        assert session["audio"]["input"]["turn_detection"]["type"] == "server_vad"
        send(ws, ga_update(turn_detection=None, transcription={"model": "whisper-1",
                                                               "language": "en"}))  # fmt: skip
        updated = ws.receive_json()
        assert updated["type"] == "session.updated"
        assert updated["session"]["audio"]["input"]["turn_detection"] is None
        for audio in chunks(speech24, "pcm16"):
            send(ws, {"type": "input_audio_buffer.append", "audio": audio})
        send(ws, {"type": "input_audio_buffer.commit"})
        events = until(ws, DONE)
    committed = next(e for e in events if e["type"] == "input_audio_buffer.committed")
    done = events[-1]
    assert done["item_id"] == committed["item_id"] and committed["previous_item_id"] is None
    deltas = [e for e in events if e["type"] == DELTA]
    assert deltas and "".join(d["delta"] for d in deltas).strip() == done["transcript"]
    assert set(SPEECH_WORDS) <= words_of(done["transcript"])
    assert done["usage"]["type"] == "duration" and done["usage"]["seconds"] > 2.0


def test_server_vad_finds_the_turn(served: Served, speech24: bytes) -> None:
    with served.client.websocket_connect("/v1/realtime", headers={
        **served.auth(), "OpenAI-Beta": "realtime=v1"}) as ws:  # fmt: skip
        assert ws.receive_json()["type"] == "transcription_session.created"
        send(ws, {"type": "transcription_session.update", "session": {
            "input_audio_transcription": {"model": "gpt-4o-transcribe", "language": "en"},
            "turn_detection": {"type": "server_vad", "threshold": 0.5, "prefix_padding_ms": 200,
                               "silence_duration_ms": 400},
            "include": ["item.input_audio_transcription.logprobs"]}})  # fmt: skip
        updated = ws.receive_json()
        assert updated["type"] == "transcription_session.updated"
        assert updated["session"]["turn_detection"]["silence_duration_ms"] == 400
        for audio in chunks(speech24, "pcm16"):
            send(ws, {"type": "input_audio_buffer.append", "audio": audio})
        events = until(ws, DONE)
    kinds = [e["type"] for e in events]
    started = kinds.index("input_audio_buffer.speech_started")
    assert started < kinds.index("input_audio_buffer.speech_stopped")
    assert kinds.index("input_audio_buffer.speech_stopped") < kinds.index(
        "input_audio_buffer.committed"
    )
    start_ms = events[started]["audio_start_ms"]
    assert 0 <= start_ms <= 600  # speech begins 300 ms in; 200 ms of padding before it
    done = events[-1]
    assert set(SPEECH_WORDS) <= words_of(done["transcript"])
    assert all(p["logprob"] <= 0 for p in done["logprobs"]) and len(done["logprobs"]) >= 4


def test_g711_ulaw_in_the_beta_shape(served: Served, clips: Clips, tmp_path: Path) -> None:
    ulaw = raw(clips.speech, tmp_path / "speech.ulaw", "g711_ulaw")
    with served.client.websocket_connect("/v1/realtime?intent=transcription",
                                         headers=served.auth()) as ws:  # fmt: skip
        ws.receive_json()
        send(ws, {"type": "transcription_session.update", "session": {
            "input_audio_format": "g711_ulaw", "turn_detection": None,
            "input_audio_transcription": {"language": "en"}}})  # fmt: skip
        assert ws.receive_json()["type"] == "session.updated"  # GA names: no beta header
        for audio in chunks(ulaw, "g711_ulaw"):
            send(ws, {"type": "input_audio_buffer.append", "audio": audio})
        send(ws, {"type": "input_audio_buffer.commit"})
        done = until(ws, DONE)[-1]
    # telephone audio (8 kHz, 8 bits) costs the base model a word now and then
    assert len(set(SPEECH_WORDS) & words_of(done["transcript"])) >= 3, done["transcript"]


def test_the_converter_resamples_and_decodes_g711() -> None:
    tone = (np.sin(np.arange(24000) * 2 * np.pi * 440 / 24000) * 16000).astype("<i2")
    pcm = AudioConverter("pcm16")
    out = np.concatenate([pcm.convert(tone[i : i + 2400].tobytes()) for i in range(0, 24000, 2400)])
    assert abs(out.size - 16000) < 200  # one second at 16 kHz (the resampler keeps a tail)
    assert 0.4 < float(np.abs(out).max()) < 0.55
    ulaw = AudioConverter("g711_ulaw")
    # 0xFF is u-law's zero, 0x80 its loudest positive value; A-law's zero is 0xD5.
    assert float(np.abs(ulaw.convert(b"\xff" * 800)).max()) < 1e-3
    assert float(ulaw.convert(b"\x80" * 800).max()) > 0.9
    assert float(np.abs(AudioConverter("g711_alaw").convert(b"\xd5" * 800)).max()) < 1e-3


def test_the_key_as_openais_browser_subprotocol(served: Served) -> None:
    protocols = ["realtime", f"openai-insecure-api-key.{served.key}"]
    with served.client.websocket_connect("/v1/realtime", subprotocols=protocols) as ws:
        assert ws.accepted_subprotocol == "realtime"
        assert ws.receive_json()["type"] == "session.created"
    bad = ["realtime", "openai-insecure-api-key.msk-wrong"]
    with served.client.websocket_connect("/v1/realtime", subprotocols=bad) as ws:
        event = ws.receive_json()
        assert event["type"] == "error" and event["error"]["code"] == "invalid_api_key"
        assert event["event_id"]


def test_the_first_message_decides(served: Served, speech24: bytes) -> None:
    with served.client.websocket_connect("/v1/realtime", headers=served.auth()) as ws:
        assert ws.receive_json()["type"] == "ready"  # nothing said it was an OpenAI client
        send(ws, ga_update(turn_detection=None, transcription={"language": "en"}))
        assert ws.receive_json()["type"] == "session.created"
        assert ws.receive_json()["type"] == "session.updated"
        for audio in chunks(speech24, "pcm16"):
            send(ws, {"type": "input_audio_buffer.append", "audio": audio})
        send(ws, {"type": "input_audio_buffer.commit"})
        assert set(SPEECH_WORDS) <= words_of(until(ws, DONE)[-1]["transcript"])


BAD_EVENTS: list[tuple[str, Any, str]] = [
    ("unknown", {"type": "input_audio_buffer.rewind"}, "unknown_event"),
    ("no type", {"audio": "AAAA"}, "unknown_event"),
    ("type not a string", {"type": {"a": 1}}, "unknown_event"),
    ("not JSON", "{not json", "invalid_json"),
    ("a JSON list", "[1, 2]", "invalid_value"),
    ("binary", b"\x00\x01" * 100, "invalid_event"),
    ("not base64", {"type": "input_audio_buffer.append", "audio": "%%%"}, "invalid_value"),
    ("audio not a string", {"type": "input_audio_buffer.append", "audio": 5}, "invalid_value"),
    ("a WAV file as pcm16", {"type": "input_audio_buffer.append",
                             "audio": base64.b64encode(b"RIFF" + bytes(400)).decode()},
     "invalid_audio"),
    ("half a sample", {"type": "input_audio_buffer.append",
                       "audio": base64.b64encode(b"\x00\x01\x02").decode()}, "invalid_audio"),
    ("commit of nothing", {"type": "input_audio_buffer.commit"},
     "input_audio_buffer_commit_empty"),
    ("threshold out of range", ga_update(turn_detection={"type": "server_vad", "threshold": 7}),
     "invalid_value"),
    ("unknown format", ga_update(format={"type": "audio/flac"}), "invalid_value"),
    ("a conversation session", {"type": "session.update", "session": {"type": "realtime"}},
     "unsupported_session_type"),
    ("response.create", {"type": "response.create"}, "unsupported_event"),
    ("an unknown model", ga_update(transcription={"model": "llama-3"}), "model_not_found"),
    ("an unknown language", ga_update(transcription={"language": "xx-klingon"}),
     "invalid_value"),
]  # fmt: skip


def test_bad_events_get_an_error_and_the_session_stays_open(
    served: Served, speech24: bytes
) -> None:
    with served.client.websocket_connect("/v1/realtime?intent=transcription",
                                         headers=served.auth()) as ws:  # fmt: skip
        ws.receive_json()
        for n, (name, event, code) in enumerate(BAD_EVENTS):
            if isinstance(event, bytes):
                ws.send_bytes(event)
            elif isinstance(event, str):
                ws.send_text(event)
            else:
                send(ws, {**event, "event_id": f"evt_{n}"})
            error = ws.receive_json()
            assert error["type"] == "error", (name, error)
            assert error["error"]["code"] == code, (name, error)
            assert error["error"]["type"] == "invalid_request_error", name
            assert error["event_id"] and error["error"]["message"], name
            if isinstance(event, dict):
                assert error["error"]["event_id"] == f"evt_{n}", name
            assert "Traceback" not in error["error"]["message"]
        send(ws, ga_update(turn_detection=None, transcription={"language": "en"}))
        assert ws.receive_json()["type"] == "session.updated"
        for audio in chunks(speech24, "pcm16"):
            send(ws, {"type": "input_audio_buffer.append", "audio": audio})
        send(ws, {"type": "input_audio_buffer.clear"})  # the first take is dropped
        assert ws.receive_json()["type"] == "input_audio_buffer.cleared"
        for audio in chunks(speech24, "pcm16"):
            send(ws, {"type": "input_audio_buffer.append", "audio": audio})
        send(ws, {"type": "input_audio_buffer.commit"})
        events = until(ws, DONE)
    assert set(SPEECH_WORDS) <= words_of(events[-1]["transcript"])
    assert [e["type"] for e in events].count("input_audio_buffer.committed") == 1


def test_limits_end_an_openai_session_as_malsoris(serve: Callable[..., Served]) -> None:
    served = serve(realtime={"burst_s": 60.0, "max_message_audio_s": 1.0})
    with served.client.websocket_connect("/v1/realtime?intent=transcription",
                                         headers=served.auth()) as ws:  # fmt: skip
        ws.receive_json()
        send(ws, {"type": "input_audio_buffer.append",
                  "audio": base64.b64encode(bytes(48000 * 2)).decode()})  # fmt: skip
        error = ws.receive_json()
        assert error["type"] == "error" and error["error"]["code"] == "audio_too_long"
        closed = ws.receive()
    assert closed["type"] == "websocket.close"


# -- against a real server, with the official client ----------------------------------------


@pytest.fixture
def real_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, str]]:
    from .test_real_server import ServerProcess, make_key

    monkeypatch.setenv("MALSORI_REALTIME__BURST_S", "120")  # no pacing: the test sends at once
    # Always the beam: past its decode-time budget a stream decodes greedily, so on a busy
    # machine its text would depend on the load, and the test compares it with HTTP's.
    monkeypatch.setenv("MALSORI_REALTIME__DECODE_BUDGET_S", "0")
    data_dir = tmp_path / "data"
    key = make_key(data_dir)
    proc = ServerProcess(data_dir)
    yield proc, key
    proc.stop(signal.SIGKILL)


def _wer(reference: str, hypothesis: str) -> float:
    counts = error_counts(normalize_text(reference, "en"), normalize_text(hypothesis, "en"))
    assert counts.rate is not None
    return float(counts.rate)


def _recording(tmp_path: Path) -> tuple[Path, str]:
    """Three sentences with pauses, at 24 kHz. Each turn is decoded on its own, as on OpenAI:
    sentences the ``base`` model hears right without the others around them (alone, "The yellow
    submarine" loses its "The"; with pink noise, "slowly" becomes "solely")."""
    sentences = [LONG_SENTENCES[i] for i in (2, 6, 8)]
    parts: list[Path] = []
    for i, sentence in enumerate(sentences):
        parts.append(tmp_path / f"s{i}.wav")
        run_tool("espeak-ng", "-v", "en-us", "-w", parts[-1], sentence)
        parts.append(tmp_path / f"g{i}.wav")
        run_tool("sox", "-n", "-r", "22050", "-c", "1", "-b", "16", parts[-1], "trim", "0", "1.5")
    out = tmp_path / "rec.wav"
    run_tool("sox", *parts, "-r", "24000", "-b", "16", out)
    return out, " ".join(sentences)


@pytest.mark.slow
def test_the_official_python_client_against_a_real_server(
    real_server: tuple[Any, str], clips: Clips, tmp_path: Path
) -> None:
    from openai import OpenAI

    proc, key = real_server
    client = OpenAI(base_url=f"{proc.url}/v1", api_key=key)
    recording, truth = _recording(tmp_path)
    with recording.open("rb") as f:
        http = client.audio.transcriptions.create(file=f, model="whisper-1", language="en").text
    pcm = raw(recording, tmp_path / "recording.raw", "pcm16", lead_s=0.2, tail_s=1.0)

    texts: list[str] = []
    kinds: list[str] = []
    with client.realtime.connect(extra_query={"intent": "transcription"}) as conn:
        update: Any = {"type": "transcription", "audio": {"input": {
            "format": {"type": "audio/pcm", "rate": 24000},
            "transcription": {"model": "whisper-1", "language": "en"},
            "turn_detection": {"type": "server_vad", "silence_duration_ms": 700}}}}  # fmt: skip
        conn.session.update(session=update)
        for audio in chunks(pcm, "pcm16"):
            conn.input_audio_buffer.append(audio=audio)
        conn.session.update(session=update)  # its answer comes after every append is read
        updates = 0
        for event in conn:
            kinds.append(event.type)
            assert event.type != "error", event
            updates += event.type == "session.updated"
            if event.type == DONE:
                texts.append(event.transcript)
            if updates == 2 and len(texts) == kinds.count("input_audio_buffer.committed"):
                break
    assert kinds[0] == "session.created"
    assert kinds.count("input_audio_buffer.speech_started") >= 1
    realtime = " ".join(texts)
    # A live stream commits words as the audio arrives: which decodes ran, on how much audio,
    # depends on timing, and a word may differ from the whole-file decode ("water" / "walk in"
    # seen under load); within two words of HTTP's is the same quality.
    two_words = 2 / len(truth.split())
    assert _wer(truth, realtime) <= _wer(truth, http) + two_words + 1e-9, (http, realtime)

    # The beta client always connects with wss:// unless told the WebSocket address.
    client = OpenAI(base_url=f"{proc.url}/v1", api_key=key,
                    websocket_base_url=f"ws://127.0.0.1:{proc.port}/v1")  # fmt: skip
    with client.beta.realtime.connect(
        model="whisper-1", extra_query={"intent": "transcription"}
    ) as beta:
        beta.send({"type": "transcription_session.update", "session": {  # type: ignore[arg-type,typeddict-unknown-key]
            "input_audio_transcription": {"model": "whisper-1", "language": "en"},
            "turn_detection": None}})  # fmt: skip
        for audio in chunks(raw(clips.speech, tmp_path / "speech.raw", "pcm16"), "pcm16"):
            beta.input_audio_buffer.append(audio=audio)
        beta.input_audio_buffer.commit()
        for beta_event in beta:
            assert beta_event.type != "error", beta_event
            if beta_event.type == DONE:
                assert set(SPEECH_WORDS) <= words_of(beta_event.transcript)  # type: ignore[union-attr]
                break


class _FakeProcessor:
    """Stands in for OnlineProcessor: counts the audio, says how much it got when finished."""

    def __init__(self) -> None:
        self.samples = 0
        self.stats = type("Stats", (), {"decode_seconds": 0.0})()

    def insert_audio_chunk(self, audio: np.ndarray) -> None:
        self.samples += audio.size

    def pending_seconds(self) -> float:
        return self.samples / 16000

    def ready(self) -> bool:
        return True

    def process_iter(self) -> list[Any]:
        return []

    def finish(self) -> list[Any]:
        from malsori.streaming import Final

        return [Final(f" {self.samples} samples", 0.0, 1.0, (), 0, True)]


def test_server_vad_parameters_shape_the_turns() -> None:
    """Speech starts at the first frame at or over the threshold, with prefix_padding_ms of audio
    before it; it stops after silence_duration_ms under the threshold (less the hysteresis)."""
    from malsori.server.turns import VAD_FRAME, ServerVad, TurnEngine

    # frame probabilities: 10 silent, 20 speech, 5 weak (0.4: still speech with the 0.15
    # hysteresis), 30 silent (960 ms), then more silence
    probs = [0.0] * 10 + [0.9] * 20 + [0.4] * 5 + [0.0] * 40
    cursor = {"n": 0}

    def fake(frames: np.ndarray) -> np.ndarray:
        n = frames.size // VAD_FRAME
        out = np.array(probs[cursor["n"] : cursor["n"] + n])
        cursor["n"] += n
        return out

    events: list[dict[str, Any]] = []
    vad = ServerVad(threshold=0.5, prefix_padding_ms=128, silence_duration_ms=320)
    turns = TurnEngine(_FakeProcessor, events.extend, vad=vad, probabilities=fake)  # type: ignore[arg-type,return-value]
    for _ in range(len(probs)):
        turns.insert_audio_chunk(np.zeros(VAD_FRAME, np.float32))
    kinds = [e["type"] for e in events]
    assert kinds == ["input_audio_buffer.speech_started", "input_audio_buffer.speech_stopped",
                     "input_audio_buffer.committed"]  # fmt: skip
    frame_ms = VAD_FRAME * 1000 // 16000  # 32
    assert events[0]["audio_start_ms"] == 10 * frame_ms - 128  # the padding before speech
    assert events[1]["audio_end_ms"] == (35 + 10) * frame_ms  # 10 frames (320 ms) of silence
    assert turns.has_work()
    turns.step()  # the committed item is transcribed
    done = events[-1]
    assert done["type"] == DONE and done["item_id"] == events[0]["item_id"]
    padded = 128 * 16 + (35 + 10 - 10) * VAD_FRAME  # padding + speech + the silence heard
    assert done["transcript"] == f"{padded} samples"
    assert not turns.has_work()


def test_clear_drops_the_turn_being_spoken() -> None:
    from malsori.server.turns import TurnEngine

    events: list[dict[str, Any]] = []
    turns = TurnEngine(_FakeProcessor, events.extend, vad=None)  # type: ignore[arg-type]
    turns.insert_audio_chunk(np.zeros(8000, np.float32))
    turns.clear()
    assert events == [{"type": "input_audio_buffer.cleared"}]
    assert not turns.commit()  # nothing left to commit
    turns.insert_audio_chunk(np.zeros(3200, np.float32))
    assert turns.commit()
    turns.step()
    assert events[-1]["transcript"] == "3200 samples"


def test_openai_sessions_share_the_limits_and_revocation(serve: Callable[..., Served]) -> None:
    """The same hardening as malsori's protocol: one key's share of places, and a key revoked
    while its session is open ends it with invalid_api_key."""
    served = serve(realtime={"max_sessions_per_key": 1, "key_check_interval_s": 0.2})
    url, auth = "/v1/realtime?intent=transcription", served.auth()
    with served.client.websocket_connect(url, headers=auth) as first:
        assert first.receive_json()["type"] == "session.created"
        with served.client.websocket_connect(url, headers=auth) as second:
            refused = second.receive_json()
            assert refused["type"] == "error" and refused["event_id"]
            assert refused["error"]["code"] == "too_many_sessions"
        key_id = next(k.id for k in served.services.keys.list() if k.name == "tests")
        served.services.keys.revoke(key_id)
        for _ in range(50):  # the watchdog checks the key every 0.2 s
            send(first, {"type": "input_audio_buffer.append",
                         "audio": base64.b64encode(bytes(4800)).decode()})  # fmt: skip
            event = first.receive_json()
            if event["type"] == "error":
                break
        assert event["error"]["code"] == "invalid_api_key"
        assert first.receive()["type"] == "websocket.close"
