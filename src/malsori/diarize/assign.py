"""Speakers onto a transcript: each word to the turn it overlaps most, and a segment that holds a
change of speaker split at the word where the speaker changes."""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass, replace

from ..results import Segment, Word


@dataclass(frozen=True)
class LabelledTurn:
    """A turn with its speaker's label (a known speaker's name or ``SPEAKER_n``)."""

    start: float
    end: float
    speaker: str


class SpeakerTimeline:
    """Who speaks at a time span: the turn overlapping it most, else the nearest turn."""

    def __init__(self, turns: Sequence[LabelledTurn]):
        self.turns = sorted(turns, key=lambda t: t.start)
        self.starts = [t.start for t in self.turns]

    def speaker_at(self, start: float, end: float) -> str | None:
        if not self.turns:
            return None
        end = max(end, start)
        hi = bisect.bisect_right(self.starts, end)
        lo = max(0, bisect.bisect_left(self.starts, start) - 8)  # turns never overlap much
        overlap: dict[str, float] = {}
        for t in self.turns[lo:hi]:
            o = min(end, t.end) - max(start, t.start)
            if o > 0:
                overlap[t.speaker] = overlap.get(t.speaker, 0.0) + o
        if overlap:
            return max(overlap, key=lambda s: overlap[s])
        middle = (start + end) / 2
        near = self.turns[max(0, hi - 1) : hi + 1]
        return min(near, key=lambda t: max(t.start - middle, middle - t.end, 0.0)).speaker


def label_segments(segments: Sequence[Segment], timeline: SpeakerTimeline) -> list[Segment]:
    """Segments with speakers on them and their words, split where the speaker changes,
    renumbered from 0."""
    out: list[Segment] = []
    for seg in segments:
        if not seg.words:
            out.append(replace(seg, speaker=timeline.speaker_at(seg.start, seg.end)))
            continue
        words = [replace(w, speaker=timeline.speaker_at(w.start, w.end)) for w in seg.words]
        out.extend(_split(seg, words))
    return [replace(s, id=i) for i, s in enumerate(out)]


def _split(seg: Segment, words: list[Word]) -> list[Segment]:
    runs: list[list[Word]] = [[words[0]]]
    for w in words[1:]:
        # A word without text (punctuation re-cut away) stays with the run before it.
        if w.speaker != runs[-1][-1].speaker and w.word.strip():
            runs.append([w])
        else:
            runs[-1].append(w)
    if len(runs) == 1:
        return [replace(seg, words=tuple(words), speaker=words[0].speaker)]
    return [
        replace(
            seg,
            start=run[0].start if i else seg.start,
            end=run[-1].end if i < len(runs) - 1 else seg.end,
            text="".join(w.word for w in run),
            words=tuple(run),
            speaker=run[0].speaker,
            tokens=(),  # the decoder's tokens belong to the whole segment
        )
        for i, run in enumerate(runs)
    ]
