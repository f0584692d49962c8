"""openai-whisper's output files from a malsori transcript: its subtitle layout options
(``--max_line_width``, ``--max_line_count``, ``--max_words_per_line``, ``--highlight_words``),
its SRT/VTT framing and its JSON, for people who diff against old output.

The layout follows whisper's meaning: without both a width and a line count, each segment stays
its own subtitle (lines broken at the width; at most N words each with ``--max_words_per_line``);
with both, words flow across segments into subtitles of that many lines, and a pause of more
than 3 s between word starts begins a new one. ``--highlight_words`` repeats each subtitle once
per word with that word underlined (``<u>...</u>``), and shows the plain text in the gaps.
With a subtitle profile on and only ``--highlight_words`` given, the profile's cues are
highlighted instead.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from ..results import Transcript, Word
from ..writers import (
    JsonWriter,
    SrtWriter,
    TimedText,
    VttWriter,
    Writer,
    built_cues,
    format_timestamp,
    subtitle_profile,
)

LONG_PAUSE_S = 3.0  # whisper: a new subtitle after this long between two words' starts
_UNLIMITED = 1000  # whisper's stand-in for "no limit"


@dataclass(frozen=True)
class WhisperLayout:
    """whisper's subtitle layout options (None: not given)."""

    max_line_width: int | None = None
    max_line_count: int | None = None
    max_words_per_line: int | None = None
    highlight_words: bool = False

    @property
    def active(self) -> bool:
        return self.highlight_words or any(
            v is not None for v in (self.max_line_width, self.max_line_count,
                                    self.max_words_per_line)
        )  # fmt: skip

    @property
    def regroups(self) -> bool:
        """Whether words are regrouped (else each segment, or profile cue, stays one)."""
        return self.max_line_width is not None or self.max_words_per_line is not None


def _subtitles(transcript: Transcript, layout: WhisperLayout) -> list[list[Word]]:
    """Words grouped into subtitles; a word's text carries its line break ("\\n" first)."""
    keep_segments = layout.max_line_count is None or layout.max_line_width is None
    width = layout.max_line_width or _UNLIMITED
    per_line = layout.max_words_per_line or _UNLIMITED
    subtitles: list[list[Word]] = []
    current: list[Word] = []
    line_len, line_count = 0, 1
    segments = [s for s in transcript.segments if s.words]
    last_start = segments[0].words[0].start if segments else 0.0
    for segment in segments:
        for chunk_at in range(0, len(segment.words), per_line):
            chunk = segment.words[chunk_at : chunk_at + per_line]
            for i, word in enumerate(chunk):
                text = word.word
                pause = not keep_segments and word.start - last_start > LONG_PAUSE_S
                new_segment = keep_segments and i == 0 and bool(current)
                if line_len > 0 and line_len + len(text) <= width and not (pause or new_segment):
                    line_len += len(text)
                else:
                    text = text.strip()
                    full = layout.max_line_count is not None and (
                        pause or line_count >= layout.max_line_count
                    )
                    if current and (full or new_segment):
                        subtitles.append(current)
                        current, line_count = [], 1
                    elif line_len > 0:
                        line_count += 1
                        text = "\n" + text
                    line_len = len(text.strip())
                current.append(Word(word.start, word.end, text, word.probability))
                last_start = word.start
    if current:
        subtitles.append(current)
    return subtitles


def _underlined(words: list[str], i: int) -> str:
    return "".join(
        re.sub(r"^(\s*)(.*)$", r"\1<u>\2</u>", w, flags=re.S) if j == i else w
        for j, w in enumerate(words)
    )


def _highlighted(words: list[Word], texts: list[str], start: float) -> list[TimedText]:
    """One cue per word with it underlined, and the plain text over the gaps between words."""
    plain = "".join(texts)
    cues = []
    last = start
    for i, word in enumerate(words):
        if round(word.start, 3) != round(last, 3):
            cues.append(TimedText(last, word.start, plain))
        cues.append(TimedText(word.start, word.end, _underlined(texts, i)))
        last = word.end
    return cues


