"""``--ray``: the same job through Ray Data on a local Ray instance (2 CPUs)."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

from malsori.batch import BatchOptions, discover
from malsori.batch.cluster import ClusterError, RayOptions, import_ray, run_on_ray
from malsori.options import TranscribeOptions
from rendered_audio import ENGLISH_WORDS, SPANISH_WORDS, Audio, words_of


def test_missing_ray_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    with pytest.raises(ClusterError, match=r"pip install 'malsori\[cluster\]'"):
        import_ray()


@pytest.mark.slow
def test_a_job_on_a_local_ray_instance(audio: Audio, tmp_path: Path) -> None:
    ray = pytest.importorskip("ray")
    src = tmp_path / "src"
    for sub, path in (("a", audio.english), ("b", audio.english), ("b", audio.spanish)):
        (src / sub).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, src / sub / path.name)
    shutil.copy(audio.text_as_mp3, src / "a" / "broken.mp3")
    out = tmp_path / "out"
    items = discover([src])
    batch = BatchOptions(output_dir=out, formats=("json", "txt"))
    ray_options = RayOptions(
        address="local", model="base", threads=1, workers=1,
        init={"num_cpus": 2, "include_dashboard": False},
    )  # fmt: skip
    try:
        summary = run_on_ray(items, TranscribeOptions(), batch, ray_options)
        assert (summary.done, len(summary.failed)) == (3, 1)
        assert summary.exit_code == 3
        assert set(ENGLISH_WORDS) <= words_of((out / "a" / "english.txt").read_text())
        assert set(ENGLISH_WORDS) <= words_of((out / "b" / "english.txt").read_text())
        assert len(set(SPANISH_WORDS) & words_of((out / "b" / "spanish.txt").read_text())) >= 4
        data = json.loads((out / "summary.json").read_text())
        assert data["engine"] == "packed on ray"
        assert data["failures"][0]["source"].endswith("broken.mp3")
        # resumable like a local run: nothing left to do but the broken file
        again = run_on_ray(items, TranscribeOptions(), batch, ray_options)
        assert (again.skipped, again.done, len(again.failed)) == (3, 0, 1)
    finally:
        ray.shutdown()
