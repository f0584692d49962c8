"""Transcription: the window loop against a scripted stand-in for faster-whisper (fast), then the
real ``base`` model on rendered speech (slow)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from malsori import Model, Segment, Transcript
from malsori.audio import SAMPLE_RATE, AudioStream
from malsori.errors import InvalidOptionError, NoSpeechError
from malsori.model import ModelInfo
from malsori.options import TranscribeOptions
from malsori.transcribe import iter_windows
from rendered_audio import (
    ENGLISH_TEXT,
    ENGLISH_WORDS,
    LONG_SENTENCES,
    SPANISH_WORDS,
    Audio,
    run_tool,
    words_of,
)

# --- the window loop, with a scripted model ------------------------------------------------------


@dataclass
class RawWord:
    start: float
    end: float
    word: str
    probability: float = 0.9


@dataclass
class RawSegment:
    """What faster-whisper yields; times relative to the audio it was given."""

    start: float
    end: float
    text: str
    words: list[RawWord] | None = None
    avg_logprob: float = -0.1
    no_speech_prob: float = 0.01
    compression_ratio: float = 1.2
    temperature: float = 0.0


class ScriptedWhisper:
    """Stands in for faster_whisper.WhisperModel: records every call, answers from a script."""

    def __init__(self, script: Any = None, language: str = "de"):
        self.calls: list[dict[str, Any]] = []
        self.script = script or (
            lambda n, samples: [
                RawSegment(0.5, 1.5, f" Window {n} first."),
                RawSegment(1.5, 2.5, f" Window {n} second."),
            ]
        )
        self.language = language
        self.detect_calls = 0

    def transcribe(self, audio: np.ndarray, language: str | None = None, **kwargs: Any) -> Any:
        prompt = kwargs.pop("initial_prompt")
        self.calls.append({"samples": audio.size, "language": language, "prompt": prompt, **kwargs})
        info = SimpleNamespace(
            language=self.language,
            language_probability=0.8,
            all_language_probs=[(self.language, 0.8), ("nl", 0.15), ("en", 0.05)],
        )
        return iter(self.script(len(self.calls), audio.size)), info

    def detect_language(self, **kwargs: Any) -> Any:
        self.detect_calls += 1
        raise AssertionError("detect_language should not be reached")


def scripted_model(whisper: ScriptedWhisper, *, multilingual: bool = True) -> Model:
    info = ModelInfo("scripted", "/nowhere", "path", "cpu", "int8", 1, multilingual, 0.0)
    return Model(whisper, info)


def _windows(seconds: float, window_s: float) -> list[tuple[int, int]]:
    audio = np.zeros(int(seconds * SAMPLE_RATE), dtype=np.float32)
    return [(start, w.size) for start, w in iter_windows([audio], window_s)]


def test_windows_are_stitched_with_offsets_language_and_prompt_carried() -> None:
    whisper = ScriptedWhisper()
    seen: list[Segment] = []
    waveform = np.zeros(150 * SAMPLE_RATE, dtype=np.float32)
    t = scripted_model(whisper).transcribe(
        waveform, stream_window_s=60, vad=False, on_segment=seen.append
    )
    windows = _windows(150, 60)
    assert len(windows) == len(whisper.calls) == 3
    assert [c["samples"] for c in whisper.calls] == [size for _, size in windows]
    # The first window detects the language; the others keep it.
    assert [c["language"] for c in whisper.calls] == [None, "de", "de"]
    assert t.language.language == "de" and t.language.detected
    assert t.language.candidates == (("de", 0.8), ("nl", 0.15), ("en", 0.05))
    # Each window is prompted with the text of the one before.
    assert [c["prompt"] for c in whisper.calls] == [
        None,
        "Window 1 first. Window 1 second.",
        "Window 2 first. Window 2 second.",
    ]
    # Segment times are shifted by the window's start.
    expected = []
    for start, _ in windows:
        offset = start / SAMPLE_RATE
        expected += [offset + 0.5, offset + 1.5, offset + 1.5, offset + 2.5]
    assert [x for s in t.segments for x in (s.start, s.end)] == pytest.approx(expected)
    assert [s.id for s in t.segments] == list(range(6))
    assert seen == list(t.segments)
    assert t.duration == 150.0
    assert t.source == "<waveform>" and t.model == "scripted"


def test_a_character_cut_in_half_is_dropped() -> None:
    """A decode that stops inside a character's bytes ends in U+FFFD: never in the output."""
    words = [RawWord(0.5, 1.0, " 양해", 0.9), RawWord(1.0, 1.4, " 바\ufffd", 0.4),
             RawWord(1.4, 1.5, "\ufffd", 0.1)]  # fmt: skip
    whisper = ScriptedWhisper(
        lambda n, samples: [
            RawSegment(0.5, 1.5, " 양해 바\ufffd\ufffd", words),
            RawSegment(1.5, 2.0, " 네\ufffd"),
        ]
    )
    t = scripted_model(whisper).transcribe(np.zeros(2 * SAMPLE_RATE, dtype=np.float32), vad=False)
    assert [s.text for s in t.segments] == [" 양해 바", " 네"]
    assert [w.word for w in t.segments[0].words] == [" 양해", " 바"]


