"""What the engine is asked to do: requests, their priority classes, and the caller's handle."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from enum import IntEnum
from typing import TYPE_CHECKING

from ..decoding import WINDOW_S
from ..errors import MalsoriError
from ..options import TranscribeOptions

if TYPE_CHECKING:
    from ..audio import AudioSource
    from ..results import Segment, Transcript


class Priority(IntEnum):
    """Who waits: lower runs first. Live captions are read as they are spoken; a synchronous
    HTTP request holds a connection open; a job is polled or called back; a batch file is one
    of thousands."""

    LIVE = 0
    SYNC = 1
    JOB = 2
    BATCH = 3


class RequestCancelledError(MalsoriError):
    """The request was cancelled (its client went away, or its job was deleted)."""

    exit_code = 130


@dataclass(eq=False)
class Request:
    """One input to transcribe, as the engine holds it."""

    id: int  # the engine's number for it (unique, rising: the order requests came in)
    source: AudioSource
    options: TranscribeOptions
    priority: Priority
    name: str  # for logs and the transcript's ``source``
    submitted: float = field(default_factory=time.monotonic)
    future: Future[Transcript] = field(default_factory=Future)
    cancelled: threading.Event = field(default_factory=threading.Event)
    # Called with each segment as soon as it is final (from the engine's threads).
    on_segment: Callable[[Segment], None] | None = None

    @property
    def packable(self) -> bool:
        """Whether its speech can share 30 s windows with other requests': those need
        timestamps (to tell requests apart), the whole encoder window and the default decoding
        knobs (``TranscribeOptions.packs_with_others``). Others run alone, through the
        sequential pipeline (``Model.transcribe``), in a model lane."""
        o = self.options
        return not o.without_timestamps and o.encoder_window_s >= WINDOW_S and o.packs_with_others


class RequestHandle:
    """The caller's side of a submitted request: wait for its transcript, or cancel it."""

    def __init__(self, request: Request, wake: threading.Condition):
        self._request = request
        self._wake = wake

    @property
    def id(self) -> int:
        return self._request.id

    @property
    def priority(self) -> Priority:
        return self._request.priority

    def result(self, timeout: float | None = None) -> Transcript:
        """The transcript; raises the error that stopped the request (a ``MalsoriError``)."""
        return self._request.future.result(timeout)

    async def wait(self) -> Transcript:
        """``result`` for asyncio code (the server): awaits without holding a thread."""
        return await asyncio.wrap_future(self._request.future)

    def add_done_callback(self, callback: Callable[[Future[Transcript]], None]) -> None:
        """Call ``callback(future)`` when the request ends (from the engine's thread)."""
        self._request.future.add_done_callback(callback)

    def done(self) -> bool:
        return self._request.future.done()

    def cancel(self) -> None:
        """Drop the request: its windows not yet decoded are freed, its result never comes
        (``result`` raises ``RequestCancelledError``). Harmless once it is done."""
        self._request.cancelled.set()
        with self._wake:
            self._wake.notify_all()
