"""Completion records: what makes a batch job resumable.

After every output of a file has been written (each atomically), a small JSON record goes to
``OUT_DIR/.malsori-batch/done/<stem>.json``, again atomically. A re-run skips a file only when its
record exists, names the same input (size and modification time), the same model and options,
and every output it lists is present with the recorded size. A kill between the outputs and the
record leaves no record, so the file is simply redone; nothing half-written is ever trusted.

One job at a time writes to an output folder: ``job_lock`` holds ``.malsori-batch/lock`` (an
advisory ``flock``, released by the system when the process ends, even by a kill), and a second
job on the same folder stops at once with ``OutputBusyError``, naming the process that holds it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import OutputBusyError, OutputError
from ..results import Transcript
from ..writers import get_writer, write_atomic, write_outputs
from .inputs import BatchInput

logger = logging.getLogger(__name__)

STATE_DIR = ".malsori-batch"
RECORD_VERSION = 1
LOCK_FILE = "lock"

try:
    import fcntl
except ImportError:  # not POSIX: jobs are not kept apart
    fcntl = None  # type: ignore[assignment]

_held: dict[Path, int] = {}  # lock files this process holds, with how many holders each
_held_lock = threading.Lock()


@contextlib.contextmanager
def job_lock(directory: str | os.PathLike[str]) -> Iterator[None]:
    """Hold ``directory``'s job lock for the ``with`` block (creating the folder).

    Re-entrant within a process (the command holds it around ``run_batch``, which takes it too);
    raises ``OutputBusyError`` at once when another process holds it.
    """
    state = Path(directory) / STATE_DIR
    try:
        state.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(f"cannot create {state}: {e.strerror or e}") from e
    path = (state / LOCK_FILE).resolve()
    with _held_lock:
        if path in _held or fcntl is None:
            _held[path] = _held.get(path, 0) + 1
            fd = None
        else:
            fd = _acquire(path, Path(directory))
            _held[path] = 1
    try:
        yield
    finally:
        with _held_lock:
            _held[path] -= 1
            if not _held[path]:
                del _held[path]
                if fd is not None:
                    os.close(fd)  # closing the last descriptor releases the flock


def _acquire(path: Path, directory: Path) -> int:
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
        raise OutputError(f"cannot open the job lock {path}: {e.strerror or e}") from e
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 64).decode("ascii", "replace").strip() or "unknown"
        os.close(fd)
        raise OutputBusyError(
            f"another malsori batch job (process {holder}) is writing to {directory}; "
            "wait for it to end or choose another output folder"
        ) from None
    except OSError as e:  # a file system without locks: go on, as without fcntl
        logger.warning("cannot lock %s (%s): jobs on this folder are not kept apart", path, e)
        return fd
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd


@dataclass(frozen=True)
class OutputPlan:
    """Where and what a batch job writes, and the fingerprint a resumed job must match."""

    directory: Path
    formats: tuple[str, ...]
    fingerprint: str  # hash of the model and the options that shape a transcript

    @classmethod
    def build(
        cls, directory: str | os.PathLike[str], formats: tuple[str, ...], model: str, options: Any
    ) -> OutputPlan:
        settings = {"model": model, "options": options.to_dict()}
        digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]
        return cls(Path(directory), formats, digest)

    @property
    def state_dir(self) -> Path:
        return self.directory / STATE_DIR

    def outputs(self, item: BatchInput) -> list[Path]:
        return [self._target(item, get_writer(f).extension) for f in self.formats]

    def record_path(self, item: BatchInput) -> Path:
        return self.state_dir / "done" / f"{item.key}.json"

    def _target(self, item: BatchInput, extension: str) -> Path:
        return self.directory / f"{item.key}.{extension}"


@dataclass(frozen=True)
class Record:
    """What a finished file left behind; read back on resume and for the summary."""

    source: str
    duration: float
    language: str
    segments: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "duration": round(self.duration, 3),
            "language": self.language,
            "segments": self.segments,
        }


def _source_stamp(path: Path) -> dict[str, int]:
    st = path.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def finished_record(plan: OutputPlan, item: BatchInput) -> Record | None:
    """The record of a complete, valid earlier run of ``item``, or None to (re)do it."""
    path = plan.record_path(item)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("version") != RECORD_VERSION or data.get("fingerprint") != plan.fingerprint:
            logger.info("%s: done with other options or model; redoing", item.source)
            return None
        if data.get("input") != _source_stamp(item.source):
            logger.info("%s: input changed since it was done; redoing", item.source)
            return None
        sizes: dict[str, int] = data["outputs"]
        for target in plan.outputs(item):
            name = target.relative_to(plan.directory).as_posix()
            if name not in sizes or target.stat().st_size != sizes[name]:
                logger.info("%s: output %s missing or changed; redoing", item.source, target)
                return None
        return Record(data["source"], float(data["duration"]), data["language"], data["segments"])
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as e:
        logger.info("%s: unreadable completion record (%s); redoing", item.source, e)
        return None


def remove_stale(plan: OutputPlan, item: BatchInput) -> None:
    """Before redoing a file: drop its record and the temporary files a killed run left behind
    (``write_atomic`` names them ``.<output name>.<random>.tmp``)."""
    plan.record_path(item).unlink(missing_ok=True)
    for target in plan.outputs(item):
        if target.parent.is_dir():
            for tmp in target.parent.glob(f".{glob_escape(target.name)}.*.tmp"):
                tmp.unlink(missing_ok=True)


def glob_escape(text: str) -> str:
    return "".join(f"[{c}]" if c in "*?[]" else c for c in text)


def save(plan: OutputPlan, item: BatchInput, transcript: Transcript) -> Record:
    """Write every output, then the record that marks the file done. Raises OutputError."""
    target = plan.directory / item.key
    written = write_outputs(transcript, target.parent, target.name, plan.formats)
    record = Record(
        str(item.source),
        transcript.duration,
        transcript.language.language,
        len(transcript.segments),
    )
    try:
        data = {
            "version": RECORD_VERSION,
            "fingerprint": plan.fingerprint,
            "input": _source_stamp(item.source),
            "outputs": {
                p.relative_to(plan.directory).as_posix(): p.stat().st_size for p in written
            },
            **record.to_dict(),
        }
    except OSError as e:
        raise OutputError(f"cannot check the outputs of {item.source}: {e}") from e
    write_atomic(plan.record_path(item), json.dumps(data, ensure_ascii=False, indent=1) + "\n")
    return record
