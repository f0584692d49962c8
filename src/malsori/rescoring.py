"""N-best rescoring: Whisper's few best readings of a window, re-ranked with a language model.

Beam search keeps several hypotheses of a window to the end; Whisper writes the one its own
scores like best. A language model of the written language knows things Whisper's decoder
weighs too lightly (which word forms exist, which endings go together), so the hypothesis with
the best sum of both scores is often a better reading:

    score(h) = whisper_logprob(h) + weight * lm_score(h)

Both are sums of log-probabilities over the hypothesis (Whisper's over its tokens, the LM's over
its words). Rescoring only re-ranks what Whisper itself proposed, at temperature 0; the window's
fallback checks and no-speech skip are decided on Whisper's own best hypothesis first, as
without rescoring, so a window is skipped or decoded again exactly when it would be otherwise.

A hypothesis is never picked on language-model score alone when it

- has no text, or the language model cannot read it (an error, a text in another script);
- writes Latin letters or digits that Whisper's best does not have (a Korean word rewritten in
  Latin letters, "두 시간" as "2시간"): a language model scores notation, not sound, and these
  flips were wrong every time they were seen;
- fails Whisper's compression-ratio check (a loop).

A number written as digits or as words is scored in one notation (``Scorer.normalize``), so the
language model decides between words and Whisper's score between notations.

This module imports nothing of malsori's but ``decoding``: the scorers live with their language
(``korean.KiwiScorer``); ``rescorer_for`` builds the one for a transcription's options. Any object
with ``score(text) -> float`` (and optionally ``normalize(text) -> str``) is a scorer: a user's own
n-gram model plugs in with ``use_scorer(language, scorer)``.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from .decoding import compression_ratio
from .errors import ScorerError

__all__ = ["Hypothesis", "Rescorer", "Scorer", "ScorerError", "rescorer_for", "use_scorer"]

logger = logging.getLogger(__name__)

# The weight of the language model's score and how many hypotheses beam search keeps, chosen on
# a tuning split of the dev set (docs/accuracy.md has the curve): Korean, Kiwi's model.
DEFAULT_WEIGHT = 1.0
DEFAULT_HYPOTHESES = 5
DEFAULT_LENGTH_NORM = False

_DIGIT = re.compile(r"[0-9０-９]")
_LATIN = re.compile(r"[A-Za-zＡ-Ｚａ-ｚ]")


class Scorer(Protocol):
    """A language model: the log-probability-like score of a text (higher is likelier)."""

    def score(self, text: str) -> float: ...


@dataclass(frozen=True)
class Hypothesis:
    """One reading of a window: its tokens, text (no timestamps) and Whisper's log-probability
    (the sum over its tokens)."""

    tokens: Sequence[int]
    text: str
    logprob: float


@dataclass
class Choice:
    """What the rescorer did with one window's hypotheses (for logs and the tuning script)."""

    hypotheses: list[Hypothesis]
    lm_scores: list[float | None]
    chosen: int


def _latin_script(text: str) -> bool:
    """Whether most letters of ``text`` are Latin (then Latin letters are not a change)."""
    letters = sum(c.isalpha() for c in text)
    return len(_LATIN.findall(text)) * 2 > letters


def _foreign(text: str, latin: bool) -> int:
    """Characters that would be a change of notation: digits, and Latin letters in a text of
    another script."""
    return len(_DIGIT.findall(text)) + (0 if latin else len(_LATIN.findall(text)))


