#!/usr/bin/env python
"""Benchmark ``malsori batch`` against faster-whisper, side by side in one run.

Two workloads, each through three engines with the same model, compute type and CPU threads:

- many short files (the first ``--limit`` clips of a manifest),
- one long file (``--long`` files joined with sox, repeated until ``--long-minutes`` long).

Engines: ``malsori`` (malsori batch, packed engine, default options), ``fw-sequential``
(faster-whisper ``WhisperModel.transcribe`` file by file, its defaults: beam 5, language
detection, no VAD) and ``fw-batched`` (faster-whisper ``BatchedInferencePipeline.transcribe``
file by file with ``--batch-size``, its defaults). ``malsori-sequential`` (the batch command's
sequential engine, i.e. ``malsori transcribe``) and ``malsori-plain`` (packed, Korean
post-processing and rescoring off: the engine without the Korean analyser's memory) and
``malsori-norescore`` (packed, N-best rescoring off) can be added with ``--engines``.

Each engine runs in its own process: it loads the model, transcribes one clip untimed (warm-up:
model caches, Korean post-processing dictionaries), then the whole workload timed. Reported:
audio seconds per wall second, speed relative to faster-whisper sequential, corpus WER and CER
(malsori.evaluation normalisation, jiwer counts) and peak RSS (``ru_maxrss`` of the process).

    python scripts/bench_batch.py --manifest ../shared/evaldata/manifest.tsv --limit 100 \\
        --long ../shared/evaldata/longform/ko_kih_longform.flac --threads 2
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ENGINES = (
    "malsori", "fw-sequential", "fw-batched", "malsori-sequential", "malsori-plain",
    "malsori-norescore",
)  # fmt: skip
DEFAULT_ENGINES = ("malsori", "fw-sequential", "fw-batched")


# --- worker: one engine, one workload, in its own process --------------------------------------


def _fw_model(args: argparse.Namespace) -> Any:
    from faster_whisper import WhisperModel

    from malsori.registry import resolve

    path = str(resolve(args.model).path)
    return WhisperModel(
        path, device="cpu", compute_type=args.compute_type, cpu_threads=args.threads
    )


def _fw_run(args: argparse.Namespace, files: list[str]) -> tuple[dict[str, str], float]:
    whisper = _fw_model(args)
    if args.engine == "fw-batched":
        from faster_whisper import BatchedInferencePipeline

        pipeline = BatchedInferencePipeline(whisper)

        def one(path: str) -> str:
            segments, _ = pipeline.transcribe(path, batch_size=args.batch_size)
            return "".join(s.text for s in segments).strip()
    else:

        def one(path: str) -> str:
            segments, _ = whisper.transcribe(path)
            return "".join(s.text for s in segments).strip()

    one(args.warmup)
    args.baseline_mib = _rss_now_mib()
    started = time.perf_counter()
    texts = {path: one(path) for path in files}
    return texts, time.perf_counter() - started


def _malsori_run(args: argparse.Namespace, files: list[str]) -> tuple[dict[str, str], float]:
    from malsori.batch import BatchOptions, discover, load_batch_model, run_batch
    from malsori.options import TranscribeOptions
    from malsori.results import Transcript

    engine = "sequential" if args.engine == "malsori-sequential" else "packed"
    # As `malsori batch` loads it: the same threads in all (two workers of half each on a CPU)
    model = load_batch_model(
        args.model, device="cpu", compute_type=args.compute_type, threads=args.threads,
        engine=engine,
    )  # fmt: skip
    options = TranscribeOptions()
    if args.engine == "malsori-plain":  # without the Korean stage (and its analyser's memory)
        options = options.replace(korean_spacing=False, korean_punctuation=False, rescore=False)
    if args.engine == "malsori-norescore":  # the packed engine without N-best rescoring
        options = options.replace(rescore=False)
    model.transcribe(args.warmup, options)
    args.baseline_mib = _rss_now_mib()
    with tempfile.TemporaryDirectory(prefix="bench-out-") as out:
        batch = BatchOptions(
            output_dir=Path(out), formats=("json",), engine=engine, batch_size=args.batch_size
        )
        items = discover(files)
        started = time.perf_counter()
        summary = run_batch(model, items, options, batch)
        wall = time.perf_counter() - started
        if summary.failed:
            raise SystemExit(f"malsori batch failed on: {[o.source for o in summary.failed]}")
        by_path = {os.path.abspath(f): f for f in files}
        texts = {}
        for item in items:
            data = json.loads((Path(out) / f"{item.key}.json").read_text(encoding="utf-8"))
            texts[by_path[os.path.abspath(item.source)]] = Transcript.from_dict(data).text
    return texts, wall


def _rss_now_mib() -> float:
    """Resident memory now (Linux), to tell the model's share from the workload's."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def worker(args: argparse.Namespace) -> int:
    files = json.loads(Path(args.files).read_text())
    if args.engine.startswith("fw-"):
        texts, wall = _fw_run(args, files)
    else:
        texts, wall = _malsori_run(args, files)
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    Path(args.result).write_text(
        json.dumps(
            {
                "texts": texts,
                "wall": wall,
                "peak_rss_mib": peak_mib,
                "ready_rss_mib": args.baseline_mib,
            },
            ensure_ascii=False,
        )
    )
    return 0


