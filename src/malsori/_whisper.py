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

**A token budget that fits the prompt.** ``max_new_tokens`` (malsori's budget for short audio,
``transcribe.max_new_tokens``) is cut to the room Whisper's 448-token context leaves after the
prompt, which faster-whisper would reject instead: long hotwords plus the previous text can take
up to 450 tokens on their own. A decode that uses the whole budget has fallen into a loop (the
budget is twice the fastest speech), and a loop cut that short is not repetitive enough for
Whisper's compression-ratio check: such a decode falls back to the next temperature, as a loop
that ran to 448 tokens would.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import faster_whisper
import numpy as np

from .options import FULL_ENCODER_WINDOW_S

logger = logging.getLogger(__name__)

FRAMES_PER_SECOND = 100  # mel frames
_MARGIN_FRAMES = 100  # padding kept after the audio when the window is cut

_encoder_frames: ContextVar[int | None] = ContextVar("malsori_encoder_frames", default=None)


@contextmanager
def encoder_window(seconds: float) -> Iterator[None]:
    """Encode windows cut to at least ``seconds`` of audio in this context (30: no cut)."""
    frames = None if seconds >= FULL_ENCODER_WINDOW_S else int(seconds * FRAMES_PER_SECOND)
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


class WhisperModel(faster_whisper.WhisperModel):
    def encode(self, features: np.ndarray) -> Any:
        min_frames = _encoder_frames.get()
        if min_frames is not None:
            window = features if features.ndim == 3 else features[None]
            if window.shape[0] == 1:  # batched windows share one length: left as they are
                features = cut_padding(window, min_frames)
        return super().encode(features)

    def generate_with_fallback(
        self, encoder_output: Any, prompt: list[int], tokenizer: Any, options: Any
    ) -> Any:
        budget = options.max_new_tokens
        if budget is not None and len(prompt) + budget > self.max_length:
            room = self.max_length - len(prompt)  # none left: faster-whisper's own handling
            budget = room if room > 0 else None
            options = dataclasses.replace(options, max_new_tokens=budget)
        while True:
            decoded = super().generate_with_fallback(encoder_output, prompt, tokenizer, options)
            result, _, temperature, _ = decoded
            hotter = [t for t in options.temperatures if t > temperature]
            if budget is None or len(result.sequences_ids[0]) < budget or not hotter:
                return decoded
            logger.debug("decode used its whole budget of %d tokens at temperature %g", budget,
                         temperature)  # fmt: skip
            options = dataclasses.replace(options, temperatures=hotter)

    def _split_segments_by_timestamps(self, **kwargs: Any) -> Any:
        segments, seek, single_timestamp_ending = super()._split_segments_by_timestamps(**kwargs)
        last_window = kwargs["segment_size"] < self.feature_extractor.nb_max_frames
        timestamp_begin = kwargs["tokenizer"].timestamp_begin
        if last_window and not any(t >= timestamp_begin for t in kwargs["tokens"]):
            # faster-whisper has already moved past the window; "single timestamp ending" tells
            # it the window ended cleanly, so it does not move back to the last word.
            return segments, seek, True
        return segments, seek, single_timestamp_ending
