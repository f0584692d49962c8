"""The long-lived engine with the real ``base`` model: requests from anyone share windows and
batches, each gets its own words; priorities, cancellation and failures as the engine promises."""

from __future__ import annotations

import time
from typing import Any

import pytest

from malsori.audio import AudioStream
from malsori.engine import Engine, Priority, RequestCancelledError, RequestHandle
from malsori.engine.decoder import WindowDecoder
from malsori.errors import AudioDecodeError, EmptyAudioError, MalsoriError
from malsori.options import TranscribeOptions
from malsori.results import Transcript
from rendered_audio import ENGLISH_WORDS, SPANISH_WORDS, Audio, words_of

pytestmark = pytest.mark.slow

GREEDY = TranscribeOptions(beam_size=1, best_of=1)


@pytest.fixture()
def engine(model):  # type: ignore[no-untyped-def]
    with Engine(model, batch_size=4) as e:
        yield e


def test_concurrent_requests_share_windows_and_get_their_own_words(
    engine: Engine, audio: Audio
) -> None:
    sources = [audio.english, audio.spanish, audio.english, audio.mp3, audio.english,
               audio.spanish]  # fmt: skip
    handles = [engine.submit(s, GREEDY) for s in sources]
    results = [h.result(timeout=120) for h in handles]
    for source, t in zip(sources, results, strict=True):
        expected = SPANISH_WORDS if source == audio.spanish else ENGLISH_WORDS
        assert len(set(expected) & words_of(t.text)) >= 3, (source, t.text)  # greedy, espeak
        assert t.language.language == ("es" if source == audio.spanish else "en")
        assert "quick" not in words_of(t.text) or source != audio.spanish  # nothing leaked
    assert engine.stats.shared_windows >= 1
    assert engine.stats.windows < len(sources)  # packed: fewer windows than requests
    assert engine.stats.percentile(Priority.SYNC, 0.5) is not None


def test_the_same_audio_gives_the_same_text_as_transcribe(
    engine: Engine, model, audio: Audio
) -> None:  # type: ignore[no-untyped-def]
    alone = model.transcribe(str(audio.english), GREEDY)
    through = engine.transcribe(audio.english, GREEDY)
    assert through.text == alone.text
    assert through.duration == pytest.approx(alone.duration)


def test_waveforms_bytes_and_options_groups(engine: Engine, audio: Audio) -> None:
    wave = AudioStream(audio.english).read()
    words = engine.submit(wave, TranscribeOptions(beam_size=1, word_timestamps=True))
    raw = engine.submit(audio.spanish.read_bytes(), GREEDY.replace(task="translate"))
    t = words.result(timeout=120)
    assert t.words and all(w.start <= w.end for w in t.words)
    assert set(ENGLISH_WORDS) <= words_of(t.text)
    translated = raw.result(timeout=120)
    assert translated.language.language == "es" and translated.options.task == "translate"
    assert translated.text  # (base's translations of espeak's Spanish vary: not checked)
    assert len(engine._groups) == 2  # the two decode differently: no shared windows


def test_a_bad_input_fails_alone_with_the_same_error_as_transcribe(
    engine: Engine, audio: Audio
) -> None:
    bad = engine.submit(audio.truncated_wav, GREEDY)
    empty = engine.submit(audio.empty, GREEDY)
    good = engine.submit(audio.english, GREEDY)
    with pytest.raises(AudioDecodeError, match="truncated"):
        bad.result(timeout=60)
    with pytest.raises(EmptyAudioError):
        empty.result(timeout=60)
    assert set(ENGLISH_WORDS) <= words_of(good.result(timeout=120).text)


def test_a_new_request_overtakes_queued_batch_work(model, audio: Audio) -> None:  # type: ignore[no-untyped-def]
    """A new request waits for the batches already running, not for the work queued."""
    with Engine(model, batch_size=1) as engine:
        _overtakes(engine, audio)


def _overtakes(engine: Engine, audio: Audio) -> None:
    batch = [engine.submit(audio.english, GREEDY, priority=Priority.BATCH) for _ in range(30)]
    deadline = time.monotonic() + 60
    while engine.stats.windows == 0:  # the batch work is under way
        assert time.monotonic() < deadline
        time.sleep(0.05)
    at_submit = engine.stats.windows
    urgent = engine.submit(audio.spanish, GREEDY, priority=Priority.SYNC)
    when_done: list[int] = []
    urgent.add_done_callback(lambda _: when_done.append(engine.stats.windows))
    assert len(set(SPANISH_WORDS) & words_of(urgent.result(timeout=120).text)) >= 3
    for h in batch:
        h.result(timeout=300)
    # Decoded meanwhile: at most the batches running when it came, and its own.
    bound = engine.lane_batch * engine.lanes + engine.lane_batch
    assert when_done[0] - at_submit <= bound, (at_submit, when_done, engine.stats.windows)
    assert engine.stats.windows - at_submit > bound  # most of the batch work came after it


def test_a_cancelled_request_frees_its_windows_and_the_engine_goes_on(
    engine: Engine, audio: Audio
) -> None:
    long = engine.submit(audio.long, GREEDY, priority=Priority.JOB)
    time.sleep(0.3)
    long.cancel()
    with pytest.raises(RequestCancelledError):
        long.result(timeout=60)
    assert engine.stats.cancelled == 1
    assert set(ENGLISH_WORDS) <= words_of(engine.transcribe(audio.english, GREEDY).text)
    assert not engine._states and engine._intake.idle


