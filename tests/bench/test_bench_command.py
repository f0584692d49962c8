"""``malsori bench`` end to end on the tiny English model, and its errors on bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from malsori.bench.configs import CONFIGS, EXTRA_CONFIGS, ONNX_PYTHON_ENV, Setting, parse_configs
from malsori.bench.runner import SHORT, Workload, run_bench
from malsori.cli import main
from malsori.errors import InvalidOptionError
from malsori.manifest import load_manifest

# --- bad input: one line, the right exit code, nothing run ----------------------------------


def _one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("malsori: error: ")
    return err[0]


def test_unknown_configuration_is_a_usage_error(
    bench_manifest: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    code = main(["bench", str(bench_manifest), "-o", str(out), "--configs", "malsori,fast-magic"])
    assert code == 2
    line = _one_error_line(capsys)
    assert "'fast-magic'" in line and "fw-sequential" in line  # names it, lists the known ones
    assert not out.exists()


def test_empty_manifest_is_an_input_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # malsori.manifest's rule, as for ``malsori eval``: a manifest without clips is bad input
    manifest = tmp_path / "empty.tsv"
    manifest.write_text("path\tlanguage\ttext\n", encoding="utf-8")
    out = tmp_path / "out"
    assert main(["bench", str(manifest), "-o", str(out)]) == 3
    assert "no entries" in _one_error_line(capsys)
    assert not out.exists()


def test_a_limit_that_selects_nothing_is_a_usage_error(
    bench_manifest: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["bench", str(bench_manifest), "-o", str(tmp_path / "o"), "--limit", "0"]) == 2
    assert "limit must be at least 1" in _one_error_line(capsys)
    assert main(["bench", str(bench_manifest), "-o", str(tmp_path / "o"), "--repeats", "0"]) == 2
    assert "--repeats" in _one_error_line(capsys)


def test_missing_files_are_input_errors(
    bench_manifest: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = tmp_path / "m.tsv"
    manifest.write_text("nowhere.wav\ten\thello\n", encoding="utf-8")
    assert main(["bench", str(manifest), "-o", str(tmp_path / "a")]) == 3
    assert "nowhere.wav" in _one_error_line(capsys)
    assert main(["bench", str(tmp_path / "none.tsv"), "-o", str(tmp_path / "b")]) == 3
    assert "no such manifest" in _one_error_line(capsys)
    code = main(["bench", str(bench_manifest), "-o", str(tmp_path / "c"),
                 "--long", str(tmp_path / "long.flac")])  # fmt: skip
    assert code == 3
    assert "long.flac" in _one_error_line(capsys)
    assert not any((tmp_path / d).exists() for d in "abc")


def test_parse_configs() -> None:
    assert parse_configs("all") == list(CONFIGS)
    assert set(parse_configs(None)) == set(CONFIGS) - set(EXTRA_CONFIGS)
    assert parse_configs("fw-sequential, malsori,fw-sequential") == ["fw-sequential", "malsori"]
    with pytest.raises(InvalidOptionError, match="at least one"):
        parse_configs(" , ")


# --- skipped configurations keep their reason -----------------------------------------------


def test_a_configuration_without_its_extra_is_skipped_with_the_reason(
    bench_manifest: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "whisper" else real(name, *a)
    )
    entries = tuple(load_manifest(bench_manifest))
    workload = Workload(SHORT, entries, (3.0,) * len(entries))
    names = ["openai-whisper", "gptq", "ct2-float16"]
    report = run_bench(names, Setting("tiny.en"), [workload], repeats=1, log_dir=tmp_path)
    by_name = {c.name: c for c in report.configs}
    assert [c.name for c in report.configs] == names  # none dropped
    assert all(c.status == "skipped" for c in report.configs)
    assert by_name["openai-whisper"].reason == "whisper not installed"
    assert by_name["gptq"].reason == "needs --device cuda"
    assert by_name["ct2-float16"].reason == "needs --device cuda"
    assert not list(tmp_path.glob("*.log"))  # no worker was started


# --- the whole command on the tiny model -----------------------------------------------------


@pytest.mark.slow
def test_bench_end_to_end_on_tiny_model(
    bench_manifest: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(ONNX_PYTHON_ENV, raising=False)
    out = tmp_path / "bench"
    code = main([
        "bench", str(bench_manifest), "-o", str(out), "-m", "tiny.en", "--threads", "2",
        "--repeats", "2", "--configs", "malsori,fw-sequential,onnx", "-q",
    ])  # fmt: skip
    assert code == 0
    printed = capsys.readouterr().out
    assert "| `malsori` |" in printed and "| `fw-sequential` |" in printed

    data = json.loads((out / "results.json").read_text(encoding="utf-8"))
    configs = {c["name"]: c for c in data["configs"]}
    assert list(configs) == ["malsori", "fw-sequential", "onnx"]
    assert configs["onnx"]["status"] == "skipped"
    assert "--onnx-python" in configs["onnx"]["reason"]
    model_bytes = sum(
        p.stat().st_size for p in Path(data["meta"]["model_path"]).rglob("*") if p.is_file()
    )
    for name in ("malsori", "fw-sequential"):
        c = configs[name]
        assert c["status"] == "ok", c
        assert c["size_bytes"] == model_bytes  # both run the packaged folder
        assert c["peak_rss_bytes"] > 50e6  # its own process, with a model in it
        assert c["load_seconds"] > 0
        (short,) = c["workloads"]
        assert short["workload"] == "short" and short["clips"] == 2
        assert len(short["wall_seconds"]) == 2  # one per repeat
        assert short["rtfx"] == pytest.approx(short["audio_seconds"] / short["median_seconds"])
        assert short["wer"] < 0.35  # clear synthetic speech: most words right
        assert short["language_id_accuracy"] == 1.0
        assert short["times_bound"] > 1  # never faster than the machine's GEMM peak
    assert data["gemm_probe"]["fp32_gflops"] > 0

    table = (out / "results.md").read_text(encoding="utf-8")
    assert "`onnx` skipped: needs an environment with optimum-onnx" in table
    for chart in ("speed-accuracy.png", "memory-size.png"):
        assert (out / chart).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
