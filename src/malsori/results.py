"""Typed results: words, segments, detected language and the whole transcript.

JSON comes from ``Transcript.to_dict`` and goes back through ``Transcript.from_dict``; nothing else
in malsori builds result dictionaries by hand.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .decoding import TOP_LANGUAGES
from .options import TranscribeOptions


@dataclass(frozen=True)
class Word:
    start: float  # seconds from the start of the input
    end: float
    word: str  # as decoded, with its leading space if any
    probability: float
    speaker: str | None = None  # who said it, when diarized (a name or "SPEAKER_1", ...)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "start": round(self.start, 3),
            "end": round(self.end, 3),
            "word": self.word,
            "probability": round(self.probability, 4),
        }
        if self.speaker is not None:
            d["speaker"] = self.speaker
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Word:
        speaker = d.get("speaker")
        return cls(
            float(d["start"]),
            float(d["end"]),
            str(d["word"]),
            float(d["probability"]),
            None if speaker is None else str(speaker),
        )


@dataclass(frozen=True)
class Segment:
    id: int
    start: float  # seconds from the start of the input
    end: float
    text: str  # as decoded; equals "".join(w.word for w in words) when words are present
    words: tuple[Word, ...] = ()
    # Decoder signals, kept so callers can judge a segment: the mean token log-probability, the
    # probability that the window held no speech, the gzip compression ratio of the text (high
    # means repetitive) and the temperature that produced it.
    avg_logprob: float = 0.0
    no_speech_prob: float = 0.0
    compression_ratio: float = 0.0
    temperature: float = 0.0
    # What malsori noticed or changed: "repetition_collapsed", "context_reset" (decoding restarted
    # without the previous text after a loop), "low_confidence", "repetitive", "maybe_no_speech",
    # and the post-processing flags "spacing_corrected", "numbers_converted",
    # "punctuation_added", "glossary_replaced".
    flags: tuple[str, ...] = ()
    # Whisper's output tokens of the segment, timestamp tokens included (empty where the
    # decoder does not keep them: the packed engine), and the mel frame (10 ms) where the
    # window it was decoded in starts, as openai-whisper's ``seek``.
    tokens: tuple[int, ...] = ()
    seek: int = 0
    speaker: str | None = None  # who said it, when diarized (a name or "SPEAKER_1", ...)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "id": self.id,
            "start": round(self.start, 3),
            "end": round(self.end, 3),
            "text": self.text,
            "avg_logprob": round(self.avg_logprob, 4),
            "no_speech_prob": round(self.no_speech_prob, 4),
            "compression_ratio": round(self.compression_ratio, 4),
            "temperature": self.temperature,
            "flags": list(self.flags),
        }
        if self.speaker is not None:
            d["speaker"] = self.speaker
        if self.words:
            d["words"] = [w.to_dict() for w in self.words]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Segment:
        return cls(
            id=int(d["id"]),
            start=float(d["start"]),
            end=float(d["end"]),
            text=str(d["text"]),
            words=tuple(Word.from_dict(w) for w in d.get("words", ())),
            avg_logprob=float(d.get("avg_logprob", 0.0)),
            no_speech_prob=float(d.get("no_speech_prob", 0.0)),
            compression_ratio=float(d.get("compression_ratio", 0.0)),
            temperature=float(d.get("temperature", 0.0)),
            flags=tuple(d.get("flags", ())),
            speaker=None if d.get("speaker") is None else str(d["speaker"]),
        )


@dataclass(frozen=True)
class RemovedSegment:
    """A decoded segment malsori left out, and why ("stock_phrase", "no_speech", "repetition")."""

    start: float
    end: float
    text: str
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "start": round(self.start, 3),
            "end": round(self.end, 3),
            "text": self.text,
            "reason": self.reason,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RemovedSegment:
        return cls(float(d["start"]), float(d["end"]), str(d["text"]), str(d["reason"]))


@dataclass(frozen=True)
class LanguageInfo:
    language: str  # Whisper code of the language used for decoding
    probability: float  # 1.0 when the caller fixed the language
    # Most likely languages with their probabilities, best first (empty when the caller fixed it).
    candidates: tuple[tuple[str, float], ...] = ()
    detected: bool = True  # False when the language was given, not detected

    @classmethod
    def detected_from(cls, probs: Sequence[tuple[str, float]]) -> LanguageInfo:
        """Detected language probabilities, best first; the top ``TOP_LANGUAGES`` kept."""
        top = tuple((code, float(p)) for code, p in probs[:TOP_LANGUAGES])
        return cls(top[0][0], top[0][1], top, detected=True)

    @classmethod
    def given(cls, code: str) -> LanguageInfo:
        """A language the caller named: nothing was detected."""
        return cls(code, 1.0, (), detected=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "language": self.language,
            "probability": round(self.probability, 4),
            "detected": self.detected,
            "candidates": [{"language": c, "probability": round(p, 4)} for c, p in self.candidates],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LanguageInfo:
        return cls(
            language=str(d["language"]),
            probability=float(d["probability"]),
            candidates=tuple((c["language"], float(c["probability"])) for c in d["candidates"]),
            detected=bool(d.get("detected", True)),
        )


@dataclass(frozen=True)
class Transcript:
    segments: tuple[Segment, ...]
    language: LanguageInfo
    duration: float  # seconds of input audio
    processing_time: float  # wall-clock seconds spent decoding and transcribing
    options: TranscribeOptions  # the options that actually ran
    model: str  # model name or path it was loaded from
    source: str = ""  # input name as given (path, or "-" for standard input)
    removed: tuple[RemovedSegment, ...] = ()  # segments the hallucination defences left out
    meta: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def text(self) -> str:
        """The whole text, segments joined by single spaces (no spaces between CJK segments)."""
        parts = [s.text.strip() for s in self.segments if s.text.strip()]
        if self.language.language in ("zh", "ja", "yue", "th", "lo", "my", "km"):
            return "".join(parts)
        return " ".join(parts)

    @property
    def words(self) -> tuple[Word, ...]:
        return tuple(w for s in self.segments for w in s.words)

    @property
    def rtfx(self) -> float:
        """Inverse real-time factor: seconds of audio per second of processing."""
        return self.duration / self.processing_time if self.processing_time > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        from ._version import __version__

        return {
            "text": self.text,
            "language": self.language.language,
            "language_probability": round(self.language.probability, 4),
            "language_info": self.language.to_dict(),
            "duration": round(self.duration, 3),
            "processing_time": round(self.processing_time, 3),
            "rtfx": round(self.rtfx, 2),
            "model": self.model,
            "source": self.source,
            "options": self.options.to_dict(),
            "segments": [s.to_dict() for s in self.segments],
            "removed_segments": [r.to_dict() for r in self.removed],
            "malsori_version": __version__,
            **({"meta": self.meta} if self.meta else {}),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Transcript:
        return cls(
            segments=tuple(Segment.from_dict(s) for s in d["segments"]),
            language=LanguageInfo.from_dict(d["language_info"]),
            duration=float(d["duration"]),
            processing_time=float(d["processing_time"]),
            options=TranscribeOptions.from_dict(d["options"]),
            model=str(d["model"]),
            source=str(d.get("source", "")),
            removed=tuple(RemovedSegment.from_dict(r) for r in d.get("removed_segments", ())),
            meta=dict(d.get("meta", {})),
        )
