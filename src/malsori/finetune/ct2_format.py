"""CTranslate2's ``model.bin``: read it into NumPy arrays, and write a Whisper model back.

The layout (``ctranslate2/specs/model_spec.py``, ``ModelSpec._serialize``)::

    uint32 binary version, string spec name, uint32 spec revision, uint32 variable count,
    per variable: string name, uint8 rank, uint32 x rank shape, uint8 dtype id,
                  uint32 byte count, raw bytes (little-endian),
    uint32 alias count, per alias: string alias, string variable name;
    a string is uint16 length (with the NUL), UTF-8 bytes, NUL.

Quantized weights are stored with a companion ``<name>_scale``: int8 rows were multiplied by
``127 / max|row|`` and int16 tensors by ``2**10 / max|w|``, so dividing by the scale gives the
float weights back (``dequantize=True``). No torch needed: ``write_whisper`` re-quantizes through
``ctranslate2.specs.WhisperSpec``, which is how ``malsori quantize`` changes a model's precision.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

from ..errors import ModelLoadError

logger = logging.getLogger(__name__)

# The order of CTranslate2's DataType enum (include/ctranslate2/types.h).
_DTYPES: tuple[str, ...] = ("float32", "int8", "int16", "int32", "float16", "bfloat16")
SPEC_NAME = "WhisperSpec"
# Files besides model.bin and config.json that travel with a CTranslate2 Whisper folder.
SIDE_FILES = ("tokenizer.json", "vocabulary.json", "vocabulary.txt", "preprocessor_config.json")


@dataclass(frozen=True)
class Ct2Model:
    """The variables of one ``model.bin`` (aliases resolved) and its folder's config."""

    path: Path
    spec: str
    revision: int
    variables: dict[str, np.ndarray]
    aliases: dict[str, str]  # alias name -> variable name
    config: dict[str, Any]
    stored_dtype: str  # dtype of the largest weight as stored ("float16", "int8", ...)

    def get(self, name: str) -> np.ndarray:
        return self.variables[self.aliases.get(name, name)]

    def resolved(self) -> dict[str, np.ndarray]:
        """Every variable by name, aliases included (equal tensors are stored once)."""
        return {**self.variables, **{a: self.variables[t] for a, t in self.aliases.items()}}

    def count_layers(self, stack: str) -> int:
        pattern = re.compile(rf"^{stack}/layer_(\d+)/")
        return 1 + max(int(m.group(1)) for n in self.variables if (m := pattern.match(n)))


def _read_string(f: IO[bytes]) -> str:
    (length,) = struct.unpack("<H", f.read(2))
    return f.read(length)[:-1].decode("utf-8")


def _read_array(f: IO[bytes]) -> np.ndarray:
    (rank,) = struct.unpack("<B", f.read(1))
    shape = struct.unpack(f"<{rank}I", f.read(4 * rank)) if rank else ()
    (type_id,) = struct.unpack("<B", f.read(1))
    (nbytes,) = struct.unpack("<I", f.read(4))
    raw = f.read(nbytes)
    if len(raw) != nbytes:
        raise ValueError("truncated variable")
    dtype = _DTYPES[type_id]
    if dtype == "bfloat16":  # no NumPy bfloat16: widen the 16 bits into float32's high half
        bits = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
        return bits.view(np.float32).reshape(shape)
    return np.frombuffer(raw, dtype=np.dtype(dtype).newbyteorder("<")).reshape(shape).copy()


