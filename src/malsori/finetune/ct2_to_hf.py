"""CTranslate2 Whisper -> Hugging Face ``transformers`` (model, tokenizer, features, generation).

The packaged weights exist only in CTranslate2's format. Its variable names are those
``ctranslate2.converters.transformers.WhisperLoader`` writes; this module maps them back:
self-attention q/k/v are fused in ``self_attention/linear_0`` (split in three), cross-attention
k/v in ``attention/linear_1`` (split in two), the key projections have no bias (CTranslate2
stores zeros there), and the output projection is an alias of the token embeddings (tied in
``transformers`` too). int8/int16/float16 weights are read back as float32.

The tokenizer comes from the folder's ``tokenizer.json``; the generation config gets the
language and task tokens and the alignment heads from the CTranslate2 ``config.json``, so
``model.generate(features, language="ko", task="transcribe")`` works as for a hub checkpoint.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ModelLoadError, require_extra
from ..registry import resolve
from .ct2_format import Ct2Model, read_model

logger = logging.getLogger(__name__)

EXTRA = "finetune"
TORCH_MODULES = ("torch", "transformers")

_LAYER_PARTS = {  # CTranslate2 name inside a layer -> transformers name (plain copies)
    "self_attention/layer_norm/gamma": "self_attn_layer_norm.weight",
    "self_attention/layer_norm/beta": "self_attn_layer_norm.bias",
    "self_attention/linear_1/weight": "self_attn.out_proj.weight",
    "self_attention/linear_1/bias": "self_attn.out_proj.bias",
    "attention/layer_norm/gamma": "encoder_attn_layer_norm.weight",
    "attention/layer_norm/beta": "encoder_attn_layer_norm.bias",
    "attention/linear_0/weight": "encoder_attn.q_proj.weight",
    "attention/linear_0/bias": "encoder_attn.q_proj.bias",
    "attention/linear_2/weight": "encoder_attn.out_proj.weight",
    "attention/linear_2/bias": "encoder_attn.out_proj.bias",
    "ffn/layer_norm/gamma": "final_layer_norm.weight",
    "ffn/layer_norm/beta": "final_layer_norm.bias",
    "ffn/linear_0/weight": "fc1.weight",
    "ffn/linear_0/bias": "fc1.bias",
    "ffn/linear_1/weight": "fc2.weight",
    "ffn/linear_1/bias": "fc2.bias",
}
_STACK_PARTS = {
    "layer_norm/gamma": "layer_norm.weight",
    "layer_norm/beta": "layer_norm.bias",
    "position_encodings/encodings": "embed_positions.weight",
}
_ENCODER_PARTS = {
    "conv1/weight": "conv1.weight",
    "conv1/bias": "conv1.bias",
    "conv2/weight": "conv2.weight",
    "conv2/bias": "conv2.bias",
}


def _split_attention(
    state: dict[str, np.ndarray], prefix: str, fused_w: np.ndarray, fused_b: np.ndarray, names: str
) -> None:
    """Split a fused projection (q|k|v or k|v) back into separate ones; keys have no bias."""
    parts = names.split(",")
    for name, w, b in zip(
        parts, np.split(fused_w, len(parts)), np.split(fused_b, len(parts)), strict=True
    ):
        state[f"{prefix}.{name}_proj.weight"] = w
        if name != "k":
            state[f"{prefix}.{name}_proj.bias"] = b


def hf_state_dict(model: Ct2Model) -> dict[str, np.ndarray]:
    """The ``WhisperForConditionalGeneration`` state dict (NumPy float32) of a CTranslate2 model."""
    v = model.resolved()
    state: dict[str, np.ndarray] = {}
    for stack in ("encoder", "decoder"):
        for ct2, hf in _STACK_PARTS.items():
            state[f"model.{stack}.{hf}"] = v[f"{stack}/{ct2}"]
        for i in range(model.count_layers(stack)):
            src, dst = f"{stack}/layer_{i}", f"model.{stack}.layers.{i}"
            for ct2, hf in _LAYER_PARTS.items():
                if f"{src}/{ct2}" in v:
                    state[f"{dst}.{hf}"] = v[f"{src}/{ct2}"]
            _split_attention(
                state,
                f"{dst}.self_attn",
                v[f"{src}/self_attention/linear_0/weight"],
                v[f"{src}/self_attention/linear_0/bias"],
                "q,k,v",
            )
            if f"{src}/attention/linear_1/weight" in v:
                _split_attention(
                    state,
                    f"{dst}.encoder_attn",
                    v[f"{src}/attention/linear_1/weight"],
                    v[f"{src}/attention/linear_1/bias"],
                    "k,v",
                )
    for ct2, hf in _ENCODER_PARTS.items():
        state[f"model.encoder.{hf}"] = v[f"encoder/{ct2}"]
    state["model.decoder.embed_tokens.weight"] = v["decoder/embeddings/weight"]
    state["proj_out.weight"] = v["decoder/projection/weight"]
    return state


@dataclass(frozen=True)
class SpecialTokens:
    """Token ids Whisper's decoding needs, read from the tokenizer."""

    sot: int
    eot: int
    no_timestamps: int
    start_of_prev: int
    transcribe: int | None
    translate: int | None
    languages: dict[str, int]  # "<|ko|>" -> id


