"""Korean post-processing: missing spaces, sentence-final punctuation and number style.

Each function takes and returns one segment's text and leaves it exactly as it was when there is
nothing to do, so callers can tell a change by comparing strings.

- Spacing, in two steps. First the under-spaced guard (``correct_spacing``, below), then the
  spaces orthography leaves no choice about (``standard_spacing``): none before a particle, an
  ending, a suffix or the copula, one before a content word that follows a particle or an
  ending ("시작할거래" -> "시작할 거래"). Where orthography allows both (an auxiliary verb after
  -아/-어, a compound noun, a number and its unit), Whisper's spacing stays: the dev set's own
  references write these both ways. Kiwi's ``space()`` applied to every segment makes Whisper's
  output worse (word error rate 26 % -> 34 % on real speech; 23.5 % -> 28.6 % with ``base`` on
  the Korean clips measured by ``scripts/korean_postprocess_eval.py``): Kiwi splits compounds
  and auxiliary verbs that are correctly written together ("세계문화유산", "신청해주세요").
  The guard corrects spacing only where the text is clearly under-spaced: a segment whose Hangul
  words average ``UNDER_SPACED_SYLLABLES`` syllables or more (ordinary Korean averages about
  three), or a single word of ``LONG_EOJEOL_SYLLABLES`` syllables or more (split only where
  grammar requires a space, never inside a compound noun). Even there spaces are only inserted,
  never removed, and not where Korean orthography lets words stand together (a number and its
  unit, "-아/-어" plus an auxiliary verb, a noun plus "-드리다").
- Punctuation. A sentence that ends in a final ending (Kiwi tag ``EF``) with no punctuation after
  it gets "?" for question endings (-까, -니, -나요, -냐, ... or an ambiguous ending such as
  -요/-야/-지 after a question word) and "." otherwise. Text ending in a connective ending or a
  noun (a sentence cut across segments) is left alone.
- Numbers (off by default): "digits" writes Sino-Korean numerals as digits ("이십육일" -> "26일"),
  "words" writes digits as Korean words (Sino-Korean, or native before counters: "5시간" ->
  "다섯시간").

Kiwi (``kiwipiepy``) is imported on first use and one instance is shared by the process. Kiwi's
author states that a built instance may be used from several threads, but the Python object
finishes loading lazily on its first analysis, so building, warming up and every call go through
one lock; a call takes milliseconds, next to seconds of decoding.
"""

from __future__ import annotations

import itertools
import logging
import re
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .errors import MalsoriError, ScorerError
from .sentences import starts_with_sentence_end

if TYPE_CHECKING:
    from kiwipiepy import Kiwi

logger = logging.getLogger(__name__)

# Ordinary Korean averages about 3 Hangul syllables per space-separated word (eojeol); a segment
# averaging twice that is missing spaces.
UNDER_SPACED_SYLLABLES = 6.0
# Fewer Hangul syllables than this in a segment is too little to judge its spacing.
MIN_SYLLABLES_TO_JUDGE = 6
# A single eojeol this long is practically never one word plus its particles.
LONG_EOJEOL_SYLLABLES = 10

HANGUL = re.compile(r"[\uac00-\ud7a3]")
_EOJEOL = re.compile(r"\S+")

# Final endings (Kiwi forms) that make a question: -ㅂ니까, -을까요, -니, -냐, -나요, -ㄴ가 ...
_QUESTION_ENDING = re.compile(r"(?:까요?|니|냐|나요?|가요?)$")
# ... except these, which end statements: "그렇구나", "바쁘니까", "했다니".
_NOT_QUESTION_ENDING = re.compile(r"(?:구나|^으?니까|다니)$")
# Endings that can close a statement or a question: a question only with a question word.
_AMBIGUOUS_ENDING = re.compile(r"(?:요|야|어|아|지|죠|래|데)$")
_QUESTION_WORDS = frozenset({
    "뭐", "무엇", "무슨", "어디", "누구", "누", "왜",
    "언제", "어떻", "얼마", "몇", "어느", "어째서",
})  # fmt: skip
# Endings Kiwi may tag as connective (EC) that end a sentence when nothing follows them:
# "들어가신다", "먹는다", "먹었니".
_FINAL_CONNECTIVES = frozenset({"다", "ᆫ다", "는다", "니"})
# Connective endings that embed a question ("어디 가는지 몰라요"): a question word before them
# does not make the sentence a question.
_EMBEDDED_QUESTION = ("지", "ᆫ지", "은지", "는지", "ᆯ지", "을지", "는가", "ᆫ가", "은가")


