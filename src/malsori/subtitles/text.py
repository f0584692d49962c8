"""Where a line or a cue may break: sentence and clause ends, and words that must not be left alone.

English articles, prepositions and conjunctions, and Korean determiners (관형사: 그, 이런, 몇...),
should not end a line; a Korean bound noun or a particle written apart (수, 것, 때, 를...) should
not start one. Word lists, not a tagger: a line break is decided for every candidate of every cue,
and the lists cover the cases a subtitler fixes by hand.
"""

from __future__ import annotations

import re
import unicodedata

from ..sentences import CLOSERS as _CLOSERS
from ..sentences import is_sentence_end as is_sentence_end

CLAUSE_END = re.compile(rf"[,;:、，；：—–][{re.escape(_CLOSERS)}]*$")


def _set(words: str) -> frozenset[str]:
    return frozenset(words.split())


_EN_STICKY_NEXT = _set(
    "a an the of to in on at for from by with into onto about as and or but nor so "
    "my your his her its our their this these those that than if because when while"
)
_KO_STICKY_NEXT = _set(
    "그 이 저 이런 그런 저런 어떤 무슨 한 두 세 네 몇 모든 각 새 헌 옛 약 제 첫 온 여러 다른 "
    "아무 및 또는 혹은 그리고"
)
_KO_STICKY_PREVIOUS = _set(
    "수 것 거 게 건 걸 때 줄 데 등 중 뿐 만큼 대로 듯 바 적 척 채 지 "
    "은 는 이 가 을 를 의 에 도 와 과 로 으로 에서 에게 까지 부터 처럼 보다 요"
)


def bare(word: str) -> str:
    """The word without spaces and surrounding punctuation, lower case."""
    return word.strip().strip(".,;:!?…\"'()[]{}“”‘’«»「」").lower()


def is_clause_end(word: str) -> bool:
    return bool(CLAUSE_END.search(word.rstrip()))


def bad_line_end(word: str) -> bool:
    """True when ``word`` should not be the last word of a line (it belongs with the next)."""
    stripped = word.rstrip()
    if not stripped or is_sentence_end(stripped) or is_clause_end(stripped):
        return False
    b = bare(stripped)
    return b in _EN_STICKY_NEXT or b in _KO_STICKY_NEXT


def bad_line_start(word: str) -> bool:
    """True when ``word`` should not be the first word of a line (it belongs with the previous)."""
    return bare(word) in _KO_STICKY_PREVIOUS


def is_unspaced_script(ch: str) -> bool:
    """Han, kana and other scripts written without spaces between words (not Hangul)."""
    try:
        name = unicodedata.name(ch)
    except ValueError:
        return False
    return name.startswith(("CJK UNIFIED", "CJK COMPATIBILITY IDEOGRAPH", "HIRAGANA", "KATAKANA"))


def split_words(text: str) -> list[str]:
    """Words of ``text`` with their leading space; Han and kana runs cut into characters.

    Joining the result gives ``text`` back without its trailing spaces.
    """
    words: list[str] = []
    for token in re.findall(r"\s*\S+", text):
        if not any(is_unspaced_script(ch) for ch in token):
            words.append(token)
            continue
        lead = token[: len(token) - len(token.lstrip())]
        pieces: list[str] = []
        for ch in token.lstrip():
            follows = pieces and not is_unspaced_script(ch)
            if follows and (
                unicodedata.category(ch).startswith("P") or not is_unspaced_script(pieces[-1][-1])
            ):
                pieces[-1] += ch  # punctuation and Latin runs stay with what precedes
                continue
            pieces.append(ch)
        pieces[0] = lead + pieces[0]
        words.extend(pieces)
    return words
