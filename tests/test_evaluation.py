"""Evaluation: normalisation, metrics against jiwer, manifests, reports, and ``malsori eval``."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import jiwer
import pytest

from malsori.cli import main
from malsori.errors import InputError, InvalidOptionError
from malsori.evaluation import (
    ALL,
    ErrorCounts,
    EvaluationReport,
    Hypothesis,
    ManifestEntry,
    ManifestError,
    ReportError,
    basic_normalize,
    compare_reports,
    error_counts,
    evaluate,
    load_manifest,
    load_report,
    normalize_text,
    score_utterance,
    select_entries,
    write_report,
)

# --- normalisation ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "language", "expected"),
    [
        ("Mr. Smith paid $20, didn't he?", "en", "mister smith paid $20 did not he"),
        ("The COLOUR of the sky!", "en", "the color of the sky"),
        # Words inside parentheses are spoken in read speech: kept, unlike Whisper's normaliser.
        ("printed (which also was dated) in 1462", "en", "printed which also was dated in 1462"),
        ("안녕하세요, 여러분! 반갑습니다.", "ko", "안녕하세요 여러분 반갑습니다"),
        ("ㅋㅋㅋ 진짜?", "ko", "ㅋㅋㅋ 진짜"),  # compatibility jamo stay as written
        ("[음악] 네, 알겠습니다", "ko", "네 알겠습니다"),
        ("「こんにちは」、世界。", "ja", "こんにちは 世界"),
        ("ＡＢＣ Ｄｅｆ", "es", "abc def"),  # NFKC folds full-width letters
        ("¿Qué tal?  Muy   bien.", "es", "qué tal muy bien"),
    ],
)
def test_normalize_text(text: str, language: str, expected: str) -> None:
    assert normalize_text(text, language) == expected


def test_basic_normalize_keeps_combining_marks() -> None:
    # Devanagari vowel signs are marks (category M): Whisper's basic normaliser would drop them.
    assert basic_normalize("नमस्ते।") == "नमस्ते"


# --- metrics ---------------------------------------------------------------------------------

REFS = ["the cat sat on the mat", "hello world", "a b c d"]
HYPS = ["the cat sat on mat", "hello there world", "a x c d e"]


def _sum(counts: list[ErrorCounts]) -> ErrorCounts:
    total = ErrorCounts()
    for c in counts:
        total = total + c
    return total


def test_corpus_wer_and_cer_equal_jiwer_on_lists() -> None:
    words = _sum([error_counts(r, h, unit="word") for r, h in zip(REFS, HYPS, strict=True)])
    chars = _sum([error_counts(r, h, unit="char") for r, h in zip(REFS, HYPS, strict=True)])
    assert words.rate == pytest.approx(jiwer.wer(REFS, HYPS))
    assert chars.rate == pytest.approx(jiwer.cer(REFS, HYPS))


def test_report_metrics_equal_jiwer() -> None:
    entries = [ManifestEntry(Path(f"{i}.wav"), "en", r) for i, r in enumerate(REFS)]
    results = [
        score_utterance(e, Hypothesis(h, duration=1.0), 0.5)
        for e, h in zip(entries, HYPS, strict=True)
    ]
    report = EvaluationReport.from_results(results)
    en = report.language("en")
    assert en is not None
    assert en.wer == pytest.approx(jiwer.wer(REFS, HYPS))
    assert en.cer == pytest.approx(jiwer.cer(REFS, HYPS))
    assert en.cer_nospace is None  # not reported for English
    assert en.rtfx == pytest.approx(2.0)


def test_korean_cer_with_and_without_spaces() -> None:
    entry = ManifestEntry(Path("k.wav"), "ko", "나는 학교에 간다.")
    result = score_utterance(entry, Hypothesis("나는학교에 간다", duration=1.0), 1.0)
    assert result.chars == ErrorCounts(1, 9)  # one deleted space in 9 characters
    assert result.cer_nospace == 0.0
    assert result.wer == pytest.approx(jiwer.wer("나는 학교에 간다", "나는학교에 간다"))
    assert result.score == 0.0  # ranked by CER without spaces for Korean


def test_empty_reference_counts_insertions() -> None:
    assert error_counts("", "two words") == ErrorCounts(2, 0)
    assert error_counts("", "") == ErrorCounts(0, 0)
    assert ErrorCounts(0, 0).rate is None


# --- manifests -------------------------------------------------------------------------------


def _touch(folder: Path, *names: str) -> None:
    for name in names:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(b"x")


def test_tsv_without_header_paths_relative_to_manifest(tmp_path: Path) -> None:
    _touch(tmp_path, "clips/a.flac", "clips/b.flac")
    manifest = tmp_path / "m.tsv"
    manifest.write_text(
        "# comment\nclips/a.flac\tko\t안녕하세요.\n\nclips/b.flac\tEnglish\tHi\tthere\n",
        encoding="utf-8",
    )
    entries = load_manifest(manifest)
    assert [(e.audio, e.language, e.reference, e.line) for e in entries] == [
        (tmp_path / "clips/a.flac", "ko", "안녕하세요.", 2),
        (tmp_path / "clips/b.flac", "en", "Hi\tthere", 4),  # the text keeps further tabs
    ]


def test_tsv_and_csv_with_headers(tmp_path: Path) -> None:
    _touch(tmp_path, "a.wav", "b.wav")
    (tmp_path / "m.tsv").write_text("path\tlang\treference\na.wav\ten\tyes\n")
    (tmp_path / "m.csv").write_text('language,text,audio\nko,"하나, 둘",a.wav\nen,two,b.wav\n')
    tsv = load_manifest(tmp_path / "m.tsv")
    csv_entries = load_manifest(tmp_path / "m.csv")
    assert [(e.audio.name, e.language, e.reference) for e in tsv] == [("a.wav", "en", "yes")]
    assert [(e.audio.name, e.language, e.reference, e.line) for e in csv_entries] == [
        ("a.wav", "ko", "하나, 둘", 2),
        ("b.wav", "en", "two", 3),
    ]


def test_jsonl(tmp_path: Path) -> None:
    _touch(tmp_path, "a.wav")
    rows = [{"audio": "a.wav", "language": "ja", "text": "はい"}, {"path": str(tmp_path / "a.wav"),
            "lang": "ko", "reference": "네"}]  # fmt: skip
    (tmp_path / "m.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    entries = load_manifest(tmp_path / "m.jsonl")
    assert [(e.audio, e.language, e.reference) for e in entries] == [
        (tmp_path / "a.wav", "ja", "はい"),
        (tmp_path / "a.wav", "ko", "네"),
    ]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("m.tsv", "a.wav\tko\t하나\na.wav\tko\n", "line 2: expected path, language and text"),
        ("m.tsv", "a.wav\tko\t하나\n\na.wav\tklingon\t둘\n", "line 3: unknown language"),
        ("m.tsv", "a.wav\tko\t하나\nmissing.wav\tko\t둘\n", "line 2: audio file"),
        ("m.csv", "audio,language,text\na.wav,en,ok\na.wav,en\n", "line 3: expected 3 columns"),
        ("m.jsonl", '{"audio": "a.wav", "language": "en", "text": "x"}\n{oops\n', "line 2: not"),
        ("m.jsonl", '{"audio": "a.wav", "text": "x"}\n', "line 1: no language"),
        ("m.xml", "<a/>", "unknown manifest format"),
    ],
)
def test_bad_manifest_names_the_line(tmp_path: Path, name: str, content: str, message: str) -> None:
    _touch(tmp_path, "a.wav")
    (tmp_path / name).write_text(content, encoding="utf-8")
    with pytest.raises(ManifestError, match=message) as info:
        load_manifest(tmp_path / name)
    assert isinstance(info.value, InputError)
    assert str(tmp_path / name) in str(info.value)


def test_select_entries() -> None:
    languages = ["ko", "ko", "ko", "en", "en", "ko", "en"]
    entries = [ManifestEntry(Path(f"{i}.wav"), lang, "x") for i, lang in enumerate(languages)]
    picked = select_entries(entries, limit_per_language=2)
    assert [e.audio.name for e in picked] == ["0.wav", "1.wav", "3.wav", "4.wav"]
    assert [e.audio.name for e in select_entries(entries, languages=["English"], limit=2)] == [
        "3.wav",
        "4.wav",
    ]
    with pytest.raises(InvalidOptionError):
        select_entries(entries, limit=0)


# --- evaluation runs and reports -------------------------------------------------------------


class _Clock:
    """Advances half a second per reading: every transcription takes exactly half a second."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        self.now += 0.5
        return self.now


