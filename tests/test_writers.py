"""Writers: every format parses back (with independent parsers) to the transcript it came from."""

from __future__ import annotations

import io
import json
import os
import stat
from datetime import timedelta
from pathlib import Path

import pytest
import srt
import webvtt

from malsori.errors import InvalidOptionError, OutputError
from malsori.options import TranscribeOptions
from malsori.results import LanguageInfo, RemovedSegment, Segment, Transcript, Word
from malsori.writers import (
    FORMATS,
    format_timestamp,
    get_writer,
    parse_formats,
    write_atomic,
    write_outputs,
)


def make_transcript(*texts_and_times: tuple[float, float, str], language: str = "en") -> Transcript:
    segments = tuple(
        Segment(id=i, start=start, end=end, text=text)
        for i, (start, end, text) in enumerate(texts_and_times)
    )
    return Transcript(
        segments=segments,
        language=LanguageInfo(language, 1.0, (), detected=False),
        duration=max((s.end for s in segments), default=0.0),
        processing_time=1.0,
        options=TranscribeOptions(),
        model="base",
    )


@pytest.fixture
def transcript() -> Transcript:
    """Times, text and numbers chosen to survive JSON's rounding (ms, 4 decimals) exactly."""
    words = (Word(0.0, 0.52, " Hello", 0.9132), Word(0.52, 1.234, " there.", 0.875))
    segments = (
        Segment(0, 0.0, 1.234, " Hello there.", words, -0.2345, 0.0123, 1.1, 0.0),
        Segment(1, 1.5, 3.0, " First line\n\nsecond --> line", (), -0.5, 0.02, 1.3, 0.2),
        Segment(2, 3.25, 3.9, "   ", (), -0.9, 0.7, 1.0, 0.0, ("maybe_no_speech",)),
        Segment(3, 3661.25, 3662.5, ' Über 한국어 ✓\tcafé, "quoted"', (), -0.1, 0.01, 1.2, 0.0),
    )
    return Transcript(
        segments=segments,
        language=LanguageInfo("en", 0.9876, (("en", 0.9876), ("de", 0.0101)), detected=True),
        duration=3663.0,
        processing_time=12.345,
        options=TranscribeOptions(word_timestamps=True, temperature=(0.0, 0.2)),
        model="base",
        source="talk.wav",
        removed=(RemovedSegment(3.9, 5.0, " Thanks for watching!", "stock_phrase"),),
    )


# The cues a subtitle file must hold for ``transcript``: blank segments left out, a cue never
# contains a blank line nor "-->".
EXPECTED_CUES = [
    (0, 1234, "Hello there."),
    (1500, 3000, "First line\nsecond -> line"),
    (3661250, 3662500, 'Über 한국어 ✓\tcafé, "quoted"'),
]


def _ms(td: timedelta) -> int:
    return round(td.total_seconds() * 1000)


def _vtt_ms(stamp: str) -> int:
    hours, minutes, rest = stamp.split(":")
    seconds, millis = rest.split(".")
    return ((int(hours) * 60 + int(minutes)) * 60 + int(seconds)) * 1000 + int(millis)


@pytest.mark.parametrize(
    ("seconds", "kwargs", "text"),
    [
        (0.0, {}, "00:00.000"),
        (1.234, {}, "00:01.234"),
        (59.9996, {}, "01:00.000"),
        (3600.0, {}, "01:00:00.000"),
        (3661.25, {"decimal": ","}, "01:01:01,250"),
        (1.5, {"always_hours": True}, "00:00:01.500"),
        (-0.3, {}, "00:00.000"),
        (360000.0, {}, "100:00:00.000"),
    ],
)
def test_format_timestamp(seconds: float, kwargs: dict[str, object], text: str) -> None:
    assert format_timestamp(seconds, **kwargs) == text  # type: ignore[arg-type]


def test_srt_parses_back_to_the_same_cues(transcript: Transcript) -> None:
    cues = list(srt.parse(get_writer("srt").render(transcript)))
    assert [c.index for c in cues] == [1, 2, 3]
    assert [(_ms(c.start), _ms(c.end), c.content) for c in cues] == EXPECTED_CUES


