"""Glossary files: parsing with errors that name the line, replacement rules, bias terms reaching
the decoder's hotwords, and the glossary carried through options and the command line."""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import pytest

from malsori.cli import add_decode_arguments, options_from_args
from malsori.errors import InvalidOptionError
from malsori.glossary import (
    Glossary,
    GlossaryError,
    Rule,
    load_glossary,
    merge_hotwords,
    parse_glossary,
)
from malsori.options import TranscribeOptions
from malsori.transcribe import whisper_kwargs

GOOD = """\
# Medical terms for the ward round
헤모글로빈
아세트아미노펜

헤모 글로빈 => 헤모글로빈
  아세트 아미노펜   =>   아세트아미노펜
chat gpt => ChatGPT
re: (\\d+) ?밀리 ?그램 => \\1mg
헤모글로빈
"""


def test_good_file_parses(tmp_path: Path) -> None:
    path = tmp_path / "medical.txt"
    path.write_text(GOOD, encoding="utf-8")
    g = load_glossary(path)
    assert g.terms == ("헤모글로빈", "아세트아미노펜")  # duplicates dropped, order kept
    assert [(r.wrong, r.right, r.regex) for r in g.rules] == [
        ("헤모 글로빈", "헤모글로빈", False),
        ("아세트 아미노펜", "아세트아미노펜", False),
        ("chat gpt", "ChatGPT", False),
        ("(\\d+) ?밀리 ?그램", "\\1mg", True),
    ]
    assert [r.line for r in g.rules] == [5, 6, 7, 8]
    assert g.source == str(path)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("=> 헤모글로빈", "nothing before '=>'"),
        ("a => b => c", "more than one '=>'"),
        ("re: (unclosed => x", "bad regular expression"),
        ("re: x* => y", "matches empty text"),
        ("re: (a) => \\2", "bad regular expression"),
        ("re: no arrow here", "needs 'pattern => replacement'"),
    ],
)
def test_bad_line_is_named(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "bad.txt"
    path.write_text(f"# comment\n헤모글로빈\n{line}\n", encoding="utf-8")
    with pytest.raises(GlossaryError, match=message) as info:
        load_glossary(path)
    assert str(info.value).startswith(f"{path}: line 3: ")


def test_missing_file_and_bad_encoding(tmp_path: Path) -> None:
    with pytest.raises(GlossaryError, match="no such glossary file"):
        load_glossary(tmp_path / "nope.txt")
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes("caf\xe9 => café\n".encode("latin-1"))
    with pytest.raises(GlossaryError, match="cannot read glossary"):
        load_glossary(latin1)


def test_glossary_error_is_a_usage_error() -> None:
    assert issubclass(GlossaryError, InvalidOptionError)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (" 헤모 글로빈 수치가 낮습니다", " 헤모글로빈 수치가 낮습니다"),
        (" 헤모  글로빈이 부족합니다", " 헤모글로빈이 부족합니다"),  # any spaces; a particle after
        ("I asked Chat GPT today", "I asked ChatGPT today"),  # any case
        ("chat gptx is something else", "chat gptx is something else"),  # whole words only
        ("타이레놀 500 밀리그램 드세요", "타이레놀 500mg 드세요"),
        ("아무 관계 없는 문장", "아무 관계 없는 문장"),
    ],
)
def test_replacement_rules(text: str, expected: str) -> None:
    assert parse_glossary(GOOD).replace(text) == expected


def test_plain_rule_replacement_is_literal() -> None:
    g = Glossary(rules=(Rule("c sharp", "C#\\1"),))
    assert g.replace("I write c sharp") == "I write C#\\1"


def test_rules_run_in_order() -> None:
    g = parse_glossary("a b => ab\nab => AB\n")
    assert g.replace(" a b c") == " AB c"


def test_merge_hotwords_keeps_the_callers_own() -> None:
    g = Glossary(terms=("헤모글로빈", "ChatGPT"))
    assert merge_hotwords(None, g) == "헤모글로빈, ChatGPT"
    assert merge_hotwords("병동 회진", g) == "병동 회진, 헤모글로빈, ChatGPT"
    assert merge_hotwords("chatgpt, 병동", g) == "chatgpt, 병동, 헤모글로빈"  # not twice
    assert merge_hotwords("병동", None) == "병동"
    assert merge_hotwords(None, None) is None
    assert merge_hotwords(None, Glossary(rules=(Rule("a b", "ab"),))) is None


