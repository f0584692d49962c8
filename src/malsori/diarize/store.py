"""Enrolled speakers kept between runs (``malsori speakers add|list|remove``): a JSON file of
names and voice embeddings under the user's data folder, so a series of meetings uses the same
names. Only embeddings are kept, never the audio."""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..errors import InvalidOptionError
from ..writers import write_atomic
from .options import KnownSpeaker


def default_store_path() -> Path:
    """``$MALSORI_SPEAKERS`` if set, else ``speakers.json`` in the user's malsori data folder."""
    override = os.environ.get("MALSORI_SPEAKERS")
    if override:
        return Path(override)
    import platformdirs

    return Path(platformdirs.user_data_dir("malsori")) / "speakers.json"


class SpeakerStore:
    def __init__(self, path: Path | None = None):
        self.path = path or default_store_path()

    def load(self) -> tuple[KnownSpeaker, ...]:
        if not self.path.exists():
            return ()
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            return tuple(KnownSpeaker.from_dict(d) for d in data["speakers"])
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise InvalidOptionError(f"cannot read the speaker store {self.path}: {e}") from e

    def save(self, speakers: tuple[KnownSpeaker, ...]) -> None:
        data = {"version": 1, "speakers": [s.to_dict() for s in speakers]}
        write_atomic(self.path, json.dumps(data, ensure_ascii=False, indent=1) + "\n")

    def add(self, speaker: KnownSpeaker) -> bool:
        """Add or replace ``speaker``; True when it replaced one of the same name."""
        kept = self.load()
        others = tuple(s for s in kept if s.name != speaker.name)
        self.save((*others, speaker))
        return len(others) != len(kept)

    def remove(self, name: str) -> None:
        kept = self.load()
        others = tuple(s for s in kept if s.name != name)
        if len(others) == len(kept):
            raise InvalidOptionError(f"no enrolled speaker named {name!r}")
        self.save(others)
