"""The packed engine with the real ``base`` model on rendered speech: right words in the right
file at the right time, per-file languages, failures isolated, same defences as transcribe."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from malsori.batch import BatchOptions, discover, load_batch_model, run_batch
from malsori.batch.engine import PackedEngine
from malsori.batch.inputs import BatchInput
from malsori.errors import MalsoriError
from malsori.options import TranscribeOptions
from malsori.results import Transcript
from rendered_audio import ENGLISH_WORDS, LONG_SENTENCES, SPANISH_WORDS, Audio, words_of

pytestmark = pytest.mark.slow


def transcribe_all(model, paths: list[Path], **overrides) -> list[Transcript | MalsoriError]:  # type: ignore[no-untyped-def]
    items = [BatchInput(p, p.stem) for p in paths]  # type: ignore[arg-type]
    results: dict[int, Transcript | MalsoriError] = {}
    engine = PackedEngine(model, TranscribeOptions(**overrides), batch_size=4, workers=2)
    engine.run(items, lambda i, r: results.__setitem__(i, r))
    assert sorted(results) == list(range(len(paths)))  # every file delivered exactly once
    return [results[i] for i in range(len(paths))]


def check_invariants(t: Transcript) -> None:
    last = 0.0
    for s in t.segments:
        assert last - 1e-6 <= s.start <= s.end <= t.duration + 1e-6
        last = s.end
        if s.words:
            assert s.text == "".join(w.word for w in s.words)
            assert all(s.start - 1e-6 <= w.start <= w.end <= s.end + 1e-6 for w in s.words)


@pytest.fixture(scope="module")
def mixed(audio: Audio, model) -> list[Transcript | MalsoriError]:  # type: ignore[no-untyped-def]
    paths = [audio.english, audio.spanish, audio.silence, audio.text_as_mp3, audio.mp3,
             audio.french, audio.empty, audio.truncated_wav, audio.english]  # fmt: skip
    return transcribe_all(model, paths, word_timestamps=True)


def test_short_files_get_their_own_words_and_language(mixed) -> None:  # type: ignore[no-untyped-def]
    english, spanish, silence, _, mp3, french, _, _, english2 = mixed
    for t in (english, mp3, english2):
        assert isinstance(t, Transcript)
        assert set(ENGLISH_WORDS) <= words_of(t.text), t.text
        assert t.language.language == "en" and t.language.detected
        check_invariants(t)
    assert isinstance(spanish, Transcript) and spanish.language.language == "es"
    assert len(set(SPANISH_WORDS) & words_of(spanish.text)) >= 4, spanish.text
    assert "quick" not in words_of(spanish.text)  # nothing leaked in from a neighbour
    assert isinstance(french, Transcript) and french.language.language == "fr"
    assert "paris" in words_of(french.text)
    assert isinstance(silence, Transcript) and silence.segments == ()
    assert silence.language.language == "" and not silence.language.detected  # as transcribe
    for t in (english, spanish, french):
        assert isinstance(t, Transcript)
        check_invariants(t)
        assert 0 < t.processing_time < 60


def test_broken_files_fail_alone(mixed) -> None:  # type: ignore[no-untyped-def]
    not_audio, empty, truncated = mixed[3], mixed[6], mixed[7]
    assert isinstance(not_audio, MalsoriError) and "not a decodable" in str(not_audio)
    assert isinstance(empty, MalsoriError) and "empty" in str(empty)
    assert isinstance(truncated, MalsoriError) and "truncated" in str(truncated)


def test_long_file_timestamps_are_in_the_file_time_line(audio: Audio, model) -> None:  # type: ignore[no-untyped-def]
    (long,) = transcribe_all(model, [audio.long])
    assert isinstance(long, Transcript)
    check_invariants(long)
    assert long.duration == pytest.approx(10 + 57.5 + 57 + 10 + 9, abs=6)
    for (_, expected), near in zip(LONG_SENTENCES, (10.0, 70.0, 130.0), strict=True):
        hits = [s for s in long.segments if set(expected) & words_of(s.text)]
        assert hits, (expected, long.text)
        assert all(abs(s.start - near) < 3.0 for s in hits), [(s.start, s.text) for s in hits]


def test_same_words_as_the_sequential_engine(audio: Audio, model, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    src = tmp_path / "src"
    for sub, path in (("x", audio.english), ("y", audio.spanish), ("z", audio.flac)):
        (src / sub).mkdir(parents=True)
        shutil.copy(path, src / sub / path.name)
    items = discover([src])
    texts = {}
    for engine in ("packed", "sequential"):
        out = tmp_path / engine
        batch = BatchOptions(output_dir=out, engine=engine, formats=("json", "txt"))
        summary = run_batch(model, items, TranscribeOptions(), batch)
        assert summary.done == 3 and not summary.failed
        texts[engine] = {i.key: (out / f"{i.key}.txt").read_text() for i in items}
    for key in texts["packed"]:
        assert words_of(texts["packed"][key]) == words_of(texts["sequential"][key]), key


def test_ctrl_c_in_the_packed_engine_keeps_what_is_finished(
    audio: Audio, model, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    src = tmp_path / "src"
    src.mkdir()
    for i in range(3):
        shutil.copy(audio.english, src / f"e{i}.wav")
    shutil.copy(audio.text_as_mp3, src / "broken.mp3")  # fails first: delivered at once

    def stop(outcome) -> None:  # type: ignore[no-untyped-def]
        if outcome.status == "done":
            raise KeyboardInterrupt

    out = tmp_path / "out"
    batch = BatchOptions(output_dir=out, formats=("json", "srt"))
    summary = run_batch(model, discover([src]), TranscribeOptions(), batch, on_outcome=stop)
    assert summary.interrupted and summary.exit_code == 130
    assert summary.done == 1 and len(summary.failed) == 1 and summary.pending == 2
    transcripts = [p for p in out.glob("*.json") if p.name != "summary.json"]
    assert len(transcripts) == 1 and len(list(out.glob("*.srt"))) == 1
    assert not list(out.rglob("*.tmp"))
    again = run_batch(model, discover([src]), TranscribeOptions(), batch)
    assert (again.skipped, again.done, len(again.failed)) == (1, 2, 1)


@pytest.fixture(scope="module")
def two_lanes():  # type: ignore[no-untyped-def]
    """``base`` as ``malsori batch`` loads it on a CPU: two workers of one thread each."""
    model = load_batch_model("base", device="cpu", threads=2)
    assert model.info.workers == 2 and model.info.threads == 1
    return model


def test_two_batches_at_once_give_every_file_its_own_words(audio: Audio, two_lanes) -> None:  # type: ignore[no-untyped-def]
    paths = [audio.english, audio.spanish, audio.english, audio.silence, audio.french,
             audio.english, audio.truncated_wav, audio.mp3]  # fmt: skip
    items = [BatchInput(p, f"{i}") for i, p in enumerate(paths)]
    results: dict[int, Transcript | MalsoriError] = {}
    engine = PackedEngine(two_lanes, TranscribeOptions(), batch_size=2, workers=2)
    engine.run(items, lambda i, r: results.__setitem__(i, r))
    assert engine.engine is not None
    assert (engine.engine.lanes, engine.engine.lane_batch) == (2, 1)
    assert sorted(results) == list(range(len(paths)))
    for i in (0, 2, 5, 7):
        t = results[i]
        assert isinstance(t, Transcript) and set(ENGLISH_WORDS) <= words_of(t.text), t
        check_invariants(t)
    assert isinstance(results[1], Transcript) and results[1].language.language == "es"
    assert isinstance(results[6], MalsoriError)
    assert engine.engine.stats.untimed == 0  # short clips keep Whisper's timestamps


def test_a_long_file_is_decoded_without_timestamps_and_cut_at_its_sentences(
    audio: Audio, two_lanes
) -> None:  # type: ignore[no-untyped-def]
    results: dict[int, Transcript | MalsoriError] = {}
    engine = PackedEngine(two_lanes, TranscribeOptions(), batch_size=8, workers=2)
    engine.run([BatchInput(audio.long, "long")], lambda i, r: results.__setitem__(i, r))  # type: ignore[arg-type]
    long = results[0]
    assert isinstance(long, Transcript) and engine.engine is not None
    assert engine.engine.stats.untimed == engine.engine.stats.windows > 0
    check_invariants(long)
    for (_, expected), near in zip(LONG_SENTENCES, (10.0, 70.0, 130.0), strict=True):
        hits = [s for s in long.segments if set(expected) & words_of(s.text)]
        assert hits, (expected, long.text)
        assert all(abs(s.start - near) < 3.0 for s in hits), [(s.start, s.text) for s in hits]
    assert all(s.end - s.start <= 11.0 for s in long.segments)  # caption-sized segments
    assert not long.segments[0].words  # word timestamps were not asked for
