"""Per-key quotas in-process: one key cannot fill the job queue or hold every synchronous request
(refusals are 429 with ``Retry-After`` in OpenAI's envelope and store nothing), nor every upload
check (its further checks wait for its own turn, on the checker's threads). The worker pool drops
a cancelled waiting item from the queue at once."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from malsori.server.exceptions import QuotaExceededError
from malsori.server.quotas import KeyCounter
from malsori.server.scheduler import WorkerPool, WorkItem
from malsori.server.settings import LimitSettings
from malsori.server.uploads import CheckedAudio, UploadChecker

from .helpers import Blocker, Clips, Served, submit, wait_for


def assert_quota_refusal(response: httpx.Response) -> None:
    assert response.status_code == 429, response.text
    assert int(response.headers["retry-after"]) >= 1
    error = response.json()["error"]
    assert error["code"] == "quota_exceeded" and error["type"] == "rate_limit_error"
    assert "this API key already has" in error["message"]


def wait_until(condition: Any, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition never became true"
        time.sleep(0.02)


def test_one_key_cannot_fill_the_job_queue(serve: Any, clips: Clips) -> None:
    served: Served = serve(limits={"max_queued_jobs_per_key": 2, "queue_size": 8})
    blocker = Blocker(served)
    mine = [submit(served, clips.speech, language="en") for _ in range(2)]
    before = served.stored()
    files = {"file": ("a.wav", clips.speech.read_bytes())}
    refused = served.client.post("/v1/jobs", files=files, headers=served.auth())
    assert_quota_refusal(refused)
    assert served.stored() == before  # nothing stored for the refused one
    other = served.new_key()
    theirs = submit(served, clips.speech, key=other, language="en")  # the queue is not full
    blocker.release.set()
    for job in mine:
        assert wait_for(served, job["id"], "completed", "failed")["status"] == "completed"
    submit(served, clips.speech, language="en")  # finished jobs no longer count
    url = f"/v1/jobs/{theirs['id']}"
    wait_until(
        lambda: served.client.get(url, headers=served.auth(other)).json()["status"] == "completed",
        timeout=60,
    )


def test_concurrent_requests_per_key(serve: Any, clips: Clips) -> None:
    served: Served = serve(limits={"max_concurrent_requests_per_key": 1})
    blocker = Blocker(served)
    other = served.new_key()
    answers: dict[str, httpx.Response] = {}

    def post(name: str, key: str | None) -> None:
        files = {"file": ("a.wav", clips.speech.read_bytes())}
        answers[name] = served.client.post(
            "/v1/audio/transcriptions", files=files, data={"language": "en"},
            headers=served.auth(key),
        )  # fmt: skip

    first = threading.Thread(target=post, args=("first", None))
    first.start()
    wait_until(lambda: served.services.pool.waiting == 1)  # queued behind the blocker
    post("second", None)
    assert_quota_refusal(answers["second"])
    theirs = threading.Thread(target=post, args=("theirs", other))
    theirs.start()
    wait_until(lambda: served.services.pool.waiting == 2)  # another key is not held back
    blocker.release.set()
    first.join(60)
    theirs.join(60)
    assert answers["first"].status_code == 200 and answers["theirs"].status_code == 200
    post("again", None)  # the quota was given back when the first request ended
    assert answers["again"].status_code == 200
    assert served.services.quotas.requests.count(served.services.keys.list()[0].id) == 0


def test_upload_checks_take_turns_per_key_on_their_own_threads(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    release = threading.Event()
    started: list[tuple[str, str]] = []

    def slow_check(path: Path, max_seconds: float) -> CheckedAudio:
        started.append((path.name, threading.current_thread().name))
        release.wait(10)
        return CheckedAudio(path, 1, 1.0, "wav")

    monkeypatch.setattr("malsori.server.uploads.check_audio", slow_check)
    checker = UploadChecker(
        LimitSettings(max_concurrent_decodes=2, max_concurrent_decodes_per_key=1)
    )

    async def scenario() -> None:
        first = asyncio.ensure_future(checker.check(tmp_path / "a1", "key_a"))
        second = asyncio.ensure_future(checker.check(tmp_path / "a2", "key_a"))
        await asyncio.sleep(0.1)
        other = asyncio.ensure_future(checker.check(tmp_path / "b1", "key_b"))
        await asyncio.sleep(0.1)
        # key_a's second check waits for key_a's turn; key_b's runs on the free thread.
        assert [name for name, _ in started] == ["a1", "b1"]
        release.set()
        for check in (first, second, other):
            assert (await check).duration == 1.0

    try:
        asyncio.run(scenario())
    finally:
        release.set()
        checker.stop()
    assert [name for name, _ in started] == ["a1", "b1", "a2"]
    assert all(thread.startswith("malsori-decode") for _, thread in started)
    assert not checker._turns  # nothing left behind per key


def test_without_authentication_there_is_no_per_key_quota() -> None:
    unbounded = KeyCounter(None, "synchronous requests")
    leases = [unbounded.acquire("local") for _ in range(100)]
    assert unbounded.count("local") == 100
    for lease in leases:
        lease.release()
        lease.release()  # given back once, however often released
    assert unbounded.count("local") == 0
    bounded = KeyCounter(1, "queued jobs", retry_after=lambda: 7)
    with pytest.raises(QuotaExceededError) as refused:
        bounded.acquire("key", elsewhere=1)  # one stored in the database already
    assert refused.value.retry_after == 7


def test_a_cancelled_waiting_item_leaves_the_queue_at_once() -> None:
    pool = WorkerPool(workers=1, queue_size=2)
    pool.start()
    release = threading.Event()
    pool.submit(WorkItem(run=lambda: release.wait(10), name="blocker"))
    wait_until(lambda: pool.active == 1)
    ran: list[bool] = []
    item = WorkItem(run=lambda: ran.append(item.cancel.is_set()), name="dropped")
    pool.submit(item)
    assert pool.waiting == 1
    pool.cancel(item)
    assert pool.waiting == 0 and item.state == "dropped"
    with pool.slot(), pool.slot():  # both places are free again
        pass
    release.set()
    wait_until(lambda: ran == [True])  # the worker only let it see its cancel (to clean up)
    wait_until(lambda: pool.active == 0)
    assert pool.waiting == 0
    pool.stop()
