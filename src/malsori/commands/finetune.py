"""``malsori finetune``: own data in, a fine-tuned CTranslate2 model out, registered by name."""

from __future__ import annotations

import argparse

from ..errors import require_extra
from ..registry import DEFAULT_MODEL


def register(sub: argparse._SubParsersAction) -> None:
    from ..finetune.options import FinetuneOptions

    d = FinetuneOptions()
    p = sub.add_parser(
        "finetune",
        help="fine-tune a model on your own clips (LoRA or full) and register the result",
        description="Fine-tune Whisper on a manifest (TSV/CSV/JSONL: audio, language, text) or a "
        "folder of clips with .txt transcripts; measure WER/CER on the eval set before and "
        "after; export (LoRA merged) to CTranslate2 and register it as NAME, so "
        "`malsori transcribe --model NAME`, batch and serve use it. Every unusable clip is "
        "reported with its line before training starts. Needs the finetune extra.",
    )
    p.add_argument("--data", required=True, metavar="TRAIN", help="training manifest or folder")
    p.add_argument("--eval", required=True, metavar="EVAL", help="evaluation manifest or folder")
    p.add_argument(
        "--base",
        default=DEFAULT_MODEL,
        help=f"model to start from: name, CTranslate2 or transformers folder "
        f"(default: {DEFAULT_MODEL})",
    )
    p.add_argument(
        "-o",
        "--output",
        required=True,
        metavar="NAME",
        help="name to register the fine-tuned model under",
    )
    p.add_argument("--method", choices=("lora", "full"), default=d.method)
    p.add_argument(
        "-l",
        "--language",
        default=None,
        help="language of a folder's clips (manifests name their own)",
    )
    lo = p.add_argument_group("LoRA")
    lo.add_argument("--lora-rank", type=int, default=d.lora_rank)
    lo.add_argument("--lora-alpha", type=int, default=d.lora_alpha)
    lo.add_argument("--lora-dropout", type=float, default=d.lora_dropout)
    lo.add_argument(
        "--lora-targets",
        default=",".join(d.lora_targets),
        help="comma-separated module names, or one regular expression such as "
        r"'.*decoder.*\.(q_proj|v_proj)' (default: q_proj,v_proj)",
    )
    t = p.add_argument_group("training")
    t.add_argument("--epochs", type=float, default=d.epochs)
    t.add_argument(
        "--max-steps",
        type=int,
        default=d.max_steps,
        help="stop after N optimizer steps (overrides --epochs)",
    )
    t.add_argument(
        "--learning-rate",
        type=float,
        default=None,
        help="default: 1e-3 for LoRA, 1e-5 for full fine-tuning",
    )
    t.add_argument("--warmup-steps", type=int, default=d.warmup_steps)
    t.add_argument("--batch-size", type=int, default=d.batch_size)
    t.add_argument("--gradient-accumulation", type=int, default=d.gradient_accumulation)
    t.add_argument(
        "--eval-steps",
        type=int,
        default=d.eval_steps,
        help="evaluate every N steps (default: 0, once per epoch)",
    )
    t.add_argument(
        "--patience",
        type=int,
        default=d.patience,
        help="early stopping: evaluations without a better WER (0: off)",
    )
    t.add_argument(
        "--generation-max-length",
        type=int,
        default=d.generation_max_length,
        help="longest greedy decode (tokens) when measuring WER during training",
    )
    t.add_argument("--device", choices=("auto", "cpu", "cuda"), default=d.device)
    t.add_argument("--seed", type=int, default=d.seed)
    t.add_argument(
        "--quantization",
        default=d.quantization,
        help="precision of the exported model (default: int8)",
    )
    t.add_argument(
        "--no-before-after",
        dest="before_after",
        action="store_false",
        help="skip the WER/CER measurement before and after training",
    )
    t.add_argument(
        "--work-dir", default=None, help="keep checkpoints and the merged transformers model here"
    )
    t.add_argument("--force", action="store_true", help="replace an existing model NAME")
    t.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(handler=run_finetune)


def _percent(value: object) -> str:
    return f"{100 * value:.2f}%" if isinstance(value, float) else "-"


def run_finetune(args: argparse.Namespace) -> int:
    from ..finetune.options import FinetuneOptions
    from ..finetune.run import EXTRA_MODULES

    require_extra("finetune", EXTRA_MODULES, "malsori finetune")
    from ..finetune.run import finetune

    options = FinetuneOptions(
        method=args.method,
        lora_rank=args.lora_rank,
        lora_alpha=args.lora_alpha,
        lora_dropout=args.lora_dropout,
        lora_targets=tuple(t.strip() for t in args.lora_targets.split(",") if t.strip()),
        epochs=args.epochs,
        max_steps=args.max_steps,
        learning_rate=args.learning_rate,
        warmup_steps=args.warmup_steps,
        batch_size=args.batch_size,
        gradient_accumulation=args.gradient_accumulation,
        eval_steps=args.eval_steps,
        patience=args.patience,
        generation_max_length=args.generation_max_length,
        language=args.language,
        quantization=args.quantization,
        device=args.device,
        seed=args.seed,
        evaluate_before_after=args.before_after,
    )
    result = finetune(
        args.data,
        args.eval,
        base=args.base,
        name=args.output,
        options=options,
        work_dir=args.work_dir,
        force=args.force,
        progress=not args.quiet,
    )
    losses = result.history["losses"]
    if losses:
        print(
            f"training loss: {losses[0][1]:.3f} -> {losses[-1][1]:.3f} "
            f"({result.history['steps']} steps)"
        )
    if result.before and result.after:
        for metric in ("wer", "cer"):
            print(
                f"eval {metric.upper()}: {_percent(result.before[metric])} -> "
                f"{_percent(result.after[metric])}"
            )
    print(f"plot: {result.plot}")
    print(
        f"registered as {result.name} ({result.path}); "
        f"use: malsori transcribe --model {result.name} FILE"
    )
    return 0
