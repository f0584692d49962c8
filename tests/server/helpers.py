"""Helpers shared by the server tests (fixtures live in conftest.py)."""

from __future__ import annotations

import argparse
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starlette.testclient import TestClient

from malsori import cli
from malsori.server import ServerSettings
from malsori.server.scheduler import WorkItem
from malsori.writers import get_writer

SPEECH_TEXT = "The quick brown fox jumps over the lazy dog."
SPEECH_WORDS = ("quick", "fox", "lazy", "dog")
LONG_SENTENCES = (
    "The yellow submarine sailed across the ocean.",
    "My grandmother baked chocolate cookies on Sunday.",
    "The orchestra played beautiful music in the theatre.",
    "Seven penguins walked slowly across the frozen lake.",
    "The old lighthouse keeper painted the door bright green.",
    "Our neighbours planted tomatoes and potatoes in the garden.",
    "A famous scientist explained the mystery of the volcano.",
    "The children built a sandcastle near the harbour yesterday.",
    "Please remember to water the flowers every morning.",
)
LONG_WORDS = ("submarine", "chocolate", "orchestra", "penguins", "lighthouse", "volcano")


def run_tool(*cmd: str | Path) -> None:
    subprocess.run([str(c) for c in cmd], check=True, capture_output=True)


@dataclass(frozen=True)
class Clips:
    speech: Path  # espeak-ng English, 22.05 kHz WAV, about 3 s
    speech_mp3: Path
    long: Path  # nine sentences with pauses, about 40 s: more than one 30 s window
    not_audio: Path  # text named .mp3
    empty: Path
    truncated: Path  # a WAV whose data chunk promises more than the file holds
    garbage: Path  # random bytes named .wav


@dataclass
class Served:
    """An app running in-process, with a client and an API key for it."""

    app: Any
    client: TestClient
    key: str
    settings: ServerSettings

    @property
    def services(self) -> Any:
        return self.app.state.services

    def auth(self, key: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {key or self.key}"}

    def new_key(self, name: str = "other") -> str:
        return str(self.services.keys.create(name)[1])

    def stored(self) -> dict[str, int]:
        """What the server holds on disk and in its database (for 'nothing stored' checks)."""
        from sqlalchemy import func, select

        from malsori.server.db import JobRow

        data = self.settings.data_dir
        with self.services.db.session() as s:
            rows = s.scalar(select(func.count()).select_from(JobRow))
        return {
            "uploads": len(list((data / "uploads").iterdir())),
            "audio": len(list((data / "audio").iterdir())),
            "jobs": int(rows or 0),
        }


def settings_for(**overrides: Any) -> ServerSettings:
    """Fast, deterministic test settings: greedy decoding, one worker."""
    base: dict[str, Any] = {"decode": {"beam_size": 1}, "workers": 1}
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            base[key] = {**base[key], **value}
        else:
            base[key] = value
    return ServerSettings(**base)


def words_of(text: str) -> set[str]:
    return set("".join(c.lower() if c.isalnum() else " " for c in text).split())


def cli_output(model: Any, clip: Path, fmt: str, tmp_path: Path, *extra: str) -> str:
    """What ``malsori transcribe CLIP -f FMT -o DIR --beam-size 1 ...`` writes (the CLI's own code
    path, with the session's model instead of a second load)."""
    out = tmp_path / "cli"
    args = ["transcribe", str(clip), "-q", "-f", fmt, "-o", str(out), "--beam-size", "1", *extra]
    import malsori.commands.transcribe as command

    original = command.load_model_from_args

    def shared_model(_: argparse.Namespace) -> Any:
        return model

    command.load_model_from_args = shared_model  # type: ignore[assignment]
    try:
        assert cli.main(args) == 0
    finally:
        command.load_model_from_args = original  # type: ignore[assignment]
    return (out / f"{clip.stem}.{get_writer(fmt).extension}").read_text(encoding="utf-8")


NOTHING = {"uploads": 0, "audio": 0, "jobs": 0}


def submit(served: Served, clip: Path, key: str | None = None, **data: Any) -> dict[str, Any]:
    files = {"file": (clip.name, clip.read_bytes(), "audio/wav")}
    response = served.client.post("/v1/jobs", files=files, data=data, headers=served.auth(key))
    assert response.status_code == 202, response.text
    assert response.headers["location"] == f"/v1/jobs/{response.json()['id']}"
    return response.json()  # type: ignore[no-any-return]


def wait_for(served: Served, job_id: str, *statuses: str, timeout: float = 180) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = served.client.get(f"/v1/jobs/{job_id}", headers=served.auth()).json()
        if job["status"] in statuses:
            return job  # type: ignore[no-any-return]
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} never reached {statuses}: {job}")


class Blocker:
    """Occupies the single worker until released, so queue states can be set up exactly."""

    def __init__(self, served: Served):
        self.release = threading.Event()
        self.started = threading.Event()
        self.pool = served.services.pool

        def run() -> None:
            self.started.set()
            self.release.wait(60)

        self.pool.submit(WorkItem(run=run, name="blocker"))
        assert self.started.wait(10)
