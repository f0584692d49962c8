"""Finding the files of a batch job and where each one's outputs go.

Inputs are files, folders (searched recursively, filtered by ``--include``/``--exclude`` globs) or
manifests (TSV/CSV/JSONL with a path column, or a plain list of paths, one a line). Outputs mirror
the input tree under the output folder: each input's path relative to the common root of all
inputs becomes its output path, so ``a/x.wav`` and ``b/x.wav`` never write the same file.
"""

from __future__ import annotations

import csv
import fnmatch
import json
import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from ..errors import InvalidOptionError
from ..manifest import ManifestError

logger = logging.getLogger(__name__)

# Extensions searched for in folders unless --include says otherwise.
AUDIO_EXTENSIONS: frozenset[str] = frozenset(
    f".{ext}"
    for ext in (
        "wav", "flac", "mp3", "m4a", "aac", "ogg", "oga", "opus", "webm", "mp4", "mkv", "mov",
        "avi", "wma", "aiff", "aif", "amr", "3gp", "caf", "ac3", "mka", "mpeg", "mpg", "ts",
    )
)  # fmt: skip
_PATH_KEYS = ("audio", "path", "audio_path", "file", "filename")


@dataclass(frozen=True)
class BatchInput:
    """One input file and the stem of its outputs, relative to the output folder."""

    source: Path  # the audio file as found (absolute)
    stem: PurePosixPath  # output path without extension, e.g. ``lectures/week1/intro``

    @property
    def key(self) -> str:
        return self.stem.as_posix()


def _matches(rel: str, patterns: Sequence[str]) -> bool:
    """Whether the path (relative to the folder searched) or any tail of it matches: ``*.wav``
    matches every WAV file, ``raw/*`` the files of every folder named raw, at any depth."""
    parts = rel.split("/")
    tails = ["/".join(parts[i:]) for i in range(len(parts))]
    return any(fnmatch.fnmatchcase(t, p) for p in patterns for t in tails)


def scan_folder(
    folder: Path, include: Sequence[str] = (), exclude: Sequence[str] = ()
) -> list[Path]:
    """Audio files under ``folder``, sorted, hidden files and folders skipped.

    A pattern matches the path relative to ``folder`` or any tail of it (``*.wav``, ``raw/*``,
    ``day?/take*.flac``). Without ``include``, files with a known audio extension count.
    """
    found: list[Path] = []
    for root, dirs, files in os.walk(folder, followlinks=False):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if name.startswith("."):
                continue
            path = Path(root) / name
            rel = path.relative_to(folder).as_posix()
            if include:
                if not _matches(rel, include):
                    continue
            elif path.suffix.lower() not in AUDIO_EXTENSIONS:
                continue
            if exclude and _matches(rel, exclude):
                continue
            found.append(path)
    return found


def read_path_list(manifest: str | os.PathLike[str]) -> list[Path]:
    """Audio paths from a manifest, relative paths resolved against the manifest's folder.

    ``.jsonl``: an ``audio``/``path``/``file`` field per line. ``.csv``/``.tsv``: a column of that
    name when there is a header, else the first column. Anything else: one path a line. Blank
    lines and ``#`` comments are skipped. Reference texts and languages, if any, are ignored.
    """
    path = Path(manifest)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError as e:
        raise ManifestError(f"{path}: no such manifest") from e
    except (OSError, UnicodeDecodeError) as e:
        raise ManifestError(f"{path}: cannot read manifest ({e})") from e
    lines = [(n, ln) for n, ln in enumerate(text.splitlines(), 1) if ln.strip()]
    lines = [(n, ln) for n, ln in lines if not ln.lstrip().startswith("#")]
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".json"):
        names = [_json_path(path, n, ln) for n, ln in lines]
    elif suffix in (".csv", ".tsv"):
        names = _table_paths(path, lines, "," if suffix == ".csv" else "\t")
    else:
        names = [ln.strip() for _, ln in lines]
    if not names:
        raise ManifestError(f"{path}: no entries")
    return [_resolve(path.parent, name) for name in names]


