"""Re-flowing an existing subtitle file without its audio.

Each cue's text is cut into words timed by their length over the cue (there is nothing better
to go by), and the words of the whole file are built into new cues under the profile, exactly as
a transcript's words are. ``auto`` picks the profile from the script of the text.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..results import Segment
from .cues import Cue, transcript_cues
from .parse import TextCue
from .profiles import SubtitleProfile, SubtitleSpec, char_width
from .text import is_unspaced_script


def join_lines(lines: Sequence[str]) -> str:
    """A cue's lines as one text: a space between lines, none between Han or kana characters."""
    text = ""
    for line in (ln.strip() for ln in lines if ln.strip()):
        if text and not (is_unspaced_script(text[-1]) and is_unspaced_script(line[0])):
            text += " "
        text += line
    return text


def guess_language(cues: Sequence[TextCue]) -> str | None:
    """``ko``/``ja`` when most letters of the text are full-width, else None (a Latin script)."""
    text = "".join(ch for c in cues for line in c.lines for ch in line if ch.isalpha())
    if not text:
        return None
    wide = sum(1 for ch in text if char_width(ch, "full") == 2)
    if wide * 2 < len(text):
        return None
    return "ko" if any("\uac00" <= ch <= "\ud7a3" for ch in text) else "ja"


def resolve_for_file(spec: SubtitleSpec, cues: Sequence[TextCue]) -> SubtitleProfile | None:
    return spec.resolve(guess_language(cues))


def reflow(cues: Sequence[TextCue], profile: SubtitleProfile) -> list[Cue]:
    """New cues for a file's cues under ``profile``; the words stay exactly as written."""
    segments = [
        Segment(c.number, c.start, max(c.start, c.end), _as_segment_text(join_lines(c.lines)))
        for c in cues
    ]
    return transcript_cues(segments, profile)


def _as_segment_text(text: str) -> str:
    """A cue's text as Whisper writes a segment's: with a leading space in spaced scripts, so
    the last word of one cue and the first of the next stay two words."""
    if text and not is_unspaced_script(text[0]):
        return " " + text
    return text
