"""Running the configurations side by side: one worker process each, alternating, warmed up.

Every configuration that can run here gets a worker (``malsori.bench.worker``) that converts
and loads it once. Each worker transcribes one clip untimed (the warm-up: caches, lazy imports,
``torch.compile``), then the workloads run ``repeats`` times; within a repeat the configurations
take turns, starting one further along each time, so that drift of a shared machine (other
jobs, heat) falls on all of them alike. Wall time is measured in the worker around the whole
workload; peak RSS is the worker's own (``VmHWM``). Accuracy is scored on the first repeat's
texts with ``malsori.evaluation`` (the normalisation of ``malsori eval``).
"""

from __future__ import annotations

import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

from ..errors import MalsoriError
from ..evaluation import EvaluationReport, Hypothesis, score_utterance
from ..manifest import ManifestEntry
from .configs import CONFIGS, BenchConfig, Setting, make
from .gemm import GemmProbe, encoder_flops

logger = logging.getLogger(__name__)

SHORT, LONG = "short", "long"


class WorkerError(MalsoriError):
    """A configuration's worker process failed or died."""


@dataclass(frozen=True)
class Workload:
    """Files transcribed together; scored when the entries have reference texts."""

    name: str
    entries: tuple[ManifestEntry, ...]
    durations: tuple[float, ...]  # seconds of audio of each entry
    scored: bool = True

    @property
    def audio_seconds(self) -> float:
        return sum(self.durations)

    @property
    def windows(self) -> int:
        """30 s encoder windows the audio needs at least (every short clip takes one)."""
        return sum(max(1, -(-int(d) // 30)) for d in self.durations)


@dataclass(frozen=True)
class WorkloadResult:
    workload: str
    clips: int
    audio_seconds: float
    wall_seconds: tuple[float, ...]  # one per repeat
    wer: float | None
    cer: float | None
    cer_nospace: float | None
    language_id_accuracy: float | None
    encoder_bound_seconds: float | None  # the encoders alone at the GEMM probe's peak

    @property
    def median_seconds(self) -> float:
        return statistics.median(self.wall_seconds)

    @property
    def spread_seconds(self) -> float:
        return max(self.wall_seconds) - min(self.wall_seconds)

    @property
    def rtfx(self) -> float:
        return self.audio_seconds / self.median_seconds if self.median_seconds else 0.0

    @property
    def times_bound(self) -> float | None:
        """How many times the physical lower bound the median took."""
        if not self.encoder_bound_seconds:
            return None
        return self.median_seconds / self.encoder_bound_seconds

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.update(
            median_seconds=self.median_seconds,
            spread_seconds=self.spread_seconds,
            rtfx=self.rtfx,
            times_bound=self.times_bound,
        )
        return d


@dataclass(frozen=True)
class ConfigResult:
    name: str
    summary: str
    status: str  # "ok", "skipped" (cannot run here) or "failed" (ran and broke)
    reason: str | None = None
    prepare_seconds: float | None = None  # conversions (cached after the first run)
    load_seconds: float | None = None
    size_bytes: int | None = None
    peak_rss_bytes: int | None = None
    peak_gpu_bytes: int | None = None
    workloads: tuple[WorkloadResult, ...] = ()
    notes: tuple[str, ...] = ()  # e.g. a workload this engine cannot run

    def workload(self, name: str) -> WorkloadResult | None:
        return next((w for w in self.workloads if w.workload == name), None)

    def to_dict(self) -> dict[str, Any]:
        d = {k: v for k, v in asdict(self).items() if k != "workloads"}
        d["workloads"] = [w.to_dict() for w in self.workloads]
        return d


@dataclass(frozen=True)
class BenchReport:
    configs: tuple[ConfigResult, ...]
    probe: GemmProbe | None
    meta: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "meta": self.meta,
            "gemm_probe": None if self.probe is None else self.probe.to_dict(),
            "configs": [c.to_dict() for c in self.configs],
        }


# --- a worker process, from the parent's side ------------------------------------------------


class WorkerProcess:
    def __init__(self, name: str, log: IO[str], command: Sequence[str] | None = None):
        self.name = name
        env = dict(os.environ)
        self.process = subprocess.Popen(
            list(command or [sys.executable, "-m", "malsori.bench.worker"]),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            encoding="utf-8",
            env=env,
        )

    def ask(self, request: dict[str, Any]) -> dict[str, Any]:
        assert self.process.stdin is not None and self.process.stdout is not None
        started = time.perf_counter()
        try:
            self.process.stdin.write(json.dumps(request, ensure_ascii=False) + "\n")
            self.process.stdin.flush()
        except BrokenPipeError as e:
            raise WorkerError(f"{self.name}: worker exited ({self.process.poll()})") from e
        line = self.process.stdout.readline()
        if not line:
            raise WorkerError(f"{self.name}: worker exited ({self.process.wait()}); see its log")
        reply: dict[str, Any] = json.loads(line)
        logger.info("%s %s: %.1f s", self.name, request["op"], time.perf_counter() - started)
        if not reply.get("ok"):
            raise WorkerError(f"{self.name}: {reply.get('error')}")
        return reply

    def stop(self) -> None:
        """End of requests: the worker exits when it has read them all."""
        if self.process.stdin is not None and not self.process.stdin.closed:
            self.process.stdin.close()

    def close(self) -> None:
        self.stop()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


# --- the run ---------------------------------------------------------------------------------


@dataclass
class _Live:
    """What the parent keeps of one configuration while it runs."""

    name: str
    config: BenchConfig
    worker: WorkerProcess
    loaded: dict[str, Any]
    inputs: dict[str, list[str]] = field(default_factory=dict)  # what the worker is given
    walls: dict[str, list[float]] = field(default_factory=dict)
    outputs: dict[str, list[list[Any]]] = field(default_factory=dict)
    error: str | None = None


def _score(workload: Workload, outputs: list[list[Any]], median: float) -> EvaluationReport:
    results = []
    for entry, duration, (text, language) in zip(
        workload.entries, workload.durations, outputs, strict=True
    ):
        share = median * duration / workload.audio_seconds if workload.audio_seconds else 0.0
        hypothesis = Hypothesis(text, language, language is not None, duration)
        results.append(score_utterance(entry, hypothesis, share))
    return EvaluationReport.from_results(results)


def _workload_result(live: _Live, workload: Workload, bound: float | None) -> WorkloadResult:
    walls = tuple(live.walls[workload.name])
    median = statistics.median(walls)
    wer = cer = cer_ns = lid = None
    if workload.scored:
        overall = _score(workload, live.outputs[workload.name], median).overall
        wer, cer, cer_ns = overall.wer, overall.cer, overall.cer_nospace
        lid = overall.language_id_accuracy
    return WorkloadResult(
        workload.name,
        len(workload.entries),
        workload.audio_seconds,
        walls,
        wer,
        cer,
        cer_ns,
        lid,
        bound,
    )


Progress = Callable[[str], None]


def run_bench(
    names: Sequence[str],
    setting: Setting,
    workloads: Sequence[Workload],
    *,
    repeats: int,
    log_dir: Path,
    probe: GemmProbe | None = None,
    model_shape: dict[str, int] | None = None,
    on_step: Progress | None = None,
    meta: dict[str, Any] | None = None,
) -> BenchReport:
    """Run every configuration of ``names`` on the workloads; skipped ones keep their reason."""
    step = on_step or (lambda _: None)
    results: dict[str, ConfigResult] = {}
    live: list[_Live] = []
    log_dir.mkdir(parents=True, exist_ok=True)
    scratch = tempfile.TemporaryDirectory(prefix="malsori-bench-")  # decoded audio, if any
    try:
        for name in names:
            config = make(name, setting)
            reason = config.available()
            if reason is not None:
                results[name] = ConfigResult(name, config.summary, "skipped", reason)
                continue
            step(f"load {name}")
            log = open(log_dir / f"{name}.log", "w", encoding="utf-8")  # noqa: SIM115
            worker = WorkerProcess(name, log, config.worker_command())
            try:
                started = time.perf_counter()
                request = config.load_request()  # conversions made here, if any
                converted = time.perf_counter() - started
                loaded = worker.ask(request)
                loaded["prepare_s"] = float(loaded.get("prepare_s") or 0.0) + converted
                step(f"warm up {name}")
                first = config.worker_inputs([workloads[0].entries[0].audio], Path(scratch.name))
                worker.ask({"op": "run", "paths": first})
            except (WorkerError, MalsoriError, OSError) as e:
                results[name] = ConfigResult(name, config.summary, "failed", str(e))
                worker.close()
                continue
            live.append(_Live(name, config, worker, loaded))
        for workload in workloads:
            _run_workload(live, workload, repeats, step, Path(scratch.name))
        for item in live:
            if item.error is None:
                try:
                    stats = item.worker.ask({"op": "stats"})
                except WorkerError as e:
                    item.error = str(e)
                    continue
                item.loaded.update(stats)
    finally:
        for item in live:
            item.worker.stop()
        for item in live:
            item.worker.close()
        scratch.cleanup()
    for item in live:
        results[item.name] = _result(item, workloads, probe, model_shape)
    ordered = tuple(results[n] for n in names)
    return BenchReport(ordered, probe, dict(meta or {}))


def _run_workload(
    live: list[_Live], workload: Workload, repeats: int, step: Progress, scratch: Path
) -> None:
    eligible = [
        x for x in live if x.error is None and (workload.name == SHORT or CONFIGS[x.name].long_form)
    ]
    for item in eligible:
        audio = [e.audio for e in workload.entries]
        try:
            item.inputs[workload.name] = item.config.worker_inputs(audio, scratch)
        except (MalsoriError, OSError) as e:
            item.error = f"{item.name}: {e}"
    eligible = [x for x in eligible if x.error is None]
    for r in range(repeats):
        shift = r % len(eligible) if eligible else 0
        for item in eligible[shift:] + eligible[:shift]:
            if item.error is not None:
                continue
            step(f"{workload.name} {r + 1}/{repeats} {item.name}")
            try:
                reply = item.worker.ask({"op": "run", "paths": item.inputs[workload.name]})
            except WorkerError as e:
                item.error = str(e)
                continue
            item.walls.setdefault(workload.name, []).append(float(reply["wall_s"]))
            item.outputs.setdefault(workload.name, reply["outputs"])


def _result(
    item: _Live,
    workloads: Sequence[Workload],
    probe: GemmProbe | None,
    shape: dict[str, int] | None,
) -> ConfigResult:
    cls = CONFIGS[item.name]
    if item.error is not None:
        return ConfigResult(item.name, cls.summary, "failed", item.error)
    done, notes = [], []
    for w in workloads:
        if w.name not in item.walls:
            notes.append(f"{w.name} workload not run: the engine decodes clips of at most 30 s")
            continue
        bound = None
        if probe is not None and shape is not None:
            bound = w.windows * encoder_flops(**shape) / probe.peak_for(cls.precision)
        done.append(_workload_result(item, w, bound))
    return ConfigResult(
        item.name,
        cls.summary,
        "ok",
        None,
        item.loaded.get("prepare_s"),
        item.loaded.get("load_s"),
        item.loaded.get("size_bytes"),
        item.loaded.get("peak_rss_bytes"),
        item.loaded.get("peak_gpu_bytes"),
        tuple(done),
        tuple(notes),
    )


def model_shape(model: str) -> dict[str, int]:
    """The encoder's sizes, for ``gemm.encoder_flops``."""
    from ..finetune.ct2_format import read_model
    from ..registry import resolve

    ct2 = read_model(resolve(model).path, dequantize=False)
    v = ct2.resolved()
    return {
        "n_mels": int(v["encoder/conv1/weight"].shape[1]),
        "d_model": int(v["encoder/conv1/weight"].shape[0]),
        "layers": ct2.count_layers("encoder"),
        "frames": int(v["encoder/position_encodings/encodings"].shape[0]),
        "ffn": int(v["encoder/layer_0/ffn/linear_0/weight"].shape[0]),
    }
