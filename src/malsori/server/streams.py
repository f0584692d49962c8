"""Live streams behind ``/v1/realtime``: audio decoding, pacing and fair scheduling. No HTTP here.

Each connection gets its own ``OnlineProcessor`` on the server's one loaded model. Decodes of
all streams run on ``realtime.workers`` threads, round robin: a stream waits for at most one
decode of each other stream, so a busy stream cannot starve a quiet one, and each decode takes
all the audio its stream received meanwhile, so a slow server makes captions later, never
wrong. Clients are held to real time (plus ``burst_s``): past that, or when undecoded audio
reaches ``max_lag_s``, the server stops reading and TCP flow control slows the client down.

Untrusted bytes are bounded on the way in: a container stream is opened only as WebM/Matroska or
Ogg (chosen from its first bytes, never guessed by FFmpeg, no protocols), the audio decoded from
one message and the decoder's output waiting for the engine are both capped, and ``Liveness``
ends a stream whose client stopped sending audio or trickles too little of it.
"""

from __future__ import annotations

import io
import logging
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from typing import Literal

import av
import numpy as np

from ..audio import SAMPLE_RATE, demuxer_options
from ..errors import AudioDecodeError, InvalidOptionError, MalsoriError
from ..streaming import OnlineProcessor, StreamEvent
from .exceptions import QueueFullError

logger = logging.getLogger(__name__)

Encoding = Literal["pcm16", "webm"]
ENCODINGS: tuple[str, ...] = ("pcm16", "webm")
_PIPE_LIMIT = 1 << 20  # compressed bytes waiting for the container decoder
_ROOM_POLL_S = 0.05  # how often a decoder waiting for the engine to catch up looks again
# The containers a live stream may use, told apart by their first bytes (FFmpeg guesses nothing).
LIVE_CONTAINERS: dict[bytes, str] = {b"\x1a\x45\xdf\xa3": "matroska", b"OggS": "ogg"}
_NO_PROTOCOL = "none"  # a protocol allow-list naming no protocol: the bytes given, nothing else


class TooManySessionsError(QueueFullError):
    """Every live-stream place is taken, or every place one key may use (answered like a full
    queue: try again later)."""

    def __init__(self, message: str):
        super().__init__(message, retry_after=5)


class StreamLimitError(InvalidOptionError):
    """A live stream passed one of the server's limits; ``code`` says which (``idle_timeout``,
    ``audio_too_slow``, ``session_too_long``, ``audio_too_long``)."""

    def __init__(self, message: str, code: str):
        super().__init__(message)
        self.code = code


# -- audio in --------------------------------------------------------------------------------------


def pcm16_to_float(data: bytes) -> np.ndarray:
    """Little-endian signed 16-bit mono samples as float32 in [-1, 1)."""
    if len(data) % 2:
        raise AudioDecodeError("PCM16 messages must hold whole 2-byte samples")
    return np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768.0


