"""The configurations ``malsori bench`` compares: one small class per engine and setting.

Each runs the same packaged weights (converted by ``malsori.bench.convert`` where the engine
needs another format) and says first whether it can run here (``available``: a reason when it
cannot, such as a missing extra or no GPU). A worker process (``malsori.bench.worker``) calls
``prepare`` (conversions, cached, untimed), ``load`` (timed), then ``run`` on the workloads.

Decoding: ``malsori`` and ``malsori-batch`` run malsori's defaults; ``fw-*`` faster-whisper's
defaults (beam 5; the batched pipeline with its VAD). Every other configuration compares
*engines and precisions* on equal terms: greedy decoding, no VAD, no post-processing, language
detected by the engine (``malsori.quantize.PLAIN_DECODING`` for CTranslate2).
"""

from __future__ import annotations

import hashlib
import logging
import subprocess
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import Any, ClassVar

from ..errors import InvalidOptionError
from .base import BenchConfig, Output, Setting, _missing, folder_size

logger = logging.getLogger(__name__)

CPU_CT2_TYPES = ("int8", "int16", "float32")
CUDA_CT2_TYPES = ("float16", "int8_float16")


__all__ = ["BenchConfig", "Output", "Setting", "folder_size"]


class MalsoriPipeline(BenchConfig):
    name = "malsori"
    summary = "malsori transcribe: the default pipeline (VAD, beam 5, defences, Korean fixes)"
    precision = "int8"  # the packaged weights are int8; CPU computes in int8

    def load(self) -> None:
        from ..model import load_model
        from ..options import TranscribeOptions

        self.model = load_model(
            self.setting.model, device=self.setting.device, threads=self.setting.threads
        )
        self.options = TranscribeOptions()

    def transcribe(self, path: Path) -> Output:
        t = self.model.transcribe(path, self.options)
        return Output(t.text, t.language.language)

    def size_on_disk(self) -> int:
        return folder_size(Path(self.model.info.path))


class MalsoriBatch(MalsoriPipeline):
    name = "malsori-batch"
    summary = "malsori batch: the packed engine, every file submitted at once"

    def run(self, paths: Sequence[Path]) -> list[Output]:
        from ..batch.engine import PackedEngine
        from ..batch.inputs import BatchInput
        from ..errors import MalsoriError
        from ..results import Transcript

        items = [BatchInput(Path(p), PurePosixPath(str(i))) for i, p in enumerate(paths)]
        results: dict[int, Transcript | MalsoriError] = {}
        PackedEngine(self.model, self.options).run(items, results.__setitem__)
        outputs = []
        for i in range(len(paths)):
            r = results[i]
            if isinstance(r, MalsoriError):
                raise r
            outputs.append(Output(r.text, r.language.language))
        return outputs

    def transcribe(self, path: Path) -> Output:
        return self.run([path])[0]


class FasterWhisper(BenchConfig):
    name = "fw-sequential"
    summary = "faster-whisper WhisperModel.transcribe with its defaults (beam 5, no VAD)"
    precision = "int8"

    def load(self) -> None:
        from faster_whisper import WhisperModel

        from ..registry import resolve

        self.path = resolve(self.setting.model).path
        self.whisper = WhisperModel(
            str(self.path),
            device=self.setting.device,
            compute_type="default",  # as stored (int8 for the packaged models)
            cpu_threads=self.setting.threads,
        )

    def transcribe(self, path: Path) -> Output:
        segments, info = self.whisper.transcribe(str(path))
        return Output("".join(s.text for s in segments).strip(), info.language)

    def size_on_disk(self) -> int:
        return folder_size(self.path)


class FasterWhisperBatched(FasterWhisper):
    name = "fw-batched"
    summary = "faster-whisper BatchedInferencePipeline (batch 8) with its defaults (VAD on)"

    def load(self) -> None:
        from faster_whisper import BatchedInferencePipeline

        super().load()
        self.pipeline = BatchedInferencePipeline(self.whisper)

    def transcribe(self, path: Path) -> Output:
        segments, info = self.pipeline.transcribe(str(path), batch_size=8)
        return Output("".join(s.text for s in segments).strip(), info.language)


class Ct2Precision(BenchConfig):
    """malsori's sequential pipeline, greedy and plain, on a copy stored as ``quantization``."""

    quantization: ClassVar[str]

    def available(self) -> str | None:
        import ctranslate2

        reason = super().available()
        if reason:
            return reason
        if self.quantization not in ctranslate2.get_supported_compute_types(self.setting.device):
            return f"CTranslate2 cannot compute in {self.quantization} on {self.setting.device}"
        return None

    def prepare(self) -> None:
        from .convert import ct2_precision

        self.folder = ct2_precision(self.setting.model, self.quantization)

    def load(self) -> None:
        from ..model import load_model
        from ..quantize import PLAIN_DECODING

        self.model = load_model(
            self.folder,
            device=self.setting.device,
            compute_type=self.quantization,
            threads=self.setting.threads,
        )
        self.options = PLAIN_DECODING

    def transcribe(self, path: Path) -> Output:
        t = self.model.transcribe(path, self.options)
        return Output(t.text, t.language.language)

    def size_on_disk(self) -> int:
        return folder_size(self.folder)


