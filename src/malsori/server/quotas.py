"""Per-key quotas: how much one API key may have in progress at once, so that one key cannot take
every queue slot, decode thread or worker from the others.

A ``KeyCounter`` counts one kind of thing in progress (synchronous requests, job submissions,
upload checks) per key. ``acquire`` either counts one more and hands back a ``Lease`` or raises
``QuotaExceededError`` (answered 429 with ``Retry-After``); the lease is given back once, however
many times ``release`` is called, so a request can release it from both its stream's end and its
work's end without counting twice.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType

from .exceptions import QuotaExceededError


class Lease:
    """One unit of a key's quota; ``release`` (or leaving the ``with`` block) gives it back."""

    def __init__(self, counter: KeyCounter, key: str):
        self._counter = counter
        self._key = key
        self._released = False
        self._lock = threading.Lock()

    def release(self) -> None:
        with self._lock:
            if self._released:
                return
            self._released = True
        self._counter._give_back(self._key)

    def __enter__(self) -> Lease:
        return self

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _error: BaseException | None,
        _traceback: TracebackType | None,
    ) -> None:
        self.release()


class KeyCounter:
    """Things of one kind in progress per key, at most ``limit`` each."""

    def __init__(self, limit: int | None, what: str, retry_after: Callable[[], int] = lambda: 1):
        self.limit = limit  # None: counted, never refused (authentication off: one caller)
        self.what = what  # "synchronous requests", for the error message
        self.retry_after = retry_after
        self._counts: dict[str, int] = {}
        self._lock = threading.Lock()

    def count(self, key: str) -> int:
        with self._lock:
            return self._counts.get(key, 0)

    def acquire(self, key: str, *, elsewhere: int = 0) -> Lease:
        """Count one more for ``key`` or raise QuotaExceededError; ``elsewhere``: how many the
        key already has that this counter does not see (jobs stored in the database)."""
        with self._lock:
            held = self._counts.get(key, 0)
            if self.limit is not None and held + elsewhere >= self.limit:
                raise QuotaExceededError(
                    f"this API key already has {held + elsewhere} {self.what} in progress, "
                    f"its limit; try again later",
                    retry_after=self.retry_after(),
                )
            self._counts[key] = held + 1
        return Lease(self, key)

    def _give_back(self, key: str) -> None:
        with self._lock:
            left = self._counts.get(key, 0) - 1
            if left > 0:
                self._counts[key] = left
            else:
                self._counts.pop(key, None)


@dataclass(frozen=True)
class Quotas:
    """The per-key counters the HTTP doors check before reading an upload."""

    requests: KeyCounter
    """Synchronous transcriptions and translations in progress, upload to answer."""
    jobs: KeyCounter
    """Job submissions in progress (stored jobs are counted in the database)."""