# --- driver -----------------------------------------------------------------------------------


def short_set(manifest: Path, limit: int) -> list[tuple[str, str, str, float]]:
    """(path, language, reference, seconds) of the first ``limit`` clips of the manifest
    (``malsori bench``'s short workload)."""
    from malsori.bench.plan import short_workload

    workload = short_workload(manifest, limit)
    return [
        (str(e.audio), e.language, e.reference, seconds)
        for e, seconds in zip(workload.entries, workload.durations, strict=True)
    ]


def long_file(sources: list[Path], minutes: float, workdir: Path) -> tuple[Path, str, float]:
    """``sources`` joined (repeated until ``minutes`` long) with sox; its reference text."""
    from malsori.audio import probe

    lengths = [probe(s).declared_duration or 0.0 for s in sources]
    if sum(lengths) <= 0:
        raise SystemExit("the long-form sources have no duration")
    refs = [_segments_reference(s) for s in sources]
    parts: list[Path] = []
    texts: list[str] = []
    total = 0.0
    while total < minutes * 60 or not parts:
        for s, n, ref in zip(sources, lengths, refs, strict=True):
            parts.append(s)
            texts.append(ref)
            total += n
    out = workdir / "long.flac"
    subprocess.run(["sox", *map(str, parts), str(out)], check=True)
    return out, " ".join(texts), total


def _segments_reference(source: Path) -> str:
    from malsori.bench.plan import long_reference

    reference = long_reference(source)  # NAME.segments.tsv (or NAME.txt), as malsori bench
    if reference is None:
        expected = source.with_suffix(".segments.tsv")
        raise SystemExit(f"no reference for {source}: expected {expected}")
    return reference


def run_engine(
    args: argparse.Namespace, engine: str, files: list[str], workdir: Path
) -> dict[str, Any]:
    listing = workdir / f"files-{engine}.json"
    listing.write_text(json.dumps(files))
    result = workdir / f"result-{engine}.json"
    cmd = [
        sys.executable, __file__, "--worker", "--engine", engine, "--files", str(listing),
        "--result", str(result), "--model", args.model, "--compute-type", args.compute_type,
        "--threads", str(args.threads), "--batch-size", str(args.batch_size),
        "--warmup", args.warmup_file,
    ]  # fmt: skip
    print(f"  {engine} ...", file=sys.stderr, flush=True)
    started = time.perf_counter()
    subprocess.run(cmd, check=True)
    data: dict[str, Any] = json.loads(result.read_text())
    print(
        f"  {engine}: {data['wall']:.1f} s ({time.perf_counter() - started:.0f} s with loading)",
        file=sys.stderr,
        flush=True,
    )
    return data


def score(refs: list[tuple[str, str, str]], texts: dict[str, str]) -> dict[str, float | None]:
    """Corpus WER, CER and CER without spaces over (path, language, reference)."""
    from malsori.evaluation import ErrorCounts, error_counts, normalize_text

    words, chars, nospace = ErrorCounts(), ErrorCounts(), ErrorCounts()
    for path, language, reference in refs:
        ref = normalize_text(reference, language)
        hyp = normalize_text(texts.get(path, ""), language)
        words = words + error_counts(ref, hyp, unit="word")
        chars = chars + error_counts(ref, hyp, unit="char")
        nospace = nospace + error_counts(ref.replace(" ", ""), hyp.replace(" ", ""), unit="char")
    return {"wer": words.rate, "cer": chars.rate, "cer_nospace": nospace.rate}


def table(title: str, audio_s: float, rows: dict[str, dict[str, Any]]) -> list[str]:
    base = rows.get("fw-sequential")
    lines = [
        f"### {title} ({audio_s / 60:.1f} min of audio)",
        "",
        "| engine | wall s | audio s / wall s | vs fw-sequential | WER | CER | CER no-space "
        "| RSS ready MiB | peak RSS MiB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in rows.items():
        speed = audio_s / r["wall"]
        rel = f"{speed / (audio_s / base['wall']):.2f}x" if base else "-"
        lines.append(
            f"| {name} | {r['wall']:.1f} | {speed:.2f} | {rel} | {_pct(r['wer'])} | "
            f"{_pct(r['cer'])} | {_pct(r['cer_nospace'])} | {r['ready_rss_mib']:.0f} | "
            f"{r['peak_rss_mib']:.0f} |"
        )
    return [*lines, ""]


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.2f}%"


