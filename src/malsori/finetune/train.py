"""Seq2Seq training of a ``transformers`` Whisper: datasets, collator, trainer, metrics.

Labels are the text after Whisper's prompt (start of transcript, language, task, no timestamps)
and end with end-of-text; the model sees the prompt as decoder input and learns the rest. Each
evaluation decodes the eval clips greedily in their own language and scores them with
``malsori.evaluation`` (same normalisation and corpus-level WER/CER as ``malsori eval``); early
stopping watches that WER and the best checkpoint is restored at the end.

Needs the ``finetune`` extra; import this module only after ``require_extra`` has passed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import (
    EarlyStoppingCallback,
    Seq2SeqTrainer,
    Seq2SeqTrainingArguments,
    TrainerCallback,
)

from ..errors import InvalidOptionError
from ..evaluation import ErrorCounts, error_counts, normalize_text
from .ct2_to_hf import HfWhisper
from .data import Example, load_audio
from .options import FinetuneOptions

logger = logging.getLogger(__name__)

IGNORE_INDEX = -100  # label positions the loss skips (padding)


def is_multilingual(hf: HfWhisper) -> bool:
    return bool(getattr(hf.model.generation_config, "is_multilingual", False))


def label_ids(hf: HfWhisper, text: str, language: str) -> list[int]:
    """Prompt tokens, the text's tokens and end-of-text: what the decoder must produce."""
    language_or_none = language if is_multilingual(hf) else None
    hf.tokenizer.set_prefix_tokens(
        language=language_or_none, task="transcribe", predict_timestamps=False
    )
    return list(hf.tokenizer(text).input_ids)


def token_counter(hf: HfWhisper) -> Callable[[str, str], int]:
    """For ``data.load_examples``: the decoder length a text needs."""
    return lambda text, language: len(label_ids(hf, text, language))


CACHE_CLIPS = 256  # log-Mel features of smaller datasets stay in memory (about 1 MB a clip)


class WhisperDataset(torch.utils.data.Dataset[dict[str, Any]]):
    """Clips decoded and turned into log-Mel features when first asked for; kept in memory for
    later epochs when the dataset is small (CACHE_CLIPS), decoded again otherwise."""

    def __init__(self, examples: Sequence[Example], hf: HfWhisper):
        self.examples = list(examples)
        self.hf = hf
        self.labels = [label_ids(hf, e.text, e.language) for e in self.examples]
        self.cache: dict[int, np.ndarray] | None = {} if len(examples) <= CACHE_CLIPS else None

    def __len__(self) -> int:
        return len(self.examples)

    def features(self, i: int) -> np.ndarray:
        if self.cache is not None and i in self.cache:
            return self.cache[i]
        audio = load_audio(self.examples[i].audio)
        fe = self.hf.feature_extractor
        features: np.ndarray = fe(
            audio, sampling_rate=fe.sampling_rate, return_tensors="np"
        ).input_features[0]
        if self.cache is not None:
            self.cache[i] = features
        return features

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {
            "input_features": self.features(i),
            "labels": self.labels[i],
            "language": self.examples[i].language,
        }


@dataclass(frozen=True)
class Collator:
    """Stacks features, pads labels with IGNORE_INDEX and drops the start token (the model puts
    ``decoder_start_token_id`` in front itself when it shifts the labels right)."""

    decoder_start_token_id: int

    def __call__(self, items: list[dict[str, Any]]) -> dict[str, Any]:
        features = torch.from_numpy(np.stack([it["input_features"] for it in items]))
        labels = [list(it["labels"]) for it in items]
        if all(seq and seq[0] == self.decoder_start_token_id for seq in labels):
            labels = [seq[1:] for seq in labels]
        width = max(len(seq) for seq in labels)
        padded = torch.full((len(labels), width), IGNORE_INDEX, dtype=torch.long)
        for row, seq in enumerate(labels):
            padded[row, : len(seq)] = torch.tensor(seq, dtype=torch.long)
        return {
            "input_features": features,
            "labels": padded,
            "languages": [it["language"] for it in items],
        }