class KoreanSupportError(MalsoriError):
    """Kiwi (kiwipiepy), which Korean post-processing needs, is not installed or cannot load."""


_lock = threading.Lock()
_kiwi: Kiwi | None = None


def _get_kiwi() -> Kiwi:
    """The process's Kiwi instance, built and warmed up on first use. Call with ``_lock`` held."""
    global _kiwi
    if _kiwi is None:
        try:
            from kiwipiepy import Kiwi
        except ImportError as e:
            raise KoreanSupportError(
                "Korean post-processing needs kiwipiepy: pip install kiwipiepy"
            ) from e
        logger.info("loading Kiwi (Korean morphological analyser)")
        try:
            # Without the multi-word entity dictionary (about 190 MB) and the default user
            # dictionary (about 67 MB): every batch worker and server process holds one Kiwi.
            # Spacing and punctuation on the dev set are the same without them
            # (scripts/korean_postprocess_eval.py: identical scores, 154 of 154 references
            # restored alike; of 2144 spacing and punctuation outputs over the hypotheses and
            # references, one differs, "차잖 아요" written correctly as "차잖아요").
            kiwi = Kiwi(load_multi_dict=False, load_default_dict=False)
            kiwi.tokenize("")  # finishes the lazy loading now, under the lock
        except (OSError, RuntimeError, ValueError) as e:
            raise KoreanSupportError(f"cannot load Kiwi: {e}") from e
        _kiwi = kiwi
    return _kiwi


def warm_up() -> None:
    """Load Kiwi now (a few seconds) instead of on the first Korean segment (servers)."""
    with _lock:
        _get_kiwi()


def _tokenize(text: str) -> list[Any]:
    with _lock:
        return list(_get_kiwi().tokenize(text))


def has_hangul(text: str) -> bool:
    return HANGUL.search(text) is not None


# --- spacing ---------------------------------------------------------------------------------


def _eojeols(text: str) -> list[tuple[int, int, int]]:
    """(start, end, Hangul syllables) of each space-separated word."""
    return [(m.start(), m.end(), len(HANGUL.findall(m.group()))) for m in _EOJEOL.finditer(text)]


def is_under_spaced(text: str) -> bool:
    """True when the Hangul words of ``text`` average ``UNDER_SPACED_SYLLABLES`` or more."""
    counts = [n for _, _, n in _eojeols(text) if n]
    total = sum(counts)
    return total >= MIN_SYLLABLES_TO_JUDGE and total / len(counts) >= UNDER_SPACED_SYLLABLES


def _inserted_spaces(original: str, spaced: str) -> list[int] | None:
    """Indices of ``original`` before which ``spaced`` has a new space; None if the non-space
    characters differ (Kiwi changed more than spacing)."""
    points: list[int] = []
    i = j = 0
    while i < len(original) and j < len(spaced):
        if original[i] == spaced[j]:
            i += 1
            j += 1
        elif spaced[j].isspace():
            points.append(i)
            j += 1
        elif original[i].isspace():
            i += 1  # Kiwi removed a space: ignored, spaces are only ever added
        else:
            return None
    if original[i:].strip() or spaced[j:].strip():
        return None
    return points


def _optional_space(left: Any, right: Any) -> bool:
    """Whether orthography lets ``left`` and ``right`` stand together, so no space is forced."""
    if left.tag == "SN":  # "2천", "60만", "5시간": a number and its unit
        return right.tag.startswith("N") or right.tag == "SL"
    if left.tag == "EC" and left.form in ("어", "아", "여") and right.tag == "VX":
        return True  # "신청해주세요", "들어와주십시오": -아/-어 plus an auxiliary verb
    return left.tag.startswith("NN") and right.form in ("드리", "시키", "당하")


