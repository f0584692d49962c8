"""Evaluation against reference transcripts: manifests, text normalisation, metrics and reports.

A manifest lists clips with their language and reference text; ``evaluate`` runs any transcription
callable over it and scores each hypothesis after normalising both texts the same way (Whisper's
English normaliser for English, a basic one for every other language). Error rates are
corpus-level, as jiwer computes them on lists: total edits over total reference length, never a
mean of per-clip rates. Needs the ``eval`` extra (jiwer, whisper-normalizer). Manifests are
read by ``malsori.manifest`` (re-exported here).
"""

from __future__ import annotations

import functools
import json
import logging
import os
import re
import tempfile
import time
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import InputError, InvalidOptionError, MissingExtraError, OutputError, require_extra
from .manifest import ManifestEntry, ManifestError, load_manifest, select_entries

if TYPE_CHECKING:
    from .model import Model
    from .options import TranscribeOptions

logger = logging.getLogger(__name__)

_UMASK = os.umask(0o022)  # read once at import (there is no way to read it without setting it)
os.umask(_UMASK)

__all__ = [
    "ALL",
    "METRICS",
    "NO_SPACE_LANGUAGES",
    "ErrorCounts",
    "EvaluationReport",
    "Hypothesis",
    "LanguageReport",
    "ManifestEntry",
    "ManifestError",
    "MetricChange",
    "MissingExtraError",
    "ReportError",
    "Transcriber",
    "UtteranceResult",
    "basic_normalize",
    "compare_reports",
    "error_counts",
    "evaluate",
    "evaluate_one",
    "load_manifest",
    "load_report",
    "malsori_transcriber",
    "normalize_text",
    "score_utterance",
    "select_entries",
    "write_report",
]

# Languages written without spaces between words, or with spacing that varies between writers
# (Korean): their CER is also reported with all spaces removed.
NO_SPACE_LANGUAGES = frozenset({"ko", "ja", "zh", "yue", "th", "lo", "my", "km"})
ALL = "all"  # the pseudo-language of the row that pools every utterance
METRICS: tuple[str, ...] = (
    "wer", "wer_respaced", "cer", "cer_nospace", "language_id_accuracy", "rtfx"
)  # fmt: skip
HIGHER_IS_BETTER = frozenset({"language_id_accuracy", "rtfx"})


class ReportError(InputError):
    """A saved evaluation report that cannot be read back."""


# --- normalisation and error counts ----------------------------------------------------------

_EVAL_MODULES = ("jiwer", "whisper_normalizer")
_HANGUL_JAMO = re.compile(r"([\u3130-\u318f\uffa0-\uffdc]+)")  # NFKC would recompose these
_ANNOTATION = re.compile(r"[<\[][^>\]]*[>\]]")  # [music], <unk>: not words
_SPACES = re.compile(r"\s+")


@functools.cache
def _english_normalizer() -> Callable[[str], str]:
    require_extra("eval", _EVAL_MODULES, "evaluation")
    from whisper_normalizer.english import EnglishTextNormalizer

    normalizer: Callable[[str], str] = EnglishTextNormalizer()
    return normalizer


def _nfkc_keep_hangul(text: str) -> str:
    """NFKC everywhere except Hangul compatibility jamo (ㅋㅋ), which NFKC would turn into
    conjoining jamo that merge with neighbours; Hangul syllables are unchanged by NFKC anyway."""
    parts = _HANGUL_JAMO.split(text)
    return "".join(p if i % 2 else unicodedata.normalize("NFKC", p) for i, p in enumerate(parts))


def basic_normalize(text: str) -> str:
    """Whisper's BasicTextNormalizer, but keeping combining marks (vowel signs) and Hangul jamo:
    NFKC, lower case, annotations in ``[]``/``<>`` dropped, punctuation and symbols to spaces."""
    s = _ANNOTATION.sub(" ", _nfkc_keep_hangul(text).lower())
    s = "".join(" " if unicodedata.category(c)[0] in "PS" else c for c in s)
    return _SPACES.sub(" ", s).strip()


def normalize_text(text: str, language: str) -> str:
    """The form both reference and hypothesis take before scoring.

    Parentheses become spaces first, keeping the words inside: in read-speech references they
    enclose spoken words (Whisper's normalisers would drop them as if they were "(laughs)").
    """
    text = text.replace("(", " ").replace(")", " ")
    if language == "en":
        return _SPACES.sub(" ", _english_normalizer()(text)).strip()
    return basic_normalize(text)


