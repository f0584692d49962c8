"""The packaged CTranslate2 weights in the formats of the other engines ``malsori bench`` runs.

Every conversion starts from ``malsori.finetune.ct2_format.read_model`` (the packaged weights,
dequantized to float32) and is written once into malsori's cache
(``$MALSORI_HOME/bench/<model>-<fingerprint>/``), so later runs only load:

- ``ct2_precision``: a CTranslate2 copy stored in another precision (``malsori.quantize``).
- ``hf_folder``: a Hugging Face ``transformers`` folder (``malsori.finetune.ct2_to_hf``).
- ``openai_whisper_checkpoint``: the ``{"dims", "model_state_dict"}`` file ``whisper.load_model``
  reads, mapped from the transformers names (below).
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..registry import malsori_home, resolve

logger = logging.getLogger(__name__)


def cache_dir(model: str) -> Path:
    """Where the conversions of ``model`` live: named after the model and its ``model.bin``
    (size and modification time), so a replaced model is converted again."""
    resolved = resolve(model)
    weights = resolved.path / "model.bin"
    stat = weights.stat()
    key = hashlib.sha256(f"{weights.resolve()}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    folder = malsori_home() / "bench" / f"{resolved.name}-{key.hexdigest()[:12]}"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _cached(target: Path, write: Callable[[Path], None]) -> Path:
    """``target`` if it exists; else written by ``write`` into a temporary sibling and renamed,
    so an interrupted conversion never leaves a half-written file behind."""
    if target.exists():
        return target
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.partial-", dir=target.parent))
    try:
        out = tmp / target.name
        write(out)
        os.replace(out, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    logger.info("converted %s", target)
    return target


def ct2_precision(model: str, quantization: str) -> Path:
    """A CTranslate2 folder with the weights stored as ``quantization`` (int8, float32, ...)."""
    from ..quantize import quantize_ct2

    def write(out: Path) -> None:
        quantize_ct2(model, quantization, output_dir=out)

    return _cached(cache_dir(model) / f"ct2-{quantization}", write)


def hf_folder(model: str) -> Path:
    """A float32 Hugging Face ``transformers`` Whisper folder."""
    from ..finetune.ct2_to_hf import convert_ct2_to_hf

    def write(out: Path) -> None:
        convert_ct2_to_hf(model, out)

    return _cached(cache_dir(model) / "transformers", write)


# --- openai-whisper ------------------------------------------------------------------------

# transformers name inside a layer -> openai-whisper name (``attn`` is self-attention).
_OPENAI_LAYER = {
    "self_attn.q_proj": "attn.query",
    "self_attn.k_proj": "attn.key",
    "self_attn.v_proj": "attn.value",
    "self_attn.out_proj": "attn.out",
    "self_attn_layer_norm": "attn_ln",
    "encoder_attn.q_proj": "cross_attn.query",
    "encoder_attn.k_proj": "cross_attn.key",
    "encoder_attn.v_proj": "cross_attn.value",
    "encoder_attn.out_proj": "cross_attn.out",
    "encoder_attn_layer_norm": "cross_attn_ln",
    "fc1": "mlp.0",
    "fc2": "mlp.2",
    "final_layer_norm": "mlp_ln",
}


def openai_state_dict(hf: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """openai-whisper's state dict from a transformers one (``ct2_to_hf.hf_state_dict``).

    The names differ, not the tensors: ``model.encoder.layers.N`` is ``encoder.blocks.N``, the
    final layer norms are ``ln_post`` (encoder) and ``ln`` (decoder), positions are plain
    tensors, and the output projection is the token embedding (tied in both).
    """
    state: dict[str, np.ndarray] = {}
    for name, value in hf.items():
        if name == "proj_out.weight":
            continue  # openai-whisper multiplies by token_embedding.weight
        parts = name.removeprefix("model.").split(".")
        stack, rest = parts[0], parts[1:]
        if rest[0] == "layers":
            inner, leaf = ".".join(rest[2:-1]), rest[-1]
            state[f"{stack}.blocks.{rest[1]}.{_OPENAI_LAYER[inner]}.{leaf}"] = value
        elif rest[0] == "layer_norm":
            ln = "ln_post" if stack == "encoder" else "ln"
            state[f"{stack}.{ln}.{rest[1]}"] = value
        elif rest[0] == "embed_positions":
            state[f"{stack}.positional_embedding"] = value
        elif rest[0] == "embed_tokens":
            state["decoder.token_embedding.weight"] = value
        else:  # conv1, conv2
            state[f"{stack}.{'.'.join(rest)}"] = value
    return state


def openai_dims(hf: dict[str, np.ndarray], heads: tuple[int, int]) -> dict[str, int]:
    """``whisper.model.ModelDimensions`` of the weights (head counts are not in the shapes)."""

    def layers(stack: str) -> int:
        prefix = f"model.{stack}.layers."
        return len({k[len(prefix) :].split(".")[0] for k in hf if k.startswith(prefix)})

    embeddings = hf["model.decoder.embed_tokens.weight"]
    return {
        "n_mels": int(hf["model.encoder.conv1.weight"].shape[1]),
        "n_audio_ctx": int(hf["model.encoder.embed_positions.weight"].shape[0]),
        "n_audio_state": int(hf["model.encoder.embed_positions.weight"].shape[1]),
        "n_audio_head": heads[0],
        "n_audio_layer": layers("encoder"),
        "n_vocab": int(embeddings.shape[0]),
        "n_text_ctx": int(hf["model.decoder.embed_positions.weight"].shape[0]),
        "n_text_state": int(embeddings.shape[1]),
        "n_text_head": heads[1],
        "n_text_layer": layers("decoder"),
    }


def openai_whisper_checkpoint(model: str) -> Path:
    """A checkpoint file for ``whisper.load_model(path)`` (float32; no alignment heads: the
    benchmark needs no word times, and openai-whisper does not save them)."""

    def write(out: Path) -> None:
        import torch

        from ..finetune.ct2_format import read_model
        from ..finetune.ct2_to_hf import hf_state_dict

        ct2 = read_model(resolve(model).path)
        hf = hf_state_dict(ct2)
        v = ct2.resolved()
        dims = openai_dims(hf, (int(v["encoder/num_heads"]), int(v["decoder/num_heads"])))
        state = {
            k: torch.from_numpy(np.array(a, dtype=np.float32))
            for k, a in openai_state_dict(hf).items()
        }
        torch.save({"dims": dims, "model_state_dict": state}, out)

    return _cached(cache_dir(model) / "openai-whisper.pt", write)


def tensor_bytes(state: dict[str, Any]) -> int:
    """Bytes of the tensors of a state dict (its size in memory, as stored)."""
    return sum(
        int(t.numel()) * int(t.element_size()) for t in state.values() if hasattr(t, "numel")
    )