def test_options_reach_the_decoder() -> None:
    whisper = ScriptedWhisper()
    opts = TranscribeOptions(
        task="translate",
        beam_size=2,
        best_of=3,
        temperature=(0.0, 0.5),
        vad=False,
        vad_min_silence_ms=500,
        word_timestamps=True,
        hotwords="Seoul",
        no_speech_threshold=None,
    )
    scripted_model(whisper).transcribe(np.zeros(SAMPLE_RATE, dtype=np.float32), opts)
    (call,) = whisper.calls
    assert call["task"] == "translate"
    assert (call["beam_size"], call["best_of"], call["temperature"]) == (2, 3, [0.0, 0.5])
    assert call["vad_filter"] is False and call["word_timestamps"] is True
    assert "vad_parameters" not in call  # malsori runs VAD itself (malsori.vad)
    assert call["hotwords"] == "Seoul" and call["no_speech_threshold"] is None


def test_short_audio_gets_a_token_budget_for_its_length() -> None:
    whisper = ScriptedWhisper()
    model = scripted_model(whisper)
    for seconds in (2, 10, 20, 150):
        model.transcribe(np.zeros(seconds * SAMPLE_RATE, dtype=np.float32), vad=False)
    budgets = [c["max_new_tokens"] for c in whisper.calls]
    # 448 tokens per 30 s window, scaled to 2 s and 10 s, plus a margin; a long input keeps
    # faster-whisper's own limit for every window.
    assert budgets[:2] == [46, 166]
    assert budgets[2:] == [None] * (len(budgets) - 2)


def test_fixed_language_initial_prompt_and_no_conditioning() -> None:
    whisper = ScriptedWhisper()
    waveform = np.zeros(150 * SAMPLE_RATE, dtype=np.float32)
    model = scripted_model(whisper)
    t = model.transcribe(
        waveform, stream_window_s=60, vad=False, language="French", initial_prompt="SNCF."
    )
    assert [c["language"] for c in whisper.calls] == ["fr"] * 3
    assert (t.language.language, t.language.probability, t.language.detected) == ("fr", 1.0, False)
    assert t.language.candidates == ()
    assert whisper.calls[1]["prompt"] == "SNCF. Window 1 first. Window 1 second."

    whisper.calls.clear()
    model.transcribe(
        waveform,
        stream_window_s=60,
        vad=False,
        initial_prompt="SNCF.",
        condition_on_previous_text=False,
    )
    assert [c["prompt"] for c in whisper.calls] == ["SNCF."] * 3


