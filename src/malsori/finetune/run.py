"""One fine-tuning run, end to end: own data in, a registered CTranslate2 model out.

1. the base model (a CTranslate2 name or folder, converted in memory; or a Hugging Face folder);
2. train and eval data read and checked (every bad clip reported with its line);
3. WER/CER on the eval set with the malsori pipeline (``malsori.evaluation``), before;
4. Seq2Seq training (LoRA or full), early stopping on eval WER (``train``);
5. export: LoRA merged into the weights, ``save_pretrained``, CTranslate2 conversion (int8);
6. WER/CER again with the exported model through the same pipeline, after;
7. the reports and the loss/WER plot written next to the model, which is registered by name.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import OutputError, require_extra
from ..evaluation import EvaluationReport, evaluate, malsori_transcriber, write_report
from ..options import TranscribeOptions
from .ct2_to_hf import HfWhisper, is_hf_dir, load_any
from .data import Example, load_examples, summarize
from .hf_to_ct2 import convert_hf_to_ct2
from .options import FinetuneOptions
from .plot import save_training_plot
from .store import register_model, registered_path

logger = logging.getLogger(__name__)

EXTRA_MODULES = ("torch", "transformers", "peft", "accelerate", "matplotlib", "jiwer")
REPORT_FILE = "finetune-report.json"
PLOT_FILE = "finetune-plot.png"


@dataclass(frozen=True)
class FinetuneResult:
    """What a run did and measured; also written as ``finetune-report.json``."""

    name: str
    path: Path  # the registered CTranslate2 folder
    base: str
    options: FinetuneOptions
    train_clips: int
    eval_clips: int
    history: dict[str, Any]  # TrainingHistory.to_dict()
    before: dict[str, Any] | None  # overall row of the eval report before training
    after: dict[str, Any] | None
    plot: Path
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "path": str(self.path),
            "base": self.base,
            "options": {k: getattr(self.options, k) for k in self.options.__dataclass_fields__},
            "train_clips": self.train_clips,
            "eval_clips": self.eval_clips,
            "history": self.history,
            "eval_before": self.before,
            "eval_after": self.after,
            "plot": str(self.plot),
            "seconds": round(self.seconds, 1),
        }


def pipeline_report(
    model_path: str | os.PathLike[str],
    examples: Sequence[Example],
    options: TranscribeOptions,
    *,
    threads: int = 0,
) -> EvaluationReport:
    """WER/CER of a CTranslate2 model on the examples through the normal transcribe pipeline,
    each clip decoded in its own language."""
    from ..model import load_model

    model = load_model(model_path, threads=threads)
    transcriber = malsori_transcriber(model, options, use_manifest_language=True)
    return evaluate([e.entry() for e in examples], transcriber, meta={"model": str(model_path)})


def _base_ct2(base: str, work: Path) -> str:
    """A CTranslate2 model to measure the base with: itself, or an int8 conversion of an HF one."""
    if not is_hf_dir(base):
        return base
    return str(convert_hf_to_ct2(base, work / "base-ct2", quantization="int8", force=True))


def export(trained: Any, hf: HfWhisper, work: Path, quantization: str) -> Path:
    """Merge LoRA adapters (if any), save the transformers model, convert it to CTranslate2."""
    model = trained.merge_and_unload() if hasattr(trained, "merge_and_unload") else trained
    model.config.use_cache = True
    hf_dir = work / "hf"
    HfWhisper(model, hf.tokenizer, hf.feature_extractor, hf.source).save(hf_dir)
    return convert_hf_to_ct2(hf_dir, work / "ct2", quantization=quantization, force=True)


def _overall(report: EvaluationReport | None) -> dict[str, Any] | None:
    return None if report is None else report.overall.to_dict()


def finetune(
    train_data: str | os.PathLike[str],
    eval_data: str | os.PathLike[str],
    *,
    base: str,
    name: str,
    options: FinetuneOptions | None = None,
    eval_options: TranscribeOptions | None = None,
    work_dir: str | os.PathLike[str] | None = None,
    force: bool = False,
    progress: bool = True,
) -> FinetuneResult:
    """Fine-tune ``base`` on ``train_data``, measure on ``eval_data``, register as ``name``.

    ``eval_options`` are the decoding options of the before/after measurement (default: malsori's
    defaults); ``work_dir`` keeps checkpoints and the merged transformers model (a temporary
    folder, removed at the end, by default).
    """
    require_extra("finetune", EXTRA_MODULES, "fine-tuning")
    opts = options or FinetuneOptions()
    decode = eval_options or TranscribeOptions()
    if registered_path(name).exists() and not force:  # fail before hours of training
        raise OutputError(f"model {name!r} already exists (use --force to replace it)")
    started = time.perf_counter()
    temporary = work_dir is None
    work = Path(work_dir) if work_dir is not None else Path(tempfile.mkdtemp(prefix="malsori-ft-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        return _run(train_data, eval_data, base, name, opts, decode, work, force, progress, started)
    finally:
        if temporary:
            shutil.rmtree(work, ignore_errors=True)


def _run(
    train_data: str | os.PathLike[str],
    eval_data: str | os.PathLike[str],
    base: str,
    name: str,
    opts: FinetuneOptions,
    decode: TranscribeOptions,
    work: Path,
    force: bool,
    progress: bool,
    started: float,
) -> FinetuneResult:
    from .train import token_counter, train

    hf = load_any(base)
    limit = int(hf.model.config.max_target_positions)
    count = token_counter(hf)
    train_examples = load_examples(
        train_data, language=opts.language, count_tokens=count, max_tokens=limit
    )
    eval_examples = load_examples(
        eval_data, language=opts.language, count_tokens=count, max_tokens=limit
    )
    logger.info("train: %s; eval: %s", summarize(train_examples), summarize(eval_examples))
    before = after = None
    if opts.evaluate_before_after:
        before = pipeline_report(_base_ct2(base, work), eval_examples, decode)
        logger.info("before: WER %s, CER %s", before.overall.wer, before.overall.cer)
    trained, history = train(hf, train_examples, eval_examples, opts, work, progress=progress)
    ct2_dir = export(trained, hf, work, opts.quantization)
    if before is not None:
        after = pipeline_report(ct2_dir, eval_examples, decode)
        logger.info("after: WER %s, CER %s", after.overall.wer, after.overall.cer)
        write_report(before, ct2_dir / "eval-before.json")
        write_report(after, ct2_dir / "eval-after.json")
    save_training_plot(
        history.losses, history.evals, ct2_dir / PLOT_FILE, title=f"{name} ({opts.method})"
    )
    result = FinetuneResult(
        name=name,
        path=registered_path(name),
        base=base,
        options=opts,
        train_clips=len(train_examples),
        eval_clips=len(eval_examples),
        history=history.to_dict(),
        before=_overall(before),
        after=_overall(after),
        plot=registered_path(name) / PLOT_FILE,
        seconds=time.perf_counter() - started,
    )
    (ct2_dir / REPORT_FILE).write_text(
        json.dumps(result.to_dict(), indent=2, ensure_ascii=False, default=str), encoding="utf-8"
    )
    info = {"base": base, "method": opts.method, "quantization": opts.quantization}
    register_model(ct2_dir, name, source="finetune", info=info, force=force, move=True)
    return result
