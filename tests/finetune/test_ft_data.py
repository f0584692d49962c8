"""Training data checks: every unusable clip is reported with its manifest line, up front."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest

from malsori.errors import InvalidOptionError
from malsori.finetune.data import TrainingDataError, load_examples
from malsori.manifest import ManifestError


def tone(path: Path, seconds: float, rate: int = 16000) -> Path:
    t = np.arange(int(seconds * rate)) / rate
    samples = (0.3 * np.sin(2 * np.pi * 440 * t) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(samples.tobytes())
    return path


def test_good_manifest_gives_examples_with_durations(tmp_path: Path) -> None:
    tone(tmp_path / "a.wav", 1.5)
    tone(tmp_path / "b.wav", 2.0)
    (tmp_path / "train.jsonl").write_text(
        '{"audio": "a.wav", "language": "ko", "text": " 안녕하세요 "}\n'
        '{"audio": "b.wav", "language": "English", "text": "hello"}\n',
        encoding="utf-8",
    )
    examples = load_examples(tmp_path / "train.jsonl")
    assert [(e.language, e.text, e.line) for e in examples] == [
        ("ko", "안녕하세요", 1),
        ("en", "hello", 2),
    ]
    assert examples[0].duration == pytest.approx(1.5, abs=0.01)
    assert examples[1].entry().reference == "hello"


def test_every_problem_is_reported_with_its_line(tmp_path: Path) -> None:
    tone(tmp_path / "ok.wav", 1.0)
    tone(tmp_path / "long.wav", 31.0)
    (tmp_path / "broken.wav").write_bytes(b"RIFF not really a wav file at all" * 10)
    rows = [
        "ok.wav\ten\tfine",  # line 1: usable
        "missing.wav\ten\tno file",  # line 2
        "broken.wav\ten\tcorrupt",  # line 3
        "ok.wav\ten\t   ",  # line 4: empty text
        "long.wav\ten\ttoo long",  # line 5
        "ok.wav\ten\t" + "word " * 50,  # line 6: too many tokens for the counter below
    ]
    (tmp_path / "train.tsv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    with pytest.raises(TrainingDataError) as info:
        load_examples(
            tmp_path / "train.tsv",
            count_tokens=lambda text, lang: 4 + len(text.split()),
            max_tokens=40,
        )
    message = str(info.value)
    assert "5 of 6 clip(s) cannot be used" in message
    assert "line 2: audio file" in message and "not found" in message
    assert "line 3: unreadable audio" in message
    assert "line 4: empty text" in message
    assert "line 5: clip is 31.0 s, longer than 30 s" in message
    assert "line 6: text is 54 tokens, the decoder allows 40" in message
    assert "line 1" not in message


def test_malformed_manifest_row_names_its_line(tmp_path: Path) -> None:
    (tmp_path / "train.tsv").write_text("a.wav\ten\thi\nb.wav only\n", encoding="utf-8")
    with pytest.raises(ManifestError, match="line 2"):
        load_examples(tmp_path / "train.tsv")


def test_folder_of_clips_with_txt_files(tmp_path: Path) -> None:
    tone(tmp_path / "one.wav", 1.0)
    (tmp_path / "one.txt").write_text("first clip\n", encoding="utf-8")
    tone(tmp_path / "two.wav", 1.0)
    with pytest.raises(TrainingDataError, match=r"two.wav: transcript two.txt is missing"):
        load_examples(tmp_path, language="en")
    (tmp_path / "two.txt").write_text("second clip", encoding="utf-8")
    examples = load_examples(tmp_path, language="english")
    assert [(e.audio.name, e.text, e.language) for e in examples] == [
        ("one.wav", "first clip", "en"),
        ("two.wav", "second clip", "en"),
    ]


def test_folder_needs_a_language(tmp_path: Path) -> None:
    tone(tmp_path / "one.wav", 1.0)
    (tmp_path / "one.txt").write_text("x", encoding="utf-8")
    with pytest.raises(InvalidOptionError, match="--language"):
        load_examples(tmp_path)


def test_empty_folder_and_missing_source(tmp_path: Path) -> None:
    with pytest.raises(TrainingDataError, match="no audio clips"):
        load_examples(tmp_path, language="en")
    with pytest.raises(ManifestError, match="no such manifest"):
        load_examples(tmp_path / "nope.tsv")
