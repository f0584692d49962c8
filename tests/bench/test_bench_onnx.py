"""The ``onnx`` configurations: their own environment (``--onnx-python``), skipped with the
reason without it, and (when that environment exists here) a real run through Optimum."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from malsori.bench.configs import ONNX_PYTHON_ENV, Setting, make
from malsori.bench.runner import SHORT, WorkerProcess, Workload, run_bench
from malsori.cli import build_parser, main
from malsori.manifest import load_manifest

# The environment docs/benchmarks.md makes; MALSORI_BENCH_ONNX_PYTHON points elsewhere.
ONNX_PYTHON = os.environ.get(ONNX_PYTHON_ENV) or "/work/onnx-venv/bin/python"


def _workload(manifest: Path) -> Workload:
    entries = tuple(load_manifest(manifest))
    return Workload(SHORT, entries, (3.0,) * len(entries))


def test_onnx_python_comes_from_the_option_or_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(ONNX_PYTHON_ENV, raising=False)
    args = build_parser().parse_args(["bench", "m.tsv", "-o", "out"])
    assert args.onnx_python is None
    monkeypatch.setenv(ONNX_PYTHON_ENV, "/opt/onnx/bin/python")
    args = build_parser().parse_args(["bench", "m.tsv", "-o", "out"])
    assert args.onnx_python == "/opt/onnx/bin/python"
    args = build_parser().parse_args(["bench", "m.tsv", "-o", "out", "--onnx-python", "/x/py"])
    assert args.onnx_python == "/x/py"  # the option wins


def test_a_missing_onnx_interpreter_is_an_input_error_before_anything_runs(
    bench_manifest: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    missing = tmp_path / "venv" / "bin" / "python"
    code = main(["bench", str(bench_manifest), "-o", str(out), "--onnx-python", str(missing)])
    assert code == 3
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--onnx-python" in err[0] and str(missing) in err[0]
    assert not out.exists()


def test_without_the_environment_onnx_is_skipped_with_the_reason(
    bench_manifest: Path, tmp_path: Path
) -> None:
    names = ["onnx", "onnx-int8"]
    report = run_bench(names, Setting("tiny.en"), [_workload(bench_manifest)], repeats=1,
                       log_dir=tmp_path)  # fmt: skip
    assert [c.name for c in report.configs] == names
    for c in report.configs:
        assert c.status == "skipped"
        assert c.reason is not None and "--onnx-python" in c.reason
        assert ONNX_PYTHON_ENV in c.reason and "transformers<4.58" in c.reason
    assert not list(tmp_path.glob("*.log"))  # no worker was started


def test_an_environment_without_optimum_is_skipped_with_the_reason(
    bench_manifest: Path, tmp_path: Path
) -> None:
    import importlib.util

    if importlib.util.find_spec("optimum") is not None:
        pytest.skip("this environment has optimum")
    # malsori's own interpreter: a real environment, without optimum-onnx in it
    setting = Setting("tiny.en", onnx_python=sys.executable)
    report = run_bench(["onnx"], setting, [_workload(bench_manifest)], repeats=1,
                       log_dir=tmp_path)  # fmt: skip
    (c,) = report.configs
    assert c.status == "skipped"
    assert c.reason == (
        f"optimum-onnx is not installed in {sys.executable}'s environment (needs optimum-onnx, "
        "onnxruntime; see docs/benchmarks.md)"
    )
    assert make("onnx", Setting("tiny.en", device="cuda", onnx_python=sys.executable)).available()


@pytest.mark.slow
def test_onnx_runs_in_its_own_environment_as_transformers_does(
    bench_manifest: Path, tmp_path: Path
) -> None:
    if not Path(ONNX_PYTHON).is_file():
        pytest.skip(f"no ONNX environment at {ONNX_PYTHON} (see docs/benchmarks.md)")
    setting = Setting("tiny.en", threads=2, onnx_python=ONNX_PYTHON)
    reason = make("onnx", setting).available()
    if reason is not None:
        pytest.skip(reason)
    workload = _workload(bench_manifest)
    report = run_bench(["onnx", "onnx-int8"], setting, [workload], repeats=1, log_dir=tmp_path)
    by_name = {c.name: c for c in report.configs}
    for c in report.configs:
        assert c.status == "ok", c
        assert c.peak_rss_bytes is not None and c.peak_rss_bytes > 50e6
        (short,) = c.workloads
        assert short.language_id_accuracy == 1.0
    fp32, int8 = by_name["onnx"], by_name["onnx-int8"]
    assert fp32.size_bytes is not None and int8.size_bytes is not None
    assert int8.size_bytes < fp32.size_bytes / 3  # int8 weights: a quarter of float32's


@pytest.mark.slow
def test_onnx_fp32_says_what_transformers_says(bench_manifest: Path, tmp_path: Path) -> None:
    # The same weights, converted by malsori, exported by Optimum, decoded greedily in float32.
    setting = Setting("tiny.en", threads=2, onnx_python=ONNX_PYTHON)
    onnx, transformers = make("onnx", setting), make("transformers", setting)
    for config in (onnx, transformers):
        reason = None if not Path(ONNX_PYTHON).is_file() else config.available()
        if not Path(ONNX_PYTHON).is_file() or reason is not None:
            pytest.skip(reason or f"no ONNX environment at {ONNX_PYTHON}")
    paths = [e.audio for e in load_manifest(bench_manifest)]
    with open(tmp_path / "onnx.log", "w", encoding="utf-8") as log:
        worker = WorkerProcess("onnx", log, onnx.worker_command())
        try:
            worker.ask(onnx.load_request())
            reply = worker.ask({"op": "run", "paths": onnx.worker_inputs(paths, tmp_path)})
        finally:
            worker.close()
    transformers.prepare()
    transformers.load()
    expected = [[o.text, o.language] for o in transformers.run(paths)]
    assert reply["outputs"] == expected
    assert all(text for text, _ in expected)
