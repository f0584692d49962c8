"""What a batch job did: per-file outcomes and the summary shown at the end and saved as JSON."""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ..writers import write_atomic

Status = Literal["done", "skipped", "failed"]


@dataclass(frozen=True)
class FileOutcome:
    source: str
    status: Status
    duration: float = 0.0  # seconds of audio (0 when unknown: failed before decoding)
    language: str | None = None
    error: str | None = None  # the message, for failed files
    error_type: str | None = None  # the exception class name
    exit_code: int = 0  # malsori.errors exit code of the failure

    @property
    def failure(self) -> str:
        """One line for a failed file: its error, which names the file (else prefixed by it)."""
        error = self.error or "failed"
        return error if error.startswith(self.source) else f"{self.source}: {error}"

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"source": self.source, "status": self.status}
        if self.duration:
            d["duration"] = round(self.duration, 3)
        if self.language:
            d["language"] = self.language
        if self.error is not None:
            d["error"] = self.error
            d["error_type"] = self.error_type
        return d


@dataclass(frozen=True)
class BatchSummary:
    outcomes: tuple[FileOutcome, ...]
    wall_time: float  # seconds from start to end of the job, model loading included
    output_dir: str
    engine: str
    model: str
    options: dict[str, Any] = field(default_factory=dict)
    interrupted: bool = False
    pending: int = 0  # files not reached before an interruption

    def _of(self, status: Status) -> list[FileOutcome]:
        return [o for o in self.outcomes if o.status == status]

    @property
    def done(self) -> int:
        return len(self._of("done"))

    @property
    def skipped(self) -> int:
        return len(self._of("skipped"))

    @property
    def failed(self) -> list[FileOutcome]:
        return self._of("failed")

    @property
    def audio_seconds(self) -> float:
        """Audio transcribed by this run (skipped files not counted)."""
        return sum(o.duration for o in self._of("done"))

    @property
    def rtfx(self) -> float:
        return self.audio_seconds / self.wall_time if self.wall_time > 0 else 0.0

    @property
    def languages(self) -> dict[str, int]:
        """Files per language, over files done now and before (skipped)."""
        counts = Counter(o.language for o in self.outcomes if o.language and o.status != "failed")
        return dict(counts.most_common())

    @property
    def exit_code(self) -> int:
        """0, or the exit code of the first failure (130 when interrupted)."""
        if self.interrupted:
            return 130
        return next((o.exit_code or 1 for o in self.failed), 0)

    def to_dict(self) -> dict[str, Any]:
        return {
            "files": {
                "total": len(self.outcomes) + self.pending,
                "done": self.done,
                "skipped": self.skipped,
                "failed": len(self.failed),
                "pending": self.pending,
            },
            "audio_hours": round(self.audio_seconds / 3600, 4),
            "audio_hours_including_skipped": round(
                sum(o.duration for o in self.outcomes if o.status != "failed") / 3600, 4
            ),
            "wall_time": round(self.wall_time, 2),
            "rtfx": round(self.rtfx, 2),
            "languages": self.languages,
            "interrupted": self.interrupted,
            "engine": self.engine,
            "model": self.model,
            "options": self.options,
            "failures": [o.to_dict() for o in self.failed],
        }

    def write(self, path: str | os.PathLike[str]) -> Path:
        return write_atomic(path, json.dumps(self.to_dict(), ensure_ascii=False, indent=2) + "\n")

    def render(self) -> str:
        """The few lines shown on screen at the end."""
        hours = self.audio_seconds / 3600
        langs = ", ".join(f"{k} {v}" for k, v in self.languages.items()) or "-"
        lines = [
            f"files: {self.done} done, {len(self.failed)} failed, {self.skipped} skipped"
            + (f", {self.pending} not reached (interrupted)" if self.interrupted else ""),
            f"audio: {hours:.3f} h in {_clock(self.wall_time)} (RTFx {self.rtfx:.1f})",
            f"languages: {langs}",
        ]
        lines += [f"failed: {o.failure}" for o in _first(self.failed, 20)]
        if len(self.failed) > 20:
            lines.append(f"... and {len(self.failed) - 20} more (see summary.json)")
        return "\n".join(lines)


def _first(items: Iterable[FileOutcome], n: int) -> list[FileOutcome]:
    return list(items)[:n]


def _clock(seconds: float) -> str:
    s = round(seconds)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"
