"""Output formats: one small class per format, looked up by name.

The CLI, batch outputs and the server's ``response_format`` all use these, so an SRT from the
server equals an SRT from the CLI byte for byte. Files are written atomically: a temporary file
beside the target, flushed, then renamed over it.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import ClassVar, NamedTuple

from .errors import InvalidOptionError, OutputError
from .results import Segment, Transcript
from .subtitles.cues import Cue, transcript_cues
from .subtitles.profiles import SubtitleProfile


def format_timestamp(seconds: float, *, decimal: str = ".", always_hours: bool = False) -> str:
    """``HH:MM:SS.mmm`` (hours optional unless asked for), rounded to the millisecond."""
    ms = max(0, round(seconds * 1000))
    hours, ms = divmod(ms, 3_600_000)
    minutes, ms = divmod(ms, 60_000)
    secs, ms = divmod(ms, 1000)
    head = f"{hours:02d}:" if always_hours or hours else ""
    return f"{head}{minutes:02d}:{secs:02d}{decimal}{ms:03d}"


class TimedText(NamedTuple):
    """What a subtitle writer writes: a cue's times, its text (lines joined by newlines) and,
    when diarized, its speaker."""

    start: float
    end: float
    text: str
    speaker: str | None = None


def speaker_tag(speaker: str | None) -> str:
    """``"[SPEAKER_1] "`` (or the name) before a diarized line in txt, SRT and TSV; else empty."""
    return "" if speaker is None else f"[{speaker}] "


def _cue_text(text: str) -> str:
    # A cue may not contain a blank line (it would end the cue) nor "-->" (it looks like timing).
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return _ARROW.sub("->", "\n".join(lines))


_ARROW = re.compile(r"-{2,}>")
# Files get the permissions a plain open() would give (mkstemp alone makes them 0600).
_UMASK = os.umask(0o022)
os.umask(_UMASK)


def _cues(transcript: Transcript) -> Iterable[Segment]:
    return (s for s in transcript.segments if s.text.strip())


def subtitle_profile(transcript: Transcript) -> SubtitleProfile | None:
    """The profile the transcript's options ask for, for its language; None: one cue a segment."""
    spec = transcript.options.subtitles
    return None if spec is None else spec.resolve(transcript.language.language)


# The cues last built, for the transcript they were built from: writing SRT, VTT and JSON of one
# long transcript builds them once (a tuple, so that threads swap it whole).
_last_built: tuple[Transcript, SubtitleProfile, list[Cue]] | None = None


def built_cues(transcript: Transcript, profile: SubtitleProfile) -> list[Cue]:
    """The transcript's cues under ``profile`` (see ``malsori.subtitles.cues``)."""
    global _last_built
    last = _last_built
    if last is not None and last[0] is transcript and last[1] == profile:
        return last[2]
    cues = transcript_cues(transcript.segments, profile)
    _last_built = (transcript, profile, cues)
    return cues


def subtitle_cues(transcript: Transcript) -> list[TimedText]:
    """The cues the SRT and VTT writers write: built under the profile, or one per segment."""
    profile = subtitle_profile(transcript)
    if profile is None:
        return [TimedText(s.start, s.end, s.text, s.speaker) for s in _cues(transcript)]
    return [TimedText(c.start, c.end, c.text, c.speaker) for c in built_cues(transcript, profile)]


class Writer:
    """Base class: ``render`` returns the whole document as text."""

    name: ClassVar[str]
    extension: ClassVar[str]
    media_type: ClassVar[str] = "text/plain; charset=utf-8"

    def render(self, transcript: Transcript) -> str:
        raise NotImplementedError

    def write(self, transcript: Transcript, path: str | os.PathLike[str]) -> Path:
        return write_atomic(path, self.render(transcript))


class TxtWriter(Writer):
    name = extension = "txt"

    def render(self, transcript: Transcript) -> str:
        return "".join(f"{speaker_tag(s.speaker)}{s.text.strip()}\n" for s in _cues(transcript))


