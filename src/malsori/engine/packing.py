"""Packing speech from many files into shared 30-second windows, and splitting results back.

Whisper always looks at 30 s: a 5-second clip decoded alone pays for 25 s of padding in the
encoder. Here the speech regions (from VAD) of several files, all in the same language, go one
after the other into one window, separated by a second of silence, and the window is decoded
once. Whisper's timestamps then say which region each segment came from; segments are moved back
to their file's own time line. Regions are never cut by the packing: a region longer than a
window is split before (at a quiet point) by ``split_region``.

Everything here is plain arithmetic on sample indices, testable without a model.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from ..decoding import SAMPLE_RATE, WINDOW_S

GAP_S = 1.0  # silence between two regions in a window: Whisper ends a segment there
# Regions end this long before the window does: Whisper often leaves a segment open (no closing
# timestamp) when speech runs to the very end of its 30 s.
TAIL_S = 1.0
USABLE_SAMPLES = int((WINDOW_S - TAIL_S) * SAMPLE_RATE)  # 29 s of speech and gaps at most
GAP_SAMPLES = int(GAP_S * SAMPLE_RATE)


@dataclass
class Piece:
    """One speech region of one file, on its way through a window."""

    file: int  # the engine's index of the file
    part: int  # which stream part of the file (long inputs are read in parts)
    start: int  # first sample, in the file's time line
    audio: np.ndarray | None  # its samples (dropped once decoded)
    retries: int = 0  # times it was sent again because its window ended before it
    solo: bool = False  # decode it in a window of its own (a retry after packing lost it)
    long_form: bool = False  # from a recording longer than a window

    @property
    def length(self) -> int:
        return 0 if self.audio is None else int(self.audio.size)

    @property
    def start_s(self) -> float:
        return self.start / SAMPLE_RATE

    @property
    def end_s(self) -> float:
        return (self.start + self.length) / SAMPLE_RATE


@dataclass
class Placement:
    piece: Piece
    offset: int  # first sample of the piece in the window
    length: int  # samples

    @property
    def window_start(self) -> float:
        return self.offset / SAMPLE_RATE

    @property
    def window_end(self) -> float:
        return (self.offset + self.length) / SAMPLE_RATE

    def to_file_time(self, t: float) -> float:
        """A window time as a time in the piece's file, clamped to the piece."""
        t = min(max(t, self.window_start), self.window_end)
        return self.piece.start_s + (t - self.window_start)


@dataclass
class Window:
    """Pieces of one language, one after another, with silence between them."""

    language: str
    placements: list[Placement] = field(default_factory=list)
    used: int = 0  # samples taken, gaps included
    opened_at: int = 0  # windows the packer had closed when this one was opened
    created: float = field(default_factory=time.monotonic)  # when it was opened

    def fits(self, piece: Piece) -> bool:
        gap = GAP_SAMPLES if self.placements else 0
        return self.used + gap + piece.length <= USABLE_SAMPLES

    def add(self, piece: Piece) -> None:
        offset = self.used + (GAP_SAMPLES if self.placements else 0)
        self.placements.append(Placement(piece, offset, piece.length))
        self.used = offset + piece.length

    def keep_only(self, kept: Sequence[Placement]) -> bool:
        """Lay the window out again with only these placements' pieces (the others' requests
        went away); False when none is left."""
        pieces = [p.piece for p in kept]
        self.placements, self.used = [], 0
        for piece in pieces:
            self.add(piece)
        return bool(pieces)

    def audio(self) -> np.ndarray:
        """The window's content: the pieces at their offsets, silence (zeros) between them.

        The rest of the 30 s is padding, added to the features (as faster-whisper pads)."""
        buf = np.zeros(self.used, dtype=np.float32)
        for p in self.placements:
            if p.piece.audio is not None:
                buf[p.offset : p.offset + p.length] = p.piece.audio
        return buf

    def release(self) -> None:
        """Drop the audio of every piece (the window has been decoded)."""
        for p in self.placements:
            p.piece.audio = None

    @property
    def speech_seconds(self) -> float:
        return sum(p.length for p in self.placements) / SAMPLE_RATE

    @property
    def file_cuts(self) -> list[float]:
        """Window times between the speech of two different files (midway through the gap)."""
        return [
            (a.window_end + b.window_start) / 2
            for a, b in itertools.pairwise(self.placements)
            if a.piece.file != b.piece.file
        ]

    @property
    def one_recording(self) -> bool:
        """The speech of one long recording only, in its order: no timestamps needed to tell
        files apart, so it can be decoded without them (``engine._run_model``)."""
        files = {p.piece.file for p in self.placements}
        return len(files) == 1 and all(p.piece.long_form for p in self.placements)


