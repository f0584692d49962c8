"""whisper.cpp (through ``pywhispercpp``) on the packaged weights, written as a ggml file.

The ggml file whisper.cpp's loader reads, as its source describes it:

- the magic ``0x67676d6c`` ("ggml"), then eleven int32 hyper-parameters: n_vocab, n_audio_ctx,
  n_audio_state, n_audio_head, n_audio_layer, n_text_ctx, n_text_state, n_text_head,
  n_text_layer, n_mels, ftype (``1000 * quantization version + GGML_FTYPE``);
- the mel filter bank: int32 n_mels, int32 n_fft bins, float32 ``n_mels x bins``;
- the vocabulary before ``<|endoftext|>``: int32 count, then each token as int32 length + bytes
  (whisper.cpp adds the special tokens itself from n_vocab);
- tensors to the end of the file: int32 n_dims, name length, ggml type; n_dims int32 sizes,
  innermost first; the name; the data. Names are openai-whisper's
  (``malsori.bench.convert.openai_state_dict``); conv biases are ``[1, n_state]``.

Which tensors take which type is fixed by the loader: 1-D tensors, conv biases and positional
embeddings float32; conv kernels float16; the other matrices the file's type (f16, q8_0 or q5_0).
The two quantized types are written here from their block layouts (32 values a block):
``q8_0`` is a float16 scale and 32 int8; ``q5_0`` a float16 scale, 32 high bits and 32 low
nibbles of ``round(x / d) + 16`` with ``d = -max / 16``. pywhispercpp exposes no quantizer.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, ClassVar

import numpy as np

from .base import BenchConfig, Output, _missing, folder_size

MAGIC = 0x67676D6C
QK = 32  # values per quantized block
QNT_VERSION = 2  # ggml's quantization format version, stored in ftype's thousands
F32, F16, Q5_0, Q8_0 = 0, 1, 6, 8  # ggml tensor types
FTYPES = {"f16": 1, "q8_0": 7, "q5_0": 8}  # ggml file types
TENSOR_TYPE = {"f16": F16, "q8_0": Q8_0, "q5_0": Q5_0}


def _gpt2_byte_alphabet() -> dict[str, int]:
    """Byte-level BPE's printable stand-ins: bytes that print as themselves keep their code,
    the others (controls, space, ...) take code points from 256 on, in byte order."""
    printable = [*range(33, 127), *range(161, 173), *range(174, 256)]
    table = {chr(b): b for b in printable}
    extra = 0
    for b in range(256):
        if b not in printable:
            table[chr(256 + extra)] = b
            extra += 1
    return table


def vocabulary_bytes(tokenizer_json: Path) -> list[bytes]:
    """The regular tokens (ids before ``<|endoftext|>``) as the bytes they stand for."""
    data = json.loads(tokenizer_json.read_text(encoding="utf-8"))
    vocab: dict[str, int] = data["model"]["vocab"]
    added = {t["content"]: t["id"] for t in data.get("added_tokens", [])}
    eot = added.get("<|endoftext|>", vocab.get("<|endoftext|>"))
    if eot is None:
        raise ValueError(f"{tokenizer_json}: no <|endoftext|> token")
    alphabet = _gpt2_byte_alphabet()
    by_id = {i: t for t, i in vocab.items() if i < eot}
    return [bytes(alphabet[c] for c in by_id[i]) for i in range(eot)]


def quantize_q8_0(x: np.ndarray) -> bytes:
    blocks = x.astype(np.float32).reshape(-1, QK)
    amax = np.abs(blocks).max(axis=1)
    d = amax / 127.0
    inv = np.divide(1.0, d, out=np.zeros_like(d), where=d != 0)
    q = np.round(blocks * inv[:, None]).astype(np.int8)
    out = np.empty(len(blocks), dtype=[("d", "<f2"), ("qs", "i1", QK)])
    out["d"], out["qs"] = d.astype(np.float16), q
    return out.tobytes()


def quantize_q5_0(x: np.ndarray) -> bytes:
    blocks = x.astype(np.float32).reshape(-1, QK)
    signed_max = blocks[np.arange(len(blocks)), np.abs(blocks).argmax(axis=1)]
    d = signed_max / -16.0
    inv = np.divide(1.0, d, out=np.zeros_like(d), where=d != 0)
    q = np.minimum(31, (blocks * inv[:, None] + 16.5).astype(np.int8)).astype(np.uint8)
    low, high = q & 0x0F, (q >> 4) & 1
    qs = low[:, :16] | (low[:, 16:] << 4)
    qh = (high.astype(np.uint32) << np.arange(QK, dtype=np.uint32)).sum(axis=1, dtype=np.uint32)
    out = np.empty(len(blocks), dtype=[("d", "<f2"), ("qh", "<u4"), ("qs", "u1", 16)])
    out["d"], out["qh"], out["qs"] = d.astype(np.float16), qh, qs
    return out.tobytes()


def _tensor_type(name: str, value: np.ndarray, kind: str) -> int:
    if value.ndim == 1 or name.endswith("positional_embedding") or name.endswith("conv1.bias"):
        return F32
    if name.endswith("conv2.bias"):
        return F32
    if value.ndim == 3:  # conv kernels
        return F16
    return TENSOR_TYPE[kind]


def _encode(value: np.ndarray, ttype: int) -> bytes:
    if ttype == F32:
        return np.ascontiguousarray(value, dtype="<f4").tobytes()
    if ttype == F16:
        return np.ascontiguousarray(value, dtype="<f2").tobytes()
    if ttype == Q8_0:
        return quantize_q8_0(value)
    return quantize_q5_0(value)


def _tensors(state: dict[str, np.ndarray]) -> Iterator[tuple[str, np.ndarray]]:
    for name, value in state.items():
        if name in ("encoder.conv1.bias", "encoder.conv2.bias"):
            value = value.reshape(-1, 1)
        yield name, value


def write_ggml(model: str, out: Path, kind: str) -> None:
    """Write ``model`` (a malsori model name or folder) as a whisper.cpp ggml file."""
    from ..finetune.ct2_format import read_model
    from ..finetune.ct2_to_hf import hf_state_dict
    from ..registry import resolve
    from .convert import openai_dims, openai_state_dict

    folder = resolve(model).path
    ct2 = read_model(folder)
    hf = hf_state_dict(ct2)
    v = ct2.resolved()
    dims = openai_dims(hf, (int(v["encoder/num_heads"]), int(v["decoder/num_heads"])))
    with open(out, "wb") as f:
        _write_header(f, dims, FTYPES[kind] + QNT_VERSION * 1000 * (kind != "f16"))
        tokens = vocabulary_bytes(folder / "tokenizer.json")
        f.write(struct.pack("<i", len(tokens)))
        for token in tokens:
            f.write(struct.pack("<i", len(token)) + token)
        for name, value in _tensors(openai_state_dict(hf)):
            ttype = _tensor_type(name, value, kind)
            encoded = name.encode()
            f.write(struct.pack("<iii", value.ndim, len(encoded), ttype))
            f.write(struct.pack(f"<{value.ndim}i", *reversed(value.shape)))
            f.write(encoded)
            f.write(_encode(value, ttype))


def _write_header(f: IO[bytes], dims: dict[str, int], ftype: int) -> None:
    from transformers.audio_utils import mel_filter_bank

    order = ("n_vocab", "n_audio_ctx", "n_audio_state", "n_audio_head", "n_audio_layer",
             "n_text_ctx", "n_text_state", "n_text_head", "n_text_layer", "n_mels")  # fmt: skip
    f.write(struct.pack("<I", MAGIC))
    f.write(struct.pack("<11i", *(dims[k] for k in order), ftype))
    # Whisper's filters: Slaney-scale mel, Slaney normalisation, 400-point FFT at 16 kHz.
    filters = mel_filter_bank(
        num_frequency_bins=201,
        num_mel_filters=dims["n_mels"],
        min_frequency=0.0,
        max_frequency=8000.0,
        sampling_rate=16000,
        norm="slaney",
        mel_scale="slaney",
    ).T
    f.write(struct.pack("<ii", *filters.shape))
    f.write(np.ascontiguousarray(filters, dtype="<f4").tobytes())


class WhisperCpp(BenchConfig):
    """whisper.cpp greedy decoding of a ggml file converted (and quantized) by malsori."""

    extra = "bench"
    kind: ClassVar[str]

    def available(self) -> str | None:
        reason = _missing("pywhispercpp", "transformers") or super().available()
        if reason is None and self.setting.device == "cuda":
            return "the pywhispercpp wheel from PyPI is built for the CPU"
        return reason

    def prepare(self) -> None:
        from .convert import _cached, cache_dir

        self.file = _cached(
            cache_dir(self.setting.model) / f"ggml-{self.kind}.bin",
            lambda out: write_ggml(self.setting.model, out, self.kind),
        )

    def load(self) -> None:
        from pywhispercpp.model import Model

        kwargs: dict[str, Any] = {"n_threads": self.setting.threads} if self.setting.threads else {}
        self.model = Model(str(self.file), redirect_whispercpp_logs_to=None, **kwargs)

    def transcribe(self, path: Path) -> Output:
        import _pywhispercpp as pw

        from ..finetune.data import load_audio

        segments = self.model.transcribe(load_audio(path), language="auto", print_progress=False)
        text = " ".join(s.text.strip() for s in segments)  # pywhispercpp strips each segment
        ctx = self.model._ctx  # type: ignore[attr-defined]
        if not pw.whisper_is_multilingual(ctx):
            return Output(text, "en")
        return Output(text, str(pw.whisper_lang_str(pw.whisper_full_lang_id(ctx))))

    def size_on_disk(self) -> int:
        return folder_size(self.file)


def _config(kind: str) -> type[WhisperCpp]:
    return type(
        f"WhisperCpp_{kind}",
        (WhisperCpp,),
        {
            "name": f"whispercpp-{kind}",
            "summary": f"whisper.cpp (pywhispercpp) on a ggml {kind} file written by malsori",
            "kind": kind,
            "precision": "fp32" if kind == "f16" else "int8",
        },
    )


WHISPERCPP_CONFIGS: tuple[type[WhisperCpp], ...] = tuple(_config(k) for k in FTYPES)