def test_a_window_that_fails_fails_only_its_requests(
    engine: Engine, audio: Audio, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = WindowDecoder.generate
    spanish_seconds = AudioStream(audio.spanish).read().size / 16000

    def flaky(self: WindowDecoder, encoded: Any, languages: list[str], *args: Any) -> Any:
        if "es" in languages:
            raise RuntimeError("CUDA out of memory (a stand-in)")
        return original(self, encoded, languages, *args)

    monkeypatch.setattr(WindowDecoder, "generate", flaky)
    english = [engine.submit(audio.english, GREEDY) for _ in range(3)]
    spanish = engine.submit(audio.spanish, GREEDY)
    with pytest.raises(MalsoriError, match="out of memory"):
        spanish.result(timeout=120)
    for h in english:
        assert set(ENGLISH_WORDS) <= words_of(h.result(timeout=120).text)
    assert spanish_seconds > 0 and engine.stats.failed == 1


def test_without_batching_every_request_decodes_alone(model, audio: Audio) -> None:  # type: ignore[no-untyped-def]
    with Engine(model, batch_size=4, batching=False) as engine:
        handles = [engine.submit(audio.english, GREEDY) for _ in range(3)]
        results: list[Transcript] = [h.result(timeout=120) for h in handles]
        assert all(set(ENGLISH_WORDS) <= words_of(t.text) for t in results)
        assert engine.stats.shared_windows == 0 and engine.stats.windows >= 3


def test_closing_fails_what_is_left(model, audio: Audio) -> None:  # type: ignore[no-untyped-def]
    engine = Engine(model, batch_size=2)
    handles = [engine.submit(audio.long, GREEDY, priority=Priority.BATCH) for _ in range(2)]
    engine.close()
    for h in handles:
        with pytest.raises(RequestCancelledError):
            h.result(timeout=30)
    with pytest.raises(RuntimeError):
        engine.submit(audio.english)


def test_options_that_cannot_share_windows_run_alone_at_their_priority(
    engine: Engine, audio: Audio
) -> None:
    live = TranscribeOptions(
        beam_size=1,
        without_timestamps=True,
        word_timestamps=True,
        encoder_window_s=15.0,
        language="en",
    )  # as live captions decode
    heard: list[str] = []
    handle = engine.submit(audio.english, live, priority=Priority.LIVE,
                           on_segment=lambda s: heard.append(s.text))  # fmt: skip
    t = handle.result(timeout=120)
    assert set(ENGLISH_WORDS) <= words_of(t.text) and t.words
    assert "".join(heard).strip() == t.text and engine.stats.solo == 1


def test_segments_are_heard_as_they_are_final(engine: Engine, audio: Audio) -> None:
    heard: list[str] = []
    t = engine.submit(audio.long, GREEDY, on_segment=lambda s: heard.append(s.text)).result(300)
    assert heard and "".join(heard) == "".join(s.text for s in t.segments)


def _busy_lanes(engine: Engine, seconds: float, until: list[RequestHandle]) -> int:
    """The most lanes running other than live work, seen over ``seconds`` or until ``until``
    are done."""
    most, deadline = 0, time.monotonic() + seconds
    while time.monotonic() < deadline and not all(h.done() for h in until):
        try:
            works = list(engine._running.values())
        except RuntimeError:  # changed while read
            continue
        most = max(most, sum(w.priority != Priority.LIVE for w in works))
        time.sleep(0.005)
    return most


def test_a_lane_is_kept_for_live_streams(audio: Audio, monkeypatch: pytest.MonkeyPatch) -> None:
    """While live streams decode, other work takes the other lanes only: a live decode never
    waits for a batch; once they stop, every lane works again."""
    import threading

    import malsori
    from malsori.engine import core

    monkeypatch.setattr(core, "LIVE_RESERVE_S", 3.0)
    live = TranscribeOptions(beam_size=1, without_timestamps=True, word_timestamps=True,
                             encoder_window_s=15.0, language="en")  # fmt: skip
    two = malsori.load_model("base", threads=1, workers=2)
    with Engine(two, batch_size=2) as engine:
        assert engine.lanes == 2 and engine.lane_batch == 1
        stop = threading.Event()

        def stream() -> None:  # a live stream: one decode after another
            while not stop.is_set():
                engine.submit(audio.english, live, priority=Priority.LIVE).result(timeout=120)

        streaming = threading.Thread(target=stream)
        streaming.start()
        try:
            jobs = [engine.submit(audio.english, GREEDY, priority=Priority.JOB) for _ in range(24)]
            assert _busy_lanes(engine, 60.0, jobs) == 1  # one lane stays free for the stream
        finally:
            stop.set()
            streaming.join()
        for h in jobs:
            assert set(ENGLISH_WORDS) <= words_of(h.result(timeout=300).text)
        time.sleep(3.0)  # no live decode for longer than the reserve
        jobs = [engine.submit(audio.english, GREEDY, priority=Priority.JOB) for _ in range(24)]
        assert _busy_lanes(engine, 60.0, jobs) == 2  # every lane works again
        for h in jobs:
            h.result(timeout=300)
