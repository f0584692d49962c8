"""The parameters a request may carry, validated once into typed values.

The OpenAI form fields (``model``, ``language``, ``prompt``, ``response_format``, ``temperature``,
``timestamp_granularities[]``, ``stream``) and the job fields (``task``, ``callback_url``). Form
fields arrive as strings; pydantic turns them into these types or reports the field at fault.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ..options import TranscribeOptions
from ..subtitles.profiles import PROFILE_NAMES

ResponseFormat = Literal["json", "text", "srt", "verbose_json", "vtt", "diarized_json"]
ResultFormat = Literal["txt", "json", "srt", "vtt", "tsv"]
Granularity = Literal["word", "segment"]
MAX_KNOWN_SPEAKERS = 4  # OpenAI's limit on known_speaker_references[]
Task = Literal["transcribe", "translate"]
JobStatus = Literal["queued", "running", "completed", "failed"]


class DecodeParams(BaseModel):
    """What every transcription request may say about decoding."""

    model_config = ConfigDict(
        extra="ignore", frozen=True, str_strip_whitespace=True, use_attribute_docstrings=True
    )

    model: str | None = None
    """Model id: a served model's name, or an alias of the default one (``whisper-1``); None:
    the default model."""
    language: str | None = None
    """Spoken language (code or English name); None detects it."""
    prompt: str | None = Field(default=None, max_length=4000)
    """Text that comes before the audio: spelling, names, style."""
    temperature: float | None = Field(default=None, ge=0.0, le=1.0)
    """First decoding temperature; higher ones follow on failure, as in Whisper."""
    timestamp_granularities: tuple[Granularity, ...] = ("segment",)
    """``word`` adds per-word times (verbose_json lists them); ``segment`` is always there."""
    subtitle_profile: str | None = None
    """Cues of srt and vtt (and of a job's JSON result) built to meet a subtitle profile:
    netflix-ko, netflix-en, latin, cjk, auto (by language) or none; None: one cue per segment,
    as OpenAI's API writes them."""

    @field_validator("subtitle_profile", mode="before")
    @classmethod
    def _check_profile(cls, value: Any) -> Any:
        if isinstance(value, str) and not value.strip():
            return None
        if isinstance(value, str) and value.strip().lower() not in PROFILE_NAMES:
            raise ValueError(f"unknown subtitle profile: use one of {', '.join(PROFILE_NAMES)}")
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("model", "language", "prompt", "temperature", mode="before")
    @classmethod
    def _empty_is_none(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @property
    def words(self) -> bool:
        return "word" in self.timestamp_granularities


class SpeakerParams(BaseModel):
    """Who said what: diarization of a request or a job (docs/diarization.md)."""

    model_config = ConfigDict(
        extra="ignore", frozen=True, str_strip_whitespace=True, use_attribute_docstrings=True
    )

    diarize: bool = False
    """Label speakers: ``speaker`` on every segment and word, ``[SPEAKER_1]`` or the name in
    srt, vtt and text results (``response_format=diarized_json`` turns it on)."""
    num_speakers: int | None = Field(default=None, ge=1, le=32)
    """Exactly this many speakers; None: found from the audio."""
    min_speakers: int = Field(default=1, ge=1, le=32)
    """At least this many speakers."""
    max_speakers: int | None = Field(default=None, ge=1, le=32)
    """At most this many speakers (default 8)."""
    known_speaker_names: tuple[str, ...] = Field(default=(), max_length=MAX_KNOWN_SPEAKERS)
    """Names of known voices, one per ``known_speaker_references[]``."""
    known_speaker_references: tuple[str, ...] = Field(default=(), max_length=MAX_KNOWN_SPEAKERS)
    """Recordings of the known voices as data URLs (``data:audio/wav;base64,...``), 2-10 s."""

    @field_validator("num_speakers", "max_speakers", mode="before")
    @classmethod
    def _empty_is_none(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value


class ChunkingStrategy(BaseModel):
    """OpenAI's ``chunking_strategy`` object: server VAD with its parameters."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    type: Literal["server_vad"] = "server_vad"
    """Only server VAD."""
    threshold: float | None = Field(default=None, gt=0.0, lt=1.0)
    """Speech probability that counts as speech (malsori's ``vad_threshold``)."""
    prefix_padding_ms: int | None = Field(default=None, ge=0, le=10_000)
    """Audio kept before detected speech (malsori's ``vad_speech_pad_ms``)."""
    silence_duration_ms: int | None = Field(default=None, ge=0, le=60_000)
    """Silence that ends a chunk (malsori's ``vad_min_silence_ms``)."""


class TranscriptionParams(DecodeParams, SpeakerParams):
    """``POST /v1/audio/transcriptions`` and ``/v1/audio/translations``."""

    response_format: ResponseFormat = "json"
    """json, text, srt, verbose_json, vtt or diarized_json (speakers; OpenAI's shape)."""
    stream: bool = False
    """Send segments as server-sent events while decoding."""
    include: tuple[Literal["logprobs"], ...] = ()
    """``logprobs``: log probabilities in json and in stream events (one per word)."""
    chunking_strategy: Literal["auto"] | ChunkingStrategy | None = None
    """``auto``: server VAD with malsori's settings; an object: server VAD with its
    ``threshold``, ``prefix_padding_ms`` and ``silence_duration_ms``; unset: the server's
    ``decode.vad`` setting."""

    @field_validator("chunking_strategy", mode="before")
    @classmethod
    def _json_object(cls, value: Any) -> Any:
        if isinstance(value, str) and value.strip().startswith("{"):
            try:
                return json.loads(value)
            except ValueError:
                raise ValueError("chunking_strategy: not a JSON object") from None
        return None if isinstance(value, str) and not value.strip() else value

    @property
    def logprobs(self) -> bool:
        return "logprobs" in self.include

    def apply(self, options: TranscribeOptions) -> TranscribeOptions:
        """``options`` with what only this request says: chunking, word probabilities."""
        if self.logprobs:
            options = options.replace(word_timestamps=True)
        chunking = self.chunking_strategy
        if chunking is None:
            return options
        options = options.replace(vad=True)
        if chunking == "auto":
            return options
        changes: dict[str, Any] = {}
        if chunking.threshold is not None:
            changes["vad_threshold"] = chunking.threshold
        if chunking.prefix_padding_ms is not None:
            changes["vad_speech_pad_ms"] = chunking.prefix_padding_ms
        if chunking.silence_duration_ms is not None:
            changes["vad_min_silence_ms"] = chunking.silence_duration_ms
        return options.replace(**changes)


class JobParams(DecodeParams, SpeakerParams):
    """``POST /v1/jobs``: the decoding fields plus the task and a completion callback."""

    task: Task = "transcribe"
    """transcribe in the spoken language, or translate into English."""
    callback_url: str | None = Field(default=None, max_length=2000)
    """http(s) URL that receives one POST with the job when it ends."""

    @field_validator("callback_url", mode="before")
    @classmethod
    def _check_url(cls, value: Any) -> Any:
        if isinstance(value, str) and not value.strip():
            return None
        if isinstance(value, str) and not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value
