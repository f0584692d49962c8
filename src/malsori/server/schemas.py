"""The parameters a request may carry, validated once into typed values.

The OpenAI form fields (``model``, ``language``, ``prompt``, ``response_format``, ``temperature``,
``timestamp_granularities[]``, ``stream``) and the job fields (``task``, ``callback_url``). Form
fields arrive as strings; pydantic turns them into these types or reports the field at fault.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ..subtitles.profiles import PROFILE_NAMES

ResponseFormat = Literal["json", "text", "srt", "verbose_json", "vtt"]
ResultFormat = Literal["txt", "json", "srt", "vtt", "tsv"]
Granularity = Literal["word", "segment"]
Task = Literal["transcribe", "translate"]
JobStatus = Literal["queued", "running", "completed", "failed"]


class DecodeParams(BaseModel):
    """What every transcription request may say about decoding."""

    model_config = ConfigDict(
        extra="ignore", frozen=True, str_strip_whitespace=True, use_attribute_docstrings=True
    )

    model: str | None = None
    """Model id: the served model's name or one of its aliases (``whisper-1``); None: the served
    model."""
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


class TranscriptionParams(DecodeParams):
    """``POST /v1/audio/transcriptions`` and ``/v1/audio/translations``."""

    response_format: ResponseFormat = "json"
    """json, text, srt, verbose_json or vtt."""
    stream: bool = False
    """Send segments as server-sent events while decoding."""


class JobParams(DecodeParams):
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
