#!/usr/bin/env python3
"""Size, speed and accuracy of one model in every precision, on both engines; and the
CTranslate2 -> transformers equality check on real clips.

For MODEL (default ``base``): CTranslate2 copies in int8, int16, float16, bfloat16 and float32
(``malsori.quantize.quantize_ct2``, registered as MODEL-TYPE), each run through malsori's
pipeline with greedy decoding in the clip's language; the same weights in ``transformers``
(float32, and PyTorch dynamic int8). Clips: the first N English and N Korean clips of the dev
set. CPU precisions this machine cannot compute in (float16, bfloat16 here) are stored that way
and computed in float32: their size changes, their speed does not.

Writes ``bench-results/quantize/{results.json,table.txt}``.

    .venv/bin/python scripts/bench_quantize.py [--model base] [--per-language 12] [--threads 2]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import statistics
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import ctranslate2

from malsori.finetune.data import load_audio
from malsori.finetune.equality import compare_engines
from malsori.finetune.hf_engine import EngineOptions, TransformersEngine
from malsori.manifest import ManifestEntry, load_manifest, select_entries
from malsori.model import Model, load_model
from malsori.quantize import (
    PLAIN_DECODING,
    Measurement,
    format_measurements,
    measure_ct2,
    measure_transformers,
    quantize_ct2,
)

PRECISIONS = ("int8", "int16", "float16", "bfloat16", "float32")


def interleaved_speed(
    model: str, entries: list[ManifestEntry], rounds: int, threads: int
) -> dict[str, float]:
    """Median RTFx of every engine/precision, timed round-robin on the same clips, so that load
    from other processes on a shared machine falls on all of them alike."""
    cpu_types = ctranslate2.get_supported_compute_types("cpu")
    runners: dict[str, Callable[[ManifestEntry], object]] = {}
    for precision in PRECISIONS:
        compute = precision if precision in cpu_types else "float32"
        loaded = load_model(f"{model}-{precision}", compute_type=compute, threads=threads)
        runners[f"ctranslate2 {precision}/{compute}"] = partial(_ct2_run, loaded)
    for dynamic in (False, True):
        engine = TransformersEngine.load(
            model, EngineOptions(dynamic_int8=dynamic, threads=threads)
        )
        runners[f"transformers {'dynamic int8' if dynamic else 'float32'}"] = engine.transcriber()
    audio_s = sum(load_audio(e.audio).size for e in entries) / 16000
    times: dict[str, list[float]] = {name: [] for name in runners}
    for run in runners.values():  # warm-up
        run(entries[0])
    for _ in range(rounds):
        for name, run in runners.items():
            started = time.perf_counter()
            for e in entries:
                run(e)
            times[name].append(time.perf_counter() - started)
    return {name: round(audio_s / statistics.median(t), 2) for name, t in times.items()}


def _ct2_run(model: Model, entry: ManifestEntry) -> object:
    return model.transcribe(entry.audio, PLAIN_DECODING, language=entry.language)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="base")
    p.add_argument("--evaldata", type=Path, default=Path("../shared/evaldata"))
    p.add_argument("--per-language", type=int, default=12)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", type=Path, default=Path("bench-results/quantize"))
    p.add_argument("--skip-transformers", action="store_true")
    p.add_argument(
        "--speed-rounds",
        type=int,
        default=0,
        help="only time every engine round-robin on the first 4 clips of each language, N "
        "rounds (run the full benchmark first: it creates the MODEL-TYPE copies)",
    )
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    logging.getLogger("faster_whisper").setLevel(logging.WARNING)
    if not (args.evaldata / "manifest.tsv").is_file():
        print(f"no dev set at {args.evaldata}", file=sys.stderr)
        return 2
    entries = select_entries(
        load_manifest(args.evaldata / "manifest.tsv"),
        languages=["en", "ko"],
        limit_per_language=args.per_language,
    )
    if args.speed_rounds:
        few = [e for e in entries if e.language == "en"][:4]
        few += [e for e in entries if e.language == "ko"][:4]
        speed = interleaved_speed(args.model, few, args.speed_rounds, args.threads)
        lines = [f"{name:<32}{rtfx:>8.2f}" for name, rtfx in speed.items()]
        text = f"median RTFx over {args.speed_rounds} interleaved rounds, {len(few)} clips\n"
        text += "\n".join(lines) + "\n"
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "speed.txt").write_text(text, encoding="utf-8")
        print(text)
        return 0
    cpu_types = ctranslate2.get_supported_compute_types("cpu")
    rows: list[Measurement] = []
    for precision in PRECISIONS:
        q = quantize_ct2(args.model, precision, force=True)
        compute = precision if precision in cpu_types else "float32"
        row = measure_ct2(str(q.path), entries, compute_type=compute, threads=args.threads)
        rows.append(dataclasses.replace(row, precision=f"{precision}/{compute}"))
        print(format_measurements(rows[-1:]), flush=True)
    if not args.skip_transformers:
        for dynamic in (False, True):
            rows.append(
                measure_transformers(
                    args.model, entries, dynamic_int8=dynamic, threads=args.threads
                )
            )
            print(format_measurements(rows[-1:]), flush=True)
    clips = [(e.audio, e.language) for e in entries]
    equality = compare_engines(args.model, clips, threads=args.threads)
    same = sum(r.equal for r in equality)
    table = format_measurements(rows)
    summary = (
        f"{table}\n\nprecision = stored/computed (CTranslate2 on CPU computes in "
        f"{', '.join(sorted(cpu_types))})\n"
        f"CTranslate2 float32 vs converted transformers, greedy token ids: "
        f"{same}/{len(equality)} clips identical\n"
    )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "table.txt").write_text(summary, encoding="utf-8")
    result = {
        "model": args.model,
        "clips": len(entries),
        "rows": [r.to_dict() for r in rows],
        "equality": [
            {
                "clip": r.clip,
                "language": r.language,
                "equal": r.equal,
                "ct2": r.ct2_text,
                "transformers": r.hf_text,
            }
            for r in equality
        ],
    }
    (args.out / "results.json").write_text(
        json.dumps(result, indent=2, ensure_ascii=False), encoding="utf-8"
    )
    print(summary)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
