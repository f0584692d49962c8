"""openai-whisper's Python API on malsori: change the import, nothing else.

>>> from malsori.compat import whisper
>>> model = whisper.load_model("base")
>>> result = model.transcribe("audio.mp3")
>>> print(result["text"])

``load_model(name)``, ``available_models()`` and ``model.transcribe(audio, **options)`` with
whisper's option names and defaults (``DEFAULTS``; greedy decoding unless ``beam_size`` is
given, as whisper's Python API does), returning whisper's dictionary: ``text``, ``segments``
(``id``, ``seek``, ``start``, ``end``, ``text``, ``tokens``, ``temperature``, ``avg_logprob``,
``compression_ratio``, ``no_speech_prob`` and ``words`` with word timestamps) and ``language``.
Decoding is malsori's (CTranslate2), with malsori's defences, VAD and Korean post-processing
off; ``result_dict`` turns any malsori ``Transcript`` into that dictionary.
"""

from __future__ import annotations

import difflib
import sys
from typing import Any

import numpy as np

from ..errors import InvalidOptionError
from ..model import DEVICES
from ..model import Model as MalsoriModel
from ..model import load_model as malsori_load_model
from ..options import TranscribeOptions
from ..results import Segment, Transcript
from ..writers import format_timestamp
from . import PEER_DEFAULTS

__all__ = ["Whisper", "available_models", "load_model", "result_dict", "transcribe"]

# whisper's model names (20250625), all of which malsori loads (as CTranslate2 conversions).
MODELS = (
    "tiny.en", "tiny", "base.en", "base", "small.en", "small", "medium.en", "medium",
    "large-v1", "large-v2", "large-v3", "large", "large-v3-turbo", "turbo",
)  # fmt: skip

# whisper's ``transcribe`` options (its own and its ``DecodingOptions``) with its defaults.
DEFAULTS: dict[str, Any] = {
    "verbose": None,
    "temperature": (0.0, 0.2, 0.4, 0.6, 0.8, 1.0),
    "compression_ratio_threshold": 2.4,
    "logprob_threshold": -1.0,
    "no_speech_threshold": 0.6,
    "condition_on_previous_text": True,
    "initial_prompt": None,
    "carry_initial_prompt": False,
    "word_timestamps": False,
    "prepend_punctuations": "\"'“¿([{-",
    "append_punctuations": "\"'.。,，!！?？:：”)]}、",
    "clip_timestamps": "0",
    "hallucination_silence_threshold": None,
    # DecodingOptions
    "task": "transcribe",
    "language": None,
    "sample_len": None,
    "best_of": None,
    "beam_size": None,
    "patience": None,
    "length_penalty": None,
    "prompt": None,
    "prefix": None,
    "suppress_tokens": "-1",
    "suppress_blank": True,
    "without_timestamps": False,
    "max_initial_timestamp": 1.0,
    "fp16": True,  # the model's precision was chosen when it was loaded
}


def available_models() -> list[str]:
    return list(MODELS)