def special_tokens(tokenizer: Any, lang_ids: list[int]) -> SpecialTokens:
    def tid(token: str) -> int:
        return int(tokenizer.convert_tokens_to_ids(token))

    multilingual = bool(lang_ids)
    return SpecialTokens(
        sot=tid("<|startoftranscript|>"),
        eot=tid("<|endoftext|>"),
        no_timestamps=tid("<|notimestamps|>"),
        start_of_prev=tid("<|startofprev|>"),
        transcribe=tid("<|transcribe|>") if multilingual else None,
        translate=tid("<|translate|>") if multilingual else None,
        languages={str(tokenizer.convert_ids_to_tokens(i)): int(i) for i in lang_ids},
    )


def whisper_config_kwargs(model: Ct2Model, tokens: SpecialTokens) -> dict[str, Any]:
    v = model.resolved()
    embeddings = v["decoder/embeddings/weight"]
    return {
        "vocab_size": int(embeddings.shape[0]),
        "d_model": int(embeddings.shape[1]),
        "num_mel_bins": int(v["encoder/conv1/weight"].shape[1]),
        "encoder_layers": model.count_layers("encoder"),
        "decoder_layers": model.count_layers("decoder"),
        "encoder_attention_heads": int(v["encoder/num_heads"]),
        "decoder_attention_heads": int(v["decoder/num_heads"]),
        "encoder_ffn_dim": int(v["encoder/layer_0/ffn/linear_0/weight"].shape[0]),
        "decoder_ffn_dim": int(v["decoder/layer_0/ffn/linear_0/weight"].shape[0]),
        "max_source_positions": int(v["encoder/position_encodings/encodings"].shape[0]),
        "max_target_positions": int(v["decoder/position_encodings/encodings"].shape[0]),
        "decoder_start_token_id": tokens.sot,
        "pad_token_id": tokens.eot,
        "bos_token_id": tokens.eot,
        "eos_token_id": tokens.eot,
        # suppressed tokens live in the generation config only (generate() warns otherwise)
        "suppress_tokens": None,
        "begin_suppress_tokens": None,
        "scale_embedding": False,
        "activation_function": "gelu",
        "tie_word_embeddings": True,
    }


def generation_config_kwargs(
    cfg: dict[str, Any], tokens: SpecialTokens, max_length: int
) -> dict[str, Any]:
    """GenerationConfig fields from a CTranslate2 ``config.json`` (suppressed tokens, alignment
    heads) and the tokenizer's special tokens (language and task ids)."""
    kwargs: dict[str, Any] = {
        "decoder_start_token_id": tokens.sot,
        "bos_token_id": tokens.eot,
        "eos_token_id": tokens.eot,
        "pad_token_id": tokens.eot,
        "no_timestamps_token_id": tokens.no_timestamps,
        "prev_sot_token_id": tokens.start_of_prev,
        "suppress_tokens": list(cfg.get("suppress_ids") or []),
        "begin_suppress_tokens": list(cfg.get("suppress_ids_begin") or []),
        "alignment_heads": [list(h) for h in cfg.get("alignment_heads") or []],
        "max_initial_timestamp_index": 50,
        "max_length": max_length,
        "return_timestamps": False,
        "is_multilingual": bool(tokens.languages),
    }
    if tokens.languages:
        kwargs["lang_to_id"] = dict(tokens.languages)
        kwargs["task_to_id"] = {"transcribe": tokens.transcribe, "translate": tokens.translate}
    return kwargs


