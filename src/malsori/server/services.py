"""The server's parts, built once at startup and stopped at shutdown. No HTTP here."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from ..engine import Engine
from ..errors import InvalidOptionError
from ..model import Model, default_threads, load_model
from ..registry import resolve
from .db import Database, make_private_dir
from .jobs import Clock, JobService
from .keys import KeyStore
from .metrics import Metrics
from .models import ModelManager
from .quotas import KeyCounter, Quotas
from .scheduler import WorkerPool
from .settings import ServerSettings
from .transcriber import Transcriber
from .uploads import UploadChecker, UploadSpool

logger = logging.getLogger(__name__)

T = TypeVar("T")
CONTROL_THREADS = 4  # short database calls only; more would just wait on the database


class Sweeper:
    """Runs the jobs' retention cleanup every ``interval`` seconds in a daemon thread."""

    def __init__(self, jobs: JobService, interval: float):
        self.jobs = jobs
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="malsori-sweeper", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.jobs.cleanup()
            except Exception:  # a database hiccup must not end the sweeper
                logger.exception("retention cleanup failed")

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


@dataclass
class Services:
    settings: ServerSettings
    metrics: Metrics
    db: Database
    keys: KeyStore
    spool: UploadSpool
    checker: UploadChecker
    quotas: Quotas
    pool: WorkerPool
    models: ModelManager
    transcriber: Transcriber
    jobs: JobService
    sweeper: Sweeper
    started_at: int = field(default_factory=lambda: int(time.time()))  # Unix time
    control: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(
            max_workers=CONTROL_THREADS, thread_name_prefix="malsori-control"
        )
    )
    """Threads for short database calls only (key lookups, readiness, quota counts): never
    behind decoding uploads or the request handlers' shared pool."""

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` on the control threads: for short database calls."""
        return await asyncio.wrap_future(self.control.submit(fn, *args))

    def stop(self) -> None:
        """Stop taking work, interrupt running work (jobs go back to the queue), close."""
        self.sweeper.stop()
        self.checker.stop()
        self.pool.stop()
        self.models.close()
        self.jobs.close()
        self.control.shutdown(wait=False, cancel_futures=True)
        self.db.close()


def load_served_model(settings: ServerSettings, name: str | None = None) -> Model:
    """Load ``name`` (default: ``settings.model.name``) with one CTranslate2 worker per server
    worker (with the engine on a CPU and nothing set: two lanes of half the cores, as
    ``malsori batch``)."""
    m = settings.model
    name = name or m.name
    if settings.engine.batching and settings.workers == 1 and m.threads == 0:
        from ..batch.runner import model_layout

        workers, threads = model_layout(m.device, 0)
        return load_model(
            name, device=m.device, compute_type=m.compute_type, threads=threads, workers=workers
        )
    threads = m.threads or max(1, default_threads() // settings.workers)
    return load_model(
        name,
        device=m.device,
        compute_type=m.compute_type,
        threads=threads,
        workers=settings.workers,
    )


def served_models(specs: list[str], out: dict[str, str] | None = None) -> dict[str, str]:
    """Each served model's id (a folder's is its name) and what to load, the default first.
    Every one must be installed: a missing one stops the server at startup, not a request."""
    out = dict(out or {})
    paths = {mid: str(resolve(spec, download=False).path) for mid, spec in out.items()}
    for spec in specs:
        found = resolve(spec, download=False)
        if found.name in out:
            if paths[found.name] == str(found.path):
                continue  # the same model named twice
            raise InvalidOptionError(f"two served models share the id {found.name!r}: rename one")
        out[found.name] = spec
        paths[found.name] = str(found.path)
    return out


def model_manager(
    settings: ServerSettings, metrics: Metrics, models: dict[str, str] | None = None
) -> ModelManager:
    """The served models, each with its own engine once loaded (as ``settings.engine`` says)."""
    m = settings.model

    def make_engine(model: Model) -> Engine | None:
        if not settings.engine.batching:
            return None
        engine = Engine(
            model,
            batch_size=settings.engine.batch_size,
            prepare_workers=settings.engine.prepare_workers,
        )
        engine.stats.observers.append(metrics.observe_engine)
        return engine

    manager = ModelManager(
        models if models is not None else served_models([m.name, *m.others]),
        aliases=m.aliases,
        load=lambda spec: load_served_model(settings, spec),
        make_engine=make_engine,
        metrics=metrics,
        max_loaded=m.max_loaded,
        idle_ttl_s=m.idle_ttl_s,
        load_wait_s=m.load_wait_s,
    )
    metrics.watch_models(list(manager.served))
    return manager


def start_services(
    settings: ServerSettings,
    metrics: Metrics,
    *,
    model: Model | None = None,
    clock: Clock | None = None,
) -> Services:
    """Open the database, load the default model (or adopt ``model``), start the workers,
    requeue jobs."""
    make_private_dir(settings.data_dir)
    spool = UploadSpool(settings.data_dir)
    spool.prepare()
    db = Database(settings.sqlalchemy_url())
    keys = KeyStore(db)
    if model is None:
        models = model_manager(settings, metrics)
        if settings.model.preload:
            models.load(None)
    else:  # the given model is the default one, whatever settings.model.name says
        served = served_models(settings.model.others, {model.name: model.info.path})
        models = model_manager(settings, metrics, served)
        models.adopt(model)
    models.start()
    limits = settings.limits
    # With the engine, a worker thread only waits for its request's transcript.
    workers = settings.engine.max_active if settings.engine.batching else settings.workers
    pool = WorkerPool(workers, limits.queue_size)
    per_key = settings.auth.enabled  # without keys there is one caller: no per-key quotas
    quotas = Quotas(
        requests=KeyCounter(
            limits.max_concurrent_requests_per_key if per_key else None,
            "synchronous requests",
            pool.retry_after,
        ),
        jobs=KeyCounter(
            limits.max_queued_jobs_per_key if per_key else None, "queued jobs", pool.retry_after
        ),
    )
    metrics.watch_queue(lambda: pool.waiting, lambda: pool.active)
    transcriber = Transcriber(models, pool, metrics, settings.decode)
    extra = {"clock": clock} if clock is not None else {}
    jobs = JobService(db, spool, transcriber, pool, settings.jobs, **extra)
    sweeper = Sweeper(jobs, settings.jobs.cleanup_interval_s)
    pool.start()
    jobs.recover()
    sweeper.start()
    if settings.auth.enabled and not any(k.active for k in keys.list()):
        logger.warning(
            "authentication is on and no API key exists: create one with "
            "`malsori keys create NAME` (or run with --no-auth for local use)"
        )
    checker = UploadChecker(limits, per_key=per_key)
    return Services(
        settings, metrics, db, keys, spool, checker, quotas, pool, models, transcriber, jobs,
        sweeper,
    )  # fmt: skip
