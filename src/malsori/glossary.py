"""Domain vocabulary: terms to bias the decoder toward and replacement rules applied after it.

A glossary file is UTF-8 text, one entry a line (see ``docs/glossary.md``)::

    # Lines starting with # are comments; blank lines are ignored.
    # A term: the decoder is biased toward it (through Whisper's hotwords).
    헤모글로빈
    # A replacement rule, "wrong => right", applied to the text after decoding.
    헤모 글로빈 => 헤모글로빈
    chat gpt => ChatGPT
    # A regular-expression rule (Python ``re`` syntax, \\1 for groups).
    re: (\\d+) ?밀리 ?그램 => \\1mg

Plain rules match whole words, ignoring case, with any run of spaces where the rule has a space;
a rule whose wrong side ends in Hangul also matches before a particle ("헤모 글로빈이" becomes
"헤모글로빈이"), and Chinese or Japanese rules match anywhere. Regular-expression rules are
used as written. Rules run in file order, each on the result of the one before. Terms reach
Whisper through ``hotwords`` (after the caller's own), which faster-whisper caps at about 220
tokens: put the most important terms first.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import InvalidOptionError

logger = logging.getLogger(__name__)

ARROW = "=>"
REGEX_PREFIX = "re:"
COMMENT = "#"
# faster-whisper keeps the first 223 tokens of the hotwords; Hangul takes one to three tokens a
# syllable, so beyond this many characters the last terms are likely cut off.
HOTWORDS_SOFT_LIMIT = 200

_HANGUL = re.compile("[\uac00-\ud7a3]")
# Letters and digits of scripts written with spaces between words (Latin, Cyrillic, Greek, ...):
# anything \w except Hangul, kana and CJK ideographs.
_SPACED_LETTER = re.compile(
    "[^\\W\u1100-\u11ff\u3040-\u30ff\u3130-\u318f\u3400-\u4dbf\u4e00-\u9fff"
    "\uac00-\ud7a3\uf900-\ufaff]"
)
_SPACES = re.compile(r"\s+")


class GlossaryError(InvalidOptionError):
    """A glossary file that cannot be read, or a line in it that cannot be used."""


@dataclass(frozen=True)
class Rule:
    """One replacement: ``wrong`` (plain text or a regular expression) becomes ``right``."""

    wrong: str
    right: str
    regex: bool = False  # True for "re:" lines: ``wrong`` is a Python regular expression
    # Line in the glossary file, for messages (0 when built in code); not part of the value.
    line: int = field(default=0, compare=False)
    pattern: re.Pattern[str] = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        where = f"line {self.line}: " if self.line else ""
        if not self.wrong.strip():
            raise GlossaryError(f"{where}the text to replace is empty")
        try:
            pattern = re.compile(self.wrong) if self.regex else _plain_pattern(self.wrong)
            if self.regex:
                pattern.sub(self.right, "")  # checks group references such as \\3
        except re.error as e:
            raise GlossaryError(f"{where}bad regular expression '{self.wrong}': {e}") from e
        if pattern.match("") is not None:
            raise GlossaryError(f"{where}pattern '{self.wrong}' matches empty text")
        object.__setattr__(self, "pattern", pattern)

    def apply(self, text: str) -> str:
        if self.regex:
            return self.pattern.sub(self.right, text)
        return self.pattern.sub(lambda _: self.right, text)  # the right side is literal

    def to_dict(self) -> dict[str, Any]:
        return {"wrong": self.wrong, "right": self.right, "regex": self.regex}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Rule:
        return cls(str(d["wrong"]), str(d["right"]), bool(d.get("regex", False)))


def _plain_pattern(wrong: str) -> re.Pattern[str]:
    """Whole words, any case, any run of spaces. Word edges are checked against the same kind of
    letter: a Latin rule does not fire inside a longer Latin word but may touch Hangul ("GPT를"),
    a Hangul rule does not start inside a Hangul word but may be followed by a particle, and
    Chinese or Japanese text, written without spaces, has no word edges to check."""
    words = wrong.split()
    body = r"\s+".join(re.escape(w) for w in words)
    first, last = words[0][0], words[-1][-1]
    if _HANGUL.match(first):
        head = f"(?<!{_HANGUL.pattern})"
    elif _SPACED_LETTER.match(first):
        head = f"(?<!{_SPACED_LETTER.pattern})"
    else:
        head = ""
    tail = f"(?!{_SPACED_LETTER.pattern})" if _SPACED_LETTER.match(last) else ""
    return re.compile(f"{head}{body}{tail}", re.IGNORECASE)


@dataclass(frozen=True)
class Glossary:
    """Bias terms and replacement rules, from one or more glossary files (or built in code)."""

    terms: tuple[str, ...] = ()
    rules: tuple[Rule, ...] = ()
    source: str = ""  # the file(s) it was read from, for the JSON output

    def __post_init__(self) -> None:
        terms = tuple(dict.fromkeys(t.strip() for t in self.terms if t.strip()))
        object.__setattr__(self, "terms", terms)
        object.__setattr__(self, "rules", tuple(self.rules))

    def __bool__(self) -> bool:
        return bool(self.terms or self.rules)

    def replace(self, text: str) -> str:
        """``text`` with every rule applied in order; runs of spaces a rule leaves are collapsed."""
        out = text
        for rule in self.rules:
            out = rule.apply(out)
        if out == text:
            return text
        lead = text[: len(text) - len(text.lstrip())]
        return lead + _SPACES.sub(" ", out).strip()

    def combine(self, other: Glossary) -> Glossary:
        sources = [s for s in (self.source, other.source) if s]
        return Glossary(self.terms + other.terms, self.rules + other.rules, ", ".join(sources))

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "terms": list(self.terms),
            "rules": [r.to_dict() for r in self.rules],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Glossary:
        return cls(
            terms=tuple(str(t) for t in d.get("terms", ())),
            rules=tuple(Rule.from_dict(r) for r in d.get("rules", ())),
            source=str(d.get("source", "")),
        )


def _parse_line(text: str, line: int) -> str | Rule:
    regex = text.startswith(REGEX_PREFIX)
    body = text[len(REGEX_PREFIX) :].strip() if regex else text
    if ARROW not in body:
        if regex:
            raise GlossaryError(f"line {line}: a 're:' rule needs 'pattern {ARROW} replacement'")
        return body
    if body.count(ARROW) > 1:
        raise GlossaryError(f"line {line}: more than one '{ARROW}' in '{text}'")
    wrong, right = (part.strip() for part in body.split(ARROW))
    if not wrong:
        raise GlossaryError(f"line {line}: nothing before '{ARROW}' in '{text}'")
    return Rule(wrong, right, regex=regex, line=line)


def parse_glossary(text: str, source: str = "") -> Glossary:
    """A Glossary from the text of a glossary file; raises GlossaryError naming the bad line."""
    terms: list[str] = []
    rules: list[Rule] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if not stripped or stripped.startswith(COMMENT):
            continue
        try:
            entry = _parse_line(stripped, number)
        except GlossaryError as e:
            raise GlossaryError(f"{source}: {e}" if source else str(e)) from e
        if isinstance(entry, Rule):
            rules.append(entry)
        else:
            terms.append(entry)
    return Glossary(tuple(terms), tuple(rules), source)


def load_glossary(path: str | os.PathLike[str]) -> Glossary:
    """Read a glossary file (UTF-8); raises GlossaryError when it is missing or malformed."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8-sig")
    except FileNotFoundError as e:
        raise GlossaryError(f"{p}: no such glossary file") from e
    except (OSError, UnicodeDecodeError) as e:
        raise GlossaryError(f"{p}: cannot read glossary: {e}") from e
    glossary = parse_glossary(text, str(p))
    logger.info("glossary %s: %d terms, %d rules", p, len(glossary.terms), len(glossary.rules))
    return glossary


def merge_hotwords(hotwords: str | None, glossary: Glossary | None) -> str | None:
    """The caller's hotwords followed by the glossary's terms (comma-separated), or None."""
    terms = [] if glossary is None else list(glossary.terms)
    own = (hotwords or "").strip()
    given = {part.strip().casefold() for part in own.split(",")}
    terms = [t for t in terms if t.casefold() not in given]  # already among the caller's own
    merged = ", ".join([own, *terms] if own else terms)
    if len(merged) > HOTWORDS_SOFT_LIMIT:
        logger.warning(
            "hotwords are %d characters long: Whisper keeps only about the first 220 tokens, so "
            "the last glossary terms may be ignored",
            len(merged),
        )
    return merged or None
