"""Finding batch inputs: folders, globs, manifests, and output stems that mirror the tree."""

from __future__ import annotations

import json
from pathlib import Path, PurePosixPath

import pytest

from malsori.batch.inputs import discover, read_path_list, scan_folder
from malsori.errors import InvalidOptionError
from malsori.manifest import ManifestError


def touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    return path


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "in"
    for rel in ("a/x.wav", "b/x.wav", "b/deep/y.mp3", "notes.txt", "c/z.flac", ".hidden/h.wav",
                "c/.cache.wav", "raw/take1.wav", "raw/take2.ogg"):  # fmt: skip
        touch(root / rel)
    return root


def stems(items) -> list[str]:  # type: ignore[no-untyped-def]
    return sorted(i.key for i in items)


def test_folder_is_searched_recursively_for_audio_only(tree: Path) -> None:
    items = discover([tree])
    assert stems(items) == ["a/x", "b/deep/y", "b/x", "c/z", "raw/take1", "raw/take2"]
    assert all(i.source.is_absolute() for i in items)


def test_same_name_in_different_folders_never_collides(tree: Path) -> None:
    items = discover([tree / "a", tree / "b"])
    assert stems(items) == ["a/x", "b/deep/y", "b/x"]


def test_include_and_exclude_globs(tree: Path) -> None:
    assert [p.name for p in scan_folder(tree, include=["*.wav"])] == ["x.wav", "x.wav", "take1.wav"]
    assert stems(discover([tree], include=["raw/*"])) == ["raw/take1", "raw/take2"]
    assert stems(discover([tree], exclude=["raw/*", "*.mp3"])) == ["a/x", "b/x", "c/z"]
    # include can pick files without an audio extension
    assert stems(discover([tree], include=["*.txt"])) == ["notes"]


def test_files_given_directly_keep_their_folder_relative_to_each_other(tree: Path) -> None:
    items = discover([tree / "a" / "x.wav", tree / "b" / "deep" / "y.mp3"])
    assert stems(items) == ["a/x", "b/deep/y"]
    single = discover([tree / "c" / "z.flac"])
    assert single[0].stem == PurePosixPath("z")


def test_same_stem_in_one_folder_keeps_the_extension(tmp_path: Path) -> None:
    touch(tmp_path / "s" / "talk.wav")
    touch(tmp_path / "s" / "talk.mp3")
    touch(tmp_path / "s" / "other.wav")
    assert stems(discover([tmp_path / "s"])) == ["other", "talk.mp3", "talk.wav"]


def test_duplicates_are_taken_once(tree: Path) -> None:
    f = tree / "c" / "z.flac"
    assert len(discover([f, f, tree / "c"])) == 1


def test_missing_file_is_kept_to_be_reported(tmp_path: Path) -> None:
    items = discover([tmp_path / "nope.wav"])
    assert [i.key for i in items] == ["nope"]


def test_nothing_to_do_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(InvalidOptionError):
        discover([tmp_path / "empty"])


def test_manifest_formats(tmp_path: Path, tree: Path) -> None:
    base = tree
    (base / "list.txt").write_text("# comment\na/x.wav\n\nc/z.flac\n")
    (base / "m.tsv").write_text("a/x.wav\tko\t안녕\nb/x.wav\tko\t하세요\n")
    (base / "h.csv").write_text('path,language,text\nc/z.flac,en,"hi, there"\n')
    (base / "m.jsonl").write_text(
        json.dumps({"audio": "raw/take1.wav", "text": "t"}) + "\n" + json.dumps("a/x.wav") + "\n"
    )
    assert [p.relative_to(base).as_posix() for p in read_path_list(base / "list.txt")] == [
        "a/x.wav", "c/z.flac"]  # fmt: skip
    assert [p.name for p in read_path_list(base / "m.tsv")] == ["x.wav", "x.wav"]
    assert [p.name for p in read_path_list(base / "h.csv")] == ["z.flac"]
    assert [p.name for p in read_path_list(base / "m.jsonl")] == ["take1.wav", "x.wav"]
    items = discover(manifests=[base / "m.tsv"])
    assert stems(items) == ["a/x", "b/x"]


def test_bad_manifests(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="no such manifest"):
        read_path_list(tmp_path / "missing.tsv")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "no path"}\n')
    with pytest.raises(ManifestError, match="line 1"):
        read_path_list(bad)
    empty = tmp_path / "empty.txt"
    empty.write_text("# nothing\n")
    with pytest.raises(ManifestError, match="no entries"):
        read_path_list(empty)
