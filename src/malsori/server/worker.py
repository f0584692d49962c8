"""``malsori worker``: a process that only runs durable jobs, from the database every replica
shares, with its own model manager (each job runs with the model it named, loaded on first use,
behind that model's engine, at ``JOB`` priority as in the server) and a small Prometheus
endpoint. No HTTP API: clients reach the jobs through any ``malsori serve`` replica.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from prometheus_client import start_http_server

from ..model import Model
from .metrics import Metrics
from .services import job_loop, start_runner
from .settings import ServerSettings

logger = logging.getLogger(__name__)


def run_worker(
    settings: ServerSettings, stop: threading.Event, *, model: Model | None = None
) -> None:
    """Run jobs until ``stop`` is set; then hand back the jobs still held and return."""
    metrics = Metrics()
    concurrency = settings.worker.concurrency
    runner = start_runner(
        settings,
        metrics,
        model=model,
        pool_size=concurrency,
        queue_size=concurrency,
        runs_jobs=True,
        uploads=False,
    )
    server: Any = None
    try:
        if settings.worker.metrics_port:
            server, _ = start_http_server(
                settings.worker.metrics_port,
                settings.worker.metrics_host,
                registry=metrics.registry,
            )
        loop = job_loop(runner.jobs)
        runner.jobs.recover()
        loop.start()
        logger.info(
            "worker %s: up to %d job(s) at once with %s; metrics on %s:%d",
            runner.jobs.leases.owner,
            concurrency,
            ", ".join(runner.models.served),
            settings.worker.metrics_host,
            settings.worker.metrics_port,
        )
        stop.wait()
        logger.info("worker stopping: handing back the jobs it holds")
        loop.stop()
    finally:
        runner.stop()
        if server is not None:
            server.shutdown()