@dataclass
class Rescorer:
    """Re-ranks the hypotheses of windows in the languages of ``scorers``."""

    scorers: dict[str, Scorer]
    weight: float = DEFAULT_WEIGHT
    hypotheses: int = DEFAULT_HYPOTHESES
    # True: the combined score is divided by the hypothesis's token count (to the power
    # ``length_penalty``), as beam search ranks its hypotheses; False: sums are compared.
    length_norm: bool = DEFAULT_LENGTH_NORM
    length_penalty: float = 1.0
    max_compression_ratio: float | None = 2.4
    # Called with every rescored window's hypotheses and choice (the tuning script records them).
    observer: Callable[[Choice], None] | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def applies(self, language: str | None) -> bool:
        return language in self.scorers

    def _lm(self, scorer: Scorer, text: str) -> float | None:
        try:
            normalize = getattr(scorer, "normalize", None)
            if normalize is not None:
                text = normalize(text)
            return float(scorer.score(text))
        except Exception as e:  # a scorer failing on odd text costs the window its rescoring
            logger.debug("scorer failed on %r: %s", text[:80], e)
            return None

    def _eligible(self, hyp: Hypothesis, best: Hypothesis) -> bool:
        text = hyp.text.strip()
        if not text:
            return False
        latin = _latin_script(best.text)
        if _foreign(text, latin) > _foreign(best.text, latin):
            return False
        return (
            self.max_compression_ratio is None
            or compression_ratio(text) <= self.max_compression_ratio
        )

    def total(self, hyp: Hypothesis, lm: float) -> float:
        """The combined score of a hypothesis whose language-model score is ``lm``."""
        combined = hyp.logprob + self.weight * lm
        if self.length_norm:
            combined /= max(len(hyp.tokens), 1) ** self.length_penalty
        return combined

    def choose(self, hyps: Sequence[Hypothesis], language: str | None) -> int:
        """Index of the hypothesis to write (0, Whisper's best, when rescoring cannot help)."""
        scorer = self.scorers.get(language or "")
        hyps = list(hyps)
        if scorer is None or len(hyps) < 2 or not hyps[0].text.strip():
            return 0
        lm: list[float | None] = [None] * len(hyps)
        lm[0] = self._lm(scorer, hyps[0].text)
        chosen = 0
        if lm[0] is not None:
            best = self.total(hyps[0], lm[0])
            for i in range(1, len(hyps)):
                if not self._eligible(hyps[i], hyps[0]):
                    continue
                score = lm[i] = self._lm(scorer, hyps[i].text)
                if score is not None and self.total(hyps[i], score) > best:
                    best, chosen = self.total(hyps[i], score), i
        if self.observer is not None:
            with self._lock:
                self.observer(Choice(hyps, lm, chosen))
        return chosen

    def choose_result(
        self, result: Any, language: str | None, decode: Callable[[list[int]], str]
    ) -> int:
        """``choose`` over a CTranslate2 ``WhisperGenerationResult``: its ``sequences_ids`` and
        length-normalised ``scores``, turned back into sums."""
        if not self.applies(language) or len(result.sequences_ids) < 2:
            return 0
        scale = self.length_penalty
        hyps = [
            Hypothesis(ids, decode(list(ids)), float(score) * max(len(ids), 1) ** scale)
            for ids, score in zip(result.sequences_ids, result.scores, strict=False)
        ]
        return self.choose(hyps, language)


_user_scorers: dict[str, Scorer] = {}
_user_lock = threading.Lock()


def use_scorer(language: str, scorer: Scorer | None) -> None:
    """Rescore ``language`` with ``scorer`` in this process (None: back to the built-in one).

    A scorer is any object with ``score(text) -> float`` (a log-probability: higher is likelier;
    raise on text it cannot read) and optionally ``normalize(text) -> str`` (the form it scores).
    """
    with _user_lock:
        if scorer is None:
            _user_scorers.pop(language, None)
        else:
            _user_scorers[language] = scorer


def scorer_for(language: str, number_style: str = "keep") -> Scorer | None:
    """The scorer for ``language``: the user's, else the built-in one (Korean: Kiwi), else None."""
    with _user_lock:
        if language in _user_scorers:
            return _user_scorers[language]
    if language == "ko":
        from .korean import KiwiScorer

        return KiwiScorer(number_style)
    return None


def rescorer_for(options: Any) -> Rescorer | None:
    """The rescorer a transcription with ``options`` (a ``TranscribeOptions``) uses; None when
    rescoring is off or no language it may decode has a scorer.

    ``rescore`` switches it, ``rescore_weight`` and ``rescore_hypotheses`` tune it,
    ``number_style`` picks the notation numbers are scored in. Translation is never rescored (the
    output is English, the scorers are not), nor greedy decoding (one hypothesis).
    """
    if not options.rescore or options.task != "transcribe" or options.beam_size < 2:
        return None
    with _user_lock:
        languages = [options.language] if options.language else ["ko", *_user_scorers]
    found = {lang: scorer_for(lang, options.number_style) for lang in dict.fromkeys(languages)}
    scorers = {lang: s for lang, s in found.items() if s is not None}
    if not scorers:
        return None
    return Rescorer(
        scorers,
        weight=DEFAULT_WEIGHT if options.rescore_weight is None else options.rescore_weight,
        hypotheses=min(options.rescore_hypotheses, options.beam_size),
        length_penalty=options.length_penalty,
        max_compression_ratio=options.compression_ratio_threshold,
    )
