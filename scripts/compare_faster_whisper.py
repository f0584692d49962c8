#!/usr/bin/env python3
"""Side by side: malsori's default pipeline against plain faster-whisper, in one run.

Both systems use the same CTranslate2 model folder, int8 on the CPU with the same thread count.
faster-whisper runs with its own defaults (beam 5, no VAD); malsori with ``TranscribeOptions()``.
Each model is loaded once and warmed up on the first clip (not scored); then every clip is run
by both, alternating which goes first, and only the transcription call is timed (audio decoding
included for both). Prints a markdown report; ``--json`` also writes both full reports.

    .venv/bin/python scripts/compare_faster_whisper.py --limit-per-language 40 --languages en,ko
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
from collections.abc import Sequence
from importlib.metadata import version
from pathlib import Path
from typing import Any

from malsori import TranscribeOptions, load_model
from malsori.evaluation import (
    ALL,
    EvaluationReport,
    Hypothesis,
    LanguageReport,
    ManifestEntry,
    Transcriber,
    UtteranceResult,
    compare_reports,
    evaluate_one,
    load_manifest,
    malsori_transcriber,
    select_entries,
)

REPO = Path(__file__).resolve().parents[1]
DEFAULT_MANIFEST = REPO.parent / "shared" / "evaldata" / "manifest.tsv"
SYSTEMS = ("faster-whisper", "malsori")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--manifest", type=Path, default=DEFAULT_MANIFEST,
                   help=f"manifest (default: {DEFAULT_MANIFEST})")  # fmt: skip
    p.add_argument("--limit-per-language", type=int, default=20, metavar="N",
                   help="clips per language, first in manifest order (default: 20)")  # fmt: skip
    p.add_argument("--languages", default=None,
                   help="comma-separated languages (default: all in the manifest)")  # fmt: skip
    p.add_argument("--threads", type=int, default=2, help="CPU threads for both (default: 2)")
    p.add_argument("--model", default="base", help="malsori model name or folder (default: base)")
    p.add_argument("--json", type=Path, default=None, help="also write both reports here")
    p.add_argument("--seed", type=int, default=None,
                   help="seed CTranslate2's random generators first: the clips whose decodes "
                   "fail at temperature 0 are sampled at higher ones, by both systems; a seed "
                   "makes a run repeatable (default: unseeded)")  # fmt: skip
    p.add_argument("--worst", type=int, default=5, metavar="N",
                   help="show the N clips where malsori loses most (default: 5)")  # fmt: skip
    return p.parse_args(argv)


def faster_whisper_transcriber(whisper: Any) -> Transcriber:
    """Plain faster-whisper: ``WhisperModel.transcribe`` with every default, text joined as-is."""

    def transcribe(entry: ManifestEntry) -> Hypothesis:
        segments, info = whisper.transcribe(str(entry.audio))
        text = "".join(s.text for s in segments).strip()  # consumes the lazy generator
        return Hypothesis(text, info.language, True, float(info.duration))

    return transcribe


def run_both(
    entries: list[ManifestEntry], systems: dict[str, Transcriber]
) -> dict[str, list[UtteranceResult]]:
    """Warm both up on the first clip, then run every clip with both, alternating the order."""
    from tqdm import tqdm

    for transcribe in systems.values():
        transcribe(entries[0])  # loads the VAD model, fills caches: not timed, not scored
    results: dict[str, list[UtteranceResult]] = {name: [] for name in systems}
    names = list(systems)
    bar = tqdm(entries, unit="clip", file=sys.stderr, leave=False, disable=None)  # terminal only
    for i, entry in enumerate(bar):
        for name in names if i % 2 == 0 else names[::-1]:
            results[name].append(evaluate_one(entry, systems[name]))
    return results


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.2f}%"


def _num(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def metrics_table(reports: dict[str, EvaluationReport]) -> list[str]:
    lines = [
        "| language | n | system | WER | CER | CER (no spaces) | lang-ID acc | RTFx |",
        "|---|---:|---|---:|---:|---:|---:|---:|",
    ]
    first = next(iter(reports.values()))
    codes = [r.language for r in first.languages] + ([ALL] if len(first.languages) > 1 else [])
    for code in codes:
        for name, report in reports.items():
            r: LanguageReport | None = report.language(code)
            if r is None:
                continue
            lines.append(
                f"| {code} | {r.utterances} | {name} | {_pct(r.wer)} | {_pct(r.cer)} | "
                f"{_pct(r.cer_nospace)} | {_pct(r.language_id_accuracy)} | {_num(r.rtfx)} |"
            )
    return lines


def changes_table(baseline: EvaluationReport, current: EvaluationReport) -> list[str]:
    lines = [
        "| language | metric | faster-whisper | malsori | malsori − faster-whisper |",
        "|---|---|---:|---:|---:|",
    ]
    for c in compare_reports(baseline, current):
        show = _num if c.metric == "rtfx" else _pct
        verdict = {True: " (better)", False: " (worse)", None: ""}[c.improved]
        delta = "–" if c.delta is None else show(c.delta)
        lines.append(
            f"| {c.language} | {c.metric} | {show(c.baseline)} | {show(c.current)} | "
            f"{delta}{verdict} |"
        )
    return lines


def regressions(
    results: dict[str, list[UtteranceResult]], n: int
) -> list[tuple[UtteranceResult, UtteranceResult]]:
    """Clips where malsori makes the most more errors than faster-whisper."""
    pairs = list(zip(results["faster-whisper"], results["malsori"], strict=True))
    pairs.sort(key=lambda p: p[1].score - p[0].score, reverse=True)
    return [p for p in pairs[:n] if p[1].score > p[0].score]


def regressions_section(pairs: list[tuple[UtteranceResult, UtteranceResult]]) -> list[str]:
    lines = ["", "Clips where malsori loses most (normalised text; score: CER no-space for ko, "
             "else WER):", ""]  # fmt: skip
    for fw, ms in pairs:
        lines += [
            f"- `{Path(ms.id).name}` ({ms.language}) faster-whisper {_pct(fw.score)} "
            f"({fw.processing_time:.2f} s), malsori {_pct(ms.score)} ({ms.processing_time:.2f} s)",
            f"  - ref: {ms.reference_normalized}",
            f"  - faster-whisper: {fw.hypothesis_normalized}",
            f"  - malsori: {ms.hypothesis_normalized}",
        ]
    return lines


def command_line() -> str:
    exe = sys.executable
    if exe.startswith(os.getcwd() + os.sep):
        exe = os.path.relpath(exe)
    return shlex.join([exe, *sys.argv])


def environment(args: argparse.Namespace, model: Any, n: int) -> list[str]:
    versions = ", ".join(
        f"{p} {version(p)}" for p in ("malsori", "faster-whisper", "ctranslate2", "jiwer")
    )
    return [
        f"Command: `{command_line()}`",
        "",
        f"- manifest: {args.manifest} ({n} clips: first {args.limit_per_language} per language)",
        f"- model: {model.info.name} ({model.info.path}), {model.info.compute_type} on "
        f"{model.info.device}, {args.threads} threads for both",
        "- faster-whisper: `WhisperModel(path, device='cpu', compute_type='int8', "
        f"cpu_threads={args.threads}).transcribe(path)` (defaults: beam 5, no VAD)",
        "- malsori: `model.transcribe(path, TranscribeOptions())` (defaults)",
        f"- {versions}; Python {platform.python_version()}; {platform.machine()}, "
        f"{os.cpu_count()} CPUs",
        f"- random seed: {args.seed if args.seed is not None else 'none'}",
        "- language detected by both (lang-ID accuracy: detected == manifest language); RTFx = "
        "total audio seconds / total transcription seconds, after one untimed warm-up clip",
        "",
    ]


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    from faster_whisper import WhisperModel

    languages = args.languages.split(",") if args.languages else None
    entries = select_entries(
        load_manifest(args.manifest),
        languages=languages,
        limit_per_language=args.limit_per_language,
    )
    if args.seed is not None:
        import ctranslate2

        # Each model thread seeds its generator from this on its first sampling decode.
        ctranslate2.set_random_seed(args.seed)
    model = load_model(args.model, device="cpu", threads=args.threads)
    whisper = WhisperModel(
        model.info.path, device="cpu", compute_type="int8", cpu_threads=args.threads
    )
    systems = {
        "faster-whisper": faster_whisper_transcriber(whisper),
        "malsori": malsori_transcriber(model, TranscribeOptions()),
    }
    results = run_both(entries, systems)
    reports = {name: EvaluationReport.from_results(results[name]) for name in SYSTEMS}
    lines = [
        *environment(args, model, len(entries)),
        *metrics_table(reports),
        "",
        *changes_table(reports["faster-whisper"], reports["malsori"]),
    ]
    if args.worst:
        lines += regressions_section(regressions(results, args.worst))
    print("\n".join(lines))
    if args.json is not None:
        data = {
            "command": command_line(),
            "reports": {name: r.to_dict() for name, r in reports.items()},
            "changes": [
                c.to_dict() for c in compare_reports(reports["faster-whisper"], reports["malsori"])
            ],
        }
        args.json.write_text(json.dumps(data, ensure_ascii=False, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