def _kiwi_spaces(text: str) -> list[tuple[int, bool]]:
    """Where Kiwi would insert a space in ``text``, without the optional ones, each with whether
    it splits a compound noun ("한국과학기술연구원" -> "한국 과학 기술 연구원")."""
    with _lock:
        kiwi = _get_kiwi()
        spaced = kiwi.space(text, reset_whitespace=False)
        tokens = list(kiwi.tokenize(text))
    points = _inserted_spaces(text, spaced)
    if not points:
        return []
    starts = {t.start: t for t in tokens}
    keep = []
    for p in points:
        right = starts.get(p)
        left = next((t for t in reversed(tokens) if t.start < p), None)
        if right is None or left is None:  # no morpheme boundary there: do not trust it
            continue
        if not _optional_space(left, right):
            compound = left.tag in ("NNG", "NNP", "SL", "SH") and right.tag in ("NNG", "NNP")
            keep.append((p, compound))
    return keep


def correct_spacing(text: str) -> str:
    """``text`` with missing spaces inserted where it is clearly under-spaced (see above).

    A segment is under-spaced when its words are long on average and Kiwi finds at least one
    space that grammar requires (after a particle or an ending); there every space Kiwi finds is
    inserted, optional ones aside. Elsewhere a very long word is split only where grammar requires
    a space, never inside a compound noun such as an institution's name.
    """
    words = _eojeols(text)
    whole = is_under_spaced(text)
    if not whole and not any(n >= LONG_EOJEOL_SYLLABLES for _, _, n in words):
        return text  # the common case: ordinary spacing, and no call to Kiwi
    found = _kiwi_spaces(text)
    # Long compound nouns alone ("사회복지공동모금회에 기부했어요") do not make text under-spaced.
    whole = whole and not all(compound for _, compound in found)
    points = []
    for p, compound in found:
        for start, end, n in words:
            if start < p < end and (whole or (n >= LONG_EOJEOL_SYLLABLES and not compound)):
                points.append(p)
                break
    for p in reversed(points):
        text = f"{text[:p]} {text[p:]}"
    return text


# --- punctuation -----------------------------------------------------------------------------


def _is_symbol(tag: str) -> bool:
    """Punctuation and symbols (SF, SP, SS, SE, SO, SW; W_ for URLs, emoji ...), not SL/SH/SN."""
    return (tag.startswith("S") and tag not in ("SL", "SH", "SN")) or tag.startswith("W_")


def _final_ending(tokens: Sequence[Any]) -> Any | None:
    """The sentence-final ending of a token list, or None when it does not end in one."""
    body = [t for t in tokens if not _is_symbol(t.tag)]
    if not body:
        return None
    last = body[-1]
    if last.tag == "JX" and last.form == "요" and len(body) > 1:  # "-는데요", "-거든요"
        last = body[-2]
    if last.tag == "EF" or (last.tag == "EC" and last.form in _FINAL_CONNECTIVES):
        return last
    return None


def _question_word_before_end(tokens: Sequence[Any]) -> bool:
    found = False
    for t in tokens:
        if t.form in _QUESTION_WORDS and t.tag[0] in "NMV":
            found = True
        elif t.tag == "EC" and t.form in _EMBEDDED_QUESTION:
            found = False  # the question word belonged to an embedded clause
    return found


def sentence_mark(tokens: Sequence[Any]) -> str | None:
    """The mark for a sentence ending in a final ending ("?" or "."); None for any other."""
    ending = _final_ending(tokens)
    if ending is None:
        return None
    form = ending.form
    if _QUESTION_ENDING.search(form) and not _NOT_QUESTION_ENDING.search(form):
        return "?"
    if _AMBIGUOUS_ENDING.search(form) and _question_word_before_end(tokens):
        return "?"
    return "."


def add_sentence_punctuation(text: str) -> str:
    """``text`` with "." or "?" after each sentence that ends in a final ending without one."""
    if not has_hangul(text):
        return text
    with _lock:
        sentences = _get_kiwi().split_into_sents(text, return_tokens=True)
    inserts: list[tuple[int, str]] = []
    for sentence in sentences:
        end = sentence.end
        if end <= 0 or not HANGUL.match(text[end - 1]):
            continue  # already punctuated, or ends in digits or Latin letters
        if starts_with_sentence_end(text[end:]):
            continue
        mark = sentence_mark(sentence.tokens or ())
        if mark is not None:
            inserts.append((end, mark))
    for end, mark in reversed(inserts):
        text = text[:end] + mark + text[end:]
    return text


# --- numbers ---------------------------------------------------------------------------------

