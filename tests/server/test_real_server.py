"""Against a real ``malsori serve`` process on a free loopback port: the openai client over HTTP,
outputs equal to a ``malsori transcribe`` process byte for byte, the streamed upload limit, request
IDs in the log, and durability: SIGKILL mid-job, restart, every job completes correctly."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from openai import OpenAI

from .helpers import LONG_WORDS, SPEECH_WORDS, Clips, words_of

pytestmark = pytest.mark.slow

MALSORI = [sys.executable, "-m", "malsori"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServerProcess:
    """``malsori serve`` in a subprocess, its log in a file."""

    def __init__(self, data_dir: Path, *extra: str):
        self.data_dir = data_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = data_dir.parent / f"server-{self.port}.log"
        cmd = [*MALSORI, "serve", "--port", str(self.port), "--data-dir", str(data_dir),
               "--beam-size", "1", "--threads", "2", *extra]  # fmt: skip
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log.read_text()
            try:
                if httpx.get(f"{self.url}/ready", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"server did not become ready:\n{self.log.read_text()}")

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            return self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait(10)


def make_key(data_dir: Path) -> str:
    out = subprocess.run(
        [*MALSORI, "keys", "--data-dir", str(data_dir), "create", "ci"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return out.stdout.strip()


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def server(data_dir: Path) -> Iterator[tuple[ServerProcess, str]]:
    key = make_key(data_dir)
    proc = ServerProcess(data_dir, "--max-upload-mb", "1")
    yield proc, key
    proc.stop(signal.SIGKILL)


def test_openai_client_against_a_real_server(
    server: tuple[ServerProcess, str], clips: Clips, tmp_path: Path
) -> None:
    proc, key = server
    client = OpenAI(base_url=f"{proc.url}/v1", api_key=key)
    with clips.speech.open("rb") as f:
        result = client.audio.transcriptions.create(file=f, model="whisper-1", language="en")
    assert set(SPEECH_WORDS) <= words_of(result.text)

    with clips.speech.open("rb") as f:
        served_srt = client.audio.transcriptions.create(
            file=f, model="whisper-1", language="en", response_format="srt"
        )
    out = tmp_path / "cli"
    subprocess.run(
        [*MALSORI, "transcribe", str(clips.speech), "-q", "-l", "en", "--beam-size", "1",
         "--threads", "2", "-f", "srt", "-o", str(out), "--subtitle-profile", "none"],
        check=True, capture_output=True,
    )  # fmt: skip
    assert served_srt == (out / "speech.srt").read_text(encoding="utf-8")

    with clips.speech.open("rb") as f:
        stream = client.audio.transcriptions.create(
            file=f, model="whisper-1", language="en", stream=True
        )
        events = list(stream)
    assert events[-1].type == "transcript.text.done"
    assert set(SPEECH_WORDS) <= words_of(events[-1].text)  # type: ignore[union-attr]


def test_limits_auth_and_request_ids_on_a_real_server(server: tuple[ServerProcess, str]) -> None:
    proc, key = server
    headers = {"Authorization": f"Bearer {key}", "X-Request-ID": "real-413"}

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it streams
        boundary = "b0undary"
        yield (f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="x.wav"'
               "\r\n\r\n").encode()  # fmt: skip
        for _ in range(24):  # 1.5 MiB against a 1 MiB limit
            yield b"\0" * 65536
        yield f"\r\n--{boundary}--\r\n".encode()

    response = httpx.post(
        f"{proc.url}/v1/audio/transcriptions",
        content=chunks(),
        headers={**headers, "Content-Type": "multipart/form-data; boundary=b0undary"},
        timeout=30,
    )
    assert response.status_code == 413 and response.json()["error"]["code"] == "file_too_large"
    assert response.headers["x-request-id"] == "real-413"
    wrong = httpx.get(f"{proc.url}/v1/models", headers={"Authorization": "Bearer msk-x"})
    assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "invalid_api_key"
    metrics = httpx.get(f"{proc.url}/metrics").text
    assert "malsori_model_load_seconds" in metrics
    assert proc.stop() in (0, -signal.SIGTERM)  # uvicorn re-raises the signal once shut down
    log = proc.log.read_text()
    assert "Application shutdown complete" in log
    assert "[real-413]" in log and "POST /v1/audio/transcriptions 413" in log


def test_jobs_survive_sigkill_mid_job(
    data_dir: Path, clips: Clips, monkeypatch: pytest.MonkeyPatch
) -> None:
    # One job in the engine at a time: the others are still queued when the server is killed.
    monkeypatch.setenv("MALSORI_ENGINE__MAX_ACTIVE", "1")
    key = make_key(data_dir)
    auth = {"Authorization": f"Bearer {key}"}
    first = ServerProcess(data_dir)
    try:
        clips_in_order = [clips.long, clips.speech, clips.speech_mp3]
        ids = []
        for clip in clips_in_order:
            response = httpx.post(
                f"{first.url}/v1/jobs",
                files={"file": (clip.name, clip.read_bytes())},
                data={"language": "en"},
                headers=auth,
                timeout=60,
            )
            assert response.status_code == 202, response.text
            ids.append(response.json()["id"])
        deadline = time.monotonic() + 60
        first_job = f"{first.url}/v1/jobs/{ids[0]}"
        while httpx.get(first_job, headers=auth).json()["status"] != "running":
            assert time.monotonic() < deadline
            time.sleep(0.1)
        time.sleep(1.0)  # well inside the first job's decoding
        states = [httpx.get(f"{first.url}/v1/jobs/{i}", headers=auth).json() for i in ids]
        assert [s["status"] for s in states] == ["running", "queued", "queued"]
    finally:
        first.stop(signal.SIGKILL)

    second = ServerProcess(data_dir)
    try:
        done: dict[str, Any] = {}
        deadline = time.monotonic() + 300
        while len(done) < len(ids):
            assert time.monotonic() < deadline, done
            for job_id in ids:
                job = httpx.get(f"{second.url}/v1/jobs/{job_id}", headers=auth).json()
                if job["status"] in ("completed", "failed"):
                    done[job_id] = job
            time.sleep(0.2)
        assert [done[i]["status"] for i in ids] == ["completed"] * 3
        assert [done[i]["attempts"] for i in ids] == [2, 1, 1]
        texts = [
            httpx.get(f"{second.url}/v1/jobs/{i}/result?format=txt", headers=auth).text for i in ids
        ]
        assert len(set(LONG_WORDS) & words_of(texts[0])) >= 4
        assert set(SPEECH_WORDS) <= words_of(texts[1]) and set(SPEECH_WORDS) <= words_of(texts[2])
        listed = httpx.get(f"{second.url}/v1/jobs?limit=100", headers=auth).json()["data"]
        assert sorted(j["id"] for j in listed) == sorted(ids)  # none lost, none duplicated
    finally:
        second.stop(signal.SIGKILL)
    assert os.listdir(data_dir / "uploads") == []
