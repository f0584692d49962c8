"""``malsori subtitles lint`` and ``fix``, the strict SRT/WebVTT reader, and bad input."""

from __future__ import annotations

from pathlib import Path

import pytest

from malsori.cli import main
from malsori.errors import SubtitleFileError
from malsori.subtitles.lint import lint_cues
from malsori.subtitles.parse import parse_subtitles, read_subtitles
from malsori.subtitles.profiles import PROFILES

GOOD_SRT = """1
00:00:01,000 --> 00:00:03,000
Hello there.

2
00:00:03,500 --> 00:00:06,000
This cue is fine,
and so is this one.
"""

# cue 1: a line over 42 and too fast; cue 2: three lines; cue 3: too short and starts 1 frame
# after cue 2; cue 4: overlaps cue 3; cue 5: lasts 9 s; cue 6: a word wider than a line
BAD_SRT = """1
00:00:01,000 --> 00:00:02,000
This first line is much, much longer than forty-two characters.

2
00:00:02,100 --> 00:00:05,000
one
two
three

3
00:00:05,040 --> 00:00:05,500
Short.

4
00:00:05,400 --> 00:00:07,000
Overlapping.

5
00:00:08,000 --> 00:00:17,000
Nine seconds.

6
00:00:18,000 --> 00:00:22,000
Pneumonoultramicroscopicsilicovolcanoconiosis-and-more
"""


def _write(tmp_path: Path, name: str, text: str | bytes) -> Path:
    p = tmp_path / name
    if isinstance(text, bytes):
        p.write_bytes(text)
    else:
        p.write_text(text, encoding="utf-8")
    return p


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


def test_lint_of_a_good_file_exits_zero(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(tmp_path, "good.srt", GOOD_SRT)
    code, out, err = _run(capsys, "subtitles", "lint", str(path), "--profile", "netflix-en")
    assert code == 0 and out == ""
    assert "0 violation(s) in 0 of 2 cues (profile netflix-en)" in err


def test_lint_lists_every_violation_with_its_cue_number(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(tmp_path, "bad.srt", BAD_SRT)
    code, out, _ = _run(capsys, "subtitles", "lint", str(path), "--profile", "netflix-en")
    assert code == 6
    lines = out.splitlines()
    expected = [
        "cue 1: line 1 is 63 wide, over 42",
        "cue 1: reads at 63.0 characters per second, over 20",
        "cue 2: has 3 lines, at most 2",
        "cue 3: lasts 0.46 s, under 0.833 s",
        "cue 3: starts 0.04 s after cue 2 ends, under the minimum gap of 0.083 s",
        "cue 4: overlaps cue 3 by 0.1 s",
        "cue 5: lasts 9 s, over 7 s",
        "cue 6: line 1: the word 'Pneumonoultramicroscopicsilicovolcanoconiosis-and-more' is 54 "
        "wide, wider than a line (42) (impossible to fix)",
    ]
    for text in expected:
        assert f"{path}: {text}" in lines, (text, lines)


def test_lint_counts_korean_with_half_width_latin(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # 15 Hangul + " OK" (1.5) = 16.5 wide: over 16 under netflix-ko, fine under netflix-en
    srt = "1\n00:00:01,000 --> 00:00:04,000\n가나다라마바사아자차카타파하가 OK\n"
    path = _write(tmp_path, "ko.srt", srt)
    code, out, _ = _run(capsys, "subtitles", "lint", str(path), "--profile", "netflix-ko")
    assert code == 6 and "cue 1: line 1 is 16.5 wide, over 16" in out
    code, out, _ = _run(capsys, "subtitles", "lint", str(path), "--profile", "netflix-en")
    assert code == 0, out


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00", "not a subtitle file (binary data)"),
        ("Just some notes.\nNothing timed here.\n", "not a subtitle file (no SRT or WebVTT"),
        ("", "empty, no subtitle cues"),
        ("1\n00:00:01,000 --> 00:00:0x,000\nHi\n", "line 2: broken timestamp '00:00:0x,000'"),
        ("1\n00:00:01,000 --> \nHi\n", "line 2: broken timing line"),
        ("1\n00:61:01,000 --> 00:00:02,000\nHi\n", "broken timestamp '00:61:01,000'"),
        ("1\n00:00:01,000 --> 00:00:02,000\nHi\n\nHello\nthere\n", "line 5: expected a cue"),
        ("WEBVTT\n\n00:01.000 --> 00:0a.000\nHi\n", "line 3: broken timestamp '00:0a.000'"),
        (b"1\n00:00:01,000 --> 00:00:02,000\n\xff\xfe\n", "not UTF-8 text"),
    ],
)
def test_bad_files_are_one_clear_error_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str | bytes, message: str
) -> None:
    path = _write(tmp_path, "input.srt", content)
    for action in (["lint", str(path)], ["fix", str(path), "-o", str(tmp_path / "out.srt")]):
        code, _, err = _run(capsys, "subtitles", *action, "--profile", "netflix-en")
        assert code == 3, err
        assert len(err.strip().splitlines()) == 1 and message in err, err
    assert not (tmp_path / "out.srt").exists()


