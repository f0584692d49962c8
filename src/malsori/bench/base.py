"""What every ``malsori bench`` configuration shares: its settings, its output and the base
class (``BenchConfig``), apart from the configurations themselves so that a module of
configurations (``whispercpp``) and the registry (``configs``) both build on it."""

from __future__ import annotations

import importlib.util
import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Output:
    """What a configuration returns for one file."""

    text: str
    language: str | None  # the language it decoded in (detected)


@dataclass(frozen=True)
class Setting:
    """What every configuration is given: the model, the device and the CPU threads."""

    model: str
    device: str = "cpu"  # "cpu" or "cuda"
    threads: int = 0  # 0: the engine's default
    onnx_python: str | None = None  # the interpreter of an environment with optimum-onnx


def _missing(*modules: str) -> str | None:
    absent = [m for m in modules if importlib.util.find_spec(m) is None]
    return f"{', '.join(absent)} not installed" if absent else None


def _cuda_reason() -> str | None:
    import ctranslate2

    if ctranslate2.get_cuda_device_count() == 0:
        return "needs a CUDA GPU (none here)"
    return None


def folder_size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


class BenchConfig:
    """One configuration. Subclasses set ``name``, ``summary`` and override the methods."""

    name: ClassVar[str]
    summary: ClassVar[str]
    extra: ClassVar[str] = ""  # the malsori extra that installs its engine
    long_form: ClassVar[bool] = True  # decodes recordings longer than 30 s
    cuda_only: ClassVar[bool] = False
    precision: ClassVar[str] = "fp32"  # what its matrix products compute in: "int8" or "fp32"

    def __init__(self, setting: Setting):
        self.setting = setting

    def available(self) -> str | None:
        """None when the configuration can run here, else why not (one line)."""
        if self.cuda_only and self.setting.device != "cuda":
            return "needs --device cuda"
        if self.setting.device == "cuda":
            return _cuda_reason()
        return None

    def worker_command(self) -> list[str]:
        """The worker process that runs this configuration (``malsori.bench.protocol``)."""
        return [sys.executable, "-m", "malsori.bench.worker"]

    def load_request(self) -> dict[str, object]:
        """What the parent asks the worker to load (``malsori.bench.worker``: the name and the
        setting; the worker converts and loads)."""
        s = self.setting
        return {"op": "load", "config": self.name, "model": s.model, "device": s.device,
                "threads": s.threads}  # fmt: skip

    def worker_inputs(self, paths: Sequence[Path], scratch: Path) -> list[str]:
        """The files the worker is given for ``paths`` (the audio files themselves; a worker
        that cannot decode them gets them decoded, written under ``scratch``)."""
        return [str(p) for p in paths]

    def prepare(self) -> None:
        """Conversions the configuration needs (cached; not timed)."""

    def load(self) -> None:
        raise NotImplementedError

    def transcribe(self, path: Path) -> Output:
        raise NotImplementedError

    def run(self, paths: Sequence[Path]) -> list[Output]:
        """Every file of a workload (engines that batch across files override this)."""
        return [self.transcribe(p) for p in paths]

    def size_on_disk(self) -> int:
        raise NotImplementedError


# --- malsori and faster-whisper on the packaged CTranslate2 model ---------------------------
