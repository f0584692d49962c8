"""Prometheus metrics, in a registry of the app's own (two apps in one process never clash)."""

from __future__ import annotations

import math
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy.exc import SQLAlchemyError

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
_RTF_BUCKETS = (0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0)


class _GpuCollector(Collector):
    def __init__(self, read: Callable[[], list[tuple[int, int]]]):
        self.read = read

    def collect(self) -> Iterator[GaugeMetricFamily]:
        readings = self.read()
        if not readings:
            return
        family = GaugeMetricFamily(
            "malsori_gpu_memory_used_bytes", "GPU memory in use, per device", labels=["device"]
        )
        for index, used in readings:
            family.add_metric([str(index)], used)
        yield family


class Metrics:
    """Every series the server exports; the service layer calls the plain methods below."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        labels = ["method", "endpoint", "status"]
        self.requests = Counter(
            "malsori_http_requests", "HTTP requests by endpoint and status", labels, registry=r
        )
        self.request_seconds = Histogram(
            "malsori_http_request_duration_seconds",
            "HTTP request duration by endpoint and status",
            labels,
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.queue_depth = Gauge(
            "malsori_queue_depth", "Requests and jobs waiting for a worker", registry=r
        )
        self.active = Gauge(
            "malsori_active_jobs", "Transcriptions running now (requests and jobs)", registry=r
        )
        self.audio_seconds = Counter(
            "malsori_audio_seconds_processed", "Seconds of audio transcribed", ["task"], registry=r
        )
        self.rtf = Histogram(
            "malsori_rtf", "Real-time factor: processing seconds per audio second", ["task"],
            buckets=_RTF_BUCKETS, registry=r,
        )  # fmt: skip
        self.model_load_seconds = Histogram(
            "malsori_model_load_seconds", "Seconds each model load took", ["model"],
            buckets=(0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120), registry=r,
        )  # fmt: skip
        self.model_loads = Counter(
            "malsori_model_loads", "Models loaded (first request, preload or reload)", ["model"],
            registry=r,
        )  # fmt: skip
        self.model_unloads = Counter(
            "malsori_model_unloads", "Models unloaded, by reason (idle, evicted, admin)",
            ["model", "reason"], registry=r,
        )  # fmt: skip
        self.model_loaded = Gauge(
            "malsori_model_loaded", "1 while the model is loaded, 0 otherwise", ["model"],
            registry=r,
        )  # fmt: skip
        self._gpu_watched = False
        self.jobs_waiting = Gauge(
            "malsori_jobs_waiting",
            "Durable jobs queued in the database for any worker (NaN: database unreachable)",
            registry=r,
        )
        self.disk_free = Gauge(
            "malsori_data_dir_free_bytes", "Free bytes on the data folder's disk", registry=r
        )
        self.disk_size = Gauge(
            "malsori_data_dir_size_bytes", "Size of the data folder's disk", registry=r
        )
        self.jobs_finished = Counter(
            "malsori_jobs_finished", "Durable jobs that ended, by final status", ["status"],
            registry=r,
        )  # fmt: skip
        for status in ("completed", "failed"):  # exported from the start, at 0
            self.jobs_finished.labels(status)

        self.queue_wait = Histogram(
            "malsori_queue_wait_seconds", "Time a request or job waited for a worker",
            ["kind"], buckets=_LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.engine_batches = Histogram(
            "malsori_engine_batch_windows", "30 s windows per model call, by priority class",
            ["priority"], buckets=(1, 2, 4, 8, 16, 32, 64), registry=r,
        )  # fmt: skip
        self.engine_fill = Histogram(
            "malsori_engine_window_fill", "Share of a decoded window that is speech",
            ["priority"], buckets=(0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0), registry=r,
        )  # fmt: skip
        self.engine_latency = Histogram(
            "malsori_engine_latency_seconds", "From submission to transcript, by priority class",
            ["priority"], buckets=_LATENCY_BUCKETS, registry=r,
        )  # fmt: skip

    def observe_engine(self, event: str, values: dict[str, float]) -> None:
        """The engine's events (``EngineStats.observers``): batches and finished requests."""
        kind, _, priority = event.partition(".")
        if kind == "batch":
            self.engine_batches.labels(priority).observe(values["windows"])
            self.engine_fill.labels(priority).observe(values["window_fill"])
        elif kind == "done":
            self.engine_latency.labels(priority).observe(values["latency"])

    def observe_model_load(self, model: str, seconds: float, *, device: str) -> None:
        self.model_loads.labels(model).inc()
        self.model_load_seconds.labels(model).observe(seconds)
        self.model_loaded.labels(model).set(1)
        if device == "cuda" and not self._gpu_watched:
            from .gpu import Nvml

            nvml = Nvml()
            if nvml.available:
                self.watch_gpu(nvml.memory_used)
            self._gpu_watched = True

    def observe_model_unload(self, model: str, reason: str) -> None:
        self.model_unloads.labels(model, reason).inc()
        self.model_loaded.labels(model).set(0)

    def watch_models(self, models: list[str]) -> None:
        """Show every served model in ``malsori_model_loaded`` from the start (0 until loaded)."""
        for model in models:
            self.model_loaded.labels(model)

    def observe_request(self, method: str, endpoint: str, status: int, seconds: float) -> None:
        values = (method, endpoint, str(status))
        self.requests.labels(*values).inc()
        self.request_seconds.labels(*values).observe(seconds)

    def observe_transcription(self, task: str, audio_s: float, processing_s: float) -> None:
        self.audio_seconds.labels(task).inc(audio_s)
        if audio_s > 0:
            self.rtf.labels(task).observe(processing_s / audio_s)

    def watch_queue(self, depth: Callable[[], int], active: Callable[[], int]) -> None:
        self.queue_depth.set_function(depth)
        self.active.set_function(active)

    def watch_jobs(self, waiting: Callable[[], int]) -> None:
        def read() -> float:
            try:
                return float(waiting())
            except SQLAlchemyError:  # the scrape still answers; the alert on `up` stays quiet
                return math.nan

        self.jobs_waiting.set_function(read)

    def watch_disk(self, path: Path) -> None:
        """Free and total bytes of the disk holding ``path`` (the data folder)."""
        self.disk_free.set_function(lambda: shutil.disk_usage(path).free)
        self.disk_size.set_function(lambda: shutil.disk_usage(path).total)

    def watch_gpu(self, read: Callable[[], list[tuple[int, int]]]) -> None:
        self.registry.register(_GpuCollector(read))

    def render(self) -> bytes:
        return generate_latest(self.registry)
