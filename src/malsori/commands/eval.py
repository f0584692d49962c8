"""``malsori eval``: error rates, language-ID accuracy and speed on a manifest of clips."""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import os
import platform
import shlex
import sys
from typing import Any

from ..errors import InputError, InvalidOptionError
from ..evaluation import (
    EvaluationReport,
    LanguageReport,
    MetricChange,
    UtteranceResult,
    compare_reports,
    evaluate,
    load_manifest,
    load_report,
    malsori_transcriber,
    select_entries,
    write_report,
)
from .common import (
    add_decode_arguments,
    add_model_arguments,
    load_model_from_args,
    options_from_args,
)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "eval",
        help="measure accuracy and speed on a manifest of clips with reference texts",
        description="Transcribe every clip of a manifest (TSV path<TAB>language<TAB>text, CSV or "
        "JSONL; paths relative to the manifest) and report WER, CER, CER without spaces, "
        "language-ID accuracy and RTFx per language. The language is detected unless "
        "--use-manifest-language or --language is given.",
    )
    p.add_argument("manifest", metavar="MANIFEST", help="manifest file (.tsv, .csv or .jsonl)")
    add_model_arguments(p)
    add_decode_arguments(p)
    s = p.add_argument_group("selection and report")
    s.add_argument("--languages", default=None,
                   help="comma-separated languages to keep (default: all)")  # fmt: skip
    s.add_argument("--limit", type=int, default=None, help="evaluate at most N clips in all")
    s.add_argument("--limit-per-language", type=int, default=None, metavar="N",
                   help="evaluate at most N clips of each language")  # fmt: skip
    s.add_argument(
        "--use-manifest-language",
        action="store_true",
        help="decode in the manifest's language instead of detecting it (no language-ID score)",
    )
    s.add_argument("--report", default=None, metavar="PATH", help="write the JSON report here")
    s.add_argument("--compare", default=None, metavar="PATH",
                   help="an earlier JSON report to compare with")  # fmt: skip
    s.add_argument("--worst", type=int, default=10, metavar="N",
                   help="show the N clips with the most errors (default: 10; 0: none)")  # fmt: skip
    s.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(handler=run_eval)


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f}%"


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def format_table(report: EvaluationReport) -> str:
    """One row per language and one pooling them all: n, WER, CER, CER without spaces, ..."""
    header = (
        f"{'language':<9}{'n':>6}{'WER':>9}{'WER-resp':>10}{'CER':>9}{'CER-nosp':>10}"
        f"{'LID acc':>9}{'RTFx':>8}"
    )
    lines = [header, "-" * len(header)]
    rows: list[LanguageReport] = list(report.languages)
    if len(rows) > 1:
        rows.append(report.overall)
    for r in rows:
        failed = f"  ({r.failures} failed)" if r.failures else ""
        lines.append(
            f"{r.language:<9}{r.utterances:>6}{_percent(r.wer):>9}{_percent(r.wer_respaced):>10}"
            f"{_percent(r.cer):>9}"
            f"{_percent(r.cer_nospace):>10}{_percent(r.language_id_accuracy):>9}"
            f"{_number(r.rtfx):>8}{failed}"
        )
    return "\n".join(lines)


def format_worst(results: list[UtteranceResult]) -> str:
    lines = [
        f"worst {len(results)} utterance(s) (CER without spaces for ko/ja/zh/th, WER otherwise):"
    ]
    for r in results:
        lang = r.language
        if r.detected_language not in (None, r.language):
            lang = f"{r.language}->{r.detected_language}"  # detected as another language
        lines.append(f"{_percent(r.score):>8}  {lang:<6} {r.id}")
        lines.append(f"{'':>10}ref: {r.reference_normalized}")
        lines.append(f"{'':>10}hyp: {r.hypothesis_normalized}")
        if r.error:
            lines.append(f"{'':>10}error: {r.error}")
    return "\n".join(lines)


def format_changes(changes: list[MetricChange], baseline: str) -> str:
    lines = [
        f"compared with {baseline} (change = this run - baseline; + better, - worse):",
        f"{'language':<9}{'metric':<22}{'baseline':>10}{'this run':>10}{'change':>10}",
    ]
    for c in changes:
        show = _number if c.metric == "rtfx" else _percent
        mark = {True: " +", False: " -", None: ""}[c.improved]
        delta = "-" if c.delta is None else show(c.delta)
        lines.append(
            f"{c.language:<9}{c.metric:<22}{show(c.baseline):>10}{show(c.current):>10}"
            f"{delta:>10}{mark}"
        )
    return "\n".join(lines)


def _meta(args: argparse.Namespace, model: Any, options: Any, n: int) -> dict[str, Any]:
    arguments = {k: v for k, v in vars(args).items() if k not in ("handler", "subparsers")}
    return {
        "command_line": shlex.join(sys.argv),
        "arguments": arguments,
        "manifest": os.path.abspath(args.manifest),
        "utterances": n,
        "model": dataclasses.asdict(model.info),
        "options": options.to_dict(),
        "use_manifest_language": args.use_manifest_language,
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
    }


def _entries(args: argparse.Namespace) -> list[Any]:
    languages = None
    if args.languages is not None:
        languages = [code.strip() for code in args.languages.split(",") if code.strip()]
        if not languages:
            raise InvalidOptionError("--languages needs at least one language code")
    entries = select_entries(
        load_manifest(args.manifest),
        languages=languages,
        limit=args.limit,
        limit_per_language=args.limit_per_language,
    )
    if not entries:
        raise InvalidOptionError(f"no clip of {args.manifest} matches the selection")
    return entries


def run_eval(args: argparse.Namespace) -> int:
    if args.worst < 0:
        raise InvalidOptionError("--worst cannot be negative")
    options = options_from_args(args)
    if args.use_manifest_language and options.language is not None:
        raise InvalidOptionError("give either --language or --use-manifest-language, not both")
    entries = _entries(args)
    baseline = load_report(args.compare) if args.compare else None  # fail before the long run
    model = load_model_from_args(args)
    options.check_model(multilingual=model.multilingual, model_name=model.name)
    transcribe = malsori_transcriber(
        model, options, use_manifest_language=args.use_manifest_language
    )
    from tqdm import tqdm

    with tqdm(
        total=len(entries),
        unit="clip",
        desc="eval",
        file=sys.stderr,
        leave=False,
        disable=True if args.quiet else None,  # None: only on a terminal
    ) as bar:
        report = evaluate(
            entries,
            transcribe,
            meta=_meta(args, model, options, len(entries)),
            on_result=lambda _: bar.update(1),
        )
    print(f"{model.name} on {args.manifest}: {report.overall.utterances} clips, "
          f"{report.overall.audio_seconds:.0f} s of audio")  # fmt: skip
    print(format_table(report))
    worst = report.worst(args.worst) if args.worst else []
    if worst:
        print()
        print(format_worst(worst))
    if baseline is not None:
        print()
        print(format_changes(compare_reports(baseline, report), args.compare))
    if args.report:
        path = write_report(report, args.report)
        print(f"\nwrote {path}", file=sys.stderr)
    # Clips that could not be read were scored as empty transcripts; the exit code says so.
    return 0 if report.overall.failures == 0 else InputError.exit_code
