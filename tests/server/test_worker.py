"""API-only replicas and ``malsori worker`` (in-process here; tests/deploy runs them as real
processes behind nginx): a job accepted by an API-only server waits in the database until a
worker runs it; a worker told to stop hands its running job back for another to run."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from malsori.server.db import JobRow
from malsori.server.worker import run_worker

from .helpers import LONG_WORDS, SPEECH_WORDS, Clips, Served, submit, wait_for, words_of

pytestmark = pytest.mark.slow


@contextmanager
def worker(served: Served, model: Any) -> Iterator[threading.Event]:
    """A worker on the server's database and data folder, in a thread, until the block ends."""
    settings = type(served.settings)(
        **{**served.settings.model_dump(), "worker": {"metrics_port": 0}}
    )
    stop = threading.Event()
    thread = threading.Thread(target=run_worker, args=(settings, stop), kwargs={"model": model})
    thread.start()
    try:
        yield stop
    finally:
        stop.set()
        thread.join(timeout=60)
        assert not thread.is_alive()


def row(served: Served, job_id: str) -> JobRow:
    with served.services.db.session() as s:
        found = s.get(JobRow, job_id)
        assert found is not None
        return found


def test_an_api_only_server_leaves_jobs_to_a_worker(
    serve: Any, clips: Clips, server_model: Any
) -> None:
    api = serve(job_workers=False)
    job = submit(api, clips.speech, language="en")
    time.sleep(1.5)  # an API-only server never runs it
    assert api.client.get(f"/v1/jobs/{job['id']}", headers=api.auth()).json()["status"] == "queued"
    with worker(api, server_model):
        done = wait_for(api, job["id"], "completed", "failed")
    assert done["status"] == "completed" and done["attempts"] == 1
    assert row(api, job["id"]).lease_owner  # the worker that ran it
    text = api.client.get(f"/v1/jobs/{job['id']}/result?format=txt", headers=api.auth()).text
    assert set(SPEECH_WORDS) <= words_of(text)
    metrics = api.client.get("/metrics").text
    assert "malsori_jobs_waiting 0.0" in metrics  # read from the database: none left


def test_a_stopping_worker_hands_its_job_back(serve: Any, clips: Clips, server_model: Any) -> None:
    api = serve(job_workers=False)
    job = submit(api, clips.long, language="en")
    with worker(api, server_model) as stop:
        wait_for(api, job["id"], "running")
        first_owner = row(api, job["id"]).lease_owner
        stop.set()
    handed_back = row(api, job["id"])
    assert (handed_back.status, handed_back.attempts, handed_back.lease_owner) == (
        "queued", 0, None,
    )  # fmt: skip
    with worker(api, server_model):
        done = wait_for(api, job["id"], "completed", "failed")
    assert done["status"] == "completed" and done["attempts"] == 1
    assert row(api, job["id"]).lease_owner not in (None, first_owner)
    text = api.client.get(f"/v1/jobs/{job['id']}/result?format=txt", headers=api.auth()).text
    assert len(set(LONG_WORDS) & words_of(text)) >= 4


def test_a_worker_without_its_database_says_so_in_one_line(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("psycopg", reason="needs psycopg[binary]")
    from malsori import cli

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("MALSORI_DATABASE_URL", f"postgresql+psycopg://u:pw@127.0.0.1:{port}/db")
    code = cli.main(["worker", "--data-dir", str(tmp_path), "-m", "tiny.en"])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.startswith("malsori: error: database unreachable:") and "\n" not in err
    assert ":pw@" not in err  # no credentials in the message


def test_a_worker_runs_each_job_with_the_model_it_named(
    serve: Any, clips: Clips, server_model: Any
) -> None:
    api = serve(job_workers=False, model={"others": ["tiny.en"]})
    named = submit(api, clips.speech, model="tiny.en")
    default = submit(api, clips.speech, language="en")
    with worker(api, server_model):
        for job in (named, default):
            assert wait_for(api, job["id"], "completed", "failed")["status"] == "completed"
    assert (row(api, named["id"]).model, row(api, default["id"]).model) == ("tiny.en", "base")
    # the API-only server never loaded tiny.en: the worker's own manager did
    assert not api.client.get("/v1/models/tiny.en", headers=api.auth()).json()["loaded"]
