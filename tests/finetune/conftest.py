"""Fixtures of the fine-tuning tests: the packaged ``base`` folder, a tiny random Whisper in both
formats, and a few short clips rendered with espeak-ng."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from tiny_whisper import make_tiny_whisper

from malsori.registry import resolve

pytest.importorskip("torch", reason="needs the finetune extra")  # the dev extra installs it

# Rendered training clips: (file stem, text). Short, so the tiny model trains on them quickly.
CLIPS = (
    ("zorblax", "The zorblax widget is ready."),
    ("order", "Please order two zorblax units."),
)


@pytest.fixture(scope="session")
def base_dir() -> Path:
    """The packaged base model's CTranslate2 folder (installed by `make`)."""
    return resolve("base").path


@pytest.fixture(scope="session")
def tiny_hf(base_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_whisper(base_dir, tmp_path_factory.mktemp("tiny-hf"))


@pytest.fixture(scope="session")
def tiny_ct2(tiny_hf: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from malsori.finetune.hf_to_ct2 import convert_hf_to_ct2

    out = tmp_path_factory.mktemp("tiny-ct2") / "model"
    return convert_hf_to_ct2(tiny_hf, out, quantization="float32")


@pytest.fixture(scope="session")
def clips(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with the rendered CLIPS, a ``.txt`` beside each and a ``train.tsv`` manifest."""
    d = tmp_path_factory.mktemp("clips")
    rows = []
    for stem, text in CLIPS:
        subprocess.run(["espeak-ng", "-w", str(d / f"{stem}.wav"), text], check=True)
        (d / f"{stem}.txt").write_text(text + "\n", encoding="utf-8")
        rows.append(f"{stem}.wav\ten\t{text}\n")
    (d / "train.tsv").write_text("".join(rows), encoding="utf-8")
    return d
