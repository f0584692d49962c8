"""Cues from timed words: where to break, how to lay out two lines, how long each cue stays.

The words of a transcript are cut into cues by dynamic programming over the word sequence: every
candidate cue (a run of consecutive words) gets a cost from its line layout, its timing against
the profile and the place where it ends (a sentence end costs nothing, clause punctuation and
pauses little, a bare word boundary more; a cue that breaks a limit costs far more than any
style choice). The cheapest cut wins. Cues are consecutive runs, so no word is ever dropped,
duplicated or reordered; a cue starts when its first word starts (later only when the previous
cue's minimum gap forces it), stays up to ``linger`` after its last word, longer where its
reading speed or the minimum duration needs it and the silence after it has room, and gaps
shorter than half a second are closed to the profile's minimum gap.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..results import Segment, Word
from .profiles import SubtitleProfile
from .text import bad_line_end, bad_line_start, is_clause_end, is_sentence_end, split_words

EPS = 1e-3  # a millisecond: what SRT and WebVTT can express
CLOSE_GAP = 0.5  # seconds (12 frames at 24 fps): shorter gaps are closed to the minimum gap
LONG_PAUSE = 1.0  # seconds: a cue should not run over a pause longer than this
_CUE_COST = 2.0  # each cue: prefer fewer, fuller cues
_VIOLATION = 1000.0  # a cue that breaks a limit, per second (or per character) over it
_OVERLONG_WORD = 50.0  # a word wider than a line: unavoidable, on a line of its own
# A sentence end inside a cue costs more than a cue: sentences get cues of their own unless one
# is too short to stand alone.
_INNER_SENTENCE_END = 3.0
# A line or a cue that ends on "the", "of", 그... or starts with 수, 것, 를...: more than a cue
# costs, so it happens only where every other break is worse.
_STICKY_BREAK = 6.0


@dataclass(frozen=True)
class Cue:
    """One subtitle: its time on screen, its lines, and the words it shows."""

    start: float
    end: float
    lines: tuple[str, ...]
    words: tuple[Word, ...]
    split: bool = False  # holds part of a Whisper segment that spread over several cues
    extended: bool = False  # stays past ``linger`` after its last word for reading speed
    speaker: str | None = None  # who speaks it, when diarized (a cue never holds two speakers)

    @property
    def text(self) -> str:
        return "\n".join(self.lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "start": round(self.start, 3),
            "end": round(self.end, 3),
            "lines": list(self.lines),
            "split": self.split,
            "extended": self.extended,
            **({"speaker": self.speaker} if self.speaker is not None else {}),
        }


def estimate_words(text: str, start: float, end: float) -> list[Word]:
    """Words of ``text`` timed by their length over ``[start, end]`` (no audio to align)."""
    tokens = [t for t in split_words(text) if t.strip()]
    if not tokens:
        return []
    weights = [len(t.strip()) + 1 for t in tokens]
    scale = max(0.0, end - start) / sum(weights)
    words, t = [], start
    for token, weight in zip(tokens, weights, strict=True):
        words.append(Word(t, t + weight * scale, token, 1.0))
        t += weight * scale
    return words


def segment_words(segments: Sequence[Segment]) -> tuple[list[Word], list[int]]:
    """Every word with text, and the index of the segment it came from.

    A segment's own timed words are used when they join to its text; otherwise (no word
    timestamps, or text changed after alignment) its words are estimated from their length.
    """
    words: list[Word] = []
    owners: list[int] = []
    for index, segment in enumerate(segments):
        if not segment.text.strip():
            continue
        joined = "".join(w.word for w in segment.words)
        if segment.words and joined.strip() == segment.text.strip():
            timed = [w for w in segment.words if w.word.strip()]
        else:
            timed = estimate_words(segment.text, segment.start, segment.end)
        words.extend(timed)
        owners.extend([index] * len(timed))
    return words, owners


class _Stream:
    """The word stream with the prefix sums the cost functions need, in O(1) per query."""

    def __init__(self, words: Sequence[Word], owners: Sequence[int], profile: SubtitleProfile):
        self.profile = profile
        self.texts = [w.word for w in words]
        self.owners = list(owners)
        self.n = len(words)
        starts: list[float] = []
        ends: list[float] = []
        for w in words:  # times never go backwards
            s = max(w.start, starts[-1]) if starts else w.start
            starts.append(s)
            ends.append(max(w.end, s))
        self.starts, self.ends = starts, ends
        space = profile.width(" ")
        self.space = [space if t[:1].isspace() else 0.0 for t in self.texts]
        self.widths = [profile.width(t.strip()) for t in self.texts]
        self.cum = [0.0]
        for width, sp in zip(self.widths, self.space, strict=True):
            self.cum.append(self.cum[-1] + width + sp)
        # inner[k]: cost of a cue running over the boundary before word k (k >= 1)
        self.inner = [0.0, 0.0]
        for k in range(1, self.n):
            pause = starts[k] - ends[k - 1]
            cost = 2.0 * max(0.0, pause - LONG_PAUSE)
            if is_sentence_end(self.texts[k - 1]):
                cost += _INNER_SENTENCE_END
            self.inner.append(self.inner[-1] + cost)

    def width(self, i: int, j: int) -> float:
        """Width of words ``i..j-1`` on one line."""
        return self.cum[j] - self.cum[i] - self.space[i]

    def inner_cost(self, i: int, j: int) -> float:
        return self.inner[j] - self.inner[i + 1]

    def line_text(self, i: int, j: int) -> str:
        return "".join(self.texts[i:j]).strip()

    def boundary_cost(self, j: int) -> float:
        """Cost of ending a cue before word ``j``."""
        if j >= self.n:
            return 0.0
        last, pause = self.texts[j - 1], self.starts[j] - self.ends[j - 1]
        if is_sentence_end(last):
            cost = 0.0
        elif is_clause_end(last) or pause >= 0.5:
            cost = 1.0
        elif pause >= 0.25:
            cost = 2.0
        else:
            cost = 4.0
        if bad_line_end(last) or bad_line_start(self.texts[j]):
            cost += _STICKY_BREAK
        if self.owners[j] != self.owners[j - 1]:
            cost = max(0.0, cost - 0.5)
        return cost


def _line_break_cost(stream: _Stream, k: int) -> float:
    """Cost of a line break before word ``k`` inside a cue."""
    last = stream.texts[k - 1]
    cost = 0.0 if is_sentence_end(last) or is_clause_end(last) else 1.0
    if bad_line_end(last) or bad_line_start(stream.texts[k]):
        cost += _STICKY_BREAK
    return cost


def _line_fits(stream: _Stream, i: int, j: int) -> tuple[bool, float]:
    """Whether words ``i..j-1`` fit one line, and the penalty (an overlong word alone)."""
    if stream.width(i, j) <= stream.profile.max_line_width + EPS:
        return True, 0.0
    if j - i == 1:
        return True, _OVERLONG_WORD
    return False, 0.0


def layout(stream: _Stream, i: int, j: int) -> tuple[float, tuple[int, ...]] | None:
    """The best line breaks of words ``i..j-1`` (cost, break indices), or None if none fits."""
    limit = stream.profile.max_line_width
    fits, penalty = _line_fits(stream, i, j)
    if fits:
        return penalty, ()
    if stream.profile.max_lines < 2:
        return None
    best: tuple[float, tuple[int, ...]] | None = None
    for k in range(i + 1, j):
        ok1, p1 = _line_fits(stream, i, k)
        if not ok1:
            break  # the first line only grows with k
        if stream.profile.max_lines == 2:
            ok2, p2 = _line_fits(stream, k, j)
            if not ok2:
                continue
            balance = 2.0 * abs(stream.width(i, k) - stream.width(k, j)) / limit
            cost = p1 + p2 + balance + _line_break_cost(stream, k)
            rest: tuple[int, ...] = ()
        else:
            sub = _layout_fewer(stream, k, j, stream.profile.max_lines - 1)
            if sub is None:
                continue
            cost = p1 + sub[0] + _line_break_cost(stream, k)
            rest = sub[1]
        if best is None or cost < best[0]:
            best = (cost, (k, *rest))
    return best


def _layout_fewer(
    stream: _Stream, i: int, j: int, lines: int
) -> tuple[float, tuple[int, ...]] | None:
    """Layout with at most ``lines`` lines (profiles with three or four lines)."""
    fits, penalty = _line_fits(stream, i, j)
    if fits:
        return penalty, ()
    if lines < 2:
        return None
    best: tuple[float, tuple[int, ...]] | None = None
    for k in range(i + 1, j):
        ok, p = _line_fits(stream, i, k)
        if not ok:
            break
        sub = _layout_fewer(stream, k, j, lines - 1)
        if sub is not None and (best is None or p + sub[0] < best[0]):
            best = (p + sub[0] + _line_break_cost(stream, k), (k, *sub[1]))
    return best


@dataclass(frozen=True)
class _Timing:
    end: float
    violation: float  # seconds by which the profile's limits cannot be met
    extended: bool


def timing(stream: _Stream, i: int, j: int, start: float) -> _Timing:
    """When cue ``i..j-1`` starting at ``start`` should end, given where the next one starts."""
    p = stream.profile
    last_end = stream.ends[j - 1]
    ceiling = start + p.max_duration
    next_start = stream.starts[j] if j < stream.n else math.inf
    ceiling = min(ceiling, next_start - p.min_gap)
    need = max(start + p.min_duration, start + stream.width(i, j) / p.max_cps)
    end = max(need, min(last_end + p.linger, ceiling))
    if ceiling - end < CLOSE_GAP:
        end = max(end, ceiling)  # close a short gap down to the minimum
    violation = max(0.0, need - ceiling)
    end = min(end, ceiling)
    if end <= start + EPS:  # the next word starts at once: this cue cannot end in time
        end = start + p.min_duration
    return _Timing(end, violation, need > last_end + p.linger + EPS)


def _cue_cost(stream: _Stream, i: int, j: int) -> tuple[float, tuple[int, ...]]:
    lay = layout(stream, i, j)
    if lay is None:
        over = stream.width(i, j) - stream.profile.max_lines * stream.profile.max_line_width
        lay = (_VIOLATION * (1 + max(0.0, over)), ())
    t = timing(stream, i, j, stream.starts[i])
    cost = _CUE_COST + lay[0] + stream.inner_cost(i, j) + stream.boundary_cost(j)
    if t.violation > 0:
        cost += _VIOLATION * (1 + t.violation)
    return cost, lay[1]


def _cut(stream: _Stream) -> list[tuple[int, int, tuple[int, ...]]]:
    """The cheapest cut of the stream into cues: (first word, end word, line breaks)."""
    p = stream.profile
    most = p.max_lines * p.max_line_width
    best = [0.0] + [math.inf] * stream.n
    choice: list[tuple[int, tuple[int, ...]]] = [(0, ())] * (stream.n + 1)
    for j in range(1, stream.n + 1):
        for i in range(j - 1, -1, -1):
            if j - i > 1 and (
                stream.width(i, j) > most + EPS
                or stream.ends[j - 1] - stream.starts[i] > p.max_duration
            ):
                break
            cost, breaks = _cue_cost(stream, i, j)
            if best[i] + cost < best[j]:
                best[j] = best[i] + cost
                choice[j] = (i, breaks)
    cuts = []
    j = stream.n
    while j > 0:
        i, breaks = choice[j]
        cuts.append((i, j, breaks))
        j = i
    return cuts[::-1]


def _ms_up(t: float) -> float:
    return math.ceil(t * 1000 - 1e-6) / 1000


def build_cues(
    words: Sequence[Word],
    profile: SubtitleProfile,
    owners: Sequence[int] | None = None,
    *,
    after: float = -math.inf,
    speaker: str | None = None,
) -> list[Cue]:
    """Cues for ``words`` (in order) under ``profile``; ``owners`` tells each word's segment;
    the first cue starts at least the profile's minimum gap ``after`` a previous cue's end."""
    words = [w for w in words if w.word.strip()]
    stream = _Stream(words, owners if owners is not None else [0] * len(words), profile)
    cues: list[Cue] = []
    previous_end = after
    first_of = {o: k for k, o in reversed(list(enumerate(stream.owners)))}
    last_of = {o: k for k, o in enumerate(stream.owners)}
    for i, j, breaks in _cut(stream):
        start = _ms_up(max(stream.starts[i], previous_end + profile.min_gap))
        t = timing(stream, i, j, start)
        end = round(t.end, 3)
        bounds = (i, *breaks, j)
        lines = tuple(stream.line_text(a, b) for a, b in itertools.pairwise(bounds))
        whole = first_of[stream.owners[i]] == i and last_of[stream.owners[j - 1]] == j - 1
        cues.append(Cue(start, end, lines, tuple(words[i:j]), not whole, t.extended, speaker))
        previous_end = end
    return cues


def transcript_cues(segments: Sequence[Segment], profile: SubtitleProfile) -> list[Cue]:
    """Cues for a transcript's segments (their timed words, or words timed by length); a
    diarized transcript's cues are built per run of one speaker's segments, so that a cue never
    holds two speakers."""
    cues: list[Cue] = []
    for speaker, run in itertools.groupby(segments, key=lambda s: s.speaker):
        words, owners = segment_words(list(run))
        after = cues[-1].end if cues else -math.inf
        cues.extend(build_cues(words, profile, owners, after=after, speaker=speaker))
    return cues