def _report(hypotheses: dict[str, tuple[str, str]], durations: float = 4.0) -> EvaluationReport:
    entries = [
        ManifestEntry(Path("en1.wav"), "en", "the quick brown fox"),
        ManifestEntry(Path("ko1.wav"), "ko", "나는 학교에 간다"),
        ManifestEntry(Path("bad.wav"), "en", "missing audio"),
    ]

    def transcribe(entry: ManifestEntry) -> Hypothesis:
        if entry.audio.name == "bad.wav":
            raise InputError("bad.wav: corrupt")
        text, language = hypotheses[entry.audio.name]
        return Hypothesis(text, language, language_detected=True, duration=durations)

    return evaluate(entries, transcribe, clock=_Clock(), meta={"system": "fake"})


def test_evaluate_with_any_transcriber() -> None:
    report = _report({"en1.wav": ("The quick brown fox.", "en"), "ko1.wav": ("나는 학교", "ja")})
    en, ko = report.language("en"), report.language("ko")
    assert en is not None and ko is not None
    assert (en.utterances, en.failures, en.words) == (2, 1, ErrorCounts(2, 6))  # failure: 2 del
    assert en.language_id_accuracy == 1.0  # the failed clip has no detected language
    assert ko.language_id_accuracy == 0.0
    assert ko.cer_nospace == pytest.approx(3 / 7)
    # 2 clips of 4 s, the failed one of unknown length (0 s); half a second each.
    assert report.overall.rtfx == pytest.approx(8.0 / 1.5)
    assert [r.id for r in report.worst(2)] == ["bad.wav", "ko1.wav"]
    assert report.utterances[2].error == "bad.wav: corrupt"


