"""OpenAI's Realtime transcription protocol on ``/v1/realtime`` (docs/server.md).

What the official clients speak: ``client.realtime.connect()`` (GA: ``session.update`` with
``{"type": "transcription", "audio": {"input": ...}}``) and ``client.beta.realtime.connect()``
(``transcription_session.update``). Client events: ``session.update`` /
``transcription_session.update``, ``input_audio_buffer.append`` (base64 PCM16 at 24 kHz, G.711
u-law or A-law at 8 kHz), ``.commit``, ``.clear``. Server events: ``session.created`` /
``.updated`` (beta: ``transcription_session.*``), ``input_audio_buffer.speech_started`` /
``speech_stopped`` / ``committed`` / ``cleared``,
``conversation.item.input_audio_transcription.delta`` / ``.completed`` / ``.failed``, ``error``.

A bad event (unknown, malformed, a value out of range, audio not in the announced format) gets an
``error`` event naming the client's ``event_id``, and the session stays open. Limits (audio per
message and per session, idle clients, the longest session, a revoked key) end it as in malsori's
own protocol (``live.LiveStream``). The turns and their decoding are ``turns.TurnEngine``.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import secrets
from dataclasses import dataclass, field, replace
from typing import Any

from fastapi import WebSocket
from starlette.types import Message

from ..errors import AudioDecodeError, InvalidOptionError
from ..options import FULL_ENCODER_WINDOW_S, TranscribeOptions
from ..streaming import OnlineProcessor, StreamingOptions
from .exceptions import InvalidParameterError, UnknownModelError
from .live import LiveStream, RealtimeParams, error_event
from .schemas import DecodeParams
from .services import Services
from .streams import Pacer, StreamLimitError
from .turns import (
    FORMAT_RATES,
    MIN_COMMIT_MS,
    AudioConverter,
    AudioFormat,
    ServerVad,
    TurnEngine,
    TurnSession,
    silero_probabilities,
)

logger = logging.getLogger(__name__)

OPENAI_SUBPROTOCOL = "realtime"
OPENAI_KEY_SUBPROTOCOL = "openai-insecure-api-key."
# Client events of OpenAI's protocol: a first message of one of these switches a connection
# that did not say it was an OpenAI client.
OPENAI_CLIENT_EVENTS = frozenset(
    {
        "session.update",
        "transcription_session.update",
        "input_audio_buffer.append",
        "input_audio_buffer.commit",
        "input_audio_buffer.clear",
    }
)
_NOT_TRANSCRIPTION = ("conversation.", "response.", "output_audio_buffer.")
# OpenAI's transcription models: all are served by the loaded Whisper model.
_OPENAI_MODELS = ("whisper-1", "gpt-4o-transcribe", "gpt-4o-mini-transcribe", "gpt-")
_GA_FORMATS = {"audio/pcm": "pcm16", "audio/pcmu": "g711_ulaw", "audio/pcma": "g711_alaw"}
_EAGERNESS_SILENCE_MS = {"low": 1500, "medium": 700, "auto": 700, "high": 300}
_CONTAINER_MAGIC = (b"RIFF", b"OggS", b"\x1a\x45\xdf\xa3", b"fLaC", b"ID3")
MAX_PADDING_MS = 10_000


def is_openai_client(websocket: WebSocket) -> bool:
    """Whether the connection says it is an OpenAI client, before any message."""
    headers = websocket.headers
    if "openai-beta" in headers or any(k.startswith("x-stainless-") for k in headers):
        return True
    query = websocket.query_params
    if "intent" in query or query.get("model", "").startswith("gpt-"):  # OpenAI's models
        return True
    return any(
        p == OPENAI_SUBPROTOCOL or p.startswith((OPENAI_KEY_SUBPROTOCOL, "openai-beta."))
        for p in websocket.scope.get("subprotocols", [])
    )


def _event_id() -> str:
    return "event_" + secrets.token_hex(8)


def openai_error_shape(event: dict[str, Any], client_event_id: str | None = None) -> dict[str, Any]:
    """malsori's error event in OpenAI's shape: a server ``event_id``, and the client's."""
    return {
        "type": "error",
        "event_id": _event_id(),
        "error": {**event["error"], "event_id": client_event_id},
    }


class EventError(InvalidParameterError):
    """A client event the session cannot take; the session stays open."""

    def __init__(self, message: str, code: str, param: str = "type"):
        super().__init__(message, param=param)
        self.code = code


