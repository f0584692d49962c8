"""Committed words grouped into caption segments (the lines of the SRT and transcript).

A segment ends after a word that ends a sentence, when the speaker stops (the engine says so),
or when it grows past ``max_seconds`` or ``max_chars``; a long pause before a word starts a new
one. Segments are ordinary ``malsori.results.Segment`` values, so the usual writers render them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from .results import Segment, Word
from .sentences import is_sentence_end


class CaptionBuilder:
    """Collects committed words and closes segments at sentence ends, pauses and limits."""

    def __init__(self, *, max_seconds: float = 8.0, max_chars: int = 84, pause_s: float = 1.0):
        self.max_seconds = max_seconds
        self.max_chars = max_chars
        self.pause_s = pause_s
        self.segments: list[Segment] = []
        self._open: list[Word] = []

    @property
    def index(self) -> int:
        """Number of the segment the next word goes into."""
        return len(self.segments)

    def add(self, words: Sequence[Word]) -> list[tuple[int, list[Word], bool]]:
        """Add committed words; returns (segment number, words, segment complete) runs."""
        runs: list[tuple[int, list[Word], bool]] = []
        current: list[Word] = []
        for word in words:
            if self._open and word.start - self._open[-1].end >= self.pause_s:
                if current:
                    runs.append((self.index, current, False))
                    current = []
                self.close()
                if runs:
                    runs[-1] = (runs[-1][0], runs[-1][1], True)
            self._open.append(word)
            current.append(word)
            if self._full(word):
                runs.append((self.index, current, True))
                current = []
                self.close()
        if current:
            runs.append((self.index, current, False))
        return runs

    def _full(self, last: Word) -> bool:
        text = "".join(w.word for w in self._open).strip()
        return (
            is_sentence_end(last.word)
            or last.end - self._open[0].start >= self.max_seconds
            or len(text) >= self.max_chars
        )

    def close(self) -> Segment | None:
        """End the open segment (the speaker stopped); None when it is empty."""
        if not self._open:
            return None
        words = tuple(self._open)
        self._open = []
        text = "".join(w.word for w in words)
        # The mean log-probability of the words: the closest thing to a segment's avg_logprob.
        logprob = sum(math.log(max(w.probability, 1e-6)) for w in words) / len(words)
        segment = Segment(
            id=len(self.segments),
            start=words[0].start,
            end=words[-1].end,
            text=text,
            words=words,
            avg_logprob=logprob,
        )
        self.segments.append(segment)
        return segment

    @property
    def open_words(self) -> tuple[Word, ...]:
        return tuple(self._open)