def test_prompt_carries_only_the_tail_of_long_text() -> None:
    long_text = " " + " ".join(f"word{i}" for i in range(100))
    whisper = ScriptedWhisper(lambda n, samples: [RawSegment(0.0, 10.0, long_text)])
    waveform = np.zeros(150 * SAMPLE_RATE, dtype=np.float32)
    scripted_model(whisper).transcribe(waveform, stream_window_s=60, vad=False)
    prompt = whisper.calls[1]["prompt"]
    assert 0 < len(prompt) <= 200 and long_text.strip().endswith(prompt)


def test_times_are_monotonic_and_words_clamped_into_their_segment() -> None:
    def script(n: int, samples: int) -> list[RawSegment]:
        words = [
            RawWord(0.8, 1.2, " early"),
            RawWord(1.1, 1.6, " overlap"),
            RawWord(1.5, 2.4, " late"),
        ]
        # The second segment starts before the first ends; the words stray outside it.
        return [RawSegment(0.0, 1.9, " before"), RawSegment(1.0, 2.0, "", words)]

    t = scripted_model(ScriptedWhisper(script)).transcribe(
        np.zeros(3 * SAMPLE_RATE, "float32"), vad=False
    )
    first, second = t.segments
    assert second.start >= first.end
    assert second.text == " early overlap late" == "".join(w.word for w in second.words)
    starts = [w.start for w in second.words]
    assert starts == sorted(starts)
    for w in second.words:
        assert second.start <= w.start <= w.end <= second.end


def test_segments_never_end_after_the_audio() -> None:
    whisper = ScriptedWhisper(
        lambda n, samples: [RawSegment(0.0, 4.0, " one"), RawSegment(4.0, 29.0, " two")]
    )
    t = scripted_model(whisper).transcribe(np.zeros(5 * SAMPLE_RATE, dtype=np.float32), vad=False)
    assert t.duration == 5.0
    assert all(s.end <= t.duration for s in t.segments)


def test_a_path_source_is_recorded_as_given(audio: Audio) -> None:
    t = scripted_model(ScriptedWhisper()).transcribe(Path(audio.english))
    assert t.source == str(audio.english)


def test_string_and_stream_sources_are_named(audio: Audio) -> None:
    model = scripted_model(ScriptedWhisper())
    assert model.transcribe(str(audio.english)).source == str(audio.english)
    assert model.transcribe(audio.english.read_bytes()).source == "<stream>"
    with open(audio.english, "rb") as f:
        assert model.transcribe(f).source == str(audio.english)


def test_english_only_model_refuses_translation_before_decoding() -> None:
    whisper = ScriptedWhisper()
    model = scripted_model(whisper, multilingual=False)
    waveform = np.zeros(SAMPLE_RATE, dtype=np.float32)
    with pytest.raises(InvalidOptionError, match="English-only"):
        model.transcribe(waveform, task="translate")
    with pytest.raises(InvalidOptionError, match="English-only"):
        model.transcribe(waveform, language="ko")
    assert whisper.calls == []
    info = model.detect_language(waveform)
    assert (info.language, info.detected) == ("en", False)


def test_language_detection_on_silence_reports_no_speech(audio: Audio) -> None:
    whisper = ScriptedWhisper()
    with pytest.raises(NoSpeechError, match="no speech") as info:
        scripted_model(whisper).detect_language(audio.silence)
    assert info.value.exit_code == 3
    assert whisper.detect_calls == 0


# --- the real model ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def english(model: Model, audio: Audio) -> tuple[Transcript, list[Segment]]:
    seen: list[Segment] = []
    t = model.transcribe(audio.english, word_timestamps=True, on_segment=seen.append)
    return t, seen


@pytest.mark.slow
def test_english_words_are_recognised(english: tuple[Transcript, list[Segment]]) -> None:
    t, _ = english
    assert set(ENGLISH_WORDS) <= words_of(t.text), t.text
    assert t.language.language == "en" and t.language.detected
    assert t.language.probability > 0.5
    probs = [p for _, p in t.language.candidates]
    assert probs == sorted(probs, reverse=True) and t.language.candidates[0][0] == "en"
    assert t.model == "base" and t.removed == ()