def _ct2_type(quantization: str, cuda: bool) -> type[Ct2Precision]:
    return type(
        f"Ct2_{quantization}",
        (Ct2Precision,),
        {
            "name": f"ct2-{quantization}",
            "summary": f"CTranslate2 stored and computed in {quantization}, greedy, no VAD",
            "quantization": quantization,
            "cuda_only": cuda,
            "precision": "int8" if quantization.startswith("int8") else "fp32",
        },
    )


# --- PyTorch engines on converted weights ---------------------------------------------------


class OpenaiWhisper(BenchConfig):
    name = "openai-whisper"
    summary = "the original openai-whisper (PyTorch fp32), checkpoint converted by malsori"
    extra = "bench"

    def available(self) -> str | None:
        return _missing("whisper", "torch") or super().available()

    def prepare(self) -> None:
        from .convert import openai_whisper_checkpoint

        self.checkpoint = openai_whisper_checkpoint(self.setting.model)

    def load(self) -> None:
        import torch
        import whisper

        if self.setting.threads:
            torch.set_num_threads(self.setting.threads)
        self.whisper = whisper
        self.model = whisper.load_model(str(self.checkpoint), device=self.setting.device)

    def transcribe(self, path: Path) -> Output:
        result = self.whisper.transcribe(
            self.model,
            str(path),
            temperature=0.0,
            condition_on_previous_text=False,
            fp16=self.setting.device == "cuda",
        )
        return Output(str(result["text"]).strip(), result.get("language"))

    def size_on_disk(self) -> int:
        return folder_size(self.checkpoint)


class Transformers(BenchConfig):
    """``transformers`` WhisperForConditionalGeneration (SDPA attention), greedy, 30 s clips."""

    extra = "finetune"
    long_form = False  # malsori's transformers engine decodes one 30 s window
    dynamic_int8: ClassVar[bool] = False
    compile: ClassVar[bool] = False
    half: ClassVar[bool] = False

    def available(self) -> str | None:
        reason = _missing("torch", "transformers") or super().available()
        if reason is None and self.dynamic_int8 and self.setting.device != "cpu":
            return "PyTorch dynamic int8 runs on the CPU only"
        return reason

    def prepare(self) -> None:
        from .convert import hf_folder

        self.folder = hf_folder(self.setting.model)

    def load(self) -> None:
        from ..finetune.ct2_to_hf import load_hf
        from ..finetune.hf_engine import EngineOptions, TransformersEngine

        options = EngineOptions(
            dynamic_int8=self.dynamic_int8,
            threads=self.setting.threads,
            compile=self.compile,
            device=self.setting.device,
            half=self.half,
        )
        self.engine = TransformersEngine(load_hf(self.folder), options)

    def transcribe(self, path: Path) -> Output:
        from ..finetune.data import load_audio

        text, language = self.engine.decode(load_audio(path))
        return Output(text, language)

    def size_on_disk(self) -> int:
        if self.dynamic_int8:
            from ..quantize import _state_dict_size

            return _state_dict_size(self.engine.model)
        return folder_size(self.folder)


class TransformersFp32(Transformers):
    name = "transformers"
    summary = "transformers fp32, SDPA attention, greedy (clips of at most 30 s)"


class TransformersCompile(Transformers):
    name = "transformers-compile"
    summary = "transformers fp32 with torch.compile on the encoder, greedy"
    compile = True


class TransformersInt8(Transformers):
    name = "transformers-int8"
    summary = "transformers with PyTorch dynamic int8 Linear layers, greedy"
    dynamic_int8 = True
    precision = "int8"


class TransformersFp16(Transformers):
    name = "transformers-fp16"
    summary = "transformers fp16 on CUDA, greedy"
    cuda_only = True
    half = True


ONNX_PYTHON_ENV = "MALSORI_BENCH_ONNX_PYTHON"


