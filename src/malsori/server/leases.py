"""Who runs which job, and until when: leases on the jobs table, shared by every process.

Any number of processes (``malsori serve`` replicas with job workers, ``malsori worker``) run
jobs from one database. A process takes a job by writing its own name and an expiry into the
job's row (``lease_owner``, ``lease_expires_at``) in one atomic statement: on PostgreSQL the
candidates are locked with ``SELECT ... FOR UPDATE SKIP LOCKED``, so two workers never wait on
each other nor take the same row; on SQLite (one machine) an ``UPDATE ... WHERE`` that still
finds the job claimable does the same. The owner renews its leases while it works and hands
them back on a clean stop. A job whose owner died is claimable again once its lease expires;
after ``max_attempts`` runs it is failed instead. A result is written only under the writer's
own lease, in the same statement that ends the job, so a job completes once.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, or_, select, update
from sqlalchemy.sql import ColumnElement

from .db import Database, JobRow

logger = logging.getLogger(__name__)

Clock = Callable[[], datetime]


def process_name() -> str:
    """This process's name in ``lease_owner``: host, process id and a random part (a restarted
    process with a reused pid is still someone else)."""
    return f"{socket.gethostname()[:32]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class JobLeases:
    """Claims, renewals and releases of job leases for one process (``owner``)."""

    def __init__(
        self, db: Database, owner: str, *, lease_s: float, max_attempts: int, clock: Clock
    ):
        self.db = db
        self.owner = owner
        self.lease = timedelta(seconds=lease_s)
        self.max_attempts = max_attempts
        self.clock = clock

    def _expired(self, now: datetime) -> ColumnElement[bool]:
        """A running job nobody holds: its lease ran out, or it has none (a server from before
        leases, or a row edited by hand)."""
        return and_(
            JobRow.status == "running",
            or_(JobRow.lease_expires_at.is_(None), JobRow.lease_expires_at < now),
        )

    def _claimable(self, now: datetime) -> ColumnElement[bool]:
        return or_(
            JobRow.status == "queued",
            and_(self._expired(now), JobRow.attempts < self.max_attempts),
        )

    def _claim_values(self, now: datetime) -> dict[str, Any]:
        return {
            "status": "running",
            "started_at": now,
            "attempts": JobRow.attempts + 1,
            "progress": 0.0,
            "lease_owner": self.owner,
            "lease_expires_at": now + self.lease,
        }

    def fail_exhausted(self) -> int:
        """Fail the jobs whose holder died in each of their ``max_attempts`` runs."""
        now = self.clock()
        with self.db.session() as s:
            done = s.execute(
                update(JobRow)
                .where(self._expired(now), JobRow.attempts >= self.max_attempts)
                .values(
                    status="failed",
                    error_code="interrupted",
                    error_message=f"the server stopped during each of {self.max_attempts} attempts",
                    finished_at=now,
                    lease_owner=None,
                    lease_expires_at=None,
                )
            )
            count = int(done.rowcount)  # type: ignore[attr-defined]
        if count:
            logger.warning("failed %d job(s) interrupted in every attempt", count)
        return count

    def claim(self, job_id: str) -> JobRow | None:
        """Take one job if it is still claimable; its row, or None (gone, taken, finished)."""
        now = self.clock()
        with self.db.session() as s:
            claimed = s.execute(
                update(JobRow)
                .where(JobRow.id == job_id, self._claimable(now))
                .values(self._claim_values(now))
            )
            if claimed.rowcount != 1:  # type: ignore[attr-defined]
                return None
            row: JobRow | None = s.get(JobRow, job_id)
            return row

    def claim_next(self, limit: int) -> list[JobRow]:
        """Take up to ``limit`` claimable jobs, oldest first."""
        if limit <= 0:
            return []
        now = self.clock()
        oldest = (
            select(JobRow.id)
            .where(self._claimable(now))
            .order_by(JobRow.created_at, JobRow.id)
            .limit(limit)
        )
        if self.db.engine.dialect.name == "postgresql":
            with self.db.session() as s:
                ids = list(s.scalars(oldest.with_for_update(skip_locked=True)).all())
                if not ids:
                    return []
                s.execute(update(JobRow).where(JobRow.id.in_(ids)).values(self._claim_values(now)))
                rows = list(s.scalars(select(JobRow).where(JobRow.id.in_(ids))).all())
            return sorted(rows, key=lambda r: (r.created_at, r.id))
        with self.db.session() as s:  # SQLite: writes are serialised; claim one by one
            ids = list(s.scalars(oldest).all())
        return [row for job_id in ids if (row := self.claim(job_id)) is not None]

    def renew(self) -> set[str]:
        """Extend every lease this process holds; the ids of the jobs it still holds."""
        now = self.clock()
        mine = and_(JobRow.lease_owner == self.owner, JobRow.status == "running")
        with self.db.session() as s:
            s.execute(update(JobRow).where(mine).values(lease_expires_at=now + self.lease))
            return set(s.scalars(select(JobRow.id).where(mine)).all())

    def held(self, job_id: str) -> ColumnElement[bool]:
        """The condition for writing to a job: it is running under this process's lease."""
        return and_(
            JobRow.id == job_id, JobRow.status == "running", JobRow.lease_owner == self.owner
        )

    def release(self, job_id: str | None = None) -> int:
        """Hand a job (or every job) this process holds back to the queue, for a clean stop: the
        run does not count as an attempt."""
        condition = (
            self.held(job_id)
            if job_id is not None
            else and_(JobRow.lease_owner == self.owner, JobRow.status == "running")
        )
        with self.db.session() as s:
            done = s.execute(
                update(JobRow)
                .where(condition)
                .values(
                    status="queued",
                    progress=0.0,
                    attempts=JobRow.attempts - 1,
                    lease_owner=None,
                    lease_expires_at=None,
                )
            )
            return int(done.rowcount)  # type: ignore[attr-defined]
