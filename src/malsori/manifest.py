"""Manifests: the clips of an evaluation set, with their language and reference text.

One clip a row, in TSV (``path<TAB>language<TAB>text``, as ``../shared/evaldata/manifest.tsv``),
CSV or JSONL; audio paths are relative to the manifest's folder. ``load_manifest`` names the line
of any malformed row; ``select_entries`` picks a subset by language and count.
"""

from __future__ import annotations

import csv
import json
import logging
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import InputError, InvalidOptionError
from .languages import normalize_language

logger = logging.getLogger(__name__)

_AUDIO_KEYS = ("audio", "path", "audio_path", "file")
_LANGUAGE_KEYS = ("language", "lang")
_TEXT_KEYS = ("text", "reference", "transcript", "sentence")


class ManifestError(InputError):
    """A manifest that cannot be read, or a row in it that is malformed."""


@dataclass(frozen=True)
class ManifestEntry:
    audio: Path  # absolute, or relative to the working folder when the manifest's path was
    language: str  # Whisper code of the spoken language
    reference: str  # reference text as written in the manifest (normalised only when scored)
    line: int = 0  # 1-based line in the manifest, for messages

    @property
    def id(self) -> str:
        return str(self.audio)


def load_manifest(path: str | os.PathLike[str], *, check_files: bool = True) -> list[ManifestEntry]:
    """Read a TSV, CSV or JSONL manifest; audio paths are relative to the manifest's folder.

    TSV and CSV may have a header naming the columns (``audio``/``path``, ``language``/``lang``,
    ``text``/``reference``); without one the columns are path, language, text. Blank lines and
    lines starting with ``#`` are skipped. Raises ManifestError naming the line of a bad row.
    """
    manifest = Path(path)
    suffix = manifest.suffix.lower()
    if suffix not in (".tsv", ".txt", ".csv", ".jsonl", ".json"):
        raise ManifestError(f"{manifest}: unknown manifest format (use .tsv, .csv or .jsonl)")
    try:
        text = manifest.read_text(encoding="utf-8-sig")
    except FileNotFoundError as e:
        raise ManifestError(f"{manifest}: no such manifest") from e
    except (OSError, UnicodeDecodeError) as e:
        raise ManifestError(f"{manifest}: cannot read manifest ({e})") from e
    if suffix in (".jsonl", ".json"):
        rows = _jsonl_rows(manifest, text)
    else:
        rows = _table_rows(manifest, text, delimiter="," if suffix == ".csv" else "\t")
    entries = [_entry(manifest, line, row, check_files) for line, row in rows]
    if not entries:
        raise ManifestError(f"{manifest}: no entries")
    logger.info("read %d entries from %s", len(entries), manifest)
    return entries


def _table_rows(
    manifest: Path, text: str, delimiter: str
) -> Iterator[tuple[int, dict[str, str | None]]]:
    lines = [(n, line) for n, line in enumerate(text.splitlines(), 1)]
    content = [(n, line) for n, line in lines if line.strip() and not line.startswith("#")]
    if not content:
        return
    if delimiter == "\t":  # no quoting in TSV: a reference may hold quote characters
        split = [(n, line.split("\t")) for n, line in content]
    else:
        rows = csv.reader(line for _, line in content)
        split = [(n, row) for (n, _), row in zip(content, rows, strict=True)]
    header = [c.strip().lower() for c in split[0][1]]
    if any(k in header for k in _AUDIO_KEYS) and any(k in header for k in _TEXT_KEYS):
        for n, cells in split[1:]:
            if len(cells) != len(header):
                raise ManifestError(
                    f"{manifest}, line {n}: expected {len(header)} columns, found {len(cells)}"
                )
            yield n, dict(zip(header, cells, strict=True))
        return
    separator = "tabs" if delimiter == "\t" else "commas"
    for n, cells in split:
        if len(cells) < 3:
            raise ManifestError(
                f"{manifest}, line {n}: expected path, language and text separated by "
                f"{separator}, found {len(cells)} column(s)"
            )
        text_cell = delimiter.join(cells[2:])  # a reference may contain the delimiter
        yield n, {"audio": cells[0], "language": cells[1], "text": text_cell}


def _jsonl_rows(manifest: Path, text: str) -> Iterator[tuple[int, dict[str, Any]]]:
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise ManifestError(f"{manifest}, line {n}: not valid JSON ({e.msg})") from e
        if not isinstance(row, dict):
            raise ManifestError(f"{manifest}, line {n}: expected a JSON object")
        yield n, {str(k).lower(): v for k, v in row.items()}


def _field(row: dict[str, Any], keys: Sequence[str]) -> str | None:
    for key in keys:
        value = row.get(key)
        if value is not None:
            return str(value)
    return None


def _entry(manifest: Path, line: int, row: dict[str, Any], check_files: bool) -> ManifestEntry:
    where = f"{manifest}, line {line}"
    audio = _field(row, _AUDIO_KEYS)
    language = _field(row, _LANGUAGE_KEYS)
    reference = _field(row, _TEXT_KEYS)
    if not audio or not audio.strip():
        raise ManifestError(f"{where}: no audio path ({' or '.join(_AUDIO_KEYS)})")
    if not language or not language.strip():
        raise ManifestError(f"{where}: no language ({' or '.join(_LANGUAGE_KEYS)})")
    if reference is None:
        raise ManifestError(f"{where}: no reference text ({' or '.join(_TEXT_KEYS)})")
    try:
        code = normalize_language(language)
    except InvalidOptionError as e:
        raise ManifestError(f"{where}: {e}") from e
    if code is None:
        raise ManifestError(f"{where}: the language must be given, not {language!r}")
    audio_path = Path(audio.strip()).expanduser()
    if not audio_path.is_absolute():
        audio_path = manifest.parent / audio_path
    if check_files and not audio_path.is_file():
        raise ManifestError(f"{where}: audio file {audio_path} not found")
    return ManifestEntry(audio_path, code, reference.strip(), line)


def select_entries(
    entries: Iterable[ManifestEntry],
    *,
    languages: Iterable[str] | None = None,
    limit: int | None = None,
    limit_per_language: int | None = None,
) -> list[ManifestEntry]:
    """Entries in manifest order, keeping only ``languages``, at most N per language and in all."""
    wanted = None
    if languages is not None:
        wanted = set()
        for lang in languages:
            code = normalize_language(lang)
            if code is None:
                raise InvalidOptionError(f"not a language to select: {lang!r}")
            wanted.add(code)
    for name, value in (("limit", limit), ("limit per language", limit_per_language)):
        if value is not None and value < 1:
            raise InvalidOptionError(f"{name} must be at least 1, got {value}")
    chosen: list[ManifestEntry] = []
    per_language: dict[str, int] = {}
    for entry in entries:
        if wanted is not None and entry.language not in wanted:
            continue
        if limit_per_language is not None and per_language.get(entry.language, 0) >= (
            limit_per_language
        ):
            continue
        per_language[entry.language] = per_language.get(entry.language, 0) + 1
        chosen.append(entry)
        if limit is not None and len(chosen) >= limit:
            break
    return chosen