def onnx_environment_reason(python: str) -> str | None:
    """None when ``python``'s environment can run the ONNX worker, else why not."""
    check = (
        "import importlib.util, sys; "
        "sys.exit(any(importlib.util.find_spec(m) is None "
        "for m in ('optimum.onnxruntime', 'onnxruntime', 'transformers', 'numpy')))"
    )
    try:
        done = subprocess.run([python, "-c", check], capture_output=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"cannot run {python}: {e}"
    if done.returncode != 0:
        return (
            f"optimum-onnx is not installed in {python}'s environment (needs optimum-onnx, "
            "onnxruntime; see docs/benchmarks.md)"
        )
    return None


class OnnxRuntime(BenchConfig):
    """ONNX Runtime through Optimum (``optimum-onnx``), in an environment of its own.

    ``optimum-onnx`` pins ``transformers<4.58``; malsori needs ``transformers>=5``. So the
    worker (``onnx_worker.py``) runs under ``--onnx-python``: malsori converts the packaged
    weights to a transformers folder here (``convert.hf_folder``) and decodes the audio into
    16 kHz arrays; Optimum exports, quantizes and runs them there.
    """

    extra = "finetune"  # the transformers conversion runs in malsori's environment
    long_form = False  # one 30 s window, as the transformers configurations
    int8: ClassVar[bool] = False

    def available(self) -> str | None:
        python = self.setting.onnx_python
        if not python:
            return (
                "needs an environment with optimum-onnx: give --onnx-python PATH (or "
                f"{ONNX_PYTHON_ENV}); optimum-onnx pins transformers<4.58 and malsori needs "
                "transformers>=5, so they cannot share one environment"
            )
        if self.setting.device != "cpu":
            return "runs on the CPU only (onnxruntime's CPU provider)"
        return _missing("torch", "transformers") or onnx_environment_reason(python)

    def worker_command(self) -> list[str]:
        assert self.setting.onnx_python is not None
        return [self.setting.onnx_python, str(Path(__file__).with_name("onnx_worker.py"))]

    def load_request(self) -> dict[str, object]:
        from .convert import cache_dir, hf_folder

        cache = cache_dir(self.setting.model)
        return {
            "op": "load",
            "hf_folder": str(hf_folder(self.setting.model)),  # converted here, once
            "fp32_dir": str(cache / "onnx"),
            "onnx_dir": str(cache / ("onnx-int8" if self.int8 else "onnx")),
            "int8": self.int8,
            "threads": self.setting.threads,
        }

    def worker_inputs(self, paths: Sequence[Path], scratch: Path) -> list[str]:
        """Each clip decoded by malsori (16 kHz mono float32) into ``scratch``, once."""
        import numpy as np

        from ..finetune.data import load_audio

        out = []
        for path in paths:
            key = hashlib.sha256(str(Path(path).resolve()).encode()).hexdigest()[:16]
            target = scratch / f"{key}.npy"
            if not target.exists():
                np.save(target, load_audio(path).astype(np.float32))
            out.append(str(target))
        return out


class OnnxFp32(OnnxRuntime):
    name = "onnx"
    summary = "ONNX Runtime (optimum-onnx export), fp32"


class OnnxInt8(OnnxRuntime):
    name = "onnx-int8"
    summary = "ONNX Runtime with dynamic int8 quantization (optimum-onnx)"
    int8 = True


class Gptq(BenchConfig):
    name = "gptq"
    summary = "GPTQ 4-bit weights on the transformers model (GPU only)"
    cuda_only = True

    def available(self) -> str | None:
        reason = super().available()
        if reason:
            return reason
        return _missing("gptqmodel") or "GPTQ on Whisper is not built yet"


# --- the registry ------------------------------------------------------------------------


def _registry() -> dict[str, type[BenchConfig]]:
    classes: list[type[BenchConfig]] = [
        MalsoriPipeline,
        MalsoriBatch,
        FasterWhisper,
        FasterWhisperBatched,
        *(_ct2_type(q, False) for q in CPU_CT2_TYPES),
        *(_ct2_type(q, True) for q in CUDA_CT2_TYPES),
        OpenaiWhisper,
        TransformersFp32,
        TransformersCompile,
        TransformersInt8,
        TransformersFp16,
        OnnxFp32,
        OnnxInt8,
        Gptq,
    ]
    from .whispercpp import WHISPERCPP_CONFIGS

    classes[classes.index(OnnxFp32) : classes.index(OnnxFp32)] = list(WHISPERCPP_CONFIGS)
    return {c.name: c for c in classes}


CONFIGS: dict[str, type[BenchConfig]] = _registry()
# One of each engine and kind of precision; ``--configs all`` adds the slower variants
# (int16, torch.compile, q5_0), which take most of a run's time on a small CPU.
EXTRA_CONFIGS = ("ct2-int16", "transformers-compile", "whispercpp-q5_0")
DEFAULT_CONFIGS: tuple[str, ...] = tuple(n for n in CONFIGS if n not in EXTRA_CONFIGS)
ALL = "all"


def parse_configs(names: str | None) -> list[str]:
    """Configuration names from ``--configs a,b`` (default: ``DEFAULT_CONFIGS``; ``all``: every
    one), checked; InvalidOptionError names the unknown ones and lists the known."""
    if names is None:
        return list(DEFAULT_CONFIGS)
    chosen = [n.strip() for n in names.split(",") if n.strip()]
    if ALL in chosen:
        chosen = [n for n in chosen if n != ALL] + list(CONFIGS)
    if not chosen:
        raise InvalidOptionError("--configs needs at least one configuration name")
    unknown = [n for n in chosen if n not in CONFIGS]
    if unknown:
        raise InvalidOptionError(
            f"unknown configuration {', '.join(map(repr, unknown))}: choose from "
            f"{', '.join(CONFIGS)}"
        )
    return list(dict.fromkeys(chosen))


def make(name: str, setting: Setting) -> BenchConfig:
    return CONFIGS[name](setting)


def describe(names: Sequence[str]) -> list[dict[str, Any]]:
    return [{"name": n, "summary": CONFIGS[n].summary, "extra": CONFIGS[n].extra} for n in names]
