"""Response bodies in OpenAI's shapes, built from a ``Transcript``.

``srt`` and ``vtt`` come from malsori's writers (so they equal the CLI's files byte for byte);
``text`` is the transcript as one string, as OpenAI's API answers it (the CLI's ``.txt`` has one
line per segment). ``json`` is OpenAI's ``{"text": ..., "usage": ...}`` (``logprobs`` when
``include[]=logprobs``) and ``verbose_json`` OpenAI's object with segments and, when asked for,
words. Streams are server-sent events: one ``transcript.text.delta`` per segment as it is
decoded (with the segment's times under ``segment``), then ``transcript.text.done`` with the
whole text and the language named as ``verbose_json`` names it.

Log probabilities: malsori's decoder keeps each word's probability, not each token's, so
``logprobs`` lists one entry per word (``token`` is the word, ``logprob`` the log of its
probability, ``bytes`` its UTF-8 bytes).
"""

from __future__ import annotations

import json
import math
from typing import Any

from ..languages import LANGUAGES
from ..results import Segment, Transcript
from ..writers import get_writer
from .schemas import Granularity, ResponseFormat

_WRITER_FOR: dict[str, str] = {"srt": "srt", "vtt": "vtt"}
TEXT_TYPE = "text/plain; charset=utf-8"
JSON_TYPE = "application/json"


def _segment(segment: Segment) -> dict[str, Any]:
    speaker = {} if segment.speaker is None else {"speaker": segment.speaker}
    return {
        "id": segment.id,
        # Whisper's 10 ms frame where the segment's window starts (the segment's own start where
        # the window is not the input's: the engine packs speech from several requests)
        "seek": segment.seek or int(segment.start * 100),
        "start": round(segment.start, 3),
        "end": round(segment.end, 3),
        "text": segment.text,
        "tokens": list(segment.tokens),
        "temperature": segment.temperature,
        "avg_logprob": round(segment.avg_logprob, 4),
        "compression_ratio": round(segment.compression_ratio, 4),
        "no_speech_prob": round(segment.no_speech_prob, 4),
        **speaker,
    }


def diarization_error(transcript: Transcript) -> str | None:
    """Why a transcript asked to be diarized has no speakers (None: it has, or was not asked)."""
    info = transcript.meta.get("diarization")
    return info.get("error") if isinstance(info, dict) else None


def diarization_headers(transcript: Transcript) -> dict[str, str]:
    """``X-Malsori-Diarization-Error`` when diarization failed (for srt, vtt and text)."""
    error = diarization_error(transcript)
    if error is None:
        return {}
    return {"X-Malsori-Diarization-Error": " ".join(error.split()).encode("ascii", "replace")
            .decode()[:300]}  # fmt: skip


def diarized_json(transcript: Transcript) -> dict[str, Any]:
    """OpenAI's ``diarized_json``: one ``transcript.text.segment`` per segment, with its speaker
    (a name given in ``known_speaker_names[]``, else ``SPEAKER_n``)."""
    segments = [
        {
            "type": "transcript.text.segment",
            "id": f"seg_{s.id}",
            "start": round(s.start, 3),
            "end": round(s.end, 3),
            "text": s.text.strip(),
            "speaker": s.speaker or "SPEAKER_1",
        }
        for s in transcript.segments
        if s.text.strip()
    ]
    body: dict[str, Any] = {
        "task": transcript.options.task,
        "duration": round(transcript.duration, 3),
        "text": transcript.text,
        "segments": segments,
        "usage": usage(transcript),
    }
    return _with_error(body, transcript)


def _with_error(body: dict[str, Any], transcript: Transcript) -> dict[str, Any]:
    error = diarization_error(transcript)
    return body if error is None else {**body, "diarization_error": error}


def language_name(transcript: Transcript) -> str:
    """The language as OpenAI names it: the English name; ``english`` for a translation."""
    if transcript.options.task == "translate":
        return "english"
    code = transcript.language.language
    return LANGUAGES.get(code, code)


def usage(transcript: Transcript) -> dict[str, Any]:
    """OpenAI's usage for whisper-1: the audio's duration, whole seconds rounded up."""
    return {"type": "duration", "seconds": math.ceil(transcript.duration)}


def logprobs(words: Any) -> list[dict[str, Any]]:
    """One entry per word, in OpenAI's token shape (see the module's doc)."""
    return [
        {
            "token": w.word,
            "logprob": round(math.log(max(w.probability, 1e-12)), 6),
            "bytes": list(w.word.encode()),
        }
        for w in words
    ]


def verbose_json(transcript: Transcript, granularities: tuple[Granularity, ...]) -> dict[str, Any]:
    """OpenAI's ``verbose_json``: segments unless only words were asked for; words if asked."""
    body: dict[str, Any] = {
        "task": transcript.options.task,
        "language": language_name(transcript),
        "duration": round(transcript.duration, 3),
        "text": transcript.text,
    }
    if "segment" in granularities or not granularities:
        body["segments"] = [_segment(s) for s in transcript.segments]
    if "word" in granularities:
        body["words"] = [
            {
                "word": w.word.strip(),
                "start": round(w.start, 3),
                "end": round(w.end, 3),
                **({} if w.speaker is None else {"speaker": w.speaker}),
            }
            for w in transcript.words
        ]
    body["usage"] = usage(transcript)
    return body


def render(
    transcript: Transcript,
    response_format: ResponseFormat,
    granularities: tuple[Granularity, ...],
    *,
    with_logprobs: bool = False,
) -> tuple[str, str]:
    """(body, media type) of a finished transcription in the requested format."""
    if response_format == "json":
        body: dict[str, Any] = {"text": transcript.text}
        if with_logprobs:
            body["logprobs"] = logprobs(transcript.words)
        body["usage"] = usage(transcript)
        return json.dumps(_with_error(body, transcript), ensure_ascii=False), JSON_TYPE
    if response_format == "text":
        return transcript.text.strip() + "\n", TEXT_TYPE
    if response_format == "verbose_json":
        body = _with_error(verbose_json(transcript, granularities), transcript)
        return json.dumps(body, ensure_ascii=False), JSON_TYPE
    if response_format == "diarized_json":
        return json.dumps(diarized_json(transcript), ensure_ascii=False), JSON_TYPE
    writer = get_writer(_WRITER_FOR[response_format])
    return writer.render(transcript), writer.media_type


def sse(event: dict[str, Any]) -> bytes:
    return f"data: {json.dumps(event, ensure_ascii=False)}\n\n".encode()


def delta_event(segment: Segment, *, with_logprobs: bool = False) -> dict[str, Any]:
    event: dict[str, Any] = {
        "type": "transcript.text.delta",
        "delta": segment.text,
        "segment": segment.to_dict(),
    }
    if with_logprobs:
        event["logprobs"] = logprobs(segment.words)
    return event


def done_event(transcript: Transcript, *, with_logprobs: bool = False) -> dict[str, Any]:
    event: dict[str, Any] = {
        "type": "transcript.text.done",
        "text": transcript.text,
        "language": language_name(transcript),
        "duration": round(transcript.duration, 3),
    }
    if with_logprobs:
        event["logprobs"] = logprobs(transcript.words)
    event["usage"] = usage(transcript)
    return event
