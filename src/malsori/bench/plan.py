"""What a benchmark run is: its options, checked before anything runs, and its workloads.

``BenchOptions.check`` and ``workloads`` raise the one-line errors the CLI prints (unknown
configuration, empty manifest, missing file) before any model is loaded.
"""

from __future__ import annotations

import csv
import datetime
import os
import platform
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InputError, InvalidOptionError
from ..languages import normalize_language
from ..manifest import ManifestEntry, load_manifest, select_entries
from ..registry import resolve
from .configs import Setting, parse_configs
from .runner import LONG, SHORT, BenchReport, Progress, Workload, model_shape, run_bench

DEVICES = ("cpu", "cuda")


@dataclass(frozen=True)
class BenchOptions:
    manifest: Path
    output_dir: Path
    configs: tuple[str, ...] = ()  # empty: every configuration
    model: str = "base"
    long: Path | None = None  # one long recording
    long_language: str | None = None  # its language (for scoring against its reference)
    limit: int | None = None  # clips of the manifest to use (first N)
    repeats: int = 2
    threads: int = 0
    device: str = "cpu"
    probe: bool = True  # measure the GEMM peak
    onnx_python: Path | None = None  # an environment with optimum-onnx (the onnx configurations)
    extra_meta: dict[str, Any] = field(default_factory=dict)

    def check(self) -> None:
        if self.repeats < 1:
            raise InvalidOptionError(f"--repeats must be at least 1, got {self.repeats}")
        if self.threads < 0:
            raise InvalidOptionError(f"--threads cannot be negative, got {self.threads}")
        if self.device not in DEVICES:
            raise InvalidOptionError(f"--device must be cpu or cuda, got {self.device!r}")
        parse_configs(",".join(self.configs) if self.configs else None)
        if self.long is not None and not self.long.is_file():
            raise InputError(f"{self.long}: no such file (--long)")
        if self.onnx_python is not None and not self.onnx_python.is_file():
            raise InputError(f"{self.onnx_python}: no such interpreter (--onnx-python)")
        if self.long_language is not None and normalize_language(self.long_language) is None:
            raise InvalidOptionError("--long-language needs a language code")

    @property
    def setting(self) -> Setting:
        python = None if self.onnx_python is None else str(self.onnx_python)
        return Setting(self.model, self.device, self.threads, python)

    @property
    def names(self) -> list[str]:
        return parse_configs(",".join(self.configs) if self.configs else None)


def _duration(path: Path) -> float:
    from ..audio import probe

    declared = probe(path).declared_duration
    if declared:
        return float(declared)
    from ..finetune.data import load_audio

    return len(load_audio(path)) / 16000


def short_workload(manifest: Path, limit: int | None) -> Workload:
    entries = select_entries(load_manifest(manifest), limit=limit)
    if not entries:
        raise InvalidOptionError(f"{manifest}: no clips to benchmark (the manifest is empty)")
    return Workload(SHORT, tuple(entries), tuple(_duration(e.audio) for e in entries))


def long_reference(path: Path) -> str | None:
    """The reference text of a long recording: ``NAME.segments.tsv`` (start, end, text, as the
    dev set's long-form files have) or ``NAME.txt`` next to it; None when there is neither."""
    segments = path.with_suffix(".segments.tsv")
    if segments.is_file():
        with open(segments, encoding="utf-8", newline="") as f:
            rows = list(csv.DictReader(f, delimiter="\t"))
        return " ".join(r["text"].strip() for r in rows if r.get("text"))
    text = path.with_suffix(".txt")
    if text.is_file():
        return text.read_text(encoding="utf-8").strip()
    return None


def long_workload(path: Path, language: str | None) -> Workload:
    reference = long_reference(path)
    code = normalize_language(language) if language else None
    scored = reference is not None and code is not None
    entry = ManifestEntry(path.resolve(), code or "en", reference or "")
    return Workload(LONG, (entry,), (_duration(path),), scored=scored)


def workloads(options: BenchOptions) -> list[Workload]:
    """Both workloads, read and checked (InputError/InvalidOptionError before anything runs)."""
    found = [short_workload(options.manifest, options.limit)]
    if options.long is not None:
        found.append(long_workload(options.long, options.long_language))
    return found


def meta(options: BenchOptions, loads: Sequence[Workload]) -> dict[str, Any]:
    return {
        **options.extra_meta,
        "manifest": str(options.manifest),
        "long": None if options.long is None else str(options.long),
        "model": options.model,
        "model_path": str(resolve(options.model).path),
        "device": options.device,
        "threads": options.threads or os.cpu_count(),
        "repeats": options.repeats,
        "workloads": {
            w.name: {"files": len(w.entries), "audio_seconds": w.audio_seconds, "scored": w.scored}
            for w in loads
        },
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "options": {k: str(v) for k, v in asdict(options).items() if k != "extra_meta"},
    }


def benchmark(options: BenchOptions, on_step: Progress | None = None) -> BenchReport:
    """Check, plan and run; the report is not written (``malsori.bench.report.write_all``)."""
    options.check()
    loads = workloads(options)
    gemm = None
    if options.probe:
        from .gemm import probe

        gemm = probe(options.threads)
    return run_bench(
        options.names,
        options.setting,
        loads,
        repeats=options.repeats,
        log_dir=options.output_dir / "logs",
        probe=gemm,
        model_shape=model_shape(options.model),
        on_step=on_step,
        meta=meta(options, loads),
    )
