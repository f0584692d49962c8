"""faster-whisper's ``WhisperModel`` with two changes for short inputs.

**One pass without timestamps.** Without timestamp tokens Whisper writes a window's whole text as
one segment. With word timestamps on, faster-whisper (as openai-whisper) then moves to the end of
the last word and, if any audio is left, decodes that rest again: one more encoder pass over a
window that is mostly padding, for audio the first pass already heard. On the last window of the
input (the only window of anything shorter than 30 s, and every decode of the streaming engine)
malsori keeps the first pass and stops there, which halves the work of a short decode.

**A shorter encoder window** (``TranscribeOptions.encoder_window_s``, off by default). Whisper
pads every input to a 30 s window, and the encoder's cost is the same for 2 s of speech as for
30 s. CTranslate2 accepts fewer frames: inside ``encoder_window(seconds)`` a padded window is cut
to its audio plus a margin, but never below ``seconds``. Whisper was trained on 30 s windows only,
so this trades some accuracy for speed (numbers in docs/streaming.md).

**Malsori's fallback rule.** Each window's temperature fallback follows
``malsori.decoding.FallbackRule``, the rule the batch engine uses too, with malsori's token budget
for short audio (``decoding.max_new_tokens``) cut to the room Whisper's 448-token context leaves
after the prompt (``decoding.fit_budget``; faster-whisper would reject it instead: long hotwords
plus the previous text can take up to 450 tokens on their own). A decode that uses the whole
budget has fallen into a loop (the budget is twice the fastest speech), and a loop cut that short
is not repetitive enough for the compression-ratio check: such a decode falls back to the next
temperature, as a loop that ran to 448 tokens would.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import faster_whisper
import numpy as np

from .decoding import (
    FRAMES_PER_SECOND,
    TIME_PRECISION,
    WINDOW_S,
    FallbackRule,
    avg_logprob,
    compression_ratio,
    fit_budget,
    sampling,
)
from .rescoring import Rescorer

logger = logging.getLogger(__name__)

_MARGIN_FRAMES = 100  # padding kept after the audio when the window is cut

_encoder_frames: ContextVar[int | None] = ContextVar("malsori_encoder_frames", default=None)
_rescorer: ContextVar[Rescorer | None] = ContextVar("malsori_rescorer", default=None)


@dataclass
class _Remembered:
    """The encoder output of language detection's first window, kept for the first decode."""

    detecting: bool = True
    features: np.ndarray | None = None
    output: Any = None


_first_window: ContextVar[_Remembered | None] = ContextVar("malsori_first_window", default=None)


def same_window(detected: np.ndarray, decoded: np.ndarray) -> bool:
    """Whether the first window to decode is what detection encoded: the same features, except
    that faster-whisper detects on every frame and decodes all but the last (a partial frame at
    the end of the audio, which detection sees as one more frame)."""
    if detected.shape != decoded.shape:
        return False
    nonzero = np.flatnonzero(np.any(decoded != 0, axis=0))
    k = int(nonzero[-1]) + 1 if nonzero.size else 0
    return bool(
        np.array_equal(detected[..., :k], decoded[..., :k]) and not np.any(detected[..., k + 1 :])
    )


@contextmanager
def rescoring(rescorer: Rescorer | None) -> Iterator[None]:
    """Re-rank each window's beam hypotheses with ``rescorer`` in this context (None: off)."""
    token = _rescorer.set(rescorer)
    try:
        yield
    finally:
        _rescorer.reset(token)


@contextmanager
def encoder_window(seconds: float) -> Iterator[None]:
    """Encode windows cut to at least ``seconds`` of audio in this context (30: no cut)."""
    frames = None if seconds >= WINDOW_S else int(seconds * FRAMES_PER_SECOND)
    token = _encoder_frames.set(frames)
    try:
        yield
    finally:
        _encoder_frames.reset(token)


def cut_padding(features: np.ndarray, min_frames: int) -> np.ndarray:
    """A (1, mels, frames) window without the padding past its audio: the all-zero frames at
    the end (``pad_or_trim`` pads with zeros), keeping ``_MARGIN_FRAMES`` of them and at least
    ``min_frames`` in all; an even number (the encoder's first layer has stride 2)."""
    frames = features.shape[-1]
    audio = np.flatnonzero(np.any(features[0] != 0, axis=0))
    content = int(audio[-1]) + 1 if audio.size else 0
    keep = min(frames, max(min_frames, content + _MARGIN_FRAMES))
    keep += keep % 2
    if keep >= frames:
        return features
    return np.ascontiguousarray(features[..., :keep])


@dataclass
class _Chosen:
    """A generation result narrowed to the hypothesis rescoring chose, in CTranslate2's shape
    (faster-whisper reads ``sequences_ids[0]``, ``scores[0]`` and ``no_speech_prob``)."""

    sequences_ids: list[list[int]]
    scores: list[float]
    no_speech_prob: float


@dataclass
class _Try:
    """One decode of a window at one temperature."""

    result: Any  # ctranslate2 WhisperGenerationResult
    avg_logprob: float
    temperature: float
    compression_ratio: float
    no_speech_prob: float
    used_budget: bool

    def as_tuple(self, temperature: float) -> tuple[Any, float, float, float]:
        return self.result, self.avg_logprob, temperature, self.compression_ratio


