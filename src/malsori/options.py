"""Typed, frozen options for one transcription, validated once when built.

Change a value with ``dataclasses.replace`` (or ``options.replace(...)``); nothing mutates an
options object after it is made, so the one stored in a ``Transcript`` is exactly what ran.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, fields
from typing import Any, Literal

from .decoding import WINDOW_S, FallbackRule
from .errors import InvalidOptionError
from .glossary import Glossary, merge_hotwords
from .languages import normalize_language
from .subtitles.profiles import SubtitleSpec

Task = Literal["transcribe", "translate"]
TASKS: tuple[str, ...] = ("transcribe", "translate")
NumberStyle = Literal["keep", "digits", "words"]
NUMBER_STYLES: tuple[str, ...] = ("keep", "digits", "words")

DEFAULT_TEMPERATURES: tuple[float, ...] = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
# Whisper's encoder window (seconds), and the least of it ``encoder_window_s`` may keep.
FULL_ENCODER_WINDOW_S = WINDOW_S
MIN_ENCODER_WINDOW_S = 5.0


def check_encoder_window(seconds: float) -> None:
    if not MIN_ENCODER_WINDOW_S <= seconds <= FULL_ENCODER_WINDOW_S:
        raise InvalidOptionError(
            f"encoder window must lie in [{MIN_ENCODER_WINDOW_S:g}, {FULL_ENCODER_WINDOW_S:g}] "
            f"seconds, got {seconds}"
        )


@dataclass(frozen=True)
class TranscribeOptions:
    """What to decode and how. Defaults follow Whisper's, with Silero VAD switched on."""

    # "transcribe" keeps the spoken language; "translate" writes English.
    task: Task = "transcribe"
    # Whisper language code ("ko", "en", ...) or English name; None detects it from the audio.
    language: str | None = None

    # Silero voice-activity detection: only speech regions reach the decoder.
    vad: bool = True
    # Speech probability above which a 32 ms frame counts as speech (0..1). Below Silero's usual
    # 0.5: whispered and quiet speech scores 0.2-0.5 and was cut, while loud white, pink and brown
    # noise, tones and music stay under 0.3 (scripts/nonspeech_bench.py renders such clips).
    vad_threshold: float = 0.35
    # Silence shorter than this does not end a speech region (milliseconds).
    vad_min_silence_ms: int = 2000
    # Padding added on each side of a speech region (milliseconds).
    vad_speech_pad_ms: int = 400

    # Per-word start/end times and probabilities (cross-attention alignment).
    word_timestamps: bool = False
    # Whisper writes no timestamp tokens: each 30 s window is one segment, timed by its words
    # when word_timestamps is on. A short input (under 30 s) is then decoded in one pass, about
    # twice as fast. The streaming engine decodes this way.
    without_timestamps: bool = False
    # Seconds of audio the encoder sees, at least (5-30). Whisper encodes a full 30 s window
    # whatever the input's length; less encodes a short input plus a margin only: faster, and
    # somewhat less accurate (docs/streaming.md has numbers). The streaming engine uses 15 on CPU.
    encoder_window_s: float = FULL_ENCODER_WINDOW_S

    # Beam search width for temperature 0; 1 means greedy decoding.
    beam_size: int = 5
    # Candidates sampled at temperatures above 0.
    best_of: int = 5
    # Beam search patience factor.
    patience: float = 1.0
    # Temperatures tried in order when a decode fails the checks below (fallback).
    temperature: tuple[float, ...] = DEFAULT_TEMPERATURES
    # A decode whose gzip compression ratio is above this is treated as repetitive (fallback).
    compression_ratio_threshold: float | None = 2.4
    # A decode whose average token log-probability is below this is treated as failed (fallback).
    log_prob_threshold: float | None = -1.0
    # A window whose no-speech probability is above this (and log-prob below the threshold above)
    # is treated as silence and skipped.
    no_speech_threshold: float | None = 0.6
    # Feed the previous window's text as the prompt for the next one.
    condition_on_previous_text: bool = True

    # Text given as if it came before the audio: spelling, style, vocabulary.
    initial_prompt: str | None = None
    # Words or phrases to bias the decoder toward (prefixed to the context each window).
    hotwords: str | None = None

    # Remove stock phrases ("Thanks for watching!") and doubtful segments where the audio under
    # them is not speech.
    hallucination_filter: bool = True
    # Extra stock phrases to remove on non-speech, added to the built-in list.
    stock_phrases: tuple[str, ...] = ()
    # A doubtful segment is removed when less than this fraction of its audio is speech (0..1).
    hallucination_speech_ratio: float = 0.3
    # Collapse repetition loops and reset the decoding context after one.
    repetition_filter: bool = True

    # Korean post-processing (see malsori.korean), on the final text of Korean transcripts.
    # Insert missing spaces, only in segments that are clearly under-spaced.
    korean_spacing: bool = True
    # End sentences that have no final punctuation with "." or "?" (chosen by the ending).
    korean_punctuation: bool = True
    # Numbers: "keep" as decoded, "digits" ("이십육일" -> "26일") or "words" ("26일" -> "이십육일").
    number_style: NumberStyle = "keep"
    # Domain vocabulary (``--glossary``): its terms are added to the hotwords when decoding and
    # its replacement rules are applied to the text afterwards (see malsori.glossary).
    glossary: Glossary | None = None

    # Subtitle profile for the SRT and VTT writers (and the cues the JSON records): cues built
    # from the words to meet its limits. None, or a spec with profile "none", writes one cue per
    # segment. The command line's default is "auto": the general profile for the language.
    subtitles: SubtitleSpec | None = None

    # Audio windows used for language detection (each 30 s); more is steadier on mixed starts.
    language_detection_segments: int = 1
    # Long inputs are decoded and transcribed in windows of about this many seconds, cut at a
    # silence, so hours of audio never sit in memory as float32 at once.
    stream_window_s: float = 1200.0

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise InvalidOptionError(f"unknown task {self.task!r}: use 'transcribe' or 'translate'")
        object.__setattr__(self, "language", normalize_language(self.language))
        temps = self.temperature
        if isinstance(temps, int | float):
            temps = (float(temps),)
        temps = tuple(float(t) for t in temps)
        object.__setattr__(self, "temperature", temps)
        if not temps:
            raise InvalidOptionError("temperature needs at least one value")
        if any(t < 0 or t > 1 for t in temps):
            raise InvalidOptionError(f"temperatures must lie in [0, 1], got {temps}")
        if list(temps) != sorted(temps):
            raise InvalidOptionError(f"fallback temperatures must increase, got {temps}")
        if self.beam_size < 1:
            raise InvalidOptionError(f"beam size must be at least 1, got {self.beam_size}")
        if self.best_of < 1:
            raise InvalidOptionError(f"best_of must be at least 1, got {self.best_of}")
        if self.patience <= 0:
            raise InvalidOptionError(f"patience must be positive, got {self.patience}")
        if not 0.0 < self.vad_threshold < 1.0:
            raise InvalidOptionError(f"VAD threshold must lie in (0, 1), got {self.vad_threshold}")
        if self.vad_min_silence_ms < 0 or self.vad_speech_pad_ms < 0:
            raise InvalidOptionError("VAD durations cannot be negative")
        check_encoder_window(self.encoder_window_s)
        if self.no_speech_threshold is not None and not 0.0 <= self.no_speech_threshold <= 1.0:
            raise InvalidOptionError(
                f"no-speech threshold must lie in [0, 1], got {self.no_speech_threshold}"
            )
        object.__setattr__(self, "stock_phrases", tuple(p for p in self.stock_phrases if p.strip()))
        if not 0.0 <= self.hallucination_speech_ratio <= 1.0:
            raise InvalidOptionError(
                "hallucination speech ratio must lie in [0, 1], "
                f"got {self.hallucination_speech_ratio}"
            )
        if self.language_detection_segments < 1:
            raise InvalidOptionError("language detection needs at least one segment")
        if self.stream_window_s < 60:
            raise InvalidOptionError(
                f"stream window must be at least 60 s, got {self.stream_window_s}"
            )
        if self.number_style not in NUMBER_STYLES:
            raise InvalidOptionError(
                f"unknown number style {self.number_style!r}: use {', '.join(NUMBER_STYLES)}"
            )
        if self.glossary is not None and not isinstance(self.glossary, Glossary):
            raise InvalidOptionError(
                "glossary must be a malsori.glossary.Glossary (see load_glossary), "
                f"got {type(self.glossary).__name__}"
            )
        if isinstance(self.subtitles, str):
            object.__setattr__(self, "subtitles", SubtitleSpec(self.subtitles))
        if self.subtitles is not None and not isinstance(self.subtitles, SubtitleSpec):
            raise InvalidOptionError(
                "subtitles must be a profile name or a malsori.subtitles.SubtitleSpec, "
                f"got {type(self.subtitles).__name__}"
            )
        for name in ("initial_prompt", "hotwords"):
            value = getattr(self, name)
            if value is not None and not value.strip():
                object.__setattr__(self, name, None)

    @classmethod
    def build(cls, options: TranscribeOptions | None = None, **overrides: Any) -> TranscribeOptions:
        """Options from an existing object (or the defaults) with some values replaced."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise InvalidOptionError(f"unknown transcription option(s): {', '.join(unknown)}")
        base = options if options is not None else cls()
        return dataclasses.replace(base, **overrides) if overrides else base

    def replace(self, **changes: Any) -> TranscribeOptions:
        return TranscribeOptions.build(self, **changes)

    def decoding_key(self) -> tuple[Any, ...]:
        """What decoding a window depends on: requests whose keys are equal can share windows
        and batches (``malsori.engine``). The language is per window, VAD runs before and the
        defences and post-processing after, per request."""
        return (
            self.task, self.word_timestamps, self.without_timestamps, self.encoder_window_s,
            self.beam_size, self.best_of, self.patience, self.temperature,
            self.compression_ratio_threshold, self.log_prob_threshold, self.no_speech_threshold,
            self.initial_prompt, merge_hotwords(self.hotwords, self.glossary),
            self.language_detection_segments,
        )  # fmt: skip

    def fallback_rule(self) -> FallbackRule:
        """Whisper's temperature fallback and no-speech skip with these thresholds."""
        return FallbackRule(
            self.temperature,
            self.compression_ratio_threshold,
            self.log_prob_threshold,
            self.no_speech_threshold,
        )

    def check_model(self, *, multilingual: bool, model_name: str) -> None:
        """Raise for combinations this model cannot do (an English-only model translating)."""
        if multilingual:
            return
        if self.task == "translate":
            raise InvalidOptionError(
                f"model {model_name!r} is English-only and cannot translate; use a multilingual "
                "model such as 'base'"
            )
        if self.language not in (None, "en"):
            raise InvalidOptionError(
                f"model {model_name!r} is English-only; it cannot transcribe {self.language!r}"
            )

    def to_dict(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["temperature"] = list(self.temperature)
        data["stock_phrases"] = list(self.stock_phrases)
        data["glossary"] = None if self.glossary is None else self.glossary.to_dict()
        data["subtitles"] = None if self.subtitles is None else self.subtitles.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TranscribeOptions:
        data = dict(data)
        for key in ("temperature", "stock_phrases"):
            if key in data:
                data[key] = tuple(data[key])
        if isinstance(data.get("glossary"), dict):
            data["glossary"] = Glossary.from_dict(data["glossary"])
        if isinstance(data.get("subtitles"), dict):
            data["subtitles"] = SubtitleSpec.from_dict(data["subtitles"])
        return cls.build(None, **data)
