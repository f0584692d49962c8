"""``/v1/realtime``: live transcription over a WebSocket (protocol in docs/streaming.md).

The client sends audio (16 kHz PCM16, or a browser's WebM/Opus as MediaRecorder makes it) and
``{"type": "stop"}``; the server sends JSON events: ``ready``, ``partial``, ``final``, ``error``,
``end``. The API key is checked as for HTTP; since browsers cannot set headers on a WebSocket, it
may also come as the ``api_key`` query parameter or a ``malsori-key.<key>`` subprotocol.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
from typing import Any

from fastapi import APIRouter, WebSocket
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.websockets import WebSocketDisconnect, WebSocketState

from ...errors import AudioDecodeError, InvalidOptionError
from ...streaming import OnlineProcessor, StreamEvent, StreamingOptions
from ..errors import envelope, kind_of
from ..exceptions import InvalidParameterError, NotReadyError
from ..keys import LOCAL_OWNER
from ..schemas import DecodeParams, Task
from ..services import Services
from ..streams import (
    ContainerDecoder,
    Encoding,
    Pacer,
    StreamScheduler,
    StreamSession,
    TooManySessionsError,
    pcm16_to_float,
)

logger = logging.getLogger(__name__)

router = APIRouter(tags=["realtime"])

SUBPROTOCOL = "malsori.v1"
KEY_SUBPROTOCOL = "malsori-key."
_LAG_POLL_S = 0.1
_scheduler_lock = threading.Lock()


class RealtimeParams(DecodeParams):
    """Query parameters of ``/v1/realtime``."""

    task: Task = "transcribe"
    """transcribe in the spoken language, or translate into English."""
    encoding: Encoding = "pcm16"
    """pcm16: raw 16 kHz mono little-endian 16-bit samples; webm: WebM or Ogg with Opus."""
    sample_rate: int = 16000
    """Sample rate of pcm16 audio; only 16000 is accepted."""


def _close_code(error: BaseException) -> int:
    status = kind_of(error).status
    if isinstance(error, AudioDecodeError):
        return 1007  # invalid payload data
    if status in (429, 503):
        return 1013  # try again later
    return 1011 if status >= 500 else 1008


def _error_event(error: BaseException, code: str | None = None) -> dict[str, Any]:
    kind = kind_of(error)
    message = str(error) if kind.status < 500 else "internal error"
    param = getattr(error, "param", None) or kind.param
    return {"type": "error", **envelope(message, kind.type, param=param, code=code or kind.code)}


def _secret(websocket: WebSocket) -> str | None:
    header = websocket.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    for protocol in websocket.scope.get("subprotocols", []):
        if protocol.startswith(KEY_SUBPROTOCOL):
            return str(protocol[len(KEY_SUBPROTOCOL) :])
    return websocket.query_params.get("api_key") or None


def _scheduler(websocket: WebSocket, services: Services) -> StreamScheduler:
    """The app's one live-stream scheduler, made on first use."""
    state = websocket.app.state
    with _scheduler_lock:
        if getattr(state, "realtime_scheduler", None) is None:
            rt = services.settings.realtime
            state.realtime_scheduler = StreamScheduler(rt.workers, rt.max_sessions)
        scheduler: StreamScheduler = state.realtime_scheduler
    return scheduler


def _params(websocket: WebSocket) -> RealtimeParams:
    try:
        params = RealtimeParams.model_validate(dict(websocket.query_params))
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise InvalidParameterError(f"invalid {where}: {first['msg']}", param=where) from None
    if params.encoding == "pcm16" and params.sample_rate != 16000:
        raise InvalidParameterError("pcm16 audio must be 16000 Hz", param="sample_rate")
    return params


@router.websocket("/v1/realtime")
async def realtime(websocket: WebSocket) -> None:
    """Stream audio in, get partial and final text back as it is decoded."""
    offered = websocket.scope.get("subprotocols", [])
    await websocket.accept(subprotocol=SUBPROTOCOL if SUBPROTOCOL in offered else None)
    try:
        services: Services | None = getattr(websocket.app.state, "services", None)
        if services is None or services.pool.stopping.is_set():
            raise NotReadyError("the server is starting or stopping")
        owner = LOCAL_OWNER
        if services.settings.auth.enabled:
            owner = (await run_in_threadpool(services.keys.authenticate, _secret(websocket))).id
        params = _params(websocket)
        options = services.transcriber.options(params, params.task)
        rt = services.settings.realtime
        options = options.replace(beam_size=rt.beam_size)
        streaming = StreamingOptions(
            min_chunk_s=rt.min_chunk_s,
            endpoint_silence_ms=rt.endpoint_silence_ms,
            encoder_window_s=rt.encoder_window_s,
            fallback=rt.fallback,
            decode_budget_s=rt.decode_budget_s or None,
        )
        engine = OnlineProcessor(services.transcriber.model, options, streaming)
        await _Stream(websocket, services, engine, params, owner).run()
    except WebSocketDisconnect:
        logger.info("live stream: the client left")
    except Exception as e:
        if kind_of(e).status >= 500 and not isinstance(e, NotReadyError):
            logger.exception("live stream failed")
        await _fail(
            websocket, e, "too_many_sessions" if isinstance(e, TooManySessionsError) else None
        )


