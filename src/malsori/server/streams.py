"""Live streams behind ``/v1/realtime``: audio decoding, pacing and fair scheduling. No HTTP here.

Each connection gets its own ``OnlineProcessor`` on the server's one loaded model. Decodes of
all streams run on ``realtime.workers`` threads, round robin: a stream waits for at most one
decode of each other stream, so a busy stream cannot starve a quiet one, and each decode takes
all the audio its stream received meanwhile, so a slow server makes captions later, never
wrong. Clients are held to real time (plus ``burst_s``): past that, or when undecoded audio
reaches ``max_lag_s``, the server stops reading and TCP flow control slows the client down.
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

from ..audio import SAMPLE_RATE
from ..errors import AudioDecodeError
from ..streaming import OnlineProcessor, StreamEvent
from .exceptions import QueueFullError

logger = logging.getLogger(__name__)

Encoding = Literal["pcm16", "webm"]
ENCODINGS: tuple[str, ...] = ("pcm16", "webm")
_PIPE_LIMIT = 1 << 20  # compressed bytes waiting for the container decoder


class TooManySessionsError(QueueFullError):
    """Every live-stream place is taken (answered like a full queue: try again later)."""

    def __init__(self, message: str):
        super().__init__(message, retry_after=5)


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

    def readable(self) -> bool:
        return True

    def readinto(self, b: bytearray | memoryview) -> int:  # type: ignore[override]
        with self._cond:
            while not self._data and not self._closed:
                self._cond.wait()
            n = min(len(b), len(self._data))
            b[:n] = self._data[:n]
            del self._data[:n]
            self._cond.notify_all()
            return n

    def write_blocking(self, data: bytes) -> None:
        """Append; waits while too much is queued (the decoder is behind)."""
        with self._cond:
            while len(self._data) > _PIPE_LIMIT and not self._closed:
                self._cond.wait()
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
    ``feed`` bytes as they come, samples (16 kHz mono float32) go to ``on_audio``."""

    def __init__(self, on_audio: Callable[[np.ndarray], None]):
        self.on_audio = on_audio
        self.error: AudioDecodeError | None = None
        self._pipe = _Pipe()
        self._thread = threading.Thread(target=self._run, name="malsori-webm", daemon=True)
        self._thread.start()

    def feed(self, data: bytes) -> None:
        """Queue compressed bytes (blocks while the decoder is far behind)."""
        if self.error is not None:
            raise self.error
        self._pipe.write_blocking(data)

    def abort(self) -> None:
        """Stop decoding now (the connection is gone)."""
        self._pipe.abort()

    def close(self, timeout: float = 10.0) -> None:
        """End of input: wait until everything fed is decoded."""
        self._pipe.end()
        self._thread.join(timeout)
        if self.error is not None:
            raise self.error

    def _frames(self) -> Iterator[np.ndarray]:
        # Tiny probe and analysis sizes: start decoding from the first bytes, never wait for
        # seconds of audio to guess the format.
        with av.open(
            self._pipe, mode="r", options={"probesize": "32", "analyzeduration": "0"}
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
        try:
            for samples in self._frames():
                if samples.size:
                    self.on_audio(samples)
        except (av.error.FFmpegError, AudioDecodeError) as e:
            message = getattr(e, "strerror", None) or str(e)
            self.error = AudioDecodeError(f"cannot decode the audio stream: {message}")
            self._pipe.abort()  # unblocks a writer waiting for room


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

    def __init__(self, engine: OnlineProcessor, emit: Callable[[list[StreamEvent] | None], None]):
        self.id = "rt_" + secrets.token_hex(6)
        self.engine = engine
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

    def __init__(self, workers: int, max_sessions: int):
        self.workers = workers
        self.max_sessions = max_sessions
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
