"""``/v1/realtime``: live transcription over a WebSocket (protocol in docs/streaming.md).

The client sends audio (16 kHz PCM16, or a browser's WebM/Opus as MediaRecorder makes it) and
``{"type": "stop"}``; the server sends JSON events: ``ready``, ``partial``, ``final``, ``error``,
``end``. The API key is checked as for HTTP; since browsers cannot set headers on a WebSocket, it
may also come as the ``api_key`` query parameter or a ``malsori-key.<key>`` subprotocol.

A stream ends early, with an ``error`` event, when its client leaves (its place is freed at once,
even while the server is holding it back), goes idle or trickles, passes an audio limit, stays
past ``max_session_s`` or has its key revoked; except for the last, what was received is still
decoded and sent (``final`` events, ``end``) before the server closes the socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
from collections.abc import Awaitable
from typing import Any, TypeVar

from fastapi import APIRouter, WebSocket
from pydantic import ValidationError
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool
from starlette.types import Message
from starlette.websockets import WebSocketDisconnect, WebSocketState

from ...audio import SAMPLE_RATE
from ...errors import AudioDecodeError
from ...streaming import OnlineProcessor, StreamEvent, StreamingOptions
from ..errors import envelope, kind_of
from ..exceptions import AuthenticationError, InvalidParameterError, NotReadyError
from ..keys import LOCAL_OWNER
from ..schemas import DecodeParams, Task
from ..services import Services
from ..streams import (
    ContainerDecoder,
    Encoding,
    Liveness,
    Pacer,
    StreamLimitError,
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
_WATCH_TICK_S = 1.0  # how often the watchdog looks at an open stream, at most
_scheduler_lock = threading.Lock()
T = TypeVar("T")


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
    if code is None and isinstance(error, StreamLimitError):
        code = error.code
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
            state.realtime_scheduler = StreamScheduler(
                rt.workers, rt.max_sessions, rt.max_sessions_per_key
            )
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
        owner, secret = LOCAL_OWNER, None
        if services.settings.auth.enabled:
            secret = _secret(websocket)
            owner = (await run_in_threadpool(services.keys.authenticate, secret)).id
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
        engine = OnlineProcessor(services.transcriber.live_decoder(), options, streaming)
        await _Stream(websocket, services, engine, params, owner, secret).run()
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


class _Halted(Exception):
    """The stream was ended early; ``_Stream.reason`` says why."""


class _Stream:
    """One connection: reads audio into the engine, sends its events back.

    Three tasks run beside the audio loop: the sender (events out), the reader (reads the socket
    one message ahead, so that a client leaving is seen at once) and the watchdog (idle and
    trickling clients, the longest session, a revoked key). Whatever ends the stream early sets
    ``reason`` and ``halted``; every wait of the audio loop watches ``halted``.
    """

    def __init__(
        self,
        websocket: WebSocket,
        services: Services,
        engine: OnlineProcessor,
        params: RealtimeParams,
        owner: str,
        secret: str | None,
    ):
        self.ws = websocket
        self.services = services
        self.settings = services.settings.realtime
        self.engine = engine
        self.params = params
        self.owner = owner
        self.secret = secret  # re-checked every key_check_interval_s (None: auth is off)
        self.scheduler = _scheduler(websocket, services)
        self.events: asyncio.Queue[list[StreamEvent] | None] = asyncio.Queue()
        self.inbox: asyncio.Queue[Message] = asyncio.Queue(maxsize=1)
        self.receiving = True  # False after ``stop``: later messages are dropped
        self.holding = False  # the server is holding the client back (see ``_held``)
        self.halted = asyncio.Event()  # the stream must end early: see ``reason``
        self.gone = asyncio.Event()  # the client left
        self.reason: BaseException | None = None
        self.liveness = Liveness(self.settings.idle_timeout_s, self.settings.min_audio_rate)
        self.max_message_samples = int(self.settings.max_message_audio_s * SAMPLE_RATE)
        self.loop = asyncio.get_running_loop()

        def emit(events: list[StreamEvent] | None) -> None:  # from a scheduler thread
            self.loop.call_soon_threadsafe(self.events.put_nowait, events)

        self.session = StreamSession(engine, emit, owner=owner if secret is not None else None)
        engine.source = f"realtime {self.session.id}"
        self.decoder: ContainerDecoder | None = None

    # -- audio in -------------------------------------------------------------------------------

    def _insert(self, samples: Any) -> None:
        """Samples into the engine (from the loop, or the decoder's thread)."""
        if self.engine.received_seconds + samples.size / SAMPLE_RATE > (
            most := self.settings.max_session_audio_s
        ):
            raise StreamLimitError(
                f"the stream sent more than {most:g} s of audio (the most one stream may send)",
                code="audio_too_long",
            )
        self.engine.insert_audio_chunk(samples)
        self.scheduler.wake()

    def _has_room(self) -> bool:
        """Whether the decoder may add audio: the engine is not too far behind (or is done)."""
        return (
            self.session.done.is_set() or self.engine.pending_seconds() <= self.settings.max_lag_s
        )

    async def run(self) -> None:
        self.scheduler.open(self.session)  # TooManySessionsError before anything is sent
        logger.info("live stream %s opened by %s (%s)", self.session.id, self.owner,
                    self.params.encoding)  # fmt: skip
        sender = asyncio.create_task(self._send_events())
        helpers = [sender, asyncio.create_task(self._read())]
        try:
            await self.ws.send_json(self._ready())
            if self.params.encoding == "webm":
                self.decoder = ContainerDecoder(
                    self._insert,
                    max_message_samples=self.max_message_samples,
                    has_room=self._has_room,
                    on_error=self._halt_from_thread,
                )
            helpers.append(asyncio.create_task(self._watch()))
            try:
                await self._receive()
                if self.decoder is not None:
                    await self._unless(self.halted, run_in_threadpool(self.decoder.close))
            except (StreamLimitError, AudioDecodeError) as e:
                self._halt(e)
            except _Halted:
                pass
            helpers[-1].cancel()  # no watchdog while finishing
            self.receiving = False
            while not self.inbox.empty():  # frees the reader to notice a client leaving
                self.inbox.get_nowait()
            await self._finish(sender)
        finally:
            for task in helpers:
                task.cancel()
            self.scheduler.close(self.session)
            if self.decoder is not None:
                self.decoder.abort()
            logger.info("live stream %s closed after %.1f s of audio", self.session.id,
                        self.engine.received_seconds)  # fmt: skip

    def _halt(self, reason: BaseException) -> None:
        """End the stream early. The first reason is kept, except that a client leaving wins."""
        if self.reason is None or isinstance(reason, WebSocketDisconnect):
            self.reason = reason
        self.halted.set()
        if self.decoder is not None:
            self.decoder.abort()  # nothing more is decoded; what was is still finished

    def _halt_from_thread(self, reason: BaseException) -> None:
        self.loop.call_soon_threadsafe(self._halt, reason)

    async def _unless(self, event: asyncio.Event, awaitable: Awaitable[T]) -> T:
        """Await ``awaitable``, or raise _Halted as soon as ``event`` is set."""
        if event.is_set():
            if asyncio.iscoroutine(awaitable):
                awaitable.close()  # never started
            raise _Halted
        task = asyncio.ensure_future(awaitable)
        waiter = asyncio.ensure_future(event.wait())
        try:
            await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
        if not task.done():
            task.cancel()
            raise _Halted
        return task.result()

    async def _finish(self, sender: asyncio.Task[None]) -> None:
        """Decode what was received and send the last events, ``end`` and the close."""
        reason = self.reason
        if isinstance(reason, WebSocketDisconnect):
            raise reason
        if reason is not None and not isinstance(reason, StreamLimitError | AudioDecodeError):
            raise reason  # a revoked key: nothing more is sent but the error
        if reason is not None:
            logger.info("live stream %s ended: %s", self.session.id, reason)
            await self.ws.send_json(_error_event(reason))
        self.session.finishing = True
        self.scheduler.wake()
        try:
            await self._unless(self.gone, sender)
        except _Halted:
            raise WebSocketDisconnect(1001) from None
        if self.session.failed is not None:
            raise self.session.failed
        await self.ws.send_json(self._end())
        self.scheduler.close(self.session)  # free the place before the client hears the close
        await self.ws.close(1007 if isinstance(reason, AudioDecodeError) else 1000)
        self.services.metrics.observe_transcription(
            self.params.task, self.engine.received_seconds, self.engine.stats.decode_seconds
        )

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

    async def _read(self) -> None:
        """Read the socket one message ahead of the audio loop; note when the client leaves.
        Messages after ``stop`` are dropped."""
        while True:
            message = await self.ws.receive()
            if message["type"] == "websocket.disconnect":
                self.gone.set()
                self._halt(WebSocketDisconnect(message.get("code", 1000)))
                return
            if self.receiving:
                await self.inbox.put(message)

    async def _receive(self) -> None:
        """Read audio until ``stop``; raises _Halted when the stream is ended early."""
        pacer = Pacer(self.settings.burst_s)
        while True:
            await self._hold_back(pacer)
            message = await self._unless(self.halted, self.inbox.get())
            if message.get("bytes") is not None:
                await self._audio(message["bytes"])
            elif message.get("text") is not None and self._control(message["text"]):
                return

    async def _hold_back(self, pacer: Pacer) -> None:
        """Backpressure: wait while the client is ahead of real time or decoding is behind
        (watching the socket all the while: a client that leaves is let go at once)."""
        delay = pacer.delay(self.engine.received_seconds)
        if delay > 0:
            await self._held(asyncio.sleep(delay))
        while self.engine.pending_seconds() > self.settings.max_lag_s:
            if self.session.done.is_set():
                break
            await self._held(asyncio.sleep(_LAG_POLL_S))

    async def _held(self, awaitable: Awaitable[T]) -> T:
        """Await ``awaitable`` (unless halted) while the server, not the client, holds up the
        audio: that time does not count against the client's audio rate."""
        self.holding = True
        try:
            return await self._unless(self.halted, awaitable)
        finally:
            self.holding = False
            self.liveness.restart(self.engine.received_seconds)

    async def _audio(self, data: bytes) -> None:
        if self.decoder is None:
            if len(data) // 2 > self.max_message_samples:
                raise StreamLimitError(
                    f"one message carried more than {self.settings.max_message_audio_s:g} s "
                    "of audio (the most per message)",
                    code="audio_too_long",
                )
            self._insert(pcm16_to_float(data))
        else:
            await self._held(run_in_threadpool(self.decoder.feed, data))  # blocks when behind

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

    async def _watch(self) -> None:
        """End the stream when its client idles or trickles, it lasts longer than
        ``max_session_s``, or its key is revoked."""
        rt = self.settings
        tick = min(_WATCH_TICK_S, rt.idle_timeout_s / 4, rt.key_check_interval_s)
        started = time.monotonic()
        next_key_check = started + rt.key_check_interval_s
        while not self.halted.is_set():
            await asyncio.sleep(tick)
            now = time.monotonic()
            if self.holding or self.engine.pending_seconds() > rt.max_lag_s:  # not their fault
                self.liveness.restart(self.engine.received_seconds)
            error: BaseException | None = self.liveness.check(self.engine.received_seconds)
            if error is None and now - started > rt.max_session_s:
                error = StreamLimitError(
                    f"the stream reached the longest a live stream may last "
                    f"({rt.max_session_s:g} s)",
                    code="session_too_long",
                )
            if error is None and self.secret is not None and now >= next_key_check:
                next_key_check = now + rt.key_check_interval_s
                error = await self._key_error()
            if error is not None:
                self._halt(error)

    async def _key_error(self) -> AuthenticationError | None:
        try:
            await run_in_threadpool(self.services.keys.authenticate, self.secret)
        except AuthenticationError:
            return AuthenticationError("the API key was revoked: the stream is closed")
        except SQLAlchemyError as e:  # the database is away: checked again next time
            logger.warning("live stream %s: cannot check its key (%s)", self.session.id, e)
        return None

    async def _send_events(self) -> None:
        while (events := await self.events.get()) is not None:
            for event in events:
                await self.ws.send_json(event.to_dict())