def test_vtt_parses_back_to_the_same_cues(transcript: Transcript) -> None:
    rendered = get_writer("vtt").render(transcript)
    assert rendered.startswith("WEBVTT\n\n")
    cues = list(webvtt.from_string(rendered))
    assert [(_vtt_ms(c.start), _vtt_ms(c.end), c.text) for c in cues] == EXPECTED_CUES


def test_srt_exact_bytes() -> None:
    t = make_transcript((0.0, 2.5, " Hello."), (2.5, 61.0011, " World "))
    assert get_writer("srt").render(t) == (
        "1\n00:00:00,000 --> 00:00:02,500\nHello.\n\n2\n00:00:02,500 --> 00:01:01,001\nWorld\n"
    )
    assert get_writer("vtt").render(t) == (
        "WEBVTT\n\n00:00:00.000 --> 00:00:02.500\nHello.\n\n00:00:02.500 --> 00:01:01.001\nWorld\n"
    )


NASTY_TEXTS = [
    " a\n\nb",
    "-->",
    " a --> b",
    "\n\n\n x \n\n",
    " line\r\n\r\nline",
    " one\u2028\u2028two",
    "   padded   ",
    "<b>bold</b> & co",
    pytest.param(
        " arrow ---> here",
    ),
]


@pytest.mark.parametrize("text", NASTY_TEXTS)
@pytest.mark.parametrize("fmt", ["srt", "vtt"])
def test_cue_text_never_holds_a_blank_line_or_an_arrow(fmt: str, text: str) -> None:
    t = make_transcript((0.0, 1.0, " before"), (1.0, 2.0, text), (2.0, 3.0, " after"))
    rendered = get_writer(fmt).render(t)
    if fmt == "srt":
        cues = [c.content for c in srt.parse(rendered)]
    else:
        cues = [c.text for c in webvtt.from_string(rendered)]
    assert cues[0] == "before" and cues[-1] == "after"  # nothing spilled into other cues
    assert len(cues) == 3
    for cue in cues:
        assert "-->" not in cue
        assert cue.strip() and all(line.strip() for line in cue.split("\n"))


def test_blank_segments_are_not_cues_and_empty_transcripts_render(transcript: Transcript) -> None:
    empty = make_transcript()
    assert get_writer("srt").render(empty) == ""
    assert list(webvtt.from_string(get_writer("vtt").render(empty))) == []
    assert get_writer("txt").render(empty) == ""
    assert get_writer("tsv").render(empty) == "start\tend\ttext\n"
    assert json.loads(get_writer("json").render(empty))["segments"] == []


def test_txt_is_one_line_per_segment_text(transcript: Transcript) -> None:
    text = get_writer("txt").render(transcript)
    assert text == 'Hello there.\nFirst line\n\nsecond --> line\nÜber 한국어 ✓\tcafé, "quoted"\n'


def test_tsv_rows_are_milliseconds_and_single_line_text(transcript: Transcript) -> None:
    lines = get_writer("tsv").render(transcript).splitlines()
    assert lines[0] == "start\tend\ttext"
    rows = [line.split("\t") for line in lines[1:]]
    assert all(len(r) == 3 for r in rows)
    assert [(int(a), int(b), c) for a, b, c in rows] == [
        (0, 1234, "Hello there."),
        (1500, 3000, "First line second --> line"),
        (3661250, 3662500, 'Über 한국어 ✓ café, "quoted"'),
    ]


def test_json_round_trips_to_an_equal_transcript(transcript: Transcript) -> None:
    data = json.loads(get_writer("json").render(transcript))
    back = Transcript.from_dict(data)
    assert back == transcript  # segments, words, language, options, removed, duration ...
    joined = 'Hello there. First line\n\nsecond --> line Über 한국어 ✓\tcafé, "quoted"'
    assert data["text"] == transcript.text == joined
    assert data["segments"][0]["words"][1] == {
        "start": 0.52,
        "end": 1.234,
        "word": " there.",
        "probability": 0.875,
    }
    assert "words" not in data["segments"][1]
    assert data["language"] == "en" and data["language_probability"] == 0.9876
    assert data["removed_segments"][0]["reason"] == "stock_phrase"
    assert data["rtfx"] == round(3663.0 / 12.345, 2)


