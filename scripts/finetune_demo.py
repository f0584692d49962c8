#!/usr/bin/env python3
"""A real fine-tuning run on ``base`` (CPU, a few dozen clips), with the numbers it produces.

Training data: real dev-set recordings (English LJSpeech, Korean emotiontts) from
``../shared/evaldata`` plus sentences rendered with espeak-ng that contain invented product names
("Zorblax", "Quindora", ...) Whisper has never seen. Held back for evaluation: other real clips
and new sentences with the same invented names, in voices and wordings not trained on.

Reported (and written to ``bench-results/finetune-demo/summary.json``): training loss at the start
and end, WER/CER on the held-back clips before and after (malsori's own pipeline, the exported
int8 model), the invented-name accuracy before and after (fraction of held-back name mentions
found in the transcript), split by real and rendered clips.

    .venv/bin/python scripts/finetune_demo.py [--evaldata ../shared/evaldata] [--epochs 6]
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import subprocess
import sys
from pathlib import Path

from malsori.evaluation import ErrorCounts, load_report, normalize_text
from malsori.finetune.options import FinetuneOptions
from malsori.finetune.run import finetune
from malsori.manifest import load_manifest

NAMES = ("Zorblax", "Quindora", "Flumetrix", "Vextral", "Brimoleth", "Krynzo")
TRAIN_TEMPLATES = (
    "Please order the {} today.",
    "The new {} ships next week.",
    "Our {} is faster than the old model.",
    "I left my {} at the office.",
)
HELD_TEMPLATES = (
    "Can you tell me the price of the {}?",
    "We sold three hundred {} units in March.",
)
TRAIN_VOICES = ("en-us", "en-gb", "en-gb-x-rp")
HELD_VOICES = ("en-gb-scotland", "en-us+f3")


def render(text: str, voice: str, out: Path) -> Path:
    if not out.exists():
        subprocess.run(["espeak-ng", "-v", voice, "-s", "150", "-w", str(out), text], check=True)
    return out


def write_tsv(rows: list[tuple[Path, str, str]], path: Path) -> Path:
    lines = "".join(f"{a.resolve()}\t{lang}\t{text}\n" for a, lang, text in rows)
    path.write_text(lines, encoding="utf-8")
    return path


def build_data(evaldata: Path, out: Path, n_real: int, n_held_real: int) -> dict[str, Path]:
    """train.tsv and eval.tsv (absolute paths); the eval set mixes real and rendered clips."""
    out.mkdir(parents=True, exist_ok=True)
    entries = load_manifest(evaldata / "manifest.tsv")
    en = [e for e in entries if "en_ljspeech" in str(e.audio)]
    ko = [e for e in entries if "ko_emotiontts" in str(e.audio)]
    random.Random(0).shuffle(ko)
    half, held_half = n_real // 2, n_held_real // 2
    real_train = en[:half] + ko[:half]
    real_held = en[half : half + held_half] + ko[half : half + held_half]
    synth_train, synth_held = [], []
    for i, name in enumerate(NAMES):
        for j, template in enumerate(TRAIN_TEMPLATES):
            text, voice = template.format(name), TRAIN_VOICES[(i + j) % len(TRAIN_VOICES)]
            synth_train.append((render(text, voice, out / f"train-{i}-{j}.wav"), "en", text))
        for j, template in enumerate(HELD_TEMPLATES):
            text, voice = template.format(name), HELD_VOICES[(i + j) % len(HELD_VOICES)]
            synth_held.append((render(text, voice, out / f"held-{i}-{j}.wav"), "en", text))
    train = [(e.audio, e.language, e.reference) for e in real_train] + synth_train
    held = [(e.audio, e.language, e.reference) for e in real_held] + synth_held
    return {"train": write_tsv(train, out / "train.tsv"), "eval": write_tsv(held, out / "eval.tsv")}


def name_accuracy(report_path: Path) -> tuple[int, int]:
    """(found, total) invented-name mentions in the rendered held-back clips."""
    found = total = 0
    for u in load_report(report_path).utterances:
        for name in NAMES:
            if name.lower() in u.reference.lower():
                total += 1
                found += name.lower() in normalize_text(u.hypothesis, "en").split()
    return found, total


def subset_rates(report_path: Path) -> dict[str, dict[str, float | None]]:
    """WER/CER of the real and of the rendered held-back clips separately."""
    groups: dict[str, tuple[ErrorCounts, ErrorCounts]] = {}
    for u in load_report(report_path).utterances:
        key = "rendered" if "/held-" in u.id else f"real-{u.language}"
        w, c = groups.get(key, (ErrorCounts(), ErrorCounts()))
        groups[key] = (w + u.words, c + u.chars)
    return {k: {"wer": w.rate, "cer": c.rate} for k, (w, c) in sorted(groups.items())}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--evaldata", type=Path, default=Path("../shared/evaldata"))
    p.add_argument("--out", type=Path, default=Path("bench-results/finetune-demo"))
    p.add_argument("--name", default="base-demo-ft")
    p.add_argument("--method", default="lora", choices=("lora", "full"))
    p.add_argument("--epochs", type=float, default=4.0)
    p.add_argument("--real-train", type=int, default=24)
    p.add_argument("--real-held", type=int, default=12)
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument(
        "--targets",
        default=r".*decoder.*\.(q_proj|v_proj)",
        help="LoRA target modules, comma-separated names or one regular expression (default: the "
        "decoder's q/v projections, so no gradient flows through the encoder: CPU-friendly)",
    )
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    logging.getLogger("faster_whisper").setLevel(logging.WARNING)
    if not (args.evaldata / "manifest.tsv").is_file():
        print(f"no dev set at {args.evaldata}", file=sys.stderr)
        return 2
    data = build_data(args.evaldata, args.out / "data", args.real_train, args.real_held)
    options = FinetuneOptions(
        method=args.method,
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.lr,
        patience=3,
        lora_targets=tuple(args.targets.split(",")),
        generation_max_length=128,
    )
    result = finetune(
        data["train"],
        data["eval"],
        base="base",
        name=args.name,
        options=options,
        force=True,
        work_dir=args.out / "work",
    )
    losses = result.history["losses"]
    before, after = result.path / "eval-before.json", result.path / "eval-after.json"
    summary = {
        "model": result.name,
        "path": str(result.path),
        "method": args.method,
        "train_clips": result.train_clips,
        "eval_clips": result.eval_clips,
        "steps": result.history["steps"],
        "loss_start": losses[0][1] if losses else None,
        "loss_end": losses[-1][1] if losses else None,
        "evals_during_training": result.history["evals"],
        "wer_before": result.before and result.before["wer"],
        "wer_after": result.after and result.after["wer"],
        "subsets_before": subset_rates(before),
        "subsets_after": subset_rates(after),
        "names_found_before": name_accuracy(before),
        "names_found_after": name_accuracy(after),
        "plot": str(result.plot),
        "seconds": round(result.seconds),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
