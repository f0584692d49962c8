"""Audio sources (file replay timing with an injected clock, device selection, the missing extra)
and ``malsori live`` end to end on a replayed file with the real model."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from malsori import cli
from malsori.audio import SAMPLE_RATE
from malsori.errors import MissingExtraError
from malsori.streaming import sources
from malsori.streaming.sources import FileReplay, InputDevice, NoInputDeviceError, pick_device
from rendered_audio import ENGLISH_TEXT, run_tool


@pytest.fixture(scope="module")
def fox(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("live")
    said = d / "said.wav"
    run_tool("espeak-ng", "-v", "en-us", "-w", said, ENGLISH_TEXT)
    out = d / "fox.wav"
    run_tool("sox", said, out, "pad", "0.5", "1.5")
    return out


def test_file_replay_keeps_real_time(fox: Path) -> None:
    now = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    replay = FileReplay(str(fox), clock=lambda: now[0], sleep=sleep)
    blocks = list(replay)
    total = sum(b.size for b in blocks) / SAMPLE_RATE
    assert all(b.size == SAMPLE_RATE // 10 for b in blocks[:-1])
    assert now[0] == pytest.approx(total)  # handed on exactly as fast as it would be heard
    assert replay.position == pytest.approx(total)
    fast = FileReplay(str(fox), realtime=False, clock=lambda: 0.0, sleep=sleep)
    slept.clear()
    assert sum(b.size for b in fast) == sum(b.size for b in blocks) and slept == []


def devices(*names: str) -> list[InputDevice]:
    return [InputDevice(i, n, 1, 48000.0, i == 1) for i, n in enumerate(names)]


def test_input_device_selection(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sources, "list_input_devices", lambda: devices("USB Mic", "Built-in"))
    assert pick_device(None).name == "Built-in"  # the default input
    assert pick_device("0").name == "USB Mic"
    assert pick_device("usb").name == "USB Mic"
    with pytest.raises(NoInputDeviceError, match=r"no input device matches 'headset'.*0: USB Mic"):
        pick_device("headset")
    monkeypatch.setattr(sources, "list_input_devices", lambda: [])
    with pytest.raises(NoInputDeviceError, match="no audio input device found"):
        pick_device(None)


def test_a_missing_extra_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "sounddevice" else real(name)
    )
    with pytest.raises(MissingExtraError, match=r"pip install 'malsori\[live\]'"):
        sources.list_input_devices()


def test_live_without_a_microphone_is_one_clear_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sources, "list_input_devices", lambda: [])
    assert cli.main(["live", "-l", "en"]) == 3
    err = capsys.readouterr().err
    assert err.startswith("malsori: error: no audio input device found") and "--file" in err


@pytest.mark.slow
def test_live_replays_a_file_and_writes_the_transcript(
    model: Any, fox: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    import malsori.commands.live as live

    monkeypatch.setattr(live, "load_model_from_args", lambda args: model)
    out = tmp_path / "out"
    code = cli.main(["live", "--file", str(fox), "--no-realtime", "-l", "en", "-o", str(out)])
    assert code == 0
    captured = capsys.readouterr()
    lines = captured.out.strip().splitlines()
    assert lines and all(
        re.match(r"\[\d\d:\d\d\.\d{3} --> \d\d:\d\d\.\d{3}\] \S", ln) for ln in lines
    )
    assert "wrote" in captured.err
    txt = (out / "fox.txt").read_text(encoding="utf-8").lower()
    srt = (out / "fox.srt").read_text(encoding="utf-8")
    for word in ("quick", "fox", "dog"):
        assert word in txt
    assert srt.startswith("1\n00:00:00,") and "-->" in srt
    printed = " ".join(ln.split("] ", 1)[1] for ln in lines)
    assert printed.split() == txt.split() or printed.lower().split() == txt.split()


def test_live_rejects_a_bad_speed(fox: Path) -> None:
    assert cli.main(["live", "--file", str(fox), "--speed", "0"]) == 2


def test_a_caption_line_that_starts_at_zero_is_printed_from_zero() -> None:
    import io

    from malsori.commands.live import _Display
    from malsori.results import Word
    from malsori.streaming import Final

    out = io.StringIO()
    display = _Display(out, io.StringIO(), show_partial=False)
    display(Final(" Hello", 0.0, 0.6, (Word(0.0, 0.6, " Hello", 0.9),), 0, False))
    display(Final(" world.", 3.7, 4.2, (Word(3.7, 4.2, " world.", 0.9),), 0, True))
    assert out.getvalue().startswith("[00:00.000 --> 00:04.200]"), out.getvalue()