class WhisperTrainer(Seq2SeqTrainer):
    """Seq2SeqTrainer that decodes each eval batch in its clips' own languages."""

    multilingual: bool = True

    def compute_loss(
        self,
        model: Any,
        inputs: dict[str, Any],
        return_outputs: bool = False,
        num_items_in_batch: Any = None,
    ) -> Any:
        inputs = {k: v for k, v in inputs.items() if k != "languages"}
        return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)

    def prediction_step(
        self,
        model: Any,
        inputs: dict[str, Any],
        prediction_loss_only: bool,
        ignore_keys: list[str] | None = None,
        **gen_kwargs: Any,
    ) -> Any:
        languages = inputs.pop("languages", None)
        if getattr(self.args, "predict_with_generate", False) and not prediction_loss_only:
            gen_kwargs = {**getattr(self, "_gen_kwargs", {}), **gen_kwargs}
            gen_kwargs.update(task="transcribe", num_beams=1, do_sample=False)
            if self.multilingual and languages is not None:
                gen_kwargs["language"] = list(languages)
        return super().prediction_step(
            model, inputs, prediction_loss_only, ignore_keys, **gen_kwargs
        )


def metrics_function(
    hf: HfWhisper, examples: Sequence[Example]
) -> Callable[[Any], dict[str, float]]:
    """compute_metrics for the Trainer: corpus WER and CER of the greedy decodes."""

    def compute(prediction: Any) -> dict[str, float]:
        ids = np.asarray(prediction.predictions)
        ids = np.where(ids < 0, hf.tokenizer.pad_token_id, ids)
        hypotheses = hf.tokenizer.batch_decode(ids, skip_special_tokens=True)
        words, chars = ErrorCounts(), ErrorCounts()
        for example, hyp in zip(examples, hypotheses, strict=True):
            ref_n = normalize_text(example.text, example.language)
            hyp_n = normalize_text(hyp, example.language)
            words = words + error_counts(ref_n, hyp_n, unit="word")
            chars = chars + error_counts(ref_n, hyp_n, unit="char")
        return {"wer": words.rate or 0.0, "cer": chars.rate or 0.0}

    return compute


def wrap_lora(hf: HfWhisper, options: FinetuneOptions) -> Any:
    """The model with LoRA adapters on ``options.lora_targets`` (the rest frozen)."""
    from peft import LoraConfig, get_peft_model

    targets: str | list[str] = list(options.lora_targets)
    if len(targets) == 1 and ".*" in targets[0]:
        targets = targets[0]  # one regular expression over the full module names
    config = LoraConfig(
        r=options.lora_rank,
        lora_alpha=options.lora_alpha,
        lora_dropout=options.lora_dropout,
        target_modules=targets,
        bias="none",
    )
    try:
        model = get_peft_model(hf.model, config)
    except ValueError as e:
        raise InvalidOptionError(f"LoRA targets {options.lora_targets}: {e}") from e
    trainable, total = model.get_nb_trainable_parameters()
    logger.info(
        "LoRA: %d of %d parameters trainable (%.2f%%)", trainable, total, 100 * trainable / total
    )
    return model


def use_cuda(options: FinetuneOptions) -> bool:
    if options.device == "cuda" and not torch.cuda.is_available():
        raise InvalidOptionError("device 'cuda' was asked for but torch sees no CUDA device")
    return options.device != "cpu" and torch.cuda.is_available()


