"""Registering a CTranslate2 folder under a name in malsori's model cache.

A registered model is ``$MALSORI_HOME/models/NAME`` with the same completeness marker the
packaged models get (``registry.MARKER``: every file with its size), so ``registry.resolve``
finds it by name and ``malsori transcribe --model NAME``, ``batch`` and ``serve`` load it. The
folder is moved (or copied) into a temporary sibling and renamed into place, so a reader never
sees half a model.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

from ..errors import InvalidOptionError, ModelError, OutputError
from ..registry import MARKER, PACKAGED, is_model_dir, models_dir

logger = logging.getLogger(__name__)

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


def check_name(name: str) -> str:
    """A name usable as a cache folder that does not shadow a packaged model."""
    if not _NAME.fullmatch(name):
        raise InvalidOptionError(
            f"model name {name!r}: use letters, digits, '.', '_' and '-' (no slashes), "
            "starting with a letter or digit"
        )
    if name in PACKAGED:
        raise InvalidOptionError(f"model name {name!r} is taken by a packaged model")
    return name


def registered_path(name: str) -> Path:
    return models_dir() / check_name(name)


def register_model(
    folder: str | os.PathLike[str],
    name: str,
    *,
    source: str,
    info: dict[str, Any] | None = None,
    force: bool = False,
    move: bool = False,
) -> Path:
    """Put the CTranslate2 model at ``folder`` into the cache as ``name`` and return its path.

    ``source`` ("finetune", "convert", "quantize") and ``info`` are recorded in the marker.
    Raises OutputError when ``name`` exists and ``force`` is not set.
    """
    src = Path(folder)
    if not is_model_dir(src):
        raise ModelError(f"{src}: not a CTranslate2 Whisper model folder")
    target = registered_path(name)
    if target.exists() and not force:
        raise OutputError(f"model {name!r} already exists in {target.parent} (use --force)")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{name}.partial-", dir=target.parent))
    except OSError as e:
        raise OutputError(f"cannot write to the model cache {target.parent}: {e}") from e
    try:
        staged = tmp / "model"
        if move:
            shutil.move(str(src), staged)
        else:
            shutil.copytree(src, staged)
        files = {
            p.name: {"size": p.stat().st_size}
            for p in sorted(staged.iterdir())
            if p.is_file() and p.name != MARKER
        }
        marker = {"name": name, "source": source, "files": files, **(info or {})}
        (staged / MARKER).write_text(json.dumps(marker, indent=2, default=str), encoding="utf-8")
        if target.exists():
            shutil.rmtree(target)
        os.replace(staged, target)
    except OSError as e:
        raise OutputError(f"cannot register model {name!r} in {target.parent}: {e}") from e
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    logger.info("registered model %s at %s", name, target)
    return target


def read_marker(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The marker of a registered model ({} when there is none or it is unreadable)."""
    try:
        data = json.loads((Path(path) / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
