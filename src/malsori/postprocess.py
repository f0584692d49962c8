"""Text post-processing of final segments: Korean spacing, punctuation and numbers, then the
glossary's replacement rules.

Steps run in this order on each segment's text, each only when its option is on:

==================  =========================  ==================================================
option              flag on a changed segment  what it does
==================  =========================  ==================================================
korean_spacing      ``spacing_corrected``      Korean spaces orthography requires or forbids,
                                               and missing spaces in under-spaced text
number_style        ``numbers_converted``      writes Korean numbers as digits or as words
korean_punctuation  ``punctuation_added``      ends Korean sentences that have no "." or "?"
glossary            ``glossary_replaced``      applies the replacement rules (last, so they win)
==================  =========================  ==================================================

The Korean steps run only when the transcript's language is Korean and the task is
``transcribe``. When the text changes, its words follow: ``realign_words`` re-cuts the timed
words to the new text by aligning characters, so a segment's text still equals the join of its
words and word times stay in order and inside the segment.

``malsori.transcribe`` runs this on each segment as soon as it is decoded, before ``on_segment``
sees it, so live output and the final transcript agree.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import replace
from difflib import SequenceMatcher

from . import korean
from .options import TranscribeOptions
from .results import Segment, Word

logger = logging.getLogger(__name__)

Step = tuple[str, Callable[[str], str]]  # (flag, text -> text)
# The flags this stage puts on the segments it changes, in the order its steps run.
FLAGS = ("spacing_corrected", "numbers_converted", "punctuation_added", "glossary_replaced")


def _steps(language: str | None, options: TranscribeOptions) -> list[Step]:
    steps: list[Step] = []
    if language == "ko" and options.task == "transcribe":
        if options.korean_spacing:
            steps.append(("spacing_corrected", korean.space))
        if options.number_style != "keep":
            style = options.number_style
            steps.append(("numbers_converted", lambda t: korean.convert_numbers(t, style)))
        if options.korean_punctuation:
            steps.append(("punctuation_added", korean.add_sentence_punctuation))
    glossary = options.glossary
    if glossary is not None and glossary.rules:
        steps.append(("glossary_replaced", glossary.replace))
    return steps


def postprocess_segments(
    segments: Sequence[Segment], language: str | None, options: TranscribeOptions
) -> tuple[Segment, ...]:
    """``segments`` with their text post-processed (see the module notes)."""
    steps = _steps(language, options)
    return tuple(_apply(s, steps) for s in segments)


def postprocess_segment(
    segment: Segment, language: str | None, options: TranscribeOptions
) -> Segment:
    """One segment post-processed; the same object when nothing applies or changes."""
    return _apply(segment, _steps(language, options))


def _apply(segment: Segment, steps: list[Step]) -> Segment:
    text = segment.text
    flags = list(segment.flags)
    for flag, step in steps:
        if not text.strip():
            break
        changed = step(text)
        if changed != text:
            text = changed
            if flag not in flags:
                flags.append(flag)
    if text == segment.text:
        return segment
    if not text.strip():  # a rule deleted everything: keep text == "".join(words)
        text = ""
    logger.debug("post-processed %r -> %r", segment.text, text)
    words = realign_words(segment.words, text, segment.start, segment.end)
    return replace(segment, text=text, words=words, flags=tuple(flags))


# --- words follow the text -------------------------------------------------------------------


def _char_map(old: str, new: str) -> list[int]:
    """For each character of ``new``, the index of the ``old`` character it came from (replaced
    runs map proportionally; inserted characters map to the old character before them)."""
    mapping: list[int] = []
    matcher = SequenceMatcher(None, old, new, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            mapping.extend(range(i1, i2))
        elif tag in ("replace", "insert"):
            for k in range(j2 - j1):
                if i2 > i1:
                    mapping.append(i1 + k * (i2 - i1) // (j2 - j1))
                else:
                    mapping.append(max(i1 - 1, 0))
    return mapping


def _boundaries(old_words: Sequence[str], new: str, mapping: list[int]) -> list[int]:
    """Start indices in ``new`` of the new words: where the new text starts a spaced word, and
    where the owning old word changes unless a space between the two was removed there."""
    owner = [i for i, w in enumerate(old_words) for _ in w]
    spaced = {i for i, w in enumerate(old_words) if w[:1].isspace()}
    starts = [0]
    for j in range(1, len(new)):
        if not new[j:].strip():
            break  # trailing spaces stay with the last word
        prev_space, here_space = new[j - 1].isspace(), new[j].isspace()
        if here_space and not prev_space:
            starts.append(j)  # a word starts with its leading space
            continue
        o_prev, o_here = owner[mapping[j - 1]], owner[mapping[j]]
        if o_here != o_prev and not prev_space and not here_space and o_here not in spaced:
            starts.append(j)  # two words written together before and still (CJK, subwords)
    return starts


class _Clock:
    """Start and end time of each old character, spread evenly over its word's non-space
    characters (a leading space takes no time)."""

    def __init__(self, words: Sequence[Word]):
        self.words = words
        self.slots: list[tuple[int, int, int]] = []  # (word, rank among non-spaces, non-spaces)
        for i, w in enumerate(words):
            count = max(sum(1 for c in w.word if not c.isspace()), 1)
            rank = 0
            for c in w.word:
                self.slots.append((i, rank, count))
                rank += 0 if c.isspace() else 1

    def start(self, index: int) -> float:
        i, rank, count = self.slots[index]
        w = self.words[i]
        return w.start + (w.end - w.start) * min(rank, count - 1) / count

    def end(self, index: int) -> float:
        i, rank, count = self.slots[index]
        w = self.words[i]
        return w.start + (w.end - w.start) * min(rank + 1, count) / count

    def owner(self, index: int) -> int:
        return self.slots[index][0]


def realign_words(
    words: Sequence[Word], new_text: str, seg_start: float, seg_end: float
) -> tuple[Word, ...]:
    """Timed words for ``new_text``, re-cut from ``words`` (whose join is the old text).

    Characters are aligned with difflib; a word split in two shares its time in proportion to
    its characters, merged words take the first start and the last end, and the probability of a
    new word is the mean over the old words it covers. The result joins to ``new_text``, with
    times that never go backwards and lie within ``seg_start``..``seg_end``.
    """
    old_text = "".join(w.word for w in words)
    if not old_text or not new_text.strip():
        return ()
    mapping = _char_map(old_text, new_text)
    clock = _Clock(words)
    starts = _boundaries([w.word for w in words], new_text, mapping)
    result: list[Word] = []
    cursor = seg_start
    for a, b in zip(starts, [*starts[1:], len(new_text)], strict=True):
        core = [mapping[j] for j in range(a, b) if not new_text[j].isspace()]
        covered = sorted({clock.owner(i) for i in core})
        probability = sum(words[i].probability for i in covered) / len(covered)
        start = min(max(clock.start(core[0]), cursor, seg_start), seg_end)
        end = min(max(clock.end(core[-1]), start), seg_end)
        result.append(Word(start, end, new_text[a:b], probability))
        cursor = start
    return tuple(result)
