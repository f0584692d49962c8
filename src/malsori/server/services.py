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
from ..model import Model, default_threads, load_model, resolve_device
from ..registry import resolve
from .db import Database, make_private_dir, utcnow
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


class Periodic:
    """Calls ``fn`` every ``interval`` seconds in a daemon thread (the jobs' retention sweep;
    the job loop: leases renewed, waiting jobs taken)."""

    def __init__(self, name: str, fn: Callable[[], object], interval: float):
        self.fn = fn
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"malsori-{name}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.fn()
            except Exception:  # a database hiccup must not end the loop
                logger.exception("%s failed", self._thread.name)

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)


def job_loop(jobs: JobService) -> Periodic:
    """The job workers' loop: every ``poll_interval_s`` (at least every third of the lease),
    renew leases and take waiting jobs."""
    settings = jobs.settings
    return Periodic("jobs", jobs.poll, min(settings.poll_interval_s, settings.lease_s / 3))


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
    loops: list[Periodic]
    """The retention sweep, and the job loop when this process runs jobs."""
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
        for loop in self.loops:
            loop.stop()
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


@dataclass
class JobRunner:
    """What runs jobs (and, in the server, requests): the database, the served models (each
    behind its engine), the worker pool and the job service. Shared by ``malsori serve`` and
    ``malsori worker``."""

    db: Database
    spool: UploadSpool
    pool: WorkerPool
    models: ModelManager
    transcriber: Transcriber
    jobs: JobService

    def stop(self) -> None:
        self.pool.stop()
        self.models.close()
        self.jobs.close()
        self.db.close()


def start_runner(
    settings: ServerSettings,
    metrics: Metrics,
    *,
    model: Model | None,
    pool_size: int,
    queue_size: int,
    runs_jobs: bool,
    uploads: bool = True,
    clock: Clock | None = None,
) -> JobRunner:
    """Open the database and the shared folders (the upload spool only with ``uploads``: a
    worker takes none), load the default model (or adopt ``model``; the others load on first
    use), start ``pool_size`` worker threads."""
    make_private_dir(settings.data_dir)
    spool = UploadSpool(settings.data_dir, settings.spool_dir)
    if uploads:
        spool.prepare()
    else:
        make_private_dir(spool.audio_dir)
    db = Database(settings.sqlalchemy_url())
    if model is None:
        models = model_manager(settings, metrics)
        if settings.model.preload:
            models.load(None)
    else:  # the given model is the default one, whatever settings.model.name says
        served = served_models(settings.model.others, {model.name: model.info.path})
        models = model_manager(settings, metrics, served)
        models.adopt(model)
    models.start()
    pool = WorkerPool(pool_size, queue_size)
    metrics.watch_queue(lambda: pool.waiting, lambda: pool.active)
    device = models.status(models.default).device or resolve_device(settings.model.device)
    transcriber = Transcriber(models, pool, metrics, settings.decode, device=device)
    jobs = JobService(
        db, spool, transcriber, pool, settings.jobs, clock or utcnow, runs_jobs=runs_jobs
    )
    metrics.watch_jobs(jobs.waiting)
    metrics.watch_disk(settings.data_dir)
    pool.start()
    return JobRunner(db, spool, pool, models, transcriber, jobs)


def start_services(
    settings: ServerSettings,
    metrics: Metrics,
    *,
    model: Model | None = None,
    clock: Clock | None = None,
) -> Services:
    """Open the database, load the model (unless given), start the workers, take jobs."""
    limits = settings.limits
    # With the engine, a worker thread only waits for its request's transcript.
    runner = start_runner(
        settings,
        metrics,
        model=model,
        pool_size=settings.engine.max_active if settings.engine.batching else settings.workers,
        queue_size=limits.queue_size,
        runs_jobs=settings.job_workers,
        clock=clock,
    )
    db, pool, jobs = runner.db, runner.pool, runner.jobs
    keys = KeyStore(db)
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
    loops = [Periodic("sweeper", jobs.cleanup, settings.jobs.cleanup_interval_s)]
    if settings.job_workers:
        jobs.recover()
        loops.append(job_loop(jobs))
    else:
        logger.info("API only: jobs are run by `malsori worker` processes")
    for loop in loops:
        loop.start()
    if settings.auth.enabled and not any(k.active for k in keys.list()):
        logger.warning(
            "authentication is on and no API key exists: create one with "
            "`malsori keys create NAME` (or run with --no-auth for local use)"
        )
    checker = UploadChecker(limits, per_key=per_key)
    return Services(
        settings,
        metrics,
        db,
        keys,
        runner.spool,
        checker,
        quotas,
        pool,
        runner.models,
        runner.transcriber,
        jobs,
        loops,
    )
