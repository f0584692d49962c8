"""The online processor: with a scripted stand-in decoder (buffering, trimming, prompts, event
invariants, exactly), then with the real model on rendered speech (words, VAD, silence)."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from malsori.audio import SAMPLE_RATE, AudioStream
from malsori.errors import InvalidOptionError
from malsori.options import DEFAULT_TEMPERATURES, TranscribeOptions
from malsori.results import LanguageInfo, Segment, Transcript, Word
from malsori.streaming import Final, OnlineProcessor, Partial, StreamEvent, StreamingOptions
from malsori.streaming.driver import drive
from malsori.writers import get_writer
from rendered_audio import run_tool

_TICK = 1e-7  # the fake stream's sample values encode their own index: value = index * _TICK


def ramp(start: int, n: int) -> np.ndarray:
    return (np.arange(start, start + n, dtype=np.float64) * _TICK).astype(np.float32)


@dataclass
class ScriptedDecoder:
    """Hears the words of ``script`` (stream times) that end inside the buffer it is given; the
    last one is misheard while it ends within ``unsure_s`` of the buffer's end."""

    script: list[tuple[float, float, str]]
    unsure_s: float = 0.4
    name: str = "scripted"
    multilingual: bool = True
    prompts: list[str | None] = field(default_factory=list)
    buffer_seconds: list[float] = field(default_factory=list)

    def transcribe(self, source: Any, options: TranscribeOptions | None = None) -> Transcript:
        assert options is not None and options.word_timestamps
        self.prompts.append(options.initial_prompt)
        audio = np.asarray(source)
        self.buffer_seconds.append(audio.size / SAMPLE_RATE)
        start = round(float(audio[0]) / _TICK) / SAMPLE_RATE
        end = start + audio.size / SAMPLE_RATE
        heard = [(a, b, t) for a, b, t in self.script if a >= start - 0.05 and b <= end]
        words = []
        for i, (a, b, t) in enumerate(heard):
            last = i == len(heard) - 1
            text = t + "?" * 3 if last and end - b < self.unsure_s else t
            words.append(Word(max(0.0, a - start), b - start, text, 0.9))
        segments = []
        for n in range(0, len(words), 6):  # a Whisper segment every six words
            chunk = tuple(words[n : n + 6])
            text = "".join(w.word for w in chunk)
            segments.append(Segment(len(segments), chunk[0].start, chunk[-1].end, text, chunk))
        return Transcript(tuple(segments), LanguageInfo("en", 1.0), end - start, 0.0,
                          options, self.name)  # fmt: skip


def script_of(
    n_words: int, word_s: float = 0.4, gap_s: float = 0.1
) -> list[tuple[float, float, str]]:
    out = []
    t = 0.5
    for i in range(n_words):
        text = f" w{i}." if i % 9 == 8 else f" w{i}"
        out.append((t, t + word_s, text))
        t += word_s + gap_s
    return out


def run_scripted(
    decoder: ScriptedDecoder, seconds: float, **streaming: Any
) -> tuple[OnlineProcessor, list[StreamEvent]]:
    engine = OnlineProcessor(
        decoder, TranscribeOptions(language="en"), StreamingOptions(vad=False, **streaming)
    )
    events: list[StreamEvent] = []
    total = int(seconds * SAMPLE_RATE)
    step = SAMPLE_RATE // 4
    blocks = (ramp(i, min(step, total - i)) for i in range(0, total, step))
    drive(engine, blocks, events.append, lockstep=True)
    return engine, events


def test_scripted_stream_commits_every_word_once_in_order() -> None:
    script = script_of(100)  # 50 s of "speech"
    decoder = ScriptedDecoder(script)
    engine, events = run_scripted(decoder, 51.0)
    finals = [e for e in events if isinstance(e, Final)]
    assert "".join(e.text for e in finals).split() == [t.strip() for _, _, t in script]
    assert engine.committed_text == "".join(t for _, _, t in script).strip()
    # Final text never contains a misheard word; partial text may, and is then replaced.
    assert not any("?" in e.text for e in finals)
    assert any(isinstance(e, Partial) and "?" in e.text for e in events)
    starts = [w.start for e in finals for w in e.words]
    ends = [w.end for e in finals for w in e.words]
    assert starts == sorted(starts) and all(b >= a for a, b in zip(starts, ends, strict=True))
    assert all(s >= e - 1e-6 for s, e in zip(starts[1:], ends[:-1], strict=True))


def test_the_buffer_is_trimmed_and_committed_text_becomes_the_prompt() -> None:
    decoder = ScriptedDecoder(script_of(100))
    engine, _ = run_scripted(decoder, 51.0, trim_s=6.0, max_buffer_s=12.0)
    assert max(decoder.buffer_seconds) <= 12.0 + 0.5
    assert decoder.prompts[0] is None
    late = [p for p in decoder.prompts[-10:] if p]
    assert late and all(re.search(r"w\d+\.?$", p) for p in late)
    assert len(late[-1]) <= engine.streaming.prompt_chars


