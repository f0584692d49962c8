"""What the streaming engine reports: ``Partial`` text that may still change and ``Final`` text
that never does, both with times in seconds from the start of the stream."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from ..results import Word


@dataclass(frozen=True)
class Partial:
    """The words decoded past the final text so far; the next ``Partial`` replaces this one
    (an empty ``text`` clears it)."""

    text: str
    start: float
    end: float
    type: Literal["partial"] = "partial"

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "text": self.text,
            "start": round(self.start, 3),
            "end": round(self.end, 3),
        }


@dataclass(frozen=True)
class Final:
    """Words committed for good, in order. ``segment`` numbers the caption line (segment) they
    belong to; ``segment_end`` is true when that line is complete after these words."""

    text: str
    start: float
    end: float
    words: tuple[Word, ...]
    segment: int
    segment_end: bool = False
    type: Literal["final"] = "final"

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "text": self.text,
            "start": round(self.start, 3),
            "end": round(self.end, 3),
            "segment": self.segment,
            "segment_end": self.segment_end,
            "words": [w.to_dict() for w in self.words],
        }


StreamEvent = Partial | Final