def _words_in_lines(words: tuple[Word, ...], lines: tuple[str, ...]) -> list[str]:
    """The profile cue's words as laid out: each word with the space or line break before it."""
    text = "\n".join(lines)
    out: list[str] = []
    cursor = 0
    for w in words:
        at = text.find(w.word.strip(), cursor)
        if at < 0:
            return [w.word for w in words]  # post-processing changed the text: as decoded
        end = at + len(w.word.strip())
        out.append(text[cursor:end] if out else text[cursor:end].lstrip())
        cursor = end
    return out


def whisper_cues(transcript: Transcript, layout: WhisperLayout) -> list[TimedText]:
    """The cues whisper's SRT and VTT writers would write for ``transcript``."""
    if not any(s.words for s in transcript.segments):
        return [
            TimedText(s.start, s.end, s.text.strip().replace("-->", "->"))
            for s in transcript.segments
            if s.text.strip()
        ]
    profile = subtitle_profile(transcript)
    if profile is not None and not layout.regroups:  # highlight the profile's cues
        cues = built_cues(transcript, profile)
        if not layout.highlight_words:
            return [TimedText(c.start, c.end, c.text) for c in cues]
        return [
            cue
            for c in cues
            for cue in _highlighted(list(c.words), _words_in_lines(c.words, c.lines), c.start)
        ]
    out: list[TimedText] = []
    for words in _subtitles(transcript, layout):
        texts = [w.word for w in words]
        if layout.highlight_words:
            out += _highlighted(words, texts, words[0].start)
        else:
            out.append(TimedText(words[0].start, words[-1].end, "".join(texts)))
    return out


class WhisperSrtWriter(SrtWriter):
    """SRT as whisper writes it: its cues and a blank line after each one."""

    def __init__(self, layout: WhisperLayout):
        self.layout = layout

    def render(self, transcript: Transcript) -> str:
        return "".join(
            f"{i}\n{format_timestamp(c.start, decimal=',', always_hours=True)} --> "
            f"{format_timestamp(c.end, decimal=',', always_hours=True)}\n{c.text}\n\n"
            for i, c in enumerate(whisper_cues(transcript, self.layout), start=1)
        )


class WhisperVttWriter(VttWriter):
    """WebVTT as whisper writes it: hours only from one hour on, a blank line after each cue."""

    def __init__(self, layout: WhisperLayout):
        self.layout = layout

    def render(self, transcript: Transcript) -> str:
        cues = "".join(
            f"{format_timestamp(c.start)} --> {format_timestamp(c.end)}\n{c.text}\n\n"
            for c in whisper_cues(transcript, self.layout)
        )
        return "WEBVTT\n\n" + cues


class WhisperJsonWriter(JsonWriter):
    """openai-whisper's result dictionary (``malsori.compat.whisper.result_dict``)."""

    def __init__(self, pretty: bool = False):
        self.pretty = pretty

    def render(self, transcript: Transcript) -> str:
        from .whisper import result_dict

        data = result_dict(transcript)
        if self.pretty:
            return json.dumps(data, indent=2, ensure_ascii=False)
        return json.dumps(data)


def whisper_writers(
    layout: WhisperLayout, *, whisper_files: bool, pretty_json: bool = False
) -> dict[str, Writer]:
    """Writers that replace malsori's for some formats: whisper's subtitle layout (when its
    options are given) and, with ``whisper_files`` (``--whisper-defaults``), whisper's SRT, VTT
    and JSON framing."""
    if not (layout.active or whisper_files):
        return {}
    if whisper_files:
        return {
            "srt": WhisperSrtWriter(layout),
            "vtt": WhisperVttWriter(layout),
            "json": WhisperJsonWriter(pretty_json),
        }
    return {"srt": _LaidOutSrt(layout), "vtt": _LaidOutVtt(layout)}


class _LaidOutSrt(SrtWriter):
    """malsori's SRT with whisper's layout."""

    def __init__(self, layout: WhisperLayout):
        self.layout = layout

    def render(self, transcript: Transcript) -> str:
        return self.render_cues(whisper_cues(transcript, self.layout))


class _LaidOutVtt(VttWriter):
    """malsori's WebVTT with whisper's layout."""

    def __init__(self, layout: WhisperLayout):
        self.layout = layout

    def render(self, transcript: Transcript) -> str:
        return self.render_cues(whisper_cues(transcript, self.layout))
