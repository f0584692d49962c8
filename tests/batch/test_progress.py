"""The batch progress bar, on a stand-in terminal."""

from __future__ import annotations

import io
import re
import sys
import time
import wave
from pathlib import Path

import pytest

from malsori.batch.progress import Progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def silence(path: Path, seconds: float) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(b"\0\0" * int(16000 * seconds))
    return path


@pytest.fixture
def clips(tmp_path: Path) -> list[Path]:
    return [silence(tmp_path / f"{i}.wav", s) for i, s in enumerate((2.0, 3.0, 5.0))]


def shown(term: Terminal) -> str:
    """What the terminal shows last: the text after the last carriage return."""
    return term.getvalue().split("\r")[-1]


def test_the_bar_counts_audio_seconds_and_files_with_an_eta(
    clips: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    term = Terminal()
    monkeypatch.setattr(sys, "stderr", term)
    bar = Progress(enabled=True)
    bar.start(clips)
    assert bar.active
    deadline = time.monotonic() + 10
    while bar._bar.total < 10.0 and time.monotonic() < deadline:  # headers read in the background
        time.sleep(0.02)
    assert bar._bar.total == pytest.approx(10.0)
    bar.advance(2.0)
    bar.advance(3.0, failed=True)
    bar._bar.refresh()
    line = shown(term)
    assert "5/10 s audio" in line
    assert "files 2/3, 1 failed" in line
    assert re.search(r"\[\d\d:\d\d<\d\d:\d\d", line), line  # elapsed<remaining
    bar.write("malsori: failed: 1.wav: broken")
    assert "malsori: failed: 1.wav: broken\n" in term.getvalue()
    bar.advance(5.0)
    bar.close()
    assert not bar.active
    assert "10/10 s audio" in term.getvalue() and "files 3/3, 1 failed" in term.getvalue()


def test_a_file_longer_than_its_header_said_grows_the_total(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    term = Terminal()
    monkeypatch.setattr(sys, "stderr", term)
    bar = Progress(enabled=True)
    bar.start([tmp_path / "not-there.wav"])  # no header to read: 0 s expected
    bar.advance(7.0)
    assert bar._bar.n == pytest.approx(7.0) and bar._bar.total >= 7.0
    bar.close()


@pytest.mark.parametrize("enabled, terminal", [(False, True), (True, False)])
def test_no_bar_when_disabled_or_not_on_a_terminal(
    clips: list[Path], monkeypatch: pytest.MonkeyPatch, enabled: bool, terminal: bool
) -> None:
    err = Terminal() if terminal else io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)
    bar = Progress(enabled=enabled)
    bar.start(clips)
    bar.advance(2.0)
    bar.write("not shown: the caller prints it")
    bar.close()
    assert not bar.active and err.getvalue() == ""
    assert bar.files_done == 1
