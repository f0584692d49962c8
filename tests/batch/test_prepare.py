"""The prepare stage hands files out in their order, whatever order they finish in."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from malsori.batch import prepare
from malsori.batch.inputs import BatchInput
from malsori.batch.prepare import FileEnd, FileFailed, Prefetcher, Prepared, PreparedPart
from malsori.errors import MalsoriError
from malsori.options import TranscribeOptions

SECOND = 16000


def fake_prepare(index: int, path: Path, options: TranscribeOptions) -> Iterator[Prepared]:
    """File "slow-N": N parts of 10 s, slowly; "bug": raises; others: 2 parts at once."""
    name = path.name
    if name == "bug":
        raise KeyError("a bug")
    parts = int(name.split("-")[1]) if name.startswith("slow") else 2
    for part in range(parts):
        if name.startswith("slow"):
            time.sleep(0.05)
        audio = np.zeros(10 * SECOND, dtype=np.float32)
        yield PreparedPart(index, part, part * audio.size, audio, [(0, audio.size)])
    yield FileEnd(index, parts * 10 * SECOND)


def drain(prefetch: Prefetcher) -> list[Prepared]:
    items = []
    while (item := prefetch.get(block=True)) is not None:
        items.append(item)
    return items


@pytest.mark.parametrize("limit_s", [25.0, 1000.0])
def test_items_come_in_file_order_and_a_bug_fails_only_its_file(
    monkeypatch: pytest.MonkeyPatch, limit_s: float
) -> None:
    monkeypatch.setattr(prepare, "prepare_file", fake_prepare)
    names = ["slow-4", "a-2", "bug", "slow-3", "b-2", "c-2"]
    items = [BatchInput(Path(n), n) for n in names]
    prefetch = Prefetcher(items, TranscribeOptions(), workers=3, limit_s=limit_s)
    got = drain(prefetch)
    prefetch.close()
    order = [(i.file, getattr(i, "part", "end")) for i in got]
    expected = []
    for index, name in enumerate(names):
        if name == "bug":
            expected.append((index, "end"))
            continue
        parts = int(name.split("-")[1])
        expected += [(index, p) for p in range(parts)] + [(index, "end")]
    assert order == expected
    failed = [i for i in got if isinstance(i, FileFailed)]
    assert [f.file for f in failed] == [2] and isinstance(failed[0].error, MalsoriError)
    assert "a bug" in str(failed[0].error)
    assert prefetch.exhausted