@dataclass(frozen=True)
class ErrorCounts:
    """Edits (substitutions + deletions + insertions) against a reference of ``length`` units."""

    errors: int = 0
    length: int = 0

    def __add__(self, other: ErrorCounts) -> ErrorCounts:
        return ErrorCounts(self.errors + other.errors, self.length + other.length)

    @property
    def rate(self) -> float | None:
        if self.length == 0:
            return None if self.errors == 0 else float(self.errors)  # jiwer: len(hyp) for ""
        return self.errors / self.length


def error_counts(reference: str, hypothesis: str, *, unit: str = "word") -> ErrorCounts:
    """Word or character edit counts from jiwer (characters include spaces, as jiwer's CER)."""
    require_extra("eval", _EVAL_MODULES, "evaluation")
    import jiwer

    if unit not in ("word", "char"):
        raise InvalidOptionError(f"unit must be 'word' or 'char', got {unit!r}")
    if not reference.strip():
        inserted = len(hypothesis.split()) if unit == "word" else len(hypothesis.strip())
        return ErrorCounts(inserted, 0)
    process = jiwer.process_words if unit == "word" else jiwer.process_characters
    out = process(reference, hypothesis)
    edits = out.substitutions + out.deletions + out.insertions
    return ErrorCounts(edits, out.substitutions + out.deletions + out.hits)


def respace_like(reference: str, hypothesis: str) -> str:
    """``hypothesis`` with its spaces moved to the reference's word boundaries: its characters
    aligned to the reference's (both without spaces, by edit distance), a space put before each
    character aligned to one that starts a reference word. Scoring this against the reference
    counts word errors that are not spacing ("spacing-insensitive WER"): in Korean about half of
    a transcript's word errors are spaces alone."""
    import jiwer

    ref_ns, hyp_ns = reference.replace(" ", ""), hypothesis.replace(" ", "")
    if not ref_ns or not hyp_ns:
        return hypothesis
    starts, pos = set(), 0
    for word in reference.split():
        if pos:
            starts.add(pos)
        pos += len(word)
    cuts: set[int] = set()
    for chunk in jiwer.process_characters(ref_ns, hyp_ns).alignments[0]:
        for r in range(chunk.ref_start_idx, chunk.ref_end_idx):
            if r in starts:
                # a deleted reference character: the boundary falls where the deletion is
                offset = 0 if chunk.type == "delete" else r - chunk.ref_start_idx
                cuts.add(chunk.hyp_start_idx + offset)
    out = [(" " if i in cuts and i else "") + c for i, c in enumerate(hyp_ns)]
    return "".join(out)


def _sum(counts: Iterable[ErrorCounts]) -> ErrorCounts:
    total = ErrorCounts()
    for c in counts:
        total = total + c
    return total


# --- results ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Hypothesis:
    """What a system under evaluation returns for one clip."""

    text: str
    language: str | None = None  # language the system decoded in
    language_detected: bool = False  # True when ``language`` was detected, not given
    duration: float | None = None  # seconds of audio, when the system knows it


# A system under evaluation: gets the manifest entry (audio path, and language if it wants it).
Transcriber = Callable[[ManifestEntry], Hypothesis]