@pytest.mark.slow
def test_the_token_budget_fits_beside_a_long_prompt(model: Model, audio: Audio) -> None:
    # Long hotwords and a long prompt leave less room in Whisper's 448-token context than the
    # budget of a few seconds of audio: the budget shrinks to fit instead of failing.
    short = AudioStream(audio.english).read()[: 4 * SAMPLE_RATE]
    t = model.transcribe(
        short,
        language="en",
        hotwords=" ".join(f"term{i}" for i in range(90)),
        initial_prompt=" ".join(f"word{i}" for i in range(150)),
    )
    assert t.duration == pytest.approx(short.size / SAMPLE_RATE)
    assert words_of(t.text) & set(ENGLISH_WORDS), t.text


@pytest.mark.slow
def test_a_decode_that_uses_its_whole_budget_falls_back(
    model: Model, audio: Audio, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Using the whole token budget means a loop, even when the few copies the budget allows
    pass the compression-ratio check: the decode goes on at the next temperature."""
    import malsori.transcribe

    tried: list[float] = []

    class Spy:  # records the temperature of every CTranslate2 decode of the window
        def __init__(self, ct2: Any):
            self.ct2 = ct2

        def __getattr__(self, name: str) -> Any:
            return getattr(self.ct2, name)

        def generate(self, *args: Any, **kwargs: Any) -> Any:
            tried.append(kwargs.get("sampling_temperature", 0.0))
            return self.ct2.generate(*args, **kwargs)

    monkeypatch.setattr(model.whisper, "model", Spy(model.whisper.model))
    short = AudioStream(audio.english).read()[: 4 * SAMPLE_RATE]
    monkeypatch.setattr(malsori.transcribe, "max_new_tokens", lambda samples: 3)
    t = model.transcribe(short, language="en", temperature=(0.0, 0.5, 1.0), word_timestamps=False)
    assert tried == [0.0, 0.5, 1.0]  # every decode ran out: all tried
    assert len(t.text.split()) <= 3
    tried.clear()
    monkeypatch.setattr(malsori.transcribe, "max_new_tokens", lambda samples: 60)
    t = model.transcribe(short, language="en", temperature=(0.0, 0.5, 1.0), word_timestamps=False)
    assert tried == [0.0] and words_of(t.text) & set(ENGLISH_WORDS), t.text


@pytest.mark.slow
def test_word_timestamps_are_consistent(
    english: tuple[Transcript, list[Segment]], audio: Audio
) -> None:
    t, _ = english
    assert t.segments and t.words
    previous_end = 0.0
    for seg in t.segments:
        assert previous_end <= seg.start <= seg.end <= t.duration + 0.01
        previous_end = seg.end
        assert seg.words and seg.text == "".join(w.word for w in seg.words)
        starts = [w.start for w in seg.words]
        assert starts == sorted(starts)
        for w in seg.words:
            assert seg.start <= w.start <= w.end <= seg.end
            assert 0.0 <= w.probability <= 1.0
    assert t.duration == pytest.approx(audio.english_duration, abs=0.01)
    assert t.words[-1].end > 0.5 * audio.english_duration  # words span the speech


@pytest.mark.slow
def test_on_segment_sees_each_segment_once_in_order(
    english: tuple[Transcript, list[Segment]],
) -> None:
    t, seen = english
    assert seen == list(t.segments)
    assert [s.id for s in seen] == list(range(len(seen)))


@pytest.mark.slow
def test_transcript_dict_has_the_documented_keys(
    english: tuple[Transcript, list[Segment]],
) -> None:
    t, _ = english
    d = json.loads(json.dumps(t.to_dict()))
    assert {
        "text",
        "language",
        "language_probability",
        "language_info",
        "duration",
        "processing_time",
        "rtfx",
        "model",
        "source",
        "options",
        "segments",
        "removed_segments",
    } <= set(d)
    assert d["language"] == "en" and 0.5 < d["language_probability"] <= 1.0
    assert d["duration"] == round(t.duration, 3) and d["processing_time"] > 0
    assert d["model"] == "base" and d["options"]["word_timestamps"] is True
    seg = d["segments"][0]
    assert {"id", "start", "end", "text", "words", "avg_logprob", "no_speech_prob"} <= set(seg)
    assert set(seg["words"][0]) == {"start", "end", "word", "probability"}
    back = Transcript.from_dict(d)
    assert back.text == t.text and back.options == t.options


@pytest.mark.slow
def test_a_waveform_gives_the_same_transcript_as_the_file(
    model: Model, audio: Audio, english: tuple[Transcript, list[Segment]]
) -> None:
    from_file, _ = english
    waveform = AudioStream(audio.english).read()
    t = model.transcribe(waveform, word_timestamps=True)
    assert t.text == from_file.text
    assert [(s.start, s.end) for s in t.segments] == [(s.start, s.end) for s in from_file.segments]
    assert t.source == "<waveform>"


@pytest.mark.slow
def test_without_timestamps_a_short_input_is_one_encoder_pass(
    model: Model, audio: Audio, monkeypatch: pytest.MonkeyPatch
) -> None:
    encoded: list[int] = []
    encode = model.whisper.encode

    def counting(features: np.ndarray) -> object:
        encoded.append(features.shape[-1])
        return encode(features)

    monkeypatch.setattr(model.whisper, "encode", counting)
    t = model.transcribe(
        audio.english, language="en", word_timestamps=True, without_timestamps=True
    )
    assert len(encoded) == 1  # faster-whisper alone decodes the rest after the last word again
    assert set(ENGLISH_WORDS) <= words_of(t.text), t.text
    assert len(t.segments) == 1 and t.segments[0].words
    ends = [w.end for w in t.words]
    assert ends == sorted(ends) and ends[-1] <= t.duration + 0.01
    assert t.words[-1].end > 0.5 * audio.english_duration


def test_padding_is_cut_to_the_audio_plus_a_margin() -> None:
    from malsori._whisper import cut_padding

    window = np.zeros((1, 80, 3000), dtype=np.float32)
    window[0, :, :401] = -0.5  # 4 s of audio, then Whisper's zero padding
    assert cut_padding(window, 1000).shape == (1, 80, 1000)  # never below the minimum
    assert cut_padding(window, 200).shape == (1, 80, 502)  # audio + 1 s margin, made even
    window[0, 3, 2950] = 0.1  # audio (or anything not zero) near the end: nothing to cut
    assert cut_padding(window, 200) is window


@pytest.mark.slow
def test_a_short_encoder_window_encodes_less_and_still_hears_the_words(
    model: Model, audio: Audio, monkeypatch: pytest.MonkeyPatch
) -> None:
    import faster_whisper

    encoded: list[int] = []
    encode = faster_whisper.WhisperModel.encode  # what malsori's encode calls after its cut

    def spy(self: Any, features: np.ndarray) -> Any:
        encoded.append(features.shape[-1])
        return encode(self, features)

    monkeypatch.setattr(faster_whisper.WhisperModel, "encode", spy)
    t = model.transcribe(audio.english, language="en", encoder_window_s=5.0)
    assert set(ENGLISH_WORDS) <= words_of(t.text), t.text
    frames = round(audio.english_duration * 100)  # under 4 s of speech: the 5 s minimum
    assert encoded and all(n == max(500, frames + 100) for n in encoded), (encoded, frames)
    encoded.clear()
    model.transcribe(audio.english, language="en")  # the default: Whisper's full window
    assert encoded and all(n == 3000 for n in encoded)


@pytest.mark.slow
def test_spanish_is_detected(model: Model, audio: Audio) -> None:
    t = model.transcribe(audio.spanish)
    assert t.language.language == "es", t.language
    probs = [p for _, p in t.language.candidates]
    assert probs == sorted(probs, reverse=True) and t.language.candidates[0][0] == "es"
    assert len(t.language.candidates) == 10
    assert set(SPANISH_WORDS) <= words_of(t.text), t.text
    info = model.detect_language(audio.spanish)
    assert info.language == "es" and info.candidates[0] == ("es", info.probability)


@pytest.mark.slow
def test_french_is_translated_to_english(model: Model, audio: Audio) -> None:
    t = model.transcribe(audio.french, task="translate")
    assert t.language.language == "fr"
    assert "good morning" in t.text.lower(), t.text
    assert not {"bonjour", "voudrais", "billet"} & words_of(t.text)
    assert t.options.task == "translate"


@pytest.mark.slow
@pytest.mark.parametrize(
    "name", ["stereo-44k-wav", "mp3", "opus", "webm", "m4a", "mp4-video", "aiff", "flac"]
)
def test_every_container_transcribes(model: Model, audio: Audio, name: str) -> None:
    t = model.transcribe(audio.formats[name], language="en")  # detection is tested above
    assert set(ENGLISH_WORDS) <= words_of(t.text), t.text
    assert t.duration == pytest.approx(audio.english_duration, abs=0.1)


@pytest.mark.slow
def test_silence_gives_no_segments(model: Model, audio: Audio) -> None:
    t = model.transcribe(audio.silence)
    assert t.segments == () and t.text == "" and t.words == ()
    assert t.duration == 5.0


@pytest.mark.slow
def test_noise_gives_no_text(model: Model, audio: Audio) -> None:
    t = model.transcribe(audio.noise)
    assert t.text == ""
    assert t.duration == 5.0


@pytest.mark.slow
def test_long_input_in_several_windows(model: Model, audio: Audio) -> None:
    seen: list[Segment] = []
    # No conditioning on the previous window: with it, base sometimes invents a sentence after
    # the first one and spends half a minute on temperature fallbacks (the carry-over itself is
    # checked with the scripted model above).
    t = model.transcribe(
        audio.long,
        stream_window_s=60,
        word_timestamps=True,
        condition_on_previous_text=False,
        on_segment=seen.append,
    )
    assert len(_windows(t.duration, 60)) == 3
    assert t.duration == pytest.approx(AudioStream(audio.long).read().size / SAMPLE_RATE)
    assert seen == list(t.segments)
    previous = 0.0
    for seg in t.segments:
        assert previous <= seg.start <= seg.end <= t.duration
        previous = seg.end
        for w in seg.words:
            assert seg.start <= w.start <= w.end <= seg.end
    # Each window's sentence is there, at the time it was rendered (offsets carried right).
    for (sentence, expected), at in zip(LONG_SENTENCES, audio.long_starts, strict=True):
        matching = [s for s in t.segments if set(expected) <= words_of(s.text)]
        assert matching, f"{sentence!r} missing from {t.text!r}"
        assert matching[0].start == pytest.approx(at, abs=1.0)


def _speech(audio: Audio) -> np.ndarray:
    from malsori.audio import AudioStream

    return AudioStream(audio.english).read()


def test_vad_keeps_short_lead_in_and_tail(audio: Audio) -> None:
    """Short silences at the edges are not cut: the decoder sees the clip as it is."""
    speech = _speech(audio)
    quiet = np.zeros(SAMPLE_RATE // 2, dtype=np.float32)
    clip = np.concatenate([quiet, speech, quiet])
    whisper = ScriptedWhisper(lambda n, samples: [RawSegment(0.6, 1.5, " fox")])
    t = scripted_model(whisper).transcribe(clip)
    (call,) = whisper.calls
    assert call["samples"] == clip.size
    assert t.segments[0].start == pytest.approx(0.6)


def test_vad_removes_long_silence_and_maps_times_back(audio: Audio) -> None:
    speech = _speech(audio)
    gap = np.zeros(16 * SAMPLE_RATE, dtype=np.float32)
    clip = np.concatenate([gap, speech, gap, speech])  # longer than one window
    whisper = ScriptedWhisper(lambda n, samples: [RawSegment(0.5, 1.0, " late word")])
    t = scripted_model(whisper).transcribe(clip)
    (call,) = whisper.calls
    assert call["samples"] < clip.size - 28 * SAMPLE_RATE  # most of the 32 s of silence is gone
    # 0.5 s into the speech-only audio is about 16 s into the clip (minus VAD's padding).
    assert 15.0 < t.segments[0].start < 16.5


def test_a_clip_within_one_window_is_decoded_whole(audio: Audio) -> None:
    """Pauses inside a clip Whisper sees in one window stay: cutting them saves no compute
    (the window is padded to 30 s) and changes what Whisper hears."""
    speech = _speech(audio)
    gap = np.zeros(6 * SAMPLE_RATE, dtype=np.float32)
    clip = np.concatenate([gap, speech, gap, speech, gap])
    assert clip.size <= 30 * SAMPLE_RATE
    whisper = ScriptedWhisper(lambda n, samples: [RawSegment(6.5, 7.0, " fox")])
    t = scripted_model(whisper).transcribe(clip)
    (call,) = whisper.calls
    assert call["samples"] == clip.size
    assert t.segments[0].start == pytest.approx(6.5)  # no times to map back
    # Silence alone still never reaches the decoder.
    whisper.calls.clear()
    scripted_model(whisper).transcribe(np.zeros_like(clip))
    assert whisper.calls == []


def test_vad_with_no_speech_never_calls_the_decoder() -> None:
    whisper = ScriptedWhisper()
    t = scripted_model(whisper).transcribe(np.zeros(4 * SAMPLE_RATE, dtype=np.float32))
    assert whisper.calls == [] and t.segments == ()
    assert (t.language.language, t.language.detected) == ("", False)
    given = scripted_model(whisper).transcribe(
        np.zeros(4 * SAMPLE_RATE, dtype=np.float32), language="ko"
    )
    assert given.language.language == "ko"


@pytest.mark.slow
def test_quiet_whispered_speech_is_kept_by_vad(model: Model, tmp_path: Path) -> None:
    """Whispered speech scores low with Silero; the default threshold keeps it whole (at 0.5 the
    first sentence of this clip is cut away before the decoder sees it)."""
    from malsori.vad import decode_regions, speech_regions

    raw, quiet = tmp_path / "whisper.wav", tmp_path / "quiet.wav"
    text = f"{ENGLISH_TEXT} I am speaking very quietly now, in a whisper, so nobody hears."
    run_tool("espeak-ng", "-v", "en+whisper", "-s", "150", "-w", raw, text)
    run_tool("sox", raw, "-r", "16000", quiet, "vol", "0.05", "pad", "3", "3")
    audio = AudioStream(quiet).read()
    # The first sentence is spoken from 3.0 s to 5.7 s.
    (region,) = speech_regions(audio, TranscribeOptions())
    assert region["start"] < 3.0 * SAMPLE_RATE and region["end"] > 10.5 * SAMPLE_RATE
    late = speech_regions(audio, TranscribeOptions(vad_threshold=0.5))
    assert late[0]["start"] > 5.0 * SAMPLE_RATE
    # In a longer recording, where silences are cut, the decoder gets all of it.
    long = np.concatenate([audio, np.zeros(30 * SAMPLE_RATE, dtype=np.float32)])
    (kept,) = decode_regions(long, TranscribeOptions())
    assert kept["start"] < 3.0 * SAMPLE_RATE and kept["end"] < 15 * SAMPLE_RATE
    t = model.transcribe(audio)
    assert {"speaking", "quietly", "whisper"} <= words_of(t.text), t.text
