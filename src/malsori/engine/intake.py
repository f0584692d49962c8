"""The stage ahead of the model: decode each request's audio and find its speech, in a pool of
threads, most urgent request first.

Audio is read with ``malsori.audio`` (the same decoder, checks and errors as ``transcribe``) in
parts of ``stream_window_s`` (long inputs never sit whole in memory), and Silero VAD finds the
speech regions of each part (``malsori.vad``, as ``transcribe`` does), cut so that each fits one
window. Workers prepare one part at a time of the most urgent request that may add one, so a
three-hour job never holds a worker while a live decode or an HTTP request waits. Prepared parts
wait in a buffer bounded by seconds of audio; each request may always have one part in it when it
is live or synchronous, or when it is the oldest of its class, so nothing waits for ever.
Batch files are handed to the engine strictly in the order they came (a job packs the same way
every run); the other classes as soon as they are ready.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections import deque
from collections.abc import Callable, Generator
from dataclasses import dataclass, field

import numpy as np

from .. import vad
from ..audio import SAMPLE_RATE, AudioStream, as_float32, materialize
from ..errors import MalsoriError
from ..options import TranscribeOptions
from ..transcribe import iter_windows
from .packing import split_region
from .requests import Priority, Request

logger = logging.getLogger(__name__)


class InternalError(MalsoriError):
    """An unexpected error while transcribing one input (a bug: please report it).

    The engine goes on with the other inputs; the traceback is in the log.
    """

    exit_code = 1


def internal_error(source: object, error: BaseException) -> InternalError:
    """Wrap an unexpected error of one input so that only that input fails."""
    logger.error("%s: unexpected %s", source, type(error).__name__, exc_info=error)
    wrapped = InternalError(f"{source}: internal error: {type(error).__name__}: {error}")
    wrapped.__cause__ = error
    return wrapped


# Threads that prepare audio (decode, resample, VAD) yield the CPU to the model's threads when
# both want it: the model's work is what callers wait for, live captions first.
PREPARE_NICENESS = 5


def yield_to_model() -> None:
    """Lower the calling thread's CPU priority by ``PREPARE_NICENESS`` (Linux threads have their
    own nice value; elsewhere, or when not allowed, nothing changes)."""
    try:
        tid = threading.get_native_id()
        niceness = os.getpriority(os.PRIO_PROCESS, tid) + PREPARE_NICENESS
        os.setpriority(os.PRIO_PROCESS, tid, niceness)
    except (AttributeError, OSError):
        pass


@dataclass
class PreparedPart:
    """One decoded part of an input (all of it, unless it is longer than ``stream_window_s``)."""

    file: int  # the request's id
    part: int
    start: int  # first sample of the part in the input
    audio: np.ndarray
    regions: list[tuple[int, int]]  # speech, as sample ranges within the part, each fits a window


@dataclass
class FileEnd:
    """Every part of the input has been prepared; ``samples`` is its decoded length."""

    file: int
    samples: int


@dataclass
class FileFailed:
    file: int
    error: MalsoriError


Prepared = PreparedPart | FileEnd | FileFailed


def speech_regions(audio: np.ndarray, options: TranscribeOptions) -> list[tuple[int, int]]:
    """Sample ranges to decode: the speech regions ``malsori transcribe`` decodes (see
    ``malsori.vad``; everything without VAD), each cut to fit a window."""
    if options.vad:
        spans = [(r["start"], r["end"]) for r in vad.speech_regions(audio, options)]
    else:
        spans = [(0, int(audio.size))]
    regions: list[tuple[int, int]] = []
    for lo, hi in spans:
        if hi <= lo:
            continue
        regions += [(lo + a, lo + b) for a, b in split_region(audio[lo:hi])]
    return regions


def prepare(request: Request) -> Generator[Prepared]:
    """The parts of one request's audio, then its end, or its failure (after any parts given).

    Anything else it raises (a bug, an out-of-memory) the ``Intake`` records as the request's
    failure, an internal error."""
    index, options, source = request.id, request.options, request.source
    total = 0
    try:
        with contextlib.ExitStack() as stack:
            if isinstance(source, np.ndarray):
                windows = iter_windows([as_float32(source)], options.stream_window_s)
            else:
                path = stack.enter_context(materialize(source))
                windows = iter_windows(AudioStream(path).blocks(), options.stream_window_s)
            for part, (start, audio) in enumerate(windows):
                total = start + audio.size
                yield PreparedPart(index, part, start, audio, speech_regions(audio, options))
    except MalsoriError as e:
        yield FileFailed(index, e)
        return
    yield FileEnd(index, total)


@dataclass(eq=False)
class _Job:
    request: Request
    parts: Generator[Prepared] | None = None
    buffer: deque[Prepared] = field(default_factory=deque)
    busy: bool = False  # a worker is preparing its next part
    done: bool = False  # its last item (end or failure) is buffered

    @property
    def order(self) -> tuple[int, int]:
        return self.request.priority, self.request.id


class Intake:
    """Worker threads preparing requests into a bounded buffer; ``get`` hands items out."""

    def __init__(self, *, workers: int, limit_s: float, notify: Callable[[], None]):
        self.limit = int(limit_s * SAMPLE_RATE)
        self._notify = notify  # tells the engine that an item is ready
        self._jobs: dict[int, _Job] = {}
        self._queued = 0  # samples buffered
        self._cond = threading.Condition()
        self._stop = False
        self._threads = [
            threading.Thread(target=self._work, name=f"malsori-prepare-{i}", daemon=True)
            for i in range(workers)
        ]
        for t in self._threads:
            t.start()

    def add(self, request: Request) -> None:
        with self._cond:
            self._jobs[request.id] = _Job(request)
            self._cond.notify_all()

    def drop(self, request_id: int) -> None:
        """A cancelled request: its buffered parts go, its decoding stops after the part in
        hand (the worker closes it)."""
        with self._cond:
            job = self._jobs.pop(request_id, None)
            if job is None:
                return
            self._queued -= sum(i.audio.size for i in job.buffer if isinstance(i, PreparedPart))
            job.buffer.clear()
            if not job.busy and job.parts is not None:
                job.parts.close()
            self._cond.notify_all()

    def pending(self, priority: Priority) -> bool:
        """Requests of this class not all handed out yet (being prepared, or buffered)."""
        with self._cond:
            return any(j.request.priority == priority for j in self._jobs.values())

    @property
    def idle(self) -> bool:
        with self._cond:
            return not self._jobs

    def get(self, most: Priority = Priority.BATCH) -> Prepared | None:
        """The next prepared item of a class up to ``most``: the most urgent request's, oldest
        first; batch files only in the order they came. None when nothing is ready now."""
        with self._cond:
            oldest_batch = min(
                (j.request.id for j in self._jobs.values() if j.request.priority == Priority.BATCH),
                default=None,
            )
            ready = [
                j for j in self._jobs.values()
                if j.buffer and j.request.priority <= most
                and (j.request.priority != Priority.BATCH
                                 or j.request.id == oldest_batch)
            ]  # fmt: skip
            if not ready:
                return None
            job = min(ready, key=lambda j: j.order)
            item = job.buffer.popleft()
            if isinstance(item, PreparedPart):
                self._queued -= item.audio.size
            else:  # the request's last item
                del self._jobs[job.request.id]
            self._cond.notify_all()
            return item

    def close(self) -> None:
        with self._cond:
            self._stop = True
            for job in self._jobs.values():
                if not job.busy and job.parts is not None:
                    job.parts.close()
            self._jobs.clear()
            self._queued = 0
            self._cond.notify_all()
        for t in self._threads:
            t.join(timeout=5)

    # --- workers --------------------------------------------------------------------------

    def _may_add(self, job: _Job, heads: dict[Priority, int]) -> bool:
        if job.busy or job.done:
            return False
        if self._queued < self.limit:
            return True
        if job.buffer:
            return False
        urgent = job.request.priority <= Priority.SYNC
        return urgent or heads.get(job.request.priority) == job.request.id

    def _claim(self) -> _Job | None:
        with self._cond:
            while not self._stop:
                heads: dict[Priority, int] = {}
                for j in sorted(self._jobs.values(), key=lambda j: j.order):
                    heads.setdefault(j.request.priority, j.request.id)
                claimable = [j for j in self._jobs.values() if self._may_add(j, heads)]
                if claimable:
                    job = min(claimable, key=lambda j: j.order)
                    job.busy = True
                    return job
                self._cond.wait()
            return None

    def _work(self) -> None:
        yield_to_model()
        while (job := self._claim()) is not None:
            request = job.request
            try:
                if job.parts is None:
                    job.parts = prepare(request)
                item: Prepared | None = next(job.parts, None)
            except Exception as e:  # this request fails; the others go on
                item = FileFailed(request.id, internal_error(request.name, e))
            with self._cond:
                job.busy = False
                if self._jobs.get(request.id) is not job:  # dropped meanwhile
                    if job.parts is not None:
                        job.parts.close()
                    continue
                if item is None:  # cannot happen: ``prepare`` always ends with its last item
                    item = FileFailed(request.id, InternalError(f"{request.name}: no end"))
                job.buffer.append(item)
                if isinstance(item, PreparedPart):
                    self._queued += item.audio.size
                else:
                    job.done = True
                self._cond.notify_all()
            self._notify()
