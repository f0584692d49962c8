"""Where a sentence ends: one rule for caption segments, live buffer trimming, subtitle cues and
Korean punctuation."""

from __future__ import annotations

import re

SENTENCE_END_MARKS = ".?!…。？！"
CLOSERS = "\"'”’»)]}」』】〉》"  # closing quotes and brackets that may follow the mark
SENTENCE_END = re.compile(rf"[{re.escape(SENTENCE_END_MARKS)}][{re.escape(CLOSERS)}]*$")


def is_sentence_end(word: str) -> bool:
    """Whether ``word`` (with any spaces around it) ends a sentence."""
    return bool(SENTENCE_END.search(word.strip()))


def starts_with_sentence_end(text: str) -> bool:
    """Whether ``text`` begins, after spaces, with a sentence-ending mark."""
    head = text.lstrip()[:1]
    return bool(head) and head in SENTENCE_END_MARKS