_SINO_DIGITS = {"영": 0, "공": 0, "일": 1, "이": 2, "삼": 3, "사": 4, "오": 5, "육": 6, "륙": 6,
                "칠": 7, "팔": 8, "구": 9}  # fmt: skip
_SMALL_UNITS = {"십": 10, "백": 100, "천": 1000}
_BIG_UNITS = {"만": 10**4, "억": 10**8, "조": 10**12}
_SINO_NUMERAL = re.compile("^[영공일이삼사오육륙칠팔구십백천만억조]+$")
_DIGIT_NAMES = "영일이삼사오육칠팔구"
_NATIVE_ONES = ("", "한", "두", "세", "네", "다섯", "여섯", "일곱", "여덟", "아홉")
_NATIVE_TENS = ("", "열", "스물", "서른", "마흔", "쉰", "예순", "일흔", "여든", "아흔")
# Counters read with native Korean numbers (1-99): "5시" is "다섯 시", not "오 시".
NATIVE_COUNTERS = ("시간", "시", "개", "명", "살", "마리", "잔", "병", "권", "그릇", "가지", "군데")
_NUMBER = re.compile(r"(?<![A-Za-z0-9.,])(\d{1,3}(?:,\d{3})+|\d+)(\.\d+)?(?![\w.,]*[A-Za-z])")


def _parse_sino(word: str) -> int | None:
    """The value of a Sino-Korean numeral ("이천이십사" -> 2024), None if it is not one."""
    total = section = digit = 0
    seen = False
    for ch in word:
        if ch in _SINO_DIGITS:
            if seen and digit:
                return None  # two digits in a row ("이삼"): not a numeral
            digit, seen = _SINO_DIGITS[ch], True
        elif ch in _SMALL_UNITS:
            section += (digit or 1) * _SMALL_UNITS[ch]
            digit, seen = 0, False
        elif ch in _BIG_UNITS:
            total += ((section + digit) or 1) * _BIG_UNITS[ch]
            section = digit = 0
            seen = False
        else:
            return None
    return total + section + digit


def _sino_words(n: int) -> str:
    """Sino-Korean reading of a non-negative integer ("2024" -> "이천이십사")."""
    if n == 0:
        return "영"
    parts = []
    for unit, size in (("조", 10**12), ("억", 10**8), ("만", 10**4), ("", 1)):
        group, n = divmod(n, size)
        if not group:
            continue
        words = ""
        for name, value in (("천", 1000), ("백", 100), ("십", 10), ("", 1)):
            d, group = divmod(group, value)
            if d:
                words += ("" if d == 1 and name else _DIGIT_NAMES[d]) + name
        parts.append(("" if words == "일" and unit == "만" else words) + unit)
    return "".join(parts)


def _native_words(n: int) -> str:
    """Attributive native reading of 1-99 ("20" -> "스무", "21" -> "스물한")."""
    tens, ones = divmod(n, 10)
    if n == 20:
        return "스무"
    return _NATIVE_TENS[tens] + _NATIVE_ONES[ones]


def _number_to_words(match: re.Match[str], text: str) -> str:
    value = int(match.group(1).replace(",", ""))
    after = text[match.end() :]
    if value >= 10**16:
        return match.group(0)
    if match.group(2):  # decimals are read digit by digit: "64.5" -> "육십사 점 오"
        decimals = " ".join(_DIGIT_NAMES[int(d)] for d in match.group(2)[1:])
        return f"{_sino_words(value)} 점 {decimals}"
    if after.startswith("월") and value in (6, 10):
        return "유" if value == 6 else "시"
    if 1 <= value <= 99 and after.lstrip().startswith(NATIVE_COUNTERS):
        return _native_words(value)
    return _sino_words(value)


def _digits_for(value: int) -> str:
    """Digits in Korean written style: big units stay words ("60만", "3억5000만")."""
    if value < 10**4 or value % 10**4:
        return str(value)
    parts = []
    for unit, size in (("조", 10**12), ("억", 10**8), ("만", 10**4)):
        group, value = divmod(value, size)
        if group:
            parts.append(f"{group}{unit}")
    return "".join(parts)


