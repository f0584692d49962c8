"""Checking cues against a profile: every violation, with its cue number.

Works on any cues with ``start``, ``end`` and ``lines``: those malsori builds and those read from
a file. A word wider than a line is reported as impossible: no re-flow can fix it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from .cues import EPS
from .profiles import SubtitleProfile
from .text import split_words


class CueLike(Protocol):
    @property
    def start(self) -> float: ...
    @property
    def end(self) -> float: ...
    @property
    def lines(self) -> tuple[str, ...]: ...


@dataclass(frozen=True)
class Violation:
    cue: int  # cue number, from 1
    rule: str  # "timing", "empty", "lines", "width", "word", "short", "long", "speed",
    # "overlap", "gap"
    message: str
    impossible: bool = False  # no re-flow can fix it (a word wider than a line)

    def __str__(self) -> str:
        return f"cue {self.cue}: {self.message}" + (
            " (impossible to fix)" if self.impossible else ""
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "cue": self.cue,
            "rule": self.rule,
            "message": self.message,
            "impossible": self.impossible,
        }


def _n(value: float) -> str:
    return f"{value:.3f}".rstrip("0").rstrip(".")


def _line_violations(number: int, lines: Sequence[str], p: SubtitleProfile) -> list[Violation]:
    found = []
    if not any(line.strip() for line in lines):
        found.append(Violation(number, "empty", "has no text"))
    if len(lines) > p.max_lines:
        found.append(Violation(number, "lines", f"has {len(lines)} lines, at most {p.max_lines}"))
    for k, line in enumerate(lines, start=1):
        width = p.width(line)
        if width <= p.max_line_width + EPS:
            continue
        words = [w for w in split_words(line) if w.strip()]
        if len(words) == 1:
            found.append(
                Violation(
                    number,
                    "word",
                    f"line {k}: the word {words[0].strip()!r} is {_n(width)} wide, wider than a "
                    f"line ({_n(p.max_line_width)})",
                    impossible=True,
                )
            )
        else:
            found.append(
                Violation(
                    number, "width", f"line {k} is {_n(width)} wide, over {_n(p.max_line_width)}"
                )
            )
    return found


def _time_violations(number: int, cue: CueLike, p: SubtitleProfile) -> list[Violation]:
    duration = cue.end - cue.start
    if duration <= 0:
        return [
            Violation(
                number, "timing", f"ends ({_n(cue.end)} s) before it starts ({_n(cue.start)} s)"
            )
        ]
    found = []
    if duration < p.min_duration - EPS:
        found.append(
            Violation(number, "short", f"lasts {_n(duration)} s, under {_n(p.min_duration)} s")
        )
    if duration > p.max_duration + EPS:
        found.append(
            Violation(number, "long", f"lasts {_n(duration)} s, over {_n(p.max_duration)} s")
        )
    chars = sum(p.width(line) for line in cue.lines)
    if chars / p.max_cps > duration + EPS:
        found.append(
            Violation(
                number,
                "speed",
                f"reads at {chars / duration:.1f} characters per second, over {_n(p.max_cps)}",
            )
        )
    return found


def lint_cues(cues: Sequence[CueLike], profile: SubtitleProfile) -> list[Violation]:
    """Every way ``cues`` break ``profile``, in cue order."""
    found: list[Violation] = []
    previous: CueLike | None = None
    for number, cue in enumerate(cues, start=1):
        found.extend(_line_violations(number, cue.lines, profile))
        found.extend(_time_violations(number, cue, profile))
        if previous is not None:
            gap = cue.start - previous.end
            if gap < -EPS:
                found.append(
                    Violation(number, "overlap", f"overlaps cue {number - 1} by {_n(-gap)} s")
                )
            elif gap < profile.min_gap - EPS:
                found.append(
                    Violation(
                        number,
                        "gap",
                        f"starts {_n(max(0.0, gap))} s after cue {number - 1} ends, under the "
                        f"minimum gap of {_n(profile.min_gap)} s",
                    )
                )
        previous = cue
    return found