def test_report_round_trip_and_compare(tmp_path: Path) -> None:
    old = _report({"en1.wav": ("the quick brown fox", "en"), "ko1.wav": ("나는 학교", "ko")})
    new = _report({"en1.wav": ("a quick brown box", "en"), "ko1.wav": ("나는 학교에 간다", "ko")})
    path = write_report(old, tmp_path / "sub" / "old.json")
    umask = os.umask(0o022)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask  # as open() would, not mkstemp's 0600
    loaded = load_report(path)
    assert loaded == old
    assert loaded.meta == {"system": "fake"}
    changes = {(c.language, c.metric): c for c in compare_reports(loaded, new)}
    assert ("en", "cer_nospace") not in changes
    en_wer = changes[("en", "wer")]
    assert en_wer.delta == pytest.approx(2 / 6) and en_wer.improved is False
    ko_cer = changes[("ko", "cer_nospace")]
    assert ko_cer.current == 0.0 and ko_cer.improved is True
    assert changes[(ALL, "rtfx")].improved is None  # same speed
    assert json.loads(json.dumps([c.to_dict() for c in changes.values()]))


def test_load_report_errors(tmp_path: Path) -> None:
    (tmp_path / "bad.json").write_text("{not json")
    (tmp_path / "other.json").write_text('{"text": "a transcript, not a report"}')
    for name in ("bad.json", "other.json", "missing.json"):
        with pytest.raises(ReportError, match=name):
            load_report(tmp_path / name)


# --- the command, on speech rendered with espeak-ng --------------------------------------------

CLIPS = {
    "fox.wav": "The quick brown fox jumps over the lazy dog.",
    "weather.wav": "The weather is very nice today, so we are going to the park.",
}


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="needs espeak-ng")
def test_malsori_eval_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lines = []
    for name, text in CLIPS.items():
        subprocess.run(["espeak-ng", "-v", "en-us", "-w", str(tmp_path / name), text], check=True)
        lines.append(f"{name}\ten\t{text}")
    manifest = tmp_path / "manifest.tsv"
    manifest.write_text("\n".join(lines) + "\n")
    baseline = _report({"en1.wav": ("the quick brown fox", "en"), "ko1.wav": ("나는", "ko")})
    write_report(baseline, tmp_path / "baseline.json")
    out = tmp_path / "report.json"

    code = main(["eval", str(manifest), "--threads", "2", "--report", str(out), "--worst", "2",
                 "--compare", str(tmp_path / "baseline.json"), "-q"])  # fmt: skip

    printed = capsys.readouterr().out
    assert code == 0
    assert "language" in printed and "LID acc" in printed and "compared with" in printed
    report = load_report(out)
    en = report.language("en")
    assert en is not None and en.utterances == 2
    assert en.language_id_accuracy == 1.0
    assert en.wer is not None and en.wer < 0.3
    assert en.rtfx is not None and en.rtfx > 0
    assert report.meta["model"]["threads"] == 2
    assert {Path(u.id).name for u in report.utterances} == set(CLIPS)
