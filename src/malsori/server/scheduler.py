"""A bounded queue in front of a pool of worker threads that share one loaded model.

Admission is explicit: ``slot()`` reserves a place or raises ``QueueFullError`` (with an estimate
of when to retry), so a caller can check for room before it stores anything. Jobs recovered after
a restart were accepted earlier and skip the bound (``force=True``).
"""

from __future__ import annotations

import contextlib
import logging
import math
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Literal

from .exceptions import QueueFullError
from .logs import reset_request_id, set_request_id

logger = logging.getLogger(__name__)

_RETRY_AFTER_MAX_S = 600


@dataclass(eq=False)  # compared and hashed by identity
class WorkItem:
    """One unit of work: ``run`` is called in a worker thread, once.

    ``run`` must watch ``cancel``: it is set when the item is cancelled or the pool stops (before
    or while it runs), and ``run`` should then return as soon as it can.
    """

    run: Callable[[], None]
    name: str
    request_id: str = "-"
    cancel: threading.Event = field(default_factory=threading.Event)
    state: Literal["new", "waiting", "dropped", "running"] = field(default="new", init=False)
    """Set by the pool under its lock: a dropped item was cancelled while waiting."""


class Slot:
    """A reserved place in the queue; ``submit`` uses it, leaving the block unused frees it."""

    def __init__(self, pool: WorkerPool):
        self._pool = pool
        self.used = False

    def submit(self, item: WorkItem) -> None:
        if self.used:
            raise RuntimeError("a queue slot can be used once")
        self.used = True
        self._pool._enqueue(item, reserved=True)


class WorkerPool:
    """``workers`` threads taking items from a queue holding at most ``queue_size`` waiting."""

    def __init__(self, workers: int, queue_size: int):
        self.workers = workers
        self.queue_size = queue_size
        self._queue: queue.Queue[WorkItem | None] = queue.Queue()
        self._lock = threading.Lock()
        self._waiting = 0  # in the queue, not yet taken by a worker
        self._reserved = 0  # slots handed out, not yet submitted
        self._running: set[WorkItem] = set()
        self._threads: list[threading.Thread] = []
        self._mean_item_s = 5.0  # running mean of item durations, for Retry-After
        self.stopping = threading.Event()

    @property
    def waiting(self) -> int:
        return self._waiting

    @property
    def active(self) -> int:
        return len(self._running)

    def start(self) -> None:
        for i in range(self.workers):
            thread = threading.Thread(target=self._loop, name=f"malsori-worker-{i}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def retry_after(self) -> int:
        """Seconds until a slot is likely to free up (at least 1)."""
        ahead = self._waiting + self._reserved + 1
        return max(1, min(_RETRY_AFTER_MAX_S, math.ceil(self._mean_item_s * ahead / self.workers)))

    def check_room(self) -> None:
        """Raise QueueFullError when no slot is free right now (nothing is reserved)."""
        with self._lock:
            if self._waiting + self._reserved >= self.queue_size:
                raise self._full()

    @contextlib.contextmanager
    def slot(self) -> Iterator[Slot]:
        """Reserve a place in the queue for the duration of the block."""
        with self._lock:
            if self._waiting + self._reserved >= self.queue_size:
                raise self._full()
            self._reserved += 1
        slot = Slot(self)
        try:
            yield slot
        finally:
            if not slot.used:
                with self._lock:
                    self._reserved -= 1

    def submit(self, item: WorkItem, *, force: bool = False) -> None:
        """Queue an item now (``force``: even past the bound, for recovered jobs)."""
        if force:
            self._enqueue(item, reserved=False)
            return
        with self.slot() as slot:
            slot.submit(item)

    def _full(self) -> QueueFullError:
        return QueueFullError(
            f"the server is busy: {self._waiting} requests are waiting for "
            f"{self.workers} worker(s); try again later",
            retry_after=self.retry_after(),
        )

    def cancel(self, item: WorkItem) -> None:
        """Cancel an item. A waiting one leaves the queue's count at once (its slot is free; the
        worker that later takes it only lets it clean up); a running one is told to stop."""
        with self._lock:
            item.cancel.set()
            if item.state == "waiting":
                item.state = "dropped"
                self._waiting -= 1

    def _enqueue(self, item: WorkItem, *, reserved: bool) -> None:
        with self._lock:
            if reserved:
                self._reserved -= 1
            self._waiting += 1
            item.state = "waiting"
        self._queue.put(item)

    def _loop(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            with self._lock:
                dropped = item.state == "dropped"
                if not dropped:
                    item.state = "running"
                    self._waiting -= 1
                    self._running.add(item)
            if self.stopping.is_set():
                item.cancel.set()  # run() sees it and returns at once
            elapsed = self._run(item)
            with self._lock:
                self._running.discard(item)
                if not dropped:
                    self._mean_item_s = 0.8 * self._mean_item_s + 0.2 * elapsed

    def _run(self, item: WorkItem) -> float:
        """Run one item in this worker thread; the seconds it took."""
        token = set_request_id(item.request_id)
        started = time.perf_counter()
        try:
            item.run()
        except Exception:  # run() reports its own errors; this keeps the worker alive
            logger.exception("work item %s failed", item.name)
        finally:
            reset_request_id(token)
        return time.perf_counter() - started

    def stop(self, timeout: float = 10.0) -> None:
        """Cancel running items, let the workers finish and join them."""
        self.stopping.set()
        with self._lock:
            for item in self._running:
                item.cancel.set()
        for _ in self._threads:
            self._queue.put(None)
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        self._threads.clear()
