"""The prepare stage: batch files handed out in their order, whatever order they finish in; more
urgent requests first; a bug fails only its request; a dropped request stops."""

from __future__ import annotations

import threading
import time
from collections.abc import Generator

import numpy as np
import pytest

from malsori.engine import intake
from malsori.engine.intake import FileEnd, FileFailed, Intake, Prepared, PreparedPart
from malsori.engine.requests import Priority, Request
from malsori.errors import MalsoriError
from malsori.options import TranscribeOptions

SECOND = 16000


def fake_prepare(request: Request) -> Generator[Prepared]:
    """Source "slow-N": N parts of 10 s, slowly; "bug": raises; "a-N": N parts at once."""
    name = str(request.source)
    if name == "bug":
        raise KeyError("a bug")
    parts = int(name.split("-")[1])
    for part in range(parts):
        if name.startswith("slow"):
            time.sleep(0.05)
        audio = np.zeros(10 * SECOND, dtype=np.float32)
        yield PreparedPart(request.id, part, part * audio.size, audio, [(0, audio.size)])
    yield FileEnd(request.id, parts * 10 * SECOND)


def request(i: int, name: str, priority: Priority = Priority.BATCH) -> Request:
    return Request(i, name, TranscribeOptions(), priority, name)


def drain(take: Intake, count: int, timeout: float = 20.0) -> list[Prepared]:
    """Items until ``count`` requests have ended."""
    items: list[Prepared] = []
    deadline = time.monotonic() + timeout
    while sum(not isinstance(i, PreparedPart) for i in items) < count:
        assert time.monotonic() < deadline, items
        item = take.get()
        if item is None:
            time.sleep(0.01)
        else:
            items.append(item)
    return items


@pytest.mark.parametrize("limit_s", [25.0, 1000.0])
def test_batch_items_come_in_order_and_a_bug_fails_only_its_request(
    monkeypatch: pytest.MonkeyPatch, limit_s: float
) -> None:
    monkeypatch.setattr(intake, "prepare", fake_prepare)
    names = ["slow-4", "a-2", "bug", "slow-3", "a-1", "a-2"]
    take = Intake(workers=3, limit_s=limit_s, notify=lambda: None)
    for i, name in enumerate(names):
        take.add(request(i, name))
    got = drain(take, len(names))
    take.close()
    order = [(i.file, getattr(i, "part", "end")) for i in got]
    expected: list[tuple[int, object]] = []
    for index, name in enumerate(names):
        if name != "bug":
            expected += [(index, p) for p in range(int(name.split("-")[1]))]
        expected.append((index, "end"))
    assert order == expected
    failed = [i for i in got if isinstance(i, FileFailed)]
    assert [f.file for f in failed] == [2] and isinstance(failed[0].error, MalsoriError)
    assert "a bug" in str(failed[0].error)
    assert take.idle


def test_an_urgent_request_is_prepared_and_handed_out_before_batch_work(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(intake, "prepare", fake_prepare)
    take = Intake(workers=1, limit_s=15.0, notify=lambda: None)  # room for one part
    take.add(request(0, "slow-6"))
    while take.get() is None:  # the batch file's first part is out; its next one waits
        time.sleep(0.01)
    take.add(request(1, "a-1", Priority.SYNC))
    items = drain(take, 1)
    first_sync = next(i for i, item in enumerate(items) if item.file == 1)
    assert first_sync <= 1, [(i.file, getattr(i, "part", "end")) for i in items]
    assert isinstance(items[first_sync], PreparedPart)
    take.close()


def test_a_dropped_request_stops_and_frees_its_buffer(monkeypatch: pytest.MonkeyPatch) -> None:
    started = threading.Event()

    def endless(req: Request) -> Generator[Prepared]:
        started.set()
        part = 0
        while True:
            time.sleep(0.01)
            yield PreparedPart(req.id, part, 0, np.zeros(SECOND, np.float32), [])
            part += 1

    monkeypatch.setattr(intake, "prepare", endless)
    take = Intake(workers=1, limit_s=3.0, notify=lambda: None)
    take.add(request(0, "endless", Priority.JOB))
    assert started.wait(5)
    time.sleep(0.2)  # the buffer fills up to its limit
    assert take._queued >= 3 * SECOND
    take.drop(0)
    assert take._queued == 0 and take.idle and take.get() is None
    take.close()


def test_preparing_threads_yield_the_cpu_to_the_model() -> None:
    """Audio preparation runs at a lower CPU priority than the model's threads (Linux)."""
    import os
    import threading

    from malsori.engine.intake import PREPARE_NICENESS, yield_to_model

    seen: list[int] = []

    def thread() -> None:
        before = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
        yield_to_model()
        seen.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) - before)

    t = threading.Thread(target=thread)
    t.start()
    t.join()
    assert seen == [min(PREPARE_NICENESS, 19 - os.getpriority(os.PRIO_PROCESS, 0))]
