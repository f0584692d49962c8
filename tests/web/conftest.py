"""Fixtures for the browser tests: a real ``malsori serve`` process with a key, speech clips,
Debian's chromium driven by Playwright and Debian's firefox-esr driven over WebDriver BiDi
(``bidi.py``); a test is skipped, with the reason, when its browser is missing."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="the server extra is not installed")
pytest.importorskip("playwright", reason="playwright is not installed (dev extra)")

from rendered_audio import run_tool

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FIREFOX = shutil.which("firefox-esr") or shutil.which("firefox") or "/usr/bin/firefox-esr"
SCREENSHOTS_ENV = "MALSORI_SCREENSHOTS"  # also copy screenshots here (bench-results/screenshots)
SPEECH_TEXT = "The quick brown fox jumps over the lazy dog."
SPEECH_WORDS = ("quick", "fox", "lazy", "dog")


@dataclass(frozen=True)
class Server:
    url: str
    key: str
    log: Path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def chromium() -> str:
    if not os.path.exists(CHROMIUM):
        pytest.skip("Debian's chromium is not installed (scripts/install-system-deps.sh)")
    return CHROMIUM


@pytest.fixture(scope="session")
def firefox() -> str:
    if not os.path.exists(FIREFOX):
        pytest.skip("Debian's firefox-esr is not installed (scripts/install-system-deps.sh)")
    return FIREFOX


@pytest.fixture(scope="session")
def web_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    data = tmp_path_factory.mktemp("web-data")
    malsori = [sys.executable, "-m", "malsori"]
    key = subprocess.run([*malsori, "keys", "--data-dir", str(data), "create", "browser"],
                         capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    port = _free_port()
    log = data.parent / "web-server.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [*malsori, "serve", "--port", str(port), "--data-dir", str(data),
             "--beam-size", "1", "--threads", "2"],
            stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    import httpx

    deadline = time.monotonic() + 120
    while True:
        assert process.poll() is None, log.read_text()
        try:
            if httpx.get(f"{url}/ready", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.2)
    yield Server(url, key, log)
    process.terminate()
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()


@pytest.fixture(scope="session")
def speech_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A second of silence, the sentence, three seconds of silence: 16-bit mono WAV (the fake
    microphone plays it once)."""
    d = tmp_path_factory.mktemp("web-audio")
    said = d / "said.wav"
    run_tool("espeak-ng", "-v", "en-us", "-s", "140", "-w", said, SPEECH_TEXT)  # unhurried
    out = d / "speech.wav"
    run_tool("sox", said, "-r", "48000", "-b", "16", "-c", "1", out, "pad", "1", "3")
    return out


@pytest.fixture
def screenshots(tmp_path: Path) -> Iterator[list[Path]]:
    """Screenshot paths taken by a test; copied to $MALSORI_SCREENSHOTS when it is set."""
    taken: list[Path] = []
    yield taken
    target = os.environ.get(SCREENSHOTS_ENV)
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        for shot in taken:
            shutil.copy2(shot, Path(target) / shot.name)