def _tokens(value: str | list[int] | None) -> tuple[int, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return tuple(int(t) for t in value.split(",") if t.strip())
    return tuple(int(t) for t in value)


def _clips(value: str | list[float]) -> tuple[float, ...]:
    times = _tokens_f(value)
    return () if times in ((), (0.0,)) else times


def _tokens_f(value: str | list[float]) -> tuple[float, ...]:
    if isinstance(value, str):
        return tuple(float(t) for t in value.split(",") if t.strip())
    return tuple(float(t) for t in value)


def translate_options(options: dict[str, Any]) -> TranscribeOptions:
    """whisper's ``transcribe`` keyword arguments as malsori's ``TranscribeOptions``."""
    o = {**DEFAULTS, **options}
    temperature = o["temperature"]
    prompt = o["initial_prompt"] if o["initial_prompt"] is not None else o["prompt"]
    if prompt is not None and not isinstance(prompt, str):
        raise InvalidOptionError("initial_prompt must be text here (token ids: use the text)")
    fields: dict[str, Any] = {
        **PEER_DEFAULTS,
        "vad": False,
        "task": o["task"],
        "language": o["language"],
        "temperature": (float(temperature),)
        if isinstance(temperature, int | float)
        else tuple(temperature),
        "compression_ratio_threshold": o["compression_ratio_threshold"],
        "log_prob_threshold": o["logprob_threshold"],
        "no_speech_threshold": o["no_speech_threshold"],
        "condition_on_previous_text": o["condition_on_previous_text"],
        "initial_prompt": prompt,
        # carried: before every window's context, where malsori puts hotwords
        "hotwords": prompt if o["carry_initial_prompt"] else None,
        "word_timestamps": o["word_timestamps"],
        "prepend_punctuations": o["prepend_punctuations"],
        "append_punctuations": o["append_punctuations"],
        "clip_timestamps": _clips(o["clip_timestamps"]),
        "hallucination_silence_threshold": o["hallucination_silence_threshold"],
        "max_new_tokens": o["sample_len"],
        "best_of": o["best_of"] or 1,  # whisper: one sample unless asked
        "beam_size": o["beam_size"] or 1,  # whisper's Python API: greedy unless asked
        "patience": o["patience"] or 1.0,
        "length_penalty": o["length_penalty"] or 1.0,
        "prefix": o["prefix"],
        "suppress_tokens": _tokens(o["suppress_tokens"]),
        "suppress_blank": o["suppress_blank"],
        "without_timestamps": o["without_timestamps"],
        "max_initial_timestamp": o["max_initial_timestamp"] or 0.0,
    }
    return TranscribeOptions.build(None, **fields)


def segment_dict(seg: Segment, index: int) -> dict[str, Any]:
    """One of whisper's segment dictionaries."""
    d: dict[str, Any] = {
        "id": index,
        "seek": seg.seek,
        "start": seg.start,
        "end": seg.end,
        "text": seg.text,
        "tokens": list(seg.tokens),
        "temperature": seg.temperature,
        "avg_logprob": seg.avg_logprob,
        "compression_ratio": seg.compression_ratio,
        "no_speech_prob": seg.no_speech_prob,
    }
    if seg.words:
        d["words"] = [
            {"word": w.word, "start": w.start, "end": w.end, "probability": w.probability}
            for w in seg.words
        ]
    return d


def result_dict(transcript: Transcript) -> dict[str, Any]:
    """whisper's result: the text as its segments' texts run together, the segments and the
    language code."""
    segments = [segment_dict(s, i) for i, s in enumerate(transcript.segments)]
    return {
        "text": "".join(s.text for s in transcript.segments),
        "segments": segments,
        "language": transcript.language.language,
    }


class Whisper:
    """whisper's model object over a malsori ``Model`` (``.malsori``)."""

    def __init__(self, model: MalsoriModel):
        self.malsori = model

    @property
    def is_multilingual(self) -> bool:
        return self.malsori.multilingual

    @property
    def device(self) -> str:
        return self.malsori.info.device

    def transcribe(self, audio: Any, **options: Any) -> dict[str, Any]:
        return transcribe(self, audio, **options)


def transcribe(model: Whisper, audio: Any, **options: Any) -> dict[str, Any]:
    """whisper's ``transcribe(model, audio, **options)``; ``audio`` is a path or a 16 kHz
    waveform (a NumPy array or anything ``np.asarray`` takes, such as a CPU tensor)."""
    for name in options:
        if name not in DEFAULTS:
            near = difflib.get_close_matches(name, list(DEFAULTS), n=1)
            hint = f" (did you mean {near[0]!r}?)" if near else ""
            raise TypeError(f"transcribe() got an unexpected keyword argument {name!r}{hint}")
    opts = translate_options(options)
    if not isinstance(audio, str):
        audio = np.asarray(audio, dtype=np.float32)
    verbose = options.get("verbose")

    def show(seg: Segment) -> None:  # whisper's verbose=True: each segment as it is decoded
        start, end = format_timestamp(seg.start), format_timestamp(seg.end)
        sys.stdout.write(f"[{start} --> {end}] {seg.text}\n")

    transcript = model.malsori.transcribe(audio, opts, on_segment=show if verbose else None)
    return result_dict(transcript)


def load_model(
    name: str,
    device: str | None = None,
    download_root: str | None = None,
    in_memory: bool = False,
) -> Whisper:
    """A model by whisper's name (``available_models()``) or a CTranslate2 folder."""
    if device is not None and device not in DEVICES:
        raise InvalidOptionError(
            f"device {device!r} is not available: malsori runs Whisper on CTranslate2 (cpu, cuda)"
        )
    if download_root is not None:
        raise InvalidOptionError(
            "download_root: malsori keeps its models in $MALSORI_HOME (or give a folder path)"
        )
    return Whisper(malsori_load_model(name, device=device or "auto"))