def test_bias_terms_reach_the_decoder_hotwords() -> None:
    g = Glossary(terms=("헤모글로빈", "아세트아미노펜"))
    opts = TranscribeOptions(hotwords="회진", glossary=g)
    assert whisper_kwargs(opts)["hotwords"] == "회진, 헤모글로빈, 아세트아미노펜"
    assert opts.hotwords == "회진"  # the options keep what the caller gave
    assert whisper_kwargs(TranscribeOptions())["hotwords"] is None


def test_options_round_trip_through_json() -> None:
    o = TranscribeOptions(
        language="ko",
        korean_spacing=False,
        korean_punctuation=False,
        number_style="digits",
        glossary=parse_glossary(GOOD, "medical.txt"),
    )
    data = json.loads(json.dumps(o.to_dict(), ensure_ascii=False))
    assert data["glossary"]["terms"] == ["헤모글로빈", "아세트아미노펜"]
    assert data["glossary"]["rules"][3] == {
        "wrong": "(\\d+) ?밀리 ?그램",
        "right": "\\1mg",
        "regex": True,
    }
    back = TranscribeOptions.from_dict(data)
    assert back == o
    assert hash(back) == hash(o)
    assert back.glossary is not None and back.glossary.replace("헤모 글로빈") == "헤모글로빈"
    defaults = TranscribeOptions.from_dict(TranscribeOptions().to_dict())
    assert defaults.glossary is None and defaults.korean_spacing and defaults.number_style == "keep"


def test_older_json_without_the_new_fields_still_loads() -> None:
    data = TranscribeOptions().to_dict()
    for key in ("korean_spacing", "korean_punctuation", "number_style", "glossary"):
        del data[key]
    assert TranscribeOptions.from_dict(data) == TranscribeOptions()


def test_options_are_validated() -> None:
    with pytest.raises(InvalidOptionError, match="number style"):
        TranscribeOptions(number_style="roman")  # type: ignore[arg-type]
    with pytest.raises(InvalidOptionError, match="load_glossary"):
        TranscribeOptions(glossary="medical.txt")  # type: ignore[arg-type]
    with pytest.raises(GlossaryError, match="empty"):
        Rule("  ", "x")
    with pytest.raises(dataclasses.FrozenInstanceError):
        Glossary().terms = ("x",)  # type: ignore[misc]


def _parse(*argv: str) -> TranscribeOptions:
    parser = argparse.ArgumentParser()
    add_decode_arguments(parser)
    return options_from_args(parser.parse_args(list(argv)))


def test_cli_flags_build_the_options(tmp_path: Path) -> None:
    first, second = tmp_path / "a.txt", tmp_path / "b.txt"
    first.write_text("헤모글로빈\n헤모 글로빈 => 헤모글로빈\n", encoding="utf-8")
    second.write_text("ChatGPT\nchat gpt => ChatGPT\n", encoding="utf-8")
    o = _parse(
        "--no-korean-spacing", "--number-style", "words", "--glossary", str(first),
        "--glossary", str(second),
    )  # fmt: skip
    assert not o.korean_spacing and o.korean_punctuation and o.number_style == "words"
    assert o.glossary is not None
    assert o.glossary.terms == ("헤모글로빈", "ChatGPT")
    assert [r.right for r in o.glossary.rules] == ["헤모글로빈", "ChatGPT"]
    assert o.glossary.source == f"{first}, {second}"
    defaults = _parse()
    assert defaults.korean_spacing and defaults.korean_punctuation and defaults.glossary is None


def test_cli_bad_glossary_names_file_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from malsori.cli import main

    bad = tmp_path / "bad.txt"
    bad.write_text("헤모글로빈\n=> 헤모글로빈\n", encoding="utf-8")
    assert main(["transcribe", "--glossary", str(bad), str(tmp_path / "x.wav")]) == 2
    err = capsys.readouterr().err
    assert f"{bad}: line 2: nothing before '=>'" in err
    assert "Traceback" not in err
