"""Durable jobs: stored in the database with their audio on disk, run by the worker pool.

A job is accepted only when a queue slot is free and its audio decodes; then its row is committed
(``queued``) before the client hears back, so an accepted job survives a crash. A process with job
workers runs the jobs it accepted and, every ``poll_interval_s``, claims more from the database
while it has room: jobs accepted by API-only replicas, and jobs whose process died (their lease
ran out). Claims, renewals and the owner check on every write are in ``leases.py``; a clean stop
hands running jobs back to the queue. A job that keeps killing its process is failed after
``max_attempts`` runs. Finished audio is deleted after a retention period; results stay until
their own retention (if any) or until the job is deleted. Completion calls ``callback_url`` once.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import and_, delete, func, or_, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import defer

from .. import __version__
from ..diarize.options import DiarizeOptions
from ..engine import Priority
from ..errors import MalsoriError
from ..options import TranscribeOptions
from ..results import Segment, Transcript
from .db import Database, JobRow, utcnow
from .exceptions import (
    InvalidParameterError,
    JobNotFinishedError,
    JobNotFoundError,
    TranscriptionCancelled,
)
from .leases import JobLeases, process_name
from .logs import redact
from .netguard import CallbackGuard, CallbackRefusedError
from .scheduler import Slot, WorkerPool, WorkItem
from .settings import JobSettings
from .transcriber import Transcriber
from .uploads import CheckedAudio, UploadSpool

DIARIZE_KEY = "diarize"  # the job's diarization, stored beside its TranscribeOptions
logger = logging.getLogger(__name__)

FINISHED = ("completed", "failed")
Clock = Callable[[], datetime]


def _epoch(t: datetime | None) -> int | None:
    return None if t is None else int((t - datetime(1970, 1, 1)).total_seconds())


@dataclass(frozen=True)
class JobView:
    """What a caller sees of a job."""

    row: JobRow

    def to_dict(self) -> dict[str, Any]:
        r = self.row
        queued_s = (r.started_at - r.created_at).total_seconds() if r.started_at else None
        rtf = (r.processing_seconds / r.duration) if r.processing_seconds and r.duration else None
        return {
            "id": r.id,
            "object": "job",
            "status": r.status,
            "progress": round(r.progress, 1),
            "task": r.task,
            "model": r.model,
            "filename": r.filename,
            "duration": round(r.duration, 3),
            "created_at": _epoch(r.created_at),
            "started_at": _epoch(r.started_at),
            "finished_at": _epoch(r.finished_at),
            "timings": {
                "queued_seconds": None if queued_s is None else round(queued_s, 3),
                "processing_seconds": None
                if r.processing_seconds is None
                else round(r.processing_seconds, 3),
                "audio_seconds": round(r.duration, 3),
                "rtf": None if rtf is None else round(rtf, 3),
            },
            "attempts": r.attempts,
            "callback_url": r.callback_url,
            "error": None
            if r.error_code is None
            else {"code": r.error_code, "message": r.error_message},
            "result_url": f"/v1/jobs/{r.id}/result" if r.status == "completed" else None,
        }


class JobService:
    """Submit, inspect, list, delete and run durable jobs."""

    def __init__(
        self,
        db: Database,
        spool: UploadSpool,
        transcriber: Transcriber,
        pool: WorkerPool,
        settings: JobSettings,
        clock: Clock = utcnow,
        *,
        runs_jobs: bool = True,
        owner: str | None = None,
    ):
        """``runs_jobs``: this process runs jobs (off: API only, jobs wait for workers);
        ``owner``: this process's name in the leases it takes (default: host, pid, random)."""
        self.db = db
        self.spool = spool
        self.transcriber = transcriber
        self.pool = pool
        self.settings = settings
        self.clock = clock
        self.runs_jobs = runs_jobs
        self.leases = JobLeases(
            db,
            owner or process_name(),
            lease_s=settings.lease_s,
            max_attempts=settings.max_attempts,
            clock=clock,
        )
        self._cancels: dict[str, threading.Event] = {}
        self._local: set[str] = set()  # jobs in this process's pool, waiting or running
        self._renewed = time.monotonic()  # when the leases were last renewed
        self._lock = threading.Lock()
        self._callbacks = ThreadPoolExecutor(max_workers=2, thread_name_prefix="malsori-callback")
        self.callback_guard = CallbackGuard(
            settings.callback_allow_hosts, settings.callback_allow_networks
        )

    # --- the caller's side ----------------------------------------------------------------------

    def submit(
        self,
        owner: str,
        audio: CheckedAudio,
        options: TranscribeOptions,
        *,
        slot: Slot,
        filename: str,
        callback_url: str | None,
        request_id: str,
        diarize: DiarizeOptions | None = None,
        model: str | None = None,
    ) -> JobView:
        """Store and queue a job for checked audio in the queue slot reserved for it, to run
        with ``model`` (None: the default one)."""
        job_id = "job_" + uuid.uuid4().hex
        stored = options.to_dict()
        if diarize is not None:  # kept with the options, known voices as embeddings
            stored[DIARIZE_KEY] = diarize.to_dict()
        row = JobRow(
            id=job_id,
            owner=owner,
            status="queued",
            task=options.task,
            model=self.transcriber.check_model(model),
            options_json=json.dumps(stored),
            filename=filename,
            audio_bytes=audio.size,
            duration=audio.duration,
            callback_url=callback_url,
            request_id=request_id,
            created_at=self.clock(),
        )
        path = self.spool.adopt(audio.path, job_id)
        try:
            with self.db.session() as s:
                s.add(row)
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        if self.runs_jobs:  # otherwise the slot goes unused: the job waits for a worker
            slot.submit(self._work_item(job_id, request_id))
        logger.info("job %s queued (%.1f s of audio)", job_id, audio.duration)
        return JobView(row)

    def _owned(self, s: Any, owner: str, job_id: str) -> JobRow:
        row = s.get(JobRow, job_id)
        if row is None or row.owner != owner:
            raise JobNotFoundError(f"no job {job_id!r}")
        return row

    def get(self, owner: str, job_id: str) -> JobView:
        with self.db.session() as s:
            return JobView(self._owned(s, owner, job_id))

    def list(
        self, owner: str, *, limit: int, status: str | None = None, after: str | None = None
    ) -> tuple[list[JobView], bool]:
        """The owner's jobs, newest first (``created_at``, then ``id``, both descending), starting
        after the job ``after`` when given; and whether more follow the ``limit`` returned.

        The order is total, so pages never skip or repeat a job (jobs made meanwhile appear on
        the first page, not in the middle). ``after`` must be one of the owner's jobs.
        """
        query = select(JobRow).where(JobRow.owner == owner)
        if status is not None:
            query = query.where(JobRow.status == status)
        with self.db.session() as s:
            if after is not None:
                cursor = s.execute(
                    select(JobRow.created_at, JobRow.id).where(
                        JobRow.id == after, JobRow.owner == owner
                    )
                ).first()
                if cursor is None:
                    raise InvalidParameterError(f"after: no job {after!r} to list after", "after")
                query = query.where(
                    or_(
                        JobRow.created_at < cursor.created_at,
                        and_(JobRow.created_at == cursor.created_at, JobRow.id < cursor.id),
                    )
                )
            query = (
                query.options(defer(JobRow.result_json), defer(JobRow.options_json))
                .order_by(JobRow.created_at.desc(), JobRow.id.desc())
                .limit(limit + 1)
            )
            rows = list(s.scalars(query).all())
        return [JobView(r) for r in rows[:limit]], len(rows) > limit

    def pending(self, owner: str) -> int:
        """How many of the owner's jobs are queued or running (for the per-key quota)."""
        query = (
            select(func.count())
            .select_from(JobRow)
            .where(JobRow.owner == owner, JobRow.status.in_(("queued", "running")))
        )
        with self.db.session() as s:
            return int(s.scalar(query) or 0)

    def waiting(self) -> int:
        """Jobs queued in the database, every replica's (for the metrics)."""
        query = select(func.count()).select_from(JobRow).where(JobRow.status == "queued")
        with self.db.session() as s:
            return int(s.scalar(query) or 0)

    def result(self, owner: str, job_id: str) -> Transcript:
        with self.db.session() as s:
            row = self._owned(s, owner, job_id)
            if row.status != "completed" or row.result_json is None:
                detail = f": {row.error_message}" if row.status == "failed" else ""
                raise JobNotFinishedError(f"job {job_id} is {row.status}{detail}")
            data = row.result_json
        return Transcript.from_dict(json.loads(data))

    def delete(self, owner: str, job_id: str) -> None:
        """Cancel the job if it is queued or running, and remove it with its audio and result."""
        with self.db.session() as s:
            row = self._owned(s, owner, job_id)
            s.delete(row)
        with self._lock:
            cancel = self._cancels.get(job_id)
        if cancel is not None:
            cancel.set()
        self.spool.job_audio(job_id).unlink(missing_ok=True)
        logger.info("job %s deleted", job_id)

    # --- the server's side ----------------------------------------------------------------------

    def recover(self) -> int:
        """After a (re)start: fail jobs that died in every attempt and take what fits in the pool
        (queued jobs, and running ones whose lease ran out); returns how many were taken."""
        if not self.runs_jobs:
            return 0
        self.leases.fail_exhausted()
        taken = self.adopt()
        if taken:
            logger.info("took %d job(s) waiting in the database", taken)
        return taken

    def adopt(self) -> int:
        """Claim as many waiting jobs as this process's pool has free workers for, and queue
        them here; returns how many."""
        with self._lock:
            free = self.pool.workers - len(self._local)
        rows = self.leases.claim_next(free)
        for row in rows:
            self.pool.submit(self._work_item(row.id, row.request_id or "-", row), force=True)
        return len(rows)

    def poll(self) -> None:
        """One round of the job loop: when a third of the lease has passed, renew this process's
        leases (stopping any run whose job was deleted or taken over) and fail exhausted jobs;
        then take waiting ones."""
        now = time.monotonic()
        if now - self._renewed >= self.settings.lease_s / 3:
            self._renewed = now
            with self._lock:
                running = set(self._cancels)  # claimed before this, so renew() sees them
            held = self.leases.renew()
            for job_id in running - held:
                with self._lock:
                    cancel = self._cancels.get(job_id)
                if cancel is not None and not cancel.is_set():
                    logger.warning("job %s: no longer held here (deleted or taken over)", job_id)
                    cancel.set()
            self.leases.fail_exhausted()  # a write: at the renewal pace, not every poll
        self.adopt()

    def _work_item(self, job_id: str, request_id: str, claimed: JobRow | None = None) -> WorkItem:
        with self._lock:
            self._local.add(job_id)

        def run() -> None:
            try:
                self.run(job_id, item.cancel, claimed)
            finally:
                with self._lock:
                    self._local.discard(job_id)

        item = WorkItem(run=run, name=job_id, request_id=request_id)
        return item

    def run(self, job_id: str, cancel: threading.Event, claimed: JobRow | None = None) -> None:
        """Run one job to its end (called in a worker thread); ``claimed``: its row when this
        process holds it already."""
        if cancel.is_set():  # the server is stopping: the job stays queued for the next start
            if claimed is not None:
                self.leases.release(job_id)
            return
        row = claimed or self.leases.claim(job_id)
        if row is None:
            return  # deleted, finished, or taken by another process
        with self._lock:
            self._cancels[job_id] = cancel
        stored = json.loads(row.options_json)
        diarize = stored.pop(DIARIZE_KEY, None)
        try:
            transcript = self.transcriber.run(
                self.spool.job_audio(job_id),
                TranscribeOptions.from_dict(stored),
                label=row.filename,
                cancel=cancel,
                model=row.model,
                on_segment=self._progress_writer(job_id, row.duration),
                priority=Priority.JOB,
                diarize=None if diarize is None else DiarizeOptions.from_dict(diarize),
            )
        except TranscriptionCancelled:
            self._interrupted(job_id)
            return
        except MalsoriError as e:
            self._finish(job_id, "failed", error=(type(e).__name__, str(e)))
        except Exception as e:
            logger.exception("job %s failed", job_id)
            self._finish(job_id, "failed", error=("InternalError", f"{type(e).__name__}: {e}"))
        else:
            self._finish(job_id, "completed", transcript=transcript)
        finally:
            with self._lock:
                self._cancels.pop(job_id, None)

    def _progress_writer(self, job_id: str, duration: float) -> Callable[[Segment], None]:
        last = [self.clock()]
        interval = timedelta(seconds=self.settings.progress_interval_s)

        def write(segment: Segment) -> None:
            now = self.clock()
            if now - last[0] < interval or duration <= 0:
                return
            last[0] = now
            progress = min(99.0, 100.0 * segment.end / duration)
            with self.db.session() as s:
                s.execute(update(JobRow).where(self.leases.held(job_id)).values(progress=progress))

        return write

    def _interrupted(self, job_id: str) -> None:
        """A cancelled run: deleted jobs are gone, a lost lease is another process's; on shutdown
        the job goes back to the queue."""
        if self.pool.stopping.is_set() and self.leases.release(job_id):
            logger.info("job %s interrupted by shutdown; it goes back to the queue", job_id)

    def _finish(
        self,
        job_id: str,
        status: str,
        *,
        transcript: Transcript | None = None,
        error: tuple[str, str] | None = None,
    ) -> None:
        now = self.clock()
        values: dict[str, Any] = {"status": status, "finished_at": now, "lease_expires_at": None}
        if transcript is not None:
            values.update(
                result_json=json.dumps(transcript.to_dict(), ensure_ascii=False),
                progress=100.0,
                processing_seconds=transcript.processing_time,
            )
        if error is not None:
            values.update(error_code=error[0], error_message=error[1])
        with self.db.session() as s:
            done = s.execute(update(JobRow).where(self.leases.held(job_id)).values(values))
            if done.rowcount != 1:  # type: ignore[attr-defined]
                logger.warning("job %s: not written (deleted, or its lease was lost)", job_id)
                return
            row = s.get(JobRow, job_id)
            callback = row.callback_url if row is not None else None
        self.transcriber.metrics.jobs_finished.labels(status).inc()
        logger.info("job %s %s", job_id, status)
        if self.settings.audio_retention_s == 0:
            self._delete_audio(job_id)
        if callback:
            self._callbacks.submit(self._call_back, job_id, callback)

    def _call_back(self, job_id: str, url: str) -> None:
        """POST the finished job to its callback URL, once (marked sent before the attempt)."""
        with self.db.session() as s:
            marked = s.execute(
                update(JobRow)
                .where(JobRow.id == job_id, JobRow.callback_sent_at.is_(None))
                .values(callback_sent_at=self.clock())
            )
            if marked.rowcount != 1:  # type: ignore[attr-defined]
                return
            row = s.get(JobRow, job_id)
            if row is None:
                return
            body = JobView(row).to_dict()
        try:
            status = self.callback_guard.post_json(
                url,
                body,
                timeout=self.settings.callback_timeout_s,
                headers={"User-Agent": f"malsori/{__version__}"},
            )
            logger.info("job %s callback answered %d", job_id, status)
        except CallbackRefusedError as e:
            logger.warning("job %s callback refused: %s", job_id, e)
        except httpx.HTTPError as e:
            logger.warning("job %s callback to %s failed: %s", job_id, redact(url), e)

    def _delete_audio(self, job_id: str) -> None:
        self.spool.job_audio(job_id).unlink(missing_ok=True)
        with self.db.session() as s:
            s.execute(update(JobRow).where(JobRow.id == job_id).values(audio_deleted=True))

    def cleanup(self) -> tuple[int, int]:
        """Apply retention: (audio files deleted, finished jobs deleted)."""
        now = self.clock()
        audio_before = now - timedelta(seconds=self.settings.audio_retention_s)
        with self.db.session() as s:
            stale = list(
                s.scalars(
                    select(JobRow.id).where(
                        JobRow.status.in_(FINISHED),
                        JobRow.audio_deleted.is_(False),
                        JobRow.finished_at <= audio_before,
                    )
                ).all()
            )
        for job_id in stale:
            self._delete_audio(job_id)
        removed: list[str] = []
        if self.settings.result_retention_s is not None:
            before = now - timedelta(seconds=self.settings.result_retention_s)
            with self.db.session() as s:
                removed = list(
                    s.scalars(
                        select(JobRow.id).where(
                            JobRow.status.in_(FINISHED), JobRow.finished_at <= before
                        )
                    ).all()
                )
                if removed:
                    s.execute(delete(JobRow).where(JobRow.id.in_(removed)))
            for job_id in removed:
                self.spool.job_audio(job_id).unlink(missing_ok=True)
        if stale or removed:
            logger.info("retention: deleted %d audio file(s), %d job(s)", len(stale), len(removed))
        return len(stale), len(removed)

    def close(self) -> None:
        """After the pool stopped: hand back any job still held, finish the callbacks."""
        if self.runs_jobs:
            try:
                if released := self.leases.release():
                    logger.info("handed %d job(s) back to the queue", released)
            except SQLAlchemyError as e:  # their leases run out instead
                logger.warning("could not hand back running jobs: %s", type(e).__name__)
        self._callbacks.shutdown(wait=True, cancel_futures=False)