def _dequantize(variables: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for name, value in variables.items():
        if name.endswith("_scale"):
            continue
        scale = variables.get(f"{name}_scale")
        if scale is not None and value.dtype in (np.int8, np.int16):
            s = scale.astype(np.float32)
            if value.ndim >= 2 and s.ndim == 1:  # int8: one scale per output row
                s = s.reshape((-1,) + (1,) * (value.ndim - 1))
            value = value.astype(np.float32) / s
        elif value.dtype in (np.float16,):
            value = value.astype(np.float32)
        out[name] = value
    return out


def read_model(path: str | os.PathLike[str], *, dequantize: bool = True) -> Ct2Model:
    """Read a CTranslate2 model folder (``model.bin`` and ``config.json``).

    With ``dequantize`` every float16/bfloat16/int8/int16 weight comes back as float32 and the
    ``*_scale`` companions are dropped. Raises ModelLoadError for a file that is not one.
    """
    folder = Path(path)
    model_bin = folder / "model.bin"
    try:
        with open(model_bin, "rb") as f:
            (version,) = struct.unpack("<I", f.read(4))
            if version < 5:
                raise ModelLoadError(f"{model_bin}: binary version {version} is not supported")
            spec = _read_string(f)
            (revision,) = struct.unpack("<I", f.read(4))
            (count,) = struct.unpack("<I", f.read(4))
            variables = {}
            for _ in range(count):
                name = _read_string(f)
                variables[name] = _read_array(f)
            (n_aliases,) = struct.unpack("<I", f.read(4))
            aliases = {}
            for _ in range(n_aliases):
                alias = _read_string(f)
                aliases[alias] = _read_string(f)
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, struct.error, ValueError, IndexError, UnicodeDecodeError) as e:
        raise ModelLoadError(f"cannot read CTranslate2 model {folder}: {e}") from e
    largest = max(variables.values(), key=lambda a: a.size)
    stored = str(largest.dtype)
    if dequantize:
        variables = _dequantize(variables)
    logger.debug("read %d variables (%s, stored %s) from %s", len(variables), spec, stored, folder)
    return Ct2Model(folder, spec, revision, variables, aliases, config, stored)


def _spec_attribute(spec: Any, name: str) -> tuple[Any, str]:
    """The object holding variable ``name`` ("encoder/layer_0/ffn/linear_1/bias") and the key."""
    *scopes, attr = name.split("/")
    obj = spec
    for scope in scopes:
        m = re.fullmatch(r"(.+)_(\d+)", scope)
        if m and isinstance(getattr(obj, m.group(1), None), list):
            obj = getattr(obj, m.group(1))[int(m.group(2))]
        else:
            obj = getattr(obj, scope)
    return obj, attr


def _vocabulary(folder: Path) -> list[str]:
    if (folder / "vocabulary.json").is_file():
        return list(json.loads((folder / "vocabulary.json").read_text(encoding="utf-8")))
    lines = (folder / "vocabulary.txt").read_text(encoding="utf-8").split("\n")
    return lines[:-1] if lines and lines[-1] == "" else lines


def build_whisper_spec(model: Ct2Model, vocabulary: list[str]) -> Any:
    """A ``ctranslate2.specs.WhisperSpec`` holding ``model``'s (dequantized) weights."""
    from ctranslate2.specs import whisper_spec

    if model.spec != SPEC_NAME:
        raise ModelLoadError(f"{model.path}: a {model.spec}, not a Whisper model")
    spec = whisper_spec.WhisperSpec(
        model.count_layers("encoder"),
        int(model.variables["encoder/num_heads"]),
        model.count_layers("decoder"),
        int(model.variables["decoder/num_heads"]),
    )
    for name, value in model.variables.items():
        if name.endswith("_scale"):
            raise ModelLoadError(f"{model.path}: read the model with dequantize=True to rewrite it")
        holder, attr = _spec_attribute(spec, name)
        if np.issubdtype(value.dtype, np.floating) or getattr(holder, attr, None) is None:
            setattr(holder, attr, value.copy())  # optimize() quantizes the arrays in place
    for alias, target in model.aliases.items():
        holder, attr = _spec_attribute(spec, alias)
        setattr(holder, attr, model.variables[target].copy())
    for key, value in model.config.items():
        if hasattr(spec.config, key):
            setattr(spec.config, key, value)
    spec.register_vocabulary(vocabulary)
    return spec


def write_whisper(model: Ct2Model, output_dir: str | os.PathLike[str], quantization: str) -> Path:
    """Write ``model`` (read with ``dequantize=True``) as a CTranslate2 folder in ``quantization``
    (int8, int8_float16, int16, float16, bfloat16, float32...), with its tokenizer files."""
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    spec = build_whisper_spec(model, _vocabulary(model.path))
    spec.validate()
    spec.optimize(quantization=quantization)
    spec.save(str(out))
    for name in SIDE_FILES:
        src = model.path / name
        if src.is_file() and not (out / name).exists():
            shutil.copyfile(src, out / name)
    logger.info("wrote %s model to %s", quantization, out)
    return out


def weights_dtype(path: str | os.PathLike[str]) -> str:
    """The stored dtype of a CTranslate2 model's weights, without dequantizing."""
    return read_model(path, dequantize=False).stored_dtype