@dataclass(frozen=True)
class UtteranceResult:
    id: str
    language: str  # from the manifest
    reference: str
    hypothesis: str
    reference_normalized: str
    hypothesis_normalized: str
    words: ErrorCounts
    chars: ErrorCounts
    chars_nospace: ErrorCounts
    detected_language: str | None  # None when the language was given to the system
    duration: float  # seconds of audio
    processing_time: float  # seconds the system took, decoding included
    error: str | None = None  # why the system failed on this clip (scored as an empty text)
    # Word errors with the hypothesis's spaces moved to the reference's (``respace_like``).
    words_respaced: ErrorCounts = ErrorCounts()

    @property
    def wer(self) -> float | None:
        return self.words.rate

    @property
    def wer_respaced(self) -> float | None:
        return self.words_respaced.rate

    @property
    def cer(self) -> float | None:
        return self.chars.rate

    @property
    def cer_nospace(self) -> float | None:
        return self.chars_nospace.rate

    @property
    def score(self) -> float:
        """The error rate used to rank utterances: CER without spaces for ko/ja/zh..., else WER."""
        counts = self.chars_nospace if self.language in NO_SPACE_LANGUAGES else self.words
        return counts.rate or 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "language": self.language,
            "detected_language": self.detected_language,
            "reference": self.reference,
            "hypothesis": self.hypothesis,
            "reference_normalized": self.reference_normalized,
            "hypothesis_normalized": self.hypothesis_normalized,
            "word_errors": self.words.errors,
            "reference_words": self.words.length,
            "char_errors": self.chars.errors,
            "reference_chars": self.chars.length,
            "char_errors_nospace": self.chars_nospace.errors,
            "reference_chars_nospace": self.chars_nospace.length,
            "word_errors_respaced": self.words_respaced.errors,
            "wer": _round(self.wer),
            "wer_respaced": _round(self.wer_respaced),
            "cer": _round(self.cer),
            "cer_nospace": _round(self.cer_nospace),
            "duration": round(self.duration, 3),
            "processing_time": round(self.processing_time, 4),
            "error": self.error,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> UtteranceResult:
        return cls(
            id=str(d["id"]),
            language=str(d["language"]),
            reference=str(d["reference"]),
            hypothesis=str(d["hypothesis"]),
            reference_normalized=str(d["reference_normalized"]),
            hypothesis_normalized=str(d["hypothesis_normalized"]),
            words=ErrorCounts(int(d["word_errors"]), int(d["reference_words"])),
            chars=ErrorCounts(int(d["char_errors"]), int(d["reference_chars"])),
            chars_nospace=ErrorCounts(
                int(d["char_errors_nospace"]), int(d["reference_chars_nospace"])
            ),
            detected_language=d.get("detected_language"),
            duration=float(d["duration"]),
            processing_time=float(d["processing_time"]),
            error=d.get("error"),
            words_respaced=ErrorCounts(
                int(d.get("word_errors_respaced", d["word_errors"])), int(d["reference_words"])
            ),
        )


