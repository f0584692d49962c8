"""The stage ahead of the model: decode each file and find its speech, in a pool of threads.

Files are read with ``malsori.audio`` (the same decoder, checks and errors as ``transcribe``) in
parts of ``stream_window_s`` (long inputs never sit whole in memory), and Silero VAD finds the
speech regions of each part (``malsori.vad``, as ``transcribe`` does), cut so that each fits
one window. Prepared parts go into a buffer
bounded by seconds of audio, which the model thread drains.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import vad
from ..audio import SAMPLE_RATE, AudioStream
from ..errors import MalsoriError
from ..options import TranscribeOptions
from ..transcribe import iter_windows
from .engine_api import internal_error
from .inputs import BatchInput
from .packing import split_region

logger = logging.getLogger(__name__)


@dataclass
class PreparedPart:
    """One decoded part of a file (all of it, unless it is longer than ``stream_window_s``)."""

    file: int
    part: int
    start: int  # first sample of the part in the file
    audio: np.ndarray
    regions: list[tuple[int, int]]  # speech, as sample ranges within the part, each fits a window


@dataclass
class FileEnd:
    """Every part of the file has been prepared; ``samples`` is its decoded length."""

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


def prepare_file(index: int, path: Path, options: TranscribeOptions) -> Iterator[Prepared]:
    """The parts of one file, then its end, or its failure (after any parts already given).

    Anything else it raises (a bug, an out-of-memory) the ``Prefetcher`` records as the file's
    failure, an internal error."""
    total = 0
    try:
        stream = AudioStream(path)
        windows = iter_windows(stream.blocks(), options.stream_window_s)
        for part, (start, audio) in enumerate(windows):
            total = start + audio.size
            yield PreparedPart(index, part, start, audio, speech_regions(audio, options))
    except MalsoriError as e:
        yield FileFailed(index, e)
        return
    yield FileEnd(index, total)


class Prefetcher:
    """Worker threads preparing files into a buffer capped at ``limit_s`` of audio, handed out
    in the order of the files (so that the engine packs a job the same way every run).

    Files are claimed in order, one per worker; a worker whose file is not yet the next to be
    handed out waits while the buffer is full. The worker on the next file may always add one
    part when none of that file's parts is buffered, so the buffer cannot fill up with later
    files while the next one waits.
    """

    def __init__(
        self,
        items: Sequence[BatchInput],
        options: TranscribeOptions,
        *,
        workers: int,
        limit_s: float,
    ):
        self.items = items
        self.options = options
        self.limit = int(limit_s * SAMPLE_RATE)
        self._buffer: dict[int, deque[Prepared]] = {}  # by file, each in order
        self._head = 0  # the file handed out next
        self._queued = 0  # samples in the buffer
        self._cond = threading.Condition()
        self._next = 0
        self._running = workers
        self._stop = False
        self._threads = [
            threading.Thread(target=self._work, name=f"malsori-prepare-{i}", daemon=True)
            for i in range(workers)
        ]
        for t in self._threads:
            t.start()

    def _claim(self) -> int | None:
        with self._cond:
            if self._stop or self._next >= len(self.items):
                return None
            self._next += 1
            return self._next - 1

    def _work(self) -> None:
        try:
            while (index := self._claim()) is not None:
                source = self.items[index].source
                try:
                    for item in prepare_file(index, source, self.options):
                        if not self._put(item):
                            return
                except Exception as e:  # this file fails; the next ones go on, in order
                    if not self._put(FileFailed(index, internal_error(source, e))):
                        return
        finally:
            with self._cond:
                self._running -= 1
                self._cond.notify_all()

    def _put(self, item: Prepared) -> bool:
        size = item.audio.size if isinstance(item, PreparedPart) else 0
        with self._cond:
            while not self._stop and self._queued and self._queued + size > self.limit:
                if item.file == self._head and not self._buffer.get(item.file):
                    break  # the next file, with nothing buffered: always room for one part
                self._cond.wait()
            if self._stop:
                return False
            self._buffer.setdefault(item.file, deque()).append(item)
            self._queued += size
            self._cond.notify_all()
            return True

    def get(self, *, block: bool) -> Prepared | None:
        """The next prepared item, in file order; None when there is none now
        (``block=False``) or ever."""
        with self._cond:
            while block and not self._buffer.get(self._head) and self._running:
                self._cond.wait()
            queue = self._buffer.get(self._head)
            if not queue:
                return None
            item = queue.popleft()
            if not queue:
                del self._buffer[self._head]
            if isinstance(item, PreparedPart):
                self._queued -= item.audio.size
            else:  # FileEnd or FileFailed: the file's last item
                self._head += 1
            self._cond.notify_all()
            return item

    @property
    def exhausted(self) -> bool:
        """Nothing buffered and nothing more coming."""
        with self._cond:
            return not self._buffer and self._running == 0

    def close(self) -> None:
        with self._cond:
            self._stop = True
            self._buffer.clear()
            self._queued = 0
            self._cond.notify_all()
        for t in self._threads:
            t.join(timeout=5)
