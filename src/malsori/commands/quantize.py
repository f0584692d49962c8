"""``malsori quantize MODEL --to TYPE``: a model in another precision, and what it costs."""

from __future__ import annotations

import argparse

from ..errors import InvalidOptionError, require_extra
from ..quantize import CT2_TYPES, ENGINES


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "quantize",
        help="write a model in another precision (int8, float16, ...) and compare",
        description="ctranslate2 engine (default): rewrite MODEL's weights as --to and register "
        "the result (default name MODEL-TYPE) so --model NAME uses it. transformers engine: save "
        "MODEL as a transformers folder (-o) whose int8 is PyTorch dynamic quantization, for "
        "comparison. --eval MANIFEST measures size, WER/CER and speed of the result (greedy, in "
        "each clip's language).",
    )
    p.add_argument("model", metavar="MODEL", help="model name or folder")
    p.add_argument("--to", required=True, choices=CT2_TYPES, help="target precision")
    p.add_argument("--engine", choices=ENGINES, default="ctranslate2")
    p.add_argument("--name", default=None, help="registered name (ctranslate2 engine)")
    p.add_argument(
        "-o",
        "--output-dir",
        default=None,
        help="write a folder instead of registering (required for transformers)",
    )
    p.add_argument("--force", action="store_true", help="replace an existing model or folder")
    p.add_argument(
        "--eval",
        default=None,
        metavar="MANIFEST",
        help="measure the result (and the source) on this manifest",
    )
    p.add_argument("--limit", type=int, default=None, help="measure at most N clips")
    p.add_argument("--threads", type=int, default=0, help="CPU threads (default: all)")
    p.set_defaults(handler=run_quantize)


def run_quantize(args: argparse.Namespace) -> int:
    from ..quantize import (
        check_target,
        format_measurements,
        measure_ct2,
        measure_transformers,
        quantize_ct2,
        quantize_transformers,
    )

    check_target(args.engine, args.to)
    if args.engine == "transformers":
        require_extra("finetune", ("torch", "transformers"), "the transformers engine")
        if not args.output_dir:
            raise InvalidOptionError("--engine transformers needs -o/--output-dir")
        result = quantize_transformers(args.model, args.to, args.output_dir, force=args.force)
    else:
        result = quantize_ct2(
            args.model, args.to, name=args.name, output_dir=args.output_dir, force=args.force
        )
    where = f"registered as {result.name}" if result.name else "written"
    print(
        f"{args.model} ({result.source_dtype}) -> {result.engine} {result.quantization}: "
        f"{where} at {result.path} ({result.size_bytes / 1e6:.1f} MB)"
    )
    if args.eval:
        from ..manifest import load_manifest, select_entries

        entries = select_entries(load_manifest(args.eval), limit=args.limit)
        rows = [measure_ct2(args.model, entries, threads=args.threads)]
        if args.engine == "transformers":
            rows.append(
                measure_transformers(
                    str(result.path), entries, dynamic_int8=args.to == "int8", threads=args.threads
                )
            )
        else:
            rows.append(measure_ct2(str(result.path), entries, threads=args.threads))
        print(format_measurements(rows))
    return 0