@dataclass(frozen=True)
class SessionConfig:
    """A transcription session's effective configuration."""

    format: AudioFormat = "pcm16"
    model: str = "whisper-1"
    language: str | None = None
    prompt: str | None = None
    vad: ServerVad | None = field(default_factory=ServerVad)
    logprobs: bool = False

    def audio_format_ga(self) -> dict[str, Any]:
        if self.format == "pcm16":
            return {"type": "audio/pcm", "rate": 24000}
        return {"type": "audio/pcmu" if self.format == "g711_ulaw" else "audio/pcma"}

    def turn_detection(self) -> dict[str, Any] | None:
        if self.vad is None:
            return None
        return {
            "type": "server_vad",
            "threshold": self.vad.threshold,
            "prefix_padding_ms": self.vad.prefix_padding_ms,
            "silence_duration_ms": self.vad.silence_duration_ms,
        }

    def transcription(self) -> dict[str, Any]:
        return {"model": self.model, "language": self.language, "prompt": self.prompt}

    def include(self) -> list[str]:
        return ["item.input_audio_transcription.logprobs"] if self.logprobs else []


def _object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise EventError(f"{where} must be an object", "invalid_value", where)
    return value


def _number(value: Any, where: str, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise EventError(
            f"{where} must be a number from {low:g} to {high:g}", "invalid_value", where
        )
    return float(value)


def _turn_detection(value: Any, where: str, current: ServerVad | None) -> ServerVad | None:
    if value is None:
        return None
    td = _object(value, where)
    kind = td.get("type", "server_vad")
    base = current or ServerVad()
    if kind == "semantic_vad":  # no semantic model here: server VAD, silence by eagerness
        eagerness = td.get("eagerness") or "auto"
        if eagerness not in _EAGERNESS_SILENCE_MS:
            raise EventError(
                f"unknown eagerness {eagerness!r}", "invalid_value", f"{where}.eagerness"
            )
        return replace(base, silence_duration_ms=_EAGERNESS_SILENCE_MS[eagerness])
    if kind != "server_vad":
        raise EventError(
            f"unknown turn detection {kind!r}: use server_vad, semantic_vad or null",
            "invalid_value",
            f"{where}.type",
        )
    threshold = td.get("threshold")
    padding = td.get("prefix_padding_ms")
    silence = td.get("silence_duration_ms")
    return ServerVad(
        threshold=base.threshold
        if threshold is None
        else _number(threshold, f"{where}.threshold", 0.0, 1.0),
        prefix_padding_ms=base.prefix_padding_ms
        if padding is None
        else int(_number(padding, f"{where}.prefix_padding_ms", 0, MAX_PADDING_MS)),
        silence_duration_ms=base.silence_duration_ms
        if silence is None
        else int(_number(silence, f"{where}.silence_duration_ms", 100, MAX_PADDING_MS)),
    )


def _transcription(value: Any, where: str, config: SessionConfig) -> SessionConfig:
    if value is None:
        return config
    t = _object(value, where)
    model = t.get("model", config.model)
    if not isinstance(model, str) or not model:
        raise EventError(f"{where}.model must be a string", "invalid_value", f"{where}.model")
    for key in ("language", "prompt"):
        if t.get(key) is not None and not isinstance(t[key], str):
            raise EventError(f"{where}.{key} must be a string", "invalid_value", f"{where}.{key}")
    return replace(
        config,
        model=model,
        language=t.get("language", config.language) or None,
        prompt=t.get("prompt", config.prompt) or None,
    )


def _include(value: Any, config: SessionConfig) -> SessionConfig:
    if value is None:
        return config
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise EventError("include must be a list of strings", "invalid_value", "session.include")
    return replace(config, logprobs="item.input_audio_transcription.logprobs" in value)


def update_ga(session: dict[str, Any], config: SessionConfig) -> SessionConfig:
    """``session.update`` with ``{"type": "transcription", ...}`` applied to ``config``."""
    kind = session.get("type")
    if kind == "realtime":
        raise EventError(
            "this server runs transcription sessions only: send "
            'session.update with {"type": "transcription"}',
            "unsupported_session_type",
            "session.type",
        )
    if kind is None and "audio" not in session:  # the beta's flat shape, sent as session.update
        return update_beta(session, config)
    if kind != "transcription":
        raise EventError(f"unknown session type {kind!r}", "invalid_value", "session.type")
    audio = _object(session.get("audio") or {}, "session.audio")
    given = _object(audio.get("input") or {}, "session.audio.input")
    where = "session.audio.input"
    if "format" in given and given["format"] is not None:
        fmt = _object(given["format"], f"{where}.format")
        name = _GA_FORMATS.get(str(fmt.get("type")))
        if name is None:
            raise EventError(
                f"unknown audio format {fmt.get('type')!r}: use audio/pcm, "
                "audio/pcmu or audio/pcma",
                "invalid_value",
                f"{where}.format.type",
            )
        if name == "pcm16" and fmt.get("rate", 24000) != 24000:
            raise EventError("audio/pcm must be 24000 Hz", "invalid_value", f"{where}.format.rate")
        config = replace(config, format=name)  # type: ignore[arg-type]
    config = _transcription(given.get("transcription"), f"{where}.transcription", config)
    if "turn_detection" in given:
        config = replace(
            config,
            vad=_turn_detection(given["turn_detection"], f"{where}.turn_detection", config.vad),
        )
    return _include(session.get("include"), config)


def update_beta(session: dict[str, Any], config: SessionConfig) -> SessionConfig:
    """``transcription_session.update`` (the beta's shape) applied to ``config``."""
    fmt = session.get("input_audio_format")
    if fmt is not None:
        if fmt not in FORMAT_RATES:
            raise EventError(
                f"unknown input_audio_format {fmt!r}: use pcm16, g711_ulaw or g711_alaw",
                "invalid_value",
                "session.input_audio_format",
            )
        config = replace(config, format=fmt)
    config = _transcription(
        session.get("input_audio_transcription"), "session.input_audio_transcription", config
    )
    if "turn_detection" in session:
        config = replace(
            config,
            vad=_turn_detection(session["turn_detection"], "session.turn_detection", config.vad),
        )
    return _include(session.get("include"), config)


class OpenAIStream(LiveStream):
    """One OpenAI Realtime transcription session (see the module's doc)."""

    engine: TurnEngine

    def __init__(
        self,
        websocket: WebSocket,
        services: Services,
        base: TranscribeOptions,
        streaming: StreamingOptions,
        params: RealtimeParams,
        owner: str,
        secret: str | None,
        *,
        first: list[Message] | None = None,
    ):
        self.base = base
        # Items are decoded once committed, all at once: the full 30 s window (the most
        # accurate) unless the server sets one.
        window = services.settings.realtime.encoder_window_s or FULL_ENCODER_WINDOW_S
        self.streaming = replace(streaming, encoder_window_s=window)
        self.config = SessionConfig(language=base.language, prompt=base.initial_prompt)
        self.beta = "openai-beta" in websocket.headers
        self.session_id = "sess_" + secrets.token_hex(8)
        self.converter = AudioConverter(self.config.format)
        self.first = first or []
        self.decoder_model = services.transcriber.live_decoder()
        self._vad_probs = silero_probabilities()
        engine = TurnEngine(
            self._processor,
            lambda events: None,
            vad=self.config.vad,
            probabilities=self._vad_probs,
            lookahead_s=min(20.0, services.settings.realtime.max_lag_s / 2),
        )
        super().__init__(websocket, services, engine, params, owner, secret)

    @classmethod
    async def start(
        cls,
        websocket: WebSocket,
        services: Services,
        options: TranscribeOptions,
        streaming: StreamingOptions,
        params: RealtimeParams,
        owner: str,
        secret: str | None,
        *,
        first: list[Message] | None = None,
    ) -> None:
        await cls(websocket, services, options, streaming, params, owner, secret, first=first).run()

    def _make_session(self, emit: Any, owner: str | None) -> TurnSession:
        self.engine.emit = emit
        session = TurnSession(self.engine, emit, owner=owner)  # type: ignore[arg-type]
        session.turns = self.engine
        return session

    def _processor(self) -> OnlineProcessor:
        return OnlineProcessor(
            self.decoder_model,
            self.options,
            self.streaming,
            source=self.engine.source,
        )

    @property
    def options(self) -> TranscribeOptions:
        return self.base.replace(language=self.config.language, initial_prompt=self.config.prompt)

    # -- events out ------------------------------------------------------------------------------

    def _session(self) -> dict[str, Any]:
        c = self.config
        if self.beta:
            return {
                "id": self.session_id,
                "object": "realtime.transcription_session",
                "modalities": ["text"],
                "input_audio_format": c.format,
                "input_audio_transcription": c.transcription(),
                "turn_detection": c.turn_detection(),
                "input_audio_noise_reduction": None,
                "include": c.include(),
            }
        return {
            "type": "transcription",
            "object": "realtime.transcription_session",
            "id": self.session_id,
            "audio": {
                "input": {
                    "format": c.audio_format_ga(),
                    "noise_reduction": None,
                    "transcription": c.transcription(),
                    "turn_detection": c.turn_detection(),
                }
            },
            "include": c.include(),
        }

    def _session_event(self, verb: str) -> dict[str, Any]:
        prefix = "transcription_session" if self.beta else "session"
        return {"type": f"{prefix}.{verb}", "event_id": _event_id(), "session": self._session()}

    def _ready(self) -> dict[str, Any]:
        return self._session_event("created")

    def _say(self, *events: dict[str, Any]) -> None:
        """Queue events behind those already queued (order is kept)."""
        self.events.put_nowait(list(events))

    def _error(self, error: BaseException, client_event_id: str | None) -> None:
        self._say(
            openai_error_shape(error_event(error, getattr(error, "code", None)), client_event_id)
        )

    async def _send_events(self) -> None:
        while (events := await self.events.get()) is not None:
            for event in events:
                await self.ws.send_json(
                    {"event_id": _event_id(), **event} if "event_id" not in event else event
                )

    # -- events in -------------------------------------------------------------------------------

    async def _receive(self) -> None:
        """Handle client events until the stream ends (the client leaves, or a limit)."""
        for message in self.first:
            await self._message(message)
        pacer = Pacer(self.settings.burst_s)
        while True:
            await self._hold_back(pacer)
            message = await self._unless(self.halted, self.inbox.get())
            await self._message(message)

    async def _message(self, message: Message) -> None:
        client_id: str | None = None
        try:
            if message.get("text") is None:
                raise EventError(
                    "send client events as JSON text messages (audio goes in "
                    "input_audio_buffer.append, base64)",
                    "invalid_event",
                )
            try:
                event = json.loads(message["text"])
            except ValueError:
                raise EventError("the message is not JSON", "invalid_json") from None
            event = _object(event, "event")
            client_id = event.get("event_id") if isinstance(event.get("event_id"), str) else None
            self._handle(event)
        except (EventError, AudioDecodeError, InvalidOptionError, UnknownModelError) as e:
            if isinstance(e, StreamLimitError):
                raise
            logger.info("live stream %s: bad client event: %s", self.session.id, e)
            self._error(e, client_id)

    def _handle(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        if kind == "input_audio_buffer.append":
            audio = event.get("audio")
            if not isinstance(audio, str):
                raise EventError("audio must be a base64 string", "invalid_value", "audio")
            self._append(audio)
        elif kind == "input_audio_buffer.commit":
            if not self.engine.commit():
                raise EventError(
                    "Error committing input audio buffer: buffer too small. "
                    f"Expected at least {MIN_COMMIT_MS}ms of audio, but buffer "
                    f"only has {self.engine.buffered_ms():.2f}ms of audio.",
                    "input_audio_buffer_commit_empty",
                )
            self.scheduler.wake()
        elif kind == "input_audio_buffer.clear":
            self.engine.clear()
        elif kind in ("session.update", "transcription_session.update"):
            session = _object(event.get("session"), "session")
            update = update_beta if kind == "transcription_session.update" else update_ga
            self._configure(update(session, self.config))
        elif isinstance(kind, str) and kind.startswith(_NOT_TRANSCRIPTION):
            raise EventError(
                f"{kind} is not part of a transcription session", "unsupported_event", "type"
            )
        else:
            shown = kind if isinstance(kind, str) else json.dumps(kind)[:40]
            raise EventError(f"unknown event type {shown!r}", "unknown_event", "type")

    def _configure(self, config: SessionConfig) -> None:
        served = None if config.model.startswith(_OPENAI_MODELS) else config.model
        if served is not None:  # a model served here decodes the next turns
            self.services.transcriber.check_model(served)
            self.decoder_model = self.services.transcriber.live_decoder(served)
        try:
            options = self.services.transcriber.options(
                DecodeParams(model=served, language=config.language, prompt=config.prompt),
                "transcribe",
            )
        except InvalidOptionError as e:
            raise EventError(
                str(e), "invalid_value", "session.audio.input.transcription.language"
            ) from None
        self.base = self.base.replace(language=options.language)
        if config.format != self.config.format:
            self.converter = AudioConverter(config.format)
        self.config = config
        self.engine.vad = config.vad
        self.engine.logprobs = config.logprobs
        self._say(self._session_event("updated"))

    def _append(self, audio: str) -> None:
        try:
            data = base64.b64decode(audio, validate=True)
        except (binascii.Error, ValueError):
            raise EventError("audio is not valid base64", "invalid_value", "audio") from None
        if data.startswith(_CONTAINER_MAGIC):
            raise AudioDecodeError(
                f"the audio is a file (container), not raw {self.config.format} as the session "
                "announced: send raw samples, or announce another format with session.update"
            )
        samples_in = self.converter.samples_in(data)
        if samples_in > self.settings.max_message_audio_s * self.converter.rate:
            raise StreamLimitError(
                f"one message carried more than {self.settings.max_message_audio_s:g} s of "
                "audio (the most per message)",
                code="audio_too_long",
            )
        samples = self.converter.convert(data)
        if samples.size:
            self._insert(samples)

    # -- the end ---------------------------------------------------------------------------------

    async def _finish(self, sender: Any) -> None:
        """Transcribe what was committed (and what was being spoken), then close."""
        reason = self._ending_reason()
        if reason is not None:
            await self.ws.send_json(openai_error_shape(error_event(reason)))
        self.engine.finish_open()
        await self._last_decodes(sender)
        self.scheduler.close(self.session)
        await self.ws.close(1000)
        self.services.metrics.observe_transcription(
            "transcribe", self.engine.received_seconds, self.engine.decode_seconds
        )
