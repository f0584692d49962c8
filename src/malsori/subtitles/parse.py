"""Reading SRT and WebVTT files strictly, with the line number of what is wrong.

Written here rather than taken from ``srt`` or ``webvtt-py``: both accept broken timestamps
without a word (``srt`` reads ``00:00:0x,000`` as zero seconds, ``webvtt-py`` skips a cue whose
timing it cannot read), and a linter has to say where a file is broken.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ..errors import SubtitleFileError

SubtitleFormat = Literal["srt", "vtt"]
MAX_FILE_BYTES = 50 * 1024 * 1024  # far above any real subtitle file

_SRT_TIME = re.compile(r"^(\d+):([0-5]\d):([0-5]\d)[,.](\d{3})$")
_VTT_TIME = re.compile(r"^(?:(\d+):)?([0-5]\d):([0-5]\d)\.(\d{3})$")
_ARROW = re.compile(r"\s+-->\s+")
_VTT_BLOCKS = ("NOTE", "STYLE", "REGION")


@dataclass(frozen=True)
class TextCue:
    """A cue as written in a file: its times and lines, and where it is."""

    number: int  # position in the file, from 1
    start: float
    end: float
    lines: tuple[str, ...]
    line: int  # line number of its timing line


@dataclass(frozen=True)
class SubtitleFile:
    format: SubtitleFormat
    cues: tuple[TextCue, ...]


def read_subtitles(path: str | Path) -> SubtitleFile:
    """Parse an SRT or WebVTT file; ``SubtitleFileError`` (one clear line) when it is neither."""
    p = Path(path)
    try:
        if p.stat().st_size > MAX_FILE_BYTES:
            raise SubtitleFileError(f"{p}: too large for a subtitle file")
        data = p.read_bytes()
    except FileNotFoundError:
        raise SubtitleFileError(f"{p}: no such file") from None
    except IsADirectoryError:
        raise SubtitleFileError(f"{p}: is a folder, not a subtitle file") from None
    except OSError as e:
        raise SubtitleFileError(f"{p}: cannot read: {e.strerror or e}") from e
    if b"\x00" in data:
        raise SubtitleFileError(f"{p}: not a subtitle file (binary data)")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise SubtitleFileError(f"{p}: not a subtitle file (not UTF-8 text)") from e
    return parse_subtitles(text, str(p))


def _seconds(stamp: str, fmt: SubtitleFormat) -> float | None:
    m = (_SRT_TIME if fmt == "srt" else _VTT_TIME).match(stamp)
    if not m:
        return None
    hours, minutes, seconds, millis = (int(g) if g else 0 for g in m.groups())
    return hours * 3600 + minutes * 60 + seconds + millis / 1000


def _timing(line: str, fmt: SubtitleFormat, where: str) -> tuple[float, float]:
    """Start and end of a timing line (WebVTT settings and SRT coordinates after the end)."""
    parts = _ARROW.split(line.strip(), maxsplit=1)
    if len(parts) != 2 or not parts[1].split():
        raise SubtitleFileError(f"{where}: broken timing line {line.strip()!r}")
    start_text, end_text = parts[0], parts[1].split()[0]
    start, end = _seconds(start_text, fmt), _seconds(end_text, fmt)
    if start is None or end is None:
        bad = start_text if start is None else end_text
        raise SubtitleFileError(f"{where}: broken timestamp {bad!r} in {line.strip()!r}")
    return start, end


def _blocks(text: str) -> list[tuple[int, list[str]]]:
    """Blocks of non-blank lines, each with the line number of its first line."""
    blocks: list[tuple[int, list[str]]] = []
    current: list[str] = []
    first = 0
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            if not current:
                first = number
            current.append(line.rstrip())
        elif current:
            blocks.append((first, current))
            current = []
    if current:
        blocks.append((first, current))
    return blocks


def parse_subtitles(text: str, name: str = "<text>") -> SubtitleFile:
    """Parse SRT or WebVTT text (WebVTT when it starts with ``WEBVTT``)."""
    text = text.removeprefix("\ufeff")
    blocks = _blocks(text)
    if not blocks:
        raise SubtitleFileError(f"{name}: empty, no subtitle cues")
    fmt: SubtitleFormat = "vtt" if blocks[0][1][0].startswith("WEBVTT") else "srt"
    if fmt == "vtt":
        blocks = [b for b in blocks[1:] if not b[1][0].startswith(_VTT_BLOCKS)]
    elif not any("-->" in line for _, lines in blocks for line in lines[:2]):
        raise SubtitleFileError(f"{name}: not a subtitle file (no SRT or WebVTT cue timings)")
    cues: list[TextCue] = []
    for first, lines in blocks:
        at = next((k for k, line in enumerate(lines[:2]) if "-->" in line), None)
        where = f"{name}: line {first}"
        if at is None:
            expected = "a cue number, then" if fmt == "srt" else "a cue identifier or"
            raise SubtitleFileError(
                f"{where}: expected {expected} a timing line such as "
                f"'00:00:01{',' if fmt == 'srt' else '.'}000 --> 00:00:02"
                f"{',' if fmt == 'srt' else '.'}000', got {lines[0][:60]!r}"
            )
        if fmt == "srt" and at == 1 and not lines[0].strip().isdigit():
            raise SubtitleFileError(f"{where}: expected a cue number, got {lines[0][:60]!r}")
        start, end = _timing(lines[at], fmt, f"{name}: line {first + at}")
        body = tuple(line.strip() for line in lines[at + 1 :])
        cues.append(TextCue(len(cues) + 1, start, end, body, first + at))
    return SubtitleFile(fmt, tuple(cues))
