"""The server's tables (API keys and jobs) and the SQLAlchemy engine behind them.

SQLite in the data folder by default, with WAL so the request threads and the workers read while
one writes; any SQLAlchemy URL otherwise (``postgresql+psycopg://...``). Tables are created when
missing. Times are stored as naive UTC.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    DateTime,
    Float,
    Integer,
    String,
    Text,
    create_engine,
    event,
    inspect,
    text,
)
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError, SQLAlchemyError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

from .exceptions import NotReadyError
from .logs import redact

logger = logging.getLogger(__name__)

PRIVATE_DIR_MODE = 0o700  # the data folder and its subfolders: the server's user only
PRIVATE_FILE_MODE = 0o600  # the database, job audio and spool files


def make_private_dir(path: Path) -> None:
    """Create ``path`` (and its parents) if missing and make it 0700: job audio, transcripts and
    key hashes are nobody else's to read."""
    path.mkdir(mode=PRIVATE_DIR_MODE, parents=True, exist_ok=True)
    _chmod(path, PRIVATE_DIR_MODE)


def _chmod(path: Path, mode: int) -> None:
    try:
        os.chmod(path, mode)
    except PermissionError:  # not ours (a folder the operator made): say so, go on
        logger.warning("cannot make %s private (mode %o): not owned by this user", path, mode)


def _private_sqlite_file(url: str) -> None:
    """Create a SQLite database file 0600 before SQLite does (SQLite gives its -wal and -shm
    files the database's mode); an existing one is made 0600 too."""
    database = make_url(url).database
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    path = Path(database)
    os.close(os.open(path, os.O_CREAT | os.O_WRONLY, PRIVATE_FILE_MODE))
    for file in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        if file.exists():
            _chmod(file, PRIVATE_FILE_MODE)


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


class Base(DeclarativeBase):
    pass


class ApiKeyRow(Base):
    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    prefix: Mapped[str] = mapped_column(String(16))  # start of the secret, to recognise it
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True, index=True)  # SHA-256 hex
    created_at: Mapped[datetime] = mapped_column(DateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime, default=None)


class JobRow(Base):
    __tablename__ = "jobs"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    owner: Mapped[str] = mapped_column(String(32), index=True)  # API key id, or "local"
    status: Mapped[str] = mapped_column(String(16), index=True)
    task: Mapped[str] = mapped_column(String(16))
    model: Mapped[str] = mapped_column(String(200))
    options_json: Mapped[str] = mapped_column(Text)  # TranscribeOptions.to_dict()
    filename: Mapped[str] = mapped_column(String(255))  # client's name, for display only
    audio_bytes: Mapped[int] = mapped_column(Integer)
    audio_deleted: Mapped[bool] = mapped_column(default=False)
    duration: Mapped[float] = mapped_column(Float)  # seconds, measured by decoding at upload
    progress: Mapped[float] = mapped_column(Float, default=0.0)  # percent
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error_code: Mapped[str | None] = mapped_column(String(64), default=None)
    error_message: Mapped[str | None] = mapped_column(Text, default=None)
    callback_url: Mapped[str | None] = mapped_column(Text, default=None)
    callback_sent_at: Mapped[datetime | None] = mapped_column(DateTime, default=None)
    result_json: Mapped[str | None] = mapped_column(Text, default=None)  # Transcript.to_dict()
    processing_seconds: Mapped[float | None] = mapped_column(Float, default=None)
    request_id: Mapped[str | None] = mapped_column(String(64), default=None)
    created_at: Mapped[datetime] = mapped_column(DateTime, index=True)
    started_at: Mapped[datetime | None] = mapped_column(DateTime, default=None)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime, default=None)
    lease_owner: Mapped[str | None] = mapped_column(String(80), default=None)  # process running it
    lease_expires_at: Mapped[datetime | None] = mapped_column(DateTime, default=None)


# Job columns added after the first release, with their SQL types: ``Database`` adds them to an
# older database (all nullable, so old rows need no value).
ADDED_JOB_COLUMNS = {"lease_owner": "VARCHAR(80)", "lease_expires_at": "TIMESTAMP"}


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


class Database:
    """An engine, a session factory and the tables, for one database URL."""

    def __init__(self, url: str):
        self.url = url
        if url.startswith("sqlite"):
            _private_sqlite_file(url)
            self.engine: Engine = create_engine(
                url, connect_args={"check_same_thread": False, "timeout": 30}
            )
            event.listen(self.engine, "connect", _sqlite_pragmas)
        else:
            self.engine = create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        try:
            self._create_schema()
        except OperationalError as e:
            first = str(e.orig or e).strip().splitlines()[0]
            raise NotReadyError(f"database unreachable: {redact(first)}") from e
        except (IntegrityError, ProgrammingError):  # another process made a table just now
            logger.info("the schema changed while it was being created; checking it again")
            self._create_schema()

    def _create_schema(self) -> None:
        Base.metadata.create_all(self.engine)
        self._add_missing_columns()

    def _add_missing_columns(self) -> None:
        """Bring a database made by an older malsori up to date (``ADDED_JOB_COLUMNS``)."""
        present = {c["name"] for c in inspect(self.engine).get_columns(JobRow.__tablename__)}
        missing = {k: v for k, v in ADDED_JOB_COLUMNS.items() if k not in present}
        if not missing:
            return
        if_missing = "IF NOT EXISTS " if self.engine.dialect.name == "postgresql" else ""
        with self.engine.begin() as conn:
            for name, sql_type in missing.items():
                conn.execute(text(f"ALTER TABLE jobs ADD COLUMN {if_missing}{name} {sql_type}"))
        logger.info("added column(s) %s to the jobs table", ", ".join(missing))

    @contextlib.contextmanager
    def session(self) -> Iterator[Session]:
        """A session that commits when the block ends without an exception."""
        with self._sessions() as session, session.begin():
            yield session

    def ping(self) -> None:
        """Raise NotReadyError unless the database answers a query."""
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except SQLAlchemyError as e:
            raise NotReadyError(f"database unreachable: {type(e).__name__}") from e

    def close(self) -> None:
        self.engine.dispose()
