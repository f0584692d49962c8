"""Fixtures for the server tests: short espeak-ng clips, the real model (loaded once per
session), and apps made by ``create_app`` on a fresh data folder, driven in-process."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi", reason="the server extra is not installed")

from starlette.testclient import TestClient

from malsori.server import create_app

from .helpers import LONG_SENTENCES, SPEECH_TEXT, Clips, Served, run_tool, settings_for


@pytest.fixture(scope="session")
def clips(tmp_path_factory: pytest.TempPathFactory) -> Clips:
    missing = [t for t in ("espeak-ng", "sox", "ffmpeg") if shutil.which(t) is None]
    if missing:
        pytest.fail(f"the tests need {', '.join(missing)} (scripts/install-system-deps.sh)")
    d = tmp_path_factory.mktemp("server-clips")
    speech = d / "speech.wav"
    run_tool("espeak-ng", "-v", "en-us", "-w", speech, SPEECH_TEXT)
    mp3 = d / "speech.mp3"
    run_tool("ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-i", speech, "-b:a", "64k", mp3)
    parts = []
    for i, sentence in enumerate(LONG_SENTENCES):
        part = d / f"s{i}.wav"
        run_tool("espeak-ng", "-v", "en-us", "-w", part, sentence)
        gap = d / f"g{i}.wav"
        run_tool("sox", "-n", "-r", "22050", "-c", "1", "-b", "16", gap, "trim", "0", "1.5")
        parts += [part, gap]
    long = d / "long.wav"
    run_tool("sox", *parts, long)
    not_audio = d / "notes.mp3"
    not_audio.write_text("These are meeting notes, not audio.\n" * 50)
    empty = d / "empty.wav"
    empty.write_bytes(b"")
    truncated = d / "truncated.wav"
    truncated.write_bytes(speech.read_bytes()[: speech.stat().st_size // 2])
    garbage = d / "garbage.wav"
    garbage.write_bytes(bytes((i * 7919 + 13) % 251 for i in range(40_000)))
    return Clips(speech, mp3, long, not_audio, empty, truncated, garbage)


@pytest.fixture(scope="session")
def server_model(request: pytest.FixtureRequest) -> Any:
    """The real ``base`` model, once per session (the suite-wide ``model`` fixture if there is
    one, so a full test run loads it only once)."""
    try:
        return request.getfixturevalue("model")
    except pytest.FixtureLookupError:
        import malsori

        return malsori.load_model("base", threads=2)


@pytest.fixture
def serve(tmp_path: Path, server_model: Any) -> Iterator[Callable[..., Served]]:
    """``serve(**settings)`` starts an app on a fresh data folder; all are stopped afterwards."""
    running: list[TestClient] = []

    def start(clock: Any = None, **overrides: Any) -> Served:
        overrides.setdefault("data_dir", tmp_path / f"data{len(running)}")
        settings = settings_for(**overrides)
        app = create_app(settings, model=server_model, clock=clock)
        client = TestClient(app)
        client.__enter__()
        running.append(client)
        key = app.state.services.keys.create("tests")[1]
        return Served(app, client, key, settings)

    yield start
    for client in running:
        client.__exit__(None, None, None)
