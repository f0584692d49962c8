"""Whisper's decoding rules, in one place.

Every engine decides with these: the sequential ``transcribe`` (faster-whisper's loop over
windows, with ``malsori._whisper`` deciding each window's fallback) and the engine's packed
windows (``engine.decoder``, raw CTranslate2 over shared windows, and ``engine.lid``), which serve
batch, the server and, through the sequential path in a lane, live streams. Changing a rule, a
threshold's meaning or a constant is one edit here.

- The window: Whisper hears 30 s at a time, 100 mel frames a second; a timestamp token is 20 ms.
- The token budget: 448 tokens of context for prompt and text; audio shorter than a window gets a
  budget for its length (``max_new_tokens``), cut to the room the prompt leaves (``fit_budget``).
- Temperature fallback (``FallbackRule``): a decode that is too repetitive (compression ratio),
  too unlikely (mean log-probability) or that used its whole token budget (a loop cut short) is
  redone at the next temperature, unless the window looks like silence; when every temperature
  fails, the likeliest try that is not repetitive is kept.
- The no-speech skip (``FallbackRule.skip``): a window the model thinks is silence, and whose text
  is unlikely, gives no segments.
- Timestamp tokens (``parse_tokens``): a window's tokens cut into timed segments.
- What a decoder hands the assembler: ``RawSegment`` and ``RawWord``, in the input's time.
- Language probabilities: the top ``TOP_LANGUAGES`` are kept (``LanguageInfo.detected_from``).

This module imports nothing of malsori's: options, results and every engine build on it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

SAMPLE_RATE = 16000  # Hz: what Whisper's feature extractor expects
WINDOW_S = 30.0  # seconds of audio the encoder sees
FRAMES_PER_SECOND = 100  # mel frames (10 ms hop)
WINDOW_FRAMES = int(WINDOW_S * FRAMES_PER_SECOND)  # 3000
WINDOW_SAMPLES = int(WINDOW_S * SAMPLE_RATE)  # 480 000
TIME_PRECISION = 0.02  # seconds per timestamp token
MAX_CONTEXT_TOKENS = 448  # prompt and text of one window together
MAX_INITIAL_TIMESTAMP_S = 1.0  # the first timestamp of a window comes no later than this
LENGTH_PENALTY = 1.0
TOP_LANGUAGES = 10  # candidates kept in LanguageInfo

# Whisper may write 448 tokens for a 30 s window: about 15 a second, twice the fastest speech in
# the dev set (7.5 tokens/s). Audio shorter than a window gets that same budget for its length
# plus a margin, instead of a whole window's: a decode stuck in a loop on 2 s of audio stops
# after about 50 tokens rather than 448, and temperature fallback can redo it six times. This
# matters most when decoding short buffers again and again (the streaming engine).
_TOKENS_PER_SECOND = MAX_CONTEXT_TOKENS / WINDOW_S
_TOKEN_MARGIN = 16
# From this budget up (13.6 s of audio), no cap: faster-whisper's own limit, 448 minus the
# prompt (up to 228 tokens of previous text), is about as tight.
_MAX_CAPPED_TOKENS = 220


def max_new_tokens(samples: int) -> int | None:
    """Token budget of one decode of ``samples`` of audio (None: the context's own limit)."""
    budget = math.ceil(samples / SAMPLE_RATE * _TOKENS_PER_SECOND) + _TOKEN_MARGIN
    return budget if budget < _MAX_CAPPED_TOKENS else None


def fit_budget(prompt_tokens: int, budget: int | None, max_length: int) -> int | None:
    """``budget`` cut to the room the prompt leaves in the context (None: no cap, or no room
    left, in which case the context's own limit applies)."""
    if budget is None or prompt_tokens + budget <= max_length:
        return budget
    room = max_length - prompt_tokens
    return room if room > 0 else None


def avg_logprob(score: float, tokens: int, length_penalty: float = LENGTH_PENALTY) -> float:
    """Mean log-probability per token (with the end token) from CTranslate2's normalised score."""
    return float(score * (tokens**length_penalty) / (tokens + 1))


def compression_ratio(text: str) -> float:
    """Whisper's loop test: how well the text compresses (zlib); loops compress very well."""
    import zlib

    data = text.encode("utf-8")
    return len(data) / len(zlib.compress(data)) if data else 0.0


def sampling(
    temperature: float, beam_size: int, best_of: int, patience: float, hypotheses: int = 1
) -> dict[str, Any]:
    """CTranslate2 ``generate`` arguments for one try: beam search at 0 (keeping ``hypotheses``
    of its best readings, for N-best rescoring), sampling above."""
    if temperature > 0:
        return {"beam_size": 1, "num_hypotheses": best_of, "sampling_topk": 0,
                "sampling_temperature": temperature}  # fmt: skip
    kept = max(1, min(hypotheses, beam_size))
    return {"beam_size": beam_size, "patience": patience, "num_hypotheses": kept}


class Scored(Protocol):
    """One try at decoding a window, as the fallback rule sees it."""

    @property
    def compression_ratio(self) -> float: ...
    @property
    def avg_logprob(self) -> float: ...
    @property
    def no_speech_prob(self) -> float: ...


T = TypeVar("T", bound=Scored)


@dataclass(frozen=True)
class FallbackRule:
    """When a window is decoded again hotter, which try is kept, and when a window is silence
    (``TranscribeOptions.fallback_rule()`` makes one from a transcription's options)."""

    temperatures: tuple[float, ...]
    compression_ratio_threshold: float | None
    log_prob_threshold: float | None
    no_speech_threshold: float | None

    def repetitive(self, attempt: Scored) -> bool:
        limit = self.compression_ratio_threshold
        return limit is not None and attempt.compression_ratio > limit

    def unlikely(self, attempt: Scored) -> bool:
        limit = self.log_prob_threshold
        return limit is not None and attempt.avg_logprob < limit

    def silence(self, attempt: Scored) -> bool:
        """The model hears no speech and its text is unlikely: trying harder is pointless."""
        limit = self.no_speech_threshold
        return limit is not None and attempt.no_speech_prob > limit and self.unlikely(attempt)

    def needs_fallback(self, attempt: Scored, *, used_budget: bool = False) -> bool:
        """Decode again at the next temperature? A try that used its whole token budget is a
        loop cut short (too short for the compression test) and falls back even over silence."""
        if used_budget:
            return True
        failed = self.repetitive(attempt) or self.unlikely(attempt)
        return failed and not self.silence(attempt)

    def best_of_failed(self, attempts: Sequence[T]) -> T:
        """Every temperature failed: the likeliest try that is not repetitive (else of all)."""
        good = [a for a in attempts if not self.repetitive(a)]
        return max(good or attempts, key=lambda a: a.avg_logprob)

    def skip(self, no_speech_prob: float, avg_logprob: float) -> bool:
        """The no-speech skip: the window gives no segments. A likely text is kept whatever the
        no-speech probability says."""
        if self.no_speech_threshold is None or no_speech_prob <= self.no_speech_threshold:
            return False
        return self.log_prob_threshold is None or avg_logprob <= self.log_prob_threshold


def parse_tokens(
    tokens: list[int], timestamp_begin: int, content_end: float, *, keep_open: bool = True
) -> tuple[list[tuple[float, float, list[int]]], float | None]:
    """Split a window's tokens at timestamp pairs: (start, end, tokens) per segment, and the time
    up to which the output is complete (None when it is complete to the end).

    A last segment that got its text but never its closing timestamp ends at ``content_end``
    when ``keep_open`` (the window's speech ends before the window does, so its text is all
    there; faster-whisper drops it only because its next window starts there anyway). Otherwise
    (``keep_open`` False: the decode hit the length limit), or when no text follows the last
    closed segment, decoding must resume after the last closing timestamp.
    """

    def at(tok: int) -> float:
        return (tok - timestamp_begin) * TIME_PRECISION

    is_ts = [t >= timestamp_begin for t in tokens]
    single_ending = len(tokens) >= 2 and not is_ts[-2] and is_ts[-1]
    pairs = [i for i in range(1, len(tokens)) if is_ts[i] and is_ts[i - 1]]
    if not pairs:
        stamps = [t for t in tokens if t >= timestamp_begin]
        start = at(tokens[0]) if tokens and is_ts[0] else 0.0
        end = at(stamps[-1]) if stamps and stamps[-1] != timestamp_begin else content_end
        return [(start, max(end, start), tokens)], None
    slices = pairs + ([len(tokens)] if single_ending else [])
    segments = []
    last = 0
    for cut in slices:
        part = tokens[last:cut]
        segments.append((at(part[0]), at(part[-1]), part))
        last = cut
    if single_ending:
        return segments, None
    rest = tokens[last:]
    if keep_open and any(t < timestamp_begin for t in rest):
        start = at(rest[0]) if rest[0] >= timestamp_begin else at(tokens[last - 1])
        segments.append((start, max(content_end, start), rest))
        return segments, None
    complete = at(tokens[last - 1])
    return segments, (complete if complete < content_end - 0.5 else None)


@dataclass(frozen=True)
class RawWord:
    """A decoded word, before the defences and post-processing (seconds, input time)."""

    start: float
    end: float
    word: str
    probability: float


@dataclass(frozen=True)
class RawSegment:
    """A decoded segment as every engine hands it to ``transcribe.Assembler``."""

    start: float
    end: float
    text: str
    words: tuple[RawWord, ...] | None  # None: word timestamps were not asked for
    avg_logprob: float
    no_speech_prob: float
    compression_ratio: float
    temperature: float
    # Whisper's output tokens of the segment (with its timestamp tokens; empty when the decoder
    # does not keep them) and the start of the 30 s window it came from, in seconds of input
    # time (None: not known).
    tokens: tuple[int, ...] = ()
    window_start: float | None = None

    @classmethod
    def of(cls, segment: Any, window_start: float | None = None) -> RawSegment:
        """From a faster-whisper ``Segment`` (the sequential engine decodes through it);
        ``window_start``: its window's start in the input's time, when the caller knows it."""
        words = segment.words
        return cls(
            float(segment.start), float(segment.end), segment.text,
            None if words is None else tuple(
                RawWord(float(w.start), float(w.end), w.word, float(w.probability)) for w in words
            ),
            float(segment.avg_logprob), float(segment.no_speech_prob),
            float(segment.compression_ratio), float(segment.temperature or 0.0),
            tuple(int(t) for t in (getattr(segment, "tokens", None) or ())), window_start,
        )  # fmt: skip
