"""What diarization is asked for: how many speakers, and whose voices are known."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import InvalidOptionError

DEFAULT_MAX_SPEAKERS = 8  # when neither --num-speakers nor --max-speakers is given


def check_speaker_name(name: str) -> None:
    """A name fit for every format: ``[name]`` in text, ``<v name>`` in WebVTT."""
    if not name.strip() or name != name.strip() or any(c in name for c in "\n\r\t<>[]"):
        raise InvalidOptionError(
            f"speaker name {name!r}: give a name without tabs, newlines, <, >, [, ] or "
            "spaces around it"
        )


@dataclass(frozen=True)
class KnownSpeaker:
    """A voice with a name: the unit mean embedding of a reference recording of it."""

    name: str
    embedding: np.ndarray = field(compare=False, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "embedding": [round(float(x), 6) for x in self.embedding]}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> KnownSpeaker:
        return cls(str(d["name"]), np.asarray(d["embedding"], dtype=np.float32))


@dataclass(frozen=True)
class DiarizeOptions:
    """Diarization choices, validated once."""

    # Exactly this many speakers (None: found from the audio between min and max).
    num_speakers: int | None = None
    min_speakers: int = 1
    max_speakers: int | None = None  # None: DEFAULT_MAX_SPEAKERS (or the known speakers, if more)
    # Voices to label by name; a voice that matches none gets a numbered label.
    known: tuple[KnownSpeaker, ...] = ()
    device: str = "cpu"  # where the speaker encoder runs: "cpu" or "cuda"

    def __post_init__(self) -> None:
        if self.num_speakers is not None and self.num_speakers < 1:
            raise InvalidOptionError(f"num speakers must be at least 1, got {self.num_speakers}")
        if self.min_speakers < 1:
            raise InvalidOptionError(f"min speakers must be at least 1, got {self.min_speakers}")
        if self.max_speakers is not None and self.max_speakers < self.min_speakers:
            raise InvalidOptionError(
                f"max speakers ({self.max_speakers}) is less than min speakers "
                f"({self.min_speakers})"
            )
        if self.num_speakers is not None and (
            self.num_speakers < self.min_speakers
            or (self.max_speakers is not None and self.num_speakers > self.max_speakers)
        ):
            raise InvalidOptionError(
                "num speakers lies outside min speakers..max speakers: give one or the other"
            )
        names = [k.name for k in self.known]
        if len(set(names)) != len(names):
            raise InvalidOptionError("a known speaker's name is given twice")
        for name in names:
            check_speaker_name(name)
        if self.device not in ("cpu", "cuda"):
            raise InvalidOptionError(f"the speaker encoder runs on cpu or cuda, not {self.device}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "num_speakers": self.num_speakers,
            "min_speakers": self.min_speakers,
            "max_speakers": self.max_speakers,
            "known": [k.to_dict() for k in self.known],
            "device": self.device,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DiarizeOptions:
        return cls(
            num_speakers=d.get("num_speakers"),
            min_speakers=int(d.get("min_speakers", 1)),
            max_speakers=d.get("max_speakers"),
            known=tuple(KnownSpeaker.from_dict(k) for k in d.get("known", ())),
            device=str(d.get("device", "cpu")),
        )

    @property
    def speaker_range(self) -> tuple[int, int]:
        """The fewest and most speakers to consider."""
        if self.num_speakers is not None:
            return self.num_speakers, self.num_speakers
        most = self.max_speakers or max(DEFAULT_MAX_SPEAKERS, len(self.known))
        return self.min_speakers, most
