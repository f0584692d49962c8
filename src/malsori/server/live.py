"""One live stream's transport and hardening, whatever protocol it speaks (no protocol here).

``LiveStream`` reads a WebSocket into a live engine and sends the engine's events back, under the
server's limits: a place among ``max_sessions`` (and ``max_sessions_per_key``), pacing to real
time, backpressure when decoding falls behind, idle and trickling clients, the longest session,
a revoked key. malsori's own protocol (``routers/realtime.py``) and OpenAI's Realtime
transcription protocol (``realtime_openai.py``) are subclasses that say what a message means and
what each event looks like.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

from fastapi import WebSocket
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool
from starlette.types import Message
from starlette.websockets import WebSocketDisconnect, WebSocketState

from ..audio import SAMPLE_RATE
from ..errors import AudioDecodeError
from .errors import envelope, kind_of
from .exceptions import AuthenticationError, InvalidParameterError
from .schemas import DecodeParams, Task
from .services import Services
from .streams import (
    ContainerDecoder,
    Encoding,
    Liveness,
    Pacer,
    StreamLimitError,
    StreamScheduler,
    StreamSession,
    pcm16_to_float,
)

logger = logging.getLogger(__name__)

_LAG_POLL_S = 0.1
_WATCH_TICK_S = 1.0  # how often the watchdog looks at an open stream, at most
_scheduler_lock = threading.Lock()
T = TypeVar("T")


class LiveEngine(Protocol):
    """What a stream feeds: ``OnlineProcessor``, or an OpenAI session's turns."""

    source: str

    @property
    def received_seconds(self) -> float: ...

    def pending_seconds(self) -> float: ...

    def insert_audio_chunk(self, audio: Any) -> None: ...


class RealtimeParams(DecodeParams):
    """Query parameters of ``/v1/realtime``."""

    task: Task = "transcribe"
    """transcribe in the spoken language, or translate into English."""
    encoding: Encoding = "pcm16"
    """pcm16: raw 16 kHz mono little-endian 16-bit samples; webm: WebM or Ogg with Opus."""
    sample_rate: int = 16000
    """Sample rate of pcm16 audio; only 16000 is accepted."""


def close_code(error: BaseException) -> int:
    status = kind_of(error).status
    if isinstance(error, AudioDecodeError):
        return 1007  # invalid payload data
    if status in (429, 503):
        return 1013  # try again later
    return 1011 if status >= 500 else 1008


def error_event(error: BaseException, code: str | None = None) -> dict[str, Any]:
    if code is None and isinstance(error, StreamLimitError):
        code = error.code
    kind = kind_of(error)
    message = str(error) if kind.status < 500 else "internal error"
    param = getattr(error, "param", None) or kind.param
    return {"type": "error", **envelope(message, kind.type, param=param, code=code or kind.code)}


def scheduler(websocket: WebSocket, services: Services) -> StreamScheduler:
    """The app's one live-stream scheduler, made on first use."""
    state = websocket.app.state
    with _scheduler_lock:
        if getattr(state, "realtime_scheduler", None) is None:
            rt = services.settings.realtime
            state.realtime_scheduler = StreamScheduler(
                rt.workers, rt.max_sessions, rt.max_sessions_per_key
            )
        found: StreamScheduler = state.realtime_scheduler
    return found


async def fail(
    websocket: WebSocket,
    error: BaseException,
    code: str | None = None,
    shape: Callable[[dict[str, Any]], dict[str, Any]] = lambda event: event,
) -> None:
    """Send ``error`` as an error event (in the stream's protocol: ``shape``) and close."""
    if websocket.application_state != WebSocketState.CONNECTED:
        return
    with contextlib.suppress(Exception):  # the client may be gone already
        await websocket.send_json(shape(error_event(error, code)))
        await websocket.close(close_code(error))


class Halted(Exception):
    """The stream was ended early; ``LiveStream.reason`` says why."""