def test_json_keeps_unicode_readable(transcript: Transcript) -> None:
    rendered = get_writer("json").render(transcript)
    assert "한국어" in rendered and "\\u" not in rendered


def test_text_joins_segments_without_spaces_for_unspaced_languages() -> None:
    segs = ((0.0, 1.0, " こんにちは。"), (1.0, 2.0, " 元気です。"), (2.0, 3.0, "  "))
    assert make_transcript(*segs, language="ja").text == "こんにちは。元気です。"
    assert make_transcript(*segs, language="en").text == "こんにちは。 元気です。"


def test_get_writer_and_parse_formats() -> None:
    assert FORMATS == ("txt", "json", "srt", "vtt", "tsv")
    assert get_writer("SRT").extension == "srt"
    assert parse_formats("all") == FORMATS
    assert parse_formats("txt,all") == FORMATS
    assert parse_formats(" srt, VTT,srt ") == ("srt", "vtt")
    for bad in ("", " , ", "srt,docx", "pdf"):
        with pytest.raises(InvalidOptionError):
            parse_formats(bad)
    with pytest.raises(InvalidOptionError, match="docx"):
        get_writer("docx")


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_write_outputs_writes_every_format(transcript: Transcript, tmp_path: Path) -> None:
    paths = write_outputs(transcript, tmp_path / "new" / "sub", "talk", FORMATS)
    assert [p.name for p in paths] == [f"talk.{f}" for f in FORMATS]
    for p, f in zip(paths, FORMATS, strict=True):
        assert p.read_text(encoding="utf-8") == get_writer(f).render(transcript)
    assert _leftovers(tmp_path / "new" / "sub") == sorted(p.name for p in paths)


def test_write_atomic_parent_is_a_file(tmp_path: Path) -> None:
    blocker = tmp_path / "notes.txt"
    blocker.write_text("a regular file")
    with pytest.raises(OutputError) as info:
        write_atomic(blocker / "out" / "talk.srt", "text")
    assert info.value.exit_code == 5
    assert str(blocker) in str(info.value)
    assert _leftovers(tmp_path) == ["notes.txt"]
    assert blocker.read_text() == "a regular file"


def test_failed_rename_leaves_no_temporary_file(tmp_path: Path) -> None:
    (tmp_path / "talk.srt").mkdir()  # os.replace cannot put a file over a folder
    with pytest.raises(OutputError):
        write_atomic(tmp_path / "talk.srt", "text")
    assert _leftovers(tmp_path) == ["talk.srt"]
    assert (tmp_path / "talk.srt").is_dir()


@pytest.mark.parametrize("failure", [OSError(28, "No space left on device"), KeyboardInterrupt()])
def test_failed_write_keeps_the_old_file_and_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failure: BaseException
) -> None:
    target = tmp_path / "talk.txt"
    target.write_text("previous transcript\n")

    def fail(fd: int) -> None:
        raise failure

    monkeypatch.setattr(os, "fsync", fail)
    with pytest.raises(OutputError if isinstance(failure, OSError) else KeyboardInterrupt):
        write_atomic(target, "new transcript\n")
    assert target.read_text() == "previous transcript\n"
    assert _leftovers(tmp_path) == ["talk.txt"]


def test_write_outputs_removes_what_it_wrote_when_one_format_fails(
    transcript: Transcript, tmp_path: Path
) -> None:
    (tmp_path / "talk.srt").mkdir()  # txt and json are written first, then srt fails
    with pytest.raises(OutputError):
        write_outputs(transcript, tmp_path, "talk", FORMATS)
    assert _leftovers(tmp_path) == ["talk.srt"]


def test_written_files_are_utf8_with_unix_newlines(transcript: Transcript, tmp_path: Path) -> None:
    path = get_writer("srt").write(transcript, tmp_path / "t.srt")
    raw = path.read_bytes()
    assert b"\r\n" not in raw
    assert raw.decode("utf-8") == get_writer("srt").render(transcript)
    assert list(srt.parse(io.StringIO(raw.decode("utf-8")).read()))


def test_written_files_respect_the_umask(transcript: Transcript, tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        path = get_writer("txt").write(transcript, tmp_path / "t.txt")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
