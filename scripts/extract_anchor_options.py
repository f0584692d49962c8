"""Regenerate ``src/malsori/compat/data/*.json``: the long options of the anchors' command lines.

Reads the anchors' own parser definitions (``add_argument`` calls) from their released sources
without importing them (openai-whisper needs torch): option names, short forms, value type,
choices and default. No help text is kept. Usage::

    pip download --no-deps openai-whisper whisper-ctranslate2 -d /tmp/anchors
    python scripts/extract_anchor_options.py /tmp/anchors/openai_whisper-*.tar.gz \
        /tmp/anchors/whisper_ctranslate2-*.whl

``tests/compat/test_cli_compat.py`` checks that ``malsori transcribe`` accepts every option here.
"""

from __future__ import annotations

import ast
import json
import re
import sys
import tarfile
import zipfile
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parent.parent / "src" / "malsori" / "compat" / "data"
ANCHORS = {
    # anchor name: (package file prefix, source inside it, output file)
    "openai-whisper": ("openai_whisper-", "whisper/transcribe.py", "whisper_cli.json"),
    "whisper-ctranslate2": (
        "whisper_ctranslate2-",
        "whisper_ctranslate2/commandline.py",
        "whisper_ctranslate2_cli.json",
    ),
}


def read_member(package: Path, suffix: str) -> str:
    if package.name.endswith((".tar.gz", ".tgz")):
        with tarfile.open(package) as tar:
            for m in tar.getmembers():
                if m.name.endswith(suffix):
                    f = tar.extractfile(m)
                    assert f is not None
                    return f.read().decode("utf-8")
    else:
        with zipfile.ZipFile(package) as z:
            for name in z.namelist():
                if name.endswith(suffix):
                    return z.read(name).decode("utf-8")
    raise SystemExit(f"{suffix} not found in {package}")


def literal(node: ast.AST | None) -> Any:
    if node is None:
        return None
    try:
        return ast.literal_eval(node)
    except ValueError:
        return ast.unparse(node)


def value_kind(kw: dict[str, ast.AST]) -> str:
    """bool (True/False), int, float, str; 'optional_' when the anchor also accepts None."""
    t = ast.unparse(kw["type"]) if "type" in kw else "str"
    t = t.split(".")[-1].lstrip("_")
    action = literal(kw.get("action"))
    if action in ("store_true", "store_false", "version"):
        return action
    return {"str2bool": "bool", "optional_int": "optional_int", "optional_float": "optional_float",
            "valid_model_name": "str"}.get(t, t)  # fmt: skip


def options_of(source: str) -> list[dict[str, Any]]:
    found = []
    for node in ast.walk(ast.parse(source)):
        if not (isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "add_argument"):
            continue
        names = [literal(a) for a in node.args]
        kw = {k.arg: k.value for k in node.keywords if k.arg}
        longs = [n for n in names if n.startswith("--")]
        if not longs:
            continue  # the positional audio files
        choices = literal(kw.get("choices"))
        entry: dict[str, Any] = {
            "name": longs[0],
            "short": [n for n in names if re.fullmatch(r"-\w", n)],
            "type": value_kind(kw),
            "default": literal(kw.get("default")),
        }
        if isinstance(choices, list) and len(choices) < 20:
            entry["choices"] = choices
        found.append(entry)
    return found


def version_of(package: Path) -> str:
    return re.sub(r"(\.tar\.gz|-py3.*\.whl)$", "", package.name).split("-", 1)[1]


def main(packages: list[str]) -> None:
    for pkg in map(Path, packages):
        for anchor, (prefix, member, out) in ANCHORS.items():
            if pkg.name.startswith(prefix):
                data = {
                    "anchor": anchor,
                    "version": version_of(pkg),
                    "source": member,
                    "options": options_of(read_member(pkg, member)),
                }
                text = json.dumps(data, indent=1, ensure_ascii=False)
                (OUT / out).write_text(text + "\n", encoding="utf-8")
                print(f"{out}: {anchor} {data['version']}, {len(data['options'])} options")


if __name__ == "__main__":
    main(sys.argv[1:])