def test_segments_end_at_sentences_and_render_as_srt() -> None:
    engine, events = run_scripted(ScriptedDecoder(script_of(27)), 15.0)
    transcript = engine.transcript()
    texts = [s.text.strip() for s in transcript.segments]
    assert texts[0].endswith("w8.") and texts[1].startswith("w9")
    closing = [e for e in events if isinstance(e, Final) and e.segment_end]
    assert [e.segment for e in closing] == list(range(len(transcript.segments)))
    srt = get_writer("srt").render(transcript)
    assert srt.startswith("1\n00:00:00,500 --> ") and "w26." in srt
    assert transcript.duration == pytest.approx(15.0)


def test_a_stuck_hypothesis_is_forced_out_at_the_buffer_limit() -> None:
    """A decoder that never repeats itself cannot agree; the buffer still stays bounded."""

    class Flaky(ScriptedDecoder):
        def transcribe(self, source: Any, options: TranscribeOptions | None = None) -> Transcript:
            t = super().transcribe(source, options)
            n = len(self.prompts)
            segs = tuple(
                Segment(s.id, s.start, s.end, s.text,
                        tuple(Word(w.start, w.end, f"{w.word}{n}", w.probability) for w in s.words))
                for s in t.segments
            )  # fmt: skip
            return Transcript(segs, t.language, t.duration, 0.0, t.options, self.name)

    decoder = Flaky(script_of(80))
    engine, _ = run_scripted(decoder, 41.0, trim_s=6.0, max_buffer_s=10.0)
    assert max(decoder.buffer_seconds) <= 10.0 + 0.5
    assert engine.stats.forced_commits > 0


def test_options_are_checked() -> None:
    with pytest.raises(InvalidOptionError):
        StreamingOptions(trim_s=20.0, max_buffer_s=10.0)
    with pytest.raises(InvalidOptionError):
        StreamingOptions(max_buffer_s=40.0)
    with pytest.raises(InvalidOptionError):
        StreamingOptions(encoder_window_s=2.0)
    engine = OnlineProcessor(ScriptedDecoder([]), streaming=StreamingOptions(vad=False))
    with pytest.raises(InvalidOptionError):
        engine.insert_audio_chunk(np.zeros((2, 10), dtype=np.float32))
    engine.finish()
    with pytest.raises(InvalidOptionError):
        engine.insert_audio_chunk(np.zeros(10, dtype=np.float32))


def test_each_decode_is_one_pass_with_a_short_encoder_window_on_a_cpu() -> None:
    class OnDevice(ScriptedDecoder):
        def __init__(self, device: str) -> None:
            super().__init__(script_of(20))
            self.info = type("Info", (), {"device": device})()
            self.seen: list[TranscribeOptions] = []

        def transcribe(self, source: Any, options: TranscribeOptions | None = None) -> Transcript:
            assert options is not None
            self.seen.append(options)
            return super().transcribe(source, options)

    for device, streaming, window in [
        ("cpu", StreamingOptions(vad=False), 15.0),
        ("cuda", StreamingOptions(vad=False), 30.0),
        ("cpu", StreamingOptions(vad=False, encoder_window_s=30.0), 30.0),
    ]:
        decoder = OnDevice(device)
        engine = OnlineProcessor(decoder, TranscribeOptions(language="en"), streaming)
        engine.insert_audio_chunk(ramp(0, 3 * SAMPLE_RATE))
        engine.finish()
        assert decoder.seen
        for options in decoder.seen:
            assert options.encoder_window_s == window
            assert options.without_timestamps and options.word_timestamps and not options.vad
            assert options.temperature == (0.0,)  # no fallback: the next decode is the retry

    decoder = OnDevice("cpu")
    with_fallback = StreamingOptions(vad=False, fallback=True)
    engine = OnlineProcessor(decoder, TranscribeOptions(language="en"), with_fallback)
    engine.insert_audio_chunk(ramp(0, 3 * SAMPLE_RATE))
    engine.finish()
    assert decoder.seen and all(o.temperature == DEFAULT_TEMPERATURES for o in decoder.seen)


@dataclass
class BeamRecorder(ScriptedDecoder):
    """Records the beam of every decode; each takes ``delay_s``."""

    delay_s: float = 0.0
    beams: list[int] = field(default_factory=list)

    def transcribe(self, source: Any, options: TranscribeOptions | None = None) -> Transcript:
        assert options is not None
        self.beams.append(options.beam_size)
        time.sleep(self.delay_s)
        return super().transcribe(source, options)