class SwitchProtocol(Exception):
    """The stream's first message belongs to another protocol (``LiveStream.switch_on``):
    ``messages`` are that message and any the stream had read after it, in order."""

    def __init__(self, stream: LiveStream, first: str):
        super().__init__("switching protocol")
        self.stream = stream
        self.first = first

    @property
    def messages(self) -> list[Message]:
        """The first message and those read after it (call once the stream's tasks ended)."""
        held = [self.stream._reading] if self.stream._reading is not None else []
        queued = []
        while not self.stream.inbox.empty():
            queued.append(self.stream.inbox.get_nowait())
        text: Message = {"type": "websocket.receive", "text": self.first}
        return [text, *queued, *held]


class LiveStream:
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
        engine: Any,
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
        self.scheduler = scheduler(websocket, services)
        self.events: asyncio.Queue[list[Any] | None] = asyncio.Queue()
        self.inbox: asyncio.Queue[Message] = asyncio.Queue(maxsize=1)
        self.receiving = True  # False after ``stop``: later messages are dropped
        self.holding = False  # the server is holding the client back (see ``_held``)
        self.halted = asyncio.Event()  # the stream must end early: see ``reason``
        self.gone = asyncio.Event()  # the client left
        self.reason: BaseException | None = None
        self.liveness = Liveness(self.settings.idle_timeout_s, self.settings.min_audio_rate)
        self.max_message_samples = int(self.settings.max_message_audio_s * SAMPLE_RATE)
        self.loop = asyncio.get_running_loop()

        def emit(events: list[Any] | None) -> None:  # from a scheduler thread
            self.loop.call_soon_threadsafe(self.events.put_nowait, events)

        self.session = self._make_session(emit, owner if secret is not None else None)
        engine.source = f"realtime {self.session.id}"
        self.decoder: ContainerDecoder | None = None
        self.switch_on: frozenset[str] = frozenset()  # first-message types of another protocol
        self._texts = 0  # text messages handled so far
        self._reading: Message | None = None  # the message the reader waits to queue

    def _make_session(
        self, emit: Callable[[list[Any] | None], None], owner: str | None
    ) -> StreamSession:
        return StreamSession(self.engine, emit, owner=owner)

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
            except Halted:
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
        """Await ``awaitable``, or raise Halted as soon as ``event`` is set."""
        if event.is_set():
            if asyncio.iscoroutine(awaitable):
                awaitable.close()  # never started
            raise Halted
        task = asyncio.ensure_future(awaitable)
        waiter = asyncio.ensure_future(event.wait())
        try:
            await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
        if not task.done():
            task.cancel()
            raise Halted
        return task.result()

    def _ending_reason(self) -> BaseException | None:
        """Why the server ends the stream, to send before the last events (None: the client
        stopped). Raises when nothing more may be sent: the client left, or its key was revoked."""
        reason = self.reason
        if isinstance(reason, WebSocketDisconnect):
            raise reason
        if reason is not None and not isinstance(reason, StreamLimitError | AudioDecodeError):
            raise reason  # a revoked key: nothing more is sent but the error
        if reason is not None:
            logger.info("live stream %s ended: %s", self.session.id, reason)
        return reason

    async def _last_decodes(self, sender: asyncio.Task[None]) -> None:
        """Let the session decode what it holds and send its events, unless the client goes."""
        self.session.finishing = True
        self.scheduler.wake()
        try:
            await self._unless(self.gone, sender)
        except Halted:
            raise WebSocketDisconnect(1001) from None

    async def _finish(self, sender: asyncio.Task[None]) -> None:
        """Decode what was received and send the last events, ``end`` and the close."""
        reason = self._ending_reason()
        if reason is not None:
            await self.ws.send_json(error_event(reason))
        await self._last_decodes(sender)
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
                self._reading = message
                await self.inbox.put(message)
                self._reading = None

    async def _receive(self) -> None:
        """Read audio until ``stop``; raises Halted when the stream is ended early."""
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
        self._texts += 1
        if kind == "stop":
            return True
        first = self._texts == 1 and self.engine.received_seconds == 0
        if first and isinstance(kind, str) and kind in self.switch_on:
            raise SwitchProtocol(self, text)
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
