"""A tiny, randomly initialised Whisper (a few MB) in both formats, for fast fine-tuning tests.

Its tokenizer and its language and task tokens are the real ones of the packaged ``base`` model
(only the weights are random), so data, labels, generation and conversion run as for a real one.
"""

from __future__ import annotations

import json
from pathlib import Path

TINY = {  # small enough that a training step takes well under a second on one core
    "d_model": 64,
    "encoder_layers": 1,
    "decoder_layers": 1,
    "encoder_attention_heads": 2,
    "decoder_attention_heads": 2,
    "encoder_ffn_dim": 128,
    "decoder_ffn_dim": 128,
}


def make_tiny_whisper(base_dir: Path, out_dir: Path, seed: int = 0) -> Path:
    """Save a random tiny WhisperForConditionalGeneration with ``base_dir``'s tokenizer."""
    import torch
    from transformers import (
        GenerationConfig,
        WhisperConfig,
        WhisperFeatureExtractor,
        WhisperForConditionalGeneration,
        WhisperTokenizer,
    )

    from malsori.finetune.ct2_to_hf import generation_config_kwargs, special_tokens

    ct2_config = json.loads((base_dir / "config.json").read_text())
    ct2_config["alignment_heads"] = [[0, 0], [0, 1]]
    tokenizer = WhisperTokenizer(tokenizer_file=str(base_dir / "tokenizer.json"))
    tokens = special_tokens(tokenizer, ct2_config["lang_ids"])
    torch.manual_seed(seed)
    config = WhisperConfig(
        vocab_size=len(tokenizer),
        num_mel_bins=80,
        max_source_positions=1500,
        max_target_positions=448,
        decoder_start_token_id=tokens.sot,
        pad_token_id=tokens.eot,
        bos_token_id=tokens.eot,
        eos_token_id=tokens.eot,
        suppress_tokens=None,
        begin_suppress_tokens=None,
        **TINY,
    )
    model = WhisperForConditionalGeneration(config)
    model.generation_config = GenerationConfig(**generation_config_kwargs(ct2_config, tokens, 448))
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    WhisperFeatureExtractor(feature_size=80).save_pretrained(out_dir)
    return out_dir
