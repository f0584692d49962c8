"""The job store on PostgreSQL. Runs only when ``MALSORI_TEST_POSTGRES_URL`` names a throwaway
database (its malsori tables are dropped before and after), e.g.
``postgresql+psycopg://postgres@127.0.0.1:5432/malsori_test``; needs ``psycopg[binary]``."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from .helpers import SPEECH_WORDS, Blocker, Clips, submit, wait_for, words_of

URL = os.environ.get("MALSORI_TEST_POSTGRES_URL")
pytestmark = pytest.mark.skipif(not URL, reason="MALSORI_TEST_POSTGRES_URL is not set")


@pytest.fixture
def postgres() -> Iterator[str]:
    pytest.importorskip("psycopg", reason="PostgreSQL tests need psycopg[binary]")
    from malsori.server.db import Base, Database

    assert URL is not None
    db = Database(URL)
    Base.metadata.drop_all(db.engine)
    db.close()
    yield URL
    db = Database(URL)
    Base.metadata.drop_all(db.engine)
    db.close()


def test_jobs_keys_and_restart_on_postgres(serve: Any, clips: Clips, postgres: str) -> None:
    first = serve(database_url=postgres)
    assert first.services.db.engine.dialect.name == "postgresql"
    assert first.client.get("/ready").status_code == 200
    done = submit(first, clips.speech, language="en")
    assert wait_for(first, done["id"], "completed", "failed")["status"] == "completed"
    text = first.client.get(f"/v1/jobs/{done['id']}/result?format=txt", headers=first.auth()).text
    assert set(SPEECH_WORDS) <= words_of(text)
    other = first.new_key()
    assert first.client.get(f"/v1/jobs/{done['id']}", headers=first.auth(other)).status_code == 404

    blocker = Blocker(first)
    waiting = submit(first, clips.speech, language="en")
    first.client.__exit__(None, None, None)  # stops with a job still queued
    blocker.release.set()
    second = serve(database_url=postgres, data_dir=first.settings.data_dir)
    second.key = first.key
    assert wait_for(second, waiting["id"], "completed", "failed")["status"] == "completed"
    listed = second.client.get("/v1/jobs", headers=second.auth()).json()["data"]
    assert sorted(j["id"] for j in listed) == sorted([done["id"], waiting["id"]])
