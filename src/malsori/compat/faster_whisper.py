"""faster-whisper's Python API on malsori: change the import, nothing else.

>>> from malsori.compat.faster_whisper import WhisperModel
>>> model = WhisperModel("base", device="cpu", compute_type="int8")
>>> segments, info = model.transcribe("audio.mp3", beam_size=5)
>>> for segment in segments:
...     print("[%.2fs -> %.2fs] %s" % (segment.start, segment.end, segment.text))

``WhisperModel`` and ``BatchedInferencePipeline`` take faster-whisper's constructor and
``transcribe`` arguments (the table ``PARAMETERS``: its names and defaults) and return its shapes:
a lazy generator of ``Segment`` (with ``Word``, Whisper's ``tokens`` and ``seek``) and a
``TranscriptionInfo``. Decoding is malsori's: ``Model.transcribe`` (the sequential pipeline,
faster-whisper's window loop) for ``WhisperModel``, the packed engine for the batched pipeline.
malsori's defences and Korean post-processing are off here; ``vad_filter`` is faster-whisper's
switch, with its ``VadOptions`` defaults. Where malsori differs (``all_language_probs`` holds the
ten likeliest languages; ``transcription_options`` is a ``TranscribeOptions``; the batched
pipeline writes timestamped segments, not one per speech chunk) docs/migrating.md says so.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from typing import Any, BinaryIO

import numpy as np

from ..audio import AudioStream, as_float32, materialize
from ..errors import InvalidOptionError, NoSpeechError
from ..model import Model, load_model
from ..options import TranscribeOptions
from ..results import LanguageInfo
from ..results import Segment as MalsoriSegment
from . import PEER_DEFAULTS, lazy_segments

__all__ = [
    "BatchedInferencePipeline",
    "Segment",
    "TranscriptionInfo",
    "VadOptions",
    "WhisperModel",
    "Word",
    "decode_audio",
]

SAMPLE_RATE = 16000


@dataclass
class Word:
    start: float
    end: float
    word: str
    probability: float

    def _asdict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Segment:
    id: int
    seek: int
    start: float
    end: float
    text: str
    tokens: list[int]
    avg_logprob: float
    compression_ratio: float
    no_speech_prob: float
    words: list[Word] | None
    temperature: float | None

    def _asdict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class VadOptions:
    """faster-whisper's VAD parameters and defaults (Silero); ``neg_threshold`` is accepted
    and not used (malsori's VAD has one threshold)."""

    threshold: float = 0.5
    neg_threshold: float | None = None
    min_speech_duration_ms: int = 0
    max_speech_duration_s: float = float("inf")
    min_silence_duration_ms: int = 2000
    speech_pad_ms: int = 400


@dataclass
class TranscriptionInfo:
    language: str
    language_probability: float
    duration: float
    duration_after_vad: float
    all_language_probs: list[tuple[str, float]] | None
    transcription_options: TranscribeOptions
    vad_options: VadOptions | None


# faster-whisper's ``transcribe`` parameters after ``audio`` (1.2), with its defaults: the
# names malsori takes as they are, then the ones mapped below.
SAME_NAME = (
    "task", "beam_size", "best_of", "patience", "length_penalty", "repetition_penalty",
    "no_repeat_ngram_size", "compression_ratio_threshold", "log_prob_threshold",
    "no_speech_threshold", "condition_on_previous_text", "prompt_reset_on_temperature",
    "prefix", "suppress_blank", "without_timestamps", "max_initial_timestamp",
    "word_timestamps", "prepend_punctuations", "append_punctuations", "multilingual",
    "max_new_tokens", "hallucination_silence_threshold", "hotwords",
    "language_detection_segments",
)  # fmt: skip
MAPPED = (
    "language", "temperature", "initial_prompt", "suppress_tokens", "vad_filter",
    "vad_parameters", "clip_timestamps", "chunk_length",
)  # fmt: skip
IGNORED = ("log_progress", "language_detection_threshold")  # no effect on the result
PARAMETERS = (*SAME_NAME, *MAPPED, *IGNORED)


def _check_names(given: Iterable[str], extra: tuple[str, ...] = ()) -> None:
    known = (*PARAMETERS, *extra)
    for name in given:
        if name not in known:
            near = difflib.get_close_matches(name, known, n=1)
            hint = f" (did you mean {near[0]!r}?)" if near else ""
            raise TypeError(f"transcribe() got an unexpected keyword argument {name!r}{hint}")


def _vad(options: dict[str, Any], default: bool) -> tuple[dict[str, Any], VadOptions | None]:
    if not options.get("vad_filter", default):
        return {"vad": False}, None
    params = options.get("vad_parameters")
    if isinstance(params, dict):
        params = VadOptions(**params)
    vad = params if params is not None else VadOptions()
    max_s = vad.max_speech_duration_s
    return {
        "vad": True,
        "vad_threshold": vad.threshold,
        "vad_min_silence_ms": vad.min_silence_duration_ms,
        "vad_speech_pad_ms": vad.speech_pad_ms,
        "vad_min_speech_ms": vad.min_speech_duration_ms,
        "vad_max_speech_s": None if max_s == float("inf") else max_s,
    }, vad


def _clips(value: Any) -> tuple[float, ...]:
    """``"0"``, ``"1.5,10"``, ``[1.5, 10]`` or the batched pipeline's [{"start", "end"}]
    (samples) as start,end seconds."""
    if isinstance(value, str):
        times = tuple(float(t) for t in value.split(",") if t.strip())
    elif value and isinstance(value[0], dict):
        times = tuple(float(c[k]) / SAMPLE_RATE for c in value for k in ("start", "end"))
    else:
        times = tuple(float(t) for t in value or ())
    return () if times in ((), (0.0,)) else times


def translate_options(
    model: Model, options: dict[str, Any], *, vad_default: bool
) -> tuple[TranscribeOptions, VadOptions | None]:
    """faster-whisper's keyword arguments as malsori's ``TranscribeOptions``."""
    fields: dict[str, Any] = dict(PEER_DEFAULTS)
    fields.update({k: options[k] for k in SAME_NAME if k in options})
    vad_fields, vad = _vad(options, vad_default)
    fields.update(vad_fields)
    fields["language"] = options.get("language")
    temperature = options.get("temperature", (0.0, 0.2, 0.4, 0.6, 0.8, 1.0))
    fields["temperature"] = (
        (float(temperature),) if isinstance(temperature, int | float) else tuple(temperature)
    )
    prompt = options.get("initial_prompt")
    if prompt is not None and not isinstance(prompt, str):  # token ids
        prompt = model.whisper.hf_tokenizer.decode(list(prompt))
    fields["initial_prompt"] = prompt
    suppress = options.get("suppress_tokens", [-1])
    fields["suppress_tokens"] = tuple(suppress or ())
    fields["clip_timestamps"] = _clips(options.get("clip_timestamps", "0"))
    chunk = options.get("chunk_length")
    if chunk not in (None, 30):
        raise InvalidOptionError(
            f"chunk_length={chunk}: malsori decodes Whisper's 30 s windows; a shorter encoder "
            "window is TranscribeOptions.encoder_window_s (malsori's own API)"
        )
    return TranscribeOptions.build(None, **fields), vad


def decode_audio(input_file: str | BinaryIO | np.ndarray, sampling_rate: int = 16000) -> Any:
    """The input as 16 kHz mono float32 (malsori's decoder; only 16 kHz is offered)."""
    if sampling_rate != SAMPLE_RATE:
        raise InvalidOptionError("malsori decodes audio to 16000 Hz only")
    if isinstance(input_file, np.ndarray):
        return as_float32(input_file)
    with materialize(input_file) as path:
        return AudioStream(path).read()


def _language(
    model: Model, audio: np.ndarray, opts: TranscribeOptions
) -> tuple[LanguageInfo, list[tuple[str, float]] | None]:
    """The language as faster-whisper finds it before decoding (the first 30 s of speech)."""
    if opts.language is not None:
        return LanguageInfo.given(opts.language), None
    if not model.multilingual:
        return LanguageInfo("en", 1.0, (("en", 1.0),), detected=False), None
    try:
        info = model.detect_language(audio, opts)
    except NoSpeechError:  # faster-whisper detects on whatever there is
        info = model.detect_language(audio, opts.replace(vad=False))
    return info, [(c, p) for c, p in info.candidates]


def _speech_seconds(audio: np.ndarray, opts: TranscribeOptions) -> float:
    if not opts.vad:
        return audio.size / SAMPLE_RATE
    from ..vad import speech_regions

    regions = speech_regions(audio, opts)
    return sum(r["end"] - r["start"] for r in regions) / SAMPLE_RATE


def to_segment(seg: MalsoriSegment, words: bool) -> Segment:
    return Segment(
        id=seg.id + 1,  # faster-whisper counts from 1
        seek=seg.seek,
        start=seg.start,
        end=seg.end,
        text=seg.text,
        tokens=list(seg.tokens),
        avg_logprob=seg.avg_logprob,
        compression_ratio=seg.compression_ratio,
        no_speech_prob=seg.no_speech_prob,
        words=[Word(w.start, w.end, w.word, w.probability) for w in seg.words] if words else None,
        temperature=seg.temperature,
    )


class WhisperModel:
    """faster-whisper's ``WhisperModel`` over a malsori ``Model`` (``.malsori``)."""

    def __init__(
        self,
        model_size_or_path: str,
        device: str = "auto",
        device_index: int | list[int] = 0,
        compute_type: str = "default",
        cpu_threads: int = 0,
        num_workers: int = 1,
        download_root: str | None = None,
        local_files_only: bool = False,
        files: dict[str, Any] | None = None,
        revision: str | None = None,
        use_auth_token: str | bool | None = None,
        **model_kwargs: Any,
    ):
        if files is not None or revision is not None or use_auth_token or model_kwargs:
            raise InvalidOptionError(
                "files, revision, use_auth_token and CTranslate2 model arguments are not taken: "
                "give malsori a model name or a local CTranslate2 folder"
            )
        name = model_size_or_path
        if download_root is not None and os.path.isdir(os.path.join(download_root, name)):
            name = os.path.join(download_root, name)
        self.malsori: Model = load_model(
            name, device=device, compute_type=compute_type, threads=cpu_threads,
            workers=num_workers, download=not local_files_only, device_index=device_index,
        )  # fmt: skip

    @property
    def model(self) -> Any:
        """The CTranslate2 model, as faster-whisper's ``WhisperModel.model``."""
        return self.malsori.whisper.model

    @property
    def supported_languages(self) -> list[str]:
        return list(self.malsori.whisper.supported_languages)

    def transcribe(
        self, audio: str | BinaryIO | np.ndarray, language: str | None = None, **options: Any
    ) -> tuple[Iterator[Segment], TranscriptionInfo]:
        """faster-whisper's ``WhisperModel.transcribe`` (see ``PARAMETERS``)."""
        _check_names(options)
        return self._run(audio, {**options, "language": language}, vad_default=False)

    def _run(
        self, audio: Any, options: dict[str, Any], *, vad_default: bool, batch_size: int = 0
    ) -> tuple[Iterator[Segment], TranscriptionInfo]:
        model = self.malsori
        opts, vad = translate_options(model, options, vad_default=vad_default)
        waveform = decode_audio(audio)
        language, probs = _language(model, waveform, opts)
        info = TranscriptionInfo(
            language=language.language,
            language_probability=language.probability,
            duration=waveform.size / SAMPLE_RATE,
            duration_after_vad=_speech_seconds(waveform, opts),
            all_language_probs=probs,
            transcription_options=opts,
            vad_options=vad,
        )
        decode_opts = opts.replace(language=language.language)
        words = opts.word_timestamps

        def run(hand_over: Any) -> object:
            if not batch_size:
                return model.transcribe(waveform, decode_opts, on_segment=hand_over)
            from ..engine import Engine, Priority

            # The engine packs timestamped windows: faster-whisper's batched default of no
            # timestamps would make the request decode alone.
            packed = decode_opts.replace(without_timestamps=False)
            with Engine(model, batch_size=batch_size) as engine:
                return engine.transcribe(
                    waveform, packed, priority=Priority.BATCH, on_segment=hand_over
                )

        return lazy_segments(run, lambda seg: to_segment(seg, words)), info


class BatchedInferencePipeline:
    """faster-whisper's batched pipeline: decoding through malsori's packed engine."""

    def __init__(self, model: WhisperModel):
        self.model = model

    def transcribe(
        self,
        audio: str | BinaryIO | np.ndarray,
        language: str | None = None,
        batch_size: int = 8,
        **options: Any,
    ) -> tuple[Iterator[Segment], TranscriptionInfo]:
        """faster-whisper's ``BatchedInferencePipeline.transcribe``: VAD on by default."""
        _check_names(options)
        if batch_size < 1:
            raise InvalidOptionError(f"batch_size must be at least 1, got {batch_size}")
        merged = {**options, "language": language}
        return self.model._run(audio, merged, vad_default=True, batch_size=batch_size)
