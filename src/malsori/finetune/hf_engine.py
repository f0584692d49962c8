"""A ``transformers`` engine for comparison: the same Whisper weights run by PyTorch.

Not a second transcription pipeline: it decodes one clip of at most 30 s greedily (no VAD, no
long-form windows, no post-processing), which is what comparing engines, precisions and the
CT2 <-> HF conversion needs. ``dynamic_int8`` applies PyTorch's dynamic quantization to every
``nn.Linear`` (int8 weights, activations quantized on the fly), on CPU only.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..audio import SAMPLE_RATE
from ..errors import InvalidOptionError, require_extra
from ..evaluation import Hypothesis, Transcriber
from ..manifest import ManifestEntry
from .ct2_to_hf import HfWhisper, load_any
from .data import MAX_CLIP_S, load_audio

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class EngineOptions:
    """How the transformers engine runs."""

    # Quantize every Linear layer's weights to int8 (PyTorch dynamic quantization, CPU).
    dynamic_int8: bool = False
    # PyTorch CPU threads (0: leave PyTorch's default).
    threads: int = 0
    # Longest decode, in tokens (None: up to the model's max_length, 448 for Whisper).
    max_new_tokens: int | None = None
    # torch.compile the encoder (its input is always one 30 s window, so it compiles once).
    compile: bool = False
    # "cpu" or "cuda"; half: float16 weights and activations (CUDA only).
    device: str = "cpu"
    half: bool = False


class TransformersEngine:
    """Greedy decoding of short clips with a ``transformers`` Whisper."""

    def __init__(self, hf: HfWhisper, options: EngineOptions | None = None):
        require_extra("finetune", ("torch", "transformers"), "the transformers engine")
        import torch

        self.options = options or EngineOptions()
        if self.options.threads:
            torch.set_num_threads(self.options.threads)
        self.hf = hf
        self.model = hf.model.eval()
        if self.options.dynamic_int8:
            try:
                from torch.ao.quantization import quantize_dynamic
            except ImportError as e:  # deprecated in PyTorch 2.x, moving to torchao
                raise InvalidOptionError(
                    f"dynamic int8 needs torch.ao.quantization, not in torch {torch.__version__}"
                ) from e
            self.model = quantize_dynamic(self.model, {torch.nn.Linear}, dtype=torch.qint8)
        if self.options.half and self.options.device == "cpu":
            raise InvalidOptionError("float16 needs the cuda device")
        self.model = self.model.to(self.options.device)
        if self.options.half:
            self.model = self.model.half()
        if self.options.compile:
            encoder = self.model.get_encoder()
            encoder.forward = torch.compile(encoder.forward)
        # An English-only checkpoint may still carry language tokens in its tokenizer: its
        # vocabulary size says what it is (51865 and more for the multilingual models).
        self.multilingual = (
            bool(getattr(hf.model.generation_config, "is_multilingual", False))
            and int(hf.model.config.vocab_size) >= 51865
        )

    @classmethod
    def load(
        cls, name_or_path: str | os.PathLike[str], options: EngineOptions | None = None
    ) -> TransformersEngine:
        """From a Hugging Face folder, or a CTranslate2 model converted in memory."""
        return cls(load_any(name_or_path), options)

    def features(self, audio: np.ndarray) -> Any:
        if audio.size > MAX_CLIP_S * SAMPLE_RATE:
            raise InvalidOptionError(
                f"the transformers engine decodes clips of at most {MAX_CLIP_S:.0f} s, "
                f"got {audio.size / SAMPLE_RATE:.1f} s"
            )
        fe = self.hf.feature_extractor
        return fe(audio, sampling_rate=fe.sampling_rate, return_tensors="pt").input_features

    def _generate(self, audio: np.ndarray, language: str | None) -> tuple[list[int], str | None]:
        """Greedy output tokens of ``generate`` for a 16 kHz clip, and the language decoded in:
        detected from the same encoder output when a multilingual model is not given one."""
        import torch

        kwargs: dict[str, Any] = {"num_beams": 1, "do_sample": False}
        if self.options.max_new_tokens is not None:
            kwargs["max_new_tokens"] = self.options.max_new_tokens
        features = self.features(audio).to(self.options.device)
        if self.options.half:
            features = features.half()
        with torch.inference_mode():
            encoded = self.model.get_encoder()(features)
            if self.multilingual:
                if language is None:
                    token = int(self.model.detect_language(encoder_outputs=encoded)[0])
                    language = str(self.hf.tokenizer.convert_ids_to_tokens(token)).strip("<|>")
                kwargs.update(task="transcribe", language=language)
            out = self.model.generate(encoder_outputs=encoded, **kwargs)
        return [int(t) for t in out[0].tolist()], language if self.multilingual else "en"

    def token_ids(self, audio: np.ndarray, language: str | None = None) -> list[int]:
        """Greedy output tokens for a 16 kHz clip, text tokens only (no prompt, no end)."""
        special = set(self.hf.tokenizer.all_special_ids)
        return [t for t in self._generate(audio, language)[0] if t not in special]

    def decode(self, audio: np.ndarray, language: str | None = None) -> tuple[str, str]:
        """Text and language of a clip; a multilingual model detects the language when it is
        not given (an English-only one speaks English)."""
        ids, decoded = self._generate(audio, language)
        special = set(self.hf.tokenizer.all_special_ids)
        text = str(self.hf.tokenizer.decode([t for t in ids if t not in special])).strip()
        return text, str(decoded)

    def transcribe(self, audio: np.ndarray, language: str | None = None) -> str:
        return str(self.hf.tokenizer.decode(self.token_ids(audio, language))).strip()

    def transcriber(self) -> Transcriber:
        """For ``malsori.evaluation.evaluate``: each entry decoded in its manifest language."""

        def run(entry: ManifestEntry) -> Hypothesis:
            audio = load_audio(entry.audio)  # InputError: evaluate() scores it as a failure
            text = self.transcribe(audio, entry.language)
            return Hypothesis(text, entry.language, False, audio.size / SAMPLE_RATE)

        return run
