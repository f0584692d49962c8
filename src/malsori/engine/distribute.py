"""Decoded windows back to their pieces: which segments (or runs of words) belong to which
request's speech, and what must be decoded again (an unfinished decode's tail, or a piece a
shared window lost)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Protocol

from .decoder import DecodedSegment, WindowResult
from .packing import Piece, Placement, TimedText, Window, assign, iter_pieces_after, owner

MAX_RETRIES = 2  # times the unfinished tail of a piece is decoded again


class Counts(Protocol):
    straddled: int
    lost: int
    unfinished: int


def distribute(
    window: Window, result: WindowResult, counts: Counts
) -> tuple[dict[int, list[TimedText]], dict[int, Piece]]:
    """The segments of each placement of a decoded window (window time), and the pieces to
    decode again, by placement index; ``counts`` records what happened."""
    placements = window.placements
    groups, straddled = _segments_by_placement(placements, result)
    redo = _unfinished(placements, result)
    counts.unfinished += len(redo)
    lost = _lost(placements, groups, redo)
    counts.lost += len(lost)
    counts.straddled += straddled
    redo.update(lost)
    return groups, redo


def straddles(window: Window, result: WindowResult) -> bool:
    """A segment of the window runs over two pieces (its words tell where it splits)."""
    items = [TimedText(s.start, s.end, s.text) for s in result.segments]
    return assign(window.placements, items)[1]


def _segments_by_placement(
    placements: list[Placement], result: WindowResult
) -> tuple[dict[int, list[TimedText]], int]:
    """Each segment (or, when one straddles two pieces, each run of its words) by the piece it
    belongs to, payload: the words, window time; and how many segments were split."""
    groups: dict[int, list[TimedText]] = {}
    split = 0
    for seg in result.segments:
        index, spill = owner(placements, seg.start, seg.end)
        if not (spill and seg.words):
            item = TimedText(seg.start, seg.end, seg.text, seg.words, tuple(seg.tokens))
            groups.setdefault(index, []).append(item)
            continue
        split += 1
        for run_index, run in _word_runs(placements, seg):
            text = "".join(w["word"] for w in run)
            item = TimedText(run[0]["start"], run[-1]["end"], text, run)
            groups.setdefault(run_index, []).append(item)
    return groups, split


def _word_runs(
    placements: list[Placement], seg: DecodedSegment
) -> list[tuple[int, list[dict[str, Any]]]]:
    runs: list[tuple[int, list[dict[str, Any]]]] = []
    for word in seg.words or ():
        index = owner(placements, word["start"], word["end"])[0]
        if runs and runs[-1][0] == index:
            runs[-1][1].append(word)
        else:
            runs.append((index, [word]))
    return runs


def _lost(
    placements: list[Placement], groups: dict[int, list[TimedText]], redo: dict[int, Piece]
) -> dict[int, Piece]:
    """Speech that got no text in a shared window, to be decoded again in a window of its own:
    Whisper sometimes runs two neighbours together or skips one. A piece that gets no text
    alone either is taken as it is (noise that VAD took for speech)."""
    if len(placements) < 2:
        return {}
    lost = {}
    for i, p in enumerate(placements):
        piece = p.piece
        if i in groups or i in redo or piece.audio is None:
            continue
        lost[i] = replace(piece, solo=True)
    return lost


def _unfinished(placements: list[Placement], result: WindowResult) -> dict[int, Piece]:
    """Pieces for the speech an unfinished decode did not reach, by placement index."""
    if result.complete_until is None or result.silent:
        return {}
    redo: dict[int, Piece] = {}
    index = {id(p): i for i, p in enumerate(placements)}
    for p, skip in iter_pieces_after(placements, result.complete_until):
        piece = p.piece
        if piece.retries >= MAX_RETRIES or piece.audio is None or skip >= piece.length:
            continue
        redo[index[id(p)]] = replace(
            piece, start=piece.start + skip, audio=piece.audio[skip:], retries=piece.retries + 1
        )
    return redo
