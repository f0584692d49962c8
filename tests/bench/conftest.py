"""Fixtures of the benchmark tests: two short English clips rendered with espeak-ng, and their
manifest (the references are what was spoken)."""

from __future__ import annotations

from pathlib import Path

import pytest

from rendered_audio import run_tool

CLIPS = (
    ("weather", "The weather is cold and the wind is strong today."),
    ("train", "Our train leaves the station at seven in the morning."),
)


@pytest.fixture(scope="session")
def bench_manifest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("bench-clips")
    rows = ["path\tlanguage\ttext"]
    for stem, text in CLIPS:
        wav = folder / f"{stem}.wav"
        run_tool("espeak-ng", "-v", "en-us", "-s", "150", "-w", wav, text)
        rows.append(f"{wav.name}\ten\t{text}")
    manifest = folder / "manifest.tsv"
    manifest.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return manifest