async def _fail(websocket: WebSocket, error: BaseException, code: str | None = None) -> None:
    if websocket.application_state != WebSocketState.CONNECTED:
        return
    with contextlib.suppress(Exception):  # the client may be gone already
        await websocket.send_json(_error_event(error, code))
        await websocket.close(_close_code(error))


class _Stream:
    """One connection: reads audio into the engine, sends its events back."""

    def __init__(
        self,
        websocket: WebSocket,
        services: Services,
        engine: OnlineProcessor,
        params: RealtimeParams,
        owner: str,
    ):
        self.ws = websocket
        self.services = services
        self.settings = services.settings.realtime
        self.engine = engine
        self.params = params
        self.owner = owner
        self.scheduler = _scheduler(websocket, services)
        self.events: asyncio.Queue[list[StreamEvent] | None] = asyncio.Queue()
        loop = asyncio.get_running_loop()

        def emit(events: list[StreamEvent] | None) -> None:  # from a scheduler thread
            loop.call_soon_threadsafe(self.events.put_nowait, events)

        self.session = StreamSession(engine, emit)
        engine.source = f"realtime {self.session.id}"
        self.decoder: ContainerDecoder | None = None

    def _insert(self, samples: Any) -> None:
        self.engine.insert_audio_chunk(samples)
        self.scheduler.wake()

    async def run(self) -> None:
        self.scheduler.open(self.session)  # TooManySessionsError before anything is sent
        logger.info("live stream %s opened by %s (%s)", self.session.id, self.owner,
                    self.params.encoding)  # fmt: skip
        sender = asyncio.create_task(self._send_events())
        try:
            await self.ws.send_json(self._ready())
            if self.params.encoding == "webm":
                self.decoder = ContainerDecoder(self._insert)
            await self._receive()
            if self.decoder is not None:
                await run_in_threadpool(self.decoder.close)
            self.session.finishing = True
            self.scheduler.wake()
            await sender
            if self.session.failed is not None:
                raise self.session.failed
            await self.ws.send_json(self._end())
            await self.ws.close(1000)
            self.services.metrics.observe_transcription(
                self.params.task, self.engine.received_seconds, self.engine.stats.decode_seconds
            )
        finally:
            sender.cancel()
            self.scheduler.close(self.session)
            if self.decoder is not None:
                self.decoder.abort()
            logger.info("live stream %s closed after %.1f s of audio", self.session.id,
                        self.engine.received_seconds)  # fmt: skip

    def _ready(self) -> dict[str, Any]:
        return {
            "type": "ready",
            "session": {
                "id": self.session.id,
                "model": self.engine.model.name,
                "task": self.params.task,
                "language": self.engine.options.language,
                "encoding": self.params.encoding,
                "sample_rate": 16000,
            },
        }

    def _end(self) -> dict[str, Any]:
        transcript = self.engine.transcript()
        return {
            "type": "end",
            "text": transcript.text,
            "language": transcript.language.language,
            "duration": round(transcript.duration, 3),
            "segments": [s.to_dict() for s in transcript.segments],
        }

    async def _receive(self) -> None:
        """Read audio until ``stop``, an idle timeout or the end of the connection."""
        pacer = Pacer(self.settings.burst_s)
        while True:
            await self._hold_back(pacer)
            try:
                message = await asyncio.wait_for(
                    self.ws.receive(), timeout=self.settings.idle_timeout_s
                )
            except TimeoutError:
                error = InvalidOptionError(
                    f"no audio for {self.settings.idle_timeout_s:g} s: ending the stream"
                )
                await self.ws.send_json(_error_event(error, code="idle_timeout"))
                return
            if message["type"] == "websocket.disconnect":
                raise WebSocketDisconnect(message.get("code", 1000))
            if message.get("bytes") is not None:
                await self._audio(message["bytes"])
            elif message.get("text") is not None and self._control(message["text"]):
                return

    async def _hold_back(self, pacer: Pacer) -> None:
        """Backpressure: wait while the client is ahead of real time or decoding is behind."""
        delay = pacer.delay(self.engine.received_seconds)
        if delay > 0:
            await asyncio.sleep(delay)
        while self.engine.pending_seconds() > self.settings.max_lag_s:
            if self.session.done.is_set():
                return
            await asyncio.sleep(_LAG_POLL_S)

    async def _audio(self, data: bytes) -> None:
        if self.decoder is None:
            self._insert(pcm16_to_float(data))
        else:
            await run_in_threadpool(self.decoder.feed, data)

    def _control(self, text: str) -> bool:
        """Handle a JSON control message; True when it ends the audio (``stop``)."""
        try:
            kind = json.loads(text).get("type")
        except (ValueError, AttributeError):
            kind = None
        if kind == "stop":
            return True
        raise InvalidParameterError(
            f"unknown message {text[:80]!r}: send audio as binary messages and "
            '{"type": "stop"} to end',
            param="message",
        )

    async def _send_events(self) -> None:
        while (events := await self.events.get()) is not None:
            for event in events:
                await self.ws.send_json(event.to_dict())
