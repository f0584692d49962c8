"""``malsori batch`` end to end with the real model: mirrored outputs in every format, summary,
log, exit codes, resume and --force."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import srt

from malsori.cli import main
from rendered_audio import ENGLISH_WORDS, Audio, words_of

pytestmark = pytest.mark.slow


@pytest.fixture
def archive(audio: Audio, tmp_path: Path) -> Path:
    root = tmp_path / "archive"
    for rel, src in (
        ("day1/talk.wav", audio.english),
        ("day2/talk.wav", audio.english),  # same name, other folder
        ("day2/talk.mp3", audio.mp3),  # same stem, same folder
        ("day2/skip/ignored.wav", audio.english),
        ("day2/broken.mp3", audio.text_as_mp3),
        ("notes.txt", audio.text_as_mp3),  # not audio: not picked up from a folder
    ):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(src, root / rel)
    return root


def test_batch_command(archive: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    argv = ["batch", str(archive), "-o", str(out), "--exclude", "skip/*", "--threads", "2"]
    assert main(argv) == 3  # one input is not audio
    err = capsys.readouterr().err
    assert "3 done, 1 failed, 0 skipped" in err
    # the failure on screen once as it happens, once in the summary; its path once in each line
    failures = [line for line in err.splitlines() if "broken.mp3" in line]
    assert len(failures) == 2 and all(line.count("broken.mp3") == 1 for line in failures)
    assert "WARNING" not in err
    for stem in ("day1/talk", "day2/talk.wav", "day2/talk.mp3"):
        for ext in ("txt", "json", "srt", "vtt", "tsv"):
            assert (out / f"{stem}.{ext}").is_file(), f"{stem}.{ext}"
        assert set(ENGLISH_WORDS) <= words_of((out / f"{stem}.txt").read_text())
    assert not (out / "day2" / "skip").exists()
    cues = list(srt.parse((out / "day1" / "talk.srt").read_text()))
    assert cues and cues[0].start.total_seconds() < 1.0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["files"]["done"] == 3 and summary["files"]["failed"] == 1
    assert summary["languages"] == {"en": 3}
    assert summary["rtfx"] > 0 and summary["audio_hours"] > 0
    log = (out / "batch.log").read_text()
    assert "done " in log and "WARNING malsori.batch.runner: failed: " in log
    assert "broken.mp3" in log

    # a re-run skips what is done (the broken file fails again: still exit 3)
    (out / "day1" / "talk.vtt").unlink()
    assert main([*argv, "-q"]) == 3
    err = capsys.readouterr().err
    assert "1 done, 1 failed, 2 skipped" in err
    assert (out / "day1" / "talk.vtt").is_file()

    # only good files, and --force: everything again, exit 0
    listing = tmp_path / "list.txt"
    listing.write_text(f"{archive}/day1/talk.wav\n{archive}/day2/talk.wav\n")
    out2 = tmp_path / "out2"
    args = ["batch", "--manifest", str(listing), "-o", str(out2), "-f", "srt", "--threads", "2"]
    assert main(args) == 0
    # relative to the manifest's folder
    assert sorted(p.relative_to(out2).as_posix() for p in out2.rglob("*.srt")) == [
        "archive/day1/talk.srt", "archive/day2/talk.srt"]  # fmt: skip
    assert main([*args, "--force", "--engine", "sequential"]) == 0
    assert "2 done, 0 failed, 0 skipped" in capsys.readouterr().err


def test_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["batch", str(empty), "-o", str(tmp_path / "o")]) == 2
    assert "no input files" in capsys.readouterr().err
    assert main(["batch", str(empty), "-o", str(tmp_path / "o"), "-f", "doc"]) == 2
    assert main(["batch", str(empty)]) == 2  # -o is required
