"""Training data: a manifest (TSV/CSV/JSONL: audio, language, text) or a folder of clips with
``.txt`` transcripts, each clip checked before any training starts.

Every problem is collected and reported together, each with its manifest line (or the clip's
path for a folder): missing or unreadable audio, empty text, a clip longer than Whisper's 30 s
window, a text longer than the decoder allows (its labels, with the language and task tokens,
must fit in ``max_target_positions``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..audio import SAMPLE_RATE, AudioStream
from ..errors import InputError, InvalidOptionError
from ..languages import normalize_language
from ..manifest import ManifestEntry, load_manifest

logger = logging.getLogger(__name__)

MAX_CLIP_S = 30.0  # Whisper's window: longer clips would be cut, their text would not
MAX_REPORTED = 20  # problems listed in one error message
AUDIO_EXTENSIONS = frozenset(
    (".wav", ".flac", ".mp3", ".m4a", ".ogg", ".oga", ".opus", ".webm", ".aac", ".aiff", ".mp4")
)
# (text, language) -> number of decoder label tokens, prompt and end-of-text included.
TokenCounter = Callable[[str, str], int]


class TrainingDataError(InputError):
    """Training or evaluation data that cannot be used; the message lists every problem."""


@dataclass(frozen=True)
class Example:
    """One checked training clip."""

    audio: Path
    language: str
    text: str
    where: str  # "train.tsv, line 4" or the clip's path, for messages
    duration: float  # seconds
    line: int = 0  # 1-based manifest line; 0 for a folder's clips

    def entry(self) -> ManifestEntry:
        """The same clip as a manifest entry, for ``malsori.evaluation``."""
        return ManifestEntry(self.audio, self.language, self.text, self.line)


def load_audio(path: Path) -> np.ndarray:
    """The clip as 16 kHz mono float32 (raises InputError subclasses when it cannot)."""
    return AudioStream(path).read()


Row = tuple[str, int, Path, str, str]  # where, line, audio, language, text


def _folder_rows(folder: Path, language: str | None) -> Iterator[Row]:
    """(where, audio, language, text) for each audio file of a folder; text from ``stem.txt``."""
    if language is None:
        raise InvalidOptionError(
            f"{folder}: a folder of clips needs --language (a manifest names each clip's)"
        )
    for audio in sorted(p for p in folder.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS):
        transcript = audio.with_suffix(".txt")
        try:
            text = transcript.read_text(encoding="utf-8")
        except FileNotFoundError:
            text = "\0missing"  # reported by the checks below, with the others
        except (OSError, UnicodeDecodeError) as e:
            text = f"\0unreadable ({e})"
        yield str(audio), 0, audio, language, text


def _manifest_rows(manifest: Path) -> Iterator[Row]:
    for e in load_manifest(manifest, check_files=False):
        yield f"{manifest}, line {e.line}", e.line, e.audio, e.language, e.reference


def _check(
    row: Row,
    count_tokens: TokenCounter | None,
    max_tokens: int,
) -> tuple[Example | None, str | None]:
    """The example, or the problem with it."""
    where, line, audio, language, text = row
    if text.startswith("\0"):
        return None, f"{where}: transcript {audio.with_suffix('.txt').name} is {text[1:]}"
    text = text.strip()
    if not text:
        return None, f"{where}: empty text"
    if not audio.is_file():
        return None, f"{where}: audio file {audio} not found"
    try:
        samples = load_audio(audio)
    except InputError as e:
        return None, f"{where}: unreadable audio ({e})"
    duration = samples.size / SAMPLE_RATE
    if samples.size == 0:
        return None, f"{where}: audio {audio} has no samples"
    if duration > MAX_CLIP_S:
        return None, f"{where}: clip is {duration:.1f} s, longer than {MAX_CLIP_S:.0f} s"
    if count_tokens is not None:
        n = count_tokens(text, language)
        if n > max_tokens:
            return None, f"{where}: text is {n} tokens, the decoder allows {max_tokens}"
    return Example(audio, language, text, where, duration, line), None


def load_examples(
    source: str | os.PathLike[str],
    *,
    language: str | None = None,
    count_tokens: TokenCounter | None = None,
    max_tokens: int = 448,
) -> list[Example]:
    """Read and check every clip of a manifest or folder; raise TrainingDataError listing all
    problems (the first MAX_REPORTED of them) if any clip is unusable."""
    path = Path(source)
    if path.is_dir():
        code = normalize_language(language) if language else None
        rows = list(_folder_rows(path, code))
    elif path.is_file() or path.suffix:
        rows = list(_manifest_rows(path))  # a missing manifest raises ManifestError
    else:
        raise TrainingDataError(f"{path}: no such manifest or folder")
    if not rows:
        raise TrainingDataError(f"{path}: no audio clips found")
    examples: list[Example] = []
    problems: list[str] = []
    for row in rows:
        example, problem = _check(row, count_tokens, max_tokens)
        if problem is not None:
            problems.append(problem)
        elif example is not None:
            examples.append(example)
    if problems:
        shown = "\n  ".join(problems[:MAX_REPORTED])
        hidden = len(problems) - MAX_REPORTED
        more = f"\n  ... and {hidden} more" if hidden > 0 else ""
        raise TrainingDataError(
            f"{path}: {len(problems)} of {len(rows)} clip(s) cannot be used:\n  {shown}{more}"
        )
    total = sum(e.duration for e in examples)
    logger.info("%s: %d clips, %.1f min of audio", path, len(examples), total / 60)
    return examples


def summarize(examples: Sequence[Example]) -> str:
    languages = sorted({e.language for e in examples})
    minutes = sum(e.duration for e in examples) / 60
    return f"{len(examples)} clips, {minutes:.1f} min, languages: {', '.join(languages)}"
