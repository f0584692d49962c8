"""The command line: transcribe --diarize end to end, the speaker options' errors, and enrolled
speakers kept across runs (``malsori speakers``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from diarize_voices import Voices

from malsori import cli
from malsori.diarize import SpeakerStore


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "speakers.json"
    monkeypatch.setenv("MALSORI_SPEAKERS", str(path))
    return path


def _transcribe(model: Any, monkeypatch: pytest.MonkeyPatch, *args: str) -> int:
    """``malsori transcribe ARGS`` through the CLI's own code, with the session's model."""
    import malsori.commands.transcribe as command

    monkeypatch.setattr(command, "load_model_from_args", lambda _: model)
    return cli.main(["transcribe", *args])


def test_speaker_options_need_diarize(voices: Voices, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["transcribe", str(voices.conversation), "--num-speakers", "2"]) == 2
    assert "need --diarize" in capsys.readouterr().err
    bad = ["transcribe", str(voices.conversation), "--diarize", "--speaker", "Adam"]
    assert cli.main(bad) == 2
    assert "NAME=FILE" in capsys.readouterr().err
    contradict = ["transcribe", str(voices.conversation), "--diarize", "--min-speakers", "3",
                  "--max-speakers", "2"]  # fmt: skip
    assert cli.main(contradict) == 2
    assert "max speakers (2) is less than min speakers (3)" in capsys.readouterr().err


def test_a_reference_that_is_not_audio_fails_before_transcribing(
    voices: Voices, store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["transcribe", str(voices.conversation), "--diarize", "--speaker",
            f"Ann={voices.not_audio}", "--model", "no-such-model"]  # fmt: skip
    assert cli.main(args) == 3  # the reference is checked before the model is even looked up
    err = capsys.readouterr().err
    assert err.startswith("malsori: error: speaker 'Ann': reference is not usable audio")
    assert len(err.strip().splitlines()) == 1
    silent = ["transcribe", str(voices.conversation), "--diarize", "--speaker",
              f"Ann={voices.silence}"]  # fmt: skip
    assert cli.main(silent) == 3
    assert "the reference holds no speech" in capsys.readouterr().err


def test_speakers_add_list_remove(
    voices: Voices, store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["speakers", "list"]) == 0
    assert capsys.readouterr().out == ""
    assert cli.main(["speakers", "add", "Adam", str(voices.adam_reference)]) == 0
    assert "enrolled Adam" in capsys.readouterr().out
    assert cli.main(["speakers", "add", "Beth", str(voices.beth_reference)]) == 0
    assert cli.main(["speakers", "add", "Adam", str(voices.adam_reference)]) == 0
    assert "replaced Adam" in capsys.readouterr().out
    assert cli.main(["speakers", "list"]) == 0
    assert capsys.readouterr().out.split() == ["Beth", "Adam"]
    data = json.loads(store.read_text(encoding="utf-8"))
    assert [len(s["embedding"]) for s in data["speakers"]] == [256, 256]  # no audio kept
    assert cli.main(["speakers", "remove", "Beth"]) == 0
    assert [s.name for s in SpeakerStore().load()] == ["Adam"]
    assert cli.main(["speakers", "remove", "Beth"]) == 2
    assert "no enrolled speaker named 'Beth'" in capsys.readouterr().err
    assert cli.main(["speakers", "add", "[Ann]", str(voices.adam_reference)]) == 2
    assert cli.main(["speakers", "add", "Ann", str(voices.silence)]) == 3
    assert [s.name for s in SpeakerStore().load()] == ["Adam"]


@pytest.mark.slow
def test_transcribe_diarize_writes_labels_in_every_format(
    model: Any,
    voices: Voices,
    store: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert cli.main(["speakers", "add", "Beth", str(voices.beth_reference)]) == 0
    out = tmp_path / "out"
    args = [str(voices.conversation), "--diarize", "--speaker", f"Adam={voices.adam_reference}",
            "-o", str(out), "--beam-size", "1", "-l", "en", "-q"]  # fmt: skip
    assert _transcribe(model, monkeypatch, *args) == 0
    stem = voices.conversation.stem
    data = json.loads((out / f"{stem}.json").read_text(encoding="utf-8"))
    speakers = [s["speaker"] for s in data["segments"]]
    assert speakers[0] == "Adam" and set(speakers) == {"Adam", "Beth"}  # Beth: enrolled
    assert all(w["speaker"] == s["speaker"] for s in data["segments"] for w in s["words"])
    for seg in data["segments"]:  # each segment lies in its speaker's turn
        middle = (seg["start"] + seg["end"]) / 2
        truth = next(who for a, b, who in voices.spans if a - 0.5 <= middle <= b + 0.5)
        assert seg["speaker"].lower() == truth
    txt = (out / f"{stem}.txt").read_text(encoding="utf-8").splitlines()
    assert txt[0].startswith("[Adam] ") and any(line.startswith("[Beth] ") for line in txt)
    assert "<v Adam>" in (out / f"{stem}.vtt").read_text(encoding="utf-8")
    assert "[Beth] " in (out / f"{stem}.srt").read_text(encoding="utf-8")
    assert "\t[Adam] " in (out / f"{stem}.tsv").read_text(encoding="utf-8")
    capsys.readouterr()
    # Without enrolled speakers and references: numbered labels, printed when no -o is given.
    plain = [str(voices.conversation), "--diarize", "--no-enrolled-speakers", "--beam-size", "1",
             "-l", "en", "-q"]  # fmt: skip
    assert _transcribe(model, monkeypatch, *plain) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("[SPEAKER_1] The meeting")
    assert {line.split("]")[0] for line in lines} == {"[SPEAKER_1", "[SPEAKER_2"}


@pytest.mark.slow
def test_no_speech_is_a_documented_result(
    model: Any, voices: Voices, store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out"
    args = [str(voices.silence), "--diarize", "-o", str(out), "-f", "json", "-q"]
    assert _transcribe(model, monkeypatch, *args) == 0
    data = json.loads((out / f"{voices.silence.stem}.json").read_text(encoding="utf-8"))
    assert data["segments"] == []
    assert data["meta"]["diarization"]["speakers"] == []


@pytest.mark.slow
def test_batch_diarize_with_the_packed_engine(
    model: Any, voices: Voices, store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    import malsori.commands.batch as command

    monkeypatch.setattr(command, "load_batch_model", lambda *a, **k: model)
    inputs = tmp_path / "in"
    inputs.mkdir()
    shutil.copy(voices.conversation, inputs / "meeting.wav")
    shutil.copy(voices.adam_alone, inputs / "memo.wav")
    out = tmp_path / "out"
    args = ["batch", str(inputs), "-o", str(out), "-f", "json,txt", "--diarize", "--speaker",
            f"Adam={voices.adam_reference}", "--beam-size", "1", "-l", "en", "-q"]  # fmt: skip
    assert cli.main(args) == 0
    meeting = json.loads((out / "meeting.json").read_text(encoding="utf-8"))
    assert {s["speaker"] for s in meeting["segments"]} == {"Adam", "SPEAKER_1"}
    memo = (out / "memo.txt").read_text(encoding="utf-8").splitlines()
    assert memo and all(line.startswith("[Adam] ") for line in memo)


@pytest.mark.slow
def test_standard_input_is_read_once_for_both(
    model: Any,
    voices: Voices,
    store: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import io

    stdin = io.TextIOWrapper(io.BytesIO(voices.conversation.read_bytes()))
    monkeypatch.setattr("sys.stdin", stdin)
    args = ["-", "--diarize", "--batched", "--beam-size", "1", "-l", "en", "-q"]
    assert _transcribe(model, monkeypatch, *args) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split("]")[0] for line in lines][:2] == ["[SPEAKER_1", "[SPEAKER_2"]


@pytest.mark.slow
def test_a_diarization_failure_still_writes_the_transcript(
    model: Any,
    voices: Voices,
    store: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import malsori.diarize.run as run
    from malsori.errors import ModelLoadError

    def damaged(device: str = "cpu") -> Any:
        raise ModelLoadError("cannot load the speaker encoder from pretrained.pt: truncated")

    monkeypatch.setattr(run, "load_encoder", damaged)  # as if the weights file were damaged
    out = tmp_path / "out"
    args = [str(voices.conversation), "--diarize", "-o", str(out), "-f", "txt,json",
            "--beam-size", "1", "-l", "en", "-q"]  # fmt: skip
    assert _transcribe(model, monkeypatch, *args) == 0
    err = capsys.readouterr().err
    assert "malsori: warning: " in err and "no speaker labels: cannot load the speaker" in err
    txt = (out / f"{voices.conversation.stem}.txt").read_text(encoding="utf-8")
    assert "quarterly report" in txt and "[" not in txt
    data = json.loads((out / f"{voices.conversation.stem}.json").read_text(encoding="utf-8"))
    assert "cannot load the speaker encoder" in data["meta"]["diarization"]["error"]
    assert all("speaker" not in s for s in data["segments"])