@dataclass
class HfWhisper:
    """A ``transformers`` Whisper model with its tokenizer and feature extractor."""

    model: Any  # WhisperForConditionalGeneration
    tokenizer: Any  # WhisperTokenizer
    feature_extractor: Any  # WhisperFeatureExtractor
    source: str  # where it came from (a CTranslate2 or Hugging Face folder)

    def save(self, output_dir: str | os.PathLike[str]) -> Path:
        out = Path(output_dir)
        out.mkdir(parents=True, exist_ok=True)
        self.model.save_pretrained(out)
        self.tokenizer.save_pretrained(out)
        self.feature_extractor.save_pretrained(out)
        return out


def ct2_to_hf(name_or_path: str | os.PathLike[str]) -> HfWhisper:
    """Build a float32 ``transformers`` Whisper from a CTranslate2 model (name or folder)."""
    require_extra(EXTRA, TORCH_MODULES, "converting a model to transformers")
    import torch
    from transformers import (
        GenerationConfig,
        WhisperConfig,
        WhisperFeatureExtractor,
        WhisperForConditionalGeneration,
        WhisperTokenizer,
    )

    resolved = resolve(name_or_path)
    folder = resolved.path
    if not (folder / "tokenizer.json").is_file():
        raise ModelLoadError(f"{folder}: no tokenizer.json, cannot build the transformers model")
    ct2 = read_model(folder)
    tokenizer = WhisperTokenizer(tokenizer_file=str(folder / "tokenizer.json"))
    tokens = special_tokens(tokenizer, list(ct2.config.get("lang_ids") or []))
    config = WhisperConfig(**whisper_config_kwargs(ct2, tokens))
    with torch.device("meta"):  # no random initialisation: every weight is assigned below
        model = WhisperForConditionalGeneration(config)
    # One tensor per parameter: CTranslate2 stores equal tensors once (all-ones layer norms of a
    # fresh model, say), and shared parameters would train as one.
    state = {
        k: torch.from_numpy(np.array(a, dtype=np.float32)) for k, a in hf_state_dict(ct2).items()
    }
    result = model.load_state_dict(state, strict=False, assign=True)
    missing = list(result.missing_keys)
    if missing or result.unexpected_keys:
        raise ModelLoadError(
            f"{folder}: weights do not fit WhisperForConditionalGeneration "
            f"(missing {missing[:3]}, unexpected {result.unexpected_keys[:3]})"
        )
    model.tie_weights()
    model.generation_config = GenerationConfig(
        **generation_config_kwargs(ct2.config, tokens, config.max_target_positions)
    )
    model.eval()
    extractor = WhisperFeatureExtractor(feature_size=config.num_mel_bins)
    logger.info("built transformers Whisper from %s (%s)", folder, ct2.stored_dtype)
    return HfWhisper(model, tokenizer, extractor, str(folder))


def load_hf(path: str | os.PathLike[str]) -> HfWhisper:
    """Load a Hugging Face Whisper folder (``save_pretrained`` output, as ``convert`` writes)."""
    require_extra(EXTRA, TORCH_MODULES, "loading a transformers model")
    from transformers import (
        WhisperFeatureExtractor,
        WhisperForConditionalGeneration,
        WhisperTokenizer,
    )

    folder = Path(path)
    if not (folder / "config.json").is_file():
        raise ModelLoadError(f"{folder}: not a Hugging Face model folder (no config.json)")
    try:
        model = WhisperForConditionalGeneration.from_pretrained(folder)
        tokenizer = WhisperTokenizer.from_pretrained(folder)
        extractor = WhisperFeatureExtractor.from_pretrained(folder)
    except (OSError, ValueError) as e:
        raise ModelLoadError(f"cannot load transformers Whisper from {folder}: {e}") from e
    model.eval()
    return HfWhisper(model, tokenizer, extractor, str(folder))


def is_hf_dir(path: str | os.PathLike[str]) -> bool:
    folder = Path(path)
    return (folder / "config.json").is_file() and any(
        (folder / f).is_file() for f in ("model.safetensors", "pytorch_model.bin")
    )


def load_any(name_or_path: str | os.PathLike[str]) -> HfWhisper:
    """A transformers Whisper from a Hugging Face folder, or converted from a CTranslate2 one."""
    if is_hf_dir(name_or_path):
        return load_hf(name_or_path)
    return ct2_to_hf(name_or_path)


def convert_ct2_to_hf(
    name_or_path: str | os.PathLike[str], output_dir: str | os.PathLike[str]
) -> Path:
    """Write a CTranslate2 model as a Hugging Face folder (safetensors, float32)."""
    return ct2_to_hf(name_or_path).save(output_dir)
