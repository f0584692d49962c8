"""Job leases (``malsori.server.leases``) on a real database: SQLite here, PostgreSQL too when
``MALSORI_TEST_POSTGRES_URL`` names a throwaway one. A clock is injected for expiry."""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

pytest.importorskip("sqlalchemy", reason="the server extra is not installed")

from sqlalchemy import func, select, update

from malsori.server.db import Base, Database, JobRow
from malsori.server.leases import JobLeases

PG_URL = os.environ.get("MALSORI_TEST_POSTGRES_URL")
T0 = datetime(2026, 1, 1, 12, 0, 0)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'jobs.db'}"
    else:
        if not PG_URL:
            pytest.skip("MALSORI_TEST_POSTGRES_URL is not set")
        pytest.importorskip("psycopg", reason="PostgreSQL tests need psycopg[binary]")
        url = PG_URL
    database = Database(url)
    Base.metadata.drop_all(database.engine)
    Base.metadata.create_all(database.engine)
    yield database
    Base.metadata.drop_all(database.engine)
    database.close()


def add_jobs(db: Database, n: int) -> list[str]:
    ids = [f"job_{i:03d}" for i in range(n)]
    with db.session() as s:
        for i, job_id in enumerate(ids):
            s.add(
                JobRow(id=job_id, owner="k", status="queued", task="transcribe", model="base",
                       options_json="{}", filename="a.wav", audio_bytes=1, duration=1.0,
                       created_at=T0 + timedelta(seconds=i))
            )  # fmt: skip
    return ids


def leases(db: Database, owner: str, clock: Clock, max_attempts: int = 3) -> JobLeases:
    return JobLeases(db, owner, lease_s=30, max_attempts=max_attempts, clock=clock)


def finish(db: Database, lease: JobLeases, job_id: str) -> bool:
    """Write a result as the service does: only under the writer's own lease."""
    with db.session() as s:
        done = s.execute(update(JobRow).where(lease.held(job_id)).values(status="completed"))
        return bool(done.rowcount == 1)  # type: ignore[attr-defined]


def test_claims_take_the_oldest_jobs_and_never_the_same_one(db: Database) -> None:
    ids = add_jobs(db, 5)
    clock = Clock()
    a, b = leases(db, "a", clock), leases(db, "b", clock)
    first = a.claim_next(2)
    second = b.claim_next(2)
    assert [r.id for r in first] == ids[:2] and [r.id for r in second] == ids[2:4]
    assert all(r.lease_owner == "a" and r.attempts == 1 for r in first)
    assert first[0].lease_expires_at == T0 + timedelta(seconds=30)
    assert a.claim(ids[2]) is None  # b holds it
    assert [r.id for r in a.claim_next(5)] == ids[4:]
    assert a.claim_next(5) == []


def test_an_expired_lease_is_taken_over_and_the_old_owner_cannot_write(db: Database) -> None:
    (job_id,) = add_jobs(db, 1)
    clock = Clock()
    a, b = leases(db, "a", clock), leases(db, "b", clock)
    assert a.claim(job_id) is not None
    clock.advance(20)
    assert a.renew() == {job_id}  # now held until T0 + 50 s
    clock.advance(25)
    assert b.claim_next(1) == []  # past the first expiry, not the renewed one
    clock.advance(10)  # a stopped renewing: its lease has run out
    taken = b.claim_next(1)
    assert [r.id for r in taken] == [job_id] and taken[0].attempts == 2
    assert a.renew() == set()
    assert not finish(db, a, job_id)  # a's late result is refused ...
    assert finish(db, b, job_id)  # ... the holder's is written, once
    assert not finish(db, b, job_id)


def test_release_puts_the_job_back_without_counting_the_run(db: Database) -> None:
    (job_id,) = add_jobs(db, 1)
    clock = Clock()
    a, b = leases(db, "a", clock), leases(db, "b", clock)
    a.claim(job_id)
    assert b.release(job_id) == 0  # not b's to give back
    assert a.release() == 1
    with db.session() as s:
        row = s.get(JobRow, job_id)
        assert row is not None
        assert (row.status, row.attempts, row.lease_owner) == ("queued", 0, None)
    assert b.claim(job_id) is not None


def test_a_job_whose_holder_died_every_time_is_failed(db: Database) -> None:
    (job_id,) = add_jobs(db, 1)
    clock = Clock()
    for attempt in range(2):
        assert leases(db, f"w{attempt}", clock, max_attempts=2).claim_next(1)
        clock.advance(31)
    last = leases(db, "w2", clock, max_attempts=2)
    assert last.claim_next(1) == []
    assert last.fail_exhausted() == 1
    with db.session() as s:
        row = s.get(JobRow, job_id)
        assert row is not None and (row.status, row.error_code) == ("failed", "interrupted")


def test_concurrent_claims_take_each_job_exactly_once(db: Database) -> None:
    ids = add_jobs(db, 60)
    clock = Clock()
    taken: dict[str, list[str]] = {}

    start = threading.Barrier(6)

    def worker(name: str) -> None:
        lease = leases(db, name, clock)
        start.wait()
        while rows := lease.claim_next(2):
            taken.setdefault(name, []).extend(r.id for r in rows)
            time.sleep(0.01)  # "runs" them, letting the others claim meanwhile

    threads = [threading.Thread(target=worker, args=(f"w{i}",)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    claimed = [job_id for jobs in taken.values() for job_id in jobs]
    assert sorted(claimed) == ids  # every job once, none twice
    with db.session() as s:
        owners = s.scalar(select(func.count(func.distinct(JobRow.lease_owner))))
    assert owners == len(taken)
    if db.engine.dialect.name == "postgresql":  # SKIP LOCKED: nobody waits, all get work
        assert len(taken) > 1  # (SQLite's lock has no fairness: one thread may win every time)


def test_an_older_database_gets_the_lease_columns(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as conn:  # the jobs table as malsori made it before leases
        conn.execute(
            "CREATE TABLE jobs (id VARCHAR(40) PRIMARY KEY, owner VARCHAR(32), status VARCHAR(16),"
            " task VARCHAR(16), model VARCHAR(200), options_json TEXT, filename VARCHAR(255),"
            " audio_bytes INTEGER, audio_deleted BOOLEAN, duration FLOAT, progress FLOAT,"
            " attempts INTEGER, error_code VARCHAR(64), error_message TEXT, callback_url TEXT,"
            " callback_sent_at DATETIME, result_json TEXT, processing_seconds FLOAT,"
            " request_id VARCHAR(64), created_at DATETIME, started_at DATETIME,"
            " finished_at DATETIME)"
        )
        conn.execute(
            "INSERT INTO jobs VALUES ('job_old', 'k', 'running', 'transcribe', 'base', '{}',"
            " 'a.wav', 1, 0, 1.0, 0.0, 1, NULL, NULL, NULL, NULL, NULL, NULL, NULL,"
            " '2026-01-01 12:00:00.000000', NULL, NULL)"
        )
    db = Database(f"sqlite:///{path}")
    try:
        # a job left running by an old server holds no lease: it can be taken at once
        rows = leases(db, "new", Clock()).claim_next(1)
        assert [(r.id, r.attempts, r.lease_owner) for r in rows] == [("job_old", 2, "new")]
    finally:
        db.close()
