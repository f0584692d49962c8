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
    # Speech regions shorter than this are dropped (milliseconds; Silero's, faster-whisper's 0).
    vad_min_speech_ms: int = 0
    # Speech regions longer than this are split at their longest silence (seconds; None: never).
    vad_max_speech_s: float | None = None

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
    # Text the first window's output is forced to start with (faster-whisper's ``prefix``).
    prefix: str | None = None

    # Whisper's and CTranslate2's remaining decoding knobs, with faster-whisper's defaults (and
    # its meaning). Requests that change any of them decode alone, through the sequential
    # pipeline (``packs_with_others``): the packed engine decodes with the defaults.
    # Exponent of the length normalisation of beam scores (1.0: divide by the length).
    length_penalty: float = 1.0
    # Penalty on the scores of tokens already generated (above 1 penalises repeats).
    repetition_penalty: float = 1.0
    # N-grams of this size are never repeated (0: off).
    no_repeat_ngram_size: int = 0
    # Suppress a blank (space or end) as the first token of a window.
    suppress_blank: bool = True
    # Token ids never generated; -1 stands for Whisper's list of symbols (its default).
    suppress_tokens: tuple[int, ...] = (-1,)
    # The first timestamp of a window comes no later than this (seconds).
    max_initial_timestamp: float = 1.0
    # With word timestamps: these marks join the next word (prepend) or the previous (append).
    prepend_punctuations: str = "\"'“¿([{-"
    append_punctuations: str = "\"'.。,，!！?？:：”)]}、"
    # The previous text is no longer given as prompt after a window decoded above this
    # temperature.
    prompt_reset_on_temperature: float = 0.5
    # With word timestamps: skip silences longer than this (seconds) around a likely
    # hallucination (openai-whisper's option; None: off).
    hallucination_silence_threshold: float | None = None
    # Detect the language again on every window (code-switching audio).
    multilingual: bool = False
    # Decode only these clips of the input: start,end,start,end,... in seconds (an odd count:
    # the last clip runs to the end). Empty: all of it.
    clip_timestamps: tuple[float, ...] = ()
    # Tokens a window may generate at most (None: Whisper's context limit and malsori's budget
    # for short audio).
    max_new_tokens: int | None = None

    # Remove stock phrases ("Thanks for watching!") and doubtful segments where the audio under
    # them is not speech.
    hallucination_filter: bool = True
    # Extra stock phrases to remove on non-speech, added to the built-in list.
    stock_phrases: tuple[str, ...] = ()
    # A doubtful segment is removed when less than this fraction of its audio is speech (0..1).
    hallucination_speech_ratio: float = 0.3
    # Collapse repetition loops and reset the decoding context after one.
    repetition_filter: bool = True

    # N-best rescoring (see malsori.rescoring): beam search keeps ``rescore_hypotheses`` readings
    # of each window and a language model of the language re-ranks them. Korean (Kiwi's model)
    # ships; other languages are decoded as Whisper ranks them unless a scorer is registered.
    rescore: bool = True
    # Weight of the language model's score against Whisper's (None: the tuned default).
    rescore_weight: float | None = None
    # Hypotheses kept per window for rescoring (at most ``beam_size``).
    rescore_hypotheses: int = 5

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
        self._check_whisper_knobs()
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
        if self.rescore_hypotheses < 1:
            raise InvalidOptionError(
                f"rescore_hypotheses must be at least 1, got {self.rescore_hypotheses}"
            )
        if self.rescore_weight is not None and not 0.0 <= self.rescore_weight <= 10.0:
            raise InvalidOptionError(
                f"rescore weight must lie in [0, 10], got {self.rescore_weight}"
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

    def _check_whisper_knobs(self) -> None:
        if isinstance(self.suppress_tokens, int):
            object.__setattr__(self, "suppress_tokens", (self.suppress_tokens,))
        object.__setattr__(self, "suppress_tokens", tuple(int(t) for t in self.suppress_tokens))
        if self.length_penalty <= 0 or self.repetition_penalty <= 0:
            raise InvalidOptionError("length and repetition penalties must be positive")
        if self.no_repeat_ngram_size < 0:
            raise InvalidOptionError("no_repeat_ngram_size cannot be negative")
        if self.max_initial_timestamp < 0:
            raise InvalidOptionError("max_initial_timestamp cannot be negative")
        if self.max_new_tokens is not None and self.max_new_tokens < 1:
            raise InvalidOptionError(
                f"max_new_tokens must be at least 1, got {self.max_new_tokens}"
            )
        if self.vad_min_speech_ms < 0 or (
            self.vad_max_speech_s is not None and self.vad_max_speech_s <= 0
        ):
            raise InvalidOptionError("VAD speech durations must be positive")
        hst = self.hallucination_silence_threshold
        if hst is not None and hst <= 0:
            raise InvalidOptionError(f"hallucination silence threshold must be positive, got {hst}")
        clips = tuple(float(t) for t in self.clip_timestamps)
        object.__setattr__(self, "clip_timestamps", clips)
        if any(t < 0 for t in clips) or any(
            b <= a for a, b in zip(clips[::2], clips[1::2], strict=False)
        ):
            raise InvalidOptionError(f"clips must be start,end pairs with end > start, got {clips}")
        if self.prefix is not None and not self.prefix.strip():
            object.__setattr__(self, "prefix", None)

    @property
    def packs_with_others(self) -> bool:
        """Whether the packed engine decodes these options as asked: it uses the defaults of
        the decoding knobs above; other values decode through the sequential pipeline."""
        return all(getattr(self, k) == getattr(_DEFAULTS, k) for k in SEQUENTIAL_ONLY)

    @classmethod
    def build(cls, options: TranscribeOptions | None = None, **overrides: Any) -> TranscribeOptions:
        """Options from an existing object (or the defaults) with some values replaced."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise InvalidOptionError(unknown_options_message(unknown, known))
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
            self.rescore, self.rescore_weight, self.rescore_hypotheses, self.number_style,
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
        data["suppress_tokens"] = list(self.suppress_tokens)
        data["clip_timestamps"] = list(self.clip_timestamps)
        data["glossary"] = None if self.glossary is None else self.glossary.to_dict()
        data["subtitles"] = None if self.subtitles is None else self.subtitles.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TranscribeOptions:
        data = dict(data)
        for key in ("temperature", "stock_phrases", "suppress_tokens", "clip_timestamps"):
            if key in data:
                data[key] = tuple(data[key])
        if isinstance(data.get("glossary"), dict):
            data["glossary"] = Glossary.from_dict(data["glossary"])
        if isinstance(data.get("subtitles"), dict):
            data["subtitles"] = SubtitleSpec.from_dict(data["subtitles"])
        return cls.build(None, **data)


_DEFAULTS = TranscribeOptions()
# The knobs the packed engine decodes with their defaults only (see ``packs_with_others``).
SEQUENTIAL_ONLY: tuple[str, ...] = (
    "prefix", "length_penalty", "repetition_penalty", "no_repeat_ngram_size", "suppress_blank",
    "suppress_tokens", "max_initial_timestamp", "prepend_punctuations", "append_punctuations",
    "prompt_reset_on_temperature", "hallucination_silence_threshold", "multilingual",
    "max_new_tokens", "vad_min_speech_ms", "vad_max_speech_s", "clip_timestamps",
)  # fmt: skip
# Other tools' names for malsori's options: an unknown option names the one it means.
KNOWN_SPELLINGS: dict[str, str] = {
    "vad_filter": "vad",
    "vad_parameters": "vad_threshold, vad_min_silence_ms, vad_speech_pad_ms",
    "logprob_threshold": "log_prob_threshold",
    "cpu_threads": "threads (of malsori.load_model)",
    "num_workers": "workers (of malsori.load_model)",
    "temperature_increment_on_fallback": "temperature (a tuple of temperatures)",
    "chunk_length": "encoder_window_s",
}


def unknown_options_message(unknown: list[str], known: set[str]) -> str:
    """One line: each unknown option with the nearest malsori option, and where the other
    tools' spellings are taken as they are (``malsori.compat``)."""
    import difflib

    hints = []
    for name in unknown:
        near = KNOWN_SPELLINGS.get(name) or next(
            iter(difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.6)), None
        )
        hints.append(f"{name} (did you mean {near}?)" if near else name)
    return (
        f"unknown transcription option(s): {', '.join(hints)}; faster-whisper's and "
        "openai-whisper's options are taken as they are by malsori.compat.faster_whisper and "
        "malsori.compat.whisper"
    )
