"""``malsori bench MANIFEST``: every engine and precision on the same audio, side by side."""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path

from ..registry import DEFAULT_MODEL as DEFAULT_MODEL_NAME


def register(sub: argparse._SubParsersAction) -> None:
    from ..bench.configs import CONFIGS, EXTRA_CONFIGS, ONNX_PYTHON_ENV

    p = sub.add_parser(
        "bench",
        help="benchmark engines and precisions: speed, memory, size, accuracy",
        description="Run every configuration (malsori's pipeline and packed engine, "
        "faster-whisper, CTranslate2 precisions, openai-whisper, transformers, whisper.cpp, "
        "ONNX Runtime, GPTQ) on the manifest's clips and on one long recording, alternating "
        "configurations with a warm-up, each in its own process; report RTFx, wall time, peak "
        "memory, size on disk, load time, WER/CER (malsori eval's normalisation) and "
        "language-ID accuracy as a markdown table, JSON and PNG charts. A configuration that "
        "cannot run here is reported as skipped with the reason. Configurations: "
        + ", ".join(CONFIGS),
    )
    p.add_argument("manifest", metavar="MANIFEST", help="manifest of clips (.tsv, .csv, .jsonl)")
    p.add_argument("-o", "--output-dir", required=True, help="folder for the table, JSON, charts")
    p.add_argument("--configs", default=None, metavar="NAME,...",
                   help="configurations to run, or all (default: all but the slow variants "
                   f"{', '.join(EXTRA_CONFIGS)})")  # fmt: skip
    p.add_argument("--long", default=None, metavar="FILE",
                   help="one long recording (scored against FILE.segments.tsv or FILE.txt "
                   "when present and --long-language is given)")  # fmt: skip
    p.add_argument("--long-language", default=None, metavar="LANG",
                   help="the long recording's language, for scoring")  # fmt: skip
    p.add_argument("--limit", type=int, default=None, help="use the first N clips")
    p.add_argument("--repeats", type=int, default=2, help="timed runs of each workload (2)")
    p.add_argument("--threads", type=int, default=0, help="CPU threads (default: all)")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    p.add_argument("-m", "--model", default=DEFAULT_MODEL_NAME,
                   help=f"the packaged model every configuration runs (default: "
                   f"{DEFAULT_MODEL_NAME})")  # fmt: skip
    p.add_argument("--onnx-python", default=os.environ.get(ONNX_PYTHON_ENV) or None,
                   metavar="PATH",
                   help="the Python of a separate environment with optimum-onnx, which runs the "
                   "onnx and onnx-int8 configurations (optimum-onnx pins transformers<4.58, "
                   "malsori needs >=5); without it they are skipped. Make one with: "
                   "python3 -m venv /work/onnx-venv && /work/onnx-venv/bin/pip install "
                   "'optimum-onnx[onnxruntime]' (default: $" + ONNX_PYTHON_ENV + ")")  # fmt: skip
    p.add_argument("--no-probe", action="store_true", help="skip the GEMM throughput probe")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(handler=run_bench)


def run_bench(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from ..bench.plan import BenchOptions, benchmark
    from ..bench.report import markdown, write_all

    options = BenchOptions(
        manifest=Path(args.manifest),
        output_dir=Path(args.output_dir),
        configs=tuple(args.configs.split(",")) if args.configs is not None else (),
        model=args.model,
        long=None if args.long is None else Path(args.long),
        long_language=args.long_language,
        limit=args.limit,
        repeats=args.repeats,
        threads=args.threads,
        device=args.device,
        probe=not args.no_probe,
        onnx_python=None if args.onnx_python is None else Path(args.onnx_python),
        extra_meta={"command_line": shlex.join(["malsori", *sys.argv[1:]])},
    )
    with tqdm(desc="bench", unit="step", file=sys.stderr, leave=False,
              disable=True if args.quiet else None) as bar:  # fmt: skip

        def step(what: str) -> None:
            bar.set_postfix_str(what)
            bar.update(1)

        report = benchmark(options, on_step=step)
    paths = write_all(report, options.output_dir)
    print(markdown(report))
    print(f"wrote {', '.join(str(p) for p in paths)}", file=sys.stderr)
    return 0
