"""Loading a Whisper model (CTranslate2 through faster-whisper) and the ``Model`` handle.

``load_model`` resolves the name (see ``registry``), picks device and compute type, and loads the
weights once; the returned ``Model`` is what the CLI, batch, server and streaming all call.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from .allocator import cap_malloc_arenas
from .audio import AudioSource
from .errors import InvalidOptionError, ModelLoadError
from .options import TranscribeOptions
from .registry import DEFAULT_MODEL, ResolvedModel, resolve
from .results import LanguageInfo, Segment, Transcript

logger = logging.getLogger(__name__)

Device = Literal["auto", "cpu", "cuda"]
DEVICES: tuple[str, ...] = ("auto", "cpu", "cuda")
COMPUTE_TYPES: tuple[str, ...] = (
    "auto", "default", "int8", "int8_float32", "int8_float16", "int8_bfloat16", "int16",
    "float16", "bfloat16", "float32",
)  # fmt: skip


def cuda_device_count() -> int:
    import ctranslate2

    try:
        return int(ctranslate2.get_cuda_device_count())
    except RuntimeError:  # CUDA driver present but unusable
        return 0


def resolve_device(device: str) -> str:
    if device not in DEVICES:
        raise InvalidOptionError(
            f"device {device!r} is not available: malsori runs Whisper on CTranslate2, which "
            "has cpu and cuda only; use --device auto, cpu or cuda"
        )
    cuda = cuda_device_count()
    if device == "cuda" and cuda == 0:
        raise InvalidOptionError("device 'cuda' was asked for but no CUDA device is available")
    if device == "auto":
        return "cuda" if cuda > 0 else "cpu"
    return device


def resolve_compute_type(compute_type: str, device: str) -> str:
    """'auto' means int8 on CPU and float16 on CUDA; others must be supported by the device."""
    import ctranslate2

    if compute_type not in COMPUTE_TYPES:
        raise InvalidOptionError(
            f"unknown compute type {compute_type!r}: use one of {', '.join(COMPUTE_TYPES)}"
        )
    if compute_type == "auto":
        return "float16" if device == "cuda" else "int8"
    if compute_type == "default":
        return compute_type
    supported = set(ctranslate2.get_supported_compute_types(device))
    if compute_type not in supported:
        raise InvalidOptionError(
            f"compute type {compute_type!r} is not supported on {device} "
            f"(supported here: {', '.join(sorted(supported))})"
        )
    return compute_type


def default_threads() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1)


@dataclass(frozen=True)
class ModelInfo:
    name: str
    path: str
    source: str
    device: str
    compute_type: str
    threads: int  # CPU threads of each worker
    multilingual: bool
    load_seconds: float
    workers: int = 1  # model calls that run at once (CTranslate2 replicas)


class Model:
    """A loaded Whisper model. Thread-safe for concurrent ``transcribe`` calls (CTranslate2 is)."""

    def __init__(self, whisper: Any, info: ModelInfo):
        self.whisper = whisper  # faster_whisper.WhisperModel
        self.info = info

    @property
    def name(self) -> str:
        return self.info.name

    @property
    def multilingual(self) -> bool:
        return self.info.multilingual

    def __repr__(self) -> str:
        i = self.info
        return f"Model({i.name!r}, device={i.device!r}, compute_type={i.compute_type!r})"

    def transcribe(
        self,
        source: AudioSource,
        options: TranscribeOptions | None = None,
        *,
        on_segment: Callable[[Segment], None] | None = None,
        **overrides: Any,
    ) -> Transcript:
        """Transcribe (or translate) a file path, ``"-"`` (stdin), bytes, a stream or a waveform.

        ``options`` is a ``TranscribeOptions``; keyword overrides replace single fields
        (``model.transcribe("a.mp3", language="ko", word_timestamps=True)``). ``on_segment`` is
        called with each segment as soon as it is decoded.
        """
        from .transcribe import run_transcription

        opts = TranscribeOptions.build(options, **overrides)
        opts.check_model(multilingual=self.multilingual, model_name=self.name)
        return run_transcription(self, source, opts, on_segment=on_segment)

    def detect_language(
        self, source: AudioSource, options: TranscribeOptions | None = None, **overrides: Any
    ) -> LanguageInfo:
        """The most likely spoken languages, best first, from the first speech in the input."""
        from .transcribe import run_language_detection

        opts = TranscribeOptions.build(options, **overrides)
        return run_language_detection(self, source, opts)


def load_model(
    name_or_path: str | os.PathLike[str] = DEFAULT_MODEL,
    *,
    device: str = "auto",
    compute_type: str = "auto",
    threads: int = 0,
    workers: int = 1,
    download: bool = True,
    device_index: int | list[int] = 0,
) -> Model:
    """Load a model by name (``"base"``, ``"tiny.en"``, ``"large-v3"``) or folder path.

    ``threads`` is the number of CPU threads for CTranslate2 (0: every core this process may use).
    ``workers`` is how many ``transcribe`` calls from different threads run in parallel (each with
    ``threads`` threads); more calls wait their turn. The server sets it to its worker count.
    ``device_index`` picks the GPU (or GPUs, a list) on CUDA.
    The first call caps the C allocator's arenas for the process (``malsori.allocator``).
    Raises ModelNotFoundError / ModelDownloadError / ModelLoadError / InvalidOptionError.
    """
    if threads < 0:
        raise InvalidOptionError(f"threads cannot be negative, got {threads}")
    if workers < 1:
        raise InvalidOptionError(f"workers must be at least 1, got {workers}")
    dev = resolve_device(device)
    ctype = resolve_compute_type(compute_type, dev)
    n_threads = threads or default_threads()
    resolved: ResolvedModel = resolve(name_or_path, download=download)
    from ._whisper import WhisperModel

    cap_malloc_arenas()  # before CTranslate2 starts its threads (see malsori.allocator)
    started = time.perf_counter()
    try:
        whisper = WhisperModel(
            str(resolved.path),
            device=dev,
            device_index=device_index,
            compute_type=ctype,
            cpu_threads=n_threads,
            num_workers=workers,
            local_files_only=True,
        )
    except (RuntimeError, ValueError, OSError) as e:
        raise ModelLoadError(
            f"cannot load model {resolved.name!r} from {resolved.path}: {e}"
        ) from e
    seconds = time.perf_counter() - started
    info = ModelInfo(
        name=resolved.name,
        path=str(resolved.path),
        source=resolved.source,
        device=dev,
        compute_type=ctype,
        threads=n_threads,
        multilingual=bool(whisper.model.is_multilingual),
        load_seconds=seconds,
        workers=workers,
    )
    logger.info("loaded %s from %s on %s/%s in %.2f s", info.name, info.path, dev, ctype, seconds)
    return Model(whisper, info)