def _numerals_to_digits(text: str) -> str:
    tokens = _tokenize(text)
    runs: list[tuple[int, int]] = []  # character spans of adjacent numeral tokens
    for t in tokens:
        if t.tag != "NR" or not _SINO_NUMERAL.match(t.form) or text[t.start : t.end] != t.form:
            continue
        if runs and runs[-1][1] == t.start:
            runs[-1] = (runs[-1][0], t.end)
        else:
            runs.append((t.start, t.end))
    after = {t.start: t for t in tokens}
    out = text
    for start, end in reversed(runs):
        word = text[start:end]
        following = after.get(end) or after.get(end + 1)
        counted = following is not None and following.tag in ("NNB", "NNG")
        value = _parse_sino(word)
        if value is None or (len(word) < 2 and not counted):
            continue  # a lone "이" or "사" is far more often not a number
        out = out[:start] + _digits_for(value) + out[end:]
    return out


def convert_numbers(text: str, style: str) -> str:
    """Numbers in ``style``: "keep" (unchanged), "digits" or "words" (see the module notes)."""
    if style == "keep" or not has_hangul(text):
        return text
    if style == "digits":
        return _numerals_to_digits(text)
    text = re.sub(r"(\d)\s*%", r"\1 퍼센트", text)
    return _NUMBER.sub(lambda m: _number_to_words(m, m.string), text)


# --- language-model score (N-best rescoring) -------------------------------------------------


class KiwiScorer:
    """Kiwi's language model as a rescoring scorer (``malsori.rescoring``): the log-probability
    of the likeliest morphological analysis of a text.

    Numbers are scored in one notation (digits, or words when that is the chosen
    ``number_style``), so that "2시간" and "두 시간" are the same text to the model and Whisper's
    own score decides between them. A text without Hangul is not Korean to score: ``ScorerError``.
    """

    def __init__(self, number_style: str = "keep"):
        self.number_style = number_style

    def normalize(self, text: str) -> str:
        return convert_numbers(text, "words" if self.number_style == "words" else "digits")

    def score(self, text: str) -> float:
        if not has_hangul(text):
            raise ScorerError("no Hangul to score")
        with _lock:
            analyses = _get_kiwi().analyze(text, top_n=1)
        if not analyses:
            raise ScorerError("Kiwi found no analysis")
        return float(analyses[0][1])


# --- standard spacing ------------------------------------------------------------------------

# Kiwi's score of a morpheme (a log-probability) below which its analysis is too doubtful to
# space by: misheard words ("할부러", "탁승하실") analyse as rare morphemes, and rules applied to
# them split the word. Chosen on the tuning split (scripts/korean_postprocess_eval.py).
SURE_MORPHEME_SCORE = -7.0

# Where a space may or must go between two morphemes, by kind of boundary. "attached": a
# particle, an ending, a suffix or the copula never starts a word. "word": a content word after a
# particle or an ending, or after an adverb or a determiner, always does. The others are
# orthography's choices: an auxiliary verb after -아/-어 ("신청해 주세요" or "신청해주세요"), the
# parts of a compound noun ("세계 문화 유산" or "세계문화유산"), a number and its unit ("2 시간"
# or "2시간"), a noun and a dependent noun ("관계자 분" or "관계자분").
BOUNDARY_KINDS = ("attached", "word", "auxiliary", "compound", "unit", "dependent")
# What ``standard_spacing`` does at each kind: "space", "attach", "keep" (as written) or "kiwi"
# (as Kiwi's spacing model puts it). Chosen on the tuning split of the dev set
# (scripts/tune_rescoring.py spacing); the choices orthography leaves open are
# kept as Whisper wrote them unless a policy measurably matched the references better.
SPACING_POLICY: dict[str, str] = {
    "attached": "attach",
    "word": "space",
    "auxiliary": "keep",
    "compound": "keep",
    "unit": "keep",
    "dependent": "keep",
}

_AFTER_MODIFIER = ("NN", "NP", "NR", "VV", "VA", "MA", "MM", "XR")
_CONTENT = ("NN", "NP", "NR", "VV", "VA", "VX", "MA", "MM", "IC", "XR", "XPN", "SL", "SH", "SN")


def _doubtful(token: Any, sure: float) -> bool:
    """A morpheme whose analysis is unlikely: a rare adverb, determiner, verb ... (nouns are
    rare by nature, and a particle written apart is what the rules fix, so neither counts)."""
    return token.score < sure and not token.tag.startswith(("NN", "NP", "S", "J", "E", "XS", "VCP"))