class WhisperModel(faster_whisper.WhisperModel):
    def encode(self, features: np.ndarray) -> Any:
        """Encoder output of a window; language detection's first window is encoded once for
        both detection and the first decode (faster-whisper encodes it twice)."""
        remembered = _first_window.get()
        if remembered is None:
            return self._encode(features)
        if remembered.detecting:
            if remembered.output is not None:  # detection's later segments
                return self._encode(features)
            remembered.features, remembered.output = features, self._encode(features)
            return remembered.output
        _first_window.set(None)  # only the first encode after detection may reuse it
        if remembered.features is not None and same_window(remembered.features, features):
            return remembered.output
        return self._encode(features)

    def _encode(self, features: np.ndarray) -> Any:
        min_frames = _encoder_frames.get()
        if min_frames is not None:
            window = features if features.ndim == 3 else features[None]
            if window.shape[0] == 1:  # batched windows share one length: left as they are
                features = cut_padding(window, min_frames)
        return super().encode(features)

    def generate_with_fallback(
        self, encoder_output: Any, prompt: list[int], tokenizer: Any, options: Any
    ) -> Any:
        """One window, at the first temperature that passes malsori's fallback rule
        (``malsori.decoding.FallbackRule``, the batch engine's too), in faster-whisper's result
        shape: (generation result, mean log-probability, temperature, compression ratio)."""
        rule = FallbackRule(
            tuple(options.temperatures),
            options.compression_ratio_threshold,
            options.log_prob_threshold,
            options.no_speech_threshold,
        )
        rescorer = _rescorer.get()
        if rescorer is not None and not rescorer.applies(tokenizer.language_code):
            rescorer = None
        kept = rescorer.hypotheses if rescorer is not None else 1
        budget = fit_budget(len(prompt), options.max_new_tokens, self.max_length)
        max_length = len(prompt) + budget if budget is not None else self.max_length
        tries: list[_Try] = []
        for temperature in rule.temperatures:
            result = self.model.generate(
                encoder_output,
                [prompt],
                length_penalty=options.length_penalty,
                repetition_penalty=options.repetition_penalty,
                no_repeat_ngram_size=options.no_repeat_ngram_size,
                max_length=max_length,
                return_scores=True,
                return_no_speech_prob=True,
                suppress_blank=options.suppress_blank,
                suppress_tokens=options.suppress_tokens,
                max_initial_timestamp_index=round(options.max_initial_timestamp / TIME_PRECISION),
                **sampling(temperature, options.beam_size, options.best_of, options.patience, kept),
            )[0]
            tokens = result.sequences_ids[0]
            attempt = _Try(
                result,
                avg_logprob(result.scores[0], len(tokens), options.length_penalty),
                temperature,
                compression_ratio(tokenizer.decode(tokens).strip()),
                float(result.no_speech_prob),
                used_budget=budget is not None and len(tokens) >= budget,
            )
            tries.append(attempt)
            if not rule.needs_fallback(attempt, used_budget=attempt.used_budget):
                if rescorer is not None and temperature == 0:
                    attempt.result = _rescored(result, rescorer, tokenizer)
                return attempt.as_tuple(temperature)
            logger.debug("fallback from temperature %g (ratio %.2f, logprob %.2f, budget %s)",
                         temperature, attempt.compression_ratio, attempt.avg_logprob,
                         attempt.used_budget)  # fmt: skip
        # Every temperature failed: a try that stopped by itself before one cut off in a loop.
        best = rule.best_of_failed([t for t in tries if not t.used_budget] or tries)
        return best.as_tuple(tries[-1].temperature)  # the last temperature, as faster-whisper

    def detect_language(self, *args: Any, **kwargs: Any) -> Any:
        """faster-whisper's detection; the encoder output of its first 30 s is kept for the
        first window's decode, which then needs no encoder pass of its own (see ``encode``)."""
        _first_window.set(_Remembered())
        try:
            return super().detect_language(*args, **kwargs)
        finally:
            remembered = _first_window.get()
            if remembered is not None:
                remembered.detecting = False

    def _split_segments_by_timestamps(self, **kwargs: Any) -> Any:
        segments, seek, single_timestamp_ending = super()._split_segments_by_timestamps(**kwargs)
        last_window = kwargs["segment_size"] < self.feature_extractor.nb_max_frames
        timestamp_begin = kwargs["tokenizer"].timestamp_begin
        if last_window and not any(t >= timestamp_begin for t in kwargs["tokens"]):
            # faster-whisper has already moved past the window; "single timestamp ending" tells
            # it the window ended cleanly, so it does not move back to the last word.
            return segments, seek, True
        return segments, seek, single_timestamp_ending


def _rescored(result: Any, rescorer: Rescorer, tokenizer: Any) -> Any:
    """``result`` narrowed to the hypothesis ``rescorer`` picks among its beam's best."""
    chosen = rescorer.choose_result(result, tokenizer.language_code, tokenizer.decode)
    if chosen == 0:
        return result
    return _Chosen(
        [list(result.sequences_ids[chosen])], [result.scores[chosen]], result.no_speech_prob
    )