def test_a_missing_file_and_an_unknown_profile(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = _run(capsys, "subtitles", "lint", str(tmp_path / "nope.srt"))
    assert code == 3 and "no such file" in err
    path = _write(tmp_path, "good.srt", GOOD_SRT)
    code, _, err = _run(capsys, "subtitles", "lint", str(path), "--profile", "netflix-fr")
    assert code == 2 and "unknown subtitle profile 'netflix-fr'" in err
    code, _, err = _run(capsys, "subtitles", "fix", str(path), "--profile", "none", "-o", "-")
    assert code == 2 and "no limits" in err
    code, _, err = _run(capsys, "subtitles", "fix", str(path), "-o", str(tmp_path / "x.txt"))
    assert code == 2 and "use .srt or .vtt" in err


def test_webvtt_headers_notes_identifiers_and_settings_are_read() -> None:
    vtt = (
        "WEBVTT - a title\n\nNOTE written by hand\n\nSTYLE\n::cue { color: red }\n\n"
        "intro\n00:01.000 --> 00:03.500 align:start line:0\nHello\nthere\n\n"
        "01:00:02.250 --> 01:00:04.000\nLater.\n"
    )
    parsed = parse_subtitles(vtt)
    assert parsed.format == "vtt"
    assert [(c.start, c.end, c.lines) for c in parsed.cues] == [
        (1.0, 3.5, ("Hello", "there")),
        (3602.25, 3604.0, ("Later.",)),
    ]


def test_fix_reflows_a_file_so_that_it_passes_lint_and_keeps_every_word(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    long = (
        "When the committee finally met on the third day of the conference, everyone in the "
        "room expected a decision. Nobody spoke for a while."
    )
    srt = f"1\n00:00:01,000 --> 00:00:12,000\n{long}\n\n2\n00:00:12,000 --> 00:00:12,300\nOK.\n"
    path = _write(tmp_path, "other-tool.srt", srt)
    code, _, _ = _run(capsys, "subtitles", "lint", str(path), "--profile", "netflix-en")
    assert code == 6
    out = tmp_path / "fixed.vtt"
    code, _, err = _run(capsys, "subtitles", "fix", str(path), "-p", "netflix-en", "-o", str(out))
    assert code == 0 and "0 violation(s) left" in err, err
    fixed = read_subtitles(out)
    assert fixed.format == "vtt" and len(fixed.cues) >= 3
    assert lint_cues(fixed.cues, PROFILES["netflix-en"]) == []
    words = " ".join(w for c in fixed.cues for line in c.lines for w in line.split())
    assert words == f"{long} OK."
    assert fixed.cues[0].start == 1.0
    code, _, _ = _run(capsys, "subtitles", "lint", str(out), "--profile", "netflix-en")
    assert code == 0


def test_fix_to_stdout_keeps_the_format_and_auto_picks_korean_counting(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = "오늘은 날씨가 정말 좋아서 우리는 공원에 가서 오랫동안 산책을 했습니다."
    path = _write(tmp_path, "ko.srt", f"1\n00:00:00,500 --> 00:00:06,500\n{text}\n")
    code, out, err = _run(capsys, "subtitles", "fix", str(path), "-o", "-")
    assert code == 0 and "(profile cjk)" in err
    fixed = parse_subtitles(out)
    assert fixed.format == "srt"
    assert all(PROFILES["cjk"].width(line) <= 16 for c in fixed.cues for line in c.lines)
    assert " ".join(line for c in fixed.cues for line in c.lines) == text


def test_read_subtitles_error_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(SubtitleFileError) as e:
        read_subtitles(tmp_path)
    assert e.value.exit_code == 3 and "is a folder" in str(e.value)


def test_empty_and_backwards_cues_are_listed_and_fixed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    srt = (
        "1\n00:00:01,000 --> 00:00:02,000\n\n2\n00:00:03,000 --> 00:00:01,000\nBackwards cue here\n"
    )
    path = _write(tmp_path, "odd.srt", srt)
    code, out, _ = _run(capsys, "subtitles", "lint", str(path))
    assert code == 6
    assert f"{path}: cue 1: has no text" in out.splitlines()
    assert f"{path}: cue 2: ends (1 s) before it starts (3 s)" in out.splitlines()
    code, out, _ = _run(capsys, "subtitles", "fix", str(path), "-o", "-")
    (cue,) = parse_subtitles(out).cues
    assert code == 0 and cue.lines == ("Backwards cue here",) and cue.start == 3.0
    assert lint_cues([cue], PROFILES["latin"]) == []


def test_fix_keeps_the_words_of_two_cues_apart_when_it_joins_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    srt = (
        "1\n00:00:01,000 --> 00:00:01,400\nand then\n\n2\n00:00:01,500 --> 00:00:02,000\nwe left\n"
    )
    path = _write(tmp_path, "short.srt", srt)
    out = tmp_path / "fixed.srt"
    code, _, err = _run(capsys, "subtitles", "fix", str(path), "-p", "netflix-en", "-o", str(out))
    assert code == 0, err
    words = [w for c in read_subtitles(out).cues for line in c.lines for w in line.split()]
    assert words == ["and", "then", "we", "left"]
