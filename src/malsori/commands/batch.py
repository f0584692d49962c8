"""``malsori batch``: transcribe folders, file lists and manifests into a mirrored output tree."""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from ..batch.inputs import discover
from ..batch.progress import Progress
from ..batch.records import job_lock
from ..batch.runner import ENGINES, LOG_FILE, REPORTED, BatchOptions, load_batch_model, run_batch
from ..batch.summary import FileOutcome
from ..errors import InvalidOptionError, OutputError
from ..writers import FORMATS, parse_formats
from .common import (
    add_decode_arguments,
    add_model_arguments,
    add_subtitle_arguments,
    options_from_args,
    with_subtitle_words,
)
from .speakers import add_diarize_arguments, diarize_options_from_args


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "batch",
        help="transcribe many files (folders, lists, manifests) at high throughput",
        description="Transcribe many audio/video files into OUT_DIR, mirroring the input folders. "
        "Resumable: a re-run skips files whose outputs are complete (--force redoes them). "
        "A file that fails is recorded and the others go on; OUT_DIR/summary.json and "
        f"OUT_DIR/{LOG_FILE} tell what happened. Exit code 0 only when no file failed.",
    )
    p.add_argument("inputs", nargs="*", metavar="INPUT", help="audio/video files or folders")
    i = p.add_argument_group("inputs")
    i.add_argument("--manifest", action="append", default=[], metavar="FILE",
                   help="a list of audio paths: plain (one a line), TSV/CSV (path column or "
                   "first column) or JSONL (audio/path field); repeatable")  # fmt: skip
    i.add_argument("--include", action="append", default=[], metavar="GLOB",
                   help="in folders, only files matching (e.g. '*.wav', 'raw/**'); repeatable "
                   "(default: known audio/video extensions)")  # fmt: skip
    i.add_argument("--exclude", action="append", default=[], metavar="GLOB",
                   help="in folders, skip files matching; repeatable")  # fmt: skip
    add_model_arguments(p)
    add_decode_arguments(p)
    o = p.add_argument_group("output and execution")
    o.add_argument("-o", "--output-dir", required=True, metavar="OUT_DIR",
                   help="where the transcripts go (mirrors the input tree)")  # fmt: skip
    o.add_argument(
        "-f",
        "--output-format",
        default="all",
        help=f"all, or a comma-separated list of {','.join(FORMATS)} (default: all)",
    )
    o.add_argument("--force", action="store_true", help="redo files a previous run finished")
    o.add_argument("--engine", choices=ENGINES, default="packed",
                   help="packed: speech of many files shares batched 30 s windows (fast, the "
                   "default); sequential: one file at a time, as `malsori transcribe`")  # fmt: skip
    o.add_argument("--batch-size", type=int, default=8,
                   help="30 s windows decoded together (packed engine; default: 8)")  # fmt: skip
    o.add_argument("--decode-workers", type=int, default=2,
                   help="threads decoding audio ahead of the model (default: 2)")  # fmt: skip
    o.add_argument(
        "--ray",
        default=None,
        metavar="ADDRESS",
        help="run on a Ray cluster: 'auto', ray://host:10001, or 'local' to start one here; "
        "inputs and OUT_DIR must be on paths every worker sees. Needs pip install "
        "'malsori[cluster]'",
    )
    o.add_argument("--ray-workers", type=int, default=None, metavar="N",
                   help="model replicas (Ray actors) to start (default: one per GPU, or CPU "
                   "node share)")  # fmt: skip
    o.add_argument("-q", "--quiet", action="store_true",
                   help="no progress bar, no per-file messages; only the summary")  # fmt: skip
    add_subtitle_arguments(p)
    add_diarize_arguments(p)
    p.set_defaults(handler=run_batch_command)


@contextlib.contextmanager
def log_to_file(path: Path, verbose: bool) -> Iterator[None]:
    """Log malsori's INFO lines (DEBUG with --verbose) to ``path`` during the job.

    The console keeps showing only what it showed before (warnings and errors), less the files
    that failed: the command shows those itself, once.
    """
    log = logging.getLogger("malsori")
    try:
        handler = logging.FileHandler(path, encoding="utf-8")
    except OSError as e:
        raise OutputError(f"cannot write the log file {path}: {e.strerror or e}") from e
    handler.setLevel(logging.DEBUG if verbose else logging.INFO)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    console_level = log.getEffectiveLevel()
    old_level, old_propagate = log.level, log.propagate
    console = logging.StreamHandler(sys.stderr)
    console.setLevel(console_level)
    console.addFilter(lambda record: not getattr(record, REPORTED, False))
    console.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    log.addHandler(handler)
    log.addHandler(console)
    log.propagate = False
    log.setLevel(min(console_level, handler.level))
    try:
        yield
    finally:
        log.removeHandler(handler)
        log.removeHandler(console)
        handler.close()
        log.setLevel(old_level)
        log.propagate = old_propagate


def _reporter(progress: Progress, quiet: bool) -> Callable[[FileOutcome], None]:
    def report(outcome: FileOutcome) -> None:
        if quiet or outcome.status != "failed":
            return
        line = f"malsori: failed: {outcome.failure}"
        if progress.active:
            progress.write(line)
        else:
            print(line, file=sys.stderr, flush=True)

    return report


def run_batch_command(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    formats = parse_formats(args.output_format)
    options = with_subtitle_words(options_from_args(args), formats)
    diarize = diarize_options_from_args(args)
    if diarize is not None:
        if args.ray:
            raise InvalidOptionError("--diarize is not available with --ray yet")
        options = options.replace(word_timestamps=True)  # speakers are given word by word
    batch = BatchOptions(
        output_dir=Path(args.output_dir),
        formats=formats,
        engine=args.engine,
        force=args.force,
        batch_size=args.batch_size,
        decode_workers=args.decode_workers,
        diarize=diarize,
    )
    items = discover(
        args.inputs, manifests=args.manifest, include=args.include, exclude=args.exclude
    )
    # the lock first (it creates the folder): a second job on this folder stops before it loads
    # a model or logs a line
    with job_lock(batch.output_dir), log_to_file(batch.output_dir / LOG_FILE, args.verbose):
        logging.getLogger(__name__).info("malsori batch: %d input files", len(items))
        progress = Progress(enabled=not args.quiet)
        report = _reporter(progress, args.quiet)
        if args.ray:
            from ..batch.cluster import RayOptions, run_on_ray

            ray_options = RayOptions(
                address=args.ray,
                model=args.model,
                device=args.device,
                compute_type=args.compute_type,
                threads=args.threads,
                workers=args.ray_workers,
            )
            summary = run_on_ray(
                items, options, batch, ray_options,
                started=started, progress=progress, on_outcome=report,
            )  # fmt: skip
        else:
            model = load_batch_model(
                args.model, device=args.device, compute_type=args.compute_type,
                threads=args.threads, engine=args.engine,
            )  # fmt: skip
            summary = run_batch(
                model, items, options, batch,
                progress=progress, on_outcome=report, started=started,
            )  # fmt: skip
    print(summary.render(), file=sys.stderr)
    print(f"summary: {batch.output_dir / 'summary.json'}", file=sys.stderr)
    return summary.exit_code
