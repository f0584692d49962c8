"""API keys: made once, shown once, stored only as a SHA-256 hash.

A key is ``msk-`` plus 32 random bytes (URL-safe base64). Keys carry 256 bits of entropy, so a
plain SHA-256 is enough to store them (a slow password hash protects guessable secrets; these are
not guessable) and lets a request find its key with one indexed lookup.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from .db import ApiKeyRow, Database, utcnow
from .exceptions import AuthenticationError, KeyNotFoundError

KEY_PREFIX = "msk-"
LOCAL_OWNER = "local"  # owner of every job when authentication is off


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class ApiKey:
    """A key as listed: never the secret itself."""

    id: str
    name: str
    prefix: str
    created_at: datetime
    revoked_at: datetime | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    @classmethod
    def from_row(cls, row: ApiKeyRow) -> ApiKey:
        return cls(row.id, row.name, row.prefix, row.created_at, row.revoked_at)


class KeyStore:
    """Create, list, revoke and check API keys."""

    def __init__(self, db: Database):
        self.db = db

    def create(self, name: str) -> tuple[ApiKey, str]:
        """A new key and its secret (the only time the secret is available)."""
        secret = KEY_PREFIX + secrets.token_urlsafe(32)
        row = ApiKeyRow(
            id="key_" + secrets.token_hex(6),
            name=name.strip() or "unnamed",
            prefix=secret[: len(KEY_PREFIX) + 6],
            secret_hash=hash_secret(secret),
            created_at=utcnow(),
        )
        with self.db.session() as s:
            s.add(row)
        return ApiKey.from_row(row), secret

    def list(self) -> list[ApiKey]:
        with self.db.session() as s:
            rows = s.scalars(select(ApiKeyRow).order_by(ApiKeyRow.created_at)).all()
            return [ApiKey.from_row(r) for r in rows]

    def revoke(self, key_id: str) -> ApiKey:
        with self.db.session() as s:
            row = s.get(ApiKeyRow, key_id)
            if row is None:
                raise KeyNotFoundError(f"no API key with id {key_id!r}")
            if row.revoked_at is None:
                row.revoked_at = utcnow()
            return ApiKey.from_row(row)

    def authenticate(self, secret: str | None) -> ApiKey:
        """The active key this secret belongs to; AuthenticationError otherwise."""
        if not secret:
            raise AuthenticationError(
                "missing API key: send 'Authorization: Bearer <key>' (see `malsori keys create`)"
            )
        with self.db.session() as s:
            row = s.scalars(
                select(ApiKeyRow).where(ApiKeyRow.secret_hash == hash_secret(secret))
            ).first()
            if row is None or row.revoked_at is not None:
                raise AuthenticationError("incorrect or revoked API key")
            return ApiKey.from_row(row)
