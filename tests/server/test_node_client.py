"""The official ``openai`` npm client's realtime transcription (tests/node/) against a real
``malsori serve`` process. Skipped without node; ``npm install`` in tests/node fetches the two
packages it needs (openai, ws) once, and the test is skipped when that cannot be done."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .helpers import SPEECH_WORDS, Clips, words_of
from .test_openai_realtime import raw

pytestmark = pytest.mark.slow

NODE_DIR = Path(__file__).parent.parent / "node"


@pytest.fixture(scope="module")
def node_client() -> Path:
    if shutil.which("node") is None:
        pytest.skip("node is not installed")
    if not (NODE_DIR / "node_modules" / "openai").is_dir():
        if shutil.which("npm") is None:
            pytest.skip("npm is not installed")
        done = subprocess.run(["npm", "install", "--no-audit", "--no-fund"], cwd=NODE_DIR,
                              capture_output=True, timeout=300)  # fmt: skip
        if done.returncode != 0:
            pytest.skip(f"npm install failed: {done.stderr.decode()[-300:]}")
    return NODE_DIR / "realtime_transcription.mjs"


@pytest.fixture
def real_server(tmp_path: Path) -> Iterator[tuple[Any, str]]:
    from .test_real_server import ServerProcess, make_key

    data_dir = tmp_path / "data"
    key = make_key(data_dir)
    proc = ServerProcess(data_dir)
    yield proc, key
    proc.stop(signal.SIGKILL)


def test_the_node_client_transcribes_in_realtime(
    node_client: Path, real_server: tuple[Any, str], clips: Clips, tmp_path: Path
) -> None:
    proc, key = real_server
    audio = tmp_path / "speech.raw"
    raw(clips.speech, audio, "pcm16")
    env = {**os.environ, "MALSORI_PLAIN_WS": "1"}  # the client says wss://: see the script
    out = subprocess.run(["node", str(node_client), f"{proc.url}/v1", key, str(audio)],
                         capture_output=True, text=True, timeout=120, env=env)  # fmt: skip
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert set(SPEECH_WORDS) <= words_of(result["transcript"])
    assert "session.created" in result["types"] and "session.updated" in result["types"]
