"""LocalAgreement: which words of a re-decoded audio buffer are safe to show as final.

The streaming engine decodes its whole rolling buffer again every time new audio arrives. Each
decode is a *hypothesis*: timed words, the last ones often wrong because the speaker has not
finished them. A word is committed (final, never changes) once ``agreement`` consecutive
hypotheses agree on it and on every word before it: the longest common prefix of the last
``agreement`` hypotheses (the policy of ufal/whisper_streaming, Macháček et al. 2023).

Pure Python, no model: ``insert`` a hypothesis (absolute times), ``flush`` the newly committed
words, read ``pending`` for the words that may still change.
"""

from __future__ import annotations

import re
import unicodedata
from collections import deque
from collections.abc import Iterable, Sequence

from ..results import Word

# Words starting this much before the last committed word's end are still considered new (word
# times move by a few tens of milliseconds between decodes).
_TIME_SLACK_S = 0.1
# Whisper repeats committed words still inside the audio buffer; an overlap of up to this many
# words between the committed tail and the start of a new hypothesis is removed.
_MAX_OVERLAP_WORDS = 5
# Only look for such an overlap when the hypothesis starts this close to the committed end.
_OVERLAP_WINDOW_S = 1.0

_NON_WORD = re.compile(r"[\W_]+", re.UNICODE)


def word_key(text: str) -> str:
    """What two hypotheses must share for a word to agree: case, width, spaces and punctuation
    are ignored ("Hello," and " hello" agree), so a comma that comes and goes does not hold a
    word back. Text made only of punctuation keeps its characters."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    return _NON_WORD.sub("", folded) or folded.strip()


def join_words(words: Iterable[Word]) -> str:
    """The words' text as Whisper wrote it (each word carries its own leading space)."""
    return "".join(w.word for w in words).strip()


def _common_prefix(hypotheses: Sequence[Sequence[Word]]) -> int:
    """Length of the longest prefix on which every hypothesis agrees (by ``word_key``)."""
    n = min(len(h) for h in hypotheses)
    for i in range(n):
        key = word_key(hypotheses[0][i].word)
        if any(word_key(h[i].word) != key for h in hypotheses[1:]):
            return i
    return n


class LocalAgreement:
    """Commits the longest common prefix of the last ``agreement`` hypotheses.

    ``agreement=2`` is whisper_streaming's LocalAgreement-2: a word is final once two
    consecutive decodes put it (and everything before it) in the same place. The committed
    words are returned by ``flush`` once and never again; the last hypothesis past them is
    ``pending``.
    """

    def __init__(self, agreement: int = 2):
        if agreement < 2:
            raise ValueError(f"agreement needs at least 2 hypotheses, got {agreement}")
        self.agreement = agreement
        self.committed: list[Word] = []  # every committed word, oldest first
        self._previous: deque[list[Word]] = deque(maxlen=agreement - 1)
        self._latest: list[Word] = []
        self._utterance_from = 0  # index of the current utterance's first committed word

    @property
    def committed_end(self) -> float:
        """End time of the last committed word (0 before any)."""
        return self.committed[-1].end if self.committed else 0.0

    @property
    def pending(self) -> tuple[Word, ...]:
        """Words of the latest hypothesis past the committed ones: may still change."""
        return tuple(self._latest)

    def insert(self, words: Sequence[Word]) -> None:
        """Add the next hypothesis (absolute times); words already committed are dropped."""
        fresh = [w for w in words if w.start > self.committed_end - _TIME_SLACK_S]
        if (
            fresh
            and self.committed
            and abs(fresh[0].start - self.committed_end) < _OVERLAP_WINDOW_S
        ):
            fresh = fresh[self._overlap(fresh) :]
        if self._latest:
            self._previous.append(self._latest)
        self._latest = fresh

    def _overlap(self, fresh: Sequence[Word]) -> int:
        """Number of leading words of ``fresh`` that repeat the tail of the committed words."""
        longest = min(len(self.committed), len(fresh), _MAX_OVERLAP_WORDS)
        for n in range(longest, 0, -1):
            tail = [word_key(w.word) for w in self.committed[-n:]]
            head = [word_key(w.word) for w in fresh[:n]]
            if tail == head:
                return n
        return 0

    def flush(self, until: float | None = None) -> list[Word]:
        """Commit and return the words the last ``agreement`` hypotheses agree on; with
        ``until``, only those that end by then (the last words before the end of the audio are
        often a word cut in half, which two decodes can agree on all the same)."""
        if len(self._previous) < self.agreement - 1 or not self._latest:
            return []
        n = _common_prefix([*self._previous, self._latest])
        if until is not None:
            n = min(n, sum(1 for w in self._latest if w.end <= until))
        if n == 0:
            return []
        return self._commit(n)

    def commit_pending(self, until: float | None = None) -> list[Word]:
        """Commit the latest hypothesis without waiting for agreement (the speaker stopped, or
        the stream ends). ``until``: only words that end by then.

        Words that only say again what this utterance already committed are dropped instead:
        with nothing to agree with, a decode that wrote the utterance's last phrase twice
        ("고객님 양해 바랍니다 고객님 양해 바") would otherwise be final twice."""
        n = len(self._latest)
        if until is not None:
            n = sum(1 for w in self._latest if w.end <= until + _TIME_SLACK_S)
        if n and self._repeats_utterance(self._latest[:n]):
            self._latest = self._latest[n:]
            self._previous.clear()
            return []
        words = self._commit(n) if n else []
        self._previous.clear()  # earlier hypotheses never agreed on what follows
        return words

    def _repeats_utterance(self, words: Sequence[Word]) -> bool:
        """Whether ``words`` (two or more) repeat the end of this utterance's committed words,
        the last of them possibly cut short ("바" for "바랍니다"), spaces ignored."""
        utterance = self.committed[self._utterance_from :]
        if len(words) < 2 or not utterance:
            return False
        said = "".join(word_key(w.word) for w in words)
        last = len(word_key(utterance[-1].word))
        for m in range(1, min(len(utterance), len(words) + 2) + 1):
            tail = "".join(word_key(w.word) for w in utterance[-m:])
            # From the start of a committed word on, to somewhere in the last one.
            if said and tail.startswith(said) and len(tail) - last < len(said):
                return True
        return False

    def _commit(self, n: int) -> list[Word]:
        words: list[Word] = []
        cursor = self.committed_end
        for w in self._latest[:n]:  # the newest times for the agreed words, never going back
            start = max(w.start, cursor)
            words.append(Word(start, max(w.end, start), w.word, w.probability))
            cursor = words[-1].end
        self.committed.extend(words)
        self._latest = self._latest[n:]
        self._previous = deque(
            (h[n:] for h in self._previous if len(h) >= n), maxlen=self.agreement - 1
        )
        return words

    def reset_hypotheses(self) -> None:
        """Forget uncommitted hypotheses (their audio was dropped); the next committed words
        begin a new utterance."""
        self._previous.clear()
        self._latest = []
        self._utterance_from = len(self.committed)
