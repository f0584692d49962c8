"""The SRT, VTT and JSON writers under a profile, the command-line flags, and the real model."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from malsori.cli import build_parser, main, options_from_args, with_subtitle_words
from malsori.options import TranscribeOptions
from malsori.results import LanguageInfo, Segment, Transcript, Word
from malsori.subtitles.cues import transcript_cues
from malsori.subtitles.lint import lint_cues
from malsori.subtitles.parse import parse_subtitles, read_subtitles
from malsori.subtitles.profiles import PROFILES, SubtitleSpec
from malsori.writers import get_writer
from rendered_audio import ENGLISH_WORDS, Audio, words_of

TEXT = (
    " When the committee finally met on the third day of the conference, everyone in the room "
    "expected a decision. Nobody spoke."
)


def _transcript(subtitles: SubtitleSpec | None, language: str = "en") -> Transcript:
    words, t = [], 0.5
    for token in TEXT.split():
        words.append(Word(t, t + 0.07 * len(token), " " + token, 0.9))
        t += 0.07 * len(token) + 0.08
    segment = Segment(0, 0.5, words[-1].end, TEXT, tuple(words))
    return Transcript(
        segments=(segment,),
        language=LanguageInfo(language, 1.0),
        duration=t + 1,
        processing_time=1.0,
        options=TranscribeOptions(word_timestamps=True, subtitles=subtitles),
        model="base",
    )


def test_srt_and_vtt_write_the_profile_cues_and_json_records_them() -> None:
    transcript = _transcript(SubtitleSpec("netflix-en"))
    expected = transcript_cues(transcript.segments, PROFILES["netflix-en"])
    assert len(expected) >= 3
    srt = parse_subtitles(get_writer("srt").render(transcript))
    vtt = parse_subtitles(get_writer("vtt").render(transcript))
    for parsed in (srt, vtt):
        assert [(c.start, c.end, c.lines) for c in parsed.cues] == [
            (c.start, c.end, c.lines) for c in expected
        ]
        assert lint_cues(parsed.cues, PROFILES["netflix-en"]) == []
    data = json.loads(get_writer("json").render(transcript))
    assert data["subtitles"]["profile"]["name"] == "netflix-en"
    assert [c["lines"] for c in data["subtitles"]["cues"]] == [list(c.lines) for c in expected]
    again = Transcript.from_dict(data)  # the cues are extra: the transcript reads back intact
    assert again.options == transcript.options and again.text == transcript.text


@pytest.mark.parametrize("spec", [None, SubtitleSpec("none")])
def test_profile_none_keeps_one_cue_per_segment(spec: SubtitleSpec | None) -> None:
    transcript = _transcript(spec)
    (cue,) = parse_subtitles(get_writer("srt").render(transcript)).cues
    assert cue.lines == (TEXT.strip(),) and cue.start == 0.5
    assert "subtitles" not in json.loads(get_writer("json").render(transcript))


def test_auto_uses_the_transcript_language() -> None:
    ko = _transcript(SubtitleSpec("auto"), language="ko")
    data = json.loads(get_writer("json").render(ko))
    assert data["subtitles"]["profile"]["name"] == "cjk"
    en = json.loads(get_writer("json").render(_transcript(SubtitleSpec("auto"))))
    assert en["subtitles"]["profile"]["name"] == "latin"


@pytest.mark.parametrize("command", [["transcribe", "a.wav"], ["batch", "a.wav", "-o", "out"],
                                     ["live", "--file", "a.wav"]])  # fmt: skip
def test_every_command_takes_the_profile_and_limit_flags(command: list[str]) -> None:
    args = build_parser().parse_args(
        [*command, "--subtitle-profile", "netflix-ko", "--max-cps", "14", "--max-line-width",
         "18", "--max-lines", "1", "--min-duration", "1", "--max-duration", "6",
         "--min-gap", "0.1"]
    )  # fmt: skip
    spec = options_from_args(args).subtitles
    assert spec == SubtitleSpec("netflix-ko", max_line_width=18, max_lines=1, max_cps=14,
                                min_duration=1, max_duration=6, min_gap=0.1)  # fmt: skip
    default = options_from_args(build_parser().parse_args(command)).subtitles
    assert default == SubtitleSpec("auto")


def test_word_times_are_computed_only_when_a_profile_builds_cues() -> None:
    options = TranscribeOptions(subtitles=SubtitleSpec("auto"))
    assert with_subtitle_words(options, ("srt",)).word_timestamps
    assert with_subtitle_words(options, ("txt", "json")).word_timestamps
    assert not with_subtitle_words(options, ("txt", "tsv")).word_timestamps
    none = dataclasses.replace(options, subtitles=SubtitleSpec("none"))
    assert not with_subtitle_words(none, ("srt",)).word_timestamps


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--subtitle-profile", "cinema"], "unknown subtitle profile 'cinema'"),
        (["--max-lines", "0"], "lines per cue must lie in [1, 4]"),
        (["--subtitle-profile", "none", "--max-cps", "10"], "no effect with --subtitle-profile"),
    ],
)
def test_bad_flags_are_one_line_and_exit_2(
    flags: list[str], message: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    clip = tmp_path / "a.wav"
    clip.write_bytes(b"RIFF")
    assert main(["transcribe", str(clip), *flags]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


@pytest.mark.slow
def test_transcribe_writes_subtitles_that_pass_lint(
    audio: Audio, model: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The real base model on espeak-ng speech, through the command line's own code path."""
    import malsori.commands.transcribe as command

    monkeypatch.setattr(command, "load_model_from_args", lambda _: model)
    out = tmp_path / "out"
    code = main(["transcribe", str(audio.english), "-q", "-f", "srt,json", "-o", str(out),
                 "--subtitle-profile", "netflix-en", "--max-line-width", "20"])  # fmt: skip
    assert code == 0
    cues = read_subtitles(out / "english.srt").cues
    profile = dataclasses.replace(PROFILES["netflix-en"], max_line_width=20)
    assert lint_cues(cues, profile) == []
    assert any(len(c.lines) == 2 for c in cues)  # 44 characters do not fit one 20-wide line
    transcript = Transcript.from_dict(json.loads((out / "english.json").read_text()))
    assert transcript.options.word_timestamps
    shown = " ".join(line for c in cues for line in c.lines)
    assert shown.split() == transcript.text.split()
    assert set(ENGLISH_WORDS) <= words_of(shown)
    assert cues[0].start >= transcript.words[0].start - 1e-3
