"""Changing a model's precision, and measuring what that does to size, speed and accuracy.

Two engines:

- ``ctranslate2`` (what malsori runs): the weights are read from ``model.bin``, dequantized and
  written again in the chosen precision (``int8``, ``int8_float16``, ``int16``, ``float16``,
  ``bfloat16``, ``float32``) through ``ctranslate2.specs.WhisperSpec``; no torch needed. The
  result is registered by name, so ``--model NAME`` runs it everywhere.
- ``transformers`` (for comparison): the model as a ``transformers`` Whisper (converted from
  CTranslate2 when needed), saved as a Hugging Face folder; ``int8`` means PyTorch dynamic
  quantization, applied when the engine loads it.

``measure_ct2`` and ``measure_transformers`` give one comparable row each: size on disk, WER and
CER on a manifest, and real-time factor, decoding greedily in the manifest's language.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

from .errors import InvalidOptionError, OutputError
from .evaluation import EvaluationReport, evaluate, malsori_transcriber
from .finetune.hf_to_ct2 import QUANTIZATIONS
from .manifest import ManifestEntry
from .options import TranscribeOptions
from .registry import resolve

logger = logging.getLogger(__name__)

Engine = Literal["ctranslate2", "transformers"]
ENGINES: tuple[str, ...] = ("ctranslate2", "transformers")
CT2_TYPES = QUANTIZATIONS  # what a CTranslate2 model can be stored as
TRANSFORMERS_TYPES: tuple[str, ...] = ("int8", "float32")
ENGINE_FILE = "malsori-engine.json"  # in a transformers folder: how the engine should load it

# Greedy, no VAD, no post-processing: the same decoding for both engines, so rows compare.
PLAIN_DECODING = TranscribeOptions(
    beam_size=1,
    best_of=1,
    temperature=(0.0,),
    vad=False,
    condition_on_previous_text=False,
    hallucination_filter=False,
    repetition_filter=False,
    korean_spacing=False,
    korean_punctuation=False,
)


@dataclass(frozen=True)
class QuantizeResult:
    name: str | None  # registered name (ctranslate2 engine), None for a plain folder
    path: Path
    engine: str
    quantization: str
    source: Path
    source_dtype: str
    size_bytes: int


def folder_size(path: str | os.PathLike[str]) -> int:
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


def check_target(engine: str, quantization: str) -> None:
    if engine not in ENGINES:
        raise InvalidOptionError(f"unknown engine {engine!r}: use ctranslate2 or transformers")
    allowed = CT2_TYPES if engine == "ctranslate2" else TRANSFORMERS_TYPES
    if quantization not in allowed:
        raise InvalidOptionError(
            f"the {engine} engine cannot quantize to {quantization!r}: use {', '.join(allowed)}"
        )


def quantize_ct2(
    model: str,
    quantization: str,
    *,
    name: str | None = None,
    output_dir: str | os.PathLike[str] | None = None,
    force: bool = False,
) -> QuantizeResult:
    """Rewrite a CTranslate2 model in ``quantization``; register it as ``name`` (default
    ``MODEL-QUANTIZATION``) or write it to ``output_dir``."""
    from .finetune.ct2_format import read_model, write_whisper
    from .finetune.store import register_model

    check_target("ctranslate2", quantization)
    src = resolve(model)
    ct2 = read_model(src.path)
    if ct2.stored_dtype in ("int8", "int16") and quantization not in ("int8", "int16"):
        logger.warning(
            "%s is stored as %s: a %s copy keeps its rounding errors",
            model,
            ct2.stored_dtype,
            quantization,
        )
    if output_dir is not None:
        out = Path(output_dir)
        if out.exists() and not force:
            raise OutputError(f"{out} already exists (use --force to replace it)")
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
        try:
            write_whisper(ct2, tmp, quantization)
            if out.exists():
                shutil.rmtree(out)
            os.replace(tmp, out)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return QuantizeResult(
            None, out, "ctranslate2", quantization, src.path, ct2.stored_dtype, folder_size(out)
        )
    target_name = name or f"{src.name}-{quantization}"
    with tempfile.TemporaryDirectory(prefix="malsori-quantize-") as work:
        write_whisper(ct2, Path(work) / "model", quantization)
        info = {"base": str(src.path), "quantization": quantization}
        path = register_model(
            Path(work) / "model", target_name, source="quantize", info=info, force=force, move=True
        )
    return QuantizeResult(
        target_name,
        path,
        "ctranslate2",
        quantization,
        src.path,
        ct2.stored_dtype,
        folder_size(path),
    )


def quantize_transformers(
    model: str, quantization: str, output_dir: str | os.PathLike[str], *, force: bool = False
) -> QuantizeResult:
    """Save ``model`` as a Hugging Face folder for the transformers engine; ``int8`` is recorded
    in ``malsori-engine.json`` and applied (dynamic quantization) when the engine loads it."""
    from .finetune.ct2_to_hf import load_any

    check_target("transformers", quantization)
    out = Path(output_dir)
    if out.exists() and not force:
        raise OutputError(f"{out} already exists (use --force to replace it)")
    hf = load_any(model)
    hf.save(out)
    engine = {"engine": "transformers", "dynamic_int8": quantization == "int8"}
    (out / ENGINE_FILE).write_text(json.dumps(engine, indent=2), encoding="utf-8")
    return QuantizeResult(
        None, out, "transformers", quantization, Path(hf.source), "float32", folder_size(out)
    )


@dataclass(frozen=True)
class Measurement:
    """One row of the comparison table."""

    engine: str
    precision: str
    model: str
    size_mb: float
    clips: int
    wer: float | None
    cer: float | None
    rtfx: float | None  # audio seconds per processing second
    load_seconds: float

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def _row(
    engine: str, precision: str, model: str, size: int, report: EvaluationReport, load_s: float
) -> Measurement:
    o = report.overall
    return Measurement(
        engine,
        precision,
        model,
        round(size / 1e6, 1),
        o.utterances,
        o.wer,
        o.cer,
        o.rtfx,
        round(load_s, 2),
    )


def measure_ct2(
    model: str,
    entries: Sequence[ManifestEntry],
    *,
    compute_type: str = "default",
    threads: int = 0,
) -> Measurement:
    """Size, WER/CER and speed of a CTranslate2 model through malsori's pipeline (greedy)."""
    from .model import load_model

    started = time.perf_counter()
    loaded = load_model(model, compute_type=compute_type, threads=threads)
    load_s = time.perf_counter() - started
    transcriber = malsori_transcriber(loaded, PLAIN_DECODING, use_manifest_language=True)
    report = evaluate(list(entries), transcriber)
    precision = f"{loaded.info.compute_type}"
    return _row("ctranslate2", precision, model, folder_size(loaded.info.path), report, load_s)


