"""Response bodies in OpenAI's shapes, built from a ``Transcript``.

``text``, ``srt`` and ``vtt`` come from malsori's writers (so they equal the CLI's files byte for
byte; ``text`` is the CLI's ``.txt``: one line per segment). ``json`` is OpenAI's ``{"text": ...}``
and ``verbose_json`` OpenAI's object with segments and, when asked for, words. Streams are
server-sent events: one ``transcript.text.delta`` per decoded segment (with the segment's times
under ``segment``), then ``transcript.text.done`` with the whole text.
"""

from __future__ import annotations

import json
import math
from typing import Any

from ..languages import LANGUAGES
from ..results import Segment, Transcript
from ..writers import get_writer
from .schemas import Granularity, ResponseFormat

_WRITER_FOR: dict[str, str] = {"text": "txt", "srt": "srt", "vtt": "vtt"}
JSON_TYPE = "application/json"


def _segment(segment: Segment) -> dict[str, Any]:
    return {
        "id": segment.id,
        "seek": int(segment.start * 100),  # Whisper's 10 ms frames
        "start": round(segment.start, 3),
        "end": round(segment.end, 3),
        "text": segment.text,
        "tokens": [],
        "temperature": segment.temperature,
        "avg_logprob": round(segment.avg_logprob, 4),
        "compression_ratio": round(segment.compression_ratio, 4),
        "no_speech_prob": round(segment.no_speech_prob, 4),
    }


def verbose_json(transcript: Transcript, granularities: tuple[Granularity, ...]) -> dict[str, Any]:
    """OpenAI's ``verbose_json``: segments unless only words were asked for; words if asked."""
    code = transcript.language.language
    body: dict[str, Any] = {
        "task": transcript.options.task,
        "language": LANGUAGES.get(code, code),
        "duration": round(transcript.duration, 3),
        "text": transcript.text,
    }
    if "segment" in granularities or not granularities:
        body["segments"] = [_segment(s) for s in transcript.segments]
    if "word" in granularities:
        body["words"] = [
            {"word": w.word.strip(), "start": round(w.start, 3), "end": round(w.end, 3)}
            for w in transcript.words
        ]
    body["usage"] = {"type": "duration", "seconds": math.ceil(transcript.duration)}
    return body


def render(
    transcript: Transcript, response_format: ResponseFormat, granularities: tuple[Granularity, ...]
) -> tuple[str, str]:
    """(body, media type) of a finished transcription in the requested format."""
    if response_format == "json":
        return json.dumps({"text": transcript.text}, ensure_ascii=False), JSON_TYPE
    if response_format == "verbose_json":
        return json.dumps(verbose_json(transcript, granularities), ensure_ascii=False), JSON_TYPE
    writer = get_writer(_WRITER_FOR[response_format])
    return writer.render(transcript), writer.media_type


def sse(event: dict[str, Any]) -> bytes:
    return f"data: {json.dumps(event, ensure_ascii=False)}\n\n".encode()


def delta_event(segment: Segment) -> dict[str, Any]:
    return {"type": "transcript.text.delta", "delta": segment.text, "segment": segment.to_dict()}


def done_event(transcript: Transcript) -> dict[str, Any]:
    return {
        "type": "transcript.text.done",
        "text": transcript.text,
        "language": transcript.language.language,
        "duration": round(transcript.duration, 3),
    }