def environment(args: argparse.Namespace) -> list[str]:
    from importlib.metadata import version

    versions = ", ".join(f"{p} {version(p)}" for p in ("malsori", "faster-whisper", "ctranslate2"))
    return [
        f"Command: `{shlex.join([Path(sys.executable).name, *sys.argv])}`",
        "",
        f"- model {args.model}, compute type {args.compute_type}, {args.threads} CPU threads for "
        f"every engine, batch size {args.batch_size} (malsori and fw-batched)",
        f"- {versions}; Python {platform.python_version()}; {platform.machine()}, "
        f"{_cpus()} CPUs available",
        "- wall time: the whole workload after an untimed 15 s warm-up clip; model loading "
        "excluded; each engine in its own process. RSS ready: resident memory after loading "
        "and the warm-up (model, Korean analyser); peak RSS: the process's ru_maxrss",
        "",
    ]


def _cpus() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 0


def driver(args: argparse.Namespace) -> int:
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    unknown = sorted(set(engines) - set(ENGINES))
    if unknown:
        raise SystemExit(f"unknown engines: {', '.join(unknown)} (use {', '.join(ENGINES)})")
    if shutil.which("sox") is None:
        raise SystemExit("the benchmark needs sox (warm-up clip, joining long-form files)")
    report: dict[str, Any] = {"command": shlex.join(sys.argv), "workloads": {}}
    lines = environment(args)
    with tempfile.TemporaryDirectory(prefix="bench-batch-") as tmp:
        workdir = Path(tmp)
        workloads: list[tuple[str, list[tuple[str, str, str]], float]] = []
        if args.limit > 0:
            clips = short_set(args.manifest, args.limit)
            refs = [(p, lang, ref) for p, lang, ref, _ in clips]
            title = f"{len(clips)} short files (first {args.limit} of {args.manifest.name})"
            workloads.append((title, refs, sum(c[3] for c in clips)))
        if args.long:
            path, ref, seconds = long_file(args.long, args.long_minutes, workdir)
            names = " + ".join(p.name for p in args.long)
            title = f"one long file ({names}, repeated to {args.long_minutes:g} min or more)"
            workloads.append((title, [(str(path), args.long_language, ref)], seconds))
        if not workloads:
            raise SystemExit("nothing to measure: give --limit > 0 or --long FILE")
        args.warmup_file = str(workdir / "warmup.flac")  # 15 s of the first input, untimed
        subprocess.run(
            ["sox", workloads[0][1][0][0], args.warmup_file, "trim", "0", "15"], check=True
        )
        for title, refs, seconds in workloads:
            print(title, file=sys.stderr)
            rows = {}
            for engine in engines:
                data = run_engine(args, engine, [r[0] for r in refs], workdir)
                rows[engine] = {**score(refs, data["texts"]), **data}
            lines += table(title, seconds, rows)
            report["workloads"][title] = {
                "audio_seconds": seconds,
                "references": {path: ref for path, _, ref in refs},
                "engines": rows,
            }
    print("\n".join(lines))
    if args.json:
        args.json.write_text(json.dumps(report, ensure_ascii=False, indent=2) + "\n")
    return 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--manifest", type=Path, default=Path("../shared/evaldata/manifest.tsv"))
    p.add_argument("--limit", type=int, default=100, help="short clips (0: skip; default 100)")
    p.add_argument(
        "--long",
        type=Path,
        nargs="*",
        default=[],
        metavar="FILE",
        help="long-form files to join (each with a .segments.tsv reference)",
    )
    p.add_argument(
        "--long-minutes",
        type=float,
        default=10.0,
        help="repeat the long-form files until at least this long (default 10)",
    )
    p.add_argument("--long-language", default="ko", help="language of the long file (scoring)")
    p.add_argument(
        "--engines",
        default=",".join(DEFAULT_ENGINES),
        help=f"comma-separated, from {', '.join(ENGINES)}",
    )
    p.add_argument("--model", default="base")
    p.add_argument("--compute-type", default="int8")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument(
        "--json", type=Path, default=None, help="also write the results here, with every hypothesis"
    )
    # internal: one engine in a worker process
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--engine", default=None, help=argparse.SUPPRESS)
    p.add_argument("--files", default=None, help=argparse.SUPPRESS)
    p.add_argument("--result", default=None, help=argparse.SUPPRESS)
    p.add_argument("--warmup", dest="warmup", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.warmup_file = None
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return worker(args) if args.worker else driver(args)


if __name__ == "__main__":
    sys.exit(main())
