"""Typed, frozen options for one fine-tuning run, validated once when built."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

from ..errors import InvalidOptionError
from ..languages import normalize_language
from .hf_to_ct2 import check_quantization

Method = Literal["lora", "full"]
METHODS: tuple[str, ...] = ("lora", "full")
DEFAULT_LEARNING_RATES = {"lora": 1e-3, "full": 1e-5}


@dataclass(frozen=True)
class FinetuneOptions:
    """How to fine-tune. LoRA defaults follow the usual Whisper recipe (r=32, alpha=64, q/v)."""

    # "lora" trains low-rank adapters (merged into the weights at export); "full" trains all.
    method: Method = "lora"
    # LoRA rank, scaling numerator (scale = alpha / rank), dropout on the adapter input.
    lora_rank: int = 32
    lora_alpha: int = 64
    lora_dropout: float = 0.05
    # Module names (or one regular expression, when a single entry contains ".*") to adapt.
    lora_targets: tuple[str, ...] = ("q_proj", "v_proj")
    # Passes over the training data; ``max_steps`` above 0 overrides it.
    epochs: float = 5.0
    max_steps: int = 0
    # Peak learning rate (linear decay after warm-up); None: 1e-3 for LoRA, 1e-5 for full.
    learning_rate: float | None = None
    warmup_steps: int = 0
    weight_decay: float = 0.0
    # Clips per optimizer step = batch_size x gradient_accumulation.
    batch_size: int = 8
    gradient_accumulation: int = 1
    # Evaluate (loss and WER on the eval set) every N optimizer steps; 0: once per epoch.
    eval_steps: int = 0
    # Longest greedy decode (tokens) when measuring WER during training.
    generation_max_length: int = 225
    # Stop after this many evaluations without a better WER (0: never stop early); the best
    # checkpoint is the one exported.
    patience: int = 3
    # Language of a folder's clips (manifests name theirs); None: required from the data.
    language: str | None = None
    # Precision of the exported CTranslate2 model.
    quantization: str = "int8"
    # "auto": CUDA when present, else CPU.
    device: Literal["auto", "cpu", "cuda"] = "auto"
    seed: int = 0
    # Measure WER/CER on the eval set with the malsori pipeline before and after training.
    evaluate_before_after: bool = True

    def __post_init__(self) -> None:
        self.check()

    @property
    def lr(self) -> float:
        return self.learning_rate or DEFAULT_LEARNING_RATES[self.method]

    def check(self) -> None:
        if self.method not in METHODS:
            raise InvalidOptionError(f"unknown method {self.method!r}: use lora or full")
        positive = {
            "lora rank": self.lora_rank,
            "lora alpha": self.lora_alpha,
            "batch size": self.batch_size,
            "gradient accumulation": self.gradient_accumulation,
            "generation max length": self.generation_max_length,
        }
        for name, value in positive.items():
            if value < 1:
                raise InvalidOptionError(f"{name} must be at least 1, got {value}")
        for name, value in (
            ("max steps", self.max_steps),
            ("eval steps", self.eval_steps),
            ("patience", self.patience),
            ("warm-up steps", self.warmup_steps),
        ):
            if value < 0:
                raise InvalidOptionError(f"{name} cannot be negative, got {value}")
        if self.max_steps == 0 and self.epochs <= 0:
            raise InvalidOptionError(f"epochs must be above 0, got {self.epochs}")
        if not 0.0 <= self.lora_dropout < 1.0:
            raise InvalidOptionError(f"lora dropout must be in [0, 1), got {self.lora_dropout}")
        if self.learning_rate is not None and self.learning_rate <= 0:
            raise InvalidOptionError(f"learning rate must be above 0, got {self.learning_rate}")
        if not self.lora_targets:
            raise InvalidOptionError("lora targets cannot be empty")
        if self.device not in ("auto", "cpu", "cuda"):
            raise InvalidOptionError(f"unknown device {self.device!r}: use auto, cpu or cuda")
        check_quantization(self.quantization)
        if self.language is not None:
            normalize_language(self.language)  # raises InvalidOptionError for unknown codes

    def replace(self, **changes: Any) -> FinetuneOptions:
        return dataclasses.replace(self, **changes)
