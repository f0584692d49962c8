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
    p.add_argument("--exclude", action="append", default=[], metavar="TEXT",
                   help="leave out clips whose path contains TEXT (repeatable): e.g. the "
                   "speaker rescoring was tuned on, /kih/")  # fmt: skip
    p.add_argument("--long", type=Path, default=None, metavar="FILE",
                   help="also time both on this long recording (not scored)")  # fmt: skip
    p.add_argument(
        "--repeats",
        type=int,
        default=3,
        help="runs of the long recording by each system, alternating (default: 3)",
    )
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
        "| language | n | system | WER | WER respaced | CER | CER (no spaces) | lang-ID acc "
        "| RTFx |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    first = next(iter(reports.values()))
    codes = [r.language for r in first.languages] + ([ALL] if len(first.languages) > 1 else [])
    for code in codes:
        for name, report in reports.items():
            r: LanguageReport | None = report.language(code)
            if r is None:
                continue
            lines.append(
                f"| {code} | {r.utterances} | {name} | {_pct(r.wer)} | {_pct(r.wer_respaced)} | "
                f"{_pct(r.cer)} | "
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


def _rate(results: Sequence[UtteranceResult], unit: str) -> float:
    counts = [getattr(r, unit) for r in results]
    return sum(c.errors for c in counts) / max(1, sum(c.length for c in counts))


def paired_bootstrap(
    base: Sequence[UtteranceResult], new: Sequence[UtteranceResult], unit: str, rounds: int = 2000
) -> tuple[float, float, float]:
    """Relative change of the error rate (``unit``: words, chars_nospace, words_respaced) from
    ``base`` to ``new`` with a 95 % interval, resampling clips with both systems' results kept
    together (a paired bootstrap)."""
    import random

    rng = random.Random(0)
    n = len(base)
    change = (_rate(new, unit) - _rate(base, unit)) / max(_rate(base, unit), 1e-9)
    draws = []
    for _ in range(rounds):
        idx = [rng.randrange(n) for _ in range(n)]
        b = _rate([base[i] for i in idx], unit)
        draws.append((_rate([new[i] for i in idx], unit) - b) / max(b, 1e-9))
    draws.sort()
    return 100 * change, 100 * draws[int(0.025 * rounds)], 100 * draws[int(0.975 * rounds)]


def bootstrap_table(results: dict[str, list[UtteranceResult]]) -> list[str]:
    """malsori against faster-whisper per subset (the clips' folder) and language, each change
    with its paired-bootstrap interval: CER without spaces for Korean, WER, and WER with the
    hypothesis spaced as the reference."""
    fw, ms = results["faster-whisper"], results["malsori"]
    groups: dict[str, list[int]] = {}
    for i, r in enumerate(fw):
        groups.setdefault(f"{r.language} (all)", []).append(i)
        groups.setdefault(f"{r.language} {Path(r.id).parent.name}", []).append(i)
    lines = [
        "Change from faster-whisper to malsori (relative, 95 % paired-bootstrap interval):",
        "",
        "| subset | clips | CER no spaces (fw → malsori) | change | WER (fw → malsori) | change "
        "| WER respaced (fw → malsori) |",
        "|---|---:|---|---|---|---|---|",
    ]
    for name, idx in sorted(groups.items()):
        base, new = [fw[i] for i in idx], [ms[i] for i in idx]
        cells = []
        for unit in ("chars_nospace", "words"):
            if unit == "chars_nospace" and not name.startswith(("ko", "ja", "zh")):
                cells += ["–", "–"]
                continue
            c, lo, hi = paired_bootstrap(base, new, unit)
            cells += [
                f"{100 * _rate(base, unit):.2f} → {100 * _rate(new, unit):.2f}",
                f"{c:+.1f} % ({lo:+.1f} … {hi:+.1f})",
            ]
        resp = (
            f"{100 * _rate(base, 'words_respaced'):.2f} → {100 * _rate(new, 'words_respaced'):.2f}"
        )
        lines.append(f"| {name} | {len(idx)} | {' | '.join(cells)} | {resp} |")
    return lines


def long_file(path: Path, systems: dict[str, Transcriber], repeats: int) -> list[str]:
    """Each system on one long recording, ``repeats`` times, alternating which goes first."""
    import statistics
    import time

    from malsori.audio import probe

    entry = ManifestEntry(path, "ko" if "ko" in path.name else "en", "")
    times: dict[str, list[float]] = {name: [] for name in systems}
    names = list(systems)
    for i in range(repeats):
        for name in names if i % 2 == 0 else names[::-1]:
            start = time.perf_counter()
            systems[name](entry)
            times[name].append(time.perf_counter() - start)
    duration = probe(path).declared_duration or 0.0
    lines = [f"Long recording `{path.name}` ({duration:.0f} s), {repeats} runs each, alternating:",
             "", "| system | median s | runs (s) | RTFx |", "|---|---:|---|---:|"]  # fmt: skip
    for name, ts in times.items():
        med = statistics.median(ts)
        runs = ", ".join(f"{t:.1f}" for t in ts)
        lines.append(f"| {name} | {med:.1f} | {runs} | {duration / med:.1f} |")
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
        [
            e
            for e in load_manifest(args.manifest)
            if not any(x in str(e.audio) for x in args.exclude)
        ],
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
    lines += ["", *bootstrap_table(results)]
    if args.worst:
        lines += regressions_section(regressions(results, args.worst))
    print("\n".join(lines), flush=True)  # before the long recording: nothing is lost if it fails
    if args.json is not None:
        data = {
            "command": command_line(),
            "reports": {name: r.to_dict() for name, r in reports.items()},
            "changes": [
                c.to_dict() for c in compare_reports(reports["faster-whisper"], reports["malsori"])
            ],
        }
        args.json.write_text(json.dumps(data, ensure_ascii=False, indent=2) + "\n")
    if args.long is not None:
        print("\n".join(["", *long_file(args.long, systems, args.repeats)]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