class _Pipe(io.RawIOBase):
    """Bytes written by the connection, read (blocking) by the container decoder's thread."""

    def __init__(self) -> None:
        self._data = bytearray()
        self._cond = threading.Condition()
        self._closed = False
        self._written = 0  # bytes written so far
        self._read = 0  # bytes read so far
        self._starts: deque[int] = deque()  # stream offsets where unread messages begin
        self.messages_started = 0  # messages the reader has begun to read

    def readable(self) -> bool:
        return True

    def readinto(self, b: bytearray | memoryview) -> int:  # type: ignore[override]
        with self._cond:
            while not self._data and not self._closed:
                self._cond.wait()
            n = min(len(b), len(self._data))
            b[:n] = self._data[:n]
            del self._data[:n]
            self._read += n
            while self._starts and self._starts[0] < self._read:
                self._starts.popleft()
                self.messages_started += 1
            self._cond.notify_all()
            return n

    def peek(self, n: int) -> bytes:
        """The first ``n`` bytes (fewer at the end of input), left in place for ``readinto``."""
        with self._cond:
            while len(self._data) < n and not self._closed:
                self._cond.wait()
            return bytes(self._data[:n])

    def write_blocking(self, data: bytes) -> None:
        """Append one message; waits while too much is queued (the decoder is behind)."""
        with self._cond:
            while len(self._data) > _PIPE_LIMIT and not self._closed:
                self._cond.wait()
            if self._closed:
                return
            self._starts.append(self._written)
            self._written += len(data)
            self._data += data
            self._cond.notify_all()

    def end(self) -> None:
        """No more bytes: the reader gets what is queued, then end of file."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def abort(self) -> None:
        """Give up: drop what is queued and wake everyone (reader and writers)."""
        with self._cond:
            self._closed = True
            self._data.clear()
            self._cond.notify_all()


class ContainerDecoder:
    """Decodes a browser's WebM/Opus (or Ogg/Opus) stream incrementally with PyAV, in a thread:
    ``feed`` bytes as they come, samples (16 kHz mono float32) go to ``on_audio``.

    Hostile input is bounded: the container is chosen from the first bytes (WebM/Matroska or Ogg
    only, no protocol), at most ``max_message_samples`` are decoded from one message (counted
    from when the decoder starts reading it until it starts on the next), and decoding waits
    while ``has_room()`` is false (the engine's queue is full), so a few kilobytes of Opus
    silence cannot become hours of float32 in memory. A failure is kept in ``error`` and
    reported to ``on_error`` (from the decoder's thread) at once.
    """

    def __init__(
        self,
        on_audio: Callable[[np.ndarray], None],
        *,
        max_message_samples: int | None = None,
        has_room: Callable[[], bool] = lambda: True,
        on_error: Callable[[MalsoriError], None] = lambda error: None,
    ):
        self.on_audio = on_audio
        self.max_message_samples = max_message_samples
        self.has_room = has_room
        self.on_error = on_error
        self.error: MalsoriError | None = None
        self._pipe = _Pipe()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="malsori-webm", daemon=True)
        self._thread.start()

    def feed(self, data: bytes) -> None:
        """Queue compressed bytes (blocks while the decoder is far behind)."""
        if self.error is not None:
            raise self.error
        self._pipe.write_blocking(data)

    def abort(self) -> None:
        """Stop decoding now (the connection is gone, or the stream was ended)."""
        self._stopped.set()
        self._pipe.abort()

    def close(self) -> None:
        """End of input: wait until everything fed is decoded (or ``abort`` is called)."""
        self._pipe.end()
        self._thread.join()
        if self.error is not None:
            raise self.error

    def _container_format(self) -> str:
        head = self._pipe.peek(4)
        if head not in LIVE_CONTAINERS:
            raise AudioDecodeError(
                "the stream is neither WebM nor Ogg (send encoding=pcm16 for raw samples)"
            )
        return LIVE_CONTAINERS[head]

    def _frames(self) -> Iterator[np.ndarray]:
        # Tiny probe and analysis sizes: start decoding from the first bytes, never wait for
        # seconds of audio to guess the format.
        allowed = demuxer_options(tuple(LIVE_CONTAINERS.values()), protocols=_NO_PROTOCOL)
        options = {"probesize": "32", "analyzeduration": "0", **allowed}
        with av.open(
            self._pipe, mode="r", format=self._container_format(), container_options=options
        ) as c:
            if not c.streams.audio:
                raise AudioDecodeError("the stream has no audio track")
            resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
            for packet in c.demux(c.streams.audio[0]):
                for frame in packet.decode():
                    for out in resampler.resample(frame):
                        yield out.to_ndarray().reshape(-1).astype(np.float32) / 32768.0
            for out in resampler.resample(None):
                yield out.to_ndarray().reshape(-1).astype(np.float32) / 32768.0

    def _run(self) -> None:
        message, from_message = 0, 0  # the message being decoded, samples decoded from it
        try:
            for samples in self._frames():
                if self._pipe.messages_started != message:
                    message, from_message = self._pipe.messages_started, 0
                from_message += samples.size
                self._check_message(from_message)
                while not self.has_room() and not self._stopped.is_set():
                    self._stopped.wait(_ROOM_POLL_S)
                if self._stopped.is_set():
                    return
                if samples.size:
                    self.on_audio(samples)
        except av.error.FFmpegError as e:
            reason = getattr(e, "strerror", None) or str(e)
            self._failed(AudioDecodeError(f"cannot decode the audio stream: {reason}"))
        except AudioDecodeError as e:
            self._failed(AudioDecodeError(f"cannot decode the audio stream: {e}"))
        except MalsoriError as e:  # a limit (StreamLimitError) or the engine refusing the audio
            self._failed(e)

    def _check_message(self, samples: int) -> None:
        if self.max_message_samples is not None and samples > self.max_message_samples:
            most = self.max_message_samples / SAMPLE_RATE
            raise StreamLimitError(
                f"one message decoded to more than {most:g} s of audio (the most per message)",
                code="audio_too_long",
            )

    def _failed(self, error: MalsoriError) -> None:
        if self._stopped.is_set():
            return  # aborted: nobody is listening
        self.error = error
        self._pipe.abort()  # unblocks a writer waiting for room
        self.on_error(error)


class Liveness:
    """Ends a stream whose client sends too little audio: in each window of ``window_s`` seconds
    at least ``min_rate`` seconds of audio per second must arrive (and some audio at all).
    Windows in which the server itself held the client back do not count (``restart``).
    ``clock`` is injectable for tests."""

    def __init__(
        self, window_s: float, min_rate: float, clock: Callable[[], float] = time.monotonic
    ):
        self.window_s = window_s
        self.min_rate = min_rate
        self.clock = clock
        self._since = clock()
        self._audio_at_start = 0.0

    def restart(self, received_s: float) -> None:
        """Start a new window now (the server was holding the client back)."""
        self._since, self._audio_at_start = self.clock(), received_s

    def check(self, received_s: float) -> StreamLimitError | None:
        """The error that ends the stream, or None; call it often (every second or so)."""
        now = self.clock()
        elapsed = now - self._since
        if elapsed < self.window_s:
            return None
        got = received_s - self._audio_at_start
        self._since, self._audio_at_start = now, received_s
        if got <= 0:
            return StreamLimitError(
                f"no audio for {self.window_s:g} s: ending the stream", code="idle_timeout"
            )
        if got < self.min_rate * elapsed:
            return StreamLimitError(
                f"only {got:.2g} s of audio in {elapsed:.0f} s (at least {self.min_rate:g} s of "
                "audio per second is needed): ending the stream",
                code="audio_too_slow",
            )
        return None


class Pacer:
    """How long to wait before reading more, so a client stays within real time plus ``burst_s``.
    ``clock`` is injectable for tests."""

    def __init__(self, burst_s: float, clock: Callable[[], float] = time.monotonic):
        self.burst_s = burst_s
        self.clock = clock
        self.started = clock()

    def delay(self, received_s: float) -> float:
        """Seconds to wait before the next read, having received ``received_s`` of audio."""
        ahead = received_s - (self.clock() - self.started) - self.burst_s
        return max(0.0, ahead)


# -- scheduling ------------------------------------------------------------------------------------


class StreamSession:
    """One connection's engine and what the scheduler should do with it next."""

    def __init__(
        self,
        engine: OnlineProcessor,
        emit: Callable[[list[StreamEvent] | None], None],
        owner: str | None = None,
    ):
        self.id = "rt_" + secrets.token_hex(6)
        self.engine = engine
        self.owner = owner  # the API key's id, counted against ``max_per_key`` (None: not counted)
        self.emit = emit  # called from a scheduler thread; None marks the end of the stream
        self.finishing = False
        self.done = threading.Event()
        self.failed: BaseException | None = None

    def wants_work(self) -> bool:
        return not self.done.is_set() and (self.finishing or self.engine.ready())

    def step(self) -> None:
        """One decode (or the finish), run in a scheduler thread."""
        try:
            if self.finishing:
                self.emit(self.engine.finish())
                self.done.set()
                self.emit(None)
            else:
                events = self.engine.process_iter()
                if events:
                    self.emit(events)
        except Exception as e:  # reported to the client by the connection
            logger.exception("live stream %s failed", self.id)
            self.failed = e
            self.done.set()
            self.emit(None)


class StreamScheduler:
    """Round-robin decoding of every open session on ``workers`` threads, which run only while
    sessions are open."""

    def __init__(self, workers: int, max_sessions: int, max_per_key: int | None = None):
        self.workers = workers
        self.max_sessions = max_sessions
        self.max_per_key = max_per_key
        self._sessions: deque[StreamSession] = deque()
        self._busy: set[StreamSession] = set()
        self._cond = threading.Condition()
        self._threads: list[threading.Thread] = []

    @property
    def open_sessions(self) -> int:
        return len(self._sessions)

    def open(self, session: StreamSession) -> None:
        with self._cond:
            if len(self._sessions) >= self.max_sessions:
                raise TooManySessionsError(
                    f"{self.max_sessions} live streams are open already; try again later"
                )
            if self.max_per_key is not None and session.owner is not None:
                same_key = sum(1 for s in self._sessions if s.owner == session.owner)
                if same_key >= self.max_per_key:
                    raise TooManySessionsError(
                        f"this API key has {same_key} live streams open already (the most one "
                        "key may have); close one or try again later"
                    )
            self._sessions.append(session)
            while len(self._threads) < self.workers:
                thread = threading.Thread(target=self._loop, name="malsori-live", daemon=True)
                thread.start()
                self._threads.append(thread)

    def close(self, session: StreamSession) -> None:
        with self._cond:
            if session in self._sessions:
                self._sessions.remove(session)
            self._cond.notify_all()

    def wake(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def _next(self) -> StreamSession | None:
        """The next session with work, in round-robin order; None when every session is gone."""
        with self._cond:
            while self._sessions:
                for _ in range(len(self._sessions)):
                    session = self._sessions[0]
                    self._sessions.rotate(-1)
                    if session not in self._busy and session.wants_work():
                        self._busy.add(session)
                        return session
                self._cond.wait(0.05)
            self._threads.remove(threading.current_thread())  # under the lock: open() restarts
            return None

    def _loop(self) -> None:
        while (session := self._next()) is not None:
            try:
                session.step()
            finally:
                with self._cond:
                    self._busy.discard(session)
