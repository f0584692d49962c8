"""Uploaded audio: spooled to the data folder under names the server makes, then checked by
decoding it, on a bounded pool of its own.

Client file names never become paths: a file is stored as ``uploads/<random hex>`` (and a job's
as ``audio/<job id>``); the client's name is kept only as a display label, cleaned of path parts
and control characters. The content is judged by FFmpeg opening and decoding it, never by the
name or the declared content type.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import shutil
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from ..audio import AudioStream, probe
from ..engine.intake import yield_to_model
from ..errors import AudioDecodeError, EmptyAudioError, MalsoriError
from .db import PRIVATE_FILE_MODE, make_private_dir
from .exceptions import AudioTooLongError, NotAudioError, UploadTooLargeError
from .settings import LimitSettings

logger = logging.getLogger(__name__)

_CHUNK = 1 << 20
_LABEL_MAX = 200


def display_name(client_name: str | None) -> str:
    """The last component of a client's file name, printable characters only: a label."""
    base = (client_name or "").replace("\\", "/").rsplit("/", 1)[-1]
    cleaned = "".join(c for c in base if c.isprintable()).strip()
    return cleaned[:_LABEL_MAX] or "audio"


@dataclass(frozen=True)
class CheckedAudio:
    """An upload that decodes, with what decoding it found."""

    path: Path
    size: int  # bytes
    duration: float  # seconds, counted while decoding
    format: str  # container, as FFmpeg names it


def _scrubbed(error: MalsoriError, path: Path) -> str:
    """The error's message without the server's own path in it."""
    return str(error).replace(str(path), "uploaded file")


def check_audio(path: Path, max_seconds: float) -> CheckedAudio:
    """Decode the whole upload once: raise for empty, non-audio, corrupt or too-long content.

    NotAudioError (nothing FFmpeg opens as audio), AudioDecodeError (opens, then fails: corrupt
    or truncated), EmptyAudioError, AudioTooLongError. Messages name no server path. Audio longer
    than ``max_seconds`` is refused as soon as that is known: from the header's length, from the
    packets' stated durations, or once decoding passes the limit, never after decoding it all.
    """
    size = path.stat().st_size
    if size == 0:
        raise EmptyAudioError("the uploaded file is empty")
    try:
        info = probe(path)
    except AudioDecodeError as e:
        raise NotAudioError(_scrubbed(e, path)) from e
    too_long = AudioTooLongError(f"audio longer than the limit of {max_seconds:g} s")
    if info.declared_duration is not None and info.declared_duration > max_seconds + 1.0:
        raise too_long
    try:
        seconds = AudioStream(path).measure(max_seconds)
    except (AudioDecodeError, EmptyAudioError) as e:
        raise type(e)(_scrubbed(e, path)) from e
    if seconds > max_seconds:
        raise too_long
    return CheckedAudio(path, size, seconds, info.format)


class UploadChecker:
    """Runs ``check_audio`` on threads of its own, a bounded number at once.

    At most ``max_concurrent_decodes`` checks run at the same time, on this pool's threads (never
    the threads that serve key lookups, readiness or other requests), and at most
    ``max_concurrent_decodes_per_key`` of one API key: a key's further uploads wait for its own
    turn, so one key cannot hold every decode thread. Callers reserve their queue slot before
    checking, and their key's request or job quota before that, so every line is bounded.
    """

    def __init__(self, limits: LimitSettings, *, per_key: bool = True):
        self.max_seconds = limits.max_audio_seconds
        self.per_key_limit = (
            limits.max_concurrent_decodes_per_key if per_key else limits.max_concurrent_decodes
        )
        self._executor = ThreadPoolExecutor(
            max_workers=limits.max_concurrent_decodes,
            thread_name_prefix="malsori-decode",
            initializer=yield_to_model,  # checking uploads gives way to decoding them
        )
        self._turns: dict[str, tuple[asyncio.Semaphore, int]] = {}  # key: turns, callers

    @contextlib.asynccontextmanager
    async def _turn(self, owner: str) -> AsyncIterator[None]:
        """Wait for one of ``owner``'s turns (called on the event loop only)."""
        turns, callers = self._turns.get(owner) or (asyncio.Semaphore(self.per_key_limit), 0)
        self._turns[owner] = (turns, callers + 1)
        try:
            async with turns:
                yield
        finally:
            turns, callers = self._turns[owner]
            if callers > 1:
                self._turns[owner] = (turns, callers - 1)
            else:
                del self._turns[owner]

    async def check(self, path: Path, owner: str) -> CheckedAudio:
        """Check ``path`` for ``owner`` on the pool, in the key's turn. A caller that stops
        waiting drops its check if it has not started (a running one ends with its file)."""
        async with self._turn(owner):
            future = self._executor.submit(check_audio, path, self.max_seconds)
            try:
                return await asyncio.wrap_future(future)
            finally:
                future.cancel()  # no effect once it runs or ran

    def stop(self) -> None:
        """Drop waiting checks; running ones end with their file."""
        self._executor.shutdown(wait=False, cancel_futures=True)


class UploadSpool:
    """The data folder's ``uploads/`` (request audio, deleted after use) and ``audio/`` (jobs)."""

    def __init__(self, data_dir: Path, spool_dir: Path | None = None):
        self.spool_dir = spool_dir or data_dir / "uploads"
        self.audio_dir = data_dir / "audio"

    def prepare(self) -> None:
        """Create the folders and remove spool files a killed process left behind."""
        make_private_dir(self.audio_dir)
        if self.spool_dir.exists():
            shutil.rmtree(self.spool_dir, ignore_errors=True)
        make_private_dir(self.spool_dir)

    def save(self, source: BinaryIO, max_bytes: int) -> Path:
        """Copy an upload into the spool, refusing it once it passes ``max_bytes``."""
        target = self.spool_dir / secrets.token_hex(16)
        written = 0
        try:
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE)
            with open(fd, "wb") as out:
                while chunk := source.read(_CHUNK):
                    written += len(chunk)
                    if written > max_bytes:
                        raise UploadTooLargeError.for_limit(max_bytes)
                    out.write(chunk)
        except BaseException:
            target.unlink(missing_ok=True)
            raise
        return target

    def job_audio(self, job_id: str) -> Path:
        return self.audio_dir / job_id

    def adopt(self, path: Path, job_id: str) -> Path:
        """Move a checked upload to the job's durable place (synced to disk first)."""
        target = self.job_audio(job_id)
        with open(path, "rb") as f:
            os.fsync(f.fileno())
        shutil.move(path, target)  # a rename, or a copy when the spool is on another disk
        return target

    @staticmethod
    def discard(path: Path) -> None:
        path.unlink(missing_ok=True)