def _round(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(value, digits)


@dataclass(frozen=True)
class LanguageReport:
    """Corpus-level metrics over the utterances of one language (or of all: ``ALL``)."""

    language: str
    utterances: int
    words: ErrorCounts
    chars: ErrorCounts
    chars_nospace: ErrorCounts
    language_checked: int  # utterances whose language the system detected
    language_correct: int  # ... and got right
    audio_seconds: float
    processing_seconds: float
    failures: int = 0
    words_respaced: ErrorCounts = ErrorCounts()

    @classmethod
    def pool(cls, language: str, results: Sequence[UtteranceResult]) -> LanguageReport:
        checked = [r for r in results if r.detected_language is not None]
        nospace = _sum(r.chars_nospace for r in results)
        if any(r.language not in NO_SPACE_LANGUAGES for r in results):
            nospace = ErrorCounts()  # only meaningful when every utterance has it
        return cls(
            language=language,
            utterances=len(results),
            words=_sum(r.words for r in results),
            chars=_sum(r.chars for r in results),
            chars_nospace=nospace,
            language_checked=len(checked),
            language_correct=sum(r.detected_language == r.language for r in checked),
            audio_seconds=sum(r.duration for r in results),
            processing_seconds=sum(r.processing_time for r in results),
            failures=sum(r.error is not None for r in results),
            words_respaced=_sum(r.words_respaced for r in results),
        )

    @property
    def wer(self) -> float | None:
        return self.words.rate

    @property
    def wer_respaced(self) -> float | None:
        """Word error rate with the hypotheses spaced as the references (``respace_like``)."""
        return self.words_respaced.rate

    @property
    def cer(self) -> float | None:
        return self.chars.rate

    @property
    def cer_nospace(self) -> float | None:
        """Only for languages in NO_SPACE_LANGUAGES (pooled: only when all utterances are)."""
        return self.chars_nospace.rate

    @property
    def language_id_accuracy(self) -> float | None:
        return self.language_correct / self.language_checked if self.language_checked else None

    @property
    def rtfx(self) -> float | None:
        return self.audio_seconds / self.processing_seconds if self.processing_seconds else None

    def metric(self, name: str) -> float | None:
        if name not in METRICS:
            raise InvalidOptionError(f"unknown metric {name!r}: use one of {', '.join(METRICS)}")
        value: float | None = getattr(self, name)
        return value

    def to_dict(self) -> dict[str, Any]:
        return {
            "language": self.language,
            "utterances": self.utterances,
            "failures": self.failures,
            **{name: _round(self.metric(name)) for name in METRICS},
            "word_errors": self.words.errors,
            "reference_words": self.words.length,
            "char_errors": self.chars.errors,
            "reference_chars": self.chars.length,
            "char_errors_nospace": self.chars_nospace.errors,
            "reference_chars_nospace": self.chars_nospace.length,
            "word_errors_respaced": self.words_respaced.errors,
            "language_checked": self.language_checked,
            "language_correct": self.language_correct,
            "audio_seconds": round(self.audio_seconds, 3),
            "processing_seconds": round(self.processing_seconds, 3),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LanguageReport:
        return cls(
            language=str(d["language"]),
            utterances=int(d["utterances"]),
            words=ErrorCounts(int(d["word_errors"]), int(d["reference_words"])),
            chars=ErrorCounts(int(d["char_errors"]), int(d["reference_chars"])),
            chars_nospace=ErrorCounts(
                int(d["char_errors_nospace"]), int(d["reference_chars_nospace"])
            ),
            language_checked=int(d["language_checked"]),
            language_correct=int(d["language_correct"]),
            audio_seconds=float(d["audio_seconds"]),
            processing_seconds=float(d["processing_seconds"]),
            failures=int(d.get("failures", 0)),
            words_respaced=ErrorCounts(
                int(d.get("word_errors_respaced", d["word_errors"])), int(d["reference_words"])
            ),
        )


@dataclass(frozen=True)
class EvaluationReport:
    languages: tuple[LanguageReport, ...]  # one per language, sorted by code
    overall: LanguageReport  # every utterance pooled (language ``ALL``)
    utterances: tuple[UtteranceResult, ...]
    meta: dict[str, Any] = field(default_factory=dict, compare=False)  # model, options, command

    @classmethod
    def from_results(
        cls, results: Sequence[UtteranceResult], meta: dict[str, Any] | None = None
    ) -> EvaluationReport:
        by_language: dict[str, list[UtteranceResult]] = {}
        for r in results:
            by_language.setdefault(r.language, []).append(r)
        return cls(
            languages=tuple(LanguageReport.pool(k, v) for k, v in sorted(by_language.items())),
            overall=LanguageReport.pool(ALL, results),
            utterances=tuple(results),
            meta=dict(meta or {}),
        )

    def language(self, code: str) -> LanguageReport | None:
        if code == ALL:
            return self.overall
        return next((r for r in self.languages if r.language == code), None)

    def worst(self, n: int) -> list[UtteranceResult]:
        """The ``n`` utterances with the highest error rate (ties: more errors first)."""
        ranked = sorted(self.utterances, key=lambda r: (r.score, r.words.errors), reverse=True)
        return [r for r in ranked[:n] if r.score > 0]

    def to_dict(self) -> dict[str, Any]:
        from ._version import __version__

        return {
            "malsori_version": __version__,
            "meta": self.meta,
            "overall": self.overall.to_dict(),
            "languages": [r.to_dict() for r in self.languages],
            "utterances": [r.to_dict() for r in self.utterances],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> EvaluationReport:
        return cls(
            languages=tuple(LanguageReport.from_dict(r) for r in d["languages"]),
            overall=LanguageReport.from_dict(d["overall"]),
            utterances=tuple(UtteranceResult.from_dict(r) for r in d.get("utterances", ())),
            meta=dict(d.get("meta", {})),
        )


# --- running ---------------------------------------------------------------------------------


def score_utterance(
    entry: ManifestEntry,
    hypothesis: Hypothesis,
    processing_time: float,
    *,
    error: str | None = None,
) -> UtteranceResult:
    """Normalise both texts for the entry's language and count word and character edits."""
    ref = normalize_text(entry.reference, entry.language)
    hyp = normalize_text(hypothesis.text, entry.language)
    ref_ns, hyp_ns = ref.replace(" ", ""), hyp.replace(" ", "")
    duration = hypothesis.duration
    if duration is None:
        duration = _probe_duration(entry.audio)
    return UtteranceResult(
        id=entry.id,
        language=entry.language,
        reference=entry.reference,
        hypothesis=hypothesis.text,
        reference_normalized=ref,
        hypothesis_normalized=hyp,
        words=error_counts(ref, hyp, unit="word"),
        chars=error_counts(ref, hyp, unit="char"),
        chars_nospace=(
            error_counts(ref_ns, hyp_ns, unit="char")
            if entry.language in NO_SPACE_LANGUAGES
            else ErrorCounts()
        ),
        detected_language=hypothesis.language if hypothesis.language_detected else None,
        duration=duration,
        processing_time=processing_time,
        error=error,
        words_respaced=error_counts(ref, respace_like(ref, hyp), unit="word"),
    )


def _probe_duration(path: Path) -> float:
    from .audio import probe

    try:
        return probe(path).declared_duration or 0.0
    except InputError:
        return 0.0


def evaluate_one(
    entry: ManifestEntry,
    transcribe: Transcriber,
    *,
    clock: Callable[[], float] = time.perf_counter,
) -> UtteranceResult:
    """Run and time ``transcribe`` on one entry and score it.

    A clip the system cannot read (InputError) is scored as an empty transcript and keeps its
    error, so failures count against the system instead of leaving the corpus.
    """
    started = clock()
    try:
        hypothesis = transcribe(entry)
    except InputError as e:
        logger.warning("%s: %s", entry.audio, e)
        return score_utterance(entry, Hypothesis(""), clock() - started, error=str(e))
    return score_utterance(entry, hypothesis, clock() - started)


def evaluate(
    entries: Sequence[ManifestEntry],
    transcribe: Transcriber,
    *,
    meta: dict[str, Any] | None = None,
    on_result: Callable[[UtteranceResult], None] | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> EvaluationReport:
    """Transcribe every entry with ``transcribe`` (any system) and build the report."""
    results = []
    for entry in entries:
        result = evaluate_one(entry, transcribe, clock=clock)
        results.append(result)
        if on_result is not None:
            on_result(result)
    return EvaluationReport.from_results(results, meta)


def malsori_transcriber(
    model: Model, options: TranscribeOptions, *, use_manifest_language: bool = False
) -> Transcriber:
    """A Transcriber for a loaded malsori model: detects the language unless told to use the
    manifest's (or unless ``options.language`` fixes one)."""

    def transcribe(entry: ManifestEntry) -> Hypothesis:
        opts = options.replace(language=entry.language) if use_manifest_language else options
        t = model.transcribe(entry.audio, opts)
        return Hypothesis(t.text, t.language.language, t.language.detected, t.duration)

    return transcribe


# --- reports on disk and comparison ----------------------------------------------------------


def write_report(report: EvaluationReport, path: str | os.PathLike[str]) -> Path:
    """Write the report as JSON, atomically (temporary file, then rename)."""
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
        os.fchmod(fd, 0o666 & ~_UMASK)  # what a plain open() gives; mkstemp alone makes 0600
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(report.to_dict(), f, ensure_ascii=False, indent=2)
            f.write("\n")
        os.replace(tmp, target)
    except OSError as e:
        raise OutputError(f"cannot write report {target}: {e}") from e
    return target


def load_report(path: str | os.PathLike[str]) -> EvaluationReport:
    source = Path(path)
    try:
        data = json.loads(source.read_text(encoding="utf-8"))
        return EvaluationReport.from_dict(data)
    except FileNotFoundError as e:
        raise ReportError(f"{source}: no such report") from e
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ReportError(f"{source}: cannot read report ({e})") from e
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise ReportError(f"{source}: not a malsori evaluation report ({e!r})") from e


@dataclass(frozen=True)
class MetricChange:
    language: str
    metric: str  # one of METRICS
    baseline: float | None
    current: float | None

    @property
    def delta(self) -> float | None:
        if self.baseline is None or self.current is None:
            return None
        return self.current - self.baseline

    @property
    def improved(self) -> bool | None:
        """True when ``current`` is better (lower error, higher accuracy or speed)."""
        delta = self.delta
        if delta is None or delta == 0:
            return None
        return delta > 0 if self.metric in HIGHER_IS_BETTER else delta < 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "language": self.language,
            "metric": self.metric,
            "baseline": _round(self.baseline),
            "current": _round(self.current),
            "delta": _round(self.delta),
            "improved": self.improved,
        }


def compare_reports(baseline: EvaluationReport, current: EvaluationReport) -> list[MetricChange]:
    """Per language (both reports' languages, then ``all``) and metric: baseline, current, change.

    Metrics neither report has for a language (CER without spaces for English, language-ID
    accuracy when the language was given) are left out.
    """
    codes = sorted(
        {r.language for r in baseline.languages} | {r.language for r in current.languages}
    )
    changes = []
    for code in [*codes, ALL]:
        old, new = baseline.language(code), current.language(code)
        for metric in METRICS:
            before = old.metric(metric) if old is not None else None
            after = new.metric(metric) if new is not None else None
            if before is not None or after is not None:
                changes.append(MetricChange(code, metric, before, after))
    return changes
