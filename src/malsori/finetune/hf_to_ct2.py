"""Hugging Face Whisper folder -> CTranslate2, with ``ctranslate2``'s own converter.

``TransformersConverter`` reads the ``transformers`` checkpoint (the generation config gives it
the language ids and alignment heads), fuses the attention projections and quantizes the weights
(int8 by default, what malsori runs on CPU). The tokenizer and feature-extractor files are copied
so faster-whisper finds them next to ``model.bin``.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path

from ..errors import InvalidOptionError, ModelLoadError, OutputError, require_extra
from ..model import COMPUTE_TYPES

logger = logging.getLogger(__name__)

# What CTranslate2 can store a model as: its compute types, less the automatic choices.
QUANTIZATIONS: tuple[str, ...] = tuple(t for t in COMPUTE_TYPES if t not in ("auto", "default"))
_COPY_FILES = ("tokenizer.json", "preprocessor_config.json")


def check_quantization(quantization: str) -> str:
    if quantization not in QUANTIZATIONS:
        raise InvalidOptionError(
            f"unknown quantization {quantization!r}: use one of {', '.join(QUANTIZATIONS)}"
        )
    return quantization


def convert_hf_to_ct2(
    hf_dir: str | os.PathLike[str],
    output_dir: str | os.PathLike[str],
    *,
    quantization: str = "int8",
    force: bool = False,
) -> Path:
    """Convert a ``save_pretrained`` Whisper folder into a CTranslate2 folder at ``output_dir``.

    The conversion is written into a temporary sibling folder and renamed into place, so a failed
    or interrupted conversion leaves nothing at ``output_dir``.
    """
    require_extra("finetune", ("torch", "transformers"), "converting to CTranslate2")
    check_quantization(quantization)
    from ctranslate2.converters import TransformersConverter

    src, out = Path(hf_dir), Path(output_dir)
    if not (src / "config.json").is_file():
        raise ModelLoadError(f"{src}: not a Hugging Face model folder (no config.json)")
    if out.exists() and not force:
        raise OutputError(f"{out} already exists (use --force to replace it)")
    copy = [f for f in _COPY_FILES if (src / f).is_file()]
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    except OSError as e:
        raise OutputError(f"cannot write to {out.parent}: {e}") from e
    try:
        converter = TransformersConverter(str(src), copy_files=copy, load_as_float16=False)
        try:
            converter.convert(str(tmp), quantization=quantization, force=True)
        except (ValueError, OSError, RuntimeError, KeyError) as e:
            raise ModelLoadError(f"cannot convert {src} to CTranslate2: {e}") from e
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    logger.info("converted %s to CTranslate2 %s in %s", src, quantization, out)
    return out