def _json_path(manifest: Path, line: int, text: str) -> str:
    try:
        row = json.loads(text)
    except json.JSONDecodeError as e:
        raise ManifestError(f"{manifest}, line {line}: not valid JSON ({e.msg})") from e
    if isinstance(row, str):
        return row
    if isinstance(row, dict):
        lowered = {str(k).lower(): v for k, v in row.items()}
        for key in _PATH_KEYS:
            if isinstance(lowered.get(key), str) and lowered[key].strip():
                return str(lowered[key])
    raise ManifestError(f"{manifest}, line {line}: no audio path ({' or '.join(_PATH_KEYS)})")


def _table_paths(manifest: Path, lines: list[tuple[int, str]], delimiter: str) -> list[str]:
    if delimiter == "\t":
        rows = [ln.split("\t") for _, ln in lines]
    else:
        rows = list(csv.reader(ln for _, ln in lines))
    if not rows:
        return []
    header = [c.strip().lower() for c in rows[0]]
    column = next((header.index(k) for k in _PATH_KEYS if k in header), None)
    if column is None:
        return [r[0].strip() for r in rows if r and r[0].strip()]
    names = []
    for (n, _), row in zip(lines[1:], rows[1:], strict=True):
        if column >= len(row) or not row[column].strip():
            raise ManifestError(f"{manifest}, line {n}: no audio path in column {column + 1}")
        names.append(row[column].strip())
    return names


def _resolve(base: Path, name: str) -> Path:
    p = Path(name).expanduser()
    return p if p.is_absolute() else base / p


def _stem(rel: PurePosixPath) -> PurePosixPath:
    return rel.with_suffix("") if rel.suffix else rel


def discover(
    paths: Iterable[str | os.PathLike[str]] = (),
    *,
    manifests: Iterable[str | os.PathLike[str]] = (),
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
) -> list[BatchInput]:
    """Every input file once, with the output stem that mirrors its place in the input tree.

    Files named directly are taken as they are (even without an audio extension; a missing one is
    kept so that it is reported as failed). Raises InvalidOptionError when nothing is given.
    """
    found: list[tuple[Path, Path]] = []  # (file, the root it is relative to)
    for item in paths:
        p = Path(item).expanduser().absolute()
        if p.is_dir():
            found += [(f, p) for f in scan_folder(p, include, exclude)]
        else:
            found.append((p, p.parent))
    for manifest in manifests:
        m = Path(manifest).expanduser().absolute()
        for f in read_path_list(m):
            f = f.absolute()  # relative to the manifest's folder, unless it lies elsewhere
            found.append((f, m.parent if f.is_relative_to(m.parent) else f.parent))
    if not found:
        raise InvalidOptionError("no input files: give files, folders or --manifest")
    unique: dict[str, tuple[Path, Path]] = {}
    for f, root in found:
        unique.setdefault(os.path.normpath(f), (Path(os.path.normpath(f)), root))
    root = Path(os.path.commonpath([str(r) for _, r in unique.values()]))
    return _with_stems([f for f, _ in unique.values()], root)


def _with_stems(files: list[Path], root: Path) -> list[BatchInput]:
    rels = []
    for f in files:
        try:
            rels.append(PurePosixPath(f.relative_to(root).as_posix()))
        except ValueError:  # outside the root (cannot happen with commonpath, but be safe)
            rels.append(PurePosixPath(f.as_posix().lstrip("/")))
    stems = [_stem(r) for r in rels]
    # x.wav and x.mp3 in one folder: both keep their extension in the output name.
    counts: dict[str, int] = {}
    for s in stems:
        counts[s.as_posix().lower()] = counts.get(s.as_posix().lower(), 0) + 1
    out = []
    for f, rel, stem in zip(files, rels, stems, strict=True):
        if counts[stem.as_posix().lower()] > 1:
            stem = rel
        out.append(BatchInput(f, stem))
    logger.info("%d input files under %s", len(out), root)
    return out
