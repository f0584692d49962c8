"""The server's tables (API keys and jobs) and the SQLAlchemy engine behind them.

SQLite in the data folder by default, with WAL so the request threads and the workers read while
one writes; any SQLAlchemy URL otherwise (``postgresql+psycopg://...``). Tables are created when
missing. Times are stored as naive UTC.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime, Float, Integer, String, Text, create_engine, event, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

from .exceptions import NotReadyError


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
            self.engine: Engine = create_engine(
                url, connect_args={"check_same_thread": False, "timeout": 30}
            )
            event.listen(self.engine, "connect", _sqlite_pragmas)
        else:
            self.engine = create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        Base.metadata.create_all(self.engine)

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