def stream_four_seconds(decoder: ScriptedDecoder, options: TranscribeOptions,
                        streaming: StreamingOptions) -> OnlineProcessor:  # fmt: skip
    engine = OnlineProcessor(decoder, options, streaming)
    for i in range(0, 4 * SAMPLE_RATE, SAMPLE_RATE // 2):
        engine.insert_audio_chunk(ramp(i, SAMPLE_RATE // 2))
        engine.process_iter()
    engine.finish()
    return engine


def test_the_decode_that_ends_an_utterance_uses_the_endpoint_beam() -> None:
    for endpoint_beam, last in [(5, 5), (None, 1)]:
        decoder = BeamRecorder(script_of(12))
        streaming = StreamingOptions(vad=False, endpoint_beam_size=endpoint_beam)
        stream_four_seconds(decoder, TranscribeOptions(language="en", beam_size=1), streaming)
        assert len(decoder.beams) >= 3
        assert decoder.beams[:-1] == [1] * (len(decoder.beams) - 1)  # partial hypotheses: greedy
        assert decoder.beams[-1] == last  # final at once: the careful decode


def test_slow_decodes_make_the_stream_decode_greedily() -> None:
    for budget, beams in [(0.001, [5, 1, 1]), (None, [5, 5, 5])]:
        decoder = BeamRecorder(script_of(12), delay_s=0.02)  # slower than the budget
        streaming = StreamingOptions(vad=False, decode_budget_s=budget)
        engine = stream_four_seconds(decoder, TranscribeOptions(language="en"), streaming)
        assert decoder.beams[:3] == beams
        assert decoder.beams[-1] == 5  # the decode that ends the utterance keeps its beam
        assert engine.stats.greedy_decodes == decoder.beams.count(1)
    with pytest.raises(InvalidOptionError, match="decode_budget_s"):
        StreamingOptions(decode_budget_s=0)


# -- the real model ------------------------------------------------------------------------------

SENTENCES = ("The yellow submarine sailed across the ocean.",
             "My grandmother baked chocolate cookies on Sunday.")  # fmt: skip
WORDS = ("submarine", "ocean", "chocolate", "cookies")  # espeak's "Sunday" is fragile


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Silence, a sentence, a pause, another sentence, silence (about 12 s)."""
    d = tmp_path_factory.mktemp("stream")
    parts = []
    for i, seconds in enumerate((2.0, 1.5, 2.0)):
        gap = d / f"gap{i}.wav"
        run_tool("sox", "-n", "-r", "22050", "-c", "1", "-b", "16", gap, "trim", "0", str(seconds))
        parts.append(gap)
        if i < len(SENTENCES):
            said = d / f"s{i}.wav"
            run_tool("espeak-ng", "-v", "en-us", "-w", said, SENTENCES[i])
            parts.append(said)
    out = d / "speech.wav"
    run_tool("sox", *parts, out)
    return out


def words_in(text: str) -> set[str]:
    return set("".join(c.lower() if c.isalnum() else " " for c in text).split())


@pytest.mark.slow
def test_real_model_streams_speech_with_vad(model: Any, speech: Path) -> None:
    audio = AudioStream(speech).read()
    engine = OnlineProcessor(model, TranscribeOptions(language="en", beam_size=1))
    events: list[StreamEvent] = []
    blocks = (audio[i : i + 1600] for i in range(0, audio.size, 1600))  # 100 ms blocks
    drive(engine, blocks, events.append, lockstep=True)
    finals = [e for e in events if isinstance(e, Final)]
    text = "".join(e.text for e in finals)
    assert set(WORDS) <= words_in(text)
    assert engine.stats.endpoints >= 1  # the pause between the sentences ended an utterance
    assert engine.stats.silent_skips >= 1  # the leading silence was never decoded
    first = next(w for e in finals for w in e.words)
    assert 1.5 <= first.start <= 3.0  # the speech starts after two seconds of silence
    segments = engine.transcript().segments
    assert len(segments) >= 2 and segments[0].end <= segments[1].start
    assert all(
        w.start >= s.start - 1e-6 and w.end <= s.end + 1e-6 for s in segments for w in s.words
    )


@pytest.mark.slow
def test_real_model_never_decodes_silence(model: Any) -> None:
    engine = OnlineProcessor(model, TranscribeOptions(language="en"))
    silence = np.zeros(SAMPLE_RATE * 6, dtype=np.float32)
    events: list[StreamEvent] = []
    drive(engine, [silence[i : i + 4000] for i in range(0, silence.size, 4000)], events.append,
          lockstep=True)  # fmt: skip
    assert events == [] and engine.stats.decodes == 0
    assert engine.transcript().segments == ()


def test_a_late_engine_catches_up_a_window_at_a_time() -> None:
    """Decoding slower than real time: a decode that starts with a lot of new audio commits the
    Whisper segments it completes at once, and never takes more than one window."""
    script = script_of(100)
    decoder = ScriptedDecoder(script)
    engine = OnlineProcessor(decoder, TranscribeOptions(language="en"), StreamingOptions(vad=False))
    engine.insert_audio_chunk(ramp(0, 20 * SAMPLE_RATE))  # 20 s arrived during one decode
    events = engine.process_iter()
    committed = "".join(e.text for e in events if isinstance(e, Final)).split()
    assert committed == [t.strip() for _, _, t in script[: len(committed)]]
    assert len(committed) >= 30 and engine.stats.catch_up_commits > 0
    engine.insert_audio_chunk(ramp(20 * SAMPLE_RATE, 31 * SAMPLE_RATE))  # 51 s in all
    events += engine.finish()
    assert "".join(e.text for e in events if isinstance(e, Final)).split() == [
        t.strip() for _, _, t in script
    ]
    assert max(decoder.buffer_seconds) <= engine.streaming.max_buffer_s + 1e-6