def training_arguments(
    options: FinetuneOptions, output_dir: Path, *, progress: bool, steps_per_epoch: int
) -> Seq2SeqTrainingArguments:
    cuda = use_cuda(options)
    strategy = "steps" if options.eval_steps else "epoch"
    eval_steps = options.eval_steps or max(1, steps_per_epoch)
    return Seq2SeqTrainingArguments(
        output_dir=str(output_dir),
        per_device_train_batch_size=options.batch_size,
        per_device_eval_batch_size=options.batch_size,
        gradient_accumulation_steps=options.gradient_accumulation,
        learning_rate=options.lr,
        warmup_steps=options.warmup_steps,
        weight_decay=options.weight_decay,
        num_train_epochs=options.epochs,
        max_steps=options.max_steps or -1,
        eval_strategy=strategy,
        save_strategy=strategy,
        eval_steps=eval_steps,
        save_steps=eval_steps,
        save_total_limit=2,
        save_only_model=True,
        load_best_model_at_end=True,
        metric_for_best_model="wer",
        greater_is_better=False,
        predict_with_generate=True,
        generation_max_length=options.generation_max_length,
        logging_strategy="steps",
        logging_steps=1,
        report_to=[],
        use_cpu=not cuda,
        fp16=cuda,
        seed=options.seed,
        remove_unused_columns=False,
        label_names=["labels"],
        dataloader_num_workers=0,
        disable_tqdm=not progress,
    )


@dataclass(frozen=True)
class TrainingHistory:
    """What the Trainer logged: training loss per step, and each evaluation."""

    losses: tuple[tuple[int, float], ...]
    evals: tuple[tuple[int, float, float, float], ...]  # step, eval loss, WER, CER
    steps: int
    best_step: int | None
    stopped_early: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "losses": [list(x) for x in self.losses],
            "evals": [{"step": s, "loss": lo, "wer": w, "cer": c} for s, lo, w, c in self.evals],
            "steps": self.steps,
            "best_step": self.best_step,
            "stopped_early": self.stopped_early,
        }


def _history(state: Any, planned_steps: int) -> TrainingHistory:
    losses = tuple((int(r["step"]), float(r["loss"])) for r in state.log_history if "loss" in r)
    evals = tuple(
        (int(r["step"]), float(r["eval_loss"]), float(r["eval_wer"]), float(r["eval_cer"]))
        for r in state.log_history
        if "eval_wer" in r
    )
    best = state.best_model_checkpoint
    best_step = int(best.rsplit("-", 1)[1]) if best else None
    stopped = planned_steps > 0 and state.global_step < planned_steps
    return TrainingHistory(losses, evals, int(state.global_step), best_step, stopped)


def train(
    hf: HfWhisper,
    train_examples: Sequence[Example],
    eval_examples: Sequence[Example],
    options: FinetuneOptions,
    work_dir: Path,
    *,
    progress: bool = True,
) -> tuple[Any, TrainingHistory]:
    """Train (LoRA or full) and return the trained model (best checkpoint) and its history."""
    torch.manual_seed(options.seed)
    hf.model.config.use_cache = False  # no decoder cache while training
    model = wrap_lora(hf, options) if options.method == "lora" else hf.model
    per_step = options.batch_size * options.gradient_accumulation
    steps_per_epoch = max(1, -(-len(train_examples) // per_step))
    args = training_arguments(
        options, work_dir / "checkpoints", progress=progress, steps_per_epoch=steps_per_epoch
    )
    callbacks: list[TrainerCallback] = (
        [EarlyStoppingCallback(options.patience)] if options.patience else []
    )
    trainer = WhisperTrainer(
        model=model,
        args=args,
        data_collator=Collator(hf.model.config.decoder_start_token_id),
        train_dataset=WhisperDataset(train_examples, hf),
        eval_dataset=WhisperDataset(eval_examples, hf),
        compute_metrics=metrics_function(hf, eval_examples),
        callbacks=callbacks,
    )
    trainer.multilingual = is_multilingual(hf)
    trainer.train()
    planned = options.max_steps or int(np.ceil(options.epochs * steps_per_epoch))
    history = _history(trainer.state, planned)
    hf.model.config.use_cache = True
    logger.info("trained %d steps (best at %s)", history.steps, history.best_step)
    return trainer.model, history
