"""``malsori`` run as whisper users run ``whisper`` and ``whisper-ctranslate2``: errors are one
line (with the nearest spelling), the anchors' READMEs' command lines work with the program
name swapped, and whisper's subtitle layout and output files."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from malsori.compat.whisper_output import WhisperLayout, WhisperVttWriter, whisper_cues
from malsori.options import TranscribeOptions
from malsori.results import LanguageInfo, Segment, Transcript, Word
from rendered_audio import ENGLISH_WORDS, Audio, words_of
from test_cli import error_line, files_in, no_traceback, run, usage_error_line


@pytest.mark.parametrize(
    ("args", "hint"),
    [
        (("transcribe", "a.wav", "--output_dirr", "o"), "(did you mean --output_dir?)"),
        (("transcribe", "a.wav", "--beam-sise", "3"), "(did you mean --beam-size?)"),
        (("a.wav", "--word_timestamp", "True"), "(did you mean --word_timestamps?)"),
        (("a.wav", "--vad-filter", "True"), "(did you mean --vad_filter?)"),
    ],
)
def test_unknown_option_names_the_nearest_spelling(
    tmp_path: Path, args: tuple[str, ...], hint: str
) -> None:
    proc = run(*args, cwd=tmp_path)
    line = usage_error_line(proc)
    assert proc.stderr.startswith("usage: malsori transcribe")  # the command's usage
    assert "unrecognized arguments" in line and line.endswith(hint)
    assert files_in(tmp_path) == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--device", "mps"), "device 'mps' is not available"),
        (("--speaker_name", "Talker"), "--speaker NAME=FILE"),
        (("--max_line_width", "0"), "--max_line_width must be at least 1"),
    ],
)
def test_what_malsori_cannot_honour_is_one_line(
    tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    (tmp_path / "a.wav").write_bytes(b"")
    line = error_line(run("transcribe", "a.wav", *args, cwd=tmp_path), 2)
    assert message in line


def test_errors_stay_one_line_with_verbose(tmp_path: Path) -> None:
    """The README: errors are one line; -v after the command no longer fails as unknown."""
    proc = run("transcribe", "missing.flac", "-v", cwd=tmp_path)
    no_traceback(proc)
    assert proc.returncode == 3 and "missing.flac" in proc.stderr.splitlines()[-1]


# --- whisper's subtitle layout (no model) -------------------------------------------------------


def _transcript(*segments: tuple[tuple[float, float, str], ...]) -> Transcript:
    segs = []
    for i, words in enumerate(segments):
        ws = tuple(Word(s, e, w, 0.9) for s, e, w in words)
        segs.append(Segment(i, ws[0].start, ws[-1].end, "".join(w.word for w in ws), ws))
    return Transcript(tuple(segs), LanguageInfo.given("en"), 10.0, 1.0, TranscribeOptions(), "x")


FOX = _transcript(
    ((0.0, 0.4, " The"), (0.4, 0.8, " quick"), (0.8, 1.2, " brown"), (1.2, 1.6, " fox")),
    ((2.0, 2.4, " jumps"), (2.4, 2.8, " over"), (6.0, 6.4, " the"), (6.4, 6.8, " dog.")),
)


def test_layout_line_width_keeps_segments_without_a_line_count() -> None:
    cues = whisper_cues(FOX, WhisperLayout(max_line_width=10))
    assert [c.text for c in cues] == ["The quick\nbrown fox", "jumps over\nthe dog."]


def test_layout_width_and_count_flow_across_segments_and_break_on_long_pauses() -> None:
    cues = whisper_cues(FOX, WhisperLayout(max_line_width=10, max_line_count=1))
    assert [c.text for c in cues] == ["The quick", "brown fox", "jumps over", "the dog."]
    cues = whisper_cues(FOX, WhisperLayout(max_line_width=100, max_line_count=2))
    # the 3.2 s between "over" and "the" starts a new subtitle
    assert [c.text for c in cues] == ["The quick brown fox jumps over", "the dog."]
    assert (cues[0].start, cues[0].end) == (0.0, 2.8)


def test_layout_words_per_line_and_highlight() -> None:
    cues = whisper_cues(FOX, WhisperLayout(max_words_per_line=3))
    assert [c.text for c in cues] == ["The quick brown", "fox", "jumps over the", "dog."]
    cues = whisper_cues(FOX, WhisperLayout(max_words_per_line=3, highlight_words=True))
    assert [c.text for c in cues[:3]] == [
        "<u>The</u> quick brown", "The <u>quick</u> brown", "The quick <u>brown</u>",
    ]  # fmt: skip
    gap = [c for c in cues if c.text == "jumps over the"]  # shown plain between words
    assert gap and (gap[0].start, gap[0].end) == (2.8, 6.0)


def test_whisper_vtt_has_no_hours_under_an_hour() -> None:
    text = WhisperVttWriter(WhisperLayout()).render(FOX)
    assert text.startswith("WEBVTT\n\n00:00.000 --> 00:01.600\n The quick brown fox"[:28])
    assert "00:00:00" not in text and text.endswith("\n\n")


# --- the anchors' READMEs, with the real model ----------------------------------------------------


@pytest.mark.slow
def test_whisper_readme_commands_with_malsori(audio: Audio, tmp_path: Path) -> None:
    """``whisper audio.flac audio.mp3 audio.wav --model turbo`` (base here) and
    ``whisper japanese.wav --language Japanese --task translate``, the name swapped."""
    proc = run(audio.english, audio.spanish, "--model", "base", "--threads", "2", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert set(ENGLISH_WORDS) <= set(words_of(proc.stdout))
    proc = run(audio.spanish, "--model", "base", "--language", "Spanish", "--task",
               "translate", "--threads", "2", "--output_format", "txt", "--output_dir",
               tmp_path / "out", cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert files_in(tmp_path / "out") == ["spanish.txt"]


@pytest.mark.slow
def test_whisper_defaults_write_every_format_like_whisper(audio: Audio, tmp_path: Path) -> None:
    proc = run(audio.english, "--model", "base", "--threads", "2", "--whisper-defaults",
               "--word_timestamps", "True", "--max_line_width", "20", "--max_line_count", "1",
               "--verbose", "False", cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert files_in(tmp_path) == [f"english.{e}" for e in ("json", "srt", "tsv", "txt", "vtt")]
    vtt = (tmp_path / "english.vtt").read_text()
    assert re.search(r"^00:0\d\.\d{3} --> 00:0\d\.\d{3}$", vtt, re.M), vtt
    assert all(len(line) <= 20 for line in vtt.splitlines()[2:] if "-->" not in line)
    result = json.loads((tmp_path / "english.json").read_text())
    assert set(result) == {"text", "segments", "language"} and result["language"] == "en"
    seg = result["segments"][0]
    assert {"id", "seek", "tokens", "temperature", "avg_logprob", "words"} <= set(seg)
    assert seg["tokens"] and isinstance(seg["seek"], int)


@pytest.mark.slow
def test_whisper_ctranslate2_readme_commands_with_malsori(audio: Audio, tmp_path: Path) -> None:
    """``whisper-ctranslate2 x.mp3 --model medium --vad_filter True`` and ``--batched True``
    (base here), the name swapped: same text both ways."""
    texts = []
    for extra in (("--vad_filter", "True"), ("--batched", "True", "--batch_size", "4")):
        proc = run(audio.english, "--model", "base", "--threads", "2", "--output_dir",
                   tmp_path, "--output_format", "txt", *extra, cwd=tmp_path)  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        texts.append((tmp_path / "english.txt").read_text())
    assert texts[0] == texts[1] and set(ENGLISH_WORDS) <= set(words_of(texts[0]))


def test_highlight_alone_underlines_the_profiles_cues() -> None:
    from dataclasses import replace

    from malsori.subtitles.profiles import SubtitleSpec

    profiled = replace(FOX, options=TranscribeOptions(subtitles=SubtitleSpec("latin")))
    cues = whisper_cues(profiled, WhisperLayout(highlight_words=True))
    underlined = [c.text for c in cues if "<u>" in c.text]
    assert len(underlined) == 8  # one cue per word
    assert underlined[0].startswith("<u>The</u>") and "<u>dog.</u>" in underlined[-1]
