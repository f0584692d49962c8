"""Bookkeeping of a batch job with a stand-in model: resume, force, failure isolation,
interruption, summary. The real model runs in test_engine.py and test_command.py."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from malsori.batch import BatchOptions, discover, run_batch
from malsori.batch.records import STATE_DIR, OutputPlan, finished_record, job_lock
from malsori.cli import main
from malsori.errors import AudioDecodeError, MalsoriError, OutputBusyError
from malsori.options import TranscribeOptions
from malsori.results import LanguageInfo, Segment, Transcript


class FakeModel:
    """Transcribes any file as its own name; fails on ``bad*``; Ctrl-C on ``stop*``."""

    name = "fake"
    multilingual = True

    def __init__(self) -> None:
        self.calls: list[str] = []

    def transcribe(self, source: Path, options: TranscribeOptions) -> Transcript:
        name = Path(source).name
        self.calls.append(name)
        if name.startswith("bad"):
            raise AudioDecodeError(f"{source}: not a decodable audio or video file")
        if name.startswith("stop"):
            raise KeyboardInterrupt
        return Transcript(
            segments=(Segment(0, 0.0, 1.5, f" {name}"),),
            language=LanguageInfo("en", 0.9, (("en", 0.9),)),
            duration=2.0,
            processing_time=0.1,
            options=options,
            model=self.name,
            source=str(source),
        )


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "in"
    for rel in ("a/one.wav", "b/one.wav", "b/c/two.flac", "three.mp3"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(b"not read by the fake model")
    return root


def run(tree: Path, out: Path, model: FakeModel | None = None, **kw):  # type: ignore[no-untyped-def]
    model = model or FakeModel()
    batch = BatchOptions(output_dir=out, engine="sequential", formats=("json", "srt"), **kw)
    summary = run_batch(model, discover([tree]), TranscribeOptions(), batch)  # type: ignore[arg-type]
    return summary, model


def outputs(out: Path) -> list[str]:
    return sorted(
        p.relative_to(out).as_posix()
        for p in out.rglob("*")
        if p.is_file() and STATE_DIR not in p.parts and p.name != "summary.json"
    )


def test_outputs_mirror_the_tree_and_a_rerun_skips_everything(tree: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    summary, model = run(tree, out)
    assert (summary.done, summary.skipped, len(summary.failed)) == (4, 0, 0)
    assert outputs(out) == [
        "a/one.json", "a/one.srt", "b/c/two.json", "b/c/two.srt", "b/one.json", "b/one.srt",
        "three.json", "three.srt",
    ]  # fmt: skip
    data = json.loads((out / "summary.json").read_text())
    assert data["files"] == {"total": 4, "done": 4, "skipped": 0, "failed": 0, "pending": 0}
    assert data["languages"] == {"en": 4}
    assert data["audio_hours"] == pytest.approx(8 / 3600, abs=1e-4)
    assert summary.exit_code == 0

    summary, model = run(tree, out)
    assert model.calls == []
    assert (summary.done, summary.skipped) == (0, 4)
    assert summary.languages == {"en": 4}

    summary, model = run(tree, out, force=True)
    assert len(model.calls) == 4 and summary.done == 4


def test_partial_or_changed_outputs_are_redone(tree: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    run(tree, out)
    (out / "a" / "one.srt").unlink()  # an output lost
    with open(out / "b" / "one.json", "a") as f:  # an output changed after the run
        f.write(" ")
    (out / STATE_DIR / "done" / "three.json").unlink()  # killed between outputs and record
    (tree / "b" / "c" / "two.flac").write_bytes(b"a new recording")  # the input changed
    _summary, model = run(tree, out)
    assert sorted(model.calls) == ["one.wav", "one.wav", "three.mp3", "two.flac"]
    model2 = run(tree, out)[1]
    assert model2.calls == []


def test_other_options_or_formats_redo_the_files(tree: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    run(tree, out)
    model = FakeModel()
    batch = BatchOptions(output_dir=out, engine="sequential", formats=("json", "srt"))
    run_batch(model, discover([tree]), TranscribeOptions(beam_size=1), batch)  # type: ignore[arg-type]
    assert len(model.calls) == 4
    _summary, model = run(tree, out)
    assert len(model.calls) == 4  # back to the first options: their records were replaced
    batch = BatchOptions(output_dir=out, engine="sequential", formats=("json", "srt", "vtt"))
    model = FakeModel()
    run_batch(model, discover([tree]), TranscribeOptions(), batch)  # type: ignore[arg-type]
    assert len(model.calls) == 4  # a vtt was asked for: missing everywhere


def test_a_failing_file_is_recorded_and_the_rest_go_on(tree: Path, tmp_path: Path) -> None:
    (tree / "a" / "bad.wav").write_bytes(b"garbage")
    out = tmp_path / "out"
    summary, _ = run(tree, out)
    assert (summary.done, len(summary.failed)) == (4, 1)
    assert summary.exit_code == AudioDecodeError.exit_code
    data = json.loads((out / "summary.json").read_text())
    (failure,) = data["failures"]
    assert failure["source"].endswith("bad.wav")
    assert "not a decodable" in failure["error"] and failure["error_type"] == "AudioDecodeError"
    assert not list((out / "a").glob("bad.*"))
    summary, model = run(tree, out)  # failed files are tried again, done ones are not
    assert model.calls == ["bad.wav"]


def test_interruption_keeps_finished_files_and_leaves_nothing_half_written(
    tree: Path, tmp_path: Path
) -> None:
    (tree / "b" / "c" / "stop.wav").write_bytes(b"x")  # after three, a/one, b/one; before two
    out = tmp_path / "out"
    summary, _ = run(tree, out)
    assert summary.interrupted and summary.exit_code == 130
    assert summary.done == 3 and summary.pending == 2
    assert outputs(out) == [
        "a/one.json", "a/one.srt", "b/one.json", "b/one.srt", "three.json", "three.srt",
    ]  # fmt: skip
    assert not list(out.rglob("*.tmp"))
    data = json.loads((out / "summary.json").read_text())
    assert data["interrupted"] and data["files"]["pending"] == 2
    os.remove(tree / "b" / "c" / "stop.wav")
    summary, _model = run(tree, out)
    assert summary.skipped == 3 and summary.done == 1


def test_stale_temporary_files_of_a_killed_run_are_removed(tree: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    (out / "a").mkdir(parents=True)
    stale = out / "a" / ".one.json.k1ll3d.tmp"
    stale.write_text("{half")
    run(tree, out)
    assert not stale.exists()


def test_records_are_checked_not_trusted(tree: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    run(tree, out)
    item = discover([tree])[0]
    plan = OutputPlan.build(out, ("json", "srt"), "fake", TranscribeOptions())
    assert finished_record(plan, item) is not None
    plan.record_path(item).write_text("{not json")
    assert finished_record(plan, item) is None
    other = OutputPlan.build(out, ("json", "srt"), "other-model", TranscribeOptions())
    assert finished_record(other, discover([tree])[1]) is None


def test_bad_batch_options() -> None:
    with pytest.raises(MalsoriError):
        BatchOptions(output_dir=Path("x"), engine="turbo")  # type: ignore[arg-type]
    with pytest.raises(MalsoriError):
        BatchOptions(output_dir=Path("x"), batch_size=0)


def test_the_packed_engine_refuses_decoding_without_timestamps(tmp_path: Path) -> None:
    from malsori.batch.runner import make_engine

    for options in (
        TranscribeOptions(without_timestamps=True),
        TranscribeOptions(encoder_window_s=15.0),
    ):
        with pytest.raises(MalsoriError, match="sequential"):
            make_engine(object(), options, BatchOptions(output_dir=tmp_path))  # type: ignore[arg-type]


def test_on_a_cpu_the_packed_engine_gets_two_model_workers_of_half_the_threads() -> None:
    from malsori.batch.runner import model_layout

    assert model_layout("cpu", 2) == (2, 1)
    assert model_layout("cpu", 8) == (2, 4)
    assert model_layout("cpu", 1) == (1, 1)  # one thread cannot be shared
    assert model_layout("cpu", 4, engine="sequential") == (1, 4)  # one file at a time


# --- one job per output folder -------------------------------------------------------------

HOLD_LOCK = textwrap.dedent(
    """
    import sys, time
    from malsori.batch.records import job_lock
    with job_lock(sys.argv[1]):
        print("held", flush=True)
        time.sleep(60)
    """
)

posix = pytest.mark.skipif(os.name != "posix", reason="flock is POSIX")


@pytest.fixture
def other_job(tmp_path: Path) -> Iterator[tuple[Path, subprocess.Popen[str]]]:
    """Another process holding the job lock of ``tmp_path / "out"``."""
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(out)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    yield out, proc
    proc.kill()
    proc.wait()


@posix
def test_a_second_job_on_the_same_folder_stops_at_once(
    tree: Path, other_job: tuple[Path, subprocess.Popen[str]]
) -> None:
    out, proc = other_job
    model = FakeModel()
    with pytest.raises(OutputBusyError, match=f"process {proc.pid}\\) is writing to"):
        run(tree, out, model)
    assert model.calls == [] and not (out / "summary.json").exists()


@posix
def test_a_killed_job_leaves_its_folder_free(
    tree: Path, other_job: tuple[Path, subprocess.Popen[str]]
) -> None:
    out, proc = other_job
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    summary, _ = run(tree, out)
    assert summary.done == 4


@posix
def test_the_lock_is_reentrant_in_one_process_and_freed_after(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with job_lock(out), job_lock(out):
        pass
    # free again: another process takes and holds it
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(out)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    finally:
        proc.kill()
        proc.wait()


@posix
def test_the_command_refuses_a_busy_folder_before_loading_a_model(
    tree: Path,
    other_job: tuple[Path, subprocess.Popen[str]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    out, proc = other_job
    # a model that does not exist: the lock is checked before any model is looked for
    assert main(["batch", str(tree), "-o", str(out), "--model", "no-such-model"]) == 5
    err = capsys.readouterr().err
    assert f"another malsori batch job (process {proc.pid})" in err
    assert not (out / "batch.log").exists()
