"""The ``malsori`` command, run as a real process: exit codes from the README, one error line on
stderr and no traceback for every bad input, no output files left by a failure."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import srt
import webvtt

from malsori.results import Transcript
from rendered_audio import ENGLISH_WORDS, Audio, words_of

MALSORI = Path(sys.executable).parent / "malsori"
ERROR = "malsori: error: "


def run(
    *args: str | Path,
    cwd: Path | None = None,
    stdin: bytes | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})}  # never the network
    proc = subprocess.run(
        [str(MALSORI), *map(str, args)],
        input=stdin if stdin is not None else b"",
        capture_output=True,
        cwd=cwd,
        env=environment,
        timeout=300,
        check=False,
    )
    return subprocess.CompletedProcess(
        proc.args,
        proc.returncode,
        proc.stdout.decode("utf-8", "replace"),
        proc.stderr.decode("utf-8", "replace"),
    )


def transcribe(*args: str | Path, **kwargs: object) -> subprocess.CompletedProcess[str]:
    return run("transcribe", "--threads", "2", *args, **kwargs)  # type: ignore[arg-type]


def no_traceback(proc: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout


def error_line(proc: subprocess.CompletedProcess[str], code: int) -> str:
    """The one stderr line of a failed run (library errors print nothing else)."""
    assert proc.returncode == code, proc.stderr
    no_traceback(proc)
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(ERROR)
    return lines[0]


def usage_error_line(proc: subprocess.CompletedProcess[str]) -> str:
    """argparse errors: the usage (possibly wrapped over several lines), then one error line."""
    assert proc.returncode == 2, proc.stderr
    no_traceback(proc)
    lines = proc.stderr.splitlines()
    assert lines[0].startswith("usage: malsori")
    assert all(line.startswith(" ") for line in lines[1:-1])  # usage continuation lines
    assert lines[-1].startswith(ERROR)
    assert sum(line.startswith(ERROR) for line in lines) == 1
    return lines[-1]


def files_in(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


# --- bad usage: exit 2 ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("-l", "xx"), "unknown language 'xx'"),
        (("--beam-size", "0"), "beam size"),
        (("--temperature", "0.6,0.2"), "must increase"),
        (("-f", "srt,docx"), "unknown output format 'docx'"),
        (("-o", "-", "-f", "srt,vtt"), "exactly one format"),
        (("--threads", "-1"), "threads cannot be negative"),
        (("--compute-type", "float13"), "unknown compute type"),
    ],
    ids=lambda a: " ".join(a) if isinstance(a, tuple) else None,
)
def test_impossible_options_exit_2(
    audio: Audio, tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    out = tmp_path / "out"
    line = error_line(transcribe(audio.english, "-o", out, *args, cwd=tmp_path), 2)
    assert message in line
    assert files_in(out) == [] and files_in(tmp_path) == []


def test_impossible_combinations_exit_2(audio: Audio, tmp_path: Path) -> None:
    out = tmp_path / "out"
    # english.wav and english.mp3 would both write english.srt
    line = error_line(transcribe(audio.english, audio.mp3, "-o", out), 2)
    assert "same output name (english)" in line
    line = error_line(transcribe(audio.english, audio.mp3, "-o", "-", "-f", "txt"), 2)
    assert "exactly one input" in line
    line = error_line(transcribe("-", "-", cwd=tmp_path), 2)
    assert "standard input (-) can be given only once" in line
    line = error_line(run("detect-language", "--top", "0", audio.english), 2)
    assert "--top" in line
    line = error_line(transcribe(audio.english, "--encoder-window", "3", "-o", out), 2)
    assert "encoder window must lie in [5, 30] seconds, got 3.0" in line
    assert files_in(tmp_path) == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("transcribe", "a.wav", "--no-such-flag"), "unrecognized arguments: --no-such-flag"),
        (("transcribe", "a.wav", "--beam-size", "five"), "invalid int value: 'five'"),
        (("transcribe", "a.wav", "--task", "summarize"), "invalid choice: 'summarize'"),
        (("transcribe",), "the following arguments are required: FILE"),
        (("models",), "the following arguments are required: ACTION"),
        (("frobnicate",), "invalid choice: 'frobnicate'"),
    ],
)
def test_argparse_errors_print_usage_then_one_line(
    tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    line = usage_error_line(run(*args, cwd=tmp_path))
    assert message in line
    assert files_in(tmp_path) == []


# --- bad input: exit 3 ----------------------------------------------------------------------------

# The first three are refused before the model loads; the others once decoding starts.
BAD_INPUTS = [
    "missing",
    "directory",
    "empty",
    *(
        pytest.param(name, marks=pytest.mark.slow)
        for name in (
            "zero_wav",
            "text_as_mp3",
            "video_only",
            "truncated_wav",
            "truncated_flac",
            "truncated_mp3",
            "truncated_opus",
        )
    ),
]


@pytest.mark.parametrize("name", BAD_INPUTS)
def test_bad_input_exits_3_with_one_line_and_no_output(
    audio: Audio, tmp_path: Path, name: str
) -> None:
    path = {"missing": audio.root / "missing.wav", "directory": audio.root}.get(name)
    path = path or getattr(audio, name)
    out = tmp_path / "out"
    line = error_line(transcribe(path, "-o", out, cwd=tmp_path), 3)
    assert str(path) in line
    assert files_in(out) == []
    assert set(files_in(tmp_path)) <= {"out"}


@pytest.mark.slow
def test_empty_standard_input_exits_3(tmp_path: Path) -> None:
    line = error_line(transcribe("-", "-o", "-", "-f", "srt", cwd=tmp_path, stdin=b""), 3)
    assert "no data" in line
    assert files_in(tmp_path) == []


@pytest.mark.slow
def test_detect_language_on_silence_exits_3(audio: Audio) -> None:
    line = error_line(run("detect-language", "--threads", "2", audio.silence), 3)
    assert "no speech" in line and str(audio.silence) in line


@pytest.mark.slow
def test_one_bad_input_among_several(audio: Audio, tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = transcribe(audio.truncated_flac, audio.english, audio.root / "gone.wav", "-o", out)
    assert proc.returncode == 3
    no_traceback(proc)
    errors = [line for line in proc.stderr.splitlines() if line.startswith(ERROR)]
    assert len(errors) == 2
    assert any("gone.wav: no such file" in e for e in errors)
    assert any(str(audio.truncated_flac) in e and "truncated" in e for e in errors)
    # The good file ran after the bad one and wrote everything; the bad ones left nothing.
    assert files_in(out) == sorted(f"english.{f}" for f in ("txt", "json", "srt", "vtt", "tsv"))
    assert set(ENGLISH_WORDS) <= words_of((out / "english.txt").read_text())


# --- model problems: exit 4 -----------------------------------------------------------------------


def test_unknown_model_exits_4(audio: Audio, tmp_path: Path) -> None:
    line = error_line(transcribe(audio.english, "-m", "nosuchmodel", "-o", tmp_path / "o"), 4)
    assert "unknown model 'nosuchmodel'" in line
    assert files_in(tmp_path) == []


def test_folder_that_is_not_a_model_exits_4(audio: Audio, tmp_path: Path) -> None:
    line = error_line(transcribe(audio.english, "-m", audio.root, "-o", tmp_path / "o"), 4)
    assert "not a CTranslate2 Whisper model folder" in line


def test_pull_offline_exits_4(tmp_path: Path) -> None:
    proc = run("models", "pull", "large-v3", env={"MALSORI_HOME": str(tmp_path)})
    line = error_line(proc, 4)
    assert "'large-v3' cannot be downloaded" in line
    assert proc.stdout == ""


@pytest.mark.slow
def test_english_only_model_cannot_translate(audio: Audio, tmp_path: Path) -> None:
    # tiny.en is assembled into a private cache (its package is installed with the dev extras).
    env = {"MALSORI_HOME": str(tmp_path / "home")}
    out = tmp_path / "out"
    proc = transcribe(audio.french, "--task", "translate", "-m", "tiny.en", "-o", out, env=env)
    line = error_line(proc, 2)
    assert "tiny.en" in line and "English-only" in line
    assert files_in(out) == []


# --- output problems: exit 5 ----------------------------------------------------------------------


@pytest.mark.slow
def test_unwritable_output_folder_exits_5(audio: Audio, tmp_path: Path) -> None:
    blocker = tmp_path / "notes.txt"
    blocker.write_text("a regular file")
    proc = transcribe(audio.english, "-q", "-o", blocker / "out")
    line = error_line(proc, 5)
    assert str(blocker) in line
    assert files_in(tmp_path) == ["notes.txt"]


def test_output_folder_that_is_a_file_exits_5(audio: Audio, tmp_path: Path) -> None:
    blocker = tmp_path / "notes.txt"
    blocker.write_text("a regular file")
    error_line(transcribe(audio.english, "-o", blocker), 5)


@pytest.mark.slow
def test_interrupt_exits_130_and_writes_nothing(audio: Audio, tmp_path: Path) -> None:
    out = tmp_path / "out"
    # Without VAD the 150 s file is five 30 s windows, so decoding is still under way when the
    # signal comes (with VAD its three sentences are decoded in one go and may be done by then).
    cmd = [
        str(MALSORI),
        "transcribe",
        "--threads",
        "2",
        "--no-vad",
        str(audio.long),
        "-o",
        str(out),
    ]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}

    def hear_ctrl_c() -> None:
        # A test run started in the background by a non-interactive shell inherits SIGINT
        # ignored, and so would malsori (Python keeps an ignored SIGINT ignored).
        signal.signal(signal.SIGINT, signal.SIG_DFL)

    with subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        preexec_fn=hear_ctrl_c,
    ) as proc:
        assert proc.stdout is not None
        first = proc.stdout.readline()  # the first live segment: decoding is under way
        assert "submarine" in first
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130
    assert stderr == "malsori: interrupted\n"
    assert "Traceback" not in stdout
    assert files_in(out) == []


# --- what works -----------------------------------------------------------------------------------


@pytest.mark.slow
def test_transcribe_writes_every_format(audio: Audio, tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = transcribe(audio.english, "-o", out, "-f", "all", "--word-timestamps")
    assert proc.returncode == 0, proc.stderr
    no_traceback(proc)
    assert ERROR not in proc.stderr
    assert files_in(out) == sorted(f"english.{f}" for f in ("txt", "json", "srt", "vtt", "tsv"))
    # The live transcript went to stdout with timestamps; the summary to stderr.
    assert "] The quick brown fox" in proc.stdout
    assert "language en (detected" in proc.stderr

    assert set(ENGLISH_WORDS) <= words_of((out / "english.txt").read_text())
    t = Transcript.from_dict(json.loads((out / "english.json").read_text()))
    assert t.source == str(audio.english) and t.options.word_timestamps and t.words
    # the SRT's cues are those the JSON records, built under the language's profile (latin)
    cues = list(srt.parse((out / "english.srt").read_text()))
    recorded = json.loads((out / "english.json").read_text())["subtitles"]
    assert recorded["profile"]["name"] == "latin"
    assert [c.content for c in cues] == ["\n".join(r["lines"]) for r in recorded["cues"]]
    assert [round(c.start.total_seconds(), 3) for c in cues] == [
        r["start"] for r in recorded["cues"]
    ]
    assert " ".join(" ".join(c.content.split()) for c in cues) == " ".join(t.text.split())
    assert cues[0].start.total_seconds() >= t.words[0].start - 0.001
    vtt = list(webvtt.read(str(out / "english.vtt")))
    assert [c.text for c in vtt] == [c.content for c in cues]
    tsv = (out / "english.tsv").read_text().splitlines()
    assert tsv[0] == "start\tend\ttext" and len(tsv) == len(t.segments) + 1


@pytest.mark.slow
def test_stdin_to_srt_on_stdout(audio: Audio, tmp_path: Path) -> None:
    proc = transcribe("-", "-o", "-", "-f", "srt", cwd=tmp_path, stdin=audio.mp3.read_bytes())
    assert proc.returncode == 0, proc.stderr
    no_traceback(proc)
    cues = list(srt.parse(proc.stdout))  # stdout is nothing but the SRT document
    assert cues and cues[0].index == 1
    assert set(ENGLISH_WORDS) <= words_of(" ".join(c.content for c in cues))
    assert files_in(tmp_path) == []  # nothing written to the working folder


@pytest.mark.slow
def test_detect_language_table(audio: Audio) -> None:
    proc = run("detect-language", "--threads", "2", "--top", "3", audio.spanish, audio.english)
    assert proc.returncode == 0, proc.stderr
    no_traceback(proc)
    lines = proc.stdout.splitlines()
    assert lines[0] == f"==> {audio.spanish}" and lines[4] == f"==> {audio.english}"
    spanish, english = lines[1:4], lines[5:8]
    assert spanish[0].split()[:2] == ["es", "Spanish"]
    assert english[0].split()[:2] == ["en", "English"]
    for table in (spanish, english):
        percents = [float(line.split()[-1].rstrip("%")) for line in table]
        assert percents == sorted(percents, reverse=True) and 50 < percents[0] <= 100


def test_models_list_shows_base_installed() -> None:
    proc = run("models", "list")
    assert proc.returncode == 0, proc.stderr
    rows = {line.split()[0]: line.split() for line in proc.stdout.splitlines()[1:] if line.strip()}
    assert rows["base"][1:3] == ["pypi", "yes"]
    assert rows["large-v3"][1:3] == ["hub", "no"]
    assert "model cache:" in proc.stdout


def test_version_and_languages() -> None:
    from malsori import __version__

    proc = run("--version")
    assert (proc.returncode, proc.stdout.strip()) == (0, f"malsori {__version__}")
    proc = run("languages")
    assert proc.returncode == 0
    assert "ko   Korean" in proc.stdout.splitlines()