class SrtWriter(Writer):
    name = extension = "srt"
    media_type = "application/x-subrip; charset=utf-8"

    def render(self, transcript: Transcript) -> str:
        return self.render_cues(subtitle_cues(transcript))

    def render_cues(self, cues: Sequence[TimedText]) -> str:
        blocks = []
        for i, c in enumerate((c for c in cues if c.text.strip()), start=1):
            start = format_timestamp(c.start, decimal=",", always_hours=True)
            end = format_timestamp(c.end, decimal=",", always_hours=True)
            text = speaker_tag(c.speaker) + _cue_text(c.text)
            blocks.append(f"{i}\n{start} --> {end}\n{text}\n")
        return "\n".join(blocks)


class VttWriter(Writer):
    name = extension = "vtt"
    media_type = "text/vtt; charset=utf-8"

    def render(self, transcript: Transcript) -> str:
        return self.render_cues(subtitle_cues(transcript))

    def render_cues(self, cues: Sequence[TimedText]) -> str:
        blocks = ["WEBVTT\n"]
        for c in cues:
            if c.text.strip():
                start = format_timestamp(c.start, always_hours=True)
                end = format_timestamp(c.end, always_hours=True)
                voice = "" if c.speaker is None else f"<v {c.speaker}>"  # WebVTT voice span
                blocks.append(f"{start} --> {end}\n{voice}{_cue_text(c.text)}\n")
        return "\n".join(blocks)


class TsvWriter(Writer):
    """Start and end in integer milliseconds, then the text (tabs and newlines become spaces)."""

    name = extension = "tsv"
    media_type = "text/tab-separated-values; charset=utf-8"

    def render(self, transcript: Transcript) -> str:
        rows = ["start\tend\ttext"]
        for s in _cues(transcript):
            text = speaker_tag(s.speaker) + " ".join(s.text.split())
            rows.append(f"{round(s.start * 1000)}\t{round(s.end * 1000)}\t{text}")
        return "\n".join(rows) + "\n"


class JsonWriter(Writer):
    """The whole transcript; under a subtitle profile also the profile and the cues built."""

    name = extension = "json"
    media_type = "application/json"

    def render(self, transcript: Transcript) -> str:
        data = transcript.to_dict()
        profile = subtitle_profile(transcript)
        if profile is not None:
            cues = built_cues(transcript, profile)
            data["subtitles"] = {
                "profile": profile.to_dict(),
                "cues": [c.to_dict() for c in cues],
            }
        return json.dumps(data, ensure_ascii=False, indent=2) + "\n"


WRITERS: dict[str, type[Writer]] = {
    w.name: w for w in (TxtWriter, JsonWriter, SrtWriter, VttWriter, TsvWriter)
}
FORMATS: tuple[str, ...] = tuple(WRITERS)


def get_writer(name: str) -> Writer:
    try:
        return WRITERS[name.lower()]()
    except KeyError:
        raise InvalidOptionError(
            f"unknown output format {name!r}: use one of {', '.join(FORMATS)} or 'all'"
        ) from None


def parse_formats(spec: str) -> tuple[str, ...]:
    """``"all"`` or a comma-separated list (``"txt,srt"``) -> validated format names, in order."""
    names = [n.strip().lower() for n in spec.split(",") if n.strip()]
    if not names:
        raise InvalidOptionError("no output format given")
    if "all" in names:
        return FORMATS
    for n in names:
        get_writer(n)
    return tuple(dict.fromkeys(names))


def write_atomic(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` through a temporary file and a rename."""
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    except OSError as e:
        raise OutputError(f"cannot write to {target.parent}: {e.strerror or e}") from e
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except OSError as e:
        Path(tmp).unlink(missing_ok=True)
        raise OutputError(f"cannot write {target}: {e.strerror or e}") from e
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def write_outputs(
    transcript: Transcript,
    directory: str | os.PathLike[str],
    stem: str,
    formats: Iterable[str],
    writers: Mapping[str, Writer] | None = None,
) -> list[Path]:
    """Write every format (``writers`` replace the standard writer of some formats); if one
    fails, remove the ones already written and raise."""
    written: list[Path] = []
    try:
        for name in formats:
            writer = (writers or {}).get(name) or get_writer(name)
            written.append(writer.write(transcript, Path(directory) / f"{stem}.{writer.extension}"))
    except BaseException:
        for p in written:
            p.unlink(missing_ok=True)
        raise
    return written