def boundary_kind(left: Any, right: Any) -> str | None:
    """The kind of boundary (``BOUNDARY_KINDS``) between two morphemes; None: no rule applies."""
    if right.tag.startswith(("J", "E", "XS", "VCP")):
        return "attached"
    if left.tag == "SN":
        return "unit" if right.tag.startswith(("NN", "SL")) else None
    if left.tag == "EC" and left.form in ("어", "아", "여") and right.tag == "VX":
        return "auxiliary"
    if left.tag.startswith("NN") and right.form in ("드리", "시키", "당하"):
        return "auxiliary"  # "감사드리다", "입원시키다"
    if left.tag in ("NNG", "NNP") and right.tag in ("NNG", "NNP"):
        return "compound"
    if left.tag.startswith(("NNG", "NNP", "NP")) and right.tag == "NNB":
        return "dependent"
    if not right.tag.startswith(_CONTENT):
        return None
    if left.tag in ("MAG", "MAJ", "MM"):  # "잘 가요", "모든 사람": an adverb or a determiner
        if right.form == "하":  # "잘하다", "그만하다", "못하다": verbs of their own
            return None
        return "word" if right.tag.startswith(_AFTER_MODIFIER) else None
    if left.tag.startswith("J") or left.tag in ("EF", "EC", "ETM"):
        return "word"
    return None


def _kiwi_boundaries(kiwi: Any, text: str) -> set[int]:
    """Indices (in ``text`` without spaces) of the characters Kiwi's spacing puts a space before."""
    spaced = kiwi.space(text, reset_whitespace=True)
    out, n = set(), 0
    for ch in spaced:
        if ch.isspace():
            out.add(n)
        else:
            n += 1
    return out


def standard_spacing(
    text: str, min_score: float | None = None, policy: dict[str, str] | None = None
) -> str:
    """``text`` re-spaced by ``SPACING_POLICY`` (or ``policy``), its characters unchanged.

    With the default policy: spaces before particles, endings, suffixes and the copula are
    removed ("캐스팅 이" -> "캐스팅이"); a space is inserted where a particle or an ending is
    followed by a content word ("마무리되는대로" -> "마무리되는 대로", "시작할거래" -> "시작할
    거래"); where orthography leaves a choice the text keeps the spacing it was written with.
    A boundary between morphemes Kiwi is unsure of is left alone (``SURE_MORPHEME_SCORE``).
    """
    if not has_hangul(text):
        return text
    policy = SPACING_POLICY if policy is None else policy
    sure = SURE_MORPHEME_SCORE if min_score is None else min_score
    dense = [i for i, ch in enumerate(text) if not ch.isspace()]  # text index of each character
    position = {t: n for n, t in enumerate(dense)}
    spaced = {n for n in range(1, len(dense)) if dense[n] - dense[n - 1] > 1}
    with _lock:
        kiwi = _get_kiwi()
        tokens = [t for t in kiwi.tokenize(text) if t.len > 0]
        by_kiwi = (
            _kiwi_boundaries(kiwi, text) if "kiwi" in policy.values() else set()
        )  # fmt: skip
    wanted = set(spaced)
    for left, right in itertools.pairwise(tokens):
        end = left.start + left.len
        if right.start < end or right.start not in position:
            continue  # inside a syllable (할 = 하 + ᆯ): no boundary
        if text[end : right.start].strip():
            continue  # punctuation or anything Kiwi did not take in between
        if _doubtful(left, sure) or _doubtful(right, sure):
            continue  # an unlikely analysis (often of a misheard word): no rule applies
        kind = boundary_kind(left, right)
        action = policy.get(kind, "keep") if kind is not None else "keep"
        n = position[right.start]
        if action == "space" or (action == "kiwi" and n in by_kiwi):
            wanted.add(n)
        elif action == "attach" or (action == "kiwi" and n not in by_kiwi):
            wanted.discard(n)
    if wanted == spaced:
        return text
    out = []
    for n, i in enumerate(dense):
        if n in wanted:
            out.append(" ")
        out.append(text[i])
    return text[: dense[0]] + "".join(out) + text[dense[-1] + 1 :]


def space(text: str) -> str:
    """malsori's Korean spacing of one segment: ``correct_spacing`` (missing spaces in clearly
    under-spaced text), then ``standard_spacing`` (the spaces orthography requires or forbids).
    Only spaces change."""
    return standard_spacing(correct_spacing(text))
