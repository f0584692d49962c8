"""Model registry: assembly from the PyPI weight packages into a private cache, verification,
recovery from interrupted installs, and clear errors for everything else. Never the network."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import socket
import time
from pathlib import Path

import pytest

from malsori import registry
from malsori.errors import ModelDownloadError, ModelError, ModelNotFoundError

BASE = registry.PACKAGED["base"]


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Hugging Face offline mode, and a record of any socket connection attempted anyway."""
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    attempts: list[object] = []

    def refuse(self: socket.socket, address: object) -> None:
        attempts.append(address)
        raise OSError("network disabled in tests")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    return attempts


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MALSORI_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture(scope="module")
def assembled(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``base`` assembled once into a private home, to be hard-linked into each test's home."""
    template = tmp_path_factory.mktemp("template-home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MALSORI_HOME", str(template))
        registry.resolve("base")
    return template


@pytest.fixture
def installed(home: Path, assembled: Path) -> Path:
    """A home with ``base`` installed (hard links: replacing files never touches the template)."""
    shutil.copytree(assembled, home, copy_function=os.link)
    return home / "models" / "base"


def _partials(models: Path) -> list[str]:
    return [p.name for p in models.iterdir() if ".partial-" in p.name] if models.exists() else []


def _installed(name: str) -> bool:
    return next(r for r in registry.list_models() if r.name == name).installed


def test_home_is_the_environment_variable(home: Path) -> None:
    assert registry.malsori_home() == home
    assert registry.models_dir() == home / "models"


def test_resolve_assembles_a_verified_folder_once(home: Path) -> None:
    assert not _installed("base")
    resolved = registry.resolve("base")
    target = home / "models" / "base"
    assert (resolved.name, resolved.path, resolved.source) == ("base", target, "pypi")
    marker = json.loads((target / registry.MARKER).read_text())
    assert marker["name"] == "base"
    assert set(marker["files"]) == {f.name for f in BASE.files}
    for spec in BASE.files:
        assert (target / spec.name).stat().st_size == spec.size
        assert marker["files"][spec.name] == {"size": spec.size, "sha256": spec.sha256}
    config = BASE.files[1]
    assert hashlib.sha256((target / config.name).read_bytes()).hexdigest() == config.sha256
    assert registry.is_model_dir(target)
    assert _partials(home / "models") == []
    assert _installed("base")

    # Second time: from the cache, nothing rewritten.
    mtime = (target / "model.bin").stat().st_mtime_ns
    again = registry.resolve("base")
    assert (again.path, again.source) == (target, "cache")
    assert (target / "model.bin").stat().st_mtime_ns == mtime


def test_folder_without_marker_is_not_installed_and_is_reassembled(
    home: Path, installed: Path
) -> None:
    target = installed
    assert _installed("base")
    # A process killed between writing the files and the marker: files all there, no marker,
    # plus the temporary folder it was working in.
    (target / registry.MARKER).unlink()
    (home / "models" / ".base.partial-killed").mkdir()
    assert registry.is_model_dir(target)  # looks like a model ...
    assert not _installed("base")  # ... but is not trusted
    assert "base" not in [r.name for r in registry.list_models() if r.source == "local"]
    resolved = registry.resolve("base")
    assert resolved.source == "pypi"  # assembled again
    assert (target / registry.MARKER).is_file()
    assert _installed("base")


def test_cached_file_of_the_wrong_size_is_detected(installed: Path) -> None:
    spec = next(f for f in BASE.files if f.name == "model.bin")
    (installed / "model.bin").unlink()  # a new file: the template's link stays whole
    with open(installed / "model.bin", "wb") as f:  # cut short, like an interrupted copy
        f.truncate(spec.size - 4096)
    assert not _installed("base")
    assert registry.resolve("base").source == "pypi"
    assert (installed / "model.bin").stat().st_size == spec.size
    assert _installed("base")


def test_checksum_mismatch_installs_nothing(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = next(f for f in BASE.files if f.name == "config.json")
    bad = dataclasses.replace(BASE, files=(dataclasses.replace(config, sha256="0" * 64),))
    monkeypatch.setitem(registry.PACKAGED, "base", bad)
    with pytest.raises(ModelError, match="does not match"):
        registry.resolve("base")
    assert not (home / "models" / "base").exists()
    assert _partials(home / "models") == []


def test_pull_force_reassembles(installed: Path) -> None:
    target = registry.pull("base").path
    assert target == installed
    (target / "stray.txt").write_text("left by someone")
    assert registry.pull("base", force=True).path == target
    assert not (target / "stray.txt").exists()
    assert _installed("base")


def test_hub_model_offline_fails_fast_with_a_clear_message(
    home: Path, offline: list[object]
) -> None:
    started = time.monotonic()
    with pytest.raises(ModelDownloadError, match="'large-v3' cannot be downloaded") as info:
        registry.resolve("large-v3")
    assert time.monotonic() - started < 10
    assert "\n" not in str(info.value)
    assert info.value.exit_code == 4
    with pytest.raises(ModelNotFoundError, match="not in the local cache"):
        registry.resolve("large-v3", download=False)
    with pytest.raises(ModelDownloadError):
        registry.pull("small")
    assert offline == []  # offline mode stopped it before any connection


@pytest.mark.parametrize("name", ["nosuchmodel", "base-v9", "whisper"])
def test_unknown_names(home: Path, name: str) -> None:
    with pytest.raises(ModelNotFoundError, match=f"unknown model '{name}'") as info:
        registry.resolve(name)
    assert "base" in str(info.value) and "large-v3" in str(info.value)  # lists the names
    with pytest.raises(ModelNotFoundError):
        registry.pull(name)


def test_paths_that_are_not_models(home: Path, tmp_path: Path) -> None:
    folder = tmp_path / "not-a-model"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    with pytest.raises(ModelNotFoundError, match="not a CTranslate2 Whisper model folder"):
        registry.resolve(folder)
    with pytest.raises(ModelNotFoundError, match="not a CTranslate2 Whisper model folder"):
        registry.resolve(folder / "config.json")
    with pytest.raises(ModelNotFoundError, match="no such model folder"):
        registry.resolve("./missing-model")
    with pytest.raises(ModelNotFoundError, match="no such model folder"):
        registry.resolve(str(tmp_path / "missing-model"))


def _fake_model_dir(folder: Path) -> Path:
    folder.mkdir(parents=True)
    for name in ("model.bin", "config.json", "vocabulary.txt"):
        (folder / name).write_text("x")
    return folder


def test_model_folders_by_path_and_registered_names(home: Path, tmp_path: Path) -> None:
    folder = _fake_model_dir(tmp_path / "my-model")
    resolved = registry.resolve(folder)
    assert (resolved.name, resolved.path, resolved.source) == ("my-model", folder, "path")

    _fake_model_dir(home / "models" / "finetuned-ko")
    resolved = registry.resolve("finetuned-ko")
    assert (resolved.path, resolved.source) == (home / "models" / "finetuned-ko", "cache")
    local = [r for r in registry.list_models() if r.source == "local"]
    assert [(r.name, r.installed) for r in local] == [("finetuned-ko", True)]

    assert registry.remove("finetuned-ko") == home / "models" / "finetuned-ko"
    assert not (home / "models" / "finetuned-ko").exists()
    with pytest.raises(ModelNotFoundError):
        registry.remove("finetuned-ko")


def test_list_shows_packaged_and_hub_names_uninstalled_in_an_empty_home(home: Path) -> None:
    rows = {r.name: r for r in registry.list_models()}
    assert rows["base"].source == "pypi" and rows["tiny.en"].source == "pypi"
    assert rows["large-v3"].source == "hub"
    assert not any(r.installed for r in rows.values())
    assert all(r.path is None for r in rows.values())


def test_a_folder_named_like_a_model_in_the_working_directory(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    work = tmp_path / "project"
    (work / "base").mkdir(parents=True)  # e.g. a project's "base" data folder
    monkeypatch.chdir(work)
    assert os.path.isdir("base")
    assert registry.resolve("base").path == home / "models" / "base"
