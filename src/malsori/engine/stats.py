"""What the engine did: for the log, the benchmark and the server's metrics."""

from __future__ import annotations

import threading
from collections import Counter, defaultdict, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from ..decoding import WINDOW_S
from .packing import Window
from .requests import Priority, Request

_KEPT = 1000  # latencies kept per priority class for percentiles


@dataclass
class EngineStats:
    """Counters over the engine's life. ``observer`` (the server's metrics) hears each batch and
    each finished request as it happens."""

    requests: int = 0  # submitted
    failed: int = 0
    cancelled: int = 0
    batches: int = 0
    batch_retries: int = 0  # batches that failed and went again one window at a time
    windows: int = 0  # windows decoded
    pieces: int = 0  # speech regions decoded (retries included)
    speech_seconds: float = 0.0  # audio decoded, gaps and padding not counted
    straddled: int = 0  # segments over two pieces, split by their words
    lost: int = 0  # pieces that got no text in a shared window and went again alone
    unfinished: int = 0  # pieces whose tail went again after an unfinished decode
    untimed: int = 0  # windows of one recording, decoded without timestamps
    dropped_pieces: int = 0  # pieces of cancelled requests dropped before decoding
    shared_windows: int = 0  # windows holding the speech of more than one request
    solo: int = 0  # requests that could not share windows, run alone
    windows_by_priority: Counter[str] = field(default_factory=Counter)
    latency: dict[str, deque[float]] = field(
        default_factory=lambda: defaultdict(lambda: deque(maxlen=_KEPT))
    )
    observers: list[Callable[[str, dict[str, float]], None]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def record_batch(
        self, priority: Priority, windows: Sequence[Window], seconds: float, capacity: int
    ) -> None:
        speech = sum(w.speech_seconds for w in windows)
        with self._lock:
            self.batches += 1
            self.windows += len(windows)
            self.pieces += sum(len(w.placements) for w in windows)
            self.speech_seconds += speech
            self.untimed += sum(w.one_recording for w in windows)
            self.shared_windows += sum(len({p.piece.file for p in w.placements}) > 1
                                       for w in windows)  # fmt: skip
            self.windows_by_priority[priority.name.lower()] += len(windows)
        event = {
            "windows": float(len(windows)),
            "batch_fill": len(windows) / max(1, capacity),
            "window_fill": speech / (len(windows) * WINDOW_S) if windows else 0.0,
            "seconds": seconds,
        }
        for observer in self.observers:
            observer(f"batch.{priority.name.lower()}", event)

    def record_done(self, request: Request, latency: float) -> None:
        name = request.priority.name.lower()
        with self._lock:
            self.latency[name].append(latency)
        for observer in self.observers:
            observer(f"done.{name}", {"latency": latency})

    def percentile(self, priority: Priority, q: float) -> float | None:
        with self._lock:
            values = sorted(self.latency.get(priority.name.lower(), ()))
        if not values:
            return None
        return values[min(len(values) - 1, int(q * len(values)))]

    def describe(self) -> str:
        fill = self.speech_seconds / (self.windows * WINDOW_S) if self.windows else 0.0
        return (
            f"{self.windows} windows in {self.batches} batches ({fill:.0%} speech, "
            f"{self.shared_windows} shared, {self.untimed} without timestamps), "
            f"{self.pieces} pieces, {self.straddled} split by words, {self.lost} decoded again "
            f"alone, {self.unfinished} tails decoded again, {self.cancelled} cancelled"
        )