def measure_transformers(
    model: str, entries: Sequence[ManifestEntry], *, dynamic_int8: bool = False, threads: int = 0
) -> Measurement:
    """Size, WER/CER and speed of the same weights run greedily by ``transformers``."""
    from .finetune.hf_engine import EngineOptions, TransformersEngine

    started = time.perf_counter()
    engine = TransformersEngine.load(
        model, EngineOptions(dynamic_int8=dynamic_int8, threads=threads)
    )
    load_s = time.perf_counter() - started
    report = evaluate(list(entries), engine.transcriber())
    size = _state_dict_size(engine.model)
    precision = "dynamic int8" if dynamic_int8 else "float32"
    return _row("transformers", precision, model, size, report, load_s)


def _state_dict_size(model: object) -> int:
    """Bytes of the (possibly quantized) weights, as ``torch.save`` writes them."""
    import io

    import torch

    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)  # type: ignore[attr-defined]
    return buffer.tell()


def format_measurements(rows: Sequence[Measurement]) -> str:
    def pct(v: float | None) -> str:
        return "-" if v is None else f"{100 * v:.2f}%"

    header = (
        f"{'engine':<13}{'precision':<14}{'size':>9}{'clips':>7}{'WER':>9}{'CER':>9}{'RTFx':>8}"
    )
    lines = [header, "-" * len(header)]
    for r in rows:
        rtfx = "-" if r.rtfx is None else f"{r.rtfx:.1f}"
        lines.append(
            f"{r.engine:<13}{r.precision:<14}{r.size_mb:>7.1f}MB{r.clips:>7}{pct(r.wer):>9}"
            f"{pct(r.cer):>9}{rtfx:>8}"
        )
    return "\n".join(lines)
