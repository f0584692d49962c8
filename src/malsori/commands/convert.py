"""``malsori convert to-hf|to-ct2``: CTranslate2 <-> Hugging Face ``transformers`` Whisper."""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from ..errors import InvalidOptionError, require_extra
from ..finetune.hf_to_ct2 import QUANTIZATIONS


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "convert",
        help="convert models between CTranslate2 and Hugging Face transformers",
        description="to-hf writes a CTranslate2 model (name or folder) as a transformers "
        "WhisperForConditionalGeneration folder with tokenizer, feature extractor and generation "
        "config; to-ct2 converts such a folder back with ctranslate2's converter. Needs the "
        "finetune extra (pip install 'malsori[finetune]').",
    )
    csub = p.add_subparsers(dest="convert_command", metavar="DIRECTION", required=True)
    hf = csub.add_parser("to-hf", help="CTranslate2 -> Hugging Face transformers folder")
    hf.add_argument("model", metavar="MODEL", help="model name (base, a fine-tuned name) or folder")
    hf.add_argument("-o", "--output-dir", required=True, help="the transformers folder to write")
    hf.add_argument("--force", action="store_true", help="replace an existing output folder")
    hf.set_defaults(handler=run_to_hf)
    ct2 = csub.add_parser("to-ct2", help="Hugging Face transformers folder -> CTranslate2")
    ct2.add_argument("hf_dir", metavar="HF_DIR", help="a transformers Whisper folder")
    where = ct2.add_mutually_exclusive_group(required=True)
    where.add_argument("-o", "--output-dir", help="write the CTranslate2 folder here")
    where.add_argument("--name", help="register it in malsori's model cache under this name")
    ct2.add_argument(
        "--quantization",
        choices=QUANTIZATIONS,
        default="int8",
        help="weight precision (default: int8)",
    )
    ct2.add_argument("--force", action="store_true", help="replace an existing model")
    ct2.set_defaults(handler=run_to_ct2)


def run_to_hf(args: argparse.Namespace) -> int:
    require_extra("finetune", ("torch", "transformers"), "malsori convert")
    from ..finetune.ct2_to_hf import convert_ct2_to_hf

    out = Path(args.output_dir)
    if out.exists() and any(out.iterdir()) and not args.force:
        raise InvalidOptionError(f"{out} exists and is not empty (use --force)")
    path = convert_ct2_to_hf(args.model, out)
    print(f"{args.model}: transformers model written to {path}")
    return 0


def run_to_ct2(args: argparse.Namespace) -> int:
    require_extra("finetune", ("torch", "transformers"), "malsori convert")
    from ..finetune.hf_to_ct2 import convert_hf_to_ct2
    from ..finetune.store import check_name, register_model

    if args.output_dir:
        path = convert_hf_to_ct2(
            args.hf_dir, args.output_dir, quantization=args.quantization, force=args.force
        )
        print(f"{args.hf_dir}: CTranslate2 {args.quantization} model written to {path}")
        return 0
    check_name(args.name)
    with tempfile.TemporaryDirectory(prefix="malsori-convert-") as work:
        converted = convert_hf_to_ct2(
            args.hf_dir, Path(work) / "model", quantization=args.quantization, force=True
        )
        info = {
            "converted_from": str(Path(args.hf_dir).resolve()),
            "quantization": args.quantization,
        }
        path = register_model(
            converted, args.name, source="convert", info=info, force=args.force, move=True
        )
    print(f"{args.hf_dir}: registered as {args.name} ({path}); use --model {args.name}")
    return 0