class Packer:
    """Next-fit packing per language: a piece goes into its language's open window, or closes it.

    Pieces of one file arrive in order and stay in order, so a long file fills consecutive
    windows exactly as its speech runs. Which pieces share a window depends only on the order
    the pieces come in, not on when windows are taken, so a job packs the same way run after
    run:
    - a window open while ``max_wait`` others were closed is closed too (a language with few
      files does not hold its speech back for long);
    - pieces sent again (the unfinished tail of a decode) are packed among themselves, so
      when a decode comes back does not move the pieces of the main stream.
    """

    def __init__(self, max_wait: int = 16) -> None:
        self.max_wait = max_wait
        self.open: dict[tuple[str, bool], Window] = {}
        self.closed: list[Window] = []
        self.closed_count = 0  # windows closed so far

    def add(self, piece: Piece, language: str) -> None:
        if piece.length > USABLE_SAMPLES:
            raise ValueError(f"piece of {piece.length} samples does not fit a window")
        if piece.solo:
            alone = Window(language)
            alone.add(piece)
            self._close(alone)
            return
        key = (language, piece.retries > 0)
        window = self.open.get(key)
        if window is not None and not window.fits(piece):
            self._close(self.open.pop(key))
            window = None
        if window is None:
            window = self.open[key] = Window(language, opened_at=self.closed_count)
        window.add(piece)
        if window.used + GAP_SAMPLES >= USABLE_SAMPLES:  # full: nothing more fits
            self._close(self.open.pop(key))

    def _close(self, window: Window) -> None:
        self.closed.append(window)
        self.closed_count += 1
        for key, other in list(self.open.items()):
            if self.closed_count - other.opened_at >= self.max_wait:
                self.closed.append(self.open.pop(key))
                self.closed_count += 1

    def take(self, n: int, *, flush: bool = False) -> list[Window]:
        """Up to ``n`` windows to decode: closed ones (after closing every open one: ``flush``)."""
        if flush:
            for key in list(self.open):
                self._close(self.open.pop(key))
        taken, self.closed = self.closed[:n], self.closed[n:]
        return taken

    @property
    def ready(self) -> int:
        return len(self.closed)

    def oldest(self) -> float:
        """When the oldest window waiting (closed or open) was opened (inf: none)."""
        windows = [*self.closed, *self.open.values()]
        return min((w.created for w in windows), default=float("inf"))

    def newest_open(self) -> float:
        """When the newest open window was opened (-inf: none open)."""
        return max((w.created for w in self.open.values()), default=float("-inf"))

    @property
    def pending(self) -> int:
        return len(self.closed) + len(self.open)


def split_region(audio: np.ndarray, limit: int = USABLE_SAMPLES) -> list[tuple[int, int]]:
    """(start, end) sample ranges of at most ``limit`` covering ``audio``, cut at quiet points.

    Each cut is the quietest 100 ms in the last tenth of the allowed length, so a long stretch
    of speech without any pause is still cut between words whenever there is a dip, and the
    windows are nearly full. (Such windows, one recording's speech, are decoded without
    timestamps: with them, Whisper stopped early at the last timestamp more often the later the
    cut, and the rest was decoded again.)
    """
    ranges: list[tuple[int, int]] = []
    start = 0
    frame = SAMPLE_RATE // 10
    while audio.size - start > limit:
        lo, hi = start + (9 * limit) // 10, start + limit
        region = audio[lo:hi]
        n = region.size // frame
        energy = np.sqrt(np.mean(region[: n * frame].reshape(n, frame) ** 2, axis=1))
        cut = lo + int(np.argmin(energy)) * frame + frame // 2
        ranges.append((start, cut))
        start = cut
    ranges.append((start, int(audio.size)))
    return ranges


@dataclass(frozen=True)
class TimedText:
    """A decoded segment (or word) in window time, as Whisper's timestamps place it."""

    start: float
    end: float
    text: str
    payload: Any = None  # whatever the caller needs to carry along (tokens, words)
    tokens: tuple[int, ...] = ()  # Whisper's tokens of a whole segment (a run of words: none)


def overlap(a0: float, a1: float, b0: float, b1: float) -> float:
    return max(0.0, min(a1, b1) - max(a0, b0))


def reach(placements: Sequence[Placement], i: int) -> tuple[float, float]:
    """The stretch of window time that belongs to placement ``i``: its own span plus half of the
    silence on each side (and everything before the first / after the last)."""
    p = placements[i]
    lo = 0.0 if i == 0 else (placements[i - 1].window_end + p.window_start) / 2
    hi = (
        WINDOW_S
        if i == len(placements) - 1
        else (p.window_end + placements[i + 1].window_start) / 2
    )
    return lo, hi


# A segment that covers more than this much of another piece's speech is split at its words: a
# short word of the next file ("너무", 0.3 s) run into the previous file's segment goes back to
# its own file. Less is taken as timing jitter.
SPILL_S = 0.25


def owner(placements: Sequence[Placement], start: float, end: float) -> tuple[int, bool]:
    """Index of the placement a span of window time belongs to (largest overlap with its reach),
    and whether the span also covers a real part of another placement's speech."""
    if end <= start:
        end = start + 1e-3
    scores = [overlap(start, end, *reach(placements, i)) for i in range(len(placements))]
    best = int(np.argmax(scores))
    spill = any(
        overlap(start, end, p.window_start, p.window_end) > SPILL_S
        for i, p in enumerate(placements)
        if i != best
    )
    return best, spill


def assign(
    placements: Sequence[Placement], items: Sequence[TimedText]
) -> tuple[dict[int, list[TimedText]], bool]:
    """Items grouped by the placement they belong to; True when one straddles two placements
    (the caller then splits it word by word)."""
    groups: dict[int, list[TimedText]] = {}
    straddles = False
    for item in items:
        index, spill = owner(placements, item.start, item.end)
        straddles |= spill
        groups.setdefault(index, []).append(item)
    return groups, straddles


def to_file_time(placement: Placement, item: TimedText) -> TimedText:
    start = placement.to_file_time(item.start)
    end = max(placement.to_file_time(item.end), start)
    return replace(item, start=start, end=end)


def iter_pieces_after(
    placements: Sequence[Placement], complete_until: float
) -> Iterator[tuple[Placement, int]]:
    """Placements (and the sample within their piece) whose speech lies after ``complete_until``
    (window seconds): what an unfinished decode left out and must be decoded again."""
    for p in placements:
        if p.window_end <= complete_until + 0.1:
            continue
        skip = max(0, int((complete_until - p.window_start) * SAMPLE_RATE))
        yield p, skip
